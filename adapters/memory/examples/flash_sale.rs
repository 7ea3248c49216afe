//! A whole flash sale in one process, on the embedded in-memory backend.
//!
//! ```text
//! cargo run --release --example flash_sale -- --customers 10000 --coupons 100
//! ```
//!
//! Every customer is a Tokio task that grabs once, all at the same instant.
//! At the end it checks the rules held (exactly min(customers, coupons)
//! winners, nobody twice, coupons numbered 1..=n) and prints the timing.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{ensure, Context};
use chrono::{Duration, Utc};
use clap::Parser;
use seckill_app::{SecKill, SecKillError};
use seckill_domain::{
    CouponCount, CustomerId, Discount, PromotionError, PromotionName, PromotionTerms,
};
use seckill_memory::MemoryStore;

/// Run a flash sale in-process and report who got what.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// How many customers race.
    #[arg(long, default_value_t = 10_000)]
    customers: usize,
    /// How many coupons the promotion offers.
    #[arg(long, default_value_t = 100)]
    coupons: u64,
    /// How many winners to list by name.
    #[arg(long, default_value_t = 10)]
    show: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seckill = SecKill::new(MemoryStore::new());
    let now = Utc::now();
    let terms = PromotionTerms::new(
        CouponCount::new(args.coupons)?,
        Discount::new(0.7)?,
        now,
        now + Duration::hours(1),
        Some(PromotionName::parse("In-process flash sale")?),
    )?;
    let promotion = seckill.create_promotion(terms).await?.id();
    println!(
        "promotion {promotion}: {} coupons, {} customers racing",
        args.coupons, args.customers
    );

    let started = Instant::now();
    let grabs: Vec<_> = (0..args.customers)
        .map(|i| {
            let seckill = seckill.clone();
            tokio::spawn(async move {
                let customer = CustomerId::parse(format!("customer-{i:06}"))?;
                Ok::<_, anyhow::Error>(seckill.grab(promotion, customer).await)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut sold_out = 0usize;
    for grab in grabs {
        match grab.await.context("grab task panicked")?? {
            Ok(coupon) => winners.push(coupon),
            Err(SecKillError::Rejected(PromotionError::SoldOut { .. })) => sold_out += 1,
            Err(other) => return Err(other).context("unexpected grab outcome"),
        }
    }
    let elapsed = started.elapsed();

    winners.sort_by_key(|c| c.number);
    for coupon in winners.iter().take(args.show) {
        println!("  coupon #{:<6} -> {}", coupon.number, coupon.customer_id);
    }
    if winners.len() > args.show {
        println!("  ... and {} more", winners.len() - args.show);
    }

    let expected = args.customers.min(args.coupons as usize);
    let distinct: HashSet<_> = winners.iter().map(|c| &c.customer_id).collect();
    ensure!(
        winners.len() == expected,
        "{} winners, expected {expected}",
        winners.len()
    );
    ensure!(distinct.len() == winners.len(), "a customer won twice");
    ensure!(
        winners
            .iter()
            .enumerate()
            .all(|(i, c)| c.number as usize == i + 1),
        "coupon numbers have gaps"
    );
    let view = seckill.promotion(promotion).await?;
    ensure!(
        view.summary.remaining as usize == args.coupons as usize - expected,
        "projection disagrees"
    );

    println!(
        "{} won, {} turned away (sold out); {} grabs in {:.1} ms = {:.0} grabs/s; promotion is {:?}",
        winners.len(),
        sold_out,
        args.customers,
        elapsed.as_secs_f64() * 1e3,
        args.customers as f64 / elapsed.as_secs_f64(),
        view.status,
    );
    seckill.shutdown().await;
    Ok(())
}
