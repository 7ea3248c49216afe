//! Group commit across promotions on a real PostgreSQL (ADR 0012): many
//! promotions' commits in one transaction, each checked and answered on its
//! own.

mod common;

use std::time::Duration;

use common::{count, Writer};
use cqrs_es::DomainEvent;
use seckill_app::{Commit, EventStore, StoreError};
use seckill_domain::PromotionId;
use seckill_postgres::PgStore;
use seckill_tests::postgres::PgFixture;
use sqlx::PgConnection;
use tokio::task::JoinHandle;

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
    let outcomes = store
        .append_group(&commits.iter().collect::<Vec<_>>())
        .await;
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
        let summary = seckill_app::ProjectionStore::promotion(&store, writer.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((summary.remaining, summary.last_sequence), (80, 21));
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
    let outcomes = store
        .append_group(&commits.iter().collect::<Vec<_>>())
        .await;

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

/// The backend of this database that waits for the events lock (migration
/// 0008), once one does.
async fn waiting_for_the_events_lock(store: &PgStore) -> i32 {
    for _ in 0..200 {
        let waiting: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() \
               AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
        )
        .fetch_optional(store.pool())
        .await
        .unwrap();
        if let Some(pid) = waiting {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no backend came to wait for the events lock");
}

/// Another writer's event `sequence` of `writer`'s stream, inserted in the
/// transaction open on `connection`: it takes the events lock.
async fn insert_around_the_store(connection: &mut PgConnection, writer: &Writer, sequence: i64) {
    let event = common::created(writer.id, 1);
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Promotion', $1, $2, $3, $4, $5::json, '{}')",
    )
    .bind(writer.id.to_string())
    .bind(sequence)
    .bind(event.event_type())
    .bind(event.event_version())
    .bind(serde_json::to_string(&event).unwrap())
    .execute(connection)
    .await
    .unwrap();
}

/// A group append that waits for the events lock, which another transaction
/// holds (it inserted an event of another writer's stream around the store).
struct BehindTheLock {
    holder: PgConnection,
    /// The backend of the waiting group.
    pid: i32,
    appending: JoinHandle<Vec<Result<(), StoreError>>>,
}

impl BehindTheLock {
    /// Takes the lock by inserting event #2 of `stream`, uncommitted, then
    /// starts appending `commits` as a group, and returns once it waits.
    async fn start(fixture: &PgFixture, stream: &Writer, commits: Vec<Commit>) -> Self {
        let store = fixture.pg_store().clone();
        let mut holder = fixture.connection().await;
        sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
        insert_around_the_store(&mut holder, stream, 2).await;
        let appending = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append_group(&commits.iter().collect::<Vec<_>>())
                    .await
            })
        };
        let pid = waiting_for_the_events_lock(&store).await;
        Self {
            holder,
            pid,
            appending,
        }
    }

    /// Commits the lock holder's transaction and answers the group's outcomes.
    async fn release(mut self) -> Vec<Result<(), StoreError>> {
        sqlx::query("COMMIT")
            .execute(&mut self.holder)
            .await
            .unwrap();
        self.appending.await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_writes_its_projection_rows_before_it_queues_for_the_events_lock() {
    // What keeps the lock short (migration 0010): while another inserter
    // holds it, a group has already written its coupons and summaries, and
    // waits only to insert its events.
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let other = Writer::create(&store, 10).await;
    let mut first = Writer::create(&store, 10).await;
    let mut second = Writer::create(&store, 10).await;
    let commits = vec![
        first.commit(first.grabs("f", 3)),
        second.commit(second.grabs("s", 3)),
    ];
    let group = BehindTheLock::start(&fixture, &other, commits).await;
    let written: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         WHERE l.pid = $1 AND l.mode = 'RowExclusiveLock' AND l.granted \
           AND c.relname IN ('coupons', 'promotion_summaries') ORDER BY 1",
    )
    .bind(group.pid)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(written, ["coupons", "promotion_summaries"]);

    let outcomes = group.release().await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(store.load_events(first.id, 0).await.unwrap().len(), 4);
    assert_eq!(store.load_events(second.id, 0).await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_moved_while_the_group_waits_for_the_lock_conflicts_alone() {
    // A group reads its heads before it takes the events lock. Another
    // writer of one of its streams commits in between: the events' primary
    // key refuses the group's first event of that stream, the group rolls
    // back (its coupons and summary rows too), and one by one the moved
    // stream conflicts while the other lands.
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let mut moved = Writer::create(&store, 10).await;
    let mut steady = Writer::create(&store, 10).await;
    let commits = vec![
        moved.commit(moved.grabs("m", 3)),
        steady.commit(steady.grabs("s", 3)),
    ];
    // The lock holder's event #2 of the moved stream is uncommitted, so the
    // group's head read does not see it; it commits while the group waits.
    let outcomes = BehindTheLock::start(&fixture, &moved, commits)
        .await
        .release()
        .await;

    assert!(
        matches!(outcomes[0], Err(StoreError::Conflict { expected: 1, .. })),
        "the moved stream conflicts: {:?}",
        outcomes[0]
    );
    assert!(outcomes[1].is_ok(), "{:?}", outcomes[1]);
    assert_eq!(store.load_events(moved.id, 0).await.unwrap().len(), 2);
    assert_eq!(store.load_events(steady.id, 0).await.unwrap().len(), 4);
    let coupons_of =
        |id: PromotionId| format!("SELECT count(*) FROM coupons WHERE promotion_id = '{id}'");
    assert_eq!(count(&store, &coupons_of(moved.id)).await, 0);
    assert_eq!(count(&store, &coupons_of(steady.id)).await, 3);
    for (writer, expected) in [(&moved, (10, 1)), (&steady, (7, 4))] {
        let summary = seckill_app::ProjectionStore::promotion(&store, writer.id)
            .await
            .unwrap()
            .unwrap();
        // The moved stream's summary was rolled back with the group.
        assert_eq!((summary.remaining, summary.last_sequence), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_behind_its_stream_leaves_the_check_to_the_stream() {
    // A group reads heads from the summaries (migration 0010). Events
    // written around the store leave a summary behind its stream; where the
    // summary differs from the expected sequence, the stream's own head
    // decides, inside the group: the writer that knows the stream lands in
    // the group's one transaction, not one by one.
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let mut behind = Writer::create(&store, 10).await;
    let mut beside = Writer::create(&store, 10).await;
    let mut connection = fixture.connection().await;
    insert_around_the_store(&mut connection, &behind, 2).await;
    insert_around_the_store(&mut connection, &beside, 2).await;
    // Both writers saw event #2 (their state need not, for the store's check).
    behind.sequence += 1;
    beside.sequence += 1;
    // `beside`'s summary catches up first, so only `behind`'s is behind.
    let caught_up = beside.commit(beside.grabs("b", 1));
    store.append(&caught_up).await.unwrap();
    let commits = [
        behind.commit(behind.grabs("k", 3)),
        beside.commit(beside.grabs("s", 3)),
    ];
    let outcomes = store
        .append_group(&commits.iter().collect::<Vec<_>>())
        .await;

    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(store.load_events(behind.id, 0).await.unwrap().len(), 5);
    assert_eq!(store.load_events(beside.id, 0).await.unwrap().len(), 6);
    let one_transaction = count(
        &store,
        &format!(
            "SELECT count(DISTINCT xmin::text) FROM events \
             WHERE (aggregate_id = '{}' AND sequence > 2) \
                OR (aggregate_id = '{}' AND sequence > 3)",
            behind.id, beside.id
        ),
    )
    .await;
    assert_eq!(one_transaction, 1, "appended in the group, not one by one");
    let summary = seckill_app::ProjectionStore::promotion(&store, behind.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.last_sequence, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_whose_summary_matches_collides_and_conflicts() {
    // The summary agrees with a writer that missed event #2 (written around
    // the store): the group trusts it, its insert meets the events' primary
    // key, and one by one that writer conflicts while the other lands.
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let mut stale = Writer::create(&store, 10).await;
    let mut fresh = Writer::create(&store, 10).await;
    let mut connection = fixture.connection().await;
    insert_around_the_store(&mut connection, &stale, 2).await;
    let commits = [
        stale.commit(stale.grabs("s", 3)),
        fresh.commit(fresh.grabs("f", 3)),
    ];
    let outcomes = store
        .append_group(&commits.iter().collect::<Vec<_>>())
        .await;

    assert!(
        matches!(outcomes[0], Err(StoreError::Conflict { expected: 1, .. })),
        "{:?}",
        outcomes[0]
    );
    assert!(outcomes[1].is_ok(), "{:?}", outcomes[1]);
    assert_eq!(store.load_events(stale.id, 0).await.unwrap().len(), 2);
    assert_eq!(store.load_events(fresh.id, 0).await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_promotions_are_created_together_in_one_group() {
    // Expected sequence 0 and no summary row yet: the stream decides (empty).
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let mut writers: Vec<Writer> = (0..3).map(|_| Writer::new(common::new_id())).collect();
    let commits: Vec<_> = writers
        .iter_mut()
        .map(|writer| {
            let id = writer.id;
            writer.commit(vec![common::created(id, 5)])
        })
        .collect();
    let outcomes = store
        .append_group(&commits.iter().collect::<Vec<_>>())
        .await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(
        count(&store, "SELECT count(DISTINCT xmin::text) FROM events").await,
        1
    );
    for writer in &writers {
        let summary = seckill_app::ProjectionStore::promotion(&store, writer.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((summary.remaining, summary.last_sequence), (5, 1));
    }
    // Created again by a writer that did not see it: a conflict, not a copy.
    let first = writers[0].id;
    let again = Writer::new(first).commit(vec![common::created(first, 5)]);
    let grabs = writers[1].grabs("g", 1);
    let other = writers[1].commit(grabs);
    let outcomes = store.append_group(&[&again, &other]).await;
    assert!(
        matches!(outcomes[0], Err(StoreError::Conflict { expected: 0, .. })),
        "{:?}",
        outcomes[0]
    );
    assert!(outcomes[1].is_ok(), "{:?}", outcomes[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_ahead_of_its_stream_is_refused() {
    // The group append trusts a summary that is never ahead of its stream;
    // a repair that would write one gets an error and changes nothing.
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let mut writer = Writer::create(&store, 10).await;
    writer.append_grabs(&store, "c", 2).await;
    let mut ahead = writer.clone();
    let future = ahead.commit(ahead.grabs("x", 3));
    let outcome =
        seckill_app::ProjectionStore::replace_projection(&store, &future.summary, &[]).await;
    assert!(
        matches!(outcome, Err(StoreError::Backend(_))),
        "{outcome:?}"
    );
    let summary = seckill_app::ProjectionStore::promotion(&store, writer.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((summary.remaining, summary.last_sequence), (8, 3));
}
