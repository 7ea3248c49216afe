//! The coupon: what a customer wins when a grab succeeds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::value::{CustomerId, Discount, PromotionId};

/// A coupon granted to one customer by one promotion.
///
/// Coupon numbers run 1..=N in grab order, so number 1 went to the first
/// customer served and the numbers have no gaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coupon {
    /// The promotion that granted it.
    pub promotion_id: PromotionId,
    /// Its place in grab order, from 1.
    pub number: u32,
    /// Who holds it.
    pub customer_id: CustomerId,
    /// The discount it carries, copied from the promotion's terms.
    pub discount: Discount,
    /// When the grab was requested.
    pub grabbed_at: DateTime<Utc>,
}
