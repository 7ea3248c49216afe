//! The SecKill web server.
//!
//! ```text
//! cargo run --release -p seckill-examples --bin seckill-server               # in-memory, 127.0.0.1:3000
//! cargo run --release -p seckill-examples --bin seckill-server -- --help     # every flag and its env var
//! ```
//!
//! Open http://127.0.0.1:3000/ for the live page and /docs for the API.
//! SIGTERM or Ctrl-C stops it gracefully: it stops accepting, answers every
//! request in flight (queued grabs included), then exits.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use seckill_app::{Backend, EngineConfig, SecKill};
use seckill_examples::server;
use seckill_memory::MemoryStore;
use seckill_postgres::{PgOptions, PgStore};
use tracing_subscriber::EnvFilter;

/// SecKill flash-sale web server: the original's HTTP API, a live page at `/`,
/// API docs at `/docs`, metrics at `/metrics`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SECKILL_BIND", default_value = "127.0.0.1:3000")]
    bind: SocketAddr,

    /// PostgreSQL URL; without it, events live in memory and vanish on exit.
    /// Plain `DATABASE_URL` is deliberately NOT read: `.cargo/config.toml`
    /// sets it for the tests, and `cargo run` would inherit it.
    #[arg(long, env = "SECKILL_DATABASE_URL")]
    database_url: Option<String>,

    /// Most PostgreSQL connections (ignored in memory).
    #[arg(long, env = "SECKILL_POOL_SIZE", default_value_t = 16)]
    pool_size: u32,

    /// Grabs one promotion queues before answering 503 overloaded.
    #[arg(long, env = "SECKILL_QUEUE_CAPACITY", default_value_t = EngineConfig::default().queue_capacity)]
    queue_capacity: usize,

    /// Most grabs decided and committed in one append.
    #[arg(long, env = "SECKILL_MAX_BATCH", default_value_t = EngineConfig::default().max_batch)]
    max_batch: usize,

    /// Log filter, in `tracing` env-filter syntax (e.g. `info,seckill_app=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,

    /// Log format: `human` for a terminal, `json` for a log collector.
    #[arg(long, env = "SECKILL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

/// The one place that picks the storage backend.
async fn open_backend(args: &Args) -> anyhow::Result<Arc<dyn Backend>> {
    match &args.database_url {
        None => {
            tracing::info!("storage: in memory (give --database-url for PostgreSQL)");
            Ok(Arc::new(MemoryStore::new()))
        }
        Some(url) => {
            let options = PgOptions {
                max_connections: args.pool_size,
                ..PgOptions::default()
            };
            // The URL may carry a password: it is never logged.
            let store = PgStore::connect_with(url, options)
                .await
                .context("connecting to PostgreSQL and migrating it")?;
            tracing::info!(pool_size = args.pool_size, "storage: PostgreSQL");
            Ok(Arc::new(store))
        }
    }
}

fn init_logging(args: &Args) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log).context("parsing --log / RUST_LOG")?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM (what container runtimes send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(&args)?;
    let backend = open_backend(&args).await?;
    let config = EngineConfig {
        queue_capacity: args.queue_capacity,
        max_batch: args.max_batch,
        ..EngineConfig::default()
    };
    let seckill = SecKill::builder(backend).config(config).build();
    // Projections written by other tools, or added since the last run, catch
    // up from the events before the first query is answered.
    let repaired = seckill
        .catch_up_projections()
        .await
        .context("catching the projections up with the events")?;
    if repaired > 0 {
        tracing::info!(promotions = repaired, "projections caught up");
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    server::serve(listener, seckill, shutdown_signal())
        .await
        .context("serving HTTP")
}
