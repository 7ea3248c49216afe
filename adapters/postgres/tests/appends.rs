//! Appends on a real PostgreSQL: optimistic concurrency, all-or-nothing,
//! large batches in one call, and how failures are reported.

mod common;

use std::time::Duration;

use common::{append_behind_a_lock, coupons_of, created, new_id, Writer};
use seckill_app::{EventStore, ProjectionStore, StoreError};
use seckill_domain::{CustomerId, PromotionId};
use seckill_postgres::testing::PgFixture;
use seckill_postgres::{PgOptions, PgStore};
use sqlx::postgres::PgPoolOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_with_the_same_expected_sequence_one_wins_the_other_conflicts() {
    let fixture = PgFixture::new().await;
    for round in 0..10 {
        let store = fixture.pg_store().clone();
        let writer = Writer::create(&store, 100).await;
        let id = writer.id;
        // Two processes decided different grabs on the same state.
        let mut first = writer.clone();
        let mut second = writer.clone();
        let a = first.commit(first.grabs("a", 5));
        let b = second.commit(second.grabs("b", 3));
        let other = fixture.open().await; // its own pool: a second process
        let (ra, rb) = tokio::join!(store.append(&a), other.append(&b));

        let (winner, loser) = match (&ra, &rb) {
            (Ok(()), Err(e)) => (&first, e),
            (Err(e), Ok(())) => (&second, e),
            _ => panic!("round {round}: exactly one must win: {ra:?} {rb:?}"),
        };
        assert!(
            matches!(loser, StoreError::Conflict { promotion_id, expected: 1 } if *promotion_id == id),
            "{loser:?}"
        );
        // Only the winner's events, coupons and summary are stored.
        let stored = store.load_events(id, 0).await.unwrap();
        assert_eq!(stored.len() as u64, winner.sequence);
        let coupons = coupons_of(&store, id).await;
        assert_eq!(coupons as u64, winner.sequence - 1);
        let summary = store.promotion(id).await.unwrap().unwrap();
        assert_eq!(summary.last_sequence, winner.sequence);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_past_the_head_check_still_conflicts_on_the_primary_key() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let mut writer = Writer::create(&store, 10).await;
    let id = writer.id;
    // Another writer has inserted #2 but not committed: our head check still
    // sees #1, so only the primary key can stop us.
    let theirs = Writer::clone(&writer).grabs("them", 1);
    let mut rival = store.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events VALUES ('Promotion', $1, 2, 'CouponGrabbed', '1.0', $2::json, '{}')",
    )
    .bind(id.to_string())
    .bind(serde_json::to_string(&theirs[0]).unwrap())
    .execute(&mut *rival)
    .await
    .unwrap();
    let ours = writer.commit(writer.grabs("us", 2));
    let append = tokio::spawn(async move { store.append(&ours).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !append.is_finished(),
        "the append waits for the rival's key"
    );
    rival.commit().await.unwrap();

    let error = append.await.unwrap().unwrap_err();
    assert!(
        matches!(error, StoreError::Conflict { expected: 1, .. }),
        "{error:?}"
    );
    let store = fixture.pg_store();
    assert_eq!(
        store.load_events(id, 0).await.unwrap(),
        [vec![created(id, 10)], theirs].concat()
    );
    let ours = CustomerId::parse("us0").unwrap();
    assert!(store.coupons_of(&ours).await.unwrap().is_empty());
    assert_eq!(store.promotion(id).await.unwrap().unwrap().last_sequence, 1);
}

#[tokio::test]
async fn a_stale_or_too_new_expected_sequence_conflicts_and_writes_nothing() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let mut writer = Writer::create(store, 10).await;
    let id = writer.id;
    writer.append_grabs(store, "a", 2).await;
    assert_eq!(writer.sequence, 3);

    let mut behind = writer.clone();
    behind.sequence = 1;
    let stale = behind.commit(writer.grabs("b", 1));
    let mut ahead = writer.clone();
    ahead.sequence = 5; // a gap: #4 and #5 were never written
    let gap = ahead.commit(writer.grabs("c", 1));
    for commit in [stale, gap] {
        let error = store.append(&commit).await.unwrap_err();
        assert!(
            matches!(error, StoreError::Conflict { expected, .. } if expected == commit.expected_sequence),
            "{error:?}"
        );
    }
    assert_eq!(store.load_events(id, 0).await.unwrap().len(), 3);
    assert_eq!(store.promotion(id).await.unwrap().unwrap().last_sequence, 3);
    for who in ["b0", "c0"] {
        let customer = CustomerId::parse(who).unwrap();
        assert!(store.coupons_of(&customer).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn five_thousand_events_append_in_one_call() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let mut writer = Writer::create(store, 10_000).await;
    let id = writer.id;
    let commit = writer.commit(writer.grabs("customer-", 5_000));
    assert_eq!(commit.events.len(), 5_000);
    store.append(&commit).await.unwrap();

    let stored = store.load_events(id, 0).await.unwrap();
    assert_eq!(stored.len(), 5_001);
    assert_eq!(stored[1..], commit.events[..]);
    assert_eq!(store.load_events(id, 4_990).await.unwrap().len(), 11);
    let summary = store.promotion(id).await.unwrap().unwrap();
    assert_eq!((summary.remaining, summary.last_sequence), (5_000, 5_001));
    let held = store
        .coupons_of(&CustomerId::parse("customer-4999").unwrap())
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].number, 5_000);
}

