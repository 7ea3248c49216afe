//! The conformance suite on the in-memory backend: every test of
//! seckill-testkit, each on a fresh store.

use seckill_memory::MemoryStore;
use seckill_testkit::InProcess;

seckill_testkit::conformance!(InProcess::new(MemoryStore::new()));
