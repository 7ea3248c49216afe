//! Database outage: PostgreSQL stops in the middle of a sale. Grabs fail fast
//! with 503 and `/readyz` says not ready; when PostgreSQL is back the same
//! server process sells again, and no acknowledged grab is lost.
//!
//! The test starts its own throwaway cluster (`seckill_testkit::postgres::cluster`:
//! `initdb` into a temporary directory, `pg_ctl` on a free port), never a
//! shared one, because it stops and starts it.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{create_open, violations, ServerProcess};
use reqwest::StatusCode;
use seckill_client::{ClientError, Grab};
use seckill_postgres::PgOptions;
use seckill_testkit::postgres::cluster::Cluster;

/// The longest a grab or probe may take while the database is down: the
/// server's `--db-timeout` (2 s) three times, plus slack. A grab queued
/// behind a failing batch waits for that batch's append, for the read that
/// asks whether an append whose answer was lost landed after all, and for
/// the writer's reload, each bounded by the store timeout.
const FAIL_FAST: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grabs_fail_fast_while_postgres_is_down_and_recover_without_a_restart() {
    let started = Instant::now();
    let cluster = Cluster::throwaway();
    cluster.start();
    let log = cluster.dir().join("server.log");
    let mut server = ServerProcess::builder()
        .database(&cluster.url())
        .flags(&["--db-timeout", "2s", "--pool-size", "4"])
        .log_file(&log)
        .start()
        .await;
    let client = server.client.clone();
    let promotion = create_open(&client, 1_000).await;
    let id = promotion.promotion_id;
    let mut acknowledged = HashMap::new();
    for i in 0..50 {
        let customer = format!("before-{i}");
        match client.grab(id, &customer).await {
            Ok(Grab::Won(coupon)) => {
                acknowledged.insert(customer, coupon);
            }
            other => panic!("{customer} before the outage: {other:?}"),
        }
    }

    cluster.stop();
    let outage = Instant::now();
    let mut slowest = Duration::ZERO;
    let grabs = (0..20).map(|i| {
        let client = &client;
        async move {
            let at = Instant::now();
            let outcome = client.grab(id, &format!("during-{i}")).await;
            (outcome, at.elapsed())
        }
    });
    for (outcome, took) in futures::future::join_all(grabs).await {
        slowest = slowest.max(took);
        assert!(
            matches!(&outcome, Ok(grab) if grab.is_unavailable()),
            "a grab while PostgreSQL is down: {outcome:?}"
        );
        assert!(took < FAIL_FAST, "a grab took {took:?} to fail");
    }
    let at = Instant::now();
    let not_ready = client
        .ready()
        .await
        .expect_err("readyz while PostgreSQL is down");
    assert_eq!(not_ready.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(not_ready.retry_after().is_some(), "{not_ready}");
    assert!(at.elapsed() < FAIL_FAST, "readyz took {:?}", at.elapsed());
    client.health().await.expect("the process itself is fine");
    // The log tells of the outage, but not once per request: a line per
    // kind of failure per 10 s interval.
    let lines = std::fs::read_to_string(&log).expect("the server's log");
    let intervals = 1 + outage.elapsed().as_secs() / 10;
    // A line's message follows its target: `seckill_server::problem: storage failure …`.
    let count = |kind: &str| {
        let message = format!(": {kind} ");
        lines.lines().filter(|line| line.contains(&message)).count() as u64
    };
    assert!(
        count("storage failure") + count("outcome unknown") >= 1,
        "{lines}"
    );
    for kind in [
        "storage failure",
        "outcome unknown",
        "commit failed",
        "cannot load promotion",
        "cannot reload promotion; writer stops",
        "response failed",
    ] {
        assert!(
            count(kind) <= intervals,
            "{} lines of {kind:?} in {intervals} intervals:\n{lines}",
            count(kind)
        );
    }

    cluster.start();
    let back = Instant::now();
    let first = loop {
        match client.grab(id, "after-0").await {
            Ok(Grab::Won(coupon)) => break coupon,
            Ok(grab) if grab.is_unavailable() => {}
            Err(ClientError::Transport { .. }) => {}
            other => panic!("the first grab after the outage: {other:?}"),
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "no recovery in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let recovery = back.elapsed();
    assert!(server.is_running(), "recovered without a restart");
    acknowledged.insert("after-0".to_owned(), first);
    for i in 0..20 {
        let customer = format!("during-{i}");
        // A database just back from a crash may still stall a commit past
        // the 2 s store timeout: an unavailable answer is asked again (it
        // acknowledges nothing), anything else must be an answer.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match client.grab(id, &customer).await {
                Ok(Grab::Won(coupon)) => {
                    acknowledged.insert(customer, coupon);
                    break;
                }
                // The append may have committed just as the database went away.
                Ok(Grab::AlreadyGrabbed(_)) => break,
                Ok(grab) if grab.is_unavailable() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => panic!("{customer} after the outage: {other:?}"),
            }
        }
    }
    client.ready().await.expect("ready again");

    // The server's schema (the default) on the search_path, as its own pool has it.
    let connect = PgOptions::default().apply_to(cluster.url().parse().expect("the cluster's URL"));
    let pool = sqlx::PgPool::connect_with(connect).await.expect("pool");
    let found = violations(&client, &pool, &promotion, &acknowledged).await;
    assert!(found.is_empty(), "{found:#?}");
    eprintln!(
        "outage: slowest 503 {:.2} s, recovered {:.2} s after PostgreSQL came back, \
         {} coupons checked, 0 violations, {:.1} s",
        slowest.as_secs_f64(),
        recovery.as_secs_f64(),
        acknowledged.len(),
        started.elapsed().as_secs_f64()
    );
    pool.close().await;
    server.kill().await;
}
