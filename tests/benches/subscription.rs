//! The subscription benchmark: how fast a durable subscription reads the
//! global feed, and what following a sale live costs the sale.
//!
//! ```text
//! cargo bench -p seckill-tests --bench subscription                        # everything
//! cargo bench -p seckill-tests --bench subscription -- --workloads catchup --events 100000
//! ```
//!
//! * `catchup`: a new subscription from position 0 over `--events` stored
//!   events (PostgreSQL, seeded in bulk by SQL; memory, by appends), with a
//!   handler that does nothing: the runner's own rate, per batch size, and
//!   PostgreSQL's transactional delivery beside it.
//! * `live`: one hot promotion on PostgreSQL, 64 closed-loop grabbing tasks,
//!   without and then with a subscription following live; grabs/s of both
//!   runs, the subscription's events/s and the largest lag it showed.
//!
//! Printed, never asserted: a timing assertion would only measure the machine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Parser;
use cqrs_es::DomainEvent;
use seckill_app::{
    Backend, EngineConfig, EventHandler, EventStore, HandlerError, PositionedEvent, SecKill,
    SubscriptionLag,
};
use seckill_domain::testing::{customer, terms};
use seckill_domain::PromotionEvent;
use seckill_memory::MemoryStore;
use seckill_postgres::{PgStore, TransactionalHandler};
use seckill_tests::postgres::PgFixture;
use seckill_tests::suite::service_with;
use sqlx::PgConnection;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Subscription benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Which workloads to run, comma-separated: catchup, live.
    #[arg(long, value_delimiter = ',', default_values_t = ["catchup", "live"].map(String::from).to_vec())]
    workloads: Vec<String>,
    /// Events stored before the catch-up.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// How long each live run grabs, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Counts what it is handed, and nothing else.
#[derive(Clone, Default)]
struct Count(Arc<AtomicU64>);

