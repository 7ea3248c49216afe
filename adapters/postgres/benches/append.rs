//! Append timings on a real PostgreSQL: our one-statement batch append
//! against postgres-es's one INSERT per event, many promotions' commits
//! grouped in one transaction against each alone, and the append ceiling:
//! commits of the engine's batch size written back to back with no engine in
//! front, one at a time and two in flight. Printed, not asserted (a timing
//! assertion would only measure the machine). Run with
//! `cargo bench -p seckill-postgres --bench append -- --batch 1000 --seconds 5`
//! (`--batch`: the events per commit the grab bench reports for the engine;
//! `--group-commits` and `--group-events`: the shape of its groups across
//! promotions, for the group ceiling, which is set beside one promotion's
//! commits of the same size).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use common::{created, new_id, Writer};
use cqrs_es::persist::{PersistedEventRepository, SerializedEvent};
use cqrs_es::DomainEvent;
use postgres_es::PostgresEventRepository;
use seckill_app::EventStore;
use seckill_domain::{Promotion, PromotionEvent, PromotionId};
use seckill_postgres::testing::PgFixture;

/// Append benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Events per commit in the ceiling runs: the engine's batch size.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// How long each ceiling run appends, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Commits a group in the group ceiling run (the grab bench's `spread`
    /// reports the engine's): that many promotions, one commit each.
    #[arg(long, default_value_t = 50)]
    group_commits: usize,
    /// Events a commit in the group ceiling run.
    #[arg(long, default_value_t = 10)]
    group_events: usize,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let mut writer = Writer::create(store, 10_000).await;
    let id = writer.id;
    let commits: Vec<_> = (0..10)
        .map(|batch| writer.commit(writer.grabs(&format!("b{batch}-c"), 1_000)))
        .collect();

    let start = Instant::now();
    for commit in &commits {
        store.append(commit).await.unwrap();
    }
    let appended = start.elapsed();
    let start = Instant::now();
    let events = store.load_events(id, 0).await.unwrap();
    let loaded = start.elapsed();
    assert_eq!(events.len(), 10_001);

    let single = writer.commit(Vec::new());
    let start = Instant::now();
    for _ in 0..100 {
        store.append(&single).await.unwrap();
    }
    let empty = start.elapsed() / 100;
    // The same 10 x 1,000 through postgres-es's repository, one INSERT per event.
    let other = new_id();
    let mut theirs = Writer::new(other);
    let mut batches: Vec<Vec<SerializedEvent>> = Vec::new();
    for batch in 0..=10 {
        let events = match batch {
            0 => vec![created(other, 10_000)],
            _ => theirs.grabs(&format!("b{batch}-c"), 1_000),
        };
        let commit = theirs.commit(events);
        let first = commit.expected_sequence as usize + 1;
        let serialized_batch = (first..)
            .zip(&commit.events)
            .map(|(n, event)| serialized(other, n, event))
            .collect();
        batches.push(serialized_batch);
    }
    let repo = PostgresEventRepository::new(store.pool().clone());
    repo.persist::<Promotion>(&batches[0], None).await.unwrap();
    let start = Instant::now();
    for batch in &batches[1..] {
        repo.persist::<Promotion>(batch, None).await.unwrap();
    }
    let per_event = start.elapsed();

    let (grouped, alone) = many_promotions(store).await;
    let seconds = Duration::from_secs_f64(args.seconds);
    let one = ceiling(store, 1, args.batch, seconds).await;
    let two = ceiling(store, 2, args.batch, seconds).await;
    // What keeping positions in commit order costs (ADR 0011): the same two
    // in flight without the events lock, which every insert otherwise holds
    // through its commit's WAL flush. Measurement only: without the lock a
    // follower of the global feed can skip an event.
    sqlx::query("ALTER TABLE events DISABLE TRIGGER events_in_commit_order")
        .execute(&mut fixture.connection().await)
        .await
        .unwrap();
    let unordered = ceiling(store, 2, args.batch, seconds).await;
    sqlx::query("ALTER TABLE events ENABLE TRIGGER events_in_commit_order")
        .execute(&mut fixture.connection().await)
        .await
        .unwrap();
    let (commits, events) = (args.group_commits, args.group_events);
    let grouped_ceiling = group_ceiling(store, commits, events, seconds).await;
    let single_ceiling = ceiling(store, 1, commits * events, seconds).await;

    println!(
        "append 10 x 1,000 events: {appended:?} total, {:?} per batch, {:.0} events/s; \
         load 10,001 events: {loaded:?}; one-statement round trip (empty commit): {empty:?}; \
         postgres-es, one INSERT per event: {per_event:?} total",
        appended / 10,
        10_000.0 / appended.as_secs_f64(),
    );
    println!(
        "100 promotions, 10 groups of 100 commits x 10 events (group commit): {grouped:?}, {:.0} events/s; \
         the same 1,000 commits appended alone: {alone:?}, {:.0} events/s",
        10_000.0 / grouped.as_secs_f64(),
        10_000.0 / alone.as_secs_f64(),
    );
    println!(
        "ceiling, commits of {} grabs back to back: one at a time {one:.0} events/s; \
         two in flight (two promotions, two connections) {two:.0} events/s ({:.2}x); \
         two in flight without the events lock {unordered:.0} events/s ({:.2}x)",
        args.batch,
        two / one,
        unordered / one,
    );
    println!(
        "group ceiling, groups of {commits} promotions' commits x {events} events back to back: \
         {grouped_ceiling:.0} events/s; one promotion's commits of {} events: {single_ceiling:.0} \
         events/s; group / single {:.2}",
        commits * events,
        grouped_ceiling / single_ceiling,
    );
}

