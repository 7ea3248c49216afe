//! The conformance tests: what every backend must do, written once.
//!
//! Each test is an `async fn` taking a [`Fixture`];
//! [`conformance!`](crate::conformance) turns them into `#[tokio::test]`s
//! for one backend, so every backend provably behaves like every other.
//!
//! # Layout
//! * `commands`    – creating, grabbing, refusing; races; two engines.
//! * `projections` – restarts, rebuilds, lagging projections, the change feed, snapshots.
//! * `engine`      – faults, frozen promotions, overload, settings, retiring writers.
//! * `replies`     – typed replies, the per-promotion watch, error codes.
//! * `groups`      – group commit across promotions: each commit answered on
//!   its own, one promotion's conflict costing no other its grabs.
//! * `subscriptions` – durable subscriptions: catch-up, resume, retries,
//!   one consumer per name, takeover after a crash, the lease rules.
//! * `lifecycle`   – the expiry timer: expired on time by the service's clock, once.
//! * `draws`       – draws: entries, the draw on time and once, a result
//!   that verifies from the stored events.
//!
//! This file holds what they share: a service on a fixed clock, and
//! [`assert_consistent`], which every test ends with.

mod commands;
mod draws;
mod engine;
mod groups;
mod lifecycle;
mod projections;
mod replies;
mod subscriptions;

pub use commands::*;
pub use draws::*;
pub use engine::*;
pub use groups::*;
pub use lifecycle::*;
pub use projections::*;
pub use replies::*;
pub use subscriptions::*;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use seckill_app::engine::ConfigError;
use seckill_app::testing::{coupons_in, FixedClock};
use seckill_app::{Backend, EngineConfig, SecKill, SecKillError, StoreError};
use seckill_domain::{
    Coupon, CouponCount, Discount, PromotionError, PromotionEvent, PromotionId, PromotionName,
    PromotionStatus, PromotionTerms,
};

use crate::faults::{FaultPlan, FaultyStore};
use crate::fixture::Fixture;

/// The suite's times, terms and customers: the fixtures every crate's tests share.
pub use seckill_domain::testing::{customer, opens, terms};

/// A service over `store` with a clock standing one second after [`opens`].
pub fn service(store: Arc<dyn Backend>) -> (SecKill, Arc<FixedClock>) {
    service_with(
        store,
        EngineConfig::default().with_idle_timeout(StdDuration::from_millis(500)),
    )
}

/// [`service`] with these engine settings.
pub fn service_with(store: Arc<dyn Backend>, config: EngineConfig) -> (SecKill, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::new(opens() + Duration::seconds(1)));
    (service_on(store, clock.clone(), config), clock)
}

/// A service over `store` reading `clock`, with these engine settings: for
/// services that share one clock.
pub fn service_on(
    store: Arc<dyn Backend>,
    clock: Arc<FixedClock>,
    config: EngineConfig,
) -> SecKill {
    SecKill::builder(store)
        .clock(clock)
        .config(config)
        .build()
        .expect("valid engine settings")
}

/// New terms for a promotion made with [`terms`] that has not opened yet:
/// five coupons at half price, named, running two hours from [`opens`].
fn renamed_terms() -> PromotionTerms {
    PromotionTerms::new(
        CouponCount::new(5).unwrap(),
        Discount::new(0.5).unwrap(),
        opens(),
        opens() + Duration::hours(2),
        Some(PromotionName::parse("Singles' Day").unwrap()),
    )
    .unwrap()
}

/// Checks one promotion's stored truth against the rules and the projections:
/// coupons numbered 1..=n with no gaps, nobody twice, never more than offered,
/// the summary's remaining count right, and every coupon in its holder's list.
/// Returns the coupons the event stream holds.
pub async fn assert_consistent(store: &Arc<dyn Backend>, promotion_id: PromotionId) -> Vec<Coupon> {
    let events = store.load_events(promotion_id, 0).await.unwrap();
    let Some(PromotionEvent::PromotionCreated { .. }) = events.first() else {
        panic!("stream of {promotion_id} does not start with PromotionCreated: {events:?}");
    };
    let coupons: Vec<Coupon> = coupons_in(&events).cloned().collect();
    let summary = store
        .promotion(promotion_id)
        .await
        .unwrap()
        .expect("summary projected");
    assert!(
        coupons.len() <= summary.number_of_coupons as usize,
        "oversold"
    );
    for (i, coupon) in coupons.iter().enumerate() {
        assert_eq!(coupon.number as usize, i + 1, "coupon numbers have a gap");
    }
    let holders: HashSet<_> = coupons.iter().map(|c| &c.customer_id).collect();
    assert_eq!(holders.len(), coupons.len(), "a customer holds two coupons");
    assert_eq!(
        summary.remaining as usize,
        summary.number_of_coupons as usize - coupons.len(),
        "remaining count disagrees with the events"
    );
    assert_eq!(
        summary.last_sequence,
        events.len() as u64,
        "projection position lags"
    );
    for coupon in &coupons {
        let held = store.coupons_of(&coupon.customer_id).await.unwrap();
        let mine: Vec<_> = held
            .iter()
            .filter(|c| c.promotion_id == promotion_id)
            .collect();
        assert_eq!(
            mine,
            vec![coupon],
            "coupon projection disagrees for {}",
            coupon.customer_id
        );
    }
    coupons
}

fn rejection<T: std::fmt::Debug>(result: Result<T, SecKillError>) -> PromotionError {
    match result {
        Err(SecKillError::Rejected(error)) => error,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn replay(events: &[PromotionEvent]) -> seckill_domain::Promotion {
    let mut promotion = seckill_domain::Promotion::default();
    for event in events.iter().cloned() {
        cqrs_es::Aggregate::apply(&mut promotion, event);
    }
    promotion
}

/// Runs `customers` concurrent grabs, one task each, and returns the coupons won.
async fn race(
    seckills: &[SecKill],
    id: PromotionId,
    customers: usize,
    prefix: &str,
) -> Vec<Coupon> {
    let tasks: Vec<_> = (0..customers)
        .map(|i| {
            let seckill = seckills[i % seckills.len()].clone();
            let who = customer(format!("{prefix}-{i}"));
            tokio::spawn(async move { seckill.grab(id, who).await })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(coupon) => won.push(coupon),
            Err(SecKillError::Rejected(PromotionError::SoldOut { .. })) => {}
            Err(other) => panic!("unexpected grab outcome: {other:?}"),
        }
    }
    won
}
