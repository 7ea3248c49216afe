//! A complete SecKill [`Backend`](seckill_app::Backend) on postgres-es's
//! [`PostgresEventRepository`]: the worked example of docs/backends.md.
//!
//! Events go through postgres-es, into its own `events` table, so any
//! cqrs-es application can read them. The rest is this crate's own SQL on
//! the same pool: the global feed (a `position` column that a trigger fills
//! in commit order), the projections, which are derived from the events when
//! read instead of being stored, and the subscriptions' leases. Snapshots
//! are not kept: a promotion loads by replaying its stream.
//!
//! It passes the whole conformance suite, `seckill-testkit`
//! (tests/conformance.rs), and is written to be read: a production backend
//! would store its projections (see `seckill-postgres`).
//!
//! ```no_run
//! # async fn open() -> Result<(), Box<dyn std::error::Error>> {
//! use seckill_example_postgres_es::PgEsBackend;
//!
//! let backend = PgEsBackend::connect("postgres://postgres@127.0.0.1/shop").await?;
//! let seckill = seckill_app::SecKill::builder(backend).build()?;
//! # let _ = seckill; Ok(()) }
//! ```
//!
//! # Layout
//! * `events`        – [`EventStore`](seckill_app::EventStore): appends and
//!   loads through postgres-es, the global feed by SQL of its own.
//! * `projections`   – [`ProjectionStore`](seckill_app::ProjectionStore):
//!   summaries replayed from the stream, coupons found in the grab events.
//! * `subscriptions` – [`SubscriptionStore`](seckill_app::subscription::SubscriptionStore):
//!   leases fenced by an epoch, and checkpoints.
//! * `error`         – [`OpenError`], and what each failure means for the
//!   engine (`StoreError`).
//! * `sql/schema.sql` – the tables, the position trigger and the indexes,
//!   created when a backend opens.

mod error;
mod events;
mod projections;
mod subscriptions;

use std::time::Duration;

use postgres_es::PostgresEventRepository;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

pub use error::OpenError;

/// The tables, trigger and indexes; idempotent, so every open runs it.
const SCHEMA: &str = include_str!("../sql/schema.sql");

/// The pool [`PgEsBackend::connect`] builds: small, and no call waits
/// forever. A statement cut off by `statement_timeout` is reported as
/// [`StoreError::Timeout`](seckill_app::StoreError::Timeout).
const MAX_CONNECTIONS: u32 = 8;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A SecKill backend on postgres-es's event table. Cheap to share: wrap it in
/// an `Arc`, or hand it to `SecKill::builder`. Every handle opened on the same
/// database sees the same state, as the port's contract asks.
pub struct PgEsBackend {
    pool: PgPool,
    /// postgres-es's repository on the same pool: appends and stream loads.
    repository: PostgresEventRepository,
    /// The pool's `statement_timeout`, for reporting a cancelled statement
    /// as a timeout of that length; `None` when it has none.
    statement_timeout: Option<Duration>,
}

impl std::fmt::Debug for PgEsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEsBackend")
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

impl PgEsBackend {
    /// Opens a backend on the database at `url` with a pool of its own (at
    /// most 8 connections, 10 s to get one, statements cut off after 10 s),
    /// creating the tables if need be.
    pub async fn connect(url: &str) -> Result<Self, OpenError> {
        let options: PgConnectOptions = url.parse().map_err(OpenError::Url)?;
        let timeout = format!("{}ms", STATEMENT_TIMEOUT.as_millis());
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.options([("statement_timeout", timeout.as_str())]))
            .await
            .map_err(OpenError::Connect)?;
        Self::new(pool).await
    }

    /// Opens a backend on `pool`, creating the tables if need be. The pool
    /// may be shared with the rest of the application.
    pub async fn new(pool: PgPool) -> Result<Self, OpenError> {
        // One simple-protocol query of many statements, which PostgreSQL
        // runs as one transaction: all or nothing, and the schema's advisory
        // lock is held to its end.
        sqlx::raw_sql(SCHEMA)
            .execute(&pool)
            .await
            .map_err(OpenError::Schema)?;
        // In milliseconds, 0 for none; read back so a pool built elsewhere
        // is reported truthfully too.
        let timeout: i64 = sqlx::query_scalar(
            "SELECT (extract(epoch FROM current_setting('statement_timeout')::interval) * 1000)::bigint",
        )
        .fetch_one(&pool)
        .await
        .map_err(OpenError::Connect)?;
        Ok(Self {
            repository: PostgresEventRepository::new(pool.clone()),
            statement_timeout: u64::try_from(timeout)
                .ok()
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis),
            pool,
        })
    }

    /// The pool, for the application's own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
