//! The projections' logic: what the read side stores for each event. Adapters
//! only persist what these functions compute, so every backend projects alike.

use chrono::{DateTime, Utc};
use seckill_domain::draw::{DrawSeal, DrawSecret};
use seckill_domain::{
    Coupon, FinishReason, Promotion, PromotionEvent, PromotionId, PromotionStatus,
};
use serde::{Deserialize, Serialize};

/// One promotion as the query side sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionSummary {
    /// Its id.
    pub promotion_id: PromotionId,
    /// Its display name, if any.
    pub name: Option<String>,
    /// Coupons offered.
    pub number_of_coupons: u32,
    /// Coupons left.
    pub remaining: u32,
    /// The discount each coupon carries.
    pub discount: f64,
    /// When grabbing opens.
    pub publish_time: DateTime<Utc>,
    /// When grabbing closes.
    pub finish_time: DateTime<Utc>,
    /// Why it finished, if that was recorded.
    pub finish_reason: Option<FinishReason>,
    /// When it finished, if that was recorded.
    pub finished_at: Option<DateTime<Utc>>,
    /// The last event this summary includes: the projection's position.
    pub last_sequence: u64,
    /// For a promotion that allocates by draw: where the draw stands.
    /// Boxed: most promotions are first come, and a summary travels in
    /// every commit's announcement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draw: Option<Box<DrawSummary>>,
}

/// Where a draw stands, as the query side shows it (docs/draws.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrawSummary {
    /// When entries close and the promotion is drawn.
    pub closes_at: DateTime<Utc>,
    /// How many entered so far.
    pub entries: u32,
    /// The commitment to the secret (its SHA-256), recorded at creation,
    /// and the secret sealed for the engine that draws.
    pub seal: DrawSeal,
    /// The secret, once drawn; anyone can then recompute the winners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<DrawSecret>,
}

impl PromotionSummary {
    /// The summary of `promotion` after event `last_sequence`; `None` if it
    /// was never created.
    pub fn of(promotion: &Promotion, last_sequence: u64) -> Option<Self> {
        let id = promotion.id()?;
        let terms = promotion.terms()?;
        let finished = promotion.finished();
        Some(Self {
            promotion_id: id,
            name: terms.name().map(|n| n.as_str().to_owned()),
            number_of_coupons: terms.number_of_coupons().get(),
            remaining: promotion.remaining(),
            discount: terms.discount().get(),
            publish_time: terms.publish_time(),
            finish_time: terms.finish_time(),
            finish_reason: finished.map(|(_, reason)| reason),
            finished_at: finished.map(|(at, _)| at),
            last_sequence,
            draw: terms
                .allocation()
                .closes_at()
                .zip(promotion.seal())
                .map(|(closes_at, seal)| {
                    Box::new(DrawSummary {
                        closes_at,
                        entries: promotion.entries(),
                        seal,
                        secret: promotion.drawn_secret(),
                    })
                }),
        })
    }

    /// Where the promotion stands at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> PromotionStatus {
        PromotionStatus::at(now, self.publish_time, self.finish_time, self.finish_reason)
    }

    /// How many coupons have been granted.
    pub const fn granted(&self) -> u32 {
        self.number_of_coupons - self.remaining
    }
}

/// A promotion summary together with its status at the time of the query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionView {
    /// What the projection stores.
    #[serde(flatten)]
    pub summary: PromotionSummary,
    /// Where it stands now.
    pub status: PromotionStatus,
}

impl PromotionView {
    /// The promotion's id.
    pub const fn id(&self) -> PromotionId {
        self.summary.promotion_id
    }
}

/// The coupons granted by `events`, in grab order.
pub(crate) fn coupons_in(events: &[PromotionEvent]) -> impl Iterator<Item = &Coupon> + '_ {
    events.iter().filter_map(|event| match event {
        PromotionEvent::CouponGrabbed { coupon, .. } => Some(coupon),
        _ => None,
    })
}
