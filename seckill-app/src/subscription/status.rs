//! What a running subscription shows: the [`Subscription`] handle, its
//! [`SubscriptionStatus`], the [`SubscriptionLag`] anyone can ask the store
//! for, and the metrics the runner keeps up to date.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use metrics::{counter, gauge, Counter, Gauge};
use tokio_util::sync::DropGuard;

/// A running subscription. Dropping it stops the task (the lease then lapses);
/// [`stop`](Self::stop) also hands the name over at once.
pub struct Subscription {
    pub(super) status: Arc<Shared>,
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
    pub(super) cancel: Option<DropGuard>,
}

impl Subscription {
    /// The subscription's name.
    pub fn name(&self) -> &str {
        &self.status.name
    }

    /// What this consumer is doing now.
    pub fn status(&self) -> SubscriptionStatus {
        self.status.snapshot()
    }

    /// Stops delivering, gives the name up so a standby takes over at once,
    /// and waits for the task to end.
    pub async fn stop(mut self) {
        drop(self.cancel.take());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("status", &self.status())
            .finish()
    }
}

/// One consumer's view of its subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionStatus {
    /// Whether this consumer holds the name (the others stand by).
    pub active: bool,
    /// The last position handled and checkpointed, as this consumer last saw it.
    pub position: u64,
    /// The newest readable position, as this consumer last saw it.
    pub head: u64,
    /// Events this consumer handled.
    pub handled: u64,
    /// Failed attempts (handler errors, store errors) so far.
    pub failures: u64,
    /// The newest failure, with the event it was on.
    pub last_error: Option<String>,
    /// Positions the checkpoint is past the newest position, as this
    /// consumer last saw it: 0 unless a failover lost commits the
    /// subscription had already handled (asynchronous replication; see
    /// `docs/events.md`). New events that take those positions again are
    /// not delivered.
    pub ahead: u64,
    /// How long the oldest event not yet handled has been waiting, from
    /// when this consumer first saw the head pass it (it reads the head at
    /// least once a second): the lag in time. `None` when caught up.
    pub oldest_unhandled: Option<Duration>,
}

impl SubscriptionStatus {
    /// Positions between the checkpoint and the head.
    pub fn lag(&self) -> u64 {
        self.head.saturating_sub(self.position)
    }
}

/// How far a subscription is behind the newest event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionLag {
    /// Its checkpoint: the last position handled.
    pub position: u64,
    /// The newest position a reader can reach now.
    pub head: u64,
}

impl SubscriptionLag {
    pub(crate) fn new(position: u64, head: u64) -> Self {
        Self { position, head }
    }

    /// Positions behind the head. Positions may have gaps, so this is an
    /// upper bound on the events still to handle.
    pub fn behind(&self) -> u64 {
        self.head.saturating_sub(self.position)
    }
}

/// The status, shared between the task and its handle, and its metrics.
pub(super) struct Shared {
    pub(super) name: String,
    // Atomics: the task writes, any thread reads, and nothing needs them to agree.
    pub(super) active: AtomicBool,
    pub(super) position: AtomicU64,
    pub(super) head: AtomicU64,
    pub(super) ahead: AtomicU64,
    pub(super) handled: AtomicU64,
    pub(super) failures: AtomicU64,
    // std Mutex: held for a clone, never across an `.await`.
    pub(super) last_error: Mutex<Option<String>>,
    /// Heads seen beyond the checkpoint, each with when it was first seen,
    /// oldest first: the front is the oldest unhandled event's. std Mutex:
    /// held for a push or a pop, never across an `.await`.
    unhandled: Mutex<VecDeque<(u64, Instant)>>,
    pub(super) metrics: SubscriptionMetrics,
}

