//! Append timings on a real PostgreSQL: our one-statement batch append
//! against postgres-es's one INSERT per event, and many promotions' commits
//! grouped in one transaction against each alone, in the same run. Printed, not
//! asserted (a timing assertion would only measure the machine). Run with
//! `cargo bench -p seckill-postgres --bench append`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{created, new_id, Writer};
use cqrs_es::persist::{PersistedEventRepository, SerializedEvent};
use cqrs_es::DomainEvent;
use postgres_es::PostgresEventRepository;
use seckill_app::EventStore;
use seckill_domain::{Promotion, PromotionEvent, PromotionId};
use seckill_tests::postgres::PgFixture;

#[tokio::main]
async fn main() {
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
