//! Test fixtures on a real PostgreSQL (feature `testing`): [`PgFixture`], a
//! migrated store on a fresh database of its own per test, for this crate's
//! tests and for whoever tests code built on it. The database comes from
//! seckill-testkit's [`TestDatabase`]: the server at `DATABASE_URL`, or a
//! throwaway cluster when nothing answers there.

use std::sync::Arc;

use async_trait::async_trait;
use seckill_app::Backend;
use seckill_testkit::postgres::TestDatabase;
use seckill_testkit::Fixture;
use sqlx::{Connection, PgConnection};

use crate::{PgOptions, PgStore};

/// One test's own PostgreSQL database with a migrated store on it, dropped
/// when the fixture is.
#[derive(Debug)]
pub struct PgFixture {
    database: TestDatabase,
    store: Arc<PgStore>,
}

impl PgFixture {
    /// Creates a fresh, migrated database and a store on it, on the server
    /// at `DATABASE_URL` (or its default, as [`TestDatabase::new`]).
    ///
    /// # Panics
    /// As [`TestDatabase::new`], or if the store cannot open on it.
    pub async fn new() -> Self {
        Self::on(TestDatabase::new().await, options()).await
    }

    /// [`new`](Self::new) on the server at `server_url`; when nothing answers
    /// there, on the shared throwaway cluster.
    pub async fn on_server(server_url: &str) -> Self {
        Self::on(TestDatabase::on_server(server_url).await, options()).await
    }

    /// [`new`](Self::new) with the store opened with `options` (start from
    /// [`options`] to keep the fixture's small pool and application name).
    pub async fn with_options(options: PgOptions) -> Self {
        Self::on(TestDatabase::new().await, options).await
    }

    async fn on(database: TestDatabase, options: PgOptions) -> Self {
        let store = Arc::new(open(database.url(), options).await);
        Self { database, store }
    }

    /// The URL of this fixture's database.
    pub fn url(&self) -> &str {
        self.database.url()
    }

    /// The fixture's store, as its concrete type.
    pub fn pg_store(&self) -> &PgStore {
        &self.store
    }

    /// A new store with its own pool on this fixture's database, with the
    /// fixture's [`options`].
    pub async fn open(&self) -> PgStore {
        open(self.url(), options()).await
    }

    /// A connection of its own to this fixture's database, set up as the
    /// store's are (its schema on the `search_path`), outside its pool.
    pub async fn connection(&self) -> PgConnection {
        let options = self.store.pool().connect_options().as_ref().clone();
        PgConnection::connect_with(&options)
            .await
            .unwrap_or_else(|e| panic!("connecting to the test database: {e}"))
    }
}

#[async_trait]
impl Fixture for PgFixture {
    async fn store(&self) -> Arc<dyn Backend> {
        self.store.clone()
    }

    async fn reopen(&self) -> Arc<dyn Backend> {
        Arc::new(self.open().await)
    }
}

/// Small pools: the suite runs its tests in parallel against one server.
/// Otherwise the defaults, so the schema is `seckill`.
pub fn options() -> PgOptions {
    PgOptions::default()
        .with_max_connections(5)
        .with_application_name("seckill-tests")
}

async fn open(url: &str, options: PgOptions) -> PgStore {
    PgStore::connect_with(url, options)
        .await
        .unwrap_or_else(|e| panic!("opening a PgStore on the test database: {e}"))
}
