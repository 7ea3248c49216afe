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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{create_open, violations, ServerProcess};
use patroni::Patroni;
use seckill_client::api::CouponDto;
use seckill_client::{Client, Grab};
use tokio_util::sync::CancellationToken;

/// How soon grabs must be answered 201 again after the event: the leader
/// key's TTL (10 s) for a node kill, the store timeout twice, and slack for
/// a disk that stalls.
const RECOVERS_WITHIN: Duration = Duration::from_secs(45);

/// Closed-loop grabbers, each with customers of its own, retrying a 503
/// (which acknowledges nothing) until answered.
struct Sale {
    acknowledged: Arc<Mutex<HashMap<String, CouponDto>>>,
    won_at: Arc<Mutex<Vec<Instant>>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Sale {
    fn start(client: &Client, promotion: uuid::Uuid, round: &str) -> Self {
        let acknowledged = Arc::new(Mutex::new(HashMap::new()));
        let won_at = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let tasks = (0..8)
            .map(|worker| {
                let (client, acknowledged, won_at, stop) = (
                    client.clone(),
                    Arc::clone(&acknowledged),
                    Arc::clone(&won_at),
                    stop.clone(),
                );
                let round = round.to_owned();
                tokio::spawn(async move {
                    let mut i = 0;
                    while !stop.is_cancelled() {
                        let customer = format!("{round}-{worker}-{i}");
                        loop {
                            match client.grab(promotion, &customer).await {
                                Ok(Grab::Won(coupon)) => {
                                    won_at.lock().unwrap().push(Instant::now());
                                    acknowledged.lock().unwrap().insert(customer, coupon);
                                    break;
                                }
                                Ok(Grab::AlreadyGrabbed(coupon)) => {
                                    acknowledged.lock().unwrap().insert(customer, coupon);
                                    break;
                                }
                                Ok(grab) if grab.is_unavailable() => {}
                                Err(_) => {}
                                Ok(other) => panic!("{customer}: {other:?}"),
                            }
                            if stop.is_cancelled() {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Self {
            acknowledged,
            won_at,
            stop,
            tasks,
        }
    }

    /// Until a grab is won after `since`; how long that took.
    async fn won_after(&self, since: Instant) -> Duration {
        loop {
            if let Some(&at) = self.won_at.lock().unwrap().iter().find(|&&at| at > since) {
                return at - since;
            }
            assert!(
                since.elapsed() < RECOVERS_WITHIN,
                "no grab won for {RECOVERS_WITHIN:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The longest time without a won grab from `since` until now.
    fn longest_gap(&self, since: Instant) -> Duration {
        let mut won: Vec<Instant> = self.won_at.lock().unwrap().clone();
        won.retain(|&at| at > since);
        won.sort_unstable();
        won.push(Instant::now());
        let mut previous = since;
        let mut longest = Duration::ZERO;
        for at in won {
            longest = longest.max(at - previous);
            previous = at;
        }
        longest
    }

    async fn stop(self) -> HashMap<String, CouponDto> {
        self.stop.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
        Arc::try_unwrap(self.acknowledged)
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

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
        let sale = Sale::start(&client, id, round);
        sale.won_after(Instant::now()).await;
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
        sale.won_after(Instant::now()).await;
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
