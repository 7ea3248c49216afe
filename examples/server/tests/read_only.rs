//! A primary that comes back as a standby under a running server, as after
//! a failover when the load balancer leaves the server's connections on the
//! old primary: `/readyz` fails and says why, grabs answer 503 and
//! acknowledge nothing, and once the server takes writes again both recover
//! in the same process. On a throwaway cluster of its own, turned read-only
//! for every session and back.

mod common;

use std::time::{Duration, Instant};

use common::{create_open, ServerProcess};
use reqwest::StatusCode;
use seckill_client::Grab;
use seckill_testkit::postgres::cluster::Cluster;

/// Generous: the server's `--db-timeout` (2 s) several times, and a disk
/// that stalls.
const BOUND: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_server_takes_no_writes_and_passes_after() {
    let cluster = Cluster::throwaway();
    cluster.start();
    let mut server = ServerProcess::builder()
        .database(&cluster.url())
        .flags(&["--db-timeout", "2s", "--pool-size", "4"])
        .start()
        .await;
    let client = server.client.clone();
    let promotion = create_open(&client, 100).await;
    let id = promotion.promotion_id;
    client.ready().await.expect("ready before");
    assert!(matches!(client.grab(id, "before").await, Ok(Grab::Won(_))));

    cluster.set_read_only(true).await;

    // Readiness fails, with a reason an operator can act on.
    let start = Instant::now();
    let not_ready = loop {
        match client.ready().await {
            Err(error) => break error,
            Ok(()) => assert!(start.elapsed() < BOUND, "/readyz stayed 200"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(not_ready.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(
        not_ready.to_string().contains("takes no writes"),
        "/readyz says why: {not_ready}"
    );
    // A grab is refused as unavailable: nothing was written.
    let during = client.grab(id, "during").await;
    assert!(
        matches!(&during, Ok(grab) if grab.is_unavailable()),
        "{during:?}"
    );

    cluster.set_read_only(false).await;

    // The same process is ready and sells again; the refused grab was not
    // written, so its customer wins now.
    let start = Instant::now();
    while let Err(error) = client.ready().await {
        assert!(start.elapsed() < BOUND, "not ready again: {error}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = Instant::now();
    loop {
        match client.grab(id, "during").await {
            Ok(Grab::Won(_)) => break,
            Ok(grab) if grab.is_unavailable() && start.elapsed() < BOUND => {}
            other => panic!("the grab after recovery: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.is_running(), "recovered without a restart");
    let summary = client.promotion(id).await.expect("the promotion");
    assert_eq!(summary.granted, 2, "before and during, once each");
    server.kill().await;
}
