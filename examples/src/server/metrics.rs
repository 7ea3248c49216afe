//! Metrics in the Prometheus text format, written by hand: a handful of
//! atomic counters and one fixed-bucket histogram need no registry crate.
//!
//! Grab outcomes and latency are counted by the HTTP layer; the commit
//! counters and queue depth come from the engine's own [`EngineStats`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use seckill_app::{EngineStats, SecKillError};
use seckill_domain::PromotionError;

/// How a grab request ended, as the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrabOutcome {
    /// The customer got a coupon.
    Won,
    /// The customer already held one.
    AlreadyGrabbed,
    /// Every coupon was taken.
    SoldOut,
    /// The promotion opens later.
    NotStarted,
    /// The promotion ended.
    Ended,
    /// No such promotion.
    UnknownPromotion,
    /// The ids in the body did not parse or broke their rules. Bodies that
    /// are not even JSON of the right shape never reach the handler and are
    /// not counted here.
    Invalid,
    /// The promotion's queue was full.
    Overloaded,
    /// The server was shutting down.
    ShuttingDown,
    /// The store failed.
    StorageFailed,
}

impl GrabOutcome {
    const ALL: [Self; 10] = [
        Self::Won,
        Self::AlreadyGrabbed,
        Self::SoldOut,
        Self::NotStarted,
        Self::Ended,
        Self::UnknownPromotion,
        Self::Invalid,
        Self::Overloaded,
        Self::ShuttingDown,
        Self::StorageFailed,
    ];

    /// The label value.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Won => "won",
            Self::AlreadyGrabbed => "already_grabbed",
            Self::SoldOut => "sold_out",
            Self::NotStarted => "not_started",
            Self::Ended => "ended",
            Self::UnknownPromotion => "unknown_promotion",
            Self::Invalid => "invalid",
            Self::Overloaded => "overloaded",
            Self::ShuttingDown => "shutting_down",
            Self::StorageFailed => "storage_failed",
        }
    }

    /// The outcome of an application error.
    pub fn of_error(error: &SecKillError) -> Self {
        match error {
            SecKillError::Rejected(rejection) => match rejection {
                PromotionError::AlreadyGrabbed(_) => Self::AlreadyGrabbed,
                PromotionError::SoldOut { .. } => Self::SoldOut,
                PromotionError::NotStarted { .. } => Self::NotStarted,
                PromotionError::Ended { .. } | PromotionError::AlreadyFinished => Self::Ended,
                PromotionError::UnknownPromotion => Self::UnknownPromotion,
                _ => Self::Invalid,
            },
            SecKillError::NotFound(_) => Self::UnknownPromotion,
            SecKillError::Overloaded(_) => Self::Overloaded,
            SecKillError::ShuttingDown => Self::ShuttingDown,
            SecKillError::Storage(_) => Self::StorageFailed,
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds of the latency buckets, in seconds: 100 µs to 5 s, about
/// 2.5× apart, which covers an in-memory grab and a slow PostgreSQL commit.
const LATENCY_BOUNDS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The server's own counters.
#[derive(Debug, Default)]
pub struct Metrics {
    grabs: [AtomicU64; GrabOutcome::ALL.len()],
    /// Per bucket, not cumulative: one increment per observation, and the
    /// exposition sums them, so `+Inf` always equals `_count`.
    latency_buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    latency_sum_nanos: AtomicU64,
}

impl Metrics {
    /// Counts one answered grab and how long the application took to answer it.
    pub fn record_grab(&self, outcome: GrabOutcome, elapsed: Duration) {
        self.grabs[outcome.index()].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts a grab request that was refused before it reached the application.
    pub fn record_invalid_grab(&self) {
        self.grabs[GrabOutcome::Invalid.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition: the server's counters and the engine's.
    pub fn render(&self, engine: EngineStats) -> String {
        let mut out = String::with_capacity(4096);
        self.render_grabs(&mut out);
        render_engine(&mut out, engine);
        out
    }

    fn render_grabs(&self, out: &mut String) {
        header(
            out,
            "seckill_grabs_total",
            "counter",
            "Grab requests answered, by outcome.",
        );
        for outcome in GrabOutcome::ALL {
            let count = self.grabs[outcome.index()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "seckill_grabs_total{{outcome=\"{}\"}} {count}",
                outcome.label()
            );
        }

        let name = "seckill_grab_duration_seconds";
        header(
            out,
            name,
            "histogram",
            "Time the application took to answer a grab, queueing and commit included.",
        );
        let mut cumulative = 0u64;
        for (i, bucket) in self.latency_buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            match LATENCY_BOUNDS.get(i) {
                Some(bound) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.latency_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

fn render_engine(out: &mut String, stats: EngineStats) {
    let series = [
        (
            "seckill_commits_total",
            "counter",
            "Appends to the event store that succeeded (one per commit batch).",
            stats.commits,
        ),
        (
            "seckill_committed_commands_total",
            "counter",
            "Commands answered from committed batches; divided by seckill_commits_total it is the mean batch size.",
            stats.committed_commands,
        ),
        (
            "seckill_committed_events_total",
            "counter",
            "Events the successful appends stored.",
            stats.committed_events,
        ),
        (
            "seckill_failed_commits_total",
            "counter",
            "Appends that failed (storage errors and timeouts).",
            stats.failed_commits,
        ),
        (
            "seckill_conflicts_total",
            "counter",
            "Appends that met another writer's events.",
            stats.conflicts,
        ),
        (
            "seckill_overloaded_total",
            "counter",
            "Commands refused because a promotion's queue was full.",
            stats.overloaded,
        ),
        (
            "seckill_frozen_promotions",
            "gauge",
            "Finished promotions answering late grabs from their final state, without a queue.",
            stats.frozen_promotions,
        ),
        (
            "seckill_queue_depth",
            "gauge",
            "Commands waiting in all promotions' queues.",
            stats.queue_depth,
        ),
        (
            "seckill_writers",
            "gauge",
            "Promotion writer tasks alive.",
            stats.writers,
        ),
    ];
    for (name, kind, help, value) in series {
        header(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let metrics = Metrics::default();
        metrics.record_grab(GrabOutcome::Won, Duration::from_micros(50));
        metrics.record_grab(GrabOutcome::SoldOut, Duration::from_millis(3));
        metrics.record_grab(GrabOutcome::SoldOut, Duration::from_secs(9));
        let text = metrics.render(EngineStats::default());
        assert!(text.contains("seckill_grab_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("seckill_grab_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("seckill_grab_duration_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("seckill_grab_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("seckill_grab_duration_seconds_count 3\n"));
        assert!(text.contains("seckill_grabs_total{outcome=\"sold_out\"} 2\n"));
    }
}
