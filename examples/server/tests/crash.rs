//! Crash test: the real server on PostgreSQL is `kill -9`ed in the middle of a
//! flash sale, restarted on the same database, and every promise is checked
//! in the store and through the API (see `common::violations`).
//!
//! ```text
//! cargo test -p seckill-server --test crash                      # 3 rounds
//! SECKILL_CRASH_ROUNDS=20 cargo test -p seckill-server --test crash -- --nocapture
//! tests/crash.sh 20                                                  # the same, with totals
//! ```

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{create_open, violations, ServerProcess};
use futures::StreamExt;
use seckill_client::api::CouponDto;
use seckill_client::{ClientError, Grab};
use seckill_postgres::testing::PgFixture;

/// Coupons per round; fewer than the customers, so rounds that run long sell out.
const COUPONS: u32 = 400;
const CUSTOMERS: usize = 800;
/// Grabs in flight at once.
const CONCURRENCY: usize = 32;

#[derive(Debug, Default)]
struct Round {
    acknowledged: usize,
    unanswered: usize,
    violations: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_grabs_survive_kill_9_mid_load_with_nothing_oversold() {
    let rounds: usize = std::env::var("SECKILL_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let started = Instant::now();
    let (mut kills, mut acknowledged, mut unanswered, mut failed) = (0, 0, 0, 0);
    let mut all_violations = Vec::new();
    for round in 0..rounds {
        let result = crash_round(round).await;
        kills += 1;
        acknowledged += result.acknowledged;
        unanswered += result.unanswered;
        if !result.violations.is_empty() {
            failed += 1;
        }
        eprintln!(
            "round {}/{rounds}: {} acknowledged before the kill, {} unanswered, {} violations",
            round + 1,
            result.acknowledged,
            result.unanswered,
            result.violations.len()
        );
        all_violations.extend(result.violations);
    }
    eprintln!(
        "crash rounds: {} passed, {failed} failed; kills survived: {kills}; \
         grabs acknowledged before a kill: {acknowledged}; \
         unanswered (in flight at the kill or sent after it, all retried): {unanswered}; \
         violations: {}; {:.1} s",
        rounds - failed,
        all_violations.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(all_violations.is_empty(), "violations: {all_violations:#?}");
}

/// One sale, one `kill -9`, one restart, every check.
async fn crash_round(round: usize) -> Round {
    let fixture = PgFixture::new().await;
    let server = ServerProcess::builder()
        .database(fixture.url())
        .start()
        .await;
    let promotion = create_open(&server.client, COUPONS).await;
    let id = promotion.promotion_id;

    // Each round kills at a different point of the sale.
    let kill_after = 20 + (round * 53) % 300;
    let acked: Arc<Mutex<HashMap<String, CouponDto>>> = Arc::default();
    let mut round_result = Round::default();
    let load = {
        let (client, acked) = (server.client.clone(), acked.clone());
        tokio::spawn(async move {
            futures::stream::iter(0..CUSTOMERS)
                .map(|i| {
                    let (client, acked) = (client.clone(), acked.clone());
                    async move {
                        let customer = format!("crash-{round}-{i}");
                        let outcome = client.grab(id, &customer).await;
                        if let Ok(Grab::Won(coupon)) = &outcome {
                            acked
                                .lock()
                                .expect("acks")
                                .insert(customer.clone(), coupon.clone());
                        }
                        (customer, outcome)
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect::<Vec<_>>()
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("acks").len() < kill_after && !load.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the load never reached {kill_after} grabs"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill().await;
    let outcomes = load.await.expect("load task");
    let acked = acked.lock().expect("acks").clone();
    round_result.acknowledged = acked.len();

    for (customer, outcome) in &outcomes {
        match outcome {
            // Won, sold out, or no answer because of the kill.
            Ok(Grab::Won(_) | Grab::SoldOut) | Err(ClientError::Transport { .. }) => {}
            other => round_result
                .violations
                .push(format!("{customer} got {other:?} before the kill")),
        }
    }

    // Restart on the same database; everyone who got no answer asks again and
    // must be told either their coupon or no coupon, never a second one.
    let server = ServerProcess::builder()
        .database(fixture.url())
        .start()
        .await;
    let mut acked_after = acked.clone();
    for (customer, outcome) in &outcomes {
        if !matches!(outcome, Err(ClientError::Transport { .. })) {
            continue;
        }
        round_result.unanswered += 1;
        match server.client.grab(id, customer).await {
            Ok(Grab::Won(coupon)) => {
                acked_after.insert(customer.clone(), coupon);
            }
            Ok(Grab::AlreadyGrabbed(_) | Grab::SoldOut) => {}
            other => round_result.violations.push(format!(
                "{customer}'s retry after the restart got {other:?}"
            )),
        }
    }
    let pool = fixture.pg_store().pool();
    round_result.violations.extend(
        violations(&server.client, pool, &promotion, &acked_after)
            .await
            .into_iter()
            .map(|v| format!("round {round}: {v}")),
    );
    server.kill().await;
    round_result
}
