//! The SecKill web server.
//!
//! ```text
//! cargo run --release -p seckill-server               # in-memory, 127.0.0.1:3000
//! cargo run --release -p seckill-server -- --help     # every flag and its env var
//! cargo run --release -p seckill-server -- rebuild --database-url postgres://…
//! cargo run --release -p seckill-server -- --database-url postgres://… --nats-url nats://127.0.0.1:4222
//! cargo run --release -p seckill-server -- publish --from 1 --database-url postgres://… --nats-url nats://…
//! cargo run --release -p seckill-server -- verify-draw <promotion> --url http://127.0.0.1:3000
//! ```
//!
//! With `--nats-url`, every event is published to NATS JetStream by a
//! durable subscription next to the web server (docs/events.md); `publish`
//! republishes the events from a position to the newest, and exits.
//!
//! `rebuild` recomputes every projection (`coupons`, `promotion_summaries`)
//! from the events, with a progress bar, and exits. Run it with the servers
//! on that database stopped: a grab committed while a promotion is rebuilt
//! would be overwritten by the older rows (the next start-up's catch-up
//! repairs that, but a stopped fleet never needs it).
//!
//! With `--otlp-endpoint`, each request and the engine's work for it are
//! exported as OpenTelemetry traces (docs/deployment.md#traces).
//!
//! `verify-draw` recomputes a drawn promotion's winners from the events the
//! server serves to anyone, and checks them (docs/draws.md).
//!
//! Open http://127.0.0.1:3000/ for the live page and /docs for the API.
//! SIGTERM or Ctrl-C stops it gracefully: it stops accepting, answers every
//! request in flight (queued grabs included), then exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::builder::RangedU64ValueParser;
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use seckill_app::cluster::{Replica, ReplicaId};
use seckill_app::draw::DrawKey;
use seckill_app::{Backend, EngineConfig, EventStore, SecKill};
use seckill_memory::MemoryStore;
use seckill_nats::{Publisher, StreamSettings, Subjects};
use seckill_opentelemetry::OtelTraceContext;
use seckill_postgres::{PgOwnership, PgReplica, PgStore};
use seckill_server::{ClusterSecret, HttpForward};
use tokio::sync::Semaphore;

// The flags' value parsers, the security flags, publishing to NATS
// JetStream, the stop signal and logs and traces, in files of their own
// under `cli/`.
#[path = "cli/flags.rs"]
mod flags;
#[path = "cli/nats.rs"]
mod nats;
#[path = "cli/security.rs"]
mod security;
#[path = "cli/shutdown.rs"]
mod shutdown;
#[path = "cli/telemetry.rs"]
mod telemetry;
#[path = "cli/verify.rs"]
mod verify;

use flags::{parse_draw_key, parse_duration, pg_options, PgArgs};
use nats::{publish, start_publishing, NatsArgs, PublishArgs};
use verify::{verify_draw, VerifyDrawArgs};

// jemalloc: a grab's request, command, event and answer are allocated on one
// worker thread and often freed on another, where glibc's malloc contends on
// its arena locks; jemalloc against glibc and mimalloc is measured in
// docs/benchmarks/http.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// SecKill flash-sale web server: the original's HTTP API, a live page at `/`,
/// API docs at `/docs`, metrics at `/metrics`.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Without a subcommand, the server runs with these flags.
    #[command(flatten)]
    serve: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve(Box<Args>),
    /// Rebuild every projection from the events, then exit.
    Rebuild(RebuildArgs),
    /// Publish the events from a global position to the newest to NATS
    /// JetStream again, then exit. Copies within the stream's duplicate
    /// window are dropped there.
    Publish(PublishArgs),
    /// Recompute a promotion's draw from the events a running server
    /// serves (`GET /events`), check it against the commitment and the
    /// coupons, print the winners, and exit; non-zero if it does not check
    /// out (docs/draws.md).
    VerifyDraw(VerifyDrawArgs),
}

#[derive(Debug, ClapArgs)]
struct RebuildArgs {
    /// PostgreSQL URL of the store to rebuild.
    #[arg(long, env = "SECKILL_DATABASE_URL")]
    database_url: String,

    #[command(flatten)]
    pg: PgArgs,

    /// How long one database call may take before it fails.
    #[arg(long, env = "SECKILL_DB_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    db_timeout: Duration,
}

