//! The clock port. The domain never reads a clock; the application reads this
//! one and hands the time to the domain as data, so tests can fix it (a
//! [`SecKillBuilder::clock`](crate::SecKillBuilder::clock) of their own, or
//! `testing::FixedClock` with the `testing` feature).

use chrono::{DateTime, SubsecRound, Utc};

/// Where the application gets "now" from.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock, to the microsecond.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        // Microseconds, the finest PostgreSQL stores: a coupon read back from
        // any store is then equal to the one the grab returned.
        Utc::now().trunc_subsecs(6)
    }
}
