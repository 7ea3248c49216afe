//! Overload: a burst far over the queue's capacity. Extra grabs get 503
//! `overloaded` with `Retry-After` at once, every accepted grab completes and
//! is durable, the server keeps answering `/healthz` and queries, and its
//! memory stays bounded.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{create_open, violations, ServerProcess};
use seckill_client::Grab;
use seckill_postgres::testing::PgFixture;

/// Grabs sent at once, against a queue of 8 drained one grab per commit.
const BURST: usize = 1_000;
/// The server's peak resident memory must stay under this.
const MEMORY_BOUND_KIB: u64 = 256 * 1024;

/// `VmHWM` (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_capacity_is_shed_fast_and_the_server_stays_responsive() {
    let started = Instant::now();
    let fixture = PgFixture::new().await;
    let server = ServerProcess::builder()
        .database(fixture.url())
        .flags(&["--queue-capacity", "8", "--max-batch", "1"])
        .start()
        .await;
    let pid = server.pid().expect("server pid");
    let client = &server.client;
    let promotion = create_open(client, 100_000).await;
    let id = promotion.promotion_id;

    let burst = (0..BURST).map(|i| async move {
        let customer = format!("burst-{i}");
        let at = Instant::now();
        let grab = client
            .grab(id, &customer)
            .await
            .expect("every grab is answered");
        (customer, grab, at.elapsed())
    });
    // Probes run while the burst is in flight.
    let probes = async {
        let mut slowest = Duration::ZERO;
        for _ in 0..10 {
            let at = Instant::now();
            client.health().await.expect("healthz");
            client.promotion(id).await.expect("the promotion answers");
            slowest = slowest.max(at.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        slowest
    };
    let (outcomes, slowest_probe) = tokio::join!(futures::future::join_all(burst), probes);

    let mut acknowledged = HashMap::new();
    let (mut shed, mut slowest_shed) = (0, Duration::ZERO);
    for (customer, grab, took) in outcomes {
        match grab {
            Grab::Won(coupon) => {
                acknowledged.insert(customer, coupon);
            }
            Grab::Overloaded { retry_after }
            | Grab::ShuttingDown { retry_after }
            | Grab::StorageUnavailable { retry_after } => {
                assert!(retry_after.is_some(), "a 503 without Retry-After");
                shed += 1;
                slowest_shed = slowest_shed.max(took);
            }
            other => panic!("{customer} got {other:?}"),
        }
    }
    let peak = peak_rss_kib(pid);
    assert!(
        shed > 0,
        "a burst of {BURST} over a queue of 8 shed nothing"
    );
    assert!(!acknowledged.is_empty(), "nothing was accepted");
    assert!(
        slowest_shed < Duration::from_secs(3),
        "shedding took {slowest_shed:?}"
    );
    assert!(
        slowest_probe < Duration::from_secs(3),
        "probes took {slowest_probe:?}"
    );
    assert!(peak < MEMORY_BOUND_KIB, "peak memory {peak} KiB");
    let found = violations(client, fixture.pg_store().pool(), &promotion, &acknowledged).await;
    assert!(found.is_empty(), "{found:#?}");
    eprintln!(
        "overload: {BURST} grabs at once, {} accepted, {shed} shed with 503 (slowest {:.0} ms), \
         slowest probe {:.0} ms, peak RSS {} MiB, 0 violations, {:.1} s",
        acknowledged.len(),
        slowest_shed.as_secs_f64() * 1e3,
        slowest_probe.as_secs_f64() * 1e3,
        peak / 1024,
        started.elapsed().as_secs_f64()
    );
    server.kill().await;
}
