//! What the engine reports, through the `metrics` facade: whoever embeds
//! the service installs a recorder (Prometheus, StatsD, ...) and gets these
//! series; without one, every handle is a no-op.
//!
//! Handles are registered once, when the engine is built, with the recorder
//! current at that moment: install it before building the service. The
//! counters are also kept here as plain atomics, because [`EngineStats`]
//! reads them back and a facade handle can only be written.
//!
//! Gauges move by differences (never `set`), so several engines in one
//! process add up instead of overwriting each other.
//!
//! [`EngineStats`]: crate::engine::EngineStats

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Gauge,
    Histogram, Unit,
};

/// Every series the engine emits.
pub(super) struct EngineMetrics {
    pub(super) commits: Count,
    pub(super) committed_commands: Count,
    pub(super) committed_events: Count,
    pub(super) failed_commits: Count,
    pub(super) conflicts: Count,
    pub(super) overloaded: Count,
    /// Finished promotions held in memory.
    pub(super) frozen_promotions: Gauge,
    /// Requests waiting in every queue, as each writer last looked.
    pub(super) queue_depth: Gauge,
    /// Writer tasks running.
    pub(super) writers: Gauge,
    /// Commands handed to another replica, the promotion's owner.
    pub(super) forwarded: Count,
    /// Claims that won a promotion from a lapsed or departed owner.
    pub(super) takeovers: Count,
    /// Promotions the expiry timer recorded as expired.
    pub(super) expired_promotions: Count,
    /// Promotions whose writer runs here because this replica owns them.
    pub(super) owned_promotions: Gauge,
    /// Live replicas, this one included, as the last heartbeat saw them.
    /// Set, not shifted: one lease keeper per engine.
    pub(super) replicas: Gauge,
    /// Commands in each batch a writer decides.
    pub(super) batch_size: Histogram,
    /// How long each append took, whatever its outcome.
    pub(super) commit_duration: Histogram,
    /// Promotions' commits in each group the committer appended together.
    pub(super) commit_group: Histogram,
}

impl EngineMetrics {
    /// Describes and registers every series with the current recorder.
    pub(super) fn register() -> Self {
        Self {
            commits: Count::register(
                "seckill_commits_total",
                "Appends to the event store that succeeded (one per commit batch).",
            ),
            committed_commands: Count::register(
                "seckill_committed_commands_total",
                "Commands answered from committed batches; divided by seckill_commits_total it is the mean batch size.",
            ),
            committed_events: Count::register(
                "seckill_committed_events_total",
                "Events the successful appends stored.",
            ),
            failed_commits: Count::register(
                "seckill_failed_commits_total",
                "Appends that failed (storage errors and timeouts).",
            ),
            conflicts: Count::register(
                "seckill_conflicts_total",
                "Appends that met another writer's events.",
            ),
            overloaded: Count::register(
                "seckill_overloaded_total",
                "Commands refused because a promotion's queue was full.",
            ),
            frozen_promotions: registered_gauge(
                "seckill_frozen_promotions",
                "Finished promotions answering late grabs from their final state, without a queue.",
            ),
            queue_depth: registered_gauge(
                "seckill_queue_depth",
                "Commands waiting in all promotions' queues, as each writer last looked (between batches).",
            ),
            writers: registered_gauge("seckill_writers", "Promotion writer tasks alive."),
            forwarded: Count::register(
                "seckill_forwarded_total",
                "Commands forwarded to the replica that owns their promotion.",
            ),
            takeovers: Count::register(
                "seckill_takeovers_total",
                "Promotions this replica claimed from a lapsed or departed owner.",
            ),
            expired_promotions: Count::register(
                "seckill_expired_promotions_total",
                "Promotions the expiry timer recorded as expired at their finish time, with coupons left.",
            ),
            owned_promotions: registered_gauge(
                "seckill_owned_promotions",
                "Promotions whose writer runs on this replica because it owns them.",
            ),
            replicas: registered_gauge(
                "seckill_replicas",
                "Live replicas on the shared store, this one included (last heartbeat).",
            ),
            batch_size: {
                let name = "seckill_batch_size";
                describe_histogram!(
                    name,
                    Unit::Count,
                    "Commands a writer decided together, one observation per batch."
                );
                histogram!(name)
            },
            commit_duration: {
                let name = "seckill_commit_duration_seconds";
                describe_histogram!(
                    name,
                    Unit::Seconds,
                    "Time one append to the event store took, failed and conflicting ones included."
                );
                histogram!(name)
            },
            commit_group: {
                let name = "seckill_commit_group_size";
                describe_histogram!(
                    name,
                    Unit::Count,
                    "Promotions' commits appended together in one group (one transaction on PostgreSQL), one observation per group."
                );
                histogram!(name)
            },
        }
    }
}

fn registered_gauge(name: &'static str, help: &'static str) -> Gauge {
    describe_gauge!(name, help);
    gauge!(name)
}

/// Moves `gauge` by the change from `before` to `after`.
pub(super) fn shift(gauge: &Gauge, before: usize, after: usize) {
    if after > before {
        gauge.increment((after - before) as f64);
    } else if before > after {
        gauge.decrement((before - after) as f64);
    }
}

/// A counter the engine reads back for [`crate::engine::EngineStats`] and reports
/// to the recorder.
pub(super) struct Count {
    total: AtomicU64,
    reported: metrics::Counter,
}

impl Count {
    fn register(name: &'static str, help: &'static str) -> Self {
        describe_counter!(name, help);
        Self {
            total: AtomicU64::new(0),
            reported: counter!(name),
        }
    }

    pub(super) fn add(&self, n: u64) {
        // Relaxed: a statistic, ordered with nothing else.
        self.total.fetch_add(n, Ordering::Relaxed);
        self.reported.increment(n);
    }

    pub(super) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}
