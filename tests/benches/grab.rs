//! The grab benchmark: throughput and latency of the grab path, in-process
//! (no HTTP), for every backend and for the naive cqrs-es path, in one run so
//! the ratios are fair on a noisy machine.
//!
//! ```text
//! cargo bench -p seckill-tests --bench grab                      # everything
//! cargo bench -p seckill-tests --bench grab -- --paths memory    # one path
//! cargo bench -p seckill-tests --bench grab -- --seconds 2       # shorter runs
//! cargo bench -p seckill-tests --bench grab -- --paths postgres --workloads hot1024,entries1024,draw1m
//! ```
//!
//! Each workload runs closed-loop callers (Tokio tasks) that grab with fresh
//! customer ids until the time or grab budget runs out, then prints one
//! markdown table row: grabs/s and p50/p99/p99.9 latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as ChronoDuration, Utc};
use clap::Parser;
use seckill_app::clock::Clock;
use seckill_app::engine::EngineStats;
use seckill_app::testing::FixedClock;
use seckill_app::{Backend, EngineConfig, SecKill, SecKillError};
use seckill_domain::{Allocation, CouponCount, CustomerId, Discount, PromotionId, PromotionTerms};
use seckill_memory::MemoryStore;
use seckill_postgres::testing::PgFixture;

// The crate root is this file, so the module's path is given.
#[path = "grab/callers.rs"]
mod callers;

use callers::{customer_id, resident_mb, run, Grabber};

// jemalloc, as the server: the grab path allocates small objects on one
// thread and frees them on another, where glibc's malloc is slow. Not
// mimalloc: with its default purge delay (10 ms) it handed freed pages back
// to the kernel and faulted them in again, zeroed, so the same in-memory
// workload ran at 0.47-0.70x its rate with purging off, in most runs
// (docs/benchmarks.md, "deciding ahead").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Grab-path benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Which paths to measure, comma-separated: memory, postgres, naive.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["memory".to_owned(), "postgres".to_owned(), "naive".to_owned()])]
    paths: Vec<String>,
    /// Longest time one workload runs, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Which workloads to run, comma-separated: hot1, hot64, hot1024,
    /// hot1024-serial (hot1024 without deciding ahead), spread,
    /// spread-alone (spread without group commit across promotions),
    /// active10k (10,000 promotions at once), active10k-alone (without
    /// group commit), storm, entries1024 (entering one hot draw), draw1m
    /// (a draw among 1,000,000 entries), and (PostgreSQL only) cold1m.
    #[arg(long, value_delimiter = ',', default_values_t = ["hot1", "hot64", "hot1024", "hot1024-serial", "spread", "spread-alone", "active10k", "storm", "entries1024", "draw1m", "cold1m"].map(String::from).to_vec())]
    workloads: Vec<String>,
    /// `EngineConfig::max_commit_group` for the grouped workloads (spread,
    /// active10k): most promotions' commits in one group.
    #[arg(long, default_value_t = EngineConfig::default().max_commit_group)]
    max_commit_group: usize,
    /// Most grabs one workload attempts.
    #[arg(long, default_value_t = 1_000_000)]
    budget: u64,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

fn terms(coupons: u64) -> PromotionTerms {
    let now = Utc::now() - ChronoDuration::seconds(1);
    PromotionTerms::new(
        CouponCount::new(coupons).expect("valid count"),
        Discount::new(0.5).expect("valid discount"),
        now,
        now + ChronoDuration::hours(1),
        None,
    )
    .expect("valid terms")
}

/// The textbook path: cqrs-es's `CqrsFramework` over postgres-es, which
/// loads the whole stream, decides, and inserts one row per event for every
/// command, retrying at once when another caller committed first.
#[derive(Clone)]
struct Naive {
    cqrs: Arc<postgres_es::PostgresCqrs<seckill_domain::Promotion>>,
    conflicts: Arc<AtomicU64>,
}

impl Naive {
    async fn execute(
        &self,
        promotion: PromotionId,
        command: seckill_domain::PromotionCommand,
    ) -> Result<(), SecKillError> {
        loop {
            match self
                .cqrs
                .execute(&promotion.to_string(), command.clone())
                .await
            {
                Ok(()) => return Ok(()),
                Err(cqrs_es::AggregateError::AggregateConflict) => {
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                }
                Err(cqrs_es::AggregateError::UserError(error)) => {
                    return Err(SecKillError::Rejected(error))
                }
                Err(other) => {
                    return Err(SecKillError::Storage(seckill_app::StoreError::backend(
                        other.to_string(),
                    )))
                }
            }
        }
    }
}

