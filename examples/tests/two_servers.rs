//! Two server processes on one database sell one promotion: every customer
//! asks both at once, and still nothing is oversold and nobody gets two.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::{create_open, get_json, grab, violations, Grab, ServerProcess};
use futures::StreamExt;
use reqwest::StatusCode;
use seckill_examples::server::PromotionDto;
use seckill_tests::postgres::PgFixture;

const COUPONS: u32 = 150;
const CUSTOMERS: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grabs_spread_over_two_servers_neither_oversell_nor_duplicate() {
    let started = Instant::now();
    let fixture = PgFixture::new().await;
    let client = common::client();
    let a = ServerProcess::start(fixture.url(), &[]).await;
    let b = ServerProcess::start(fixture.url(), &[]).await;
    let promotion = create_open(&client, &a.base, COUPONS).await;
    let id = promotion.promotion_id;

    // Each customer grabs on both servers at the same moment.
    let outcomes: Vec<(String, Grab, Grab)> = futures::stream::iter(0..CUSTOMERS)
        .map(|i| {
            let (client, a, b) = (client.clone(), a.base.clone(), b.base.clone());
            async move {
                let customer = format!("two-{i}");
                let (on_a, on_b) = tokio::join!(
                    grab(&client, &a, id, &customer),
                    grab(&client, &b, id, &customer)
                );
                (customer, on_a, on_b)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    let mut problems = Vec::new();
    let mut acknowledged = HashMap::new();
    let mut unavailable = 0;
    for (customer, on_a, on_b) in outcomes {
        for outcome in [on_a, on_b] {
            match outcome {
                Grab::Won(coupon) => {
                    if let Some(first) = acknowledged.insert(customer.clone(), coupon.clone()) {
                        problems.push(format!("{customer} won twice: {first:?} and {coupon:?}"));
                    }
                }
                Grab::Lost(StatusCode::CONFLICT | StatusCode::GONE) => {}
                // Too many conflicts in a row is a 503; a retry would settle it.
                Grab::Lost(StatusCode::SERVICE_UNAVAILABLE) => unavailable += 1,
                other => problems.push(format!("{customer} got {other:?}")),
            }
        }
    }
    problems.extend(
        violations(
            &client,
            &a.base,
            fixture.pg_store().pool(),
            &promotion,
            &acknowledged,
        )
        .await,
    );
    let on_b: PromotionDto = get_json(&client, &b.url(&format!("/query/promotions/{id}"))).await;
    if unavailable == 0 && (acknowledged.len() != COUPONS as usize || on_b.remaining != 0) {
        problems.push(format!(
            "{} coupons acknowledged, {} remaining: the sale should have sold out",
            acknowledged.len(),
            on_b.remaining
        ));
    }
    eprintln!(
        "two servers: {} grabs, {} won, {unavailable} answered 503, {} violations, {:.1} s",
        CUSTOMERS * 2,
        acknowledged.len(),
        problems.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(problems.is_empty(), "{problems:#?}");
    a.kill().await;
    b.kill().await;
}
