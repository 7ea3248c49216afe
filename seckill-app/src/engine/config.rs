//! The engine's settings, [`EngineConfig`], and the rules they must keep.

use std::time::Duration;

use thiserror::Error;
use tokio::sync::Semaphore;

/// Tuning knobs of the grab engine. Every field's doc comment states its
/// default and its rule ([`validate`](Self::validate) checks them all).
///
/// Non-exhaustive, so a new knob is not a breaking change: start from
/// [`EngineConfig::default`] and change fields with the `with_*` setters,
///
/// ```
/// # use std::time::Duration;
/// # use seckill_app::EngineConfig;
/// let config = EngineConfig::default()
///     .with_store_timeout(Duration::from_secs(2))
///     .with_max_batch(1_024);
/// assert_eq!(config.validate(), Ok(()));
/// ```
///
/// or, with the `serde` feature, load it from a configuration file: every
/// field is optional (a missing one keeps its default), unknown fields are
/// refused, and durations are humantime strings (`"250ms"`, `"10m"`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Requests one promotion's queue holds before callers get
    /// [`SecKillError::Overloaded`](crate::SecKillError::Overloaded). Bounds
    /// memory under any burst: a writer holds at most this many queued, plus
    /// one batch (`max_batch`) decided ahead while a commit is in flight
    /// ([`decide_ahead`](Self::decide_ahead)). Default 65,536; between 1 and
    /// tokio's `Semaphore::MAX_PERMITS`.
    pub queue_capacity: usize,
    /// Most commands decided and committed together in one append. Default
    /// 4,096; at least 1 (a batch never holds more than the queue does, so
    /// any larger value is fine).
    pub max_batch: usize,
    /// Most promotions whose batches go to the store together, in one
    /// [`append_group`](crate::EventStore::append_group) (on PostgreSQL, one
    /// transaction): group commit across promotions, ADR 0012. On a store
    /// that groups commits ([`groups_commits`](crate::EventStore::groups_commits)),
    /// writers hand their batches to a committer shared by the engine, which
    /// appends whatever is waiting as one group; on any other store, or with
    /// 1, each writer appends alone. Default 1,024 (with 10,000 sales at
    /// once, one grab each a commit, 1,024 ran 1.13× the rate of 128 on
    /// PostgreSQL; 100 sales never fill either); between 1 and 65,536 (the
    /// committer reserves room for a whole group each round).
    pub max_commit_group: usize,
    /// Whether a writer decides the requests that arrive while its commit is
    /// in flight (on the state that includes that commit's events), so the
    /// next commit leaves the moment the last one lands. Its callers are
    /// answered only after both commits landed; if the first fails, their
    /// decisions are dropped and made again on the store's state. `false`
    /// waits for each commit before deciding anything more (the baseline the
    /// grab bench compares with). Default `true`.
    pub decide_ahead: bool,
    /// A writer with nothing to do for this long hands its promotion back and
    /// stops; the next command loads it again. Default 30 s; not zero (a
    /// writer would retire after every batch).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub idle_timeout: Duration,
    /// How long one load or append may take before it counts as failed (an
    /// append's callers then hear "outcome unknown"). Default 5 s; not zero
    /// (every store call would fail).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub store_timeout: Duration,
    /// How often a batch is decided again after a concurrency conflict (another
    /// process wrote the same promotion) before its callers get
    /// [`SecKillError::Conflict`](crate::SecKillError::Conflict). Default 16;
    /// any value (0 answers the first conflict with the error).
    pub max_conflict_retries: u32,
    /// Events after which a writer saves a snapshot. The gap doubles with the
    /// stream's length (a snapshot is taken once the events since the last
    /// one reach `max(snapshot_after, last snapshot's sequence)`), so the
    /// copying stays linear in the stream however long it grows. Writers also
    /// save one when they stop. Default 10,000; any value (0 turns snapshots
    /// off).
    pub snapshot_after: u64,
    /// How long a finished promotion's final state stays in memory **after
    /// its last use**, to answer late grabs without a writer (the sold-out
    /// storm). Then it is dropped, so a long-running service does not keep
    /// every sale it ever ran; a later command loads the promotion again (its
    /// final snapshot, or its events if snapshots are off). Checked every
    /// `frozen_ttl / 4` (10 ms to 60 s), so a state goes between `frozen_ttl` and
    /// `frozen_ttl` plus that interval after its last use. Default 10 min;
    /// any value: `Duration::MAX` keeps it until the service stops,
    /// `Duration::ZERO` drops it at the next check, so late grabs mostly load
    /// the promotion again.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub frozen_ttl: Duration,
    /// How often the expiry timer checks, by the service's clock, for
    /// promotions whose finish time has passed with coupons left, and records
    /// them expired. So a promotion is recorded expired within about this
    /// long after its finish time. Default 250 ms; more than zero (the timer
    /// would spin) and at most a day (a sale must not look open for longer,
    /// and the timer's next tick must not overflow).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub expiry_interval: Duration,
    /// Summaries the feed of every promotion ([`SecKill::watch`]) holds for
    /// a receiver that reads slowly; one that falls further behind gets
    /// `Lagged` and skips ahead. The per-promotion watch
    /// ([`SecKill::watch_promotion`]) never lags and needs no capacity.
    /// Default 1,024; between 1 and 1,048,576 (the ring is allocated whole
    /// when the service is built).
    ///
    /// [`SecKill::watch`]: crate::SecKill::watch
    /// [`SecKill::watch_promotion`]: crate::SecKill::watch_promotion
    pub watch_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
            max_batch: 4_096,
            max_commit_group: 1_024,
            decide_ahead: true,
            idle_timeout: Duration::from_secs(30),
            store_timeout: Duration::from_secs(5),
            max_conflict_retries: 16,
            snapshot_after: 10_000,
            frozen_ttl: Duration::from_secs(600),
            expiry_interval: Duration::from_millis(250),
            watch_capacity: 1_024,
        }
    }
}