impl Grabber for Naive {
    async fn grab(&self, promotion: PromotionId, customer: CustomerId) -> Result<(), SecKillError> {
        let command = seckill_domain::PromotionCommand::GrabCoupon {
            customer_id: customer,
            at: Utc::now(),
        };
        self.execute(promotion, command).await
    }
}

fn engine(backend: Arc<dyn Backend>) -> SecKill {
    engine_with(backend, EngineConfig::default())
}

fn engine_with(backend: Arc<dyn Backend>, config: EngineConfig) -> SecKill {
    SecKill::builder(backend)
        .config(config)
        .build()
        .expect("valid engine settings")
}

/// The standard workloads against one engine path. `fresh` gives a new,
/// empty backend per workload, so one workload's data never slows the next.
async fn engine_workloads<F, Fut>(path: &str, args: &Args, fresh: F) -> Vec<String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Backend>>,
{
    let limit = Duration::from_secs_f64(args.seconds);
    let budget = args.budget;
    let wanted = |name: &str| args.workloads.iter().any(|w| w == name);
    let mut rows = Vec::new();
    // `hot1024-serial` is `hot1024` with each writer waiting for its commit
    // before deciding more (`decide_ahead` off): its baseline, in the same run.
    for (workload, callers, decide_ahead, label) in [
        ("hot1", 1usize, true, ""),
        ("hot64", 64, true, ""),
        ("hot1024", 1_024, true, ""),
        ("hot1024-serial", 1_024, false, ", not deciding ahead"),
    ] {
        if !wanted(workload) {
            continue;
        }
        let config = EngineConfig::default().with_decide_ahead(decide_ahead);
        let seckill = engine_with(fresh().await, config);
        let id = seckill
            .create_promotion(terms(1_000_000))
            .await
            .expect("create")
            .id();
        let outcome = run(&seckill, &[id], callers, budget, limit).await;
        // The batch size the append bench's ceiling runs should use.
        let stats = seckill.stats();
        let per_commit = stats.committed_events as f64 / stats.commits.max(1) as f64;
        rows.push(outcome.row(
            path,
            &format!("1 hot promotion, {callers} callers{label} ({per_commit:.0} events a commit)"),
        ));
        seckill.shutdown().await;
    }
    // `spread-alone` is `spread` with group commit across promotions off:
    // its baseline, in the same run.
    for (workload, max_commit_group, label) in [
        ("spread", args.max_commit_group, ""),
        ("spread-alone", 1, ", each promotion appends alone"),
    ] {
        if !wanted(workload) {
            continue;
        }
        let config = EngineConfig::default().with_max_commit_group(max_commit_group);
        let seckill = engine_with(fresh().await, config);
        let mut ids = Vec::new();
        for _ in 0..100 {
            ids.push(
                seckill
                    .create_promotion(terms(10_000))
                    .await
                    .expect("create")
                    .id(),
            );
        }
        let before = seckill.stats();
        let outcome = run(&seckill, &ids, 1_000, budget, limit).await;
        rows.push(outcome.row(
            path,
            &format!(
                "100 promotions x 10,000, 1,000 callers{label} ({})",
                commit_shape(&before, &seckill.stats())
            ),
        ));
        seckill.shutdown().await;
    }
    // `active10k-alone`: the same without group commit across promotions.
    for (workload, max_commit_group, label) in [
        ("active10k", args.max_commit_group, ""),
        ("active10k-alone", 1, ", each promotion appends alone"),
    ] {
        if !wanted(workload) {
            continue;
        }
        // Many sales at once: a writer, a queue and a state for each, and a
        // caller on every one of them.
        let config = EngineConfig::default().with_max_commit_group(max_commit_group);
        let seckill = engine_with(fresh().await, config);
        let ids = create_many(&seckill, 10_000, 1_000).await;
        let before = seckill.stats();
        let outcome = run(&seckill, &ids, 10_000, budget, limit).await;
        let stats = seckill.stats();
        rows.push(outcome.row(
            path,
            &format!(
                "10,000 promotions x 1,000, 10,000 callers{label} ({} writers alive, {})",
                stats.writers,
                commit_shape(&before, &stats)
            ),
        ));
        seckill.shutdown().await;
    }
    // `entries1024`: customers entering one hot draw, as `hot1024` grabs one
    // hot promotion; `hot1024` in the same run is its baseline.
    if wanted("entries1024") {
        let seckill = engine(fresh().await);
        let terms = terms(1_000_000)
            .with_allocation(Allocation::Draw {
                closes_at: Utc::now() + ChronoDuration::minutes(50),
            })
            .expect("a close within the sale");
        let id = seckill.create_promotion(terms).await.expect("create").id();
        let before = seckill.stats();
        let outcome = run(&Entrant(seckill.clone()), &[id], 1_024, budget, limit).await;
        rows.push(outcome.row(
            path,
            &format!(
                "1 hot draw, 1,024 callers entering ({})",
                commit_shape(&before, &seckill.stats())
            ),
        ));
        seckill.shutdown().await;
    }
    if wanted("draw1m") {
        draw_million(path, fresh().await).await;
    }
    if wanted("storm") {
        let seckill = engine(fresh().await);
        let id = seckill
            .create_promotion(terms(1))
            .await
            .expect("create")
            .id();
        let winner = CustomerId::parse("winner").expect("valid id");
        seckill.grab(id, winner).await.expect("the only coupon");
        let outcome = run(&seckill, &[id], 64, budget, limit * 4).await;
        rows.push(outcome.row(path, "sold-out storm, 1,000,000 grabs, 64 callers"));
        seckill.shutdown().await;
    }
    rows
}

