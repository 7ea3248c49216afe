//! Two server processes on one database sell one promotion without
//! ownership (the safety net of ADR 0008): every customer asks both at once,
//! thousands of grabs a second for several seconds, so their writers really
//! collide; still nothing is oversold and nobody gets two.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::{create_open, metric, violations, ServerProcess};
use futures::StreamExt;
use seckill_client::{ClientError, Grab};
use seckill_postgres::testing::PgFixture;

const COUPONS: u32 = 3_000;
const CUSTOMERS: usize = 6_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grabs_spread_over_two_servers_neither_oversell_nor_duplicate() {
    let started = Instant::now();
    let fixture = PgFixture::new().await;
    let a = ServerProcess::builder()
        .database(fixture.url())
        .start()
        .await;
    let b = ServerProcess::builder()
        .database(fixture.url())
        .start()
        .await;
    let promotion = create_open(&a.client, COUPONS).await;
    let id = promotion.promotion_id;

    // Each customer grabs on both servers at the same moment.
    type Answer = Result<Grab, ClientError>;
    let outcomes: Vec<(String, Answer, Answer)> = futures::stream::iter(0..CUSTOMERS)
        .map(|i| {
            let (a, b) = (&a.client, &b.client);
            async move {
                let customer = format!("two-{i}");
                let (on_a, on_b) = tokio::join!(a.grab(id, &customer), b.grab(id, &customer));
                (customer, on_a, on_b)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;

    let mut problems = Vec::new();
    let mut acknowledged = HashMap::new();
    let mut unavailable = 0;
    for (customer, on_a, on_b) in outcomes {
        for outcome in [on_a, on_b] {
            match outcome {
                Ok(Grab::Won(coupon)) => {
                    if let Some(first) = acknowledged.insert(customer.clone(), coupon.clone()) {
                        problems.push(format!("{customer} won twice: {first:?} and {coupon:?}"));
                    }
                }
                Ok(Grab::AlreadyGrabbed(_) | Grab::SoldOut) => {}
                // Too many conflicts in a row is a 503; a retry would settle it.
                Ok(grab) if grab.is_unavailable() => unavailable += 1,
                other => problems.push(format!("{customer} got {other:?}")),
            }
        }
    }
    problems.extend(
        violations(
            &a.client,
            fixture.pg_store().pool(),
            &promotion,
            &acknowledged,
        )
        .await,
    );
    let on_b = b
        .client
        .promotion(id)
        .await
        .expect("reading the promotion on b");
    if unavailable == 0 && (acknowledged.len() != COUPONS as usize || on_b.remaining != 0) {
        problems.push(format!(
            "{} coupons acknowledged, {} remaining: the sale should have sold out",
            acknowledged.len(),
            on_b.remaining
        ));
    }
    let conflicts = metric(&a.client, "seckill_conflicts_total").await
        + metric(&b.client, "seckill_conflicts_total").await;
    eprintln!(
        "two servers: {} grabs, {} won, {unavailable} answered 503, {conflicts} conflicts, {} violations, {:.1} s",
        CUSTOMERS * 2,
        acknowledged.len(),
        problems.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(problems.is_empty(), "{problems:#?}");
    a.kill().await;
    b.kill().await;
}
