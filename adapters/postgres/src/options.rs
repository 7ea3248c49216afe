//! `PgOptions`: how big the pool is and how long the store waits, with
//! defaults that suit one service process.

use std::time::Duration;

/// Connection settings for [`PgStore::connect_with`](crate::PgStore::connect_with).
///
/// ```
/// use std::time::Duration;
/// use seckill_postgres::PgOptions;
///
/// let options = PgOptions {
///     max_connections: 5,
///     statement_timeout: Some(Duration::from_secs(2)),
///     ..PgOptions::default()
/// };
/// assert_eq!(options.acquire_timeout, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Most connections the pool opens. The grab engine appends for each hot
    /// promotion from one task, so a few connections serve many promotions.
    pub max_connections: u32,
    /// Connections the pool keeps open while idle.
    pub min_connections: u32,
    /// How long a call waits for a free connection before it fails with
    /// `StoreError::Unavailable`.
    pub acquire_timeout: Duration,
    /// The server-side limit on any one statement, so a stuck query frees its
    /// connection; exceeding it is `StoreError::Timeout`. `None` keeps the
    /// server's setting.
    pub statement_timeout: Option<Duration>,
    /// How long [`ping`](seckill_app::EventStore::ping) waits for `SELECT 1`.
    pub ping_timeout: Duration,
    /// The `application_name` the server shows in `pg_stat_activity`.
    pub application_name: String,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(5)),
            ping_timeout: Duration::from_secs(1),
            application_name: "seckill".to_owned(),
        }
    }
}