impl Shared {
    pub(super) fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            active: AtomicBool::new(false),
            position: AtomicU64::new(0),
            head: AtomicU64::new(0),
            ahead: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
            unhandled: Mutex::new(VecDeque::new()),
            metrics: SubscriptionMetrics::register(name),
        }
    }

    pub(super) fn snapshot(&self) -> SubscriptionStatus {
        SubscriptionStatus {
            active: self.active.load(Ordering::Relaxed),
            position: self.position.load(Ordering::Relaxed),
            head: self.head.load(Ordering::Relaxed),
            handled: self.handled.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            ahead: self.ahead.load(Ordering::Relaxed),
            oldest_unhandled: self.oldest_unhandled(),
        }
    }

    fn oldest_unhandled(&self) -> Option<Duration> {
        let unhandled = self
            .unhandled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        unhandled.front().map(|(_, seen)| seen.elapsed())
    }

    pub(super) fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Relaxed);
        self.metrics.active.set(if active { 1.0 } else { 0.0 });
    }

    pub(super) fn set_position(&self, position: u64) {
        self.position.store(position, Ordering::Relaxed);
        self.metrics.position.set(position as f64);
        {
            let mut unhandled = self
                .unhandled
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            while unhandled.front().is_some_and(|&(head, _)| head <= position) {
                unhandled.pop_front();
            }
        }
        self.publish_lag();
    }

    pub(super) fn set_head(&self, head: u64) {
        self.head.store(head, Ordering::Relaxed);
        {
            let position = self.position.load(Ordering::Relaxed);
            let mut unhandled = self
                .unhandled
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let newest = unhandled.back().map_or(position, |&(seen, _)| seen);
            if head > newest {
                unhandled.push_back((head, Instant::now()));
            }
        }
        self.publish_lag();
    }

    /// Records how far the checkpoint is past the head (0: not past);
    /// answers whether that changed.
    pub(super) fn set_ahead(&self, ahead: u64) -> bool {
        self.metrics.ahead.set(ahead as f64);
        self.ahead.swap(ahead, Ordering::Relaxed) != ahead
    }

    pub(super) fn publish_lag(&self) {
        let head = self.head.load(Ordering::Relaxed);
        let position = self.position.load(Ordering::Relaxed);
        self.metrics.lag.set(head.saturating_sub(position) as f64);
        let seconds = self.oldest_unhandled().map_or(0.0, |age| age.as_secs_f64());
        self.metrics.lag_seconds.set(seconds);
    }

    pub(super) fn handled(&self, events: usize) {
        self.handled.fetch_add(events as u64, Ordering::Relaxed);
        self.metrics.events.increment(events as u64);
    }

    pub(super) fn failed(&self, what: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.metrics.failures.increment(1);
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(what);
    }
}

/// The series of one subscription, labelled with its name.
pub(super) struct SubscriptionMetrics {
    position: Gauge,
    lag: Gauge,
    lag_seconds: Gauge,
    ahead: Gauge,
    active: Gauge,
    events: Counter,
    failures: Counter,
}

impl SubscriptionMetrics {
    fn register(name: &str) -> Self {
        let labels = [("subscription", name.to_owned())];
        metrics::describe_gauge!(
            "seckill_subscription_position",
            "The last global position a subscription handled."
        );
        metrics::describe_gauge!(
            "seckill_subscription_lag",
            "Positions between a subscription's checkpoint and the newest event."
        );
        metrics::describe_gauge!(
            "seckill_subscription_lag_seconds",
            "How long a subscription's oldest unhandled event has waited since its consumer first saw it; 0 when caught up."
        );
        metrics::describe_gauge!(
            "seckill_subscription_checkpoint_ahead",
            "Positions a subscription's checkpoint is past the newest event: non-zero only after a failover lost commits it had handled."
        );
        metrics::describe_gauge!(
            "seckill_subscription_active",
            "1 where this process is the subscription's active consumer, 0 on a standby."
        );
        metrics::describe_counter!(
            "seckill_subscription_events_total",
            "Events a subscription handled in this process."
        );
        metrics::describe_counter!(
            "seckill_subscription_failures_total",
            "Failed deliveries of a subscription (each is retried; none is skipped)."
        );
        Self {
            position: gauge!("seckill_subscription_position", &labels),
            lag: gauge!("seckill_subscription_lag", &labels),
            lag_seconds: gauge!("seckill_subscription_lag_seconds", &labels),
            ahead: gauge!("seckill_subscription_checkpoint_ahead", &labels),
            active: gauge!("seckill_subscription_active", &labels),
            events: counter!("seckill_subscription_events_total", &labels),
            failures: counter!("seckill_subscription_failures_total", &labels),
        }
    }
}