/// Entering a draw, as the harness's callers do it.
#[derive(Clone)]
struct Entrant(SecKill);

impl Grabber for Entrant {
    async fn grab(&self, promotion: PromotionId, customer: CustomerId) -> Result<(), SecKillError> {
        self.0.enter_draw(promotion, customer).await.map(drop)
    }
}

/// A draw of 100,000 coupons among 1,000,000 entries (entered by 1,024
/// callers on a clock that stands still), then the clock moved to the
/// close: prints how long from the close until every coupon is committed
/// and the promotion reads drawn.
async fn draw_million(path: &str, backend: Arc<dyn Backend>) {
    let clock = Arc::new(FixedClock::new(Utc::now()));
    let seckill = SecKill::builder(backend)
        .clock(clock.clone())
        .build()
        .expect("valid engine settings");
    let opens = clock.now();
    let closes_at = opens + ChronoDuration::minutes(10);
    let terms = PromotionTerms::new(
        CouponCount::new(100_000).expect("valid count"),
        Discount::new(0.5).expect("valid discount"),
        opens - ChronoDuration::seconds(1),
        opens + ChronoDuration::hours(1),
        None,
    )
    .and_then(|terms| terms.with_allocation(Allocation::Draw { closes_at }))
    .expect("valid terms");
    let id = seckill.create_promotion(terms).await.expect("create").id();
    let entered = run(
        &Entrant(seckill.clone()),
        &[id],
        1_024,
        1_000_000,
        Duration::from_secs(900),
    )
    .await;
    let rss = resident_mb();
    let started = Instant::now();
    clock.set(closes_at);
    let view = loop {
        let view = seckill.promotion(id).await.expect("the promotion");
        if view.summary.finish_reason.is_some() {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let drawn_in = started.elapsed();
    println!(
        "draw1m, {path}: {} entries ({:.0}/s, {} errors), RSS {rss:.0} MB; from the close to {} coupons committed: {:.0} ms",
        entered.granted,
        entered.granted as f64 / entered.elapsed.as_secs_f64(),
        entered.errors,
        view.summary.granted(),
        drawn_in.as_secs_f64() * 1e3
    );
    seckill.shutdown().await;
}

/// Events a commit and, when the committer grouped them, commits a group,
/// between `before` and `after` (so the promotions' creations, committed
/// before the run, do not count).
fn commit_shape(before: &EngineStats, after: &EngineStats) -> String {
    let commits = after.commits - before.commits;
    let events = after.committed_events - before.committed_events;
    let per_commit = events as f64 / commits.max(1) as f64;
    match after.commit_groups - before.commit_groups {
        0 => format!("{per_commit:.0} events a commit"),
        groups => format!(
            "{per_commit:.1} events a commit, {:.1} commits a group",
            commits as f64 / groups as f64
        ),
    }
}

/// Creates `count` promotions of `coupons` each, 100 at a time (so their
/// creations share group commits), and returns their ids.
async fn create_many(seckill: &SecKill, count: usize, coupons: u64) -> Vec<PromotionId> {
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let wave: Vec<_> = (0..100.min(count - ids.len()))
            .map(|_| {
                let seckill = seckill.clone();
                tokio::spawn(async move { seckill.create_promotion(terms(coupons)).await })
            })
            .collect();
        for created in wave {
            let view = created.await.expect("create task").expect("create");
            ids.push(view.id());
        }
    }
    ids
}

/// The naive path on its own fresh database, one hot promotion.
async fn naive_workloads(args: &Args, keep: &mut Vec<PgFixture>) -> Vec<String> {
    let limit = Duration::from_secs_f64(args.seconds);
    let mut rows = Vec::new();
    for callers in [1usize, 64, 1_024] {
        if !args.workloads.iter().any(|w| *w == format!("hot{callers}")) {
            continue;
        }
        let fixture = PgFixture::new().await;
        let pool = fixture.pg_store().pool().clone();
        let naive = Naive {
            cqrs: Arc::new(postgres_es::postgres_cqrs(pool, Vec::new(), ())),
            conflicts: Arc::new(AtomicU64::new(0)),
        };
        let id = PromotionId::from_uuid(uuid::Uuid::new_v4());
        let create = seckill_domain::PromotionCommand::CreatePromotion {
            promotion_id: id,
            terms: terms(1_000_000),
            at: Utc::now(),
            seal: None,
        };
        naive.execute(id, create).await.expect("create");
        let outcome = run(&naive, &[id], callers, args.budget, limit).await;
        let conflicts =
            naive.conflicts.load(Ordering::Relaxed) as f64 / outcome.elapsed.as_secs_f64();
        rows.push(outcome.row(
            "naive cqrs-es + postgres-es",
            &format!("1 hot promotion, {callers} callers ({conflicts:.0} conflicts/s)"),
        ));
        keep.push(fixture);
    }
    rows
}

/// How long a fresh process takes to serve its first grab of a promotion
/// that already has `grabs` coupons granted: from a snapshot, and by
/// replaying every event.
async fn cold_start(grabs: u64, keep: &mut Vec<PgFixture>) -> Vec<String> {
    let fixture = PgFixture::new().await;
    let writer = engine(Arc::new(fixture.open().await));
    let id = writer
        .create_promotion(terms(grabs + 1_000))
        .await
        .expect("create")
        .id();
    let filled = run(&writer, &[id], 1_024, grabs, Duration::from_secs(3_600)).await;
    assert_eq!(filled.granted, grabs, "every grab of the fill succeeds");
    writer.shutdown().await; // saves the final snapshot
    let mut rows = Vec::new();
    for with_snapshot in [true, false] {
        // The second start comes after the first one's grab, whose writer
        // snapshots again as it stops: delete that one too.
        if !with_snapshot {
            sqlx::query("DELETE FROM snapshots")
                .execute(fixture.pg_store().pool())
                .await
                .expect("delete snapshots");
        }
        let reader = engine(Arc::new(fixture.open().await));
        let started = Instant::now();
        let newcomer = customer_id(u64::MAX - u64::from(with_snapshot));
        let coupon = reader
            .grab(id, newcomer)
            .await
            .expect("first grab after start");
        let took = started.elapsed();
        assert!(u64::from(coupon.number) > grabs);
        let how = if with_snapshot {
            "from the snapshot"
        } else {
            "replaying every event"
        };
        rows.push(format!(
            "| engine, PostgreSQL | cold start with {grabs} grabs, {how} | first grab after {:.0} ms | | | | | | {:.0} |",
            took.as_secs_f64() * 1e3,
            resident_mb()
        ));
        reader.shutdown().await;
    }
    keep.push(fixture);
    rows
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut rows = Vec::new();
    for path in &args.paths {
        match path.as_str() {
            "memory" => {
                rows.extend(
                    engine_workloads("engine, in-memory", &args, || async {
                        Arc::new(MemoryStore::new()) as Arc<dyn Backend>
                    })
                    .await,
                );
            }
            "postgres" => {
                let mut keep = Vec::new();
                {
                    let fixtures = std::sync::Mutex::new(&mut keep);
                    rows.extend(
                        engine_workloads("engine, PostgreSQL", &args, || async {
                            let fixture = PgFixture::new().await;
                            let store: Arc<dyn Backend> = Arc::new(fixture.open().await);
                            fixtures.lock().expect("unpoisoned").push(fixture);
                            store
                        })
                        .await,
                    );
                }
                if args.workloads.iter().any(|w| w == "cold1m") {
                    rows.extend(cold_start(1_000_000, &mut keep).await);
                }
            }
            "naive" => {
                let mut keep = Vec::new();
                rows.extend(naive_workloads(&args, &mut keep).await);
            }
            other => eprintln!("unknown path {other:?}; skipped"),
        }
    }
    println!("| path | workload | granted/s | rejected/s | errors | p50 ms | p99 ms | p99.9 ms | RSS MB |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
}
