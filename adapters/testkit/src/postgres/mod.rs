//! PostgreSQL for the tests: [`TestDatabase`] gives each test its own fresh
//! database on the server at `DATABASE_URL` (defaulted in
//! `.cargo/config.toml`), and drops it again when it goes (seckill-postgres's
//! `testing` feature puts a migrated store on one: `PgFixture`).
//!
//! When nothing answers there, the fixture uses a throwaway cluster started
//! from the installed PostgreSQL binaries instead (`fallback`), and says so on
//! stderr. Tests never skip silently: if that cannot start either, the
//! fixture panics and says why.
//!
//! # Layout
//! * `cluster`  – [`Cluster`](cluster::Cluster): a PostgreSQL cluster of the
//!   tests' own, run from the installed binaries, and [`free_port`](cluster::free_port).
//! * `fallback` – the shared throwaway cluster used when no server answers
//!   at `DATABASE_URL`, and how it is stopped after the last test process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

pub mod cluster;
mod fallback;

/// The server when `DATABASE_URL` is not set.
pub const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Every test database's name starts with this.
const PREFIX: &str = "seckill_test_";

/// Test databases older than this are left-overs of killed runs.
const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

/// Set to keep each test's database for a post-mortem.
const KEEP_VAR: &str = "SECKILL_KEEP_TEST_DB";

/// How long a server may take to answer before the fixture counts it as
/// absent.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A fresh, empty PostgreSQL database of its own, dropped when this is.
/// For a test (or the README's doctest) that sets SecKill up itself;
/// `seckill_postgres::testing::PgFixture` is one with a store already open
/// on it.
#[derive(Debug)]
pub struct TestDatabase {
    server_url: String,
    database: String,
    url: String,
}

impl TestDatabase {
    /// Creates a fresh database on the server at `DATABASE_URL` (or
    /// [`DEFAULT_SERVER_URL`]).
    ///
    /// # Panics
    /// If that server refuses us, or none answers and no throwaway cluster
    /// can be started: the message says which URL was tried and what to do.
    pub async fn new() -> Self {
        let server_url =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned());
        Self::on_server(&server_url).await
    }

    /// [`new`](Self::new) on the server at `server_url`; when nothing answers
    /// there, on the shared throwaway cluster.
    pub async fn on_server(server_url: &str) -> Self {
        let (server_url, mut admin) = admin_connection(server_url).await;
        remove_stale_databases(&mut admin).await;
        // UUID v7: unique, and its timestamp tells the stale sweep the age.
        let database = format!("{PREFIX}{}", Uuid::now_v7().simple());
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("creating test database {database}: {e}"));
        let _ = admin.close().await;
        let url = with_database(&server_url, &database);
        Self {
            server_url,
            database,
            url,
        }
    }

    /// The URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if std::env::var_os(KEEP_VAR).is_some() {
            eprintln!("kept test database {} ({KEEP_VAR} is set)", self.database);
            return;
        }
        let server_url = self.server_url.clone();
        let database = self.database.clone();
        let what = format!("dropping test database {database}");
        crate::teardown::clean_up(&what, move || async move {
            let mut admin = PgConnection::connect(&server_url)
                .await
                .map_err(|e| e.to_string())?;
            drop_database(&mut admin, &database).await
        });
    }
}

/// A connection to the server at `server_url`, or to the throwaway cluster
/// when nothing answers there; and the URL of the server it is on.
async fn admin_connection(server_url: &str) -> (String, PgConnection) {
    let refused = match connect(server_url).await {
        Ok(connection) => return (server_url.to_owned(), connection),
        Err(ConnectFailure::NoAnswer(_)) => return throwaway_connection(server_url).await,
        Err(ConnectFailure::Refused(e)) => e,
    };
    panic!(
        "\n\nThe PostgreSQL tests need a server where this user may CREATE DATABASE, \
         and the one at\n    {server_url}\nrefused: {refused}\n\n\
         Fix its access, or DATABASE_URL. (When nothing answers at all, the tests \
         start a throwaway cluster of their own; a server that answers and refuses \
         is not replaced.)\n"
    )
}

/// A connection to the shared throwaway cluster, started if need be.
async fn throwaway_connection(unanswered: &str) -> (String, PgConnection) {
    let unanswered = unanswered.to_owned();
    // Blocking (locks, initdb, pg_ctl), so off the test's runtime.
    let url = match tokio::task::spawn_blocking(move || fallback::server_url(&unanswered)).await {
        Ok(url) => url,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    match connect(&url).await {
        Ok(connection) => (url, connection),
        Err(e) => panic!("connecting to the throwaway cluster at {url}: {e}"),
    }
}

/// Why a connection could not be opened.
#[derive(Debug)]
enum ConnectFailure {
    /// The server answered, and said no (authentication, missing database, ...).
    Refused(sqlx::Error),
    /// Nothing answered: no listener, an unreachable host, or no answer in
    /// [`CONNECT_TIMEOUT`].
    NoAnswer(String),
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(e) => e.fmt(f),
            Self::NoAnswer(why) => f.write_str(why),
        }
    }
}

async fn connect(url: &str) -> Result<PgConnection, ConnectFailure> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(sqlx::Error::Io(e))) => Err(ConnectFailure::NoAnswer(e.to_string())),
        Ok(Err(e)) => Err(ConnectFailure::Refused(e)),
        Err(_) => Err(ConnectFailure::NoAnswer(format!(
            "no answer in {CONNECT_TIMEOUT:?}"
        ))),
    }
}

/// `server_url` with its database replaced by `database`.
fn with_database(server_url: &str, database: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{host_part}/{database}?{query}"),
        None => format!("{host_part}/{database}"),
    }
}

async fn drop_database(admin: &mut PgConnection, database: &str) -> Result<(), String> {
    // FORCE: writer tasks of the test may still hold pooled connections.
    sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(admin)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Drops test databases that killed runs left behind; once per process.
async fn remove_stale_databases(admin: &mut PgConnection) {
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    let names: Vec<String> = match sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'seckill\\_test\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    {
        Ok(names) => names,
        Err(e) => {
            eprintln!("warning: cannot list stale test databases: {e}");
            return;
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    for name in names {
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|id| Uuid::parse_str(id).ok())
            .and_then(|id| id.get_timestamp())
            .map(|ts| Duration::from_secs(ts.to_unix().0));
        let stale = created.is_some_and(|at| now.saturating_sub(at) > STALE_AFTER);
        if stale {
            if let Err(e) = drop_database(admin, &name).await {
                eprintln!("warning: cannot drop stale test database {name}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_is_swapped_and_everything_else_kept() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(with_database("postgres://h/", "t1"), "postgres://h/t1");
    }
}
