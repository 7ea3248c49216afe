//! Pins the JSON of a `Promotion` as a snapshot stores it, and proves that
//! snapshots of older builds still load: the first format (holders as an
//! object keyed by customer) and the list in hash order that builds before
//! the compact holder set wrote. A snapshot saved by an older build must
//! never stop a promotion from loading.

use chrono::{Duration, TimeZone, Utc};
use cqrs_es::Aggregate;
use seckill_domain::{
    Coupon, CouponCount, CustomerId, Discount, Promotion, PromotionEvent, PromotionId,
    PromotionTerms,
};
use serde_json::{json, Value};

fn promotion_with_two_holders() -> Promotion {
    let id: PromotionId = "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap();
    let opens = Utc.with_ymd_and_hms(2030, 11, 11, 0, 0, 0).unwrap();
    let discount = Discount::new(0.75).unwrap();
    let terms = PromotionTerms::new(
        CouponCount::new(100).unwrap(),
        discount,
        opens,
        opens + Duration::hours(1),
        None,
    )
    .unwrap();
    let mut promotion = Promotion::default();
    promotion.apply(PromotionEvent::PromotionCreated {
        promotion_id: id,
        terms,
        seal: None,
    });
    for (number, (customer, nanos)) in [("alice", 123_456_789), ("bob", 0)].into_iter().enumerate()
    {
        let number = u32::try_from(number).unwrap() + 1;
        promotion.apply(PromotionEvent::CouponGrabbed {
            coupon: Coupon {
                promotion_id: id,
                number,
                customer_id: CustomerId::parse(customer).unwrap(),
                discount,
                grabbed_at: opens + Duration::nanoseconds(nanos),
            },
            remaining: 100 - number,
        });
    }
    promotion
}

fn holders(snapshot: &Value) -> Vec<Value> {
    let mut holders = snapshot["holders"]
        .as_array()
        .expect("holders as a list")
        .clone();
    holders.sort_by_key(|holder| holder[1].as_u64());
    holders
}

#[test]
fn holders_are_stored_as_customer_number_seconds_nanoseconds() {
    let snapshot = serde_json::to_value(promotion_with_two_holders()).unwrap();
    let opens = Utc
        .with_ymd_and_hms(2030, 11, 11, 0, 0, 0)
        .unwrap()
        .timestamp();
    assert_eq!(
        holders(&snapshot),
        vec![
            json!(["alice", 1, opens, 123_456_789]),
            json!(["bob", 2, opens, 0])
        ]
    );
    let back: Promotion = serde_json::from_value(snapshot).unwrap();
    assert_eq!(back, promotion_with_two_holders());
}

#[test]
fn a_snapshot_in_the_first_format_still_loads() {
    let mut snapshot = serde_json::to_value(promotion_with_two_holders()).unwrap();
    snapshot["holders"] = json!({
        "alice": {"number": 1, "grabbed_at": "2030-11-11T00:00:00.123456789Z"},
        "bob": {"number": 2, "grabbed_at": "2030-11-11T00:00:00Z"},
    });
    let old: Promotion = serde_json::from_value(snapshot.clone()).unwrap();
    assert_eq!(old, promotion_with_two_holders());
    // A customer twice is corrupt in this format too (JSON allows the key twice).
    let twice = serde_json::to_string(&snapshot).unwrap().replacen(
        "\"bob\":",
        "\"alice\":{\"number\":3,\"grabbed_at\":\"2030-11-11T00:00:00Z\"},\"bob\":",
        1,
    );
    assert!(
        serde_json::from_str::<Promotion>(&twice).is_err(),
        "{twice}"
    );
}

#[test]
fn broken_holders_are_errors_not_panics() {
    for holders in [
        json!([["alice", 1, i64::MAX, 0]]),
        json!([["alice", 1, 0, 2_000_000_000u32]]),
        json!([["", 1, 0, 0]]),
        json!([["alice", 1]]),
        json!([["alice", 1, 0, 0], ["alice", 2, 0, 0]]),
        // Numbers are places in grab order: 1..=n, each once.
        json!([["alice", 1, 0, 0], ["bob", 3, 0, 0]]),
        json!([["alice", 2, 0, 0]]),
        json!([["alice", 0, 0, 0]]),
        json!([["alice", 1, 0, 0], ["bob", 1, 0, 0]]),
        json!({"alice": {"number": 2, "grabbed_at": "2030-11-11T00:00:00Z"}}),
        json!("alice"),
    ] {
        let mut snapshot = serde_json::to_value(promotion_with_two_holders()).unwrap();
        snapshot["holders"] = holders.clone();
        assert!(
            serde_json::from_value::<Promotion>(snapshot).is_err(),
            "{holders} was accepted"
        );
    }
}

/// The whole snapshot as this build writes it: holders in number order.
const PINNED: &str = r#"{"id":"67e55044-10b1-426f-9247-bb680e5fe0c8","terms":{"number_of_coupons":100,"discount":0.75,"publish_time":"2030-11-11T00:00:00Z","finish_time":"2030-11-11T01:00:00Z"},"holders":[["alice",1,1920585600,123456789],["bob",2,1920585600,0]],"finished":null}"#;

#[test]
fn the_snapshot_json_is_pinned() {
    assert_eq!(
        serde_json::to_string(&promotion_with_two_holders()).unwrap(),
        PINNED
    );
    let back: Promotion = serde_json::from_str(PINNED).unwrap();
    assert_eq!(back, promotion_with_two_holders());
}

#[test]
fn older_snapshots_load_from_their_stored_text() {
    for stored in [
        // The list, in the hash order of builds with a HashMap of holders.
        r#"{"id":"67e55044-10b1-426f-9247-bb680e5fe0c8","terms":{"number_of_coupons":100,"discount":0.75,"publish_time":"2030-11-11T00:00:00Z","finish_time":"2030-11-11T01:00:00Z"},"holders":[["bob",2,1920585600,0],["alice",1,1920585600,123456789]],"finished":null}"#,
        // The first format.
        r#"{"id":"67e55044-10b1-426f-9247-bb680e5fe0c8","terms":{"number_of_coupons":100,"discount":0.75,"publish_time":"2030-11-11T00:00:00Z","finish_time":"2030-11-11T01:00:00Z"},"holders":{"bob":{"number":2,"grabbed_at":"2030-11-11T00:00:00Z"},"alice":{"number":1,"grabbed_at":"2030-11-11T00:00:00.123456789Z"}},"finished":null}"#,
    ] {
        let old: Promotion = serde_json::from_str(stored).unwrap();
        assert_eq!(old, promotion_with_two_holders(), "{stored}");
        // Saved again, it is written the way this build writes.
        assert_eq!(serde_json::to_string(&old).unwrap(), PINNED);
    }
}
