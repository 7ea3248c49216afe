//! Load generator: N customers race for M coupons against a running server,
//! then it checks the server's answers through the query API.
//!
//! ```text
//! cargo run --release -p seckill-server -- --admin-token "$SECKILL_ADMIN_TOKEN" --rate-limit off &
//! cargo run --release -p seckill-client --bin loadgen -- --customers 20000 --coupons 1000 --concurrency 128
//! ```
//!
//! Exits 1 if any check fails (wrong number of winners, a customer with two
//! coupons, an acknowledged coupon missing from its holder's list, ...).

use clap::Parser;
use seckill_client::loadgen::{self, LoadConfig};
use uuid::Uuid;

// jemalloc: the load generator shares the cores with the server it measures,
// so it should spend as little of them as it can.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Race N customers for M coupons over HTTP and verify the outcome.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The server's base URL.
    #[arg(long, env = "SECKILL_URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    /// How many customers race (each grabs once; 503s are retried).
    #[arg(long, default_value_t = 10_000)]
    customers: usize,
    /// Coupons of the promotion it creates.
    #[arg(long, default_value_t = 100)]
    coupons: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Race for this existing promotion instead of creating one.
    #[arg(long)]
    promotion: Option<Uuid>,
    /// The server's admin token, to create the promotion.
    #[arg(long, env = "SECKILL_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = LoadConfig::new(args.url, args.customers, args.coupons);
    config.concurrency = args.concurrency;
    config.promotion = args.promotion;
    config.show_progress = !args.quiet;
    config.admin_token = args.admin_token;
    let report = loadgen::run(&config).await?;
    println!("{report}");
    if !report.violations.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
