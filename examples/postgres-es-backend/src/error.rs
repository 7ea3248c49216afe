//! Errors: [`OpenError`] for opening a backend, and the translation of
//! failures into the port's `StoreError`, where what matters is what the
//! engine may conclude: nothing was written, something may have been, or the
//! store refused.

use std::time::Duration;

use cqrs_es::persist::PersistenceError;
use seckill_app::StoreError;
use thiserror::Error;

/// Why [`PgEsBackend::connect`](crate::PgEsBackend::connect) or
/// [`new`](crate::PgEsBackend::new) failed. The messages never repeat the
/// database URL: it may hold a password.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The database URL does not parse.
    #[error("the database URL is invalid: {0}")]
    Url(#[source] sqlx::Error),
    /// The server did not accept a connection.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    /// Creating the tables failed; the transaction was rolled back.
    #[error("cannot create the backend's tables: {0}")]
    Schema(#[source] sqlx::Error),
}

/// A call that failed, and what it was for.
#[derive(Debug, Error)]
#[error("{doing}: {source}")]
struct Failed {
    doing: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

/// What a failed call through postgres-es's repository means. It hands back
/// sqlx's error boxed (and an optimistic-lock error, which only `append`
/// expects and handles), so it is unboxed and classified as our own calls'.
pub(crate) fn from_repository(
    doing: &'static str,
    error: PersistenceError,
    statement_timeout: Option<Duration>,
) -> StoreError {
    let source = match error {
        PersistenceError::ConnectionError(source)
        | PersistenceError::DeserializationError(source)
        | PersistenceError::UnknownError(source) => source,
        PersistenceError::OptimisticLockError => "unexpected optimistic-lock error".into(),
    };
    match source.downcast::<sqlx::Error>() {
        Ok(sqlx) => from_sqlx(doing, *sqlx, statement_timeout),
        Err(source) => StoreError::backend(Failed { doing, source }),
    }
}

/// What a failed sqlx call means for the engine.
///
/// The rule that matters is for writes: say "nothing was written"
/// ([`StoreError::Unavailable`]) only when no request reached the server.
/// When the connection broke after one may have (postgres-es does not tell
/// whether it broke at BEGIN, an INSERT or the COMMIT), the outcome is
/// unknown ([`StoreError::Interrupted`], [`StoreError::Timeout`]), and the
/// engine reads the stream back before answering the customer. Saying
/// "failed" for a grab that committed would take a coupon from its holder.
pub(crate) fn from_sqlx(
    doing: &'static str,
    error: sqlx::Error,
    statement_timeout: Option<Duration>,
) -> StoreError {
    enum Meaning {
        NothingSent,
        OutcomeUnknown,
        TimedOut(Duration),
        Failed,
    }
    let meaning = match &error {
        // No connection was had: nothing was sent.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Configuration(_) => Meaning::NothingSent,
        // The connection broke under a call.
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_) => {
            Meaning::OutcomeUnknown
        }
        sqlx::Error::Database(db) => match db.code().as_deref().unwrap_or_default() {
            // query_canceled: `statement_timeout` cut the statement off.
            "57014" => statement_timeout.map_or(Meaning::OutcomeUnknown, Meaning::TimedOut),
            // too_many_connections: refused at connect.
            "53300" => Meaning::NothingSent,
            // Class 08, connection exceptions, and 57P01..57P03, the server
            // shutting down: the session ended, perhaps after a COMMIT.
            code if code.starts_with("08") || code.starts_with("57P0") => Meaning::OutcomeUnknown,
            _ => Meaning::Failed,
        },
        _ => Meaning::Failed,
    };
    let failed = Failed {
        doing,
        source: Box::new(error),
    };
    match meaning {
        Meaning::NothingSent => StoreError::unavailable(failed),
        Meaning::OutcomeUnknown => StoreError::interrupted(failed),
        Meaning::TimedOut(limit) => StoreError::Timeout(limit),
        Meaning::Failed => StoreError::backend(failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_call_that_never_reached_the_server_says_nothing_was_written() {
        let unavailable = from_sqlx("appending", sqlx::Error::PoolTimedOut, None);
        assert!(matches!(unavailable, StoreError::Unavailable(_)));
        let broken = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let interrupted = from_sqlx("appending", sqlx::Error::Io(broken), None);
        assert!(interrupted.outcome_unknown(), "{interrupted:?}");
        assert!(interrupted.to_string().contains("appending"));
    }

    #[test]
    fn postgres_es_errors_are_unboxed_and_classified_alike() {
        let boxed = PersistenceError::UnknownError(Box::new(sqlx::Error::PoolClosed));
        assert!(matches!(
            from_repository("loading", boxed, None),
            StoreError::Unavailable(_)
        ));
        let broken = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let boxed = PersistenceError::ConnectionError(Box::new(sqlx::Error::Io(broken)));
        assert!(from_repository("appending", boxed, None).outcome_unknown());
        let other = PersistenceError::UnknownError("not sqlx".into());
        assert!(matches!(
            from_repository("loading", other, None),
            StoreError::Backend(_)
        ));
    }
}
