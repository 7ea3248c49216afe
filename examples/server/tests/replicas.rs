//! Replicas of the real server on one PostgreSQL (issue "Replicas", ADR
//! 0008): every replica sells, a promotion has one owner, and neither a
//! `kill -9` of the owner nor a rolling restart loses an acknowledged grab,
//! oversells, or gives anyone two coupons.
//!
//! `SECKILL_REPLICA_ROUNDS` sets how many owners the kill test kills (2 by
//! default).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use common::{create_open, metric, violations, ServerProcess};
use futures::StreamExt;
use seckill_client::api::{CouponDto, PromotionDto};
use seckill_client::{Client, Grab};
use seckill_postgres::testing::PgFixture;
use uuid::Uuid;

/// The replicas serving now. The fault tasks swap replicas in and out while
/// the customers grab; std RwLock: held only to clone a client.
type Fleet = Arc<RwLock<Vec<Client>>>;

fn fleet(servers: &[ServerProcess]) -> Fleet {
    Arc::new(RwLock::new(
        servers.iter().map(|server| server.client.clone()).collect(),
    ))
}

fn replace(fleet: &Fleet, gone: &str, new: Option<&ServerProcess>) {
    let mut clients = fleet.write().unwrap_or_else(|e| e.into_inner());
    clients.retain(|client| client.base_url() != gone);
    clients.extend(new.map(|server| server.client.clone()));
}

/// How one customer's grab ended, after retries.
#[derive(Debug)]
enum Outcome {
    /// A replica acknowledged this coupon.
    Won {
        coupon: CouponDto,
        replica: String,
    },
    /// A retry found the coupon an earlier, unanswered attempt had won.
    Held(CouponDto),
    SoldOut,
    /// No definite answer in time; the test counts it as a failure.
    GaveUp(String),
}

