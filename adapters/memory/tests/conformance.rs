//! The conformance suite on the in-memory backend: every test of
//! seckill-testkit, each on a fresh store. The store keeps snapshots and
//! derives its projections from the events.

use seckill_memory::MemoryStore;
use seckill_testkit::{Capabilities, InProcess};

seckill_testkit::conformance!(InProcess::new(MemoryStore::new())
    .with_capabilities(Capabilities::all().with_stored_projections(false)));