#[derive(Debug, ClapArgs)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SECKILL_BIND", default_value = "127.0.0.1:3000")]
    bind: SocketAddr,

    /// PostgreSQL URL; without it, events live in memory and vanish on exit.
    /// Plain `DATABASE_URL` is deliberately NOT read: `.cargo/config.toml`
    /// sets it for the tests, and `cargo run` would inherit it.
    #[arg(long, env = "SECKILL_DATABASE_URL")]
    database_url: Option<String>,

    /// A read replica's PostgreSQL URL (a standby, or HAProxy's port for
    /// the standbys): the queries (coupons by customer, the promotion list,
    /// a promotion) read it while it is within `--read-max-lag` of the
    /// primary, and the primary past that. Grabs, admin commands, `/sync`
    /// and the event feeds always use `--database-url`.
    #[arg(long, env = "SECKILL_READ_DATABASE_URL", requires = "database_url")]
    read_database_url: Option<String>,

    /// How far behind the read replica may be before queries go to the
    /// primary, e.g. `1s` or `250ms`.
    #[arg(long, env = "SECKILL_READ_MAX_LAG", default_value = "1s", value_parser = parse_duration)]
    read_max_lag: Duration,

    #[command(flatten)]
    pg: PgArgs,

    /// Most PostgreSQL connections, at least 1 (ignored in memory).
    #[arg(long, env = "SECKILL_POOL_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..))]
    pool_size: u32,

    /// How long one database call may take (waiting for a connection, one
    /// statement, one append) before the request fails with 503, e.g. `2s`
    /// or `500ms`. Bounds every answer while PostgreSQL is down.
    #[arg(long, env = "SECKILL_DB_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    db_timeout: Duration,

    /// Grabs one promotion queues before answering 503 overloaded (at least 1).
    #[arg(long, env = "SECKILL_QUEUE_CAPACITY", default_value_t = EngineConfig::default().queue_capacity,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=Semaphore::MAX_PERMITS as u64))]
    queue_capacity: usize,

    /// Most grabs decided and committed in one append (at least 1).
    #[arg(long, env = "SECKILL_MAX_BATCH", default_value_t = EngineConfig::default().max_batch,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    max_batch: usize,

    /// Events after which a busy promotion saves a snapshot (the gap then
    /// doubles with the stream's length); 0 turns snapshots off.
    #[arg(long, env = "SECKILL_SNAPSHOT_AFTER", default_value_t = EngineConfig::default().snapshot_after)]
    snapshot_after: u64,

    /// How long a sold-out, expired or cancelled promotion's final state stays
    /// in memory after its last use, to answer late grabs without a writer,
    /// e.g. `600s`; afterwards the next grab loads it again.
    #[arg(long, env = "SECKILL_FROZEN_TTL", default_value = "600s", value_parser = parse_duration)]
    frozen_ttl: Duration,

    /// How often the expiry timer records promotions whose finish time has
    /// passed with coupons left as expired, e.g. `250ms`: a promotion is
    /// recorded expired within about this long after its finish time.
    #[arg(long, env = "SECKILL_EXPIRY_INTERVAL", default_value = "250ms", value_parser = parse_duration)]
    expiry_interval: Duration,

    /// Run as one replica of several on the same PostgreSQL: the URL at which
    /// the other replicas reach this one (e.g. `http://10.0.0.7:3000`). Each
    /// promotion then has one owner among the live replicas, and the others
    /// forward its commands there (docs/deployment.md). Needs
    /// `--database-url` and `--cluster-secret`.
    #[arg(long, env = "SECKILL_ADVERTISE_URL", requires_all = ["database_url", "cluster_secret"])]
    advertise_url: Option<String>,

    /// The secret replicas present to each other on forwarded commands; the
    /// same on every replica. Without it the server takes no forwarded command.
    #[arg(long, env = "SECKILL_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: Option<String>,

    /// The key draws' secrets are sealed with, as a passphrase of at least
    /// 32 bytes (docs/draws.md). Without it the store keeps a key of its
    /// own (on PostgreSQL, the table `seckill_draw_key`), which whoever can
    /// read the database can use. Give every replica the same, and keep it
    /// while a draw is pending: a draw sealed with another key cannot be
    /// drawn.
    #[arg(long, env = "SECKILL_DRAW_KEY", hide_env_values = true, value_parser = parse_draw_key)]
    draw_key: Option<DrawKey>,

    /// How long a replica's lease on its promotions lasts without a
    /// heartbeat (sent every third of it): the bound on how long a dead
    /// owner's promotions wait for another replica to take them over.
    #[arg(long, env = "SECKILL_LEASE", default_value = "3s", value_parser = parse_duration)]
    lease: Duration,

    /// NATS server URL (e.g. `nats://127.0.0.1:4222`): publish every event
    /// to JetStream from a durable subscription. Needs `--database-url` for
    /// a checkpoint that outlives the process.
    #[arg(long, env = "SECKILL_NATS_URL")]
    nats_url: Option<String>,

    #[command(flatten)]
    nats: NatsArgs,

    /// Log filter, in `tracing` env-filter syntax (e.g. `info,seckill_app=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,

    /// Log format: `human` for a terminal, `json` for a log collector.
    #[arg(long, env = "SECKILL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,

    /// Who may call what, and how often (docs/security.md).
    #[command(flatten)]
    security: security::SecurityArgs,

    /// Traces over OTLP (docs/deployment.md#traces).
    #[command(flatten)]
    traces: telemetry::TraceArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

