//! What happened to a promotion. These events are the only source of truth:
//! they are stored forever, so their JSON is pinned by tests and every change
//! to it needs a new `event_version` and an upcaster.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::coupon::Coupon;
use crate::draw::{DrawSeal, DrawSecret, Entry};
use crate::error::ValueError;
use crate::value::{truncate, PromotionId, PromotionTerms};

/// Why a promotion finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FinishReason {
    /// The last coupon was granted.
    SoldOut,
    /// Its finish time passed.
    Expired,
    /// An admin closed it early.
    Cancelled,
    /// It was drawn and every winner got a coupon.
    Drawn,
}

impl FinishReason {
    /// A stable lower-case name, for logs, metrics and projections; parsed
    /// back by [`FromStr`].
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SoldOut => "sold_out",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Drawn => "drawn",
        }
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FinishReason {
    type Err = ValueError;

    /// The inverse of [`FinishReason::as_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sold_out" => Ok(Self::SoldOut),
            "expired" => Ok(Self::Expired),
            "cancelled" => Ok(Self::Cancelled),
            "drawn" => Ok(Self::Drawn),
            other => Err(ValueError::FinishReason(truncate(other))),
        }
    }
}

/// An event of the [`Promotion`](crate::Promotion) aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PromotionEvent {
    /// A promotion was opened.
    PromotionCreated {
        /// Its id.
        promotion_id: PromotionId,
        /// Its terms.
        terms: PromotionTerms,
        /// For a draw: the commitment to its secret, and the secret sealed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seal: Option<DrawSeal>,
    },
    /// The terms of a promotion that had not started were replaced.
    PromotionUpdated {
        /// The new terms.
        terms: PromotionTerms,
        /// When.
        at: DateTime<Utc>,
        /// For a draw: the commitment to its secret, and the secret sealed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seal: Option<DrawSeal>,
    },
    /// A customer entered a draw.
    DrawEntered {
        /// The entry.
        entry: Entry,
    },
    /// Entries closed and the draw was decided: the secret is revealed, and
    /// the coupons follow as `CouponGrabbed` events in the draw's order.
    PromotionDrawn {
        /// The secret whose SHA-256 was committed to at creation.
        secret: DrawSecret,
        /// The close: the draw's time, however late it was recorded.
        at: DateTime<Utc>,
        /// How many entered.
        entries: u32,
        /// How many win: the number of coupons, or everyone if fewer entered.
        winners: u32,
    },
    /// A customer won a coupon.
    CouponGrabbed {
        /// The coupon granted.
        coupon: Coupon,
        /// Coupons left after this one, so views never recount.
        remaining: u32,
    },
    /// The promotion closed; no more grabs are granted.
    PromotionFinished {
        /// When.
        at: DateTime<Utc>,
        /// Why.
        reason: FinishReason,
    },
}

impl PromotionEvent {
    /// The current payload version of every event type.
    pub const VERSION: &'static str = "1.0";

    /// Every event type's name, as [`type_name`](Self::type_name) gives it:
    /// a store can tell a row of an unknown type from a row of ours.
    pub const TYPES: [&'static str; 6] = [
        "PromotionCreated",
        "PromotionUpdated",
        "CouponGrabbed",
        "PromotionFinished",
        "DrawEntered",
        "PromotionDrawn",
    ];

    /// The event's type name, as stored beside its payload.
    pub const fn type_name(&self) -> &'static str {
        match self {
            Self::PromotionCreated { .. } => "PromotionCreated",
            Self::PromotionUpdated { .. } => "PromotionUpdated",
            Self::CouponGrabbed { .. } => "CouponGrabbed",
            Self::DrawEntered { .. } => "DrawEntered",
            Self::PromotionDrawn { .. } => "PromotionDrawn",
            Self::PromotionFinished { .. } => "PromotionFinished",
        }
    }
}

impl DomainEvent for PromotionEvent {
    fn event_type(&self) -> String {
        self.type_name().to_owned()
    }

    fn event_version(&self) -> String {
        Self::VERSION.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_finish_reason_round_trips_through_its_name() {
        for reason in [
            FinishReason::SoldOut,
            FinishReason::Expired,
            FinishReason::Cancelled,
            FinishReason::Drawn,
        ] {
            // Exhaustive: a new variant does not compile until it is listed above.
            match reason {
                FinishReason::SoldOut
                | FinishReason::Expired
                | FinishReason::Cancelled
                | FinishReason::Drawn => {}
            }
            assert_eq!(reason.as_str().parse(), Ok(reason));
            assert_eq!(reason.to_string(), reason.as_str());
        }
    }

    #[test]
    fn an_unknown_finish_reason_is_a_value_error() {
        assert_eq!(
            "SoldOut".parse::<FinishReason>(),
            Err(ValueError::FinishReason("SoldOut".to_owned()))
        );
    }
}
