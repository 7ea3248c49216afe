//! Where the write path (`seckill_append`, migration 0011, ADR 0012) reads
//! its heads and when it takes the events lock, on a real PostgreSQL with
//! real concurrent transactions: projection rows before the lock, heads from
//! the summaries backed by the events' primary key, and two commits of one
//! promotion at once.

mod common;

use std::time::Duration;

use common::{
    append_together, count, coupons_of, created, insert_around_the_store, new_id, summary_of,
    Writer,
};
use seckill_app::{Commit, EventStore, StoreError};
use seckill_postgres::testing::PgFixture;
use seckill_postgres::PgStore;
use sqlx::PgConnection;
use tokio::task::JoinHandle;

/// The backends of this database waiting for a lock of type `Lock:{event}`
/// for one of `events`, once there are at least `n` of them.
async fn waiting_for(store: &PgStore, events: &[&str], n: usize) -> Vec<i32> {
    for _ in 0..250 {
        let waiting: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() \
               AND wait_event_type = 'Lock' AND wait_event = ANY($1)",
        )
        .bind(events)
        .fetch_all(store.pool())
        .await
        .unwrap();
        if waiting.len() >= n {
            return waiting;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{n} backends never came to wait for {events:?}");
}

/// The backend that waits for the events lock (migration 0008), once one does.
async fn waiting_for_the_events_lock(store: &PgStore) -> i32 {
    waiting_for(store, &["advisory"], 1).await[0]
}

/// Until `n` backends wait on row locks (a row, or a key another
/// transaction has not committed).
async fn until_waiting_on_rows(store: &PgStore, n: usize) {
    waiting_for(store, &["transactionid", "tuple"], n).await;
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
        insert_around_the_store(&mut holder, stream.id, 2, &created(stream.id, 1)).await;
        let appending = {
            let store = store.clone();
            tokio::spawn(async move { append_together(&store, &commits).await })
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
    // What keeps the lock short (ADR 0012): while another inserter
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
    // back (its coupons and summary rows too), and sent commit by commit the
    // moved stream conflicts while the other lands.
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
    assert_eq!(coupons_of(&store, moved.id).await, 0);
    assert_eq!(coupons_of(&store, steady.id).await, 3);
    // The moved stream's summary was rolled back with the group.
    assert_eq!(summary_of(&store, moved.id).await, (10, 1));
    assert_eq!(summary_of(&store, steady.id).await, (7, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_behind_its_stream_leaves_the_check_to_the_stream() {
    // A group reads heads from the summaries (ADR 0012). Events
    // written around the store leave a summary behind its stream; where the
    // summary differs from the expected sequence, the stream's own head
    // decides, inside the group: the writer that knows the stream lands in
    // the group's one transaction, not one by one.
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let mut behind = Writer::create(&store, 10).await;
    let mut beside = Writer::create(&store, 10).await;
    let mut connection = fixture.connection().await;
    insert_around_the_store(&mut connection, behind.id, 2, &created(behind.id, 1)).await;
    insert_around_the_store(&mut connection, beside.id, 2, &created(beside.id, 1)).await;
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
    let outcomes = append_together(&store, &commits).await;

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
    assert_eq!(summary_of(&store, behind.id).await.1, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_whose_summary_matches_collides_and_conflicts() {
    // The summary agrees with a writer that missed event #2 (written around
    // the store): the group trusts it, its insert meets the events' primary
    // key, and sent commit by commit that writer conflicts while the other
    // lands.
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let mut stale = Writer::create(&store, 10).await;
    let mut fresh = Writer::create(&store, 10).await;
    let mut connection = fixture.connection().await;
    insert_around_the_store(&mut connection, stale.id, 2, &created(stale.id, 1)).await;
    let commits = [
        stale.commit(stale.grabs("s", 3)),
        fresh.commit(fresh.grabs("f", 3)),
    ];
    let outcomes = append_together(&store, &commits).await;

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
    let mut writers: Vec<Writer> = (0..3).map(|_| Writer::new(new_id())).collect();
    let commits: Vec<_> = writers
        .iter_mut()
        .map(|writer| {
            let id = writer.id;
            writer.commit(vec![created(id, 5)])
        })
        .collect();
    let outcomes = append_together(&store, &commits).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(
        count(&store, "SELECT count(DISTINCT xmin::text) FROM events").await,
        1
    );
    for writer in &writers {
        assert_eq!(summary_of(&store, writer.id).await, (5, 1));
    }
    // Created again by a writer that did not see it: a conflict, not a copy.
    let first = writers[0].id;
    let again = Writer::new(first).commit(vec![created(first, 5)]);
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
    // The write path trusts a summary that is never ahead of its stream;
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
    assert_eq!(summary_of(&store, writer.id).await, (8, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_commits_of_one_promotion_at_once_land_one_and_conflict_the_other() {
    // A group holds a coupon key of promotion P, stalled before the events
    // lock, while a second commit of P (a writer that gave up on the first
    // and decided again) wants the same key. Whichever side loses, it wrote
    // nothing and answers `Conflict`, which the writer decides again on:
    // never a false success, and P holds one of the two. (When a lone
    // commit took the events lock first, the deadlock detector had to end a
    // cycle here; every commit now writes its coupons first.)
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    let mut p = Writer::create(&store, 10).await;
    let mut q = Writer::create(&store, 10).await;
    // The group writes in promotion-id order: P's coupon before Q's.
    if q.id < p.id {
        std::mem::swap(&mut p, &mut q);
    }
    let mut again = p.clone();
    let group = vec![p.commit(p.grabs("p", 1)), q.commit(q.grabs("q", 1))];
    let second = again.commit(again.grabs("p", 1));

    // A squatter on Q's coupon #1 stalls the group inside its coupon insert,
    // after it wrote P's coupon and before it reaches the events lock.
    let mut squatter = fixture.connection().await;
    sqlx::query("BEGIN").execute(&mut squatter).await.unwrap();
    sqlx::query(&format!(
        "INSERT INTO coupons (promotion_id, number, customer_id, discount, grabbed_at) \
         VALUES ('{}', 1, 'squatter', 0.5, now())",
        q.id
    ))
    .execute(&mut squatter)
    .await
    .unwrap();
    let grouped = {
        let store = store.clone();
        let group = group.clone();
        tokio::spawn(async move { append_together(&store, &group).await })
    };
    until_waiting_on_rows(&store, 1).await;
    // The second commit of P waits for the group's uncommitted coupon of P.
    let alone = {
        let store = store.clone();
        let second = second.clone();
        tokio::spawn(async move { store.append(&second).await })
    };
    until_waiting_on_rows(&store, 2).await;
    // The group goes on and commits; the second commit meets P's coupon
    // key taken and P's stream moved.
    sqlx::query("ROLLBACK")
        .execute(&mut squatter)
        .await
        .unwrap();
    let within = Duration::from_secs(20);
    let grouped = tokio::time::timeout(within, grouped)
        .await
        .unwrap()
        .unwrap();
    let alone = tokio::time::timeout(within, alone).await.unwrap().unwrap();

    assert!(grouped[1].is_ok(), "Q lands either way: {:?}", grouped[1]);
    assert_eq!(store.load_events(q.id, 0).await.unwrap().len(), 2);
    let stream = store.load_events(p.id, 0).await.unwrap();
    assert_eq!(stream.len(), 2, "P holds exactly one of the two commits");
    // The losing side meets the stream the other side moved: a conflict,
    // which the writer decides again on, not a failure its callers see.
    match (&grouped[0], &alone) {
        (Ok(()), Err(error)) | (Err(error), Ok(())) => {
            assert!(
                matches!(error, StoreError::Conflict { promotion_id, .. } if *promotion_id == p.id),
                "the rolled-back side conflicts: {error:?}"
            );
        }
        outcomes => panic!("exactly one of P's commits lands: {outcomes:?}"),
    }
    assert_eq!(coupons_of(&store, p.id).await, 1);
}
