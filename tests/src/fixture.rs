//! How the behaviour suite gets its storage: every backend provides a
//! [`Fixture`] that hands out a fresh, empty store per test.

use std::future::Future;
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

/// Runs a fixture's clean-up from its `Drop`, and waits for it. Drop runs
/// inside the test's runtime, which cannot be blocked on; a thread with its
/// own runtime can, and joining it means the clean-up is done before the
/// test process exits. `what` names it in the warning when it fails.
pub(crate) fn clean_up<F>(what: &str, clean_up: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = Result<(), String>>,
{
    let cleanup = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(clean_up())
    });
    match cleanup.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("warning: {what} failed: {e}"),
        Err(_) => eprintln!("warning: {what} panicked"),
    }
}
