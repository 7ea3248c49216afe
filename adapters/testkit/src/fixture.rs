//! How the conformance suite gets its storage: a backend provides a
//! [`Fixture`] that hands out a fresh, empty store per test, says how to open
//! it a second time, and declares which optional parts of the port it keeps.

use std::sync::Arc;

use async_trait::async_trait;
use seckill_app::Backend;

/// One test's storage. The suite builds a new fixture for every test, so a
/// fixture should start from nothing: a fresh database, schema or directory.
#[async_trait]
pub trait Fixture: Send + Sync + 'static {
    /// A handle on this test's store.
    async fn store(&self) -> Arc<dyn Backend>;

    /// A second, independent handle on the same stored data, as a restarted
    /// process or a second server would open it (for PostgreSQL: a new pool).
    /// The suite runs two engines on one promotion through two handles, so
    /// whatever one writes, the other must see, and a stream that moved
    /// under one must conflict for the other.
    async fn reopen(&self) -> Arc<dyn Backend>;

    /// Which optional parts of the port this backend keeps. The suite checks
    /// each declared part, and for an undeclared one that the store does not
    /// pretend to keep it. Default: [`Capabilities::all`].
    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }
}

/// The optional parts of the port a backend may leave out. Everything not
/// listed here is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// [`EventStore::save_snapshot`](seckill_app::EventStore::save_snapshot)
    /// keeps what it is given, and
    /// [`load_snapshot`](seckill_app::EventStore::load_snapshot) answers the
    /// latest. Without them a promotion loads by replaying its whole stream,
    /// and the suite checks that `load_snapshot` answers `None` throughout.
    pub snapshots: bool,
    /// The projections are rows of their own, written with the events, so
    /// [`ProjectionStore::replace_projection`](seckill_app::ProjectionStore::replace_projection)
    /// overwrites them and a repair tool can roll them back. Without it they
    /// are derived from the events when read: there is nothing to replace,
    /// nothing can lag behind the stream, and the suite checks that
    /// `replace_projection` changes nothing a reader sees.
    pub stored_projections: bool,
}

impl Capabilities {
    /// Every optional part: what the PostgreSQL backend keeps.
    pub const fn all() -> Self {
        Self {
            snapshots: true,
            stored_projections: true,
        }
    }

    /// These capabilities with snapshots kept or not.
    #[must_use]
    pub const fn with_snapshots(mut self, snapshots: bool) -> Self {
        self.snapshots = snapshots;
        self
    }

    /// These capabilities with projections stored, or derived from the
    /// events when read.
    #[must_use]
    pub const fn with_stored_projections(mut self, stored: bool) -> Self {
        self.stored_projections = stored;
        self
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::all()
    }
}

/// A fixture for a backend whose state lives in this process: every handle
/// is the same store, which is what a second application instance in the
/// same process would share ("reopening" it changes nothing).
///
/// Made with [`new`](Self::new) from a store built on purpose, and told
/// what that store keeps with [`with_capabilities`](Self::with_capabilities)
/// when it is not everything; no `Default`, which would name neither.
#[derive(Debug)]
pub struct InProcess<B> {
    store: Arc<B>,
    capabilities: Capabilities,
}

impl<B> InProcess<B> {
    /// A fixture over `store`, which should be fresh and empty, keeping
    /// every optional part ([`Capabilities::all`]).
    pub fn new(store: B) -> Self {
        Self {
            store: Arc::new(store),
            capabilities: Capabilities::all(),
        }
    }

    /// The same fixture, for a store that keeps only what `capabilities`
    /// says.
    #[must_use]
    pub const fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// The store itself, typed.
    pub fn inner(&self) -> &Arc<B> {
        &self.store
    }
}

#[async_trait]
impl<B: Backend> Fixture for InProcess<B> {
    async fn store(&self) -> Arc<dyn Backend> {
        self.store.clone()
    }

    async fn reopen(&self) -> Arc<dyn Backend> {
        self.store.clone()
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
}