#[async_trait]
impl EventHandler for Count {
    async fn handle(&self, _: &PositionedEvent) -> Result<(), HandlerError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn handle_batch(
        &self,
        events: &[PositionedEvent],
    ) -> Result<(), seckill_app::BatchFailure> {
        self.0.fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[async_trait]
impl TransactionalHandler for Count {
    async fn handle(&self, _: &mut PgConnection, _: &PositionedEvent) -> Result<(), HandlerError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn service(store: Arc<dyn Backend>) -> SecKill {
    service_with(store, EngineConfig::default()).0
}

/// Waits until `name`'s checkpoint reaches `head`, and returns how long it took.
async fn until_caught_up(seckill: &SecKill, name: &str, head: u64, started: Instant) -> Duration {
    loop {
        if let Ok(Some(lag)) = seckill.subscription_lag(name).await {
            if lag.position >= head {
                return started.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How a catch-up run delivers.
enum How {
    AtLeastOnce,
    Transactional(PgStore),
}

async fn catch_up(label: &str, seckill: &SecKill, head: u64, batch: usize, how: How) {
    let count = Count::default();
    let name = format!("catch-up-{batch}-{}", matches!(how, How::AtLeastOnce));
    let builder = seckill.subscription(&name).batch_size(batch);
    let started = Instant::now();
    let subscription = match how {
        How::AtLeastOnce => builder.run(count.clone()),
        How::Transactional(store) => builder.run_with(store.transactional(count.clone())),
    }
    .unwrap();
    let took = until_caught_up(seckill, &name, head, started).await;
    subscription.stop().await;
    let handled = count.0.load(Ordering::Relaxed);
    println!(
        "| {label} | {batch} | {handled} | {:.1} s | {:.0} |",
        took.as_secs_f64(),
        handled as f64 / took.as_secs_f64()
    );
}

/// Stores `events` CouponGrabbed rows, 1,000 per promotion, in one statement.
async fn seed_postgres(store: &PgStore, events: u64) {
    let seckill = service(Arc::new(store.clone()));
    let promotion = seckill.create_promotion(terms(10)).await.unwrap();
    seckill.grab(promotion, customer("sample")).await.unwrap();
    let sample = seckill
        .events_after(0, 10)
        .await
        .unwrap()
        .pop()
        .unwrap()
        .event;
    let PromotionEvent::CouponGrabbed { .. } = &sample else {
        panic!("the sample is a grab");
    };
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'Promotion', p.id, s, $1, $2, $3::json, '{}' \
         FROM (SELECT gen_random_uuid()::text AS id FROM generate_series(1, $4::bigint)) p, generate_series(1, 1000) s",
    )
    .bind(sample.event_type())
    .bind(sample.event_version())
    .bind(serde_json::to_string(&sample).unwrap())
    .bind(i64::try_from(events.div_ceil(1000)).unwrap())
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query("ANALYZE events")
        .execute(store.pool())
        .await
        .unwrap();
}

async fn catchup(events: u64) {
    println!("\n### Catch-up from position 0 over {events} events\n");
    println!("| backend, delivery | batch | events | took | events/s |");
    println!("|---|---:|---:|---:|---:|");

    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let seeding = Instant::now();
    seed_postgres(&store, events).await;
    eprintln!(
        "seeded {events} events in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let seckill = service(Arc::new(store.clone()));
    let head = store.head_position().await.unwrap();
    for batch in [256, 1_000] {
        catch_up(
            "postgres, at least once",
            &seckill,
            head,
            batch,
            How::AtLeastOnce,
        )
        .await;
    }
    let how = How::Transactional(store.clone());
    catch_up("postgres, transactional", &seckill, head, 1_000, how).await;
    drop(seckill);
    drop(fixture);

    let memory = Arc::new(MemoryStore::new());
    let seckill = service(memory.clone());
    let per_promotion = 1_000;
    for _ in 0..events.div_ceil(per_promotion) {
        let promotion = seckill
            .create_promotion(terms(per_promotion))
            .await
            .unwrap();
        let grabs: Vec<_> = (0..per_promotion - 1)
            .map(|i| {
                let seckill = seckill.clone();
                async move { seckill.grab(promotion, customer(format!("m{i}"))).await }
            })
            .collect();
        futures::future::join_all(grabs).await;
    }
    let head = memory.head_position().await.unwrap();
    for batch in [256, 1_000] {
        catch_up(
            "memory, at least once",
            &seckill,
            head,
            batch,
            How::AtLeastOnce,
        )
        .await;
    }
}

/// One live run: 64 tasks grab for `seconds`; with a subscription following
/// if `follow`. Returns grabs/s, and the subscription's events/s and worst lag.
async fn live_run(seconds: f64, follow: bool) -> (f64, Option<(f64, u64)>) {
    let fixture = PgFixture::new().await;
    let seckill = service(Arc::new(fixture.pg_store().clone()));
    let promotion = seckill.create_promotion(terms(100_000_000)).await.unwrap();
    let count = Count::default();
    let subscription = follow.then(|| seckill.subscription("live").run(count.clone()).unwrap());
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let granted = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|task| {
            let (seckill, granted) = (seckill.clone(), granted.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    i += 1;
                    if seckill
                        .grab(promotion, customer(format!("t{task}-{i}")))
                        .await
                        .is_ok()
                    {
                        granted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut worst: Option<SubscriptionLag> = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if follow {
            if let Ok(Some(lag)) = seckill.subscription_lag("live").await {
                if worst.is_none_or(|w| lag.behind() > w.behind()) {
                    worst = Some(lag);
                }
            }
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = granted.load(Ordering::Relaxed) as f64 / elapsed;
    let followed = subscription.map(|_| {
        let events = count.0.load(Ordering::Relaxed) as f64;
        (events / elapsed, worst.map_or(0, |w| w.behind()))
    });
    (rate, followed)
}

async fn live(seconds: f64) {
    println!(
        "\n### Following a hot promotion live (PostgreSQL, 64 grabbing tasks, {seconds} s a run)\n"
    );
    println!("| run | grabs/s | subscription events/s | worst lag (positions) |");
    println!("|---|---:|---:|---:|");
    for (label, follow) in [
        ("without", false),
        ("with a subscription", true),
        ("without, again", false),
    ] {
        let (rate, followed) = live_run(seconds, follow).await;
        match followed {
            Some((events, lag)) => println!("| {label} | {rate:.0} | {events:.0} | {lag} |"),
            None => println!("| {label} | {rate:.0} | – | – |"),
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.workloads.iter().any(|w| w == "catchup") {
        catchup(args.events).await;
    }
    if args.workloads.iter().any(|w| w == "live") {
        live(args.seconds).await;
    }
}
