//! How the behaviour suite gets its storage: every backend provides a
//! [`Fixture`] that hands out a fresh, empty store per test.

use std::sync::Arc;

use async_trait::async_trait;
use seckill_app::Backend;
use seckill_memory::MemoryStore;

/// One test's storage.
#[async_trait]
pub trait Fixture: Send + Sync + 'static {
    /// A handle on this test's store.
    async fn store(&self) -> Arc<dyn Backend>;

    /// A second, independent handle on the same stored data, as a restarted
    /// process or a second server would open it (for PostgreSQL: a new pool).
    async fn reopen(&self) -> Arc<dyn Backend>;
}

/// The in-memory backend. "Reopening" shares the same store, which is what a
/// second application instance in the same process would do.
#[derive(Debug, Default)]
pub struct MemoryFixture {
    store: Arc<MemoryStore>,
}

impl MemoryFixture {
    /// A fresh, empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Fixture for MemoryFixture {
    async fn store(&self) -> Arc<dyn Backend> {
        self.store.clone()
    }

    async fn reopen(&self) -> Arc<dyn Backend> {
        self.store.clone()
    }
}
