//! A draw over many entries, in the aggregate alone: the live heap bytes
//! its entries take (jemalloc's statistics), and how long the draw takes to
//! decide (ordering every entry by its HMAC when `PromotionDrawn` is
//! applied) and to award its coupons, a commit's worth of events at a time.
//! The baseline, in the same run: the same customers as coupon holders of a
//! first-come promotion (the holder set the entries share their layout
//! with), and replaying their grabs.
//!
//! ```text
//! cargo bench -p seckill-domain --bench draw                  # 1,000,000 entries, 100,000 coupons
//! cargo bench -p seckill-domain --bench draw -- 200000 10000  # other counts
//! ```

use std::time::Instant;

use chrono::{Duration, Utc};
use cqrs_es::Aggregate;
use seckill_domain::draw::{DrawSeal, DrawSecret, SealedSecret};
use seckill_domain::{
    Allocation, Coupon, CouponCount, CustomerId, Discount, Promotion, PromotionEvent, PromotionId,
    PromotionTerms,
};
#[path = "heap/mod.rs"]
mod heap;

use heap::live_bytes;

fn main() {
    let mut counts = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .map(|arg| arg.parse::<u32>().expect("a count"));
    let entries = counts.next().unwrap_or(1_000_000);
    let coupons = counts.next().unwrap_or(100_000);
    let id = PromotionId::from_uuid(uuid::Uuid::from_u128(0xd4a));
    let opens = Utc::now();
    let closes = opens + Duration::minutes(30);
    let discount = Discount::new(0.5).expect("discount");
    let terms = |count: u32| {
        PromotionTerms::new(
            CouponCount::new(u64::from(count)).expect("count"),
            discount,
            opens,
            opens + Duration::hours(1),
            None,
        )
        .expect("terms")
    };
    let secret = DrawSecret::from_bytes([7; 32]);
    let seal = DrawSeal {
        commitment: secret.commitment(),
        sealed_secret: SealedSecret::from_bytes([0; 32]),
    };

    // The draw: every entry, then the draw, then its awards.
    let before = live_bytes();
    let started = Instant::now();
    let mut draw = Promotion::default();
    draw.apply(PromotionEvent::PromotionCreated {
        promotion_id: id,
        terms: terms(coupons)
            .with_allocation(Allocation::Draw { closes_at: closes })
            .expect("a close within the sale"),
        seal: Some(seal),
    });
    for n in 1..=entries {
        let customer = CustomerId::parse(format!("customer-{n}")).expect("id");
        let entry = draw.decide_entry(&customer, opens).expect("an entry");
        draw.apply(PromotionEvent::DrawEntered { entry });
    }
    let entered = started.elapsed();
    let entries_bytes = live_bytes() - before;

    let started = Instant::now();
    let drawn = draw.draw_event(secret, closes).expect("the draw");
    draw.apply(drawn);
    let decided = started.elapsed();
    let started = Instant::now();
    let mut commits = 0;
    while draw.awaits_awards() {
        for event in draw.award_events().expect("awards") {
            draw.apply(event);
        }
        commits += 1;
    }
    let awarded = started.elapsed();
    assert_eq!(draw.granted(), coupons.min(entries));
    drop(draw);

    // The baseline: the same customers as first-come holders.
    let before = live_bytes();
    let started = Instant::now();
    let mut first_come = Promotion::default();
    first_come.apply(PromotionEvent::PromotionCreated {
        promotion_id: id,
        terms: terms(entries),
        seal: None,
    });
    for number in 1..=entries {
        first_come.apply(PromotionEvent::CouponGrabbed {
            coupon: Coupon {
                promotion_id: id,
                number,
                customer_id: CustomerId::parse(format!("customer-{number}")).expect("id"),
                discount,
                grabbed_at: opens,
            },
            remaining: entries - number,
        });
    }
    let grabbed = started.elapsed();
    let holders_bytes = live_bytes() - before;

    println!("| entries | coupons | entries in memory | per entry | every entry decided and applied | the draw decided | awards applied ({commits} commits) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {entries} | {coupons} | {:.1} MB | {:.0} B | {:.0} ms | {:.0} ms | {:.0} ms |",
        entries_bytes as f64 / 1e6,
        entries_bytes as f64 / f64::from(entries.max(1)),
        entered.as_secs_f64() * 1e3,
        decided.as_secs_f64() * 1e3,
        awarded.as_secs_f64() * 1e3,
    );
    println!();
    println!("Baseline, same run: the same {entries} customers as first-come holders: {:.1} MB ({:.0} B each), every grab applied in {:.0} ms",
        holders_bytes as f64 / 1e6,
        holders_bytes as f64 / f64::from(entries.max(1)),
        grabbed.as_secs_f64() * 1e3,
    );
}
