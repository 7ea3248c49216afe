//! Queries from a read replica (`--read-database-url`), on a throwaway
//! primary and its streaming standby, through the real server: grabs go to
//! the primary; a customer's coupons come from the standby while it is
//! within `--read-max-lag` (a server with a bound of an hour sees the
//! standby's stale answer), and from the primary once it falls behind.

mod common;

use std::time::{Duration, Instant};

use common::{create_open, ServerProcess};
use seckill_client::Grab;
use seckill_testkit::postgres::cluster::Cluster;
use sqlx::{Connection, PgConnection};

/// Generous: replication and a stalled disk can take seconds.
const BOUND: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_read_the_replica_within_its_lag_and_the_primary_past_it() {
    let primary = Cluster::throwaway();
    primary.start();
    let standby = primary.standby();
    standby.start();
    let server = ServerProcess::builder()
        .database(&primary.url())
        .flags(&[
            "--read-database-url",
            &standby.url(),
            "--read-max-lag",
            "300ms",
        ])
        .start()
        .await;
    // A second server that trusts the standby however far behind it is.
    let lenient = ServerProcess::builder()
        .database(&primary.url())
        .flags(&[
            "--read-database-url",
            &standby.url(),
            "--read-max-lag",
            "1h",
        ])
        .start()
        .await;
    let client = server.client.clone();
    let promotion = create_open(&client, 100).await;
    let id = promotion.promotion_id;
    assert!(matches!(client.grab(id, "early").await, Ok(Grab::Won(_))));
    let start = Instant::now();
    while client.coupons_of("early").await.unwrap().len() != 1 {
        assert!(start.elapsed() < BOUND, "the early coupon never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The standby stops replaying: a grab's coupon is on the primary only.
    let mut on_standby = PgConnection::connect(&standby.url()).await.unwrap();
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut on_standby)
        .await
        .unwrap();
    assert!(matches!(client.grab(id, "late").await, Ok(Grab::Won(_))));
    // Once the standby is past the bound, the query goes to the primary and
    // finds it, though the standby still has not replayed it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let start = Instant::now();
    while client.coupons_of("late").await.unwrap().len() != 1 {
        assert!(start.elapsed() < BOUND, "the late coupon never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let on_the_standby: i64 =
        sqlx::query_scalar("SELECT count(*) FROM seckill.coupons WHERE customer_id = 'late'")
            .fetch_one(&mut on_standby)
            .await
            .unwrap();
    assert_eq!(on_the_standby, 0, "the answer came from the primary");
    assert!(
        lenient.client.coupons_of("late").await.unwrap().is_empty(),
        "within its bound, a query is the standby's, stale as it is"
    );
    let promotion = client.promotion(id).await.unwrap();
    assert_eq!(promotion.number_of_coupons - promotion.remaining, 2);

    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&mut on_standby)
        .await
        .unwrap();
    server.kill().await;
    lenient.kill().await;
}
