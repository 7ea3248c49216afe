//! A promotion with more holders than one chunk of the holder set (4096)
//! and than its index holds in one table (16,384):
//! every holder is found with the number of its place, a copy diverges from
//! the original without either seeing the other's grabs, and the snapshot of
//! each reads back equal.

use chrono::Duration;
use cqrs_es::Aggregate;
use seckill_domain::testing::{self, created, opens};
use seckill_domain::{Promotion, PromotionError, PromotionId};

const HOLDERS: u32 = 20_000;

fn grab(promotion: &mut Promotion, customer: &str, nanos: i64) -> u32 {
    let at = opens() + Duration::nanoseconds(nanos);
    let events = promotion
        .grab_events(&testing::customer(customer), at)
        .expect("a coupon is left");
    let mut number = 0;
    for event in events {
        if let seckill_domain::PromotionEvent::CouponGrabbed { coupon, .. } = &event {
            number = coupon.number;
        }
        promotion.apply(event);
    }
    number
}

#[test]
fn holders_across_many_chunks_keep_their_numbers_through_a_copy() {
    let id = PromotionId::from_uuid(uuid::Uuid::from_u128(14));
    let mut original = Promotion::default();
    original.apply(created(id, u64::from(HOLDERS) + 10));
    for n in 1..=HOLDERS {
        assert_eq!(grab(&mut original, &format!("customer-{n}"), n.into()), n);
    }
    let mut copy = original.clone();
    assert_eq!(grab(&mut copy, "only-in-the-copy", 0), HOLDERS + 1);
    assert_eq!(grab(&mut original, "only-in-the-original", 0), HOLDERS + 1);

    for (promotion, own, other) in [
        (&original, "only-in-the-original", "only-in-the-copy"),
        (&copy, "only-in-the-copy", "only-in-the-original"),
    ] {
        assert_eq!(promotion.granted(), HOLDERS + 1);
        for n in 1..=HOLDERS {
            let coupon = promotion
                .coupon_of(&testing::customer(format!("customer-{n}")))
                .expect("a holder");
            assert_eq!(coupon.number, n);
            assert_eq!(coupon.grabbed_at, opens() + Duration::nanoseconds(n.into()));
        }
        assert_eq!(
            promotion
                .coupon_of(&testing::customer(own))
                .map(|c| c.number),
            Some(HOLDERS + 1)
        );
        assert_eq!(promotion.coupon_of(&testing::customer(other)), None);
        assert!(matches!(
            promotion.decide_grab(&testing::customer("customer-4097"), opens()),
            Err(PromotionError::AlreadyGrabbed(coupon)) if coupon.number == 4097
        ));
        let snapshot: Promotion =
            serde_json::from_str(&serde_json::to_string(promotion).unwrap()).unwrap();
        assert_eq!(&snapshot, promotion);
    }
    assert_ne!(original, copy);
}
