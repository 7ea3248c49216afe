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
//!   without a follower, with a counting subscription, and with the NATS
//!   JetStream publisher (needs nats-server at `NATS_URL`), in ABBA order,
//!   twice; grabs/s of each run against the median without, the follower's
//!   events/s and the worst lag it showed, in positions and in time, and the
//!   CPU that this process, the run's PostgreSQL backends and nats-server
//!   spent per 1,000 grabs (from `/proc`).
//!
//! Printed, never asserted: a timing assertion would only measure the machine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Parser;
use cqrs_es::DomainEvent;
use seckill_app::subscription::{EventHandler, HandlerError};
use seckill_app::{Backend, EngineConfig, EventStore, PositionedEvent, SecKill};
use seckill_domain::testing::{customer, terms};
use seckill_domain::PromotionEvent;
use seckill_memory::MemoryStore;
use seckill_nats::testing::NatsFixture;
use seckill_nats::Publisher;
use seckill_postgres::testing::PgFixture;
use seckill_postgres::{PgStore, TransactionalHandler};
use seckill_testkit::suite::service_with;
use sqlx::PgConnection;

// jemalloc, as the server (and the grab bench: see why there).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    ) -> Result<(), seckill_app::subscription::BatchFailure> {
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

/// Stores `events` CouponGrabbed rows, 1,000 per promotion, in one statement
/// on a connection of its own (the store's pool cuts statements at 5 s); it
/// starts with the same 5 s, hence `SET statement_timeout = 0`.
async fn seed_postgres(fixture: &PgFixture, store: &PgStore, events: u64) {
    let seckill = service(Arc::new(store.clone()));
    let promotion = seckill.create_promotion(terms(10)).await.unwrap().id();
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
    let mut seeding = fixture.connection().await;
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut seeding)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'Promotion', p.id, s, $1, $2, $3::json, '{}' \
         FROM (SELECT gen_random_uuid()::text AS id FROM generate_series(1, $4::bigint)) p, generate_series(1, 1000) s",
    )
    .bind(sample.event_type())
    .bind(sample.event_version())
    .bind(serde_json::to_string(&sample).unwrap())
    .bind(i64::try_from(events.div_ceil(1000)).unwrap())
    .execute(&mut seeding)
    .await
    .unwrap();
    sqlx::query("ANALYZE events")
        .execute(&mut seeding)
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
    seed_postgres(&fixture, &store, events).await;
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
            .unwrap()
            .id();
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

/// What follows the sale in a live run.
#[derive(Clone, Copy, PartialEq)]
enum Follower {
    Nobody,
    /// A subscription whose handler only counts.
    Counting,
    /// The NATS JetStream publisher, as `seckill-server --nats-url` runs it.
    Nats,
}

/// How one live run went.
struct Live {
    grabs_per_second: f64,
    /// Events the subscription handled, per second.
    events_per_second: f64,
    /// The most positions it was behind, as sampled every 100 ms.
    worst_behind: u64,
    /// The longest time an event waited: from the sample whose head first
    /// passed it to the sample whose checkpoint did.
    worst_delay: Duration,
    /// CPU spent while the tasks grabbed, per 1,000 grabs.
    cpu: Cpu,
}

/// CPU milliseconds, by who spent them: this process (engine, follower,
/// clients), the PostgreSQL backends of the run's database, and nats-server.
#[derive(Clone, Copy, Default)]
struct Cpu {
    bench: f64,
    postgres: f64,
    nats: f64,
}

impl Cpu {
    /// What every process has spent so far, from `/proc` (Linux; zeros
    /// elsewhere). Backends of other databases (other tests on the same
    /// server) are not counted; PostgreSQL's shared background processes
    /// are not either.
    fn now(database: &str) -> Self {
        let mut cpu = Self::default();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return cpu;
        };
        let own = std::process::id().to_string();
        let marker = format!(" {database} ");
        for entry in entries.flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let comm = stat
                .split_once(" (")
                .and_then(|(_, rest)| rest.split_once(')'))
                .map(|(comm, _)| comm);
            let who = match comm {
                _ if pid == own => &mut cpu.bench,
                Some("nats-server") => &mut cpu.nats,
                Some("postgres") => {
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    if !String::from_utf8_lossy(&cmdline).contains(&marker) {
                        continue;
                    }
                    &mut cpu.postgres
                }
                _ => continue,
            };
            *who += ticks_ms(&stat);
        }
        cpu
    }

    /// `later - self`, per 1,000 of `grabs`.
    fn per_thousand(self, later: Self, grabs: u64) -> Self {
        let per = |a: f64, b: f64| (b - a) * 1_000.0 / grabs.max(1) as f64;
        Self {
            bench: per(self.bench, later.bench),
            postgres: per(self.postgres, later.postgres),
            nats: per(self.nats, later.nats),
        }
    }

    fn total(&self) -> f64 {
        self.bench + self.postgres + self.nats
    }
}

