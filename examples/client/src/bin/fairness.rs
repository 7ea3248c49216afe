//! Fairness, measured: one bot against many people for a small sale, all
//! over loopback, each person from an address of their own (Linux routes
//! all of 127.0.0.0/8 to `lo`). `examples/server/bench/fairness.sh` runs it against
//! a server with and without rate limits; docs/benchmarks.md ("Fairness")
//! has the figures.
//!
//! ```text
//! fairness --url http://127.0.0.1:3000 --admin-token "$TOKEN"
//! ```
//!
//! The bot opens `--bot-connections` connections from `--bot-address` and
//! grabs with a fresh customer id each time, as fast as the server answers,
//! from the opening for `--bot-seconds`. Each of `--people` people grabs
//! once, from 127.0.<1+i/250>.<1+i%250>, at a random moment in the first
//! `--people-window` after the opening. Prints who won the coupons.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use clap::Parser;
use seckill_client::api::PromotionRequest;
use seckill_client::{Client, Grab};
use tokio::time::Instant;

/// One bot against many people for a small sale.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// The server's admin token, to create the sale.
    #[arg(long, env = "SECKILL_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// Coupons of the sale.
    #[arg(long, default_value_t = 500)]
    coupons: u64,
    /// How many people grab, once each.
    #[arg(long, default_value_t = 1000)]
    people: u32,
    /// The people's grabs are spread uniformly over this long after the opening.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    people_window: Duration,
    /// The bot's connections.
    #[arg(long, default_value_t = 200)]
    bot_connections: u32,
    /// The bot's one address.
    #[arg(long, default_value = "127.0.0.2")]
    bot_address: IpAddr,
    /// How long the bot keeps grabbing after the opening.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    bot_seconds: Duration,
}

/// What one side got.
#[derive(Debug, Default)]
struct Tally {
    won: AtomicU64,
    sold_out: AtomicU64,
    rate_limited: AtomicU64,
    other: AtomicU64,
}

impl Tally {
    fn count(&self, answer: &Result<Grab, seckill_client::ClientError>) {
        let counter = match answer {
            Ok(Grab::Won(_)) => &self.won,
            Ok(Grab::SoldOut) => &self.sold_out,
            Ok(Grab::RateLimited { .. }) => &self.rate_limited,
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn client(url: &str, from: IpAddr, connections: usize) -> anyhow::Result<Client> {
    Client::bound_to(url, from, connections).context("building an HTTP client")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let admin = client(&args.url, "127.0.0.1".parse()?, 1)?.with_admin_token(&args.admin_token);
    // Opening 3 s from now: every client is set up and waiting by then.
    let lead = Duration::from_secs(3);
    let opening = Utc::now() + chrono::Duration::from_std(lead)?;
    let promotion = admin
        .create_promotion(&PromotionRequest {
            number_of_coupons: args.coupons,
            discount: 0.5,
            publish_time: opening,
            finish_time: Some(opening + chrono::Duration::hours(1)),
            name: Some("fairness: one bot, many people".into()),
            draw_closes_at: None,
        })
        .await
        .context("creating the sale")?;
    let id = promotion.promotion_id;
    let opens_at = Instant::now() + lead;

    let (bot, people) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let mut tasks = Vec::new();
    let bot_client = client(&args.url, args.bot_address, args.bot_connections as usize)?;
    let next_customer = Arc::new(AtomicU64::new(0));
    for _ in 0..args.bot_connections {
        let (client, tally, next) = (bot_client.clone(), bot.clone(), next_customer.clone());
        let stop = opens_at + args.bot_seconds;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(opens_at).await;
            while Instant::now() < stop {
                let customer = format!("bot-{}", next.fetch_add(1, Ordering::Relaxed));
                tally.count(&client.grab(id, &customer).await);
            }
        }));
    }
    for person in 0..args.people {
        let address: IpAddr = format!("127.0.{}.{}", 1 + person / 250, 1 + person % 250).parse()?;
        let client = client(&args.url, address, 1)?;
        let tally = people.clone();
        let at = opens_at + args.people_window.mul_f64(fastrand::f64());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            tally.count(&client.grab(id, &format!("person-{person}")).await);
        }));
    }
    for task in tasks {
        task.await.context("a grab task panicked")?;
    }

    let granted = admin
        .promotion(id)
        .await
        .context("reading the sale")?
        .granted;
    let (people_won, bot_won) = (load(&people.won), load(&bot.won));
    let share = 100.0 * people_won as f64 / f64::from(granted.max(1));
    println!(
        "sale of {} coupons, {granted} granted: people won {people_won} ({share:.1} %), the bot {bot_won}",
        args.coupons
    );
    println!(
        "people ({}): {people_won} won, {} sold out, {} rate-limited, {} other",
        args.people,
        load(&people.sold_out),
        load(&people.rate_limited),
        load(&people.other)
    );
    println!(
        "bot ({} connections from {}): {bot_won} won, {} sold out, {} rate-limited, {} other",
        args.bot_connections,
        args.bot_address,
        load(&bot.sold_out),
        load(&bot.rate_limited),
        load(&bot.other)
    );
    println!(
        "FIGURES fairness {{\"coupons\":{},\"granted\":{granted},\"people_won\":{people_won},\"bot_won\":{bot_won},\"people_share_percent\":{share:.1}}}",
        args.coupons
    );
    Ok(())
}
