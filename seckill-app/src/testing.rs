//! Helpers for tests, behind the `testing` feature: a clock that stands
//! still, and the coupons a stream grants, to check a store's projections
//! against (the conformance suite, `seckill-testkit`, uses both).
//!
//! Enable it for tests only, in `[dev-dependencies]`:
//! `seckill-app = { version = "0.1", features = ["testing"] }`.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use seckill_domain::{Coupon, PromotionEvent};

use crate::clock::Clock;

/// A clock that stands still until told to move: for tests and simulations.
/// Hand it to [`SecKillBuilder::clock`](crate::SecKillBuilder::clock).
#[derive(Debug)]
pub struct FixedClock {
    // std Mutex: held for a copy only, never across an `.await`.
    now: Mutex<DateTime<Utc>>,
}

impl FixedClock {
    /// A clock showing `now`.
    pub const fn new(now: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(now),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = now;
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The coupons `events` grant, in order: what a store's coupon projection
/// must hold for a stream of these events.
pub fn coupons_in(events: &[PromotionEvent]) -> impl Iterator<Item = &Coupon> + '_ {
    crate::projection::coupons_in(events)
}
