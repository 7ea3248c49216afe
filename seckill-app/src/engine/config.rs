//! The engine's settings, [`EngineConfig`], and the rules they must keep.

use std::time::Duration;

/// Tuning knobs of the grab engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Requests one promotion's queue holds before callers get
    /// [`SecKillError::Overloaded`]. Bounds memory under any burst.
    pub queue_capacity: usize,
    /// Most commands decided and committed together in one append.
    pub max_batch: usize,
    /// A writer with nothing to do for this long hands its promotion back and
    /// stops; the next command loads it again.
    pub idle_timeout: Duration,
    /// How long one load or append may take before it counts as failed.
    pub store_timeout: Duration,
    /// How often a batch is decided again after a concurrency conflict (another
    /// process wrote the same promotion) before its callers get an error.
    pub max_conflict_retries: u32,
    /// Events after which a writer saves a snapshot. The gap doubles with the
    /// stream's length (a snapshot is taken once the events since the last
    /// one reach `max(snapshot_after, last snapshot's sequence)`), so the
    /// copying stays linear in the stream however long it grows. Writers also
    /// save one when they stop. 0 turns snapshots off.
    pub snapshot_after: u64,
    /// How long a finished promotion's final state stays in memory **after
    /// its last use**, to answer late grabs without a writer (the sold-out
    /// storm). Then it is dropped, so a long-running service does not keep
    /// every sale it ever ran; a later command loads the promotion again (its
    /// final snapshot, or its events if snapshots are off). Checked every
    /// `frozen_ttl / 4` (10 ms to 60 s), so a state goes between `frozen_ttl` and
    /// `frozen_ttl` plus that interval after its last use. `Duration::MAX`
    /// keeps it until the service stops; `Duration::ZERO` drops it at the
    /// next check, so late grabs mostly load the promotion again.
    pub frozen_ttl: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
            max_batch: 4_096,
            idle_timeout: Duration::from_secs(30),
            store_timeout: Duration::from_secs(5),
            max_conflict_retries: 16,
            snapshot_after: 10_000,
            frozen_ttl: Duration::from_secs(600),
        }
    }
}
