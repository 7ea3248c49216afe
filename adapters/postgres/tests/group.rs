//! Group commit across promotions on a real PostgreSQL (ADR 0012): many
//! promotions' commits in one transaction, each checked and answered on its
//! own.

mod common;

use common::{append_together, count, summary_of, Writer};
use seckill_app::{EventStore, StoreError};
use seckill_postgres::testing::PgFixture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_many_promotions_lands_in_one_transaction() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let mut writers = Vec::new();
    for _ in 0..50 {
        writers.push(Writer::create(&store, 100).await);
    }
    let commits: Vec<_> = writers
        .iter_mut()
        .enumerate()
        .map(|(i, writer)| {
            let events = writer.grabs(&format!("p{i}-"), 20);
            writer.commit(events)
        })
        .collect();
    let outcomes = append_together(&store, &commits).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");

    // One transaction for all 50 promotions: the id every new row carries.
    let transactions = count(
        &store,
        "SELECT count(DISTINCT xmin::text) FROM events WHERE sequence > 1",
    )
    .await;
    assert_eq!(transactions, 1, "the group is one transaction");
    assert_eq!(count(&store, "SELECT count(*) FROM coupons").await, 50 * 20);
    for writer in &writers {
        assert_eq!(summary_of(&store, writer.id).await, (80, 21));
        assert_eq!(store.load_events(writer.id, 0).await.unwrap().len(), 21);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_the_database_refuses_fails_alone_and_the_others_land() {
    // A coupon row written around the engine makes one commit break the
    // coupons' primary key: the group's transaction rolls back, and each
    // commit is then tried alone, so only the broken one fails.
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let mut good = Writer::create(&store, 10).await;
    let mut broken = Writer::create(&store, 10).await;
    let mut also_good = Writer::create(&store, 10).await;
    sqlx::query(&format!(
        "INSERT INTO coupons (promotion_id, number, customer_id, discount, grabbed_at) \
         VALUES ('{}', 1, 'squatter', 0.5, now())",
        broken.id
    ))
    .execute(store.pool())
    .await
    .unwrap();
    let commits = [
        good.commit(good.grabs("g", 3)),
        broken.commit(broken.grabs("b", 3)),
        also_good.commit(also_good.grabs("a", 3)),
    ];
    let outcomes = append_together(&store, &commits).await;

    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    assert!(
        matches!(outcomes[1], Err(StoreError::Backend(_))),
        "the refused commit fails as itself: {:?}",
        outcomes[1]
    );
    assert!(outcomes[2].is_ok(), "{:?}", outcomes[2]);
    assert_eq!(store.load_events(good.id, 0).await.unwrap().len(), 4);
    assert_eq!(store.load_events(broken.id, 0).await.unwrap().len(), 1);
    assert_eq!(store.load_events(also_good.id, 0).await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_stream_twice_in_a_group_is_appended_in_order() {
    // The port allows it (the engine never does it): the second commit
    // follows the first, so both land.
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let mut writer = Writer::create(&store, 10).await;
    let first = writer.commit(writer.grabs("x", 2));
    let second = writer.commit(writer.grabs("y", 2));
    let outcomes = store.append_group(&[&first, &second]).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(store.load_events(writer.id, 0).await.unwrap().len(), 5);
}