/// The append ceiling of group commit across promotions: `commits`
/// promotions, each with a commit of `events` grabs in every group, groups
/// appended back to back (one in flight, as the committer sends them) for
/// `seconds`. Decided beforehand: only the store is measured. Events per
/// second.
async fn group_ceiling(
    store: &seckill_postgres::PgStore,
    commits: usize,
    events: usize,
    seconds: Duration,
) -> f64 {
    let per_group = commits * events;
    let rounds = (150_000.0 * seconds.as_secs_f64() / per_group as f64).ceil() as usize;
    let mut writers = Vec::with_capacity(commits);
    for _ in 0..commits {
        writers.push(Writer::create(store, 10_000_000).await);
    }
    let groups: Vec<Vec<_>> = (0..rounds)
        .map(|round| {
            writers
                .iter_mut()
                .map(|w| w.commit(w.grabs(&format!("g{round}-c"), events)))
                .collect()
        })
        .collect();
    let start = Instant::now();
    let mut appended = 0;
    for group in &groups {
        if start.elapsed() >= seconds {
            break;
        }
        let group: Vec<_> = group.iter().collect();
        let outcomes = store.append_group(&group).await;
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        appended += per_group;
    }
    appended as f64 / start.elapsed().as_secs_f64()
}

/// The append ceiling: `streams` promotions, each with its own task that
/// appends commits of `batch` grabs (events, coupons and summary, as the
/// engine writes them) back to back for `seconds`, so `streams` appends are
/// in flight at once. The commits are decided beforehand: only the store is
/// measured. Events per second, all streams together.
async fn ceiling(
    store: &seckill_postgres::PgStore,
    streams: usize,
    batch: usize,
    seconds: Duration,
) -> f64 {
    // Enough commits for 150k events/s per stream, above anything measured here.
    let rounds = (150_000.0 * seconds.as_secs_f64() / batch as f64).ceil() as usize;
    let mut tasks = Vec::new();
    for stream in 0..streams {
        let mut writer = Writer::create(store, 10_000_000).await;
        let commits: Vec<_> = (0..rounds)
            .map(|round| writer.commit(writer.grabs(&format!("s{stream}-r{round}-c"), batch)))
            .collect();
        let store = store.clone();
        tasks.push(async move {
            let start = Instant::now();
            let mut events = 0;
            for commit in &commits {
                if start.elapsed() >= seconds {
                    break;
                }
                store.append(commit).await.unwrap();
                events += commit.events.len();
            }
            (events, start.elapsed())
        });
    }
    let done = futures::future::join_all(tasks).await;
    let events: usize = done.iter().map(|(events, _)| events).sum();
    let longest = done.iter().map(|(_, took)| *took).max().unwrap_or_default();
    events as f64 / longest.as_secs_f64()
}

/// The same 10,000 grabs as 100 promotions' commits of 10 each, ten rounds:
/// once as ten groups of 100 (`append_group`), once as 1,000 appends alone.
async fn many_promotions(store: &seckill_postgres::PgStore) -> (Duration, Duration) {
    let mut timings = [Duration::ZERO; 2];
    for (grouped, timing) in [true, false].into_iter().zip(&mut timings) {
        let mut writers = Vec::new();
        for _ in 0..100 {
            writers.push(Writer::create(store, 1_000).await);
        }
        let rounds: Vec<Vec<_>> = (0..10)
            .map(|round| {
                writers
                    .iter_mut()
                    .map(|w| w.commit(w.grabs(&format!("r{round}-c"), 10)))
                    .collect()
            })
            .collect();
        let start = Instant::now();
        for round in &rounds {
            if grouped {
                let group: Vec<_> = round.iter().collect();
                let outcomes = store.append_group(&group).await;
                assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
            } else {
                for commit in round {
                    store.append(commit).await.unwrap();
                }
            }
        }
        *timing = start.elapsed();
    }
    (timings[0], timings[1])
}

fn serialized(id: PromotionId, sequence: usize, event: &PromotionEvent) -> SerializedEvent {
    SerializedEvent::new(
        id.to_string(),
        sequence,
        "Promotion".to_owned(),
        event.event_type(),
        event.event_version(),
        serde_json::to_value(event).unwrap(),
        serde_json::json!({}),
    )
}