#[tokio::test]
async fn stored_rows_use_the_postgres_es_columns_exactly() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let id = new_id();
    let commit = Writer::new(id).commit(vec![created(id, 10)]);
    store.append(&commit).await.unwrap();
    let row: (String, String, i64, String, String, String, String) = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload::text, metadata::text FROM events",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            "Promotion".to_owned(),
            id.to_string(),
            1,
            "PromotionCreated".to_owned(),
            "1.0".to_owned(),
            serde_json::to_string(&commit.events[0]).unwrap(),
            "{}".to_owned(),
        )
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_not_a_backend_failure() {
    // Nothing listens on port 1; the pool is lazy, so only the calls fail.
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/postgres")
        .unwrap();
    let store = PgStore::from_pool(pool);
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    let id = new_id();
    let error = store
        .append(&Writer::new(id).commit(vec![created(id, 1)]))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&id.to_string()), "{message}");
}

#[tokio::test]
async fn a_statement_past_the_statement_timeout_is_a_timeout() {
    let fixture = PgFixture::new().await;
    // A second, not less: the connection's setup and migrations run under
    // it too, on a disk that can stall.
    let limit = Duration::from_secs(1);
    let store = PgStore::connect_with(
        fixture.url(),
        PgOptions::default()
            .with_max_connections(2)
            .with_statement_timeout(Some(limit)),
    )
    .await
    .unwrap();
    store.ping().await.unwrap();
    let error = append_behind_a_lock(fixture.pg_store(), &store).await;
    assert!(
        matches!(error, StoreError::Timeout(d) if d == limit),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_itself_refuses_a_second_coupon_per_customer_or_number() {
    // Belt and braces under the aggregate: even a row written around the
    // engine cannot give a customer two coupons of one promotion, nor hand a
    // number out twice.
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let mut writer = Writer::create(&store, 10).await;
    let id = writer.id;
    let commit = writer.commit(writer.grabs("a", 2));
    store.append(&commit).await.unwrap();
    let insert = |promotion: PromotionId, number: i32, customer: &str| {
        format!(
            "INSERT INTO coupons (promotion_id, number, customer_id, discount, grabbed_at) \
             VALUES ('{promotion}', {number}, '{customer}', 0.5, now())"
        )
    };
    let first_holder: String = sqlx::query_scalar(&format!(
        "SELECT customer_id FROM coupons WHERE promotion_id = '{id}' AND number = 1"
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();
    for (case, sql) in [
        ("a second coupon for a holder", insert(id, 9, &first_holder)),
        ("a number handed out twice", insert(id, 1, "somebody-else")),
    ] {
        let error = sqlx::query(&sql)
            .execute(store.pool())
            .await
            .expect_err(case);
        let code = error
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("23505"), "{case}: {error}");
    }
    // The same customer may hold a coupon of another promotion.
    let other = Writer::create(&store, 10).await;
    sqlx::query(&insert(other.id, 1, &first_holder))
        .execute(store.pool())
        .await
        .unwrap();
}
