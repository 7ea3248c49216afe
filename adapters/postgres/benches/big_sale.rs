//! Cost as the work grows, on PostgreSQL: one big sale sold to the end, and
//! the queries under the tables it leaves behind.
//!
//! ```text
//! cargo bench -p seckill-postgres --bench big_sale                       # 10,000,000 coupons
//! cargo bench -p seckill-postgres --bench big_sale -- --coupons 1000000  # a shorter run
//! ```
//!
//! 1. **The sale:** one promotion of `--coupons` coupons, 1,024 closed-loop
//!    callers with fresh customers until it is sold out. Prints the rate in
//!    each tenth of the sale, and the time to sell out: the last tenth
//!    against the first says what a growing stream, holder set and tables
//!    cost.
//! 2. **A customer's coupons** (`SecKill::coupons_of`, what
//!    `GET /query/coupons/{customerId}` runs), for random holders among those
//!    rows, while 256 callers grab from another promotion.
//! 3. **The active promotions** (`SecKill::active_promotions`, what
//!    `GET /query/promotions` runs) with 10,000 promotions of which 100 are
//!    active and the rest cancelled, while 256 callers grab from the active
//!    ones.
//! 4. The query plans of both, `EXPLAIN (ANALYZE, BUFFERS)`.
//!
//! Printed, not asserted: a timing assertion would only measure the machine.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as ChronoDuration, Utc};
use clap::Parser;
use hdrhistogram::Histogram;
use seckill_app::{EngineConfig, SecKill, SecKillError};
use seckill_domain::{
    CouponCount, CustomerId, Discount, PromotionError, PromotionId, PromotionTerms,
};
use seckill_postgres::testing::PgFixture;
use seckill_testkit::Fixture;

// jemalloc, as the server (and the grab bench: see why there).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Big-sale benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Coupons in the big sale.
    #[arg(long, default_value_t = 10_000_000)]
    coupons: u64,
    /// Callers grabbing in the sale.
    #[arg(long, default_value_t = 1_024)]
    callers: usize,
    /// How long each query step measures, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let fixture = PgFixture::new().await;
    let seckill = SecKill::builder(fixture.store().await)
        .config(EngineConfig::default())
        .build()
        .expect("valid engine settings");

    let sale = seckill
        .create_promotion(terms(args.coupons))
        .await
        .expect("create")
        .id();
    big_sale(&seckill, sale, args.coupons, args.callers).await;

    let seconds = Duration::from_secs_f64(args.seconds);
    let busy = seckill
        .create_promotion(terms(10_000_000))
        .await
        .expect("create")
        .id();
    let holders = args.coupons;
    let coupons_of = while_grabbing(&seckill, &[busy], seconds, |seckill| async move {
        // Nearly every one of them holds a coupon (a few grabbed after the
        // last one went); nobody holds two.
        let who = customer(fastrand::u64(0..holders));
        let held = seckill.coupons_of(&who).await.expect("coupons");
        assert!(held.len() <= 1, "{who} holds {} coupons", held.len());
    })
    .await;
    report("coupons_of, one holder among the sale's rows", &coupons_of);

    let active = many_promotions(&seckill, 10_000, 100).await;
    let listed = while_grabbing(&seckill, &active, seconds, |seckill| async move {
        let views = seckill.active_promotions().await.expect("promotions");
        assert!(views.len() >= 100, "the active promotions are listed");
    })
    .await;
    report("active_promotions, 100 active of 10,101", &listed);

    let mut connection = fixture.connection().await;
    for (what, sql) in [
        (
            "coupons_of",
            format!(
                "EXPLAIN (ANALYZE, BUFFERS) {} ",
                include_str!("../sql/coupons_of.sql")
                    .replace("$1", &format!("'{}'", customer(holders / 2)))
            ),
        ),
        (
            "active_promotions",
            format!(
                "EXPLAIN (ANALYZE, BUFFERS) {}",
                include_str!("../sql/unfinished_promotions.sql")
            ),
        ),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(&without_comments(&sql))
            .fetch_all(&mut connection)
            .await
            .expect("EXPLAIN");
        println!("\nplan of {what}:\n```text\n{}\n```", plan.join("\n"));
    }
    seckill.shutdown().await;
}

