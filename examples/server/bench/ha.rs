//! The high-availability benchmarks of docs/benchmarks.md, on a Patroni
//! cluster of their own (three nodes in synchronous mode, etcd and HAProxy,
//! as `tests/patroni` starts them) and the release server with its default
//! settings:
//!
//! - `failover`: while a sale runs, the primary's postmaster is killed, then
//!   in another round its whole node. The figure is the longest time
//!   without a 201. The baseline, measured in the same rounds, is the
//!   database's own unavailability: the longest time in which a fresh
//!   connection through HAProxy could not write (`SELECT txid_current()`).
//!   Every acknowledged grab is checked on the new primary at the end.
//! - `queries`: `GET /query/coupons/{customerId}` per second while a sale
//!   runs, with `--read-database-url` on HAProxy's replica port, against the
//!   same with every query on the primary; alternating, a fresh server and
//!   promotion each time.
//!
//! ```sh
//! cargo bench -p seckill-server --bench ha -- --workloads failover,queries --rounds 3
//! ```
//!
//! It needs what the failover test needs (`apt-get install patroni
//! etcd-server haproxy`) and runs everything on loopback under a temporary
//! directory.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/patroni/mod.rs"]
mod patroni;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{create_open, violations, ServerProcess};
use patroni::sale::{longest_gap, Sale};
use patroni::Patroni;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

/// Generous: a node kill waits out the leader key's TTL, and disks stall.
const WITHIN: Duration = Duration::from_secs(90);

#[derive(Parser)]
struct Args {
    /// `failover`, `queries`, or both.
    #[arg(long, value_delimiter = ',', default_value = "failover,queries")]
    workloads: Vec<String>,
    /// Rounds of each measurement.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds each query measurement counts, after a 2 s warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Closed-loop query clients (the sale runs 32 grabbers beside them).
    #[arg(long, default_value_t = 32)]
    readers: usize,
    /// Ignored: `cargo bench` passes `--bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    for workload in &args.workloads {
        match workload.as_str() {
            "failover" => failover(args.rounds).await,
            "queries" => queries(&args).await,
            other => panic!("unknown workload {other}: failover or queries"),
        }
    }
}