/// A `/proc/<pid>/stat` line's user plus system time, in milliseconds
/// (clock ticks of 10 ms, Linux's USER_HZ on every common build).
fn ticks_ms(stat: &str) -> f64 {
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // After the command: state is field 0, utime 11, stime 12.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) * 10.0
}

/// One live run: 64 tasks grab for `seconds`, with `follower` following.
async fn live_run(seconds: f64, follower: Follower) -> Live {
    let fixture = PgFixture::new().await;
    let database = fixture
        .url()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let seckill = service(Arc::new(fixture.pg_store().clone()));
    let promotion = seckill
        .create_promotion(terms(10_000_000))
        .await
        .unwrap()
        .id();
    let nats = match follower {
        Follower::Nats => Some(NatsFixture::new().await),
        _ => None,
    };
    let subscription = match (follower, &nats) {
        (Follower::Nobody, _) => None,
        (Follower::Nats, Some(nats)) => {
            let publisher = Publisher::new(nats.client(), nats.settings()).unwrap();
            Some(seckill.subscription("live").run(publisher).unwrap())
        }
        _ => Some(seckill.subscription("live").run(Count::default()).unwrap()),
    };
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let granted = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|task| {
            let (seckill, granted) = (seckill.clone(), granted.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    i += 1;
                    let customer = customer(format!("t{task}-{i}"));
                    if seckill.grab(promotion, customer).await.is_ok() {
                        granted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let cpu_before = Cpu::now(&database);
    // (when, head) of every sample: an event at position p was readable by
    // the first sample whose head reached p.
    let mut heads: Vec<(Instant, u64)> = Vec::new();
    let (mut worst_behind, mut worst_delay) = (0, Duration::ZERO);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if subscription.is_none() {
            continue;
        }
        let Ok(Some(lag)) = seckill.subscription_lag("live").await else {
            continue;
        };
        let now = Instant::now();
        heads.push((now, lag.head));
        worst_behind = worst_behind.max(lag.behind());
        // The oldest event not yet handled: the first one after the checkpoint.
        if lag.behind() > 0 {
            if let Some(&(since, _)) = heads.iter().find(|&&(_, head)| head > lag.position) {
                worst_delay = worst_delay.max(now - since);
            }
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = Cpu::now(&database);
    let grabs = granted.load(Ordering::Relaxed);
    let handled = subscription.as_ref().map_or(0, |s| s.status().handled);
    if let Some(subscription) = subscription {
        subscription.stop().await;
    }
    Live {
        grabs_per_second: granted.load(Ordering::Relaxed) as f64 / elapsed,
        events_per_second: handled as f64 / elapsed,
        worst_behind,
        worst_delay,
        cpu: cpu_before.per_thousand(cpu_after, grabs),
    }
}

async fn live(seconds: f64) {
    println!(
        "\n### Following a hot promotion live (PostgreSQL, 64 grabbing tasks, {seconds} s a run)\n"
    );
    println!("| run | grabs/s | vs. without (median) | followed, events/s | worst lag (positions) | worst lag (time) | CPU ms per 1,000 grabs: bench + PostgreSQL + nats-server |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    // ABBA, twice: a machine that drifts during the runs moves both sides
    // alike, and each ratio is against the median of every run without.
    use Follower::{Counting, Nats, Nobody};
    let order = [
        Nobody, Nats, Nats, Nobody, Nobody, Counting, Counting, Nobody, Nobody, Nats, Nats, Nobody,
    ];
    let mut runs = Vec::new();
    for follower in order {
        runs.push((follower, live_run(seconds, follower).await));
    }
    let median = |follower: Follower| {
        let mut rates: Vec<f64> = runs
            .iter()
            .filter(|(f, _)| *f == follower)
            .map(|(_, run)| run.grabs_per_second)
            .collect();
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let base = median(Nobody);
    for (follower, run) in &runs {
        let label = match follower {
            Nobody => "without a follower",
            Counting => "a counting subscription",
            Nats => "the NATS JetStream publisher",
        };
        let cpu = run.cpu;
        let cpu = format!(
            "{:.0} = {:.0} + {:.0} + {:.0}",
            cpu.total(),
            cpu.bench,
            cpu.postgres,
            cpu.nats
        );
        let ratio = run.grabs_per_second / base;
        if *follower == Nobody {
            println!(
                "| {label} | {:.0} | {ratio:.2} | – | – | – | {cpu} |",
                run.grabs_per_second
            );
        } else {
            println!(
                "| {label} | {:.0} | {ratio:.2} | {:.0} | {} | {} ms | {cpu} |",
                run.grabs_per_second,
                run.events_per_second,
                run.worst_behind,
                run.worst_delay.as_millis()
            );
        }
    }
    println!(
        "\nmedians against the median without: counting {:.2}, NATS publisher {:.2}",
        median(Counting) / base,
        median(Nats) / base
    );
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
