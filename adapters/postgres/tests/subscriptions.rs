//! Transactional subscriptions on PostgreSQL: the handler's writes and the
//! checkpoint commit together, so a handler error mid-batch or a consumer
//! killed mid-transaction never applies an event twice, and none is missed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use seckill_app::subscription::{
    Delivery, DeliveryFailure, HandlerError, Subscription, SubscriptionStore,
};
use seckill_app::{PositionedEvent, SecKill};
use seckill_domain::testing::{customer, terms};
use seckill_postgres::testing::PgFixture;
use seckill_postgres::{PgStore, TransactionalHandler};
use seckill_testkit::doomed::Doomed;
use seckill_testkit::suite::service;
use sqlx::PgConnection;

/// Writes each event's position to a table of its own, in the delivery's
/// transaction; fails once on one chosen position, and counts its calls
/// (rolled-back ones included).
struct Applier {
    calls: Arc<AtomicUsize>,
    fail_once_at: Option<u64>,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl TransactionalHandler for Applier {
    async fn handle(
        &self,
        transaction: &mut PgConnection,
        event: &PositionedEvent,
    ) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        // Slow enough that a kill lands inside an open transaction.
        tokio::time::sleep(Duration::from_millis(1)).await;
        sqlx::query("INSERT INTO applied (position) VALUES ($1)")
            .bind(i64::try_from(event.position)?)
            .execute(&mut *transaction)
            .await?;
        if self.fail_once_at == Some(event.position) && !self.failed.swap(true, Ordering::Relaxed) {
            return Err("injected failure after this event's write".into());
        }
        Ok(())
    }
}

fn applier(calls: &Arc<AtomicUsize>, fail_once_at: Option<u64>) -> Applier {
    Applier {
        calls: Arc::clone(calls),
        fail_once_at,
        failed: Default::default(),
    }
}

async fn applied(store: &PgStore) -> Vec<(i64, i64)> {
    sqlx::query_as("SELECT position, count(*) FROM applied GROUP BY position ORDER BY position")
        .fetch_all(store.pool())
        .await
        .unwrap()
}

/// A fresh database with the handler's own table, and a service on it.
async fn setup() -> (PgFixture, PgStore, SecKill) {
    let fixture = PgFixture::new().await;
    let store = fixture.pg_store().clone();
    sqlx::query("CREATE TABLE applied (position bigint NOT NULL)")
        .execute(store.pool())
        .await
        .unwrap();
    let (seckill, _) = service(Arc::new(store.clone()));
    (fixture, store, seckill)
}

/// Runs the subscription "exactly-once" with transactional delivery.
fn consume(seckill: &SecKill, store: &PgStore, applier: Applier) -> Subscription {
    seckill
        .subscription("exactly-once")
        .lease(Duration::from_millis(300))
        .batch_size(25)
        .retry(Duration::from_millis(5), Duration::from_millis(50))
        .run_with(store.transactional(applier))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_transactional_consumer_applies_every_event_exactly_once() {
    let (fixture, store, seckill) = setup().await;
    let promotion = seckill.create_promotion(terms(1_000)).await.unwrap().id();
    for i in 0..300 {
        seckill
            .grab(promotion, customer(format!("c{i}")))
            .await
            .unwrap();
    }

    // The first consumer runs on a runtime of its own, killed mid-stream:
    // no release, and a transaction left open on a dropped connection.
    let calls = Arc::new(AtomicUsize::new(0));
    let doomed = Doomed::start(|| async {
        let store = PgStore::connect(fixture.url()).await.unwrap();
        let (seckill, _) = service(Arc::new(store.clone()));
        consume(&seckill, &store, applier(&calls, None))
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while calls.load(Ordering::Relaxed) < 110 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    doomed.kill();
    let before = applied(&store).await;
    assert!(
        !before.is_empty() && before.len() < 301,
        "killed mid-stream, after some batches committed: {}",
        before.len()
    );

    // The survivor takes over once the lease lapses, and fails once in the
    // middle of a batch: that batch is rolled back and applied again whole.
    let survivor_calls = Arc::new(AtomicUsize::new(0));
    let position_to_fail = before.last().unwrap().0 as u64 + 10;
    let survivor = consume(
        &seckill,
        &store,
        applier(&survivor_calls, Some(position_to_fail)),
    );
    // Committed, so in the feed at once (ADR 0011); the bounded wait turns
    // a regression into a failed assertion.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut head = Vec::new();
    while head.len() < 301 && Instant::now() < deadline {
        head = seckill.events_after(0, 10_000).await.unwrap();
    }
    assert_eq!(head.len(), 301);
    while applied(&store).await.len() < head.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rows = applied(&store).await;
    let positions: Vec<u64> = rows.iter().map(|&(p, _)| p as u64).collect();
    let expected: Vec<u64> = head.iter().map(|e| e.position).collect();
    assert_eq!(positions, expected, "every event applied");
    let twice: Vec<_> = rows.iter().filter(|&&(_, n)| n != 1).collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    assert_eq!(survivor.status().failures, 1);
    let lag = seckill
        .subscription_lag("exactly-once")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lag.position, *expected.last().unwrap());
    survivor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_delivery_under_a_lost_lease_writes_nothing() {
    let (_fixture, store, seckill) = setup().await;
    let promotion = seckill.create_promotion(terms(10)).await.unwrap().id();
    seckill.grab(promotion, customer("alice")).await.unwrap();
    let events = seckill.events_after(0, 10).await.unwrap();

    let (old, new) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let lease = Duration::from_millis(100);
    let stale = store
        .claim_subscription("fenced", old, lease, 0)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    store
        .claim_subscription("fenced", new, lease, 0)
        .await
        .unwrap()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let delivery = store.transactional(applier(&calls, None));
    let outcome = delivery.deliver(&stale, &events).await;
    assert!(
        matches!(outcome, Err(DeliveryFailure::Fenced)),
        "{outcome:?}"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 0, "the handler never ran");
    assert!(applied(&store).await.is_empty());
    assert_eq!(store.checkpoint("fenced").await.unwrap(), Some(0));
}
