//! What the conformance suite does not reach: the rows are postgres-es's own
//! (its repository reads ours, and what cqrs-es writes through it is in our
//! feed and projections at once), streams stay free of holes, the position
//! trigger keeps the feed gap-free under concurrent appends from two pools,
//! and errors say truthfully whether a write may have happened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateContext as _, CqrsFramework, EventStore as _};
use postgres_es::PostgresEventRepository;
use seckill_app::{Commit, EventStore, ProjectionStore, PromotionSummary, StoreError};
use seckill_domain::testing::{created, customer, opens, terms};
use seckill_domain::{Promotion, PromotionCommand, PromotionEvent, PromotionId};
use seckill_example_postgres_es::PgEsBackend;
use seckill_testkit::postgres::TestDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};

async fn open(database: &TestDatabase) -> PgEsBackend {
    PgEsBackend::connect(database.url()).await.unwrap()
}

/// One promotion's stream as a writer builds it: its state and its head.
struct Stream {
    id: PromotionId,
    state: Promotion,
    sequence: u64,
}

impl Stream {
    fn new() -> Self {
        Self {
            id: PromotionId::from_uuid(uuid::Uuid::new_v4()),
            state: Promotion::default(),
            sequence: 0,
        }
    }

    /// The commit that creates the promotion with `coupons` coupons.
    fn create(&mut self, coupons: u64) -> Commit {
        self.commit(vec![created(self.id, coupons)])
    }

    /// The commit of `n` grabs by customers `{prefix}-{i}`.
    fn grabs(&mut self, prefix: &str, n: usize) -> Commit {
        let mut state = self.state.clone();
        let mut events = Vec::with_capacity(n);
        for i in 0..n {
            let coupon = state
                .decide_grab(
                    &customer(format!("{prefix}-{i}")),
                    opens() + Duration::seconds(1),
                )
                .unwrap();
            let remaining = state.remaining() - 1;
            let event = PromotionEvent::CouponGrabbed { coupon, remaining };
            state.apply(event.clone());
            events.push(event);
        }
        self.commit(events)
    }

    /// The commit of `events` on this stream, which it then takes on.
    fn commit(&mut self, events: Vec<PromotionEvent>) -> Commit {
        let expected_sequence = self.sequence;
        for event in events.iter().cloned() {
            self.state.apply(event);
        }
        self.sequence += events.len() as u64;
        Commit {
            promotion_id: self.id,
            expected_sequence,
            summary: PromotionSummary::of(&self.state, self.sequence).unwrap(),
            events,
            traceparents: Vec::new(),
        }
    }
}

#[tokio::test]
async fn postgres_es_reads_our_rows_and_we_read_what_cqrs_es_writes() {
    let database = TestDatabase::new().await;
    let backend = open(&database).await;
    let mut ours = Stream::new();
    backend.append(&ours.create(10)).await.unwrap();
    backend.append(&ours.grabs("ours", 3)).await.unwrap();

    // Their repository reads our stream, event for event.
    let theirs = PersistedEventStore::<_, Promotion>::new_event_store(
        PostgresEventRepository::new(backend.pool().clone()),
    );
    let envelopes = theirs.load_events(&ours.id.to_string()).await.unwrap();
    let events = backend.load_events(ours.id, 0).await.unwrap();
    assert_eq!(envelopes.len(), 4);
    for (n, (envelope, event)) in envelopes.iter().zip(&events).enumerate() {
        assert_eq!(envelope.sequence, n + 1);
        assert_eq!(&envelope.payload, event);
    }
    let mut context = theirs.load_aggregate(&ours.id.to_string()).await.unwrap();
    assert_eq!(*context.aggregate(), ours.state);

    // A cqrs-es application writing through postgres-es directly: its events
    // get positions (the trigger), and the derived projections show them.
    let cqrs = CqrsFramework::new(theirs, vec![], ());
    let id = PromotionId::from_uuid(uuid::Uuid::new_v4());
    let create = PromotionCommand::CreatePromotion {
        promotion_id: id,
        terms: terms(10),
        at: opens(),
        seal: None,
    };
    cqrs.execute(&id.to_string(), create).await.unwrap();
    let grab = PromotionCommand::GrabCoupon {
        customer_id: customer("carol"),
        at: opens() + Duration::seconds(1),
    };
    cqrs.execute(&id.to_string(), grab).await.unwrap();

    let feed = backend.read_all(0, 100).await.unwrap();
    let sequences: Vec<_> = feed
        .iter()
        .map(|e| (e.promotion_id, e.sequence, e.position))
        .collect();
    assert_eq!(
        sequences,
        [1, 2, 3, 4]
            .map(|n| (ours.id, n, n))
            .into_iter()
            .chain([(id, 1, 5), (id, 2, 6)])
            .collect::<Vec<_>>()
    );
    assert_eq!(backend.head_position().await.unwrap(), 6);
    let held = backend.coupons_of(&customer("carol")).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].promotion_id, held[0].number), (id, 1));
    assert_eq!(backend.promotion(id).await.unwrap().unwrap().remaining, 9);
    let mut unfinished: Vec<_> = backend
        .unfinished_promotions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.promotion_id, s.last_sequence))
        .collect();
    unfinished.sort();
    let mut expected = vec![(ours.id, 4), (id, 2)];
    expected.sort();
    assert_eq!(unfinished, expected);
}

