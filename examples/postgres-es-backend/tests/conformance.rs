//! The conformance suite on the postgres-es backend: every test of
//! seckill-testkit, each on a fresh database of its own.

use std::sync::Arc;

use async_trait::async_trait;
use seckill_app::Backend;
use seckill_example_postgres_es::PgEsBackend;
use seckill_testkit::postgres::TestDatabase;
use seckill_testkit::{Capabilities, Fixture};

/// One test's database and the backend opened on it.
struct PgEsFixture {
    // Declared first, so it is dropped first: its pool closes before the
    // database goes.
    backend: Arc<PgEsBackend>,
    // A uniquely named database on DATABASE_URL, dropped with the fixture.
    database: TestDatabase,
}

impl PgEsFixture {
    async fn new() -> Self {
        let database = TestDatabase::new().await;
        let backend = Arc::new(open(&database).await);
        Self { backend, database }
    }
}

async fn open(database: &TestDatabase) -> PgEsBackend {
    PgEsBackend::connect(database.url())
        .await
        .unwrap_or_else(|e| panic!("opening the backend on the test database: {e}"))
}

#[async_trait]
impl Fixture for PgEsFixture {
    async fn store(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }

    /// A second pool on the same database, as a second server would open.
    async fn reopen(&self) -> Arc<dyn Backend> {
        Arc::new(open(&self.database).await)
    }

    /// No snapshots (a promotion loads by replaying its stream), and
    /// projections derived from the events, so there are none to replace.
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
            .with_snapshots(false)
            .with_stored_projections(false)
    }
}

seckill_testkit::conformance!(PgEsFixture::new().await);
