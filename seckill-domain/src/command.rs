//! What callers ask a promotion to do. Every command carries the time it was
//! made as data: the domain never reads a clock.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::draw::{DrawSeal, DrawSecret};
use crate::value::{CustomerId, PromotionId, PromotionTerms};

/// A command to the [`Promotion`](crate::Promotion) aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PromotionCommand {
    /// Open a new promotion under `promotion_id`.
    CreatePromotion {
        /// The id of the new promotion; also its event stream's id.
        promotion_id: PromotionId,
        /// What it offers and when.
        terms: PromotionTerms,
        /// When the promotion was requested; the schedule is checked against it.
        at: DateTime<Utc>,
        /// For a draw, and only for one: the commitment to its secret and
        /// the secret sealed, which the engine makes.
        seal: Option<DrawSeal>,
    },
    /// Replace all terms of a promotion that has not started yet.
    UpdatePromotion {
        /// The new terms.
        terms: PromotionTerms,
        /// When the update was requested.
        at: DateTime<Utc>,
        /// For a draw, and only for one: as in `CreatePromotion`.
        seal: Option<DrawSeal>,
    },
    /// One customer asks for one coupon.
    GrabCoupon {
        /// Who is asking.
        customer_id: CustomerId,
        /// When they asked.
        at: DateTime<Utc>,
    },
    /// One customer enters a draw.
    EnterDraw {
        /// Who is entering.
        customer_id: CustomerId,
        /// When they asked.
        at: DateTime<Utc>,
    },
    /// Decide a draw whose entries have closed, revealing its secret; the
    /// first [`Promotion::AWARDS_PER_COMMIT`](crate::Promotion::AWARDS_PER_COMMIT)
    /// coupons are awarded with it.
    Draw {
        /// The secret committed to at creation.
        secret: DrawSecret,
        /// When it is sent; at or after the close.
        at: DateTime<Utc>,
    },
    /// Award the next coupons of a draw too big for one commit.
    AwardDraw,
    /// Close a promotion whose finish time has passed. The promotion is
    /// recorded finished at its finish time, whenever this is sent.
    ExpirePromotion {
        /// When it is sent; at or after the finish time.
        at: DateTime<Utc>,
    },
    /// Close a promotion early, e.g. because it was set up wrongly.
    CancelPromotion {
        /// When it was cancelled.
        at: DateTime<Utc>,
    },
}