/// What the service runs on.
struct Storage {
    backend: Arc<dyn Backend>,
    /// Among replicas, when `--advertise-url` is set.
    ownership: Option<PgOwnership>,
    /// Where the queries read, when `--read-database-url` is set.
    queries: Option<PgReplica>,
}

/// The one place that picks the storage backend.
async fn open_backend(args: &Args) -> anyhow::Result<Storage> {
    match &args.database_url {
        None => {
            tracing::info!("storage: in memory (give --database-url for PostgreSQL)");
            Ok(Storage {
                backend: Arc::new(MemoryStore::new()),
                ownership: None,
                queries: None,
            })
        }
        Some(url) => {
            let options = pg_options(args.pool_size, args.db_timeout, &args.pg);
            // The URL may carry a password: it is never logged.
            let store = PgStore::connect_with(url, options)
                .await
                .context("connecting to PostgreSQL and migrating it")?;
            tracing::info!(pool_size = args.pool_size, schema = %args.pg.schema, "storage: PostgreSQL");
            let ownership = args.advertise_url.as_ref().map(|address| {
                let replica = Replica {
                    id: ReplicaId::random(),
                    address: address.clone(),
                };
                tracing::info!(replica = %replica.id, %address, lease = ?args.lease, "replica: promotions owned by lease");
                PgOwnership::new(&store, replica, args.lease)
            });
            let queries = match &args.read_database_url {
                None => None,
                Some(read_url) => {
                    let options = pg_options(args.pool_size, args.db_timeout, &args.pg);
                    let replica = PgReplica::connect_with(
                        read_url,
                        options,
                        store.clone(),
                        args.read_max_lag,
                    )
                    .await
                    .context("connecting to the read replica")?;
                    tracing::info!(max_lag = ?args.read_max_lag, "queries: from the read replica within its bound");
                    Some(replica)
                }
            };
            Ok(Storage {
                backend: Arc::new(store),
                ownership,
                queries,
            })
        }
    }
}

/// Logs only, for the subcommands.
fn init_logging(log: &str, format: LogFormat) -> anyhow::Result<()> {
    telemetry::init(log, format, None).map(drop)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::Rebuild(args)) => rebuild(args).await,
        Some(Command::Publish(args)) => publish(args).await,
        Some(Command::VerifyDraw(args)) => verify_draw(args).await,
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    // Before the service and the trace exporter are built: they take their
    // metric handles from the recorder installed now.
    let metrics = seckill_server::Metrics::install().context("installing the metrics recorder")?;
    let tracing = telemetry::init(&args.log, args.log_format, Some(&args.traces))?;
    // Then: a wrong key or token stops the start before anything opens.
    let security = args.security.rules()?;
    let Storage {
        backend,
        ownership,
        queries,
    } = open_backend(&args).await?;
    let config = EngineConfig::default()
        .with_queue_capacity(args.queue_capacity)
        .with_max_batch(args.max_batch)
        .with_store_timeout(args.db_timeout)
        .with_snapshot_after(args.snapshot_after)
        .with_frozen_ttl(args.frozen_ttl)
        .with_expiry_interval(args.expiry_interval);
    let secret = args.cluster_secret.as_deref().map(ClusterSecret::new);
    let mut builder = SecKill::builder(backend).config(config);
    if tracing.is_some() {
        builder = builder.trace_context(Arc::new(OtelTraceContext));
    }
    if let Some(key) = args.draw_key {
        builder = builder.draw_key(key);
    }
    if let Some(queries) = queries {
        builder = builder.queries(Arc::new(queries));
    }
    if let (Some(ownership), Some(secret)) = (ownership, &secret) {
        let forward =
            HttpForward::new(secret.clone(), args.db_timeout).context("building the forwarder")?;
        builder = builder.replicated(Arc::new(ownership), Some(Arc::new(forward)));
    }
    let seckill = builder.build().context("checking the engine settings")?;
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
    let publishing = match &args.nats_url {
        Some(url) => Some(start_publishing(&seckill, url, &args.nats).await?),
        None => None,
    };
    let operators = match args.security.admin_bind {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("binding {address} (--admin-bind)"))?,
        ),
        None => None,
    };
    let mut state = seckill_server::AppState::new(seckill, metrics).with_security(security);
    if tracing.is_some() {
        state = state.with_trace_ratio(args.traces.trace_sample_ratio);
    }
    if let Some(secret) = secret {
        state = state.with_cluster_secret(secret);
    }
    let served = seckill_server::serve(listener, operators, state, shutdown::signal())
        .await
        .context("serving HTTP");
    if let Some((subscription, client)) = publishing {
        // Hands the name to a standby at once instead of after the lease.
        subscription.stop().await;
        let _ = client.flush().await;
    }
    if let Some(tracing) = tracing {
        tracing.shutdown().await;
    }
    served
}

