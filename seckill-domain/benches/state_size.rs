//! How much memory a promotion's state takes: the live heap bytes of a
//! `Promotion` holding N granted coupons, from jemalloc's own statistics
//! (resident-set sizes include allocator caches and whatever else the
//! process did, so they cannot answer this). Also the size of its
//! snapshot as JSON, how long replaying and parsing take, the slowest single
//! apply (a grab that made the holder index grow), and what a snapshot copy
//! costs the writer: one `Promotion::clone` (taken between batches, for each
//! background snapshot) and the next grabs applied while that copy lives
//! (a layout that shares parts with the copy pays for them then).
//!
//! ```text
//! cargo bench -p seckill-domain --bench state_size                 # 1,000,000 holders
//! cargo bench -p seckill-domain --bench state_size -- 100000       # another count
//! ```
//!
//! Customer ids are `customer-<n>` (10 to 15 bytes), like the grab bench's.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use cqrs_es::Aggregate;
use seckill_domain::{
    Coupon, CouponCount, CustomerId, Discount, Promotion, PromotionEvent, PromotionId,
    PromotionTerms,
};
#[path = "heap/mod.rs"]
mod heap;

use heap::live_bytes;

/// How many copies the clone time is taken from.
const CLONES: usize = 7;

/// How many grabs are timed after a copy: enough to touch every table of a
/// split holder index several times over.
const AFTER_COPY: u32 = 5_000;

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

fn main() {
    let holders: u32 = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .map_or(1_000_000, |arg| arg.parse().expect("a number of holders"));
    let id = PromotionId::from_uuid(uuid::Uuid::from_u128(0x5ec));
    let opens = Utc::now();
    let discount = Discount::new(0.5).expect("discount");
    let terms = PromotionTerms::new(
        CouponCount::new(u64::from(holders)).expect("count"),
        discount,
        opens,
        opens + Duration::hours(1),
        None,
    )
    .expect("terms");

    let before = live_bytes();
    let started = Instant::now();
    let mut promotion = Promotion::default();
    promotion.apply(PromotionEvent::PromotionCreated {
        promotion_id: id,
        terms,
        seal: None,
    });
    let mut slowest_apply = std::time::Duration::ZERO;
    for number in 1..=holders {
        let event = grabbed(id, discount, format!("customer-{number}"), number, opens);
        let applying = Instant::now();
        promotion.apply(event);
        slowest_apply = slowest_apply.max(applying.elapsed());
    }
    let replayed = started.elapsed();
    let state = live_bytes() - before;

    let started = Instant::now();
    let json = serde_json::to_string(&promotion).expect("snapshot JSON");
    let serialised = started.elapsed();
    let started = Instant::now();
    let parsed: Promotion = serde_json::from_str(&json).expect("parse the snapshot");
    let parse = started.elapsed();
    assert_eq!(parsed, promotion, "the snapshot round-trips");
    drop(parsed);

    // The fastest and the median of a few copies: the clones are kept until
    // the end, so dropping one (which the writer leaves to the snapshot task)
    // is not timed with it.
    let mut clones = Vec::with_capacity(CLONES);
    let mut clone_times = Vec::with_capacity(CLONES);
    for _ in 0..CLONES {
        let started = Instant::now();
        clones.push(promotion.clone());
        clone_times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    clone_times.sort_by(f64::total_cmp);
    drop(clones);

    // The grabs after a copy, while it is still being saved.
    let copy = promotion.clone();
    let mut after_copy = std::time::Duration::ZERO;
    let mut slowest_after_copy = std::time::Duration::ZERO;
    for late in 1..=AFTER_COPY {
        let number = holders + late;
        let event = grabbed(id, discount, format!("late-{late}"), number, opens);
        let applying = Instant::now();
        promotion.apply(event);
        let took = applying.elapsed();
        after_copy += took;
        slowest_after_copy = slowest_after_copy.max(took);
    }
    drop(copy);

    println!("| holders | state in memory | per holder | snapshot JSON | apply every event | serialise snapshot | parse snapshot |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {holders} | {:.1} MB | {:.0} B | {:.1} MB | {:.0} ms | {:.0} ms | {:.0} ms |",
        mb(state),
        state as f64 / f64::from(holders.max(1)),
        mb(json.len()),
        replayed.as_secs_f64() * 1e3,
        serialised.as_secs_f64() * 1e3,
        parse.as_secs_f64() * 1e3,
    );
    println!();
    println!("| holders | slowest apply | clone (min / median of {CLONES}) | {AFTER_COPY} grabs after a clone (all / slowest) |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {holders} | {:.2} ms | {:.3} / {:.3} ms | {:.2} ms / {:.0} µs |",
        slowest_apply.as_secs_f64() * 1e3,
        clone_times[0],
        clone_times[CLONES / 2],
        after_copy.as_secs_f64() * 1e3,
        slowest_after_copy.as_secs_f64() * 1e6,
    );
}

/// Customer `customer` took coupon `number`, `number` µs after `opens`.
fn grabbed(
    id: PromotionId,
    discount: Discount,
    customer: String,
    number: u32,
    opens: DateTime<Utc>,
) -> PromotionEvent {
    PromotionEvent::CouponGrabbed {
        coupon: Coupon {
            promotion_id: id,
            number,
            customer_id: CustomerId::parse(customer).expect("customer id"),
            discount,
            grabbed_at: opens + Duration::microseconds(i64::from(number)),
        },
        remaining: 0,
    }
}
