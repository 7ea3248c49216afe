//! Pins the stored JSON of every `PromotionEvent`. Stored events outlive the
//! code that wrote them: if one of these tests fails, the change needs a new
//! `event_version` and an upcaster, not a new expected string.

use chrono::{TimeZone, Utc};
use cqrs_es::DomainEvent;
use seckill_domain::draw::{Commitment, DrawSeal, DrawSecret, SealedSecret};
use seckill_domain::{
    Allocation, Coupon, CouponCount, CustomerId, Discount, Entry, FinishReason, PromotionEvent,
    PromotionId, PromotionName, PromotionTerms,
};

fn terms() -> PromotionTerms {
    PromotionTerms::new(
        CouponCount::new(100).unwrap(),
        Discount::new(0.75).unwrap(),
        Utc.with_ymd_and_hms(2030, 11, 11, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2030, 11, 11, 1, 0, 0).unwrap(),
        Some(PromotionName::parse("Singles' Day").unwrap()),
    )
    .unwrap()
}

fn id() -> PromotionId {
    "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap()
}

fn pinned(event: &PromotionEvent, event_type: &str, json: &str) {
    assert_eq!(event.event_type(), event_type);
    assert!(
        PromotionEvent::TYPES.contains(&event_type),
        "{event_type} is listed"
    );
    assert_eq!(event.event_version(), "1.0");
    assert_eq!(serde_json::to_string(event).unwrap(), json);
    let back: PromotionEvent = serde_json::from_str(json).unwrap();
    assert_eq!(&back, event);
}

#[test]
fn promotion_created_json_is_stable() {
    pinned(
        &PromotionEvent::PromotionCreated {
            promotion_id: id(),
            terms: terms(),
            seal: None,
        },
        "PromotionCreated",
        r#"{"PromotionCreated":{"promotion_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","terms":{"number_of_coupons":100,"discount":0.75,"publish_time":"2030-11-11T00:00:00Z","finish_time":"2030-11-11T01:00:00Z","name":"Singles' Day"}}}"#,
    );
}

#[test]
fn promotion_updated_json_is_stable() {
    pinned(
        &PromotionEvent::PromotionUpdated {
            terms: terms(),
            at: Utc.with_ymd_and_hms(2030, 11, 10, 0, 0, 0).unwrap(),
            seal: None,
        },
        "PromotionUpdated",
        r#"{"PromotionUpdated":{"terms":{"number_of_coupons":100,"discount":0.75,"publish_time":"2030-11-11T00:00:00Z","finish_time":"2030-11-11T01:00:00Z","name":"Singles' Day"},"at":"2030-11-10T00:00:00Z"}}"#,
    );
}

#[test]
fn coupon_grabbed_json_is_stable() {
    pinned(
        &PromotionEvent::CouponGrabbed {
            coupon: Coupon {
                promotion_id: id(),
                number: 1,
                customer_id: CustomerId::parse("alice").unwrap(),
                discount: Discount::new(0.75).unwrap(),
                grabbed_at: Utc.timestamp_opt(1_920_499_200, 123_000_000).unwrap(),
            },
            remaining: 99,
        },
        "CouponGrabbed",
        r#"{"CouponGrabbed":{"coupon":{"promotion_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","number":1,"customer_id":"alice","discount":0.75,"grabbed_at":"2030-11-10T00:00:00.123Z"},"remaining":99}}"#,
    );
}

#[test]
fn promotion_finished_json_is_stable() {
    for (reason, name) in [
        (FinishReason::SoldOut, "SoldOut"),
        (FinishReason::Expired, "Expired"),
        (FinishReason::Cancelled, "Cancelled"),
        (FinishReason::Drawn, "Drawn"),
    ] {
        pinned(
            &PromotionEvent::PromotionFinished {
                at: Utc.with_ymd_and_hms(2030, 11, 11, 0, 30, 0).unwrap(),
                reason,
            },
            "PromotionFinished",
            &format!(
                r#"{{"PromotionFinished":{{"at":"2030-11-11T00:30:00Z","reason":"{name}"}}}}"#
            ),
        );
    }
}