/// Grabs for `customer`, starting on replica `first` and moving to the next
/// replica after every answer that says "retry" (503, no connection), as a
/// load balancer's client would. Every definite answer is returned.
async fn grab(fleet: &Fleet, first: usize, promotion: Uuid, customer: &str) -> Outcome {
    let mut last = String::new();
    for attempt in 0..150 {
        let client = {
            let clients = fleet.read().unwrap_or_else(|e| e.into_inner());
            clients[(first + attempt) % clients.len()].clone()
        };
        match client.grab(promotion, customer).await {
            Ok(Grab::Won(coupon)) => {
                return Outcome::Won {
                    coupon,
                    replica: client.base_url().to_owned(),
                }
            }
            Ok(Grab::AlreadyGrabbed(coupon)) => return Outcome::Held(coupon),
            Ok(Grab::SoldOut) => return Outcome::SoldOut,
            Ok(grab) if grab.is_unavailable() => last = format!("{grab:?}"),
            Ok(other) => return Outcome::GaveUp(format!("unexpected {other:?}")),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Outcome::GaveUp(last)
}

/// What a sale ended with.
#[derive(Default)]
struct Tally {
    acknowledged: HashMap<String, CouponDto>,
    wins_by_replica: HashMap<String, usize>,
    problems: Vec<String>,
}

/// `customers` customers grab once each (with retries), `concurrency` at a
/// time, spread round robin over the fleet; each waits `pace` after its
/// answer, so a sale lasts long enough for faults to land in the middle.
async fn sell(
    fleet: &Fleet,
    promotion: Uuid,
    customers: usize,
    concurrency: usize,
    pace: Duration,
) -> Tally {
    let outcomes: Vec<(String, Outcome)> = futures::stream::iter(0..customers)
        .map(|i| async move {
            let customer = format!("customer-{i}");
            let outcome = grab(fleet, i, promotion, &customer).await;
            tokio::time::sleep(pace).await;
            (customer, outcome)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut tally = Tally::default();
    for (customer, outcome) in outcomes {
        match outcome {
            Outcome::Won { coupon, replica } => {
                *tally.wins_by_replica.entry(replica).or_default() += 1;
                tally.acknowledged.insert(customer, coupon);
            }
            Outcome::Held(coupon) => {
                tally.acknowledged.insert(customer, coupon);
            }
            Outcome::SoldOut => {}
            Outcome::GaveUp(why) => tally
                .problems
                .push(format!("{customer} got no answer: {why}")),
        }
    }
    tally
}

/// The owner of `promotion`'s port, read from the ownership table.
async fn owner_port(fixture: &PgFixture, promotion: Uuid) -> u16 {
    let address: String = sqlx::query_scalar(
        "SELECT r.address FROM promotion_owners o JOIN replicas r USING (replica_id) \
         WHERE o.promotion_id = $1 AND r.expires_at > now()",
    )
    .bind(promotion)
    .fetch_one(fixture.pg_store().pool())
    .await
    .expect("the promotion has a live owner");
    address
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("an owner address ending in a port")
}

/// Reads `promotion`'s live feed on `client` until a frame shows it with no
/// coupon left; the text read, for the failure message, if none does in 10 s.
async fn feed_reaches_sold_out(client: &Client, promotion: Uuid) -> Result<(), String> {
    let path = format!("/query/promotions/{promotion}/events");
    let response = client
        .http()
        .get(client.url(&path))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut frames = response.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, frames.next()).await {
        seen.push_str(&String::from_utf8_lossy(&chunk.map_err(|e| e.to_string())?));
        if seen.contains("\"remaining\":0,") || seen.contains("\"remaining\":0}") {
            return Ok(());
        }
    }
    Err(seen)
}

async fn check(
    fixture: &PgFixture,
    fleet: &Fleet,
    promotion: &PromotionDto,
    tally: &Tally,
) -> Vec<String> {
    let client = fleet.read().unwrap_or_else(|e| e.into_inner())[0].clone();
    let mut problems = tally.problems.clone();
    problems.extend(
        violations(
            &client,
            fixture.pg_store().pool(),
            promotion,
            &tally.acknowledged,
        )
        .await,
    );
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_each_sell_and_the_sale_sells_out_exactly() {
    const COUPONS: u32 = 600;
    let fixture = PgFixture::new().await;
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(
            ServerProcess::builder()
                .database(fixture.url())
                .replica()
                .start()
                .await,
        );
    }
    let fleet = fleet(&servers);
    let promotion = create_open(&servers[0].client, COUPONS).await;
    let id = promotion.promotion_id;
    // Every replica's live feed follows the sale, whoever commits it.
    let feeds: Vec<_> = servers
        .iter()
        .map(|server| {
            let client = server.client.clone();
            tokio::spawn(async move { feed_reaches_sold_out(&client, id).await })
        })
        .collect();

    let tally = sell(&fleet, id, 1_500, 48, Duration::ZERO).await;

    let mut problems = check(&fixture, &fleet, &promotion, &tally).await;
    if tally.acknowledged.len() != COUPONS as usize {
        problems.push(format!(
            "{} of {COUPONS} coupons acknowledged",
            tally.acknowledged.len()
        ));
    }
    // One replica owns the promotion; the others forward to it, and every
    // one of them answers its share of the wins.
    for server in &servers {
        let wins = tally
            .wins_by_replica
            .get(server.client.base_url())
            .copied()
            .unwrap_or(0);
        if wins < COUPONS as usize / 5 {
            problems.push(format!(
                "{} answered only {wins} wins",
                server.client.base_url()
            ));
        }
    }
    for (server, feed) in servers.iter().zip(feeds) {
        if let Err(seen) = feed.await.expect("the feed task") {
            problems.push(format!(
                "the feed on {} never showed the sell-out: {seen}",
                server.port
            ));
        }
    }
    eprintln!(
        "three replicas: wins by replica {:?}",
        tally.wins_by_replica
    );
    assert!(problems.is_empty(), "{problems:#?}");

    // Every replica learns the sale finished (the feeds above already carried
    // the sell-out; a bound of seconds, so a stalled machine does not fail
    // it: a liveness bound, not a benchmark) and answers its sold-out storm
    // from memory, forwarding nothing.
    for server in &servers {
        let client = &server.client;
        let deadline = Instant::now() + Duration::from_secs(10);
        while metric(client, "seckill_frozen_promotions").await < 1.0 {
            assert!(
                Instant::now() < deadline,
                "{} never froze the sale",
                server.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let forwarded = metric(client, "seckill_forwarded_total").await;
        for i in 0..20 {
            let late = client
                .grab(id, &format!("late-{i}"))
                .await
                .expect("a late grab");
            assert_eq!(late, Grab::SoldOut);
        }
        assert_eq!(
            metric(client, "seckill_forwarded_total").await,
            forwarded,
            "{} forwarded late grabs",
            server.port
        );
    }

    // Many promotions spread over the replicas, even when all are created
    // through one.
    let mut owned: HashMap<u16, usize> = HashMap::new();
    for _ in 0..30 {
        let promotion = create_open(&servers[0].client, 10).await;
        *owned
            .entry(owner_port(&fixture, promotion.promotion_id).await)
            .or_default() += 1;
    }
    for server in &servers {
        let count = owned.get(&server.port).copied().unwrap_or(0);
        assert!(
            count >= 3,
            "replica {} owns {count} of 30: {owned:?}",
            server.port
        );
    }
    for server in servers {
        server.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_owner_mid_sale_loses_nothing_and_another_takes_over() {
    let rounds: usize = std::env::var("SECKILL_REPLICA_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(2);
    let fixture = PgFixture::new().await;
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(
            ServerProcess::builder()
                .database(fixture.url())
                .replica()
                .start()
                .await,
        );
    }
    for round in 0..rounds {
        let fleet = fleet(&servers);
        let promotion = create_open(&servers[0].client, 300).await;
        let id = promotion.promotion_id;
        let sale = tokio::spawn({
            let fleet = Arc::clone(&fleet);
            async move { sell(&fleet, id, 1_000, 16, Duration::from_millis(10)).await }
        });
        // Mid-sale: some coupons are gone, most are not.
        let client = servers[0].client.clone();
        while client.promotion(id).await.map_or(300, |p| p.remaining) > 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let port = owner_port(&fixture, id).await;
        let index = servers
            .iter()
            .position(|s| s.port == port)
            .expect("the owner is ours");
        let owner = servers.swap_remove(index);
        let gone = owner.client.base_url().to_owned();
        replace(&fleet, &gone, None);
        owner.kill().await;
        let killed = Instant::now();

        // The survivors take over once the lease (3 s) lapses and a claim
        // lands; the bound below leaves a stalled machine room (a liveness
        // bound, not a benchmark).
        let survivor = servers[0].client.clone();
        let mut taken_over = None;
        for i in 0..300 {
            match survivor.grab(id, &format!("probe-{round}-{i}")).await {
                Ok(Grab::Won(_) | Grab::SoldOut | Grab::AlreadyGrabbed(_)) => {
                    taken_over = Some(killed.elapsed());
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let taken_over = taken_over.expect("a survivor sells again");
        assert!(
            taken_over < Duration::from_secs(15),
            "takeover took {taken_over:?}"
        );

        let mut tally = sale.await.expect("the sale task");
        // The probe's wins are acknowledged too.
        for i in 0..100 {
            let customer = format!("probe-{round}-{i}");
            if let Some(coupon) = survivor
                .coupons_of(&customer)
                .await
                .expect("probe coupons")
                .into_iter()
                .find(|coupon| coupon.promotion_id == id)
            {
                tally.acknowledged.insert(customer, coupon);
            }
        }
        let problems = check(&fixture, &fleet, &promotion, &tally).await;
        eprintln!(
            "round {round}: takeover after {taken_over:?}, {} acknowledged",
            tally.acknowledged.len()
        );
        assert!(problems.is_empty(), "round {round}: {problems:#?}");
        servers.push(
            ServerProcess::builder()
                .database(fixture.url())
                .replica()
                .start()
                .await,
        );
    }
    for server in servers {
        server.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_replica_mid_sale_loses_nothing() {
    let fixture = PgFixture::new().await;
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(
            ServerProcess::builder()
                .database(fixture.url())
                .replica()
                .start()
                .await,
        );
    }
    let fleet = fleet(&servers);
    let promotion = create_open(&servers[0].client, 2_000).await;
    let id = promotion.promotion_id;
    let sale = tokio::spawn({
        let fleet = Arc::clone(&fleet);
        async move { sell(&fleet, id, 3_000, 16, Duration::from_millis(20)).await }
    });
    // One after another: a new replica joins, then an old one is stopped
    // with SIGTERM and hands its promotions over as it leaves.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let new = ServerProcess::builder()
            .database(fixture.url())
            .replica()
            .start()
            .await;
        let old = servers.remove(0);
        let gone = old.client.base_url().to_owned();
        replace(&fleet, &gone, Some(&new));
        old.terminate().await;
        servers.push(new);
    }
    let tally = sale.await.expect("the sale task");
    let problems = check(&fixture, &fleet, &promotion, &tally).await;
    eprintln!(
        "rolling restart: {} acknowledged, wins by replica {:?}",
        tally.acknowledged.len(),
        tally.wins_by_replica
    );
    assert!(problems.is_empty(), "{problems:#?}");
    for server in servers {
        server.kill().await;
    }
}
