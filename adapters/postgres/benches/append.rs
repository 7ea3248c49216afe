//! Append timings on a real PostgreSQL: our one-statement batch append
//! against postgres-es's one INSERT per event, in the same run. Printed, not
//! asserted (a timing assertion would only measure the machine). Run with
//! `cargo bench -p seckill-postgres --bench append`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

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

    println!(
        "append 10 x 1,000 events: {appended:?} total, {:?} per batch, {:.0} events/s; \
         load 10,001 events: {loaded:?}; one-statement round trip (empty commit): {empty:?}; \
         postgres-es, one INSERT per event: {per_event:?} total",
        appended / 10,
        10_000.0 / appended.as_secs_f64(),
    );
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
