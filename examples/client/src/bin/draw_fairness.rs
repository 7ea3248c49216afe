//! Fairness against latency, measured: a sale of `--coupons` coupons
//! between `--people` people who each act once at a random moment of the
//! first `--window` after the opening, half of them behind `--slow`
//! (150 ms) of extra latency: a delay before their request reaches the
//! server, as a farther network adds. Each from an address of its own
//! (all of 127.0.0.0/8 reaches loopback on Linux), so no rate limit is
//! shared. Run once first come (everyone grabs), once as a draw (everyone
//! enters; the server draws at the close). Prints the slow half's share of
//! the coupons for each. `examples/server/bench/fairness.sh` runs it;
//! docs/benchmarks.md ("Fairness") has the figures.
//!
//! ```text
//! draw_fairness --url http://127.0.0.1:3000 --admin-token "$TOKEN"
//! ```

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use clap::Parser;
use seckill_client::api::{PromotionRequest, StatusDto};
use seckill_client::{Client, Enter, Grab};
use tokio::time::Instant;

/// First come against a draw, for people near and far.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// The server's admin token, to create the sales.
    #[arg(long, env = "SECKILL_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// Coupons of each sale.
    #[arg(long, default_value_t = 500)]
    coupons: u64,
    /// How many people take part, once each.
    #[arg(long, default_value_t = 1000)]
    people: u32,
    /// The people act at moments spread uniformly over this long after the opening.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    window: Duration,
    /// The extra latency of the slow half (every odd-numbered person).
    #[arg(long, default_value = "150ms", value_parser = humantime::parse_duration)]
    slow: Duration,
}

/// Coupons won by the fast half and by the slow half.
#[derive(Debug, Default)]
struct Shares {
    fast: u64,
    slow: u64,
}

impl Shares {
    fn slow_percent(&self) -> f64 {
        100.0 * self.slow as f64 / (self.fast + self.slow).max(1) as f64
    }
}

fn is_slow(person: u32) -> bool {
    person % 2 == 1
}

fn person_client(url: &str, person: u32) -> anyhow::Result<Client> {
    let address: IpAddr = format!("127.0.{}.{}", 1 + person / 250, 1 + person % 250).parse()?;
    Client::bound_to(url, address, 1).context("building a person's client")
}

/// One sale: first come, or a draw closing `window` + 2 s after the
/// opening. Returns who won, by half.
async fn sale(args: &Args, admin: &Client, draw: bool) -> anyhow::Result<Shares> {
    // Opening 3 s from now: every client is set up and waiting by then.
    let lead = Duration::from_secs(3);
    let opening = Utc::now() + chrono::Duration::from_std(lead)?;
    let close = opening + chrono::Duration::from_std(args.window + Duration::from_secs(2))?;
    let promotion = admin
        .create_promotion(&PromotionRequest {
            number_of_coupons: args.coupons,
            discount: 0.5,
            publish_time: opening,
            finish_time: Some(opening + chrono::Duration::hours(1)),
            name: Some(format!(
                "fairness against latency ({})",
                if draw { "draw" } else { "first come" }
            )),
            draw_closes_at: draw.then_some(close),
        })
        .await
        .context("creating the sale")?;
    let id = promotion.promotion_id;
    let opens_at = Instant::now() + lead;
    let mut tasks = Vec::new();
    for person in 0..args.people {
        let client = person_client(&args.url, person)?;
        let delay = if is_slow(person) {
            args.slow
        } else {
            Duration::ZERO
        };
        let at = opens_at + args.window.mul_f64(fastrand::f64()) + delay;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let customer = format!("person-{person}");
            let won = if draw {
                match client.enter(id, &customer).await {
                    Ok(Enter::Entered(_)) => None,
                    other => Some(format!("{customer}'s entry: {other:?}")),
                }
            } else {
                match client.grab(id, &customer).await {
                    Ok(Grab::Won(_)) => Some(String::new()),
                    Ok(Grab::SoldOut) => None,
                    other => Some(format!("{customer}'s grab: {other:?}")),
                }
            };
            (person, client, won)
        }));
    }
    let mut people = Vec::new();
    let mut shares = Shares::default();
    for task in tasks {
        let (person, client, outcome) = task.await.context("a person's task panicked")?;
        match outcome {
            Some(problem) if !problem.is_empty() => anyhow::bail!(problem),
            Some(_) if is_slow(person) => shares.slow += 1,
            Some(_) => shares.fast += 1,
            None => {}
        }
        people.push((person, client));
    }
    if draw {
        // Drawn by the server at the close; then each person asks for
        // their own coupons, from their own address.
        while admin.promotion(id).await?.status != StatusDto::Drawn {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (person, client) in people {
            let held = client.coupons_of(&format!("person-{person}")).await?;
            if held.iter().any(|coupon| coupon.promotion_id == id) {
                if is_slow(person) {
                    shares.slow += 1;
                } else {
                    shares.fast += 1;
                }
            }
        }
    }
    Ok(shares)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let admin =
        Client::bound_to(&args.url, "127.0.0.1".parse()?, 1)?.with_admin_token(&args.admin_token);
    let first_come = sale(&args, &admin, false).await?;
    let draw = sale(&args, &admin, true).await?;
    for (name, shares) in [("first come", &first_come), ("draw", &draw)] {
        println!(
            "{name}: {} coupons won, the slow half ({} behind {:?}) {} ({:.1} %), the fast half {}",
            shares.fast + shares.slow,
            args.people / 2,
            args.slow,
            shares.slow,
            shares.slow_percent(),
            shares.fast
        );
    }
    println!(
        "FIGURES latency_fairness {{\"coupons\":{},\"first_come_slow_percent\":{:.1},\"draw_slow_percent\":{:.1}}}",
        args.coupons,
        first_come.slow_percent(),
        draw.slow_percent()
    );
    Ok(())
}
