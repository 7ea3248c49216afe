//! Why a command was refused: one variant per broken rule, so callers can
//! match on the reason instead of parsing a message.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::coupon::Coupon;
use crate::draw::Entry;

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
    #[error("finish reason {0:?} must be one of sold_out, expired, cancelled, drawn")]
    FinishReason(String),
    /// A draw would close before the sale opens or after it finishes.
    #[error("a draw's close {closes_at} must be from publish time {publish_time} to finish time {finish_time}")]
    CloseOutsideSale {
        /// The requested close.
        closes_at: DateTime<Utc>,
        /// The requested publish time.
        publish_time: DateTime<Utc>,
        /// The requested finish time.
        finish_time: DateTime<Utc>,
    },
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
    /// A grab on a promotion that allocates by draw: enter it instead.
    #[error("the promotion allocates by draw; enter it before {closes_at}")]
    IsADraw {
        /// When entries close.
        closes_at: DateTime<Utc>,
    },
    /// An entry or a draw on a promotion that allocates first come.
    #[error("the promotion allocates first come, not by draw")]
    NotADraw,
    /// The customer already entered the draw. Their entry comes back, so a
    /// client's retry is safe.
    #[error("customer {} already entered as entry #{}", .0.customer_id, .0.number)]
    AlreadyEntered(Box<Entry>),
    /// The draw holds [`Promotion::MAX_ENTRIES`](crate::Promotion::MAX_ENTRIES) entries already.
    #[error("the draw holds its most entries, {max_entries}")]
    EntriesFull {
        /// The most entries a draw takes.
        max_entries: u32,
    },
    /// An entry at or after the close.
    #[error("entries closed at {closes_at}")]
    EntriesClosed {
        /// When entries closed.
        closes_at: DateTime<Utc>,
    },
    /// A draw before the close.
    #[error("entries close at {closes_at}; the draw comes after")]
    NotYetClosed {
        /// When entries close.
        closes_at: DateTime<Utc>,
    },
    /// A second draw, or a change after the draw.
    #[error("the promotion has been drawn")]
    AlreadyDrawn,
    /// Expiring a draw that was not drawn: the draw finishes it.
    #[error("entries closed at {closes_at}; the promotion must be drawn before it finishes")]
    NotYetDrawn {
        /// When entries closed.
        closes_at: DateTime<Utc>,
    },
    /// The secret offered is not the one committed to at creation.
    #[error("the secret does not match the draw's commitment")]
    WrongSecret,
    /// A draw's terms without the seal of its secret, or a seal with
    /// first-come terms.
    #[error("a draw's terms need the seal of its secret, and only a draw's do")]
    Seal,
    /// Awarding a draw's coupons when none are waiting.
    #[error("no coupon of the draw is waiting to be awarded")]
    NothingToAward,
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
            Self::IsADraw { .. } => "is-a-draw",
            Self::NotADraw => "not-a-draw",
            Self::AlreadyEntered(_) => "already-entered",
            Self::EntriesFull { .. } => "entries-full",
            Self::EntriesClosed { .. } => "entries-closed",
            Self::NotYetClosed { .. } => "not-yet-closed",
            Self::AlreadyDrawn => "already-drawn",
            Self::NotYetDrawn { .. } => "not-yet-drawn",
            Self::WrongSecret => "wrong-secret",
            Self::Seal => "invalid-seal",
            Self::NothingToAward => "nothing-to-award",
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
