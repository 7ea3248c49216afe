//! A server that stops taking writes under a live pool: what a failover
//! does to the connections a load balancer leaves on the old primary, which
//! comes back as a standby. On a throwaway cluster of its own, turned
//! read-only for every session (`default_transaction_read_only`, reloaded)
//! and back, while the store keeps its pool.

mod common;

use std::time::{Duration, Instant};

use common::Writer;
use seckill_app::{EventStore, StoreError};
use seckill_postgres::{PgOptions, PgStore};
use seckill_testkit::postgres::cluster::Cluster;
use sqlx::{Connection, PgConnection};

/// Generous: a stalled disk can hold a reload or a connection for seconds.
const BOUND: Duration = Duration::from_secs(60);

/// The store's sessions on the server.
async fn sessions(admin: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(PgOptions::default().application_name)
        .fetch_one(admin)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_taking_writes_is_left_and_taken_back() {
    let cluster = Cluster::throwaway();
    cluster.start();
    let url = cluster.url();
    let options = PgOptions::default()
        .with_max_connections(4)
        .with_acquire_timeout(Duration::from_secs(1));
    let store = PgStore::connect_with(&url, options).await.unwrap();
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let mut writer = Writer::create(&store, 100).await;
    // Several pooled connections, as under load.
    let pings: Vec<_> = (0..4).map(|_| store.ping()).collect();
    for ping in futures::future::join_all(pings).await {
        ping.unwrap();
    }
    writer.append_grabs(&store, "before", 3).await;
    assert!(
        sessions(&mut admin).await >= 2,
        "the pool holds connections"
    );

    cluster.set_read_only(true).await;

    // A write there is refused, nothing is written, and it says so as a
    // store that cannot take the call, not as a failure of the call.
    let during = writer.commit(writer.grabs("during", 1));
    let error = store.append(&during).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    // Readiness fails, and says why.
    let error = store.ping().await.unwrap_err();
    assert!(
        error.to_string().contains("takes no writes"),
        "the readiness answer says why: {error}"
    );
    // The pool keeps no connection to a server that takes no writes: the
    // ones it had are dropped at checkout, new ones are refused.
    let start = Instant::now();
    loop {
        let _ = store.append(&during).await;
        if sessions(&mut admin).await == 0 {
            break;
        }
        assert!(
            start.elapsed() < BOUND,
            "the pool kept read-only connections"
        );
    }
    let error = store.ping().await.unwrap_err();
    assert!(
        error.to_string().contains("takes no writes"),
        "with every connection refused, readiness still says why: {error}"
    );

    cluster.set_read_only(false).await;

    // The same process writes again, without a restart: the commit nothing
    // was written of lands as decided.
    let start = Instant::now();
    while let Err(error) = store.append(&during).await {
        assert!(
            matches!(error, StoreError::Unavailable(_)),
            "only unavailable while it recovers: {error:?}"
        );
        assert!(
            start.elapsed() < BOUND,
            "the store never wrote again: {error}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.ping().await.unwrap();
    assert_eq!(store.load_events(writer.id, 0).await.unwrap().len(), 5);
}
