//! Test fixtures shared by the tests of every crate: one fixed sale time,
//! terms, customers and the creation event. Only built with the `testing`
//! feature, so no production build carries it.
//!
//! Why here: every test crate (the domain's own tests, the adapters', the
//! cross-crate suite) already depends on the domain, so fixtures in the domain
//! add no dependency edge and keep them pointing inward; and they use nothing
//! but domain values and fixed times, no clock and no I/O.
//!
//! The functions panic on bad input: a fixture that does not build is a bug in
//! the test that called it.

use std::fmt::Display;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::draw::{DrawSeal, DrawSecret, SealedSecret};
use crate::{
    Allocation, CouponCount, CustomerId, Discount, PromotionEvent, PromotionId, PromotionTerms,
};

/// When the test promotions open: 2030-11-11 00:00 UTC, so they are always
/// in the future of whatever clock is running.
pub fn opens() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 11, 11, 0, 0, 0)
        .single()
        .expect("a valid date")
}

/// When the test promotions close: an hour after [`opens`].
pub fn closes() -> DateTime<Utc> {
    opens() + Duration::hours(1)
}

/// Terms of `coupons` coupons at a discount of 0.8, from [`opens`] to [`closes`].
pub fn terms(coupons: u64) -> PromotionTerms {
    PromotionTerms::new(
        CouponCount::new(coupons).expect("a valid number of coupons"),
        Discount::new(0.8).expect("a valid discount"),
        opens(),
        closes(),
        None,
    )
    .expect("valid terms")
}

/// The customer called `name`.
pub fn customer(name: impl Display) -> CustomerId {
    CustomerId::parse(name.to_string()).expect("a valid customer id")
}

/// `PromotionCreated` for promotion `promotion_id` with [`terms`]`(coupons)`.
pub fn created(promotion_id: PromotionId, coupons: u64) -> PromotionEvent {
    PromotionEvent::PromotionCreated {
        promotion_id,
        terms: terms(coupons),
        seal: None,
    }
}

/// When the test draws close: half an hour after [`opens`].
pub fn draw_closes() -> DateTime<Utc> {
    opens() + Duration::minutes(30)
}

/// [`terms`]`(coupons)` allocating by draw, closing at [`draw_closes`].
pub fn draw_terms(coupons: u64) -> PromotionTerms {
    terms(coupons)
        .with_allocation(Allocation::Draw {
            closes_at: draw_closes(),
        })
        .expect("the close is within the sale")
}

/// The test draws' secret: 32 bytes of 7.
pub fn secret() -> DrawSecret {
    DrawSecret::from_bytes([7; 32])
}

/// The seal of [`secret`]; the sealed bytes are a stand-in (the domain
/// never opens them).
pub fn seal() -> DrawSeal {
    DrawSeal {
        commitment: secret().commitment(),
        sealed_secret: SealedSecret::from_bytes([0; 32]),
    }
}

/// `PromotionCreated` for a draw of `coupons` coupons ([`draw_terms`],
/// [`seal`]).
pub fn draw_created(promotion_id: PromotionId, coupons: u64) -> PromotionEvent {
    PromotionEvent::PromotionCreated {
        promotion_id,
        terms: draw_terms(coupons),
        seal: Some(seal()),
    }
}
