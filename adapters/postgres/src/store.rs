//! [`PgStore`]: the pool, the migrations, and the settings every query needs;
//! how a pool of the user's own must be set up.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use seckill_app::StoreError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool};

use crate::error::{store_error, ConnectError};
use crate::options::PgOptions;
use crate::schema;
use crate::writable::Writable;

const POOL_SETTINGS: &str = include_str!("../sql/pool_settings.sql");

/// The SecKill schema: the postgres-es event tables and our projections.
///
/// Its statements name no schema, and sqlx 0.8 keeps its `_sqlx_migrations`
/// unqualified too: both land in the first schema of the connection's
/// `search_path`. Run it through [`PgStore::migrate`], which creates the
/// store's schema and checks the path first; running it on a pool of your
/// own with the default `search_path` puts SecKill in `public`, beside (and
/// in the migrations table of) your own migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// SecKill's event store and projections in one PostgreSQL database, in
/// the schema [`PgOptions::schema`] names.
///
/// Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// What statements are cut off at, to report `StoreError::Timeout` with it.
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) ping_timeout: Duration,
    /// Keeps the pool on a server that takes writes; shared with the pool's
    /// hooks and by clones.
    pub(crate) writable: Arc<Writable>,
    /// Shared by clones: the store is cloned per subscription and per task.
    schema: Arc<str>,
}

impl PgStore {
    /// Connects with [`PgOptions::default`], and migrates the schema.
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// Connects with `options`, creates their schema if missing (moving an
    /// old layout's tables out of `public` into it, see docs/schema.md), and
    /// migrates it. Invalid options are [`ConnectError::Options`], before
    /// anything connects.
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<Self, ConnectError> {
        options.validate()?;
        let connect = PgConnectOptions::from_str(url).map_err(ConnectError::Url)?;
        let writable = Writable::new();
        let pool = writable
            .hooks(options.pool_options())
            .connect_with(options.apply_to(connect))
            .await
            .map_err(ConnectError::Connect)?;
        let store = Self::assemble(pool, &options, writable);
        store.migrate().await?;
        Ok(store)
    }

    /// A store over a pool you built yourself, described by `options`: its
    /// connections must have `search_path` set to `options.schema` (alone, or
    /// first) and, when `options.statement_timeout` is set, that
    /// `statement_timeout`; the pool-shaping options (size, acquire timeout,
    /// application name) are the pool's business and not read here. Build it
    /// with [`PgOptions::pool_options`] and [`PgOptions::apply_to`] and both
    /// hold; [`verify`](Self::verify) checks them.
    ///
    /// It does not touch the database: call [`migrate`](Self::migrate)
    /// (which verifies, creates the schema and migrates), or, when your
    /// deployment migrates in a step of its own, at least `verify`.
    pub fn from_pool_with(pool: PgPool, options: PgOptions) -> Result<Self, ConnectError> {
        options.validate()?;
        Ok(Self::assemble(pool, &options, Writable::new()))
    }

    /// [`from_pool_with`](Self::from_pool_with) with [`PgOptions::default`]:
    /// the pool's connections must have `search_path=seckill` and a 5 s
    /// `statement_timeout`.
    pub fn from_pool(pool: PgPool) -> Self {
        Self::assemble(pool, &PgOptions::default(), Writable::new())
    }

    fn assemble(pool: PgPool, options: &PgOptions, writable: Arc<Writable>) -> Self {
        Self {
            pool,
            statement_timeout: options.statement_timeout,
            ping_timeout: options.ping_timeout,
            writable,
            schema: options.schema.as_str().into(),
        }
    }

    /// A store that reads through `pool` (a standby's) with `like`'s
    /// settings; it never writes, so its pool has no write checks.
    pub(crate) fn reading(pool: PgPool, like: &Self) -> Self {
        Self {
            pool,
            statement_timeout: like.statement_timeout,
            ping_timeout: like.ping_timeout,
            writable: Writable::new(),
            schema: Arc::clone(&like.schema),
        }
    }

    /// The schema SecKill's tables are in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Checks that the pool matches the options the store was made with: one
    /// pooled connection resolves unqualified names to the store's schema
    /// ([`ConnectError::SearchPath`] if not; the schema must exist) and cuts
    /// statements off at the options' `statement_timeout`, when they set one
    /// ([`ConnectError::StatementTimeout`] if not).
    pub async fn verify(&self) -> Result<(), ConnectError> {
        let (found, limit_ms): (Option<String>, i64) = sqlx::query_as(POOL_SETTINGS)
            .fetch_one(&self.pool)
            .await
            .map_err(ConnectError::Connect)?;
        if found.as_deref() != Some(self.schema()) {
            return Err(ConnectError::SearchPath {
                expected: self.schema().to_owned(),
                found,
            });
        }
        if let Some(expected) = self.statement_timeout {
            let found = u64::try_from(limit_ms)
                .ok()
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis);
            // Whole milliseconds: what `apply_to` sets, and what the server keeps.
            if found.map(|d| d.as_millis()) != Some(expected.as_millis()) {
                return Err(ConnectError::StatementTimeout { expected, found });
            }
        }
        Ok(())
    }

    /// Brings the schema up to date: verifies the pool, creates the schema if
    /// missing, moves an old layout into it (docs/schema.md), and runs
    /// [`MIGRATOR`]. Safe to run from several processes at once (an advisory
    /// lock serialises preparing the schema, and sqlx serialises the
    /// migrations with another), and it adopts a database that postgres-es
    /// created in that schema.
    pub async fn migrate(&self) -> Result<(), ConnectError> {
        schema::prepare(&self.pool, self.schema()).await?;
        self.verify().await?;
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// The pool, for queries of your own on the same database. Its connections
    /// have `search_path` set to [`schema`](Self::schema) alone: name your
    /// own tables with their schema (`public.orders`), or use a pool of your own.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Translates a failed call into the port's error. A server that took
    /// no write sets the pool checking its connections at checkout.
    pub(crate) fn error(&self, doing: impl Into<String>, source: sqlx::Error) -> StoreError {
        if crate::error::is_read_only(&source) {
            self.writable.suspect();
        }
        store_error(doing, source, self.statement_timeout)
    }
}
