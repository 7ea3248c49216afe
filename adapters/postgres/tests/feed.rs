//! The global feed on PostgreSQL: a follower of positions never skips an
//! event, even when the lower position commits last (ADR 0009).

mod common;

use common::{created, new_id};
use cqrs_es::DomainEvent;
use seckill_app::EventStore;
use seckill_domain::{PromotionEvent, PromotionId};
use seckill_tests::postgres::PgFixture;
use sqlx::{Connection, PgConnection};

/// Inserts `event` as event #1 of `id` on `connection`, inside whatever
/// transaction it has open, as another writer's append would.
async fn insert(connection: &mut PgConnection, id: PromotionId, event: &PromotionEvent) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Promotion', $1, 1, $2, $3, $4::json, '{}')",
    )
    .bind(id.to_string())
    .bind(event.event_type())
    .bind(event.event_version())
    .bind(serde_json::to_string(event).unwrap())
    .execute(connection)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_lower_position_committed_last_is_not_skipped() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let mut early = PgConnection::connect(fixture.url()).await.unwrap();
    let mut late = PgConnection::connect(fixture.url()).await.unwrap();
    let (first, second) = (new_id(), new_id());

    // The first transaction takes the lower position and stays open ...
    sqlx::query("BEGIN").execute(&mut early).await.unwrap();
    insert(&mut early, first, &created(first, 5)).await;
    // ... while a second one takes the next position and commits.
    sqlx::query("BEGIN").execute(&mut late).await.unwrap();
    insert(&mut late, second, &created(second, 5)).await;
    sqlx::query("COMMIT").execute(&mut late).await.unwrap();

    // A reader of "position > last" would now see the second event and move
    // past the first for ever. The feed holds both back instead.
    assert_eq!(store.read_all(0, 100).await.unwrap(), vec![]);

    sqlx::query("COMMIT").execute(&mut early).await.unwrap();
    // Another database's transaction, if one runs on this server, can hold
    // the line back a moment longer: wait for it, boundedly.
    let mut feed = Vec::new();
    for _ in 0..100 {
        feed = store.read_all(0, 100).await.unwrap();
        if feed.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let order: Vec<_> = feed.iter().map(|e| (e.promotion_id, e.sequence)).collect();
    assert_eq!(order, vec![(first, 1), (second, 1)]);
    assert!(feed[0].position < feed[1].position);
    assert_eq!(feed[0].event, created(first, 5));

    // Resuming after the first gives the second, and after the second nothing.
    let rest = store.read_all(feed[0].position, 100).await.unwrap();
    assert_eq!(rest, feed[1..].to_vec());
    assert!(store
        .read_all(feed[1].position, 100)
        .await
        .unwrap()
        .is_empty());
}