/// One `with_*` setter per field: `EngineConfig` is non-exhaustive, so
/// callers outside this crate cannot use a struct literal.
macro_rules! setters {
    ($($(#[$doc:meta])* $setter:ident => $field:ident: $type:ty;)+) => {
        impl EngineConfig {
            $(
                $(#[$doc])*
                #[must_use]
                pub const fn $setter(mut self, $field: $type) -> Self {
                    self.$field = $field;
                    self
                }
            )+
        }
    };
}

setters! {
    /// Sets [`queue_capacity`](Self::queue_capacity).
    with_queue_capacity => queue_capacity: usize;
    /// Sets [`max_batch`](Self::max_batch).
    with_max_batch => max_batch: usize;
    /// Sets [`max_commit_group`](Self::max_commit_group).
    with_max_commit_group => max_commit_group: usize;
    /// Sets [`decide_ahead`](Self::decide_ahead).
    with_decide_ahead => decide_ahead: bool;
    /// Sets [`idle_timeout`](Self::idle_timeout).
    with_idle_timeout => idle_timeout: Duration;
    /// Sets [`store_timeout`](Self::store_timeout).
    with_store_timeout => store_timeout: Duration;
    /// Sets [`max_conflict_retries`](Self::max_conflict_retries).
    with_max_conflict_retries => max_conflict_retries: u32;
    /// Sets [`snapshot_after`](Self::snapshot_after).
    with_snapshot_after => snapshot_after: u64;
    /// Sets [`frozen_ttl`](Self::frozen_ttl).
    with_frozen_ttl => frozen_ttl: Duration;
    /// Sets [`expiry_interval`](Self::expiry_interval).
    with_expiry_interval => expiry_interval: Duration;
    /// Sets [`watch_capacity`](Self::watch_capacity).
    with_watch_capacity => watch_capacity: usize;
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
    /// The service starts its tasks (writers, timers, a replica's lease) on
    /// the current Tokio runtime, so it must be built inside one.
    #[error("a SecKill must be built inside a Tokio runtime")]
    NoRuntime,
}

/// The longest [`EngineConfig::expiry_interval`].
const MAX_EXPIRY_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

impl EngineConfig {
    /// Checks every setting against its rule; the first one broken is the error.
    ///
    /// Each rule stops a hang, a panic or a silent failure: a zero
    /// `max_batch` takes no request from a queue, tokio cannot make a queue
    /// of no capacity or of more than [`Semaphore::MAX_PERMITS`], nor a feed
    /// ring of none, a zero `idle_timeout` retires a writer after every
    /// batch, a zero `store_timeout` fails every load and append, a zero
    /// `expiry_interval` spins the expiry timer and a huge one overflows it,
    /// and a huge `max_commit_group` or `watch_capacity` allocates without
    /// bound. `max_conflict_retries`, `snapshot_after` and `frozen_ttl` have
    /// a meaning for every value (see each field).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rules = [
            (
                (1..=Semaphore::MAX_PERMITS).contains(&self.queue_capacity),
                "queue_capacity",
                "between 1 and tokio's Semaphore::MAX_PERMITS",
            ),
            (self.max_batch >= 1, "max_batch", "at least 1"),
            (
                (1..=65_536).contains(&self.max_commit_group),
                "max_commit_group",
                "between 1 and 65536",
            ),
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
                !self.expiry_interval.is_zero() && self.expiry_interval <= MAX_EXPIRY_INTERVAL,
                "expiry_interval",
                "more than zero and at most a day",
            ),
            (
                (1..=1 << 20).contains(&self.watch_capacity),
                "watch_capacity",
                "between 1 and 1048576",
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
            (default().with_queue_capacity(0), "queue_capacity"),
            (default().with_queue_capacity(usize::MAX), "queue_capacity"),
            (default().with_max_batch(0), "max_batch"),
            (default().with_max_commit_group(0), "max_commit_group"),
            (
                default().with_max_commit_group(usize::MAX),
                "max_commit_group",
            ),
            (default().with_idle_timeout(Duration::ZERO), "idle_timeout"),
            (
                default().with_store_timeout(Duration::ZERO),
                "store_timeout",
            ),
            (
                default().with_expiry_interval(Duration::ZERO),
                "expiry_interval",
            ),
            (
                default().with_expiry_interval(Duration::MAX),
                "expiry_interval",
            ),
            (default().with_watch_capacity(0), "watch_capacity"),
            (default().with_watch_capacity(usize::MAX), "watch_capacity"),
        ];
        for (config, field) in cases {
            assert_eq!(refused(config), field);
        }
    }

    #[test]
    fn the_settings_without_a_rule_take_any_value() {
        let extremes = [
            EngineConfig::default()
                .with_frozen_ttl(Duration::ZERO)
                .with_max_conflict_retries(0)
                .with_snapshot_after(0),
            EngineConfig::default()
                .with_frozen_ttl(Duration::MAX)
                .with_max_conflict_retries(u32::MAX)
                .with_snapshot_after(u64::MAX)
                .with_max_batch(usize::MAX)
                .with_idle_timeout(Duration::MAX)
                .with_store_timeout(Duration::MAX),
        ];
        for config in extremes {
            assert_eq!(config.validate(), Ok(()), "{config:?}");
        }
    }

    #[test]
    fn each_setter_changes_its_own_field() {
        let config = EngineConfig::default()
            .with_queue_capacity(7)
            .with_max_batch(6)
            .with_max_commit_group(5)
            .with_decide_ahead(false)
            .with_idle_timeout(Duration::from_secs(4))
            .with_store_timeout(Duration::from_secs(3))
            .with_max_conflict_retries(2)
            .with_snapshot_after(1)
            .with_frozen_ttl(Duration::from_secs(9))
            .with_expiry_interval(Duration::from_secs(8))
            .with_watch_capacity(10);
        let expected = EngineConfig {
            queue_capacity: 7,
            max_batch: 6,
            max_commit_group: 5,
            decide_ahead: false,
            idle_timeout: Duration::from_secs(4),
            store_timeout: Duration::from_secs(3),
            max_conflict_retries: 2,
            snapshot_after: 1,
            frozen_ttl: Duration::from_secs(9),
            expiry_interval: Duration::from_secs(8),
            watch_capacity: 10,
        };
        assert_eq!(config, expected);
    }

    #[cfg(feature = "serde")]
    mod serde {
        use super::*;

        #[test]
        fn a_partial_config_keeps_the_defaults_of_what_it_leaves_out() {
            let config: EngineConfig =
                serde_json::from_str(r#"{"store_timeout": "2s 500ms", "max_batch": 512}"#)
                    .expect("a partial config");
            let expected = EngineConfig::default()
                .with_store_timeout(Duration::from_millis(2_500))
                .with_max_batch(512);
            assert_eq!(config, expected);
        }

        #[test]
        fn a_config_comes_back_from_its_json_unchanged() {
            let config = EngineConfig::default()
                .with_frozen_ttl(Duration::MAX)
                .with_expiry_interval(Duration::from_millis(40))
                .with_watch_capacity(64);
            let json = serde_json::to_string(&config).expect("serialized");
            assert!(json.contains(r#""expiry_interval":"40ms""#), "{json}");
            let back: EngineConfig = serde_json::from_str(&json).expect("deserialized");
            assert_eq!(back, config);
        }

        #[test]
        fn an_unknown_field_or_a_bad_duration_is_an_error() {
            for bad in [
                r#"{"store_timeout_ms": 5}"#,
                r#"{"store_timeout": "soon"}"#,
                r#"{"store_timeout": 5}"#,
            ] {
                assert!(
                    serde_json::from_str::<EngineConfig>(bad).is_err(),
                    "{bad} was accepted"
                );
            }
        }
    }
}
