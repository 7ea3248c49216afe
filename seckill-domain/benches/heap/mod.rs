//! What the domain's benches share: jemalloc as the allocator, as in the
//! server, so its own statistics count the live heap bytes (resident-set
//! sizes include allocator caches and whatever else the process did).

use tikv_jemalloc_ctl::{epoch, stats};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Bytes the program has allocated and not freed, in jemalloc's size classes.
pub(crate) fn live_bytes() -> usize {
    epoch::advance().expect("refresh jemalloc's statistics");
    stats::allocated::read().expect("read jemalloc's statistics")
}
