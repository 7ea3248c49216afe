//! The expiry timer: a promotion whose finish time passes with coupons left
//! is recorded `PromotionFinished { reason: Expired }` then, not when
//! somebody next grabs, so its event is in the feed on time and it leaves
//! `ProjectionStore::unfinished_promotions`. A draw is due at its close
//! instead: the timer opens its sealed secret with the engine's draw key,
//! sends `Draw`, and then `AwardDraw` until every winner holds a coupon
//! (docs/draws.md).
//!
//! The timer keeps an in-memory schedule of the unfinished promotions by
//! finish time. It loads it from the projections at start and every
//! `REFRESH` (other replicas and tools create promotions too), and learns
//! from the engine's `changes` feed, which carries this replica's commits and
//! the others' announcements. Every `expiry_interval` it takes what is due by
//! the service's [`Clock`] and records the expiry through the normal command
//! path, so the writer, its group commit and the aggregate's rules decide it
//! like any other command. A tick with nothing due costs one look at the
//! schedule's first entry; no store query.
//!
//! Among replicas only the owner records it: the command runs as a
//! forwarded one (`Engine::execute_forwarded`), which a non-owner answers
//! `NotOwner` instead of forwarding. A duplicate attempt is harmless: the
//! aggregate answers `AlreadyFinished`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use seckill_domain::draw::DrawSeal;
use seckill_domain::{FinishReason, PromotionCommand, PromotionError, PromotionEvent, PromotionId};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, MissedTickBehavior};

use super::{Engine, Shared};
use crate::clock::Clock;
use crate::error::SecKillError;
use crate::projection::PromotionSummary;

/// How often the schedule is reloaded from the projections: the bound on how
/// late a promotion nobody announced to this replica expires.
const REFRESH: Duration = Duration::from_secs(30);
/// The first wait before reloading after a failure; it doubles up to
/// `REFRESH` while failures go on.
const RETRY: Duration = Duration::from_secs(1);
/// How soon a promotion found due but owned by another replica is tried
/// again: about a lease, after which a dead owner's promotions are free.
const ELSEWHERE_AGAIN: chrono::TimeDelta = chrono::TimeDelta::seconds(1);
/// Expiries recorded at once: each is one writer's commit, so a tick that
/// finds thousands due does not start thousands of writers together.
const AT_ONCE: usize = 64;
/// Summaries taken from the `changes` feed per wake-up.
const DRAIN: usize = 1_024;

/// When a promotion is due, and what is due then.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Due {
    /// Its finish time; a draw's close.
    at: DateTime<Utc>,
    /// For a draw: its seal. A drawn one still due has awards left, which
    /// the same path resumes (`AlreadyDrawn`, then `AwardDraw`).
    draw: Option<DrawSeal>,
}

impl Due {
    fn of(summary: &PromotionSummary) -> Self {
        match &summary.draw {
            Some(draw) => Self {
                at: draw.closes_at,
                draw: Some(draw.seal),
            },
            None => Self {
                at: summary.finish_time,
                draw: None,
            },
        }
    }
}

/// The unfinished promotions by the time they are due.
#[derive(Default)]
struct Schedule {
    by_time: BTreeSet<(DateTime<Utc>, PromotionId)>,
    due_of: HashMap<PromotionId, Due>,
}

impl Schedule {
    /// Notes what a summary says: finished ones leave, others are due at
    /// their finish time (a draw at its close).
    fn learn(&mut self, summary: &PromotionSummary) {
        if summary.finish_reason.is_some() {
            self.forget(summary.promotion_id);
        } else {
            self.set(summary.promotion_id, Due::of(summary));
        }
    }

    fn set(&mut self, promotion_id: PromotionId, due: Due) {
        match self.due_of.insert(promotion_id, due) {
            Some(old) if old.at == due.at => return,
            Some(old) => {
                self.by_time.remove(&(old.at, promotion_id));
            }
            None => {}
        }
        self.by_time.insert((due.at, promotion_id));
    }

    fn forget(&mut self, promotion_id: PromotionId) {
        if let Some(old) = self.due_of.remove(&promotion_id) {
            self.by_time.remove(&(old.at, promotion_id));
        }
    }

    /// Takes every promotion due at `now` out of the schedule, earliest first.
    fn take_due(&mut self, now: DateTime<Utc>) -> Vec<(PromotionId, Due)> {
        let mut due = Vec::new();
        while let Some(&(at, promotion_id)) = self.by_time.first() {
            if at > now {
                break;
            }
            self.by_time.pop_first();
            if let Some(what) = self.due_of.remove(&promotion_id) {
                due.push((promotion_id, what));
            }
        }
        due
    }

    fn len(&self) -> usize {
        self.due_of.len()
    }
}

/// What one attempt to record an expiry or a draw came to.
enum Outcome {
    /// Recorded here now.
    Expired,
    /// Drawn here, every winner awarded.
    Drawn,
    /// Finished already (sold out, cancelled, or expired by another attempt),
    /// or gone: nothing to do.
    Finished,
    /// Its stored finish time (or close) is later than the schedule knew.
    Later(DateTime<Utc>),
    /// Another replica owns it and records it.
    Elsewhere,
    /// The service is stopping.
    Stopping,
    /// The store or the queue refused; tried again after a reload.
    Failed(SecKillError),
}

