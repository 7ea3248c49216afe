//! How the suites get their storage: the [`Fixture`] trait comes from
//! seckill-testkit; the in-memory backend's fixture and the clean-up the
//! PostgreSQL and NATS fixtures share live here.

use std::future::Future;

pub use seckill_testkit::{Fixture, InProcess};

use seckill_memory::MemoryStore;
use seckill_testkit::Capabilities;

/// The in-memory backend. "Reopening" shares the same store, which is what a
/// second application instance in the same process would do. Make one with
/// [`memory_fixture`], which declares what the store keeps.
pub type MemoryFixture = InProcess<MemoryStore>;

/// A fresh in-memory store's fixture: snapshots kept, projections derived
/// from the events (the store has no rows of its own to replace).
pub fn memory_fixture() -> MemoryFixture {
    InProcess::new(MemoryStore::new())
        .with_capabilities(Capabilities::all().with_stored_projections(false))
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
