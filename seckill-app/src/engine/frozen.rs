//! Finished promotions: their final state, held in memory to answer late
//! grabs without a writer (the sold-out storm), and the sweeper that drops
//! a state once it has gone unused for `frozen_ttl`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use seckill_domain::{Promotion, PromotionCommand, PromotionId};
use tokio::time::Instant;

use super::{metrics, Done, Reply, Shared};
use crate::error::SecKillError;
use crate::projection::PromotionSummary;

/// Finished promotions: their state never changes again, so callers read it
/// directly and need neither a queue nor a writer.
pub(super) type FrozenPromotions = HashMap<PromotionId, Frozen>;

#[derive(Clone)]
pub(super) struct Frozen {
    promotion: Arc<Promotion>,
    /// The sequence number of its last event, for the summary a no-op
    /// answers with.
    sequence: u64,
    usage: Arc<Usage>,
}

/// How recently a frozen promotion was used, kept cheap for the storm path:
/// a read finds `used` already set and writes nothing; only the sweeper
/// clears it, once per check.
struct Usage {
    used: AtomicBool,
    /// Milliseconds since the engine's `epoch` at which the sweeper last saw
    /// the promotion used (or it froze). Written by the sweeper only.
    idle_since_ms: AtomicU64,
}

impl Frozen {
    fn new(promotion: Arc<Promotion>, sequence: u64, now_ms: u64) -> Self {
        let usage = Usage {
            used: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(now_ms),
        };
        Self {
            promotion,
            sequence,
            usage: Arc::new(usage),
        }
    }

    /// Notes a use; costs one relaxed load when it was noted already.
    pub(super) fn touch(&self) -> &Arc<Promotion> {
        if !self.usage.used.load(Ordering::Relaxed) {
            self.usage.used.store(true, Ordering::Relaxed);
        }
        &self.promotion
    }
}

/// The answer to `command` if the promotion is frozen and its final state
/// can give one. `None` if it is not frozen, or if the command would record
/// events: then the frozen state is dropped and a writer takes over.
pub(super) async fn answer(
    shared: &Shared,
    promotion_id: PromotionId,
    command: &PromotionCommand,
) -> Option<Reply> {
    let (promotion, sequence) = {
        let all = shared.frozen.load();
        let frozen = all.get(&promotion_id)?;
        let promotion = frozen.touch();
        if let PromotionCommand::GrabCoupon { customer_id, at } = command {
            // The sold-out storm's path: decided on the shared state, with
            // no clone of it.
            if let Err(error) = promotion.decide_grab(customer_id, *at) {
                return Some(Err(SecKillError::rejected(promotion_id, error)));
            }
        }
        // Cloned, not borrowed: the map's guard is not held across `.await`.
        (Arc::clone(promotion), frozen.sequence)
    };
    let answer = decide_on(&promotion, sequence, promotion_id, command).await;
    if answer.is_none() {
        // Frozen state cannot record events; should a command ever want to,
        // a writer decides it instead.
        unfreeze(shared, promotion_id);
    }
    answer
}

/// Publishes a finished promotion's final state for callers to read; the
/// sweeper drops it once unused.
/// `sequence` is the number of its last event.
pub(super) fn publish(
    shared: &Arc<Shared>,
    promotion_id: PromotionId,
    promotion: Arc<Promotion>,
    sequence: u64,
) {
    let now_ms = millis_since(shared.epoch);
    change(shared, |all| {
        let frozen = Frozen::new(Arc::clone(&promotion), sequence, now_ms);
        all.insert(promotion_id, frozen);
    });
}

/// Replaces the map with a changed copy (copy on write: it is read far more
/// often than it changes), and moves the gauge by the change in its size.
/// Returns how many promotions the change removed, net.
fn change(shared: &Shared, mut edit: impl FnMut(&mut FrozenPromotions)) -> usize {
    let mut after = 0;
    let before = shared.frozen.rcu(|all| {
        let mut all = FrozenPromotions::clone(all);
        edit(&mut all);
        after = all.len();
        all
    });
    metrics::shift(&shared.metrics.frozen_promotions, before.len(), after);
    before.len().saturating_sub(after)
}

