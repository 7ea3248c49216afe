//! Errors: [`ConnectError`] for opening a store, and the translation of sqlx's
//! errors into the port's `StoreError`, with what we were doing attached.

use std::time::Duration;

use seckill_app::StoreError;
use thiserror::Error;

use crate::options::OptionsError;

/// Why [`PgStore::connect`](crate::PgStore::connect) failed, or
/// [`migrate`](crate::PgStore::migrate) or [`verify`](crate::PgStore::verify).
///
/// The messages never repeat the database URL: it may hold a password.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// A [`PgOptions`](crate::PgOptions) setting breaks its rule; nothing
    /// was connected.
    #[error("invalid PostgreSQL options: {0}")]
    Options(#[from] OptionsError),
    /// The database URL does not parse.
    #[error("the database URL is invalid: {0}")]
    Url(#[source] sqlx::Error),
    /// The server did not accept a connection.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    /// The schema migrations failed.
    #[error("cannot migrate the SecKill schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Creating the schema, or moving an old layout's tables into it
    /// (`doing` says which), failed; the transaction was rolled back.
    #[error("cannot prepare the SecKill schema ({doing}): {source}")]
    Schema {
        /// What was being done.
        doing: String,
        /// What the server said.
        #[source]
        source: sqlx::Error,
    },
    /// `public` holds SecKill's tables from before the schema option, but
    /// the target schema already has an object of the same name, so neither
    /// can be chosen for the other: move or drop one by hand (docs/schema.md).
    #[error(
        "public holds SecKill's old tables, but schema {schema:?} already has {object}: \
         nothing was moved; move or drop one of them by hand"
    )]
    Moving {
        /// The target schema.
        schema: String,
        /// The object of `public` whose name is taken there.
        object: String,
    },
    /// A pool given to [`PgStore::from_pool_with`](crate::PgStore::from_pool_with)
    /// resolves unqualified names to another schema than the options name, so
    /// SecKill's tables would be created or looked for in the wrong place.
    #[error(
        "the pool's connections resolve unqualified names to schema {found:?}, not {expected:?}: \
         build the pool from PgOptions::apply_to, or put {expected:?} first on its search_path"
    )]
    SearchPath {
        /// The schema the options name.
        expected: String,
        /// What `current_schema()` answered (`None`: no schema on the path exists).
        found: Option<String>,
    },
    /// A pool given to [`PgStore::from_pool_with`](crate::PgStore::from_pool_with)
    /// cuts statements off at another limit than the options say, so timeouts
    /// would be reported with the wrong limit.
    #[error(
        "the pool's connections have statement_timeout {found:?} (None: no limit), the options say \
         {expected:?}: build the pool from PgOptions::apply_to, or give the options its limit"
    )]
    StatementTimeout {
        /// The options' limit.
        expected: Duration,
        /// The pool's limit.
        found: Option<Duration>,
    },
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
        sqlx::Error::Configuration(e) if e.is::<crate::writable::ReadOnly>() => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or_default();
            if code == QUERY_CANCELED {
                if let Some(limit) = statement_timeout {
                    return StoreError::Timeout(limit);
                }
            }
            // Class 08: connection exceptions; 57P0x: the server is shutting
            // down or starting; 53300: no connection slot left; 25006: the
            // server takes no writes (a standby: a failover moved the
            // primary), so nothing was written.
            code.starts_with("08")
                || code.starts_with("57P0")
                || code == "53300"
                || code == READ_ONLY_SQL_TRANSACTION
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

/// SQLSTATE `read_only_sql_transaction`: a write on a server that takes none.
const READ_ONLY_SQL_TRANSACTION: &str = "25006";

/// Whether `error` is a write refused by a server that takes no writes.
pub(crate) fn is_read_only(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().as_deref() == Some(READ_ONLY_SQL_TRANSACTION),
        // The pool refused a connection to such a server (`Writable`).
        sqlx::Error::Configuration(e) => e.is::<crate::writable::ReadOnly>(),
        _ => false,
    }
}

/// SQLSTATE of a statement cancelled by `statement_timeout`.
const QUERY_CANCELED: &str = "57014";

/// The SQLSTATE class of `error`'s database error, if it is one.
fn class(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|code| code.chars().take(2).collect()),
        _ => None,
    }
}

/// Whether PostgreSQL rolled the transaction back for it to be tried again
/// (class 40: a deadlock, a serialization failure): nothing of it was
/// written.
pub(crate) fn is_rolled_back_to_retry(error: &sqlx::Error) -> bool {
    class(error).as_deref() == Some("40")
}

/// Whether PostgreSQL refused a value or a row (class 22, data exception;
/// class 23, integrity constraint violation): nothing of the statement was
/// written.
pub(crate) fn refuses_a_row(error: &sqlx::Error) -> bool {
    matches!(class(error).as_deref(), Some("22" | "23"))
}

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
