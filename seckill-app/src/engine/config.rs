//! The engine's settings, [`EngineConfig`], and the rules they must keep.

use std::time::Duration;

use thiserror::Error;
use tokio::sync::Semaphore;

/// Tuning knobs of the grab engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Requests one promotion's queue holds before callers get
    /// [`SecKillError::Overloaded`](crate::SecKillError::Overloaded). Bounds
    /// memory under any burst. At least 1.
    pub queue_capacity: usize,
    /// Most commands decided and committed together in one append. At least 1.
    pub max_batch: usize,
    /// Most promotions whose batches go to the store together, in one
    /// [`append_group`](crate::EventStore::append_group) (on PostgreSQL, one
    /// transaction): group commit across promotions, ADR 0012. Writers hand
    /// their batches to a committer shared by the engine, which appends
    /// whatever is waiting as one group. 1 turns it off: each writer appends
    /// alone. At least 1.
    pub max_commit_group: usize,
    /// A writer with nothing to do for this long hands its promotion back and
    /// stops; the next command loads it again. Not zero.
    pub idle_timeout: Duration,
    /// How long one load or append may take before it counts as failed. Not
    /// zero: every store call would fail.
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
    /// How often the expiry timer checks, by the service's clock, for
    /// promotions whose finish time has passed with coupons left, and records
    /// them expired. So a promotion is recorded expired within about this
    /// long after its finish time. Not zero: the timer would spin.
    pub expiry_interval: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
            max_batch: 4_096,
            max_commit_group: 128,
            idle_timeout: Duration::from_secs(30),
            store_timeout: Duration::from_secs(5),
            max_conflict_retries: 16,
            snapshot_after: 10_000,
            frozen_ttl: Duration::from_secs(600),
            expiry_interval: Duration::from_millis(250),
        }
    }
}

/// An [`EngineConfig`] setting the engine cannot run with, from
/// [`SecKillBuilder::build`](crate::SecKillBuilder::build).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `field` breaks `rule`.
    #[error("EngineConfig::{field} must be {rule}")]
    OutOfRange {
        /// The setting, as named in [`EngineConfig`].
        field: &'static str,
        /// What it must be.
        rule: &'static str,
    },
    /// A replicated service keeps its lease on a task, so it must be built
    /// inside a Tokio runtime.
    #[error("a replicated SecKill must be built inside a Tokio runtime")]
    NoRuntime,
}

impl EngineConfig {
    /// Checks every setting against its rule; the first one broken is the error.
    ///
    /// Each rule stops a hang or a silent failure: a zero `max_batch` takes
    /// no request from a queue, tokio cannot make a queue of no capacity or
    /// of more than [`Semaphore::MAX_PERMITS`], a zero `idle_timeout` retires
    /// a writer after every batch, a zero `store_timeout` fails every
    /// load and append, and a zero `expiry_interval` spins the expiry timer.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rules = [
            (
                (1..=Semaphore::MAX_PERMITS).contains(&self.queue_capacity),
                "queue_capacity",
                "between 1 and tokio's Semaphore::MAX_PERMITS",
            ),
            (self.max_batch >= 1, "max_batch", "at least 1"),
            (self.max_commit_group >= 1, "max_commit_group", "at least 1"),
            (
                !self.idle_timeout.is_zero(),
                "idle_timeout",
                "more than zero",
            ),
            (
                !self.store_timeout.is_zero(),
                "store_timeout",
                "more than zero",
            ),
            (
                !self.expiry_interval.is_zero(),
                "expiry_interval",
                "more than zero",
            ),
        ];
        match rules.into_iter().find(|(kept, _, _)| !kept) {
            Some((_, field, rule)) => Err(ConfigError::OutOfRange { field, rule }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(EngineConfig::default().validate(), Ok(()));
    }

    #[test]
    fn each_setting_that_would_hang_or_fail_is_refused_by_name() {
        let refused = |config: EngineConfig| match config.validate() {
            Err(ConfigError::OutOfRange { field, .. }) => field,
            Err(other) => panic!("{config:?} refused as {other}, not by its field"),
            Ok(()) => panic!("{config:?} was accepted"),
        };
        let default = EngineConfig::default;
        let cases = [
            (
                EngineConfig {
                    queue_capacity: 0,
                    ..default()
                },
                "queue_capacity",
            ),
            (
                EngineConfig {
                    queue_capacity: usize::MAX,
                    ..default()
                },
                "queue_capacity",
            ),
            (
                EngineConfig {
                    max_batch: 0,
                    ..default()
                },
                "max_batch",
            ),
            (
                EngineConfig {
                    max_commit_group: 0,
                    ..default()
                },
                "max_commit_group",
            ),
            (
                EngineConfig {
                    idle_timeout: Duration::ZERO,
                    ..default()
                },
                "idle_timeout",
            ),
            (
                EngineConfig {
                    store_timeout: Duration::ZERO,
                    ..default()
                },
                "store_timeout",
            ),
            (
                EngineConfig {
                    expiry_interval: Duration::ZERO,
                    ..default()
                },
                "expiry_interval",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(refused(config), field);
        }
    }

    #[test]
    fn frozen_ttl_zero_and_max_keep_their_documented_meaning() {
        for frozen_ttl in [Duration::ZERO, Duration::MAX] {
            let config = EngineConfig {
                frozen_ttl,
                ..EngineConfig::default()
            };
            assert_eq!(config.validate(), Ok(()));
        }
    }
}