/// Drops a promotion's frozen state, so a writer takes it over again.
fn unfreeze(shared: &Shared, promotion_id: PromotionId) {
    change(shared, |all| {
        all.remove(&promotion_id);
    });
}

/// Answers a command from a finished promotion's frozen state, or `None` if
/// the command would record events (which no rule allows once finished).
/// Used by [`answer`], and by a freezing writer for what is still queued.
/// `sequence` is the number of the promotion's last event.
pub(super) async fn decide_on(
    promotion: &Promotion,
    sequence: u64,
    promotion_id: PromotionId,
    command: &PromotionCommand,
) -> Option<Reply> {
    match command {
        // The hot case, without cloning the state: the same rule function
        // `handle` uses.
        PromotionCommand::GrabCoupon { customer_id, at } => promotion
            .decide_grab(customer_id, *at)
            .err()
            .map(|error| Err(SecKillError::rejected(promotion_id, error))),
        // Admin commands are rare; deciding them on a copy keeps one rule book.
        other => {
            let mut copy = promotion.clone();
            let sink = EventSink::default();
            match copy.handle(other.clone(), &(), &sink).await {
                Err(error) => Some(Err(SecKillError::rejected(promotion_id, error))),
                Ok(()) if sink.collect().await.is_empty() => {
                    let summary = PromotionSummary::of(promotion, sequence);
                    Some(Ok(Done::nothing(summary)))
                }
                Ok(()) => None,
            }
        }
    }
}

/// Starts the task that drops frozen promotions `frozen_ttl` after their
/// last use, unless they are kept for good.
pub(super) fn start_sweeping(shared: &Arc<Shared>) {
    let ttl = shared.config.frozen_ttl;
    if ttl == Duration::MAX {
        return;
    }
    // A quarter of the TTL between checks, from 10 ms to a minute.
    let every = (ttl / 4).clamp(Duration::from_millis(10), Duration::from_secs(60));
    // Weak, and not in `tasks`: the sweeper must neither keep a dropped engine
    // alive nor hold up `shutdown`, which waits for every tracked task.
    let engine = Arc::downgrade(shared);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(shared) = engine.upgrade() else {
                return;
            };
            if shared.stopping.load(Ordering::Acquire) {
                return;
            }
            sweep_frozen(&shared, millis_since(shared.epoch));
        }
    });
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One check at `now_ms`: a promotion used since the last check starts a new
/// idle period; one idle for `frozen_ttl` is dropped.
fn sweep_frozen(shared: &Shared, now_ms: u64) {
    let ttl_ms = u64::try_from(shared.config.frozen_ttl.as_millis()).unwrap_or(u64::MAX);
    let all = shared.frozen.load();
    let mut expired = Vec::new();
    for (id, frozen) in all.iter() {
        let usage = &frozen.usage;
        if usage.used.swap(false, Ordering::Relaxed) {
            usage.idle_since_ms.store(now_ms, Ordering::Relaxed);
        } else if now_ms.saturating_sub(usage.idle_since_ms.load(Ordering::Relaxed)) >= ttl_ms {
            expired.push((*id, Arc::clone(usage)));
        }
    }
    drop(all);
    if expired.is_empty() {
        // A copy only when something expired: the map is read far more
        // often than it changes.
        return;
    }
    let dropped = change(shared, |all| {
        for (id, usage) in &expired {
            // Only the state that expired, and only if nobody used it since
            // the check: a promotion frozen again meanwhile has a new `Usage`.
            if all.get(id).is_some_and(|frozen| {
                Arc::ptr_eq(&frozen.usage, usage) && !usage.used.load(Ordering::Relaxed)
            }) {
                all.remove(id);
            }
        }
    });
    tracing::debug!(dropped, "dropped idle frozen promotions");
}
