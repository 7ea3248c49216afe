//! The global feed on PostgreSQL: a follower of positions never skips an
//! event, whatever order concurrent inserters take ids, positions and
//! commits in (ADR 0011).

mod common;

use common::{created, insert_around_the_store, new_id};
use seckill_app::EventStore;
use seckill_postgres::testing::PgFixture;

/// Reads the feed from 0 until it holds `count` events, boundedly.
async fn feed_of(
    store: &seckill_postgres::PgStore,
    count: usize,
) -> Vec<seckill_app::PositionedEvent> {
    let mut feed = Vec::new();
    for _ in 0..100 {
        feed = store.read_all(0, 100).await.unwrap();
        if feed.len() >= count {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    feed
}

#[tokio::test]
async fn a_transaction_in_flight_holds_back_every_later_position() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let mut early = fixture.connection().await;
    let mut late = fixture.connection().await;
    let (first, second) = (new_id(), new_id());

    // The first transaction inserts and stays open ...
    sqlx::query("BEGIN").execute(&mut early).await.unwrap();
    insert_around_the_store(&mut early, first, 1, &created(first, 5)).await;
    // ... so a second inserter waits for it before it takes a position.
    let waiting = tokio::spawn(async move {
        sqlx::query("BEGIN").execute(&mut late).await.unwrap();
        insert_around_the_store(&mut late, second, 1, &created(second, 5)).await;
        sqlx::query("COMMIT").execute(&mut late).await.unwrap();
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "the second insert waits for the first"
    );
    assert_eq!(store.read_all(0, 100).await.unwrap(), vec![]);

    sqlx::query("COMMIT").execute(&mut early).await.unwrap();
    waiting.await.unwrap();
    let feed = feed_of(store, 2).await;
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

/// The race that reading below the oldest transaction in flight (ADR 0009)
/// missed: a transaction that took its id first, then its position after a
/// younger one did, and committed first. Its row was read, and the younger
/// one's lower position appeared behind the reader. Now positions are taken
/// in commit order, so the reader sees both, in order.
#[tokio::test]
async fn an_older_transaction_that_inserts_later_never_hides_a_lower_position() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let mut older = fixture.connection().await;
    let mut younger = fixture.connection().await;
    let (first, second) = (new_id(), new_id());

    // The older transaction takes its id before the younger one exists.
    sqlx::query("BEGIN").execute(&mut older).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut older)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut younger).await.unwrap();
    insert_around_the_store(&mut younger, first, 1, &created(first, 5)).await;
    // The older one inserts now: it waits until the younger one ends.
    let inserting = tokio::spawn(async move {
        insert_around_the_store(&mut older, second, 1, &created(second, 5)).await;
        sqlx::query("COMMIT").execute(&mut older).await.unwrap();
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(store.read_all(0, 100).await.unwrap().is_empty());
    sqlx::query("COMMIT").execute(&mut younger).await.unwrap();
    inserting.await.unwrap();

    // Read in pages of one, as a follower resuming after each would.
    let mut seen = Vec::new();
    let mut after = 0;
    for _ in 0..100 {
        if seen.len() == 2 {
            break;
        }
        match store.read_all(after, 1).await.unwrap().pop() {
            Some(event) => {
                after = event.position;
                seen.push((event.promotion_id, event.position));
            }
            None => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let promotions: Vec<_> = seen.iter().map(|&(id, _)| id).collect();
    assert_eq!(promotions, vec![first, second], "both, in commit order");
    assert!(seen[0].1 < seen[1].1);
    assert_eq!(feed_of(store, 2).await.len(), 2);
}