#[test]
fn a_draws_promotion_created_json_is_stable() {
    let terms = terms()
        .with_allocation(Allocation::Draw {
            closes_at: Utc.with_ymd_and_hms(2030, 11, 11, 0, 30, 0).unwrap(),
        })
        .unwrap();
    pinned(
        &PromotionEvent::PromotionCreated {
            promotion_id: id(),
            terms,
            seal: Some(DrawSeal {
                commitment: Commitment::from_bytes([0xab; 32]),
                sealed_secret: SealedSecret::from_bytes([0x01; 32]),
            }),
        },
        "PromotionCreated",
        &format!(
            r#"{{"PromotionCreated":{{"promotion_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","terms":{{"number_of_coupons":100,"discount":0.75,"publish_time":"2030-11-11T00:00:00Z","finish_time":"2030-11-11T01:00:00Z","name":"Singles' Day","allocation":{{"draw":{{"closes_at":"2030-11-11T00:30:00Z"}}}}}},"seal":{{"commitment":"{}","sealed_secret":"{}"}}}}}}"#,
            "ab".repeat(32),
            "01".repeat(32)
        ),
    );
}

#[test]
fn draw_entered_json_is_stable() {
    pinned(
        &PromotionEvent::DrawEntered {
            entry: Entry {
                promotion_id: id(),
                number: 3,
                customer_id: CustomerId::parse("alice").unwrap(),
                entered_at: Utc.timestamp_opt(1_920_499_200, 123_000_000).unwrap(),
            },
        },
        "DrawEntered",
        r#"{"DrawEntered":{"entry":{"promotion_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","number":3,"customer_id":"alice","entered_at":"2030-11-10T00:00:00.123Z"}}}"#,
    );
}

#[test]
fn promotion_drawn_json_is_stable() {
    pinned(
        &PromotionEvent::PromotionDrawn {
            secret: DrawSecret::from_bytes([0x07; 32]),
            at: Utc.with_ymd_and_hms(2030, 11, 11, 0, 30, 0).unwrap(),
            entries: 1000,
            winners: 100,
        },
        "PromotionDrawn",
        &format!(
            r#"{{"PromotionDrawn":{{"secret":"{}","at":"2030-11-11T00:30:00Z","entries":1000,"winners":100}}}}"#,
            "07".repeat(32)
        ),
    );
}

#[test]
fn stored_terms_with_a_close_outside_the_sale_do_not_load() {
    let json = r#"{"PromotionCreated":{"promotion_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","terms":{"number_of_coupons":1,"discount":1.0,"publish_time":"2030-11-11T00:00:00Z","finish_time":"2030-11-11T01:00:00Z","allocation":{"draw":{"closes_at":"2030-11-11T02:00:00Z"}}}}}"#;
    assert!(serde_json::from_str::<PromotionEvent>(json).is_err());
}

#[test]
fn stored_terms_without_a_name_still_load() {
    let json = r#"{"PromotionCreated":{"promotion_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","terms":{"number_of_coupons":1,"discount":1.0,"publish_time":"2030-11-11T00:00:00Z","finish_time":"2030-11-11T01:00:00Z"}}}"#;
    let event: PromotionEvent = serde_json::from_str(json).unwrap();
    assert!(matches!(event, PromotionEvent::PromotionCreated { .. }));
}

#[test]
fn stored_events_breaking_a_rule_do_not_load() {
    // A zero-coupon promotion can never have been decided, so its row is corrupt.
    let json = r#"{"PromotionCreated":{"promotion_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","terms":{"number_of_coupons":0,"discount":1.0,"publish_time":"2030-11-11T00:00:00Z","finish_time":"2030-11-11T01:00:00Z"}}}"#;
    assert!(serde_json::from_str::<PromotionEvent>(json).is_err());
}