/// `seckill-server rebuild`: every promotion's projections from its events.
async fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    init_logging("warn", LogFormat::Human)?;
    let options = pg_options(2, args.db_timeout, &args.pg);
    let store = PgStore::connect_with(&args.database_url, options)
        .await
        .context("connecting to PostgreSQL and migrating it")?;
    let total = store
        .promotion_ids()
        .await
        .context("listing the promotions")?
        .len();
    let seckill = SecKill::builder(Arc::new(store))
        .build()
        .context("checking the engine settings")?;
    // Hidden when stderr is not a terminal, so logs of scripted runs stay clean.
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "rebuilding projections {bar:40} {pos}/{len} promotions ({elapsed})",
        )
        .context("progress bar template")?,
    );
    let rebuilt = seckill
        .rebuild_projections(|_| bar.inc(1))
        .await
        .context("rebuilding the projections")?;
    bar.finish_and_clear();
    println!("rebuilt the projections of {rebuilt} promotions");
    Ok(())
}

#[cfg(test)]
mod tests {
    use seckill_postgres::DEFAULT_SCHEMA;

    use super::*;

    #[test]
    fn the_page_writeback_flag_reaches_the_stores_connections() {
        let timeout = Duration::from_secs(1);
        let cli = Cli::try_parse_from(["seckill-server"]).expect("no flags parse");
        let options = pg_options(1, timeout, &cli.serve.pg);
        assert_eq!(
            options.backend_flush_after_kb,
            seckill_postgres::PgOptions::default().backend_flush_after_kb
        );
        let cli = Cli::try_parse_from(["seckill-server", "--pg-backend-flush-after", "server"])
            .expect("parses");
        assert_eq!(
            pg_options(1, timeout, &cli.serve.pg).backend_flush_after_kb,
            None
        );
        let cli = Cli::try_parse_from(["seckill-server", "--pg-backend-flush-after", "64"])
            .expect("parses");
        assert_eq!(
            pg_options(1, timeout, &cli.serve.pg).backend_flush_after_kb,
            Some(64)
        );
    }

    #[test]
    fn a_draw_key_needs_32_bytes_and_derives_the_same_key_each_time() {
        let cli = Cli::try_parse_from(["seckill-server"]).expect("no flags parse");
        assert!(cli.serve.draw_key.is_none(), "the store's key by default");
        let refused = Cli::try_parse_from(["seckill-server", "--draw-key", "short"]);
        assert!(refused.is_err(), "a short draw key was accepted");
        let phrase = "a draw key of more than thirty-two bytes";
        let parse = || {
            Cli::try_parse_from(["seckill-server", "--draw-key", phrase])
                .expect("parses")
                .serve
                .draw_key
        };
        assert_eq!(parse(), Some(DrawKey::derive(phrase.as_bytes())));
        assert_eq!(parse(), parse());
    }