/// The expiry timer, checking every `every`. Holds the engine only weakly,
/// between ticks not at all, so it never keeps a dropped service alive;
/// ends when the engine stops or is gone.
pub(super) async fn run(
    shared: Weak<Shared>,
    clock: Arc<dyn Clock>,
    mut changes: broadcast::Receiver<PromotionSummary>,
    every: Duration,
) {
    let mut schedule = Schedule::default();
    // Load at the first tick, which an interval gives at once.
    let mut next_refresh = Instant::now();
    let mut retry = RETRY;
    let mut failing = false;
    // At least a millisecond: `interval` panics on zero, which only an
    // unvalidated config could carry.
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
    // Delay, not burst: ticks missed while expiries were being recorded are
    // not worth catching up; the next one sees everything due.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = changes.recv() => {
                match changed {
                    Ok(summary) => {
                        schedule.learn(&summary);
                        // Take what else is waiting in the same wake-up: a
                        // sale commits thousands of times a second.
                        for _ in 0..DRAIN {
                            match changes.try_recv() {
                                Ok(summary) => schedule.learn(&summary),
                                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                                    next_refresh = Instant::now();
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    // Missed summaries: the projections have them.
                    Err(RecvError::Lagged(_)) => next_refresh = Instant::now(),
                    Err(RecvError::Closed) => return,
                }
                continue;
            }
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.stopping.load(Ordering::Acquire) {
            return;
        }
        if Instant::now() >= next_refresh {
            match refresh(&shared, &mut schedule).await {
                Ok(()) => next_refresh = Instant::now() + REFRESH,
                Err(error) => {
                    report_failure(
                        &mut failing,
                        "cannot load the unfinished promotions",
                        &error,
                    );
                    next_refresh = Instant::now() + retry;
                    retry = (retry * 2).min(REFRESH);
                    continue;
                }
            }
        }
        let now = clock.now();
        let due = schedule.take_due(now);
        if due.is_empty() {
            continue;
        }
        let engine = Engine { shared };
        let outcomes: Vec<_> = futures::stream::iter(due)
            .map(|(promotion_id, due)| {
                let engine = engine.clone();
                async move {
                    let outcome = match due.draw {
                        Some(seal) => draw(&engine, promotion_id, &seal, now).await,
                        None => expire(&engine, promotion_id, now).await,
                    };
                    (promotion_id, due, outcome)
                }
            })
            .buffer_unordered(AT_ONCE)
            .collect()
            .await;
        let mut failed = None;
        for (promotion_id, due, outcome) in outcomes {
            match outcome {
                Outcome::Expired => engine.shared.metrics.expired_promotions.add(1),
                Outcome::Drawn => tracing::info!(promotion = %promotion_id, "promotion drawn"),
                Outcome::Finished => {}
                Outcome::Later(at) => schedule.set(promotion_id, Due { at, ..due }),
                Outcome::Elsewhere => {
                    // Ask the ownership port afresh next time: a route
                    // remembered from a grab may name an owner that died.
                    if let Some(cluster) = &engine.shared.cluster {
                        cluster.forget_route(promotion_id);
                    }
                    // Due again shortly, not only at the next reload: if
                    // the owner died, its lease lapses and this replica
                    // claims it then. A live owner's finish, announced,
                    // takes it out of the schedule first.
                    let at = now + ELSEWHERE_AGAIN;
                    schedule.set(promotion_id, Due { at, ..due });
                    tracing::debug!(promotion = %promotion_id, "expiry or draw left to the owner");
                }
                Outcome::Stopping => return,
                Outcome::Failed(error) => failed = Some(error),
            }
        }
        match failed {
            // Left out of the schedule; the reload soon puts it back, due.
            Some(error) => {
                report_failure(&mut failing, "cannot record an expiry or a draw", &error);
                next_refresh = next_refresh.min(Instant::now() + retry);
                retry = (retry * 2).min(REFRESH);
            }
            None if failing => {
                tracing::info!("expiries recorded again");
                failing = false;
                retry = RETRY;
            }
            None => retry = RETRY,
        }
        tracing::trace!(scheduled = schedule.len(), "expiry tick");
    }
}

/// Adds every unfinished promotion in the projections to the schedule.
/// Merged, not replaced: a promotion created while the query ran is known
/// from the `changes` feed and must stay.
async fn refresh(shared: &Shared, schedule: &mut Schedule) -> Result<(), SecKillError> {
    let timeout = shared.config.store_timeout;
    let unfinished = tokio::time::timeout(timeout, shared.backend.unfinished_promotions())
        .await
        .unwrap_or(Err(crate::StoreError::Timeout(timeout)))?;
    for summary in &unfinished {
        schedule.learn(summary);
    }
    Ok(())
}

/// One warning per run of failures, then quiet until it recovers: an outage
/// would otherwise log every second.
fn report_failure(failing: &mut bool, what: &str, error: &SecKillError) {
    if *failing {
        tracing::debug!(%error, "{what}; retrying");
    } else {
        tracing::warn!(%error, "{what}; retrying");
        *failing = true;
    }
}

/// Records the expiry of `promotion_id` at `at` through the engine.
async fn expire(engine: &Engine, promotion_id: PromotionId, at: DateTime<Utc>) -> Outcome {
    // As a forwarded command: decided here or answered `NotOwner`, never
    // forwarded, so only the owner records it and no replica asks another.
    let command = PromotionCommand::ExpirePromotion { at };
    match engine.execute_forwarded(promotion_id, command).await {
        Ok(done) if done.events.iter().any(is_expiry) => Outcome::Expired,
        Ok(_)
        | Err(
            SecKillError::NotFound(_) | SecKillError::Rejected(PromotionError::AlreadyFinished),
        ) => Outcome::Finished,
        Err(SecKillError::Rejected(PromotionError::NotYetExpired { finish_time })) => {
            Outcome::Later(finish_time)
        }
        Err(SecKillError::NotOwner { .. }) => Outcome::Elsewhere,
        Err(SecKillError::ShuttingDown) => Outcome::Stopping,
        Err(other) => Outcome::Failed(other),
    }
}

/// Draws `promotion_id` through the engine with the secret its seal holds,
/// then awards its coupons, a commit at a time, until it is finished.
async fn draw(
    engine: &Engine,
    promotion_id: PromotionId,
    seal: &DrawSeal,
    at: DateTime<Utc>,
) -> Outcome {
    let key = match engine.draw_key().await {
        Ok(key) => key,
        Err(error) => return Outcome::Failed(error),
    };
    let Some(secret) = key.open(promotion_id, seal) else {
        // Sealed with another key: no retry opens it. Said at every reload
        // until an operator supplies the key it was sealed with.
        tracing::error!(
            promotion = %promotion_id,
            "cannot open the draw's secret: it was sealed with another draw key"
        );
        return Outcome::Finished;
    };
    // As forwarded commands: decided here or answered `NotOwner`, so only
    // the owner draws, and a duplicate attempt is refused `AlreadyDrawn`.
    let mut command = PromotionCommand::Draw { secret, at };
    loop {
        match engine.execute_forwarded(promotion_id, command).await {
            Ok(done) if done.events.iter().any(is_drawn_finish) => return Outcome::Drawn,
            Ok(_) | Err(SecKillError::Rejected(PromotionError::AlreadyDrawn)) => {}
            Err(
                SecKillError::NotFound(_)
                | SecKillError::Rejected(
                    PromotionError::AlreadyFinished | PromotionError::NothingToAward,
                ),
            ) => return Outcome::Finished,
            Err(SecKillError::Rejected(PromotionError::NotYetClosed { closes_at })) => {
                return Outcome::Later(closes_at)
            }
            Err(SecKillError::NotOwner { .. }) => return Outcome::Elsewhere,
            Err(SecKillError::ShuttingDown) => return Outcome::Stopping,
            Err(other) => return Outcome::Failed(other),
        }
        command = PromotionCommand::AwardDraw;
    }
}

fn is_drawn_finish(event: &PromotionEvent) -> bool {
    matches!(
        event,
        PromotionEvent::PromotionFinished {
            reason: FinishReason::Drawn,
            ..
        }
    )
}

fn is_expiry(event: &PromotionEvent) -> bool {
    matches!(
        event,
        PromotionEvent::PromotionFinished {
            reason: FinishReason::Expired,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> PromotionId {
        PromotionId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(minute)
    }

    fn due(minute: i64) -> Due {
        Due {
            at: at(minute),
            draw: None,
        }
    }

    fn ids(due: Vec<(PromotionId, Due)>) -> Vec<PromotionId> {
        due.into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn due_promotions_come_out_earliest_first_and_only_once() {
        let mut schedule = Schedule::default();
        schedule.set(id(1), due(30));
        schedule.set(id(2), due(10));
        schedule.set(id(3), due(20));
        assert_eq!(ids(schedule.take_due(at(5))), vec![]);
        assert_eq!(ids(schedule.take_due(at(20))), vec![id(2), id(3)]);
        assert_eq!(ids(schedule.take_due(at(20))), vec![]);
        assert_eq!(schedule.len(), 1);
        assert_eq!(ids(schedule.take_due(at(60))), vec![id(1)]);
        assert_eq!(schedule.len(), 0);
    }

    #[test]
    fn a_moved_finish_time_replaces_the_old_one_and_forget_removes_it() {
        let mut schedule = Schedule::default();
        schedule.set(id(1), due(10));
        schedule.set(id(1), due(40));
        assert_eq!(ids(schedule.take_due(at(20))), vec![]);
        schedule.set(id(2), due(15));
        schedule.forget(id(2));
        schedule.forget(id(9));
        assert_eq!(ids(schedule.take_due(at(60))), vec![id(1)]);
        assert_eq!(schedule.by_time.len(), 0);
    }
}
