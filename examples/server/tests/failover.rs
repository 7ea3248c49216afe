//! PostgreSQL failovers under a sale, on a real Patroni cluster (three nodes
//! in synchronous mode, etcd, HAProxy without `shutdown-sessions`), through
//! the real server, which is never restarted: the primary's postmaster
//! killed, its whole node killed, and a planned switchover. Every
//! acknowledged grab must be on the new primary, no customer may hold two
//! coupons, grabs must be answered 201 again within a bound, and a sale
//! afterwards sells out to exactly its count.

mod common;
mod patroni;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{create_open, violations, ServerProcess};
use patroni::sale::Sale;
use patroni::Patroni;
use seckill_client::Grab;

/// How soon grabs must be answered 201 again after the event: the leader
/// key's TTL (10 s) for a node kill, the store timeout twice, and slack for
/// a disk that stalls.
const RECOVERS_WITHIN: Duration = Duration::from_secs(45);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failovers_lose_no_acknowledged_grab_and_need_no_restart() {
    let started = Instant::now();
    let mut cluster = Patroni::start(false).await;
    let mut server = ServerProcess::builder()
        .database(&cluster.primary_url())
        .flags(&["--db-timeout", "2s", "--pool-size", "8"])
        .start()
        .await;
    let client = server.client.clone();
    let promotion = create_open(&client, 1_000_000).await;
    let id = promotion.promotion_id;
    let mut acknowledged = HashMap::new();
    let mut recoveries = Vec::new();

    for round in ["postmaster", "node", "switchover"] {
        let sale = Sale::start(&client, id, round, 8);
        sale.won_after(Instant::now(), RECOVERS_WITHIN).await;
        let leader = cluster.leader().await;
        let at = Instant::now();
        match round {
            "postmaster" => cluster.kill_postmaster(leader),
            "node" => cluster.kill_node(leader).await,
            _ => cluster.switchover().await,
        }
        // Grabs go on through the failover, until the new primary has taken
        // one and a second more.
        cluster.new_leader(leader).await;
        sale.won_after(Instant::now(), RECOVERS_WITHIN).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let gap = sale.longest_gap(at);
        assert!(gap < RECOVERS_WITHIN, "{round}: {gap:?} without a grab won");
        recoveries.push((round, gap));
        acknowledged.extend(sale.stop().await);
        assert!(server.is_running(), "{round}: recovered without a restart");
        if round == "node" {
            cluster.restart_node(leader).await;
        }
        cluster.wait_ready().await;
    }

    // Every acknowledged grab is on the primary now, once; the counts add up.
    let pool = sqlx::PgPool::connect_with(
        seckill_postgres::PgOptions::default().apply_to(cluster.primary_url().parse().unwrap()),
    )
    .await
    .unwrap();
    let found = violations(&client, &pool, &promotion, &acknowledged).await;
    assert!(found.is_empty(), "{found:#?}");

    // And a sale afterwards sells out to exactly its count.
    let small = create_open(&client, 200).await;
    let mut won = 0;
    for i in 0..250 {
        let customer = format!("after-{i}");
        let deadline = Instant::now() + RECOVERS_WITHIN;
        loop {
            match client.grab(small.promotion_id, &customer).await {
                Ok(Grab::Won(_)) => {
                    won += 1;
                    break;
                }
                Ok(grab) if grab.is_unavailable() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(_) => break,
                Err(error) => panic!("{customer}: {error}"),
            }
        }
    }
    assert_eq!(won, 200, "sold out to exactly its count");
    let none = HashMap::new();
    let found = violations(&client, &pool, &small, &none).await;
    assert!(found.is_empty(), "{found:#?}");
    eprintln!(
        "failover: {} grabs acknowledged, 0 lost; longest time without a 201: {recoveries:?}; {:.1} s",
        acknowledged.len(),
        started.elapsed().as_secs_f64()
    );
    pool.close().await;
    server.kill().await;
}
