//! Why a command was refused: one variant per broken rule, so callers can
//! match on the reason instead of parsing a message.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::coupon::Coupon;

/// A value that does not parse into one of the domain's value types.
// Serde: a refusal crosses the wire unchanged when a replica forwards a
// command to the promotion's owner.
#[derive(Debug, Clone, PartialEq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ValueError {
    /// The promotion id is not a UUID.
    #[error("promotion id {0:?} is not a UUID")]
    PromotionId(String),
    /// The customer id is empty, too long, padded or has control characters.
    #[error("customer id {0:?} must be 1 to 64 bytes, without control characters or surrounding white space")]
    CustomerId(String),
    /// The discount is outside (0, 1].
    #[error("discount {0} must be greater than 0 and at most 1")]
    Discount(f64),
    /// The number of coupons is outside 1..=10,000,000.
    #[error("number of coupons {0} must be between 1 and 10000000")]
    CouponCount(u64),
    /// The name is empty, too long or has control characters.
    #[error("promotion name {0:?} must be 1 to 200 characters without control characters")]
    Name(String),
    /// The text is not the name of a `FinishReason`.
    #[error("finish reason {0:?} must be one of sold_out, expired, cancelled")]
    FinishReason(String),
    /// The sale would finish before, or when, it opens.
    #[error("finish time {finish_time} must be after publish time {publish_time}")]
    FinishNotAfterPublish {
        /// The requested publish time.
        publish_time: DateTime<Utc>,
        /// The requested finish time.
        finish_time: DateTime<Utc>,
    },
}

/// A command the `Promotion` aggregate refused. Nothing was recorded.
///
/// Non-exhaustive: a new rule may bring a new reason, and that must not break
/// a caller's `match`.
#[derive(Debug, Clone, PartialEq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PromotionError {
    /// The command needs a promotion, and none was created under this id.
    /// The aggregate does not know its own id before it is created, so it
    /// says only this; the application service reports it as its own "not
    /// found" (`SecKillError::NotFound`, with the id) and never passes it on
    /// as a rejection.
    #[error("no promotion has been created under this id")]
    UnknownPromotion,
    /// `CreatePromotion` for an id that already has a promotion.
    #[error("a promotion already exists under this id")]
    AlreadyExists,
    /// The customer already holds a coupon of this promotion. The coupon they
    /// hold comes back, so a client's retry is safe.
    #[error("customer {} already holds coupon #{} of this promotion", .0.customer_id, .0.number)]
    AlreadyGrabbed(Box<Coupon>),
    /// A grab before the publish time.
    #[error("the promotion has not started; it opens at {publish_time}")]
    NotStarted {
        /// When grabbing opens.
        publish_time: DateTime<Utc>,
    },
    /// A grab at or after the finish time, or after the promotion was finished.
    #[error("the promotion ended at {finished_at}")]
    Ended {
        /// When it ended.
        finished_at: DateTime<Utc>,
    },
    /// Every coupon has been taken.
    #[error("all {number_of_coupons} coupons have been taken")]
    SoldOut {
        /// How many coupons the promotion had.
        number_of_coupons: u32,
    },
    /// An update after the publish time; terms are frozen once a sale opens.
    #[error("the promotion started at {publish_time}; it can no longer be changed")]
    AlreadyStarted {
        /// When the promotion opened.
        publish_time: DateTime<Utc>,
    },
    /// The promotion is already finished.
    #[error("the promotion is already finished")]
    AlreadyFinished,
    /// Expiring a promotion before its finish time.
    #[error(
        "the promotion runs until {finish_time}; it cannot expire earlier (cancel it instead)"
    )]
    NotYetExpired {
        /// When it is due to finish.
        finish_time: DateTime<Utc>,
    },
    /// The schedule is not one a sale can run on, judged at the command's time.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

impl PromotionError {
    /// A stable, machine-readable name of the broken rule, in kebab case
    /// (`sold-out`, `not-started`, ...). The application service's error
    /// codes and the HTTP API's problem types use these names.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::UnknownPromotion => "unknown-promotion",
            Self::AlreadyExists => "already-exists",
            Self::AlreadyGrabbed(_) => "already-grabbed",
            Self::NotStarted { .. } => "not-started",
            Self::Ended { .. } => "ended",
            Self::SoldOut { .. } => "sold-out",
            Self::AlreadyStarted { .. } => "already-started",
            Self::AlreadyFinished => "already-finished",
            Self::NotYetExpired { .. } => "not-yet-expired",
            Self::Schedule(_) => "invalid-schedule",
        }
    }
}

/// Why a promotion's publish and finish times were refused when it was
/// created or updated. These rules need the command's time, so they live in
/// the aggregate's decision, not in [`PromotionTerms`](crate::PromotionTerms):
/// events already stored stay readable whatever these limits become.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The sale would be over before it could be created.
    #[error("finish time {finish_time} has already passed (it is now {at})")]
    FinishInPast {
        /// The requested finish time.
        finish_time: DateTime<Utc>,
        /// When the command was made.
        at: DateTime<Utc>,
    },
    /// The sale would open further ahead than [`ScheduleError::MAX_LEAD`].
    #[error("publish time {publish_time} is too far ahead; the latest allowed is {latest}")]
    PublishTooFarAhead {
        /// The requested publish time.
        publish_time: DateTime<Utc>,
        /// The latest publish time allowed at the command's time.
        latest: DateTime<Utc>,
    },
    /// The sale would run longer than [`ScheduleError::MAX_RUN`].
    #[error("a promotion runs at most 366 days; {publish_time} to {finish_time} is longer")]
    RunTooLong {
        /// The requested publish time.
        publish_time: DateTime<Utc>,
        /// The requested finish time.
        finish_time: DateTime<Utc>,
    },
}

impl ScheduleError {
    /// How far ahead of the command a sale may be scheduled to open.
    pub const MAX_LEAD: chrono::TimeDelta = chrono::TimeDelta::days(366);
    /// How long a sale may run, publish to finish.
    pub const MAX_RUN: chrono::TimeDelta = chrono::TimeDelta::days(366);
}