#[tokio::test]
async fn a_commit_that_skips_or_repeats_a_sequence_conflicts_and_writes_nothing() {
    let database = TestDatabase::new().await;
    let backend = open(&database).await;
    let mut stream = Stream::new();
    backend.append(&stream.create(10)).await.unwrap();

    // Expecting sequence 3 of a stream of 1 would leave 2 and 3 missing.
    let mut ahead = stream.grabs("ahead", 1);
    ahead.expected_sequence = 3;
    // Expecting 0 again collides with event #1.
    let mut stale = stream.grabs("stale", 2);
    stale.expected_sequence = 0;
    for commit in [ahead, stale] {
        let error = backend.append(&commit).await.unwrap_err();
        assert!(
            matches!(error, StoreError::Conflict { expected, .. } if expected == commit.expected_sequence),
            "{error:?}"
        );
    }
    assert_eq!(backend.load_events(stream.id, 0).await.unwrap().len(), 1);
    assert_eq!(backend.head_position().await.unwrap(), 1);
}

/// Many writers on two pools append to their own promotions at once, while
/// a follower pages through the feed. Had a late commit taken a position
/// below one the follower had passed, the follower would miss it for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_skips_nothing_while_two_pools_append_concurrently() {
    const WRITERS: usize = 40;
    const COMMITS: usize = 8;
    let database = TestDatabase::new().await;
    // Two opens at once: the schema's advisory lock makes them take turns.
    let (a, b) = tokio::join!(open(&database), open(&database));
    let backends = [Arc::new(a), Arc::new(b)];

    let done = Arc::new(AtomicBool::new(false));
    let follower = {
        let (store, done) = (backends[0].clone(), done.clone());
        tokio::spawn(async move {
            let (mut feed, mut after) = (Vec::new(), 0);
            loop {
                // Read `done` before the page: an empty page after every
                // writer finished means the feed was read to its end.
                let finished = done.load(Ordering::SeqCst);
                let page = store.read_all(after, 7).await.unwrap();
                match page.last() {
                    Some(last) => after = last.position,
                    None if finished => return feed,
                    None => tokio::task::yield_now().await,
                }
                feed.extend(page);
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = backends[w % 2].clone();
            tokio::spawn(async move {
                let mut stream = Stream::new();
                store.append(&stream.create(100)).await.unwrap();
                for c in 0..COMMITS {
                    store
                        .append(&stream.grabs(&format!("w{w}-c{c}"), 1 + c % 3))
                        .await
                        .unwrap();
                }
                stream.id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for writer in writers {
        ids.push(writer.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let feed = follower.await.unwrap();

    let positions: Vec<u64> = feed.iter().map(|e| e.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    let per_stream = 1 + (0..COMMITS).map(|c| 1 + c % 3).sum::<usize>();
    assert_eq!(feed.len(), WRITERS * per_stream, "every event once");
    for id in ids {
        let mine: Vec<_> = feed.iter().filter(|e| e.promotion_id == id).collect();
        let stream = backends[1].load_events(id, 0).await.unwrap();
        assert_eq!(mine.len(), stream.len());
        for (n, (positioned, event)) in mine.iter().zip(&stream).enumerate() {
            assert_eq!(positioned.sequence, n as u64 + 1);
            assert_eq!(&positioned.event, event);
        }
    }
}

/// A write cut off by `statement_timeout` may or may not have happened, and
/// says so; one that never got a connection says nothing was written.
#[tokio::test]
async fn errors_tell_whether_the_write_may_have_happened() {
    let database = TestDatabase::new().await;
    let options: PgConnectOptions = database.url().parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        // Seconds, not milliseconds: creating the tables below runs under
        // it too, and commits on a stalled disk can take one.
        .connect_with(options.clone().options([("statement_timeout", "2s")]))
        .await
        .unwrap();
    let backend = PgEsBackend::new(pool.clone()).await.unwrap();

    // Another session holds the inserters' lock (the trigger's key), so the
    // append waits until its statement is cut off.
    let mut blocker = PgConnection::connect_with(&options).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(7738145395240370002)")
        .execute(&mut blocker)
        .await
        .unwrap();
    let mut stream = Stream::new();
    let error = backend.append(&stream.create(10)).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Timeout(limit) if limit == StdDuration::from_secs(2)),
        "{error:?}"
    );
    assert!(error.outcome_unknown());
    blocker.close().await.unwrap();
    assert_eq!(backend.load_events(stream.id, 0).await.unwrap(), vec![]);

    pool.close().await;
    let error = backend.append(&Stream::new().create(10)).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(!error.outcome_unknown());
}
