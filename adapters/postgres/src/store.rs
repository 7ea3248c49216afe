//! [`PgStore`]: the pool, the migrations, and the settings every query needs.

use std::str::FromStr;
use std::time::Duration;

use seckill_app::StoreError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::{store_error, ConnectError};
use crate::options::PgOptions;

/// The SecKill schema: the postgres-es event tables and our projections.
/// Exposed for deployments that migrate in a separate step.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// SecKill's event store and projections in one PostgreSQL database.
///
/// Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// What statements are cut off at, to report `StoreError::Timeout` with it.
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) ping_timeout: Duration,
}

impl PgStore {
    /// Connects with [`PgOptions::default`], and migrates the schema.
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// Connects with `options`, and migrates the schema.
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<Self, ConnectError> {
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(ConnectError::Url)?
            .application_name(&options.application_name);
        if let Some(limit) = options.statement_timeout {
            // A startup parameter, so it holds on every pooled connection
            // without a round trip per checkout.
            connect = connect.options([("statement_timeout", format!("{}ms", limit.as_millis()))]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .min_connections(options.min_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(ConnectError::Connect)?;
        let store = Self {
            pool,
            statement_timeout: options.statement_timeout,
            ping_timeout: options.ping_timeout,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A store over a pool you built yourself. It does not migrate: call
    /// [`migrate`](Self::migrate), or run [`MIGRATOR`] in your deployment.
    pub fn from_pool(pool: PgPool) -> Self {
        let defaults = PgOptions::default();
        Self {
            pool,
            statement_timeout: None,
            ping_timeout: defaults.ping_timeout,
        }
    }

    /// Brings the schema up to date. Safe to run from several processes at
    /// once (sqlx serialises them with an advisory lock), and it adopts a
    /// database that postgres-es created.
    pub async fn migrate(&self) -> Result<(), ConnectError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// The pool, for queries of your own on the same database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Translates a failed call into the port's error.
    pub(crate) fn error(&self, doing: impl Into<String>, source: sqlx::Error) -> StoreError {
        store_error(doing, source, self.statement_timeout)
    }
}
