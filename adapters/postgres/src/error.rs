//! Errors: [`ConnectError`] for opening a store, and the translation of sqlx's
//! errors into the port's `StoreError`, with what we were doing attached.

use std::time::Duration;

use seckill_app::StoreError;
use thiserror::Error;

/// Why [`PgStore::connect`](crate::PgStore::connect) failed.
///
/// The messages never repeat the database URL: it may hold a password.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The database URL does not parse.
    #[error("the database URL is invalid: {0}")]
    Url(#[source] sqlx::Error),
    /// The server did not accept a connection.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    /// The schema migrations failed.
    #[error("cannot migrate the SecKill schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A database call that failed, and what it was for.
#[derive(Debug, Error)]
#[error("{doing}: {source}")]
pub(crate) struct Failed {
    doing: String,
    #[source]
    source: sqlx::Error,
}

/// A row that the schema allows but the domain does not: hand-edited, or
/// written by a buggy or newer program. Reported, never panicked on.
#[derive(Debug, Error)]
pub(crate) enum Corrupt {
    /// A snapshot that does not decode into a `Promotion`.
    #[error("corrupt snapshot at #{sequence} of {aggregate_type} {aggregate_id}: {reason}")]
    Snapshot {
        aggregate_type: String,
        aggregate_id: String,
        sequence: u64,
        reason: String,
    },
    /// An event stream whose aggregate id is not a promotion id.
    #[error("{aggregate_type} stream {aggregate_id:?} has an id that is not a promotion id")]
    AggregateId {
        aggregate_type: String,
        aggregate_id: String,
    },
    /// A projection row that does not decode.
    #[error("corrupt {table} row of promotion {key}: {reason}")]
    Projection {
        table: &'static str,
        key: String,
        reason: String,
    },
}

impl Failed {
    pub(crate) fn new(doing: impl Into<String>, source: sqlx::Error) -> Self {
        Self {
            doing: doing.into(),
            source,
        }
    }
}

/// Classifies a failed call: unreachable server, a connection broken
/// mid-call, statement timeout, or any other failure. `statement_timeout` is what the pool was configured with.
pub(crate) fn store_error(
    doing: impl Into<String>,
    source: sqlx::Error,
    statement_timeout: Option<Duration>,
) -> StoreError {
    let unavailable = match &source {
        // The connection broke under a call already sent: a write may have
        // been committed before the answer was lost.
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => {
            return StoreError::interrupted(Failed::new(doing, source));
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or_default();
            if code == QUERY_CANCELED {
                if let Some(limit) = statement_timeout {
                    return StoreError::Timeout(limit);
                }
            }
            // Class 08: connection exceptions; 57P0x: the server is shutting
            // down or starting; 53300: no connection slot left.
            code.starts_with("08") || code.starts_with("57P0") || code == "53300"
        }
        _ => false,
    };
    let failed = Failed::new(doing, source);
    if unavailable {
        StoreError::unavailable(failed)
    } else {
        StoreError::backend(failed)
    }
}

/// SQLSTATE of a statement cancelled by `statement_timeout`.
const QUERY_CANCELED: &str = "57014";

/// SQLSTATE `unique_violation`.
pub(crate) const UNIQUE_VIOLATION: &str = "23505";

/// Whether `error` is a unique violation on `table`.
pub(crate) fn is_unique_violation_on(error: &sqlx::Error, table: &str) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some(UNIQUE_VIOLATION) && db.table() == Some(table)
        }
        _ => false,
    }
}