/// Sells `coupons` to `callers` fresh customers each and prints the rate of
/// each tenth of the sale.
async fn big_sale(seckill: &SecKill, id: PromotionId, coupons: u64, callers: usize) {
    let next = Arc::new(AtomicU64::new(0));
    let granted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (seckill, next, granted) = (seckill.clone(), next.clone(), granted.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    match seckill.grab(id, customer(n)).await {
                        Ok(_) => {
                            granted.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(SecKillError::Rejected(PromotionError::SoldOut { .. })) => return,
                        Err(other) => panic!("grab {n}: {other}"),
                    }
                }
            })
        })
        .collect();
    // The time each tenth was reached, sampled every 10 ms.
    let tenth = coupons / 10;
    let mut reached = Vec::with_capacity(10);
    while reached.len() < 10 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = granted.load(Ordering::Relaxed);
        while reached.len() < 10 && now >= tenth * (reached.len() as u64 + 1) {
            reached.push(started.elapsed());
        }
    }
    for task in tasks {
        task.await.expect("caller");
    }
    let sold_out = started.elapsed();
    println!(
        "| tenth | grabs/s | ({coupons} coupons, {callers} callers, sold out in {:.1} s, {:.0} grabs/s overall) |",
        sold_out.as_secs_f64(),
        coupons as f64 / sold_out.as_secs_f64()
    );
    println!("|---:|---:|---|");
    let mut before = Duration::ZERO;
    let mut rates = Vec::new();
    for (i, at) in reached.iter().enumerate() {
        let rate = tenth as f64 / (*at - before).as_secs_f64();
        rates.push(rate);
        println!("| {} | {rate:.0} | |", i + 1);
        before = *at;
    }
    println!(
        "last tenth / first: {:.2}x; committed {} events in {} commits",
        rates[9] / rates[0],
        seckill.stats().committed_events,
        seckill.stats().commits
    );
}

/// Runs `query` in a loop on one task for `seconds` while 256 callers grab
/// from `promotions`, and returns the query's latencies.
async fn while_grabbing<F, Fut>(
    seckill: &SecKill,
    promotions: &[PromotionId],
    seconds: Duration,
    query: F,
) -> Histogram<u64>
where
    F: Fn(SecKill) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let stop = Arc::new(AtomicBool::new(false));
    // Fresh customers far above the sale's.
    let next = Arc::new(AtomicU64::new(1 << 40));
    let grabbers: Vec<_> = (0..256)
        .map(|i| {
            let (seckill, stop, next) = (seckill.clone(), stop.clone(), next.clone());
            let id = promotions[i % promotions.len()];
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    match seckill.grab(id, customer(n)).await {
                        Ok(_) | Err(SecKillError::Rejected(PromotionError::SoldOut { .. })) => {}
                        Err(other) => panic!("grab {n}: {other}"),
                    }
                }
            })
        })
        .collect();
    let mut latency = Histogram::new_with_bounds(1, 60_000_000, 2).expect("bounds");
    let started = Instant::now();
    while started.elapsed() < seconds {
        let t = Instant::now();
        query(seckill.clone()).await;
        let _ = latency.record(t.elapsed().as_micros() as u64);
    }
    stop.store(true, Ordering::Relaxed);
    for grabber in grabbers {
        grabber.await.expect("grabber");
    }
    latency
}

/// Creates `count` promotions, of which `active` stay open and the rest are
/// cancelled; returns the open ones.
async fn many_promotions(seckill: &SecKill, count: usize, active: usize) -> Vec<PromotionId> {
    let mut open = Vec::with_capacity(active);
    for wave in 0..count.div_ceil(100) {
        let created: Vec<_> = (0..100)
            .map(|i| {
                let seckill = seckill.clone();
                let keep = wave * 100 + i < active;
                tokio::spawn(async move {
                    let id = seckill
                        .create_promotion(terms(1_000_000))
                        .await
                        .expect("create")
                        .id();
                    if !keep {
                        seckill.cancel_promotion(id).await.expect("cancel");
                    }
                    (id, keep)
                })
            })
            .collect();
        for task in created {
            let (id, keep) = task.await.expect("create task");
            if keep {
                open.push(id);
            }
        }
    }
    open
}

fn report(what: &str, latency: &Histogram<u64>) {
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1_000.0;
    println!(
        "{what}: {} queries, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        latency.len(),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        latency.max() as f64 / 1_000.0
    );
}

/// The SQL files open with comments; EXPLAIN takes the statement alone.
fn without_comments(sql: &str) -> String {
    sql.lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn customer(n: u64) -> CustomerId {
    CustomerId::parse(format!("c{n}")).expect("valid id")
}

/// Open from a minute ago for a day.
fn terms(coupons: u64) -> PromotionTerms {
    let now = Utc::now();
    PromotionTerms::new(
        CouponCount::new(coupons).expect("coupons"),
        Discount::new(0.8).expect("discount"),
        now - ChronoDuration::minutes(1),
        now + ChronoDuration::days(1),
        None,
    )
    .expect("valid terms")
}