    #[test]
    fn the_schema_flag_defaults_to_the_library_and_refuses_bad_names() {
        let cli = Cli::try_parse_from(["seckill-server"]).expect("no flags parse");
        assert_eq!(cli.serve.pg.schema, DEFAULT_SCHEMA);
        let cli = Cli::try_parse_from(["seckill-server", "--pg-schema", "shop"]).expect("parses");
        assert_eq!(cli.serve.pg.schema, "shop");
        for bad in ["Shop", "a;b", "pg_x", ""] {
            let refused = Cli::try_parse_from(["seckill-server", "--pg-schema", bad]);
            assert!(refused.is_err(), "--pg-schema {bad:?} was accepted");
        }
        let rebuild = Cli::try_parse_from([
            "seckill-server",
            "rebuild",
            "--database-url",
            "postgres://h/db",
            "--pg-schema",
            "shop",
        ])
        .expect("rebuild parses");
        let Some(Command::Rebuild(rebuild)) = rebuild.command else {
            panic!("not rebuild: {rebuild:?}");
        };
        assert_eq!(rebuild.pg.schema, "shop");
    }

    #[test]
    fn engine_flags_that_would_hang_the_engine_are_refused() {
        for flag in ["--max-batch", "--queue-capacity", "--pool-size"] {
            let refused = Cli::try_parse_from(["seckill-server", flag, "0"]);
            assert!(refused.is_err(), "{flag} 0 was accepted");
        }
        let cli = Cli::try_parse_from(["seckill-server", "--max-batch", "1"]).expect("1 parses");
        assert_eq!(cli.serve.max_batch, 1);
    }

    #[test]
    fn rate_limits_are_on_and_customers_claimed_by_default() {
        use seckill_server::RateLimits;

        let cli = Cli::try_parse_from(["seckill-server"]).expect("no flags parse");
        let flags = &cli.serve.security;
        assert_eq!(flags.rate_limit, security::Switch::On);
        assert_eq!(flags.customer_auth, security::CustomerAuthMode::None);
        let defaults = RateLimits::default();
        assert_eq!(flags.limit_grab_per_address, defaults.grab_per_address);
        assert_eq!(flags.limit_grab_per_customer, defaults.grab_per_customer);
        assert_eq!(flags.limit_api_per_address, defaults.api_per_address);
        assert!(flags.admin_token.is_none() && !flags.admin_open && flags.admin_bind.is_none());
        let cli = Cli::try_parse_from([
            "seckill-server",
            "--rate-limit",
            "off",
            "--trusted-proxy",
            "10.0.0.0/8,192.0.2.7",
            "--limit-grab-per-address",
            "20/s burst 40",
        ])
        .expect("security flags parse");
        let flags = &cli.serve.security;
        assert_eq!(flags.rate_limit, security::Switch::Off);
        assert_eq!(flags.trusted_proxies.len(), 2);
        assert_eq!(flags.limit_grab_per_address.to_string(), "20/s burst 40");
    }

    #[test]
    fn rebuild_is_a_subcommand_and_serve_the_default() {
        let cli = Cli::try_parse_from([
            "seckill-server",
            "rebuild",
            "--database-url",
            "postgres://h/db",
        ])
        .expect("rebuild parses");
        assert!(matches!(cli.command, Some(Command::Rebuild(_))));
        let cli =
            Cli::try_parse_from(["seckill-server", "--bind", "127.0.0.1:0"]).expect("serve parses");
        assert!(cli.command.is_none());
    }

    #[test]
    fn nats_flags_default_to_the_seckill_stream_and_publish_is_a_subcommand() {
        let cli = Cli::try_parse_from(["seckill-server", "--nats-url", "nats://127.0.0.1:4222"])
            .expect("serve with NATS parses");
        assert_eq!(cli.serve.nats_url.as_deref(), Some("nats://127.0.0.1:4222"));
        let settings = cli.serve.nats.settings().expect("default settings");
        assert_eq!(settings.name, "SECKILL");
        assert_eq!(settings.subjects.all(), "seckill.promotion.>");
        assert_eq!(settings.duplicate_window, Duration::from_secs(120));
        assert_eq!(cli.serve.nats.subscription_name(), "nats-publisher.SECKILL");

        let cli = Cli::try_parse_from([
            "seckill-server",
            "publish",
            "--from",
            "42",
            "--database-url",
            "postgres://h/db",
            "--nats-url",
            "nats://h:4222",
            "--nats-stream",
            "ORDERS",
            "--nats-subject-prefix",
            "shop.eu",
        ])
        .expect("publish parses");
        let Some(Command::Publish(args)) = cli.command else {
            panic!("not publish: {:?}", cli.command);
        };
        assert_eq!(args.from, 42);
        assert_eq!(
            args.nats.settings().expect("settings").subjects.all(),
            "shop.eu.promotion.>"
        );

        let bad = Cli::try_parse_from(["seckill-server", "--nats-subject-prefix", "a.>"])
            .expect("parses; checked when used");
        assert!(bad.serve.nats.settings().is_err());
    }
}
