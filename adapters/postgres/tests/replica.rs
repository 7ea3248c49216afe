//! Queries from a standby ([`PgReplica`]), on a throwaway primary and its
//! streaming standby: answered by the standby while it is within the bound,
//! by the primary once it falls behind (its replay paused), and by the
//! standby again once it catches up.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use common::Writer;
use seckill_app::ProjectionStore;
use seckill_domain::CustomerId;
use seckill_postgres::{PgOptions, PgReplica, PgStore};
use seckill_testkit::postgres::cluster::Cluster;
use sqlx::{Connection, PgConnection};

/// Generous: replication and a stalled disk can take seconds.
const BOUND: Duration = Duration::from_secs(60);

/// Waits until `check` holds.
async fn until<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < BOUND, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn holds(replica: &PgReplica, customer: &str) -> usize {
    let customer = CustomerId::parse(customer).unwrap();
    replica.coupons_of(&customer).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_come_from_the_standby_within_the_bound_and_from_the_primary_past_it() {
    let primary = Cluster::throwaway();
    primary.start();
    let standby = primary.standby();
    standby.start();
    let store = PgStore::connect_with(&primary.url(), PgOptions::default())
        .await
        .unwrap();
    let mut writer = Writer::create(&store, 100).await;
    writer.append_grabs(&store, "early", 3).await;
    let standby_url = standby.url();
    let replica = |max_lag| {
        PgReplica::connect_with(&standby_url, PgOptions::default(), store.clone(), max_lag)
    };
    // One that trusts the standby however far behind, one that does not.
    let lenient = replica(Duration::from_secs(3_600)).await.unwrap();
    let strict = replica(Duration::from_millis(200)).await.unwrap();
    until("the standby has the early coupons", || async {
        holds(&lenient, "early2").await == 1
    })
    .await;

    // The standby stops replaying, and the primary sells on.
    let mut on_standby = PgConnection::connect(&standby.url()).await.unwrap();
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut on_standby)
        .await
        .unwrap();
    writer.append_grabs(&store, "late", 1).await;
    until("the standby is past the strict bound", || async {
        strict.lag().await.unwrap() > Duration::from_millis(400)
    })
    .await;
    assert_eq!(
        holds(&strict, "late0").await,
        1,
        "past its bound, the query goes to the primary"
    );
    assert_eq!(
        holds(&lenient, "late0").await,
        0,
        "within its bound, the query is the standby's, stale as it is"
    );
    let summary = strict.promotion(writer.id).await.unwrap().unwrap();
    assert_eq!(summary.last_sequence, 5, "the primary's summary");

    // Replaying again, the standby catches up and serves both.
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&mut on_standby)
        .await
        .unwrap();
    until("the standby caught up", || async {
        strict.lag().await.unwrap() == Duration::ZERO && holds(&lenient, "late0").await == 1
    })
    .await;
    assert_eq!(holds(&strict, "late0").await, 1);
}