/// A client that opens a fresh connection through HAProxy every 20 ms and
/// writes: when the database itself could take writes.
struct Probe {
    wrote_at: Arc<Mutex<Vec<Instant>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Probe {
    fn start(url: String) -> Self {
        let wrote_at = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (wrote_at, stop) = (Arc::clone(&wrote_at), stop.clone());
            async move {
                while !stop.is_cancelled() {
                    let write = async {
                        let mut connection = sqlx::PgConnection::connect(&url).await?;
                        sqlx::query("SELECT txid_current()")
                            .execute(&mut connection)
                            .await?;
                        connection.close().await
                    };
                    if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(1), write).await {
                        wrote_at.lock().unwrap().push(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Self {
            wrote_at,
            stop,
            task,
        }
    }

    async fn wrote_after(&self, since: Instant) {
        while !self.wrote_at.lock().unwrap().iter().any(|&at| at > since) {
            assert!(since.elapsed() < WITHIN, "the database took no write");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn longest_gap(&self, since: Instant) -> Duration {
        longest_gap(&self.wrote_at.lock().unwrap(), since)
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

fn machine() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{} cores, load {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

async fn failover(rounds: usize) {
    println!(
        "== failover: the longest time without a 201, server on its defaults ({})",
        machine()
    );
    let mut cluster = Patroni::start(false).await;
    let server = ServerProcess::builder()
        .database(&cluster.primary_url())
        .start()
        .await;
    let client = server.client.clone();
    let promotion = create_open(&client, 10_000_000).await;
    let id = promotion.promotion_id;
    let mut acknowledged = HashMap::new();
    let mut figures: Vec<(&str, Duration, Duration)> = Vec::new();
    for round in 1..=rounds {
        for kind in ["postmaster", "node"] {
            let sale = Sale::start(&client, id, &format!("{kind}{round}"), 8);
            let probe = Probe::start(cluster.primary_url());
            sale.won_after(Instant::now(), WITHIN).await;
            probe.wrote_after(Instant::now()).await;
            let leader = cluster.leader().await;
            let at = Instant::now();
            if kind == "node" {
                cluster.kill_node(leader).await;
            } else {
                cluster.kill_postmaster(leader);
            }
            cluster.new_leader(leader).await;
            sale.won_after(Instant::now(), WITHIN).await;
            probe.wrote_after(Instant::now()).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (server_gap, database_gap) = (sale.longest_gap(at), probe.longest_gap(at));
            println!(
                "round {round} {kind:>10} kill: no 201 for {:.1} s; the database took no write for {:.1} s; ratio {:.2}",
                server_gap.as_secs_f64(),
                database_gap.as_secs_f64(),
                server_gap.as_secs_f64() / database_gap.as_secs_f64()
            );
            figures.push((kind, server_gap, database_gap));
            acknowledged.extend(sale.stop().await);
            probe.stop().await;
            if kind == "node" {
                cluster.restart_node(leader).await;
            }
            cluster.wait_ready().await;
        }
    }
    let url = cluster.primary_url().parse().expect("the primary's URL");
    let pool = sqlx::PgPool::connect_with(seckill_postgres::PgOptions::default().apply_to(url))
        .await
        .expect("connecting to the primary");
    let found = violations(&client, &pool, &promotion, &acknowledged).await;
    assert!(
        found.is_empty(),
        "the figures come from a run that lost grabs: {found:#?}"
    );
    for kind in ["postmaster", "node"] {
        let range = |pick: fn(&(&str, Duration, Duration)) -> Duration| {
            let mut all: Vec<f64> = figures
                .iter()
                .filter(|f| f.0 == kind)
                .map(|f| pick(f).as_secs_f64())
                .collect();
            all.sort_by(f64::total_cmp);
            format!("{:.1}–{:.1} s", all[0], all[all.len() - 1])
        };
        println!(
            "{kind} kill, {rounds} rounds: no 201 for {}; database {}",
            range(|f| f.1),
            range(|f| f.2)
        );
    }
    println!(
        "{} grabs acknowledged, 0 lost, no customer twice",
        acknowledged.len()
    );
    pool.close().await;
    server.kill().await;
}

async fn queries(args: &Args) {
    println!(
        "== queries: GET /query/coupons/{{customerId}} while a sale runs, {} readers, {} s ({})",
        args.readers,
        args.seconds,
        machine()
    );
    let cluster = Patroni::start(false).await;
    let mut rates: HashMap<bool, Vec<f64>> = HashMap::new();
    for round in 1..=args.rounds {
        for replica in [true, false] {
            let replica_url = cluster.replica_url();
            let flags: &[&str] = if replica {
                &["--read-database-url", &replica_url]
            } else {
                &[]
            };
            let server = ServerProcess::builder()
                .database(&cluster.primary_url())
                .flags(flags)
                .start()
                .await;
            let client = server.client.clone();
            let id = create_open(&client, 10_000_000).await.promotion_id;
            let sale = Sale::start(&client, id, "q", 32);
            tokio::time::sleep(Duration::from_secs(2)).await;
            let (won_before, start) = (sale.won(), Instant::now());
            let until = start + Duration::from_secs(args.seconds);
            let readers = (0..args.readers).map(|reader| {
                let client = client.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut i = 0;
                    while Instant::now() < until {
                        // Customers of the sale's first grabs: most hold a coupon.
                        let customer = format!("q-{}-{}", reader % 32, i % 50);
                        let at = Instant::now();
                        client.coupons_of(&customer).await.expect("a query");
                        latencies.push(at.elapsed());
                        i += 1;
                    }
                    latencies
                })
            });
            let mut latencies = Vec::new();
            for reader in futures::future::join_all(readers).await {
                latencies.extend(reader.unwrap());
            }
            let elapsed = start.elapsed().as_secs_f64();
            let grabs = (sale.won() - won_before) as f64 / elapsed;
            sale.stop().await;
            latencies.sort_unstable();
            let rate = latencies.len() as f64 / elapsed;
            let p99 = latencies[latencies.len() * 99 / 100];
            println!(
                "round {round} {:>8}: {rate:.0} queries/s (p99 {:.1} ms) beside {grabs:.0} grabs/s",
                if replica { "replica" } else { "primary" },
                p99.as_secs_f64() * 1000.0
            );
            rates.entry(replica).or_default().push(rate);
            server.kill().await;
        }
    }
    let (on_replica, on_primary) = (&rates[&true], &rates[&false]);
    let ratios: Vec<String> = on_replica
        .iter()
        .zip(on_primary)
        .map(|(r, p)| format!("{:.2}", r / p))
        .collect();
    println!("replica / primary, round by round: {}", ratios.join(", "));
}
