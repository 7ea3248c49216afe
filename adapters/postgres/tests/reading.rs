//! Reading back on a real PostgreSQL: rows written by hand (old versions,
//! corrupt or unknown ones) and snapshots.

mod common;

use common::{created, new_id, Writer};
use cqrs_es::Aggregate;
use seckill_app::{EventStore, Snapshot, StoreError};
use seckill_domain::{Promotion, PromotionEvent, PromotionId};
use seckill_postgres::testing::PgFixture;
use seckill_postgres::PgStore;

/// Inserts one event row by hand, as an old program or a person would.
async fn insert_row(
    store: &PgStore,
    id: PromotionId,
    sequence: i64,
    event_type: &str,
    version: &str,
    payload: &str,
) {
    sqlx::query("INSERT INTO events VALUES ('Promotion', $1, $2, $3, $4, $5::json, '{}')")
        .bind(id.to_string())
        .bind(sequence)
        .bind(event_type)
        .bind(version)
        .bind(payload)
        .execute(store.pool())
        .await
        .unwrap();
}

/// A promotion with one grab, appended the normal way.
async fn promotion_with_a_grab(store: &PgStore) -> (PromotionId, Writer) {
    let mut writer = Writer::create(store, 10).await;
    let id = writer.id;
    writer.append_grabs(store, "a", 1).await;
    (id, writer)
}

fn corrupt(result: Result<Vec<PromotionEvent>, StoreError>) -> (String, u64, String) {
    match result {
        Err(StoreError::CorruptEvent {
            aggregate_type,
            aggregate_id,
            sequence,
            reason,
        }) => {
            assert_eq!(aggregate_type, "Promotion");
            (aggregate_id, sequence, reason)
        }
        other => panic!("expected CorruptEvent, got {other:?}"),
    }
}

#[tokio::test]
async fn a_version_0_9_promotion_created_row_is_upcast_and_loads() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let id = new_id();
    let old = format!(
        r#"{{"PromotionCreated":{{"promotion_id":"{id}","terms":{{"number_of_coupons":100,"discount_percent":80,"publish_time":"2030-11-11T00:00:00Z","finish_time":"2030-11-11T01:00:00Z"}}}}}}"#
    );
    insert_row(store, id, 1, "PromotionCreated", "0.9", &old).await;

    let events = store.load_events(id, 0).await.unwrap();
    assert_eq!(events, vec![created(id, 100)], "0.9's 80 % is 1.0's 0.8");
    // The upcast stream carries on like any other.
    let mut writer = Writer::new(id);
    writer.commit(events);
    writer.append_grabs(store, "a", 1).await;
    assert_eq!(store.load_events(id, 0).await.unwrap().len(), 2);
}

#[tokio::test]
async fn corrupt_unknown_and_too_new_rows_are_corrupt_events_naming_the_row() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let cases = [
        (
            "CouponGrabbed",
            "1.0",
            r#"{"CouponGrabbed":{"remaining":"lots"}}"#,
            "payload",
        ),
        (
            "CouponRefunded",
            "1.0",
            r#"{"CouponRefunded":{}}"#,
            "unknown event type",
        ),
        ("CouponGrabbed", "3.1", r#"{"CouponGrabbed":{}}"#, "newer"),
        (
            "CouponGrabbed",
            "1.0",
            r#"{"PromotionFinished":{"at":"2030-11-11T00:00:00Z","reason":"Cancelled"}}"#,
            "event_type says",
        ),
        ("CouponGrabbed", "1.0", r#"[]"#, "payload"),
    ];
    for (event_type, version, payload, expected) in cases {
        let (id, _) = promotion_with_a_grab(store).await;
        insert_row(store, id, 3, event_type, version, payload).await;
        let (aggregate_id, sequence, reason) = corrupt(store.load_events(id, 0).await);
        assert_eq!((aggregate_id, sequence), (id.to_string(), 3));
        assert!(
            reason.contains(expected),
            "{event_type} {version}: {reason}"
        );
        // Reading only past the bad row still works.
        assert!(store.load_events(id, 3).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_gap_in_the_stream_is_reported_not_skipped() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let (id, writer) = promotion_with_a_grab(store).await;
    let next = writer.grabs("b", 1);
    insert_row(
        store,
        id,
        4,
        "CouponGrabbed",
        "1.0",
        &serde_json::to_string(&next[0]).unwrap(),
    )
    .await;
    let (_, sequence, reason) = corrupt(store.load_events(id, 0).await);
    assert_eq!(sequence, 4);
    assert!(reason.contains("#3 is missing"), "{reason}");
}

#[tokio::test]
async fn a_snapshot_round_trips_and_equals_the_state_replayed_from_events() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let mut writer = Writer::create(store, 50).await;
    let id = writer.id;
    writer.append_grabs(store, "a", 20).await;
    assert_eq!(store.load_snapshot(id).await.unwrap(), None);

    let mut replayed = Promotion::default();
    for event in store.load_events(id, 0).await.unwrap() {
        replayed.apply(event);
    }
    let snapshot = Snapshot {
        promotion: replayed.clone(),
        sequence: 21,
    };
    store.save_snapshot(id, &snapshot).await.unwrap();
    let loaded = store.load_snapshot(id).await.unwrap().unwrap();
    assert_eq!(loaded, snapshot);
    assert_eq!(
        loaded.promotion, writer.state,
        "snapshot = state replayed from the events"
    );

    // An older snapshot never replaces a newer one, and only the newest is kept.
    let older = Snapshot {
        promotion: Promotion::default(),
        sequence: 5,
    };
    store.save_snapshot(id, &older).await.unwrap();
    assert_eq!(store.load_snapshot(id).await.unwrap().unwrap().sequence, 21);
    writer.append_grabs(store, "b", 2).await;
    let newer = Snapshot {
        promotion: writer.state.clone(),
        sequence: 23,
    };
    store.save_snapshot(id, &newer).await.unwrap();
    assert_eq!(store.load_snapshot(id).await.unwrap(), Some(newer));
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM snapshots")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(kept, 1);
}

#[tokio::test]
async fn a_corrupt_snapshot_is_an_error_naming_the_promotion() {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store();
    let (id, _) = promotion_with_a_grab(store).await;
    sqlx::query("INSERT INTO snapshots VALUES ('Promotion', $1, 2, 2, '{\"holders\": 42}')")
        .bind(id.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    let error = store.load_snapshot(id).await.unwrap_err();
    assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    let message = std::error::Error::source(&error)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        message.contains(&id.to_string()) && message.contains("snapshot"),
        "{message}"
    );
}
