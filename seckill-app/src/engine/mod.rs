//! The grab engine: one writer task per promotion, deciding commands with the
//! aggregate held in memory and committing them in groups.
//!
//! Why this shape (see `docs/adr/0002-single-writer-group-commit.md`): a flash
//! sale is one hot aggregate. Load → handle → commit per command reloads the
//! stream every time and makes concurrent commits fight. Here one task owns
//! the promotion, so commands are decided in arrival order without conflicts,
//! and the events of many commands go to the store in one append. Callers are
//! answered only after that append is durable.
//!
//! What an embedder sees of it: its settings, [`EngineConfig`] (at the crate
//! root, since every builder may take one), the [`ConfigError`] for those it
//! cannot run with, and its counters, [`EngineStats`] (from
//! [`SecKill::stats`](crate::SecKill::stats)).
//!
//! Inside, this module holds the engine's front: `Engine::execute` and the
//! slots that route each command to its promotion's writer. Who hears of
//! each commit (the feed of all promotions, one promotion's watchers) is
//! in `changes`. The writer itself is in `writer`, the committer that
//! groups writers' commits across promotions in `committer`, finished
//! promotions in `frozen`, the timer that records expiries and draws in
//! `expiry`, the settings in `config`.
//!
//! [`EngineConfig`]: crate::EngineConfig

mod changes;
mod cluster;
mod committer;
pub(crate) mod config;
mod expiry;
mod frozen;
mod metrics;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use arc_swap::ArcSwap;
use seckill_domain::{Coupon, Entry, PromotionCommand, PromotionEvent, PromotionId};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use self::cluster::Cluster;
use self::committer::Committer;
use self::metrics::EngineMetrics;
pub use config::ConfigError;
use config::EngineConfig;
use frozen::FrozenPromotions;
use writer::Writer;

use crate::clock::Clock;
use crate::cluster::Ownership;
use crate::cluster::{Forward, ForwardedCommand};
use crate::draw::DrawKey;
use crate::error::{SecKillError, StoreError};
use crate::port::Backend;
use crate::projection::PromotionSummary;
use crate::trace::{TraceContext, Traced, TARGET};

/// Counters of the grab engine since start, for metrics. Non-exhaustive: a
/// new counter is not a breaking change; read the fields, and build one (in
/// a test of your own code) from [`EngineStats::default`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct EngineStats {
    /// Appends that succeeded.
    pub commits: u64,
    /// Events those appends stored.
    pub committed_events: u64,
    /// Commands answered from the batches those appends carried.
    pub committed_commands: u64,
    /// Appends that failed (storage errors and timeouts).
    pub failed_commits: u64,
    /// Appends that met another writer's events.
    pub conflicts: u64,
    /// Commands refused because the queue was full.
    pub overloaded: u64,
    /// Finished promotions whose final state is held for answering late grabs.
    pub frozen_promotions: u64,
    /// Requests waiting in all queues right now.
    pub queue_depth: u64,
    /// Writer tasks alive right now.
    pub writers: u64,
    /// Commands handed to the replica that owns their promotion.
    pub forwarded: u64,
    /// Promotions the expiry timer recorded as expired at their finish time.
    pub expired_promotions: u64,
    /// Groups the shared committer appended (ADR 0012), each of one or more
    /// promotions' commits; `commits / commit_groups` is the mean group.
    /// 0 when each writer appends alone.
    pub commit_groups: u64,
}

/// What the engine answers a command it carried out, once it is durable.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Done {
    /// The events it recorded, in order; none for a no-op.
    pub(crate) events: Vec<PromotionEvent>,
    /// For any command but a grab: the promotion's summary after it (the
    /// writer holds it already). A grab's caller needs only its coupon, and
    /// a copy of the summary per grab would cost the hot path.
    pub(crate) summary: Option<PromotionSummary>,
}

impl Done {
    /// What a command that recorded nothing answers.
    pub(crate) const fn nothing(summary: Option<PromotionSummary>) -> Self {
        Self {
            events: Vec::new(),
            summary,
        }
    }

    /// The entry a draw recorded: its `DrawEntered` event.
    pub(crate) fn into_entry(self) -> Option<Entry> {
        self.events.into_iter().find_map(|event| match event {
            PromotionEvent::DrawEntered { entry } => Some(entry),
            _ => None,
        })
    }

    /// The coupon a grab was granted: its `CouponGrabbed` event.
    pub(crate) fn into_coupon(self) -> Option<Coupon> {
        self.events.into_iter().find_map(|event| match event {
            PromotionEvent::CouponGrabbed { coupon, .. } => Some(coupon),
            _ => None,
        })
    }
}

type Reply = Result<Done, SecKillError>;

/// What a replicated engine is given: who owns what, and how to reach them.
pub(crate) type Replication = (Arc<dyn Ownership>, Option<Arc<dyn Forward>>);

struct Request {
    command: PromotionCommand,
    reply: oneshot::Sender<Reply>,
    /// Its place in a sampled trace; boxed, so an untraced request (the
    /// common case) carries one null pointer.
    trace: Option<Box<Traced>>,
}

/// A promotion's live writer; `generation` tells one writer's slot from its
/// successor's.
#[derive(Clone)]
struct Slot {
    queue: mpsc::Sender<Request>,
    generation: u64,
}

struct Shared {
    backend: Arc<dyn Backend>,
    /// Where writers send their commits: alone, or grouped across promotions.
    committer: Committer,
    config: EngineConfig,
    // std RwLock, not tokio's: held only for a map lookup or insert, never across an `.await`.
    slots: RwLock<HashMap<PromotionId, Slot>>,
    // ArcSwap, not a lock: a sold-out storm reads this map millions of times
    // a second from every core, and a read here writes no shared memory. It
    // changes only when a promotion finishes (copy on write).
    frozen: ArcSwap<FrozenPromotions>,
    next_generation: AtomicU64,
    stopping: AtomicBool,
    /// The origin of the sweeper's millisecond clock.
    epoch: Instant,
    /// The service's clock, by which the expiry timer judges finish times.
    clock: Arc<dyn Clock>,
    tasks: TaskTracker,
    metrics: EngineMetrics,
    /// Ownership among replicas; `None` in a single process.
    cluster: Option<Arc<Cluster>>,
    // broadcast: many watchers, and a slow one only misses updates (it sees
    // `Lagged`) instead of slowing the writer down.
    changes: broadcast::Sender<PromotionSummary>,
    /// The promotions someone watches alone, each with its latest summary.
    // watch, not broadcast: a watcher of one promotion wants its state, not
    // every step, so it never lags. std RwLock: a lookup per commit, an
    // insert per new watch, never held across an `.await`.
    watched: RwLock<HashMap<PromotionId, Arc<watch::Sender<PromotionSummary>>>>,
    /// The key draws are sealed with: the embedder's, else the store's,
    /// asked for once and kept (a `OnceCell`: every caller waits for the
    /// one fetch, and a failed fetch is tried again by the next caller).
    draw_key: Option<DrawKey>,
    stored_draw_key: tokio::sync::OnceCell<DrawKey>,
    /// How traces cross into the writers, to the owner and into the
    /// events; `None` follows no trace.
    trace: Option<Arc<dyn TraceContext>>,
}

/// The grab engine. Cheap to clone; all clones share the writers.
#[derive(Clone)]
pub(crate) struct Engine {
    shared: Arc<Shared>,
}

impl Engine {
    /// An engine over `backend`. Its metrics go to the recorder current now
    /// (see `metrics`), so install one before building the service.
    ///
    /// With `ownership`, this engine runs a promotion's writer only while its
    /// replica owns it, and hands other commands to the owner through
    /// `forward` (or answers [`SecKillError::NotOwner`] without one). It then
    /// keeps its lease on a task of its own.
    ///
    /// It starts its tasks (the expiry timer, the committer's workers, the
    /// sweeper of frozen promotions) on the current Tokio runtime, so it
    /// must be built inside one; `SecKill`'s constructors check that.
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        ownership: Option<Replication>,
        draw_key: Option<DrawKey>,
        trace: Option<Arc<dyn TraceContext>>,
    ) -> Self {
        let (cluster, announcements) = match ownership {
            Some((ownership, forward)) => {
                let (cluster, queued) = Cluster::new(ownership, forward, config.store_timeout);
                (Some(Arc::new(cluster)), Some(queued))
            }
            None => (None, None),
        };
        let metrics = EngineMetrics::register();
        let committer = Committer::new(
            Arc::clone(&backend),
            config.max_commit_group,
            metrics.commit_group.clone(),
        );
        let watch_capacity = config.watch_capacity;
        let engine = Self {
            shared: Arc::new(Shared {
                backend,
                committer,
                config,
                slots: RwLock::default(),
                frozen: ArcSwap::default(),
                next_generation: AtomicU64::new(1),
                stopping: AtomicBool::new(false),
                epoch: Instant::now(),
                clock,
                tasks: TaskTracker::new(),
                metrics,
                cluster,
                changes: broadcast::channel(watch_capacity).0,
                watched: RwLock::default(),
                draw_key,
                stored_draw_key: tokio::sync::OnceCell::new(),
                trace,
            }),
        };
        if let Some(announcements) = announcements {
            // Not in `tasks`: `shutdown` waits for those, and the lease must
            // be kept until the last queued command is answered. Weak
            // references, so none of them keeps a dropped engine alive.
            let shared = Arc::downgrade(&engine.shared);
            tokio::spawn(cluster::keep_lease(shared.clone()));
            tokio::spawn(cluster::announce_commits(shared.clone(), announcements));
            tokio::spawn(cluster::follow_others(shared));
        }
        engine.start_expiry();
        frozen::start_sweeping(&engine.shared);
        engine
    }

    /// Starts the expiry timer. Not in `tasks` and holding the engine
    /// weakly, like the lease keeper: it ends with the engine and never
    /// holds up `shutdown`.
    fn start_expiry(&self) {
        // Subscribed before the timer loads the schedule, so no commit falls
        // between the two.
        let changes = self.shared.changes.subscribe();
        tokio::spawn(expiry::run(
            Arc::downgrade(&self.shared),
            Arc::clone(&self.shared.clock),
            changes,
            self.shared.config.expiry_interval,
        ));
    }

    /// The key draws' secrets are sealed with: the embedder's, or the
    /// store's (asked for once, within the store timeout).
    pub(crate) async fn draw_key(&self) -> Result<DrawKey, SecKillError> {
        if let Some(key) = self.shared.draw_key {
            return Ok(key);
        }
        let shared = &self.shared;
        let timeout = shared.config.store_timeout;
        let key = shared
            .stored_draw_key
            .get_or_try_init(|| async {
                tokio::time::timeout(timeout, shared.backend.draw_key())
                    .await
                    .unwrap_or(Err(StoreError::Timeout(timeout)))
            })
            .await?;
        Ok(*key)
    }

    /// How traces cross into the writers, if they are followed.
    pub(crate) fn trace_context(&self) -> Option<&dyn TraceContext> {
        self.shared.trace.as_deref()
    }

    /// Decides `command` on the promotion's writer and returns the events it
    /// recorded, once they are durable.
    pub(crate) async fn execute(
        &self,
        promotion_id: PromotionId,
        command: PromotionCommand,
    ) -> Reply {
        self.run(promotion_id, command, true).await
    }

    /// [`execute`](Self::execute) for a command another replica forwarded:
    /// decided here or answered `NotOwner`, never forwarded again, so no
    /// command travels more than one hop.
    pub(crate) async fn execute_forwarded(
        &self,
        promotion_id: PromotionId,
        command: PromotionCommand,
    ) -> Reply {
        self.run(promotion_id, command, false).await
    }

    async fn run(
        &self,
        promotion_id: PromotionId,
        mut command: PromotionCommand,
        may_forward: bool,
    ) -> Reply {
        // A few rounds are plenty: a round ends early only when the queue it
        // found was closed, and then the next round finds the successor.
        for _ in 0..8 {
            // A stopping service takes no command, not even one it could
            // answer from frozen state.
            if self.shared.stopping.load(Ordering::Acquire) {
                return Err(SecKillError::ShuttingDown);
            }
            // A finished promotion answers from its frozen state, with no queue
            // or writer; a grab (the sold-out storm) without a lock or a clone.
            if let Some(answer) = frozen::answer(&self.shared, promotion_id, &command).await {
                return answer;
            }
            // Among replicas: a promotion known to be owned elsewhere goes to
            // its owner, whose answer is the caller's.
            if let Some(cluster) = &self.shared.cluster {
                if let Some(owner) = cluster.route(promotion_id) {
                    if !may_forward || !cluster.forwards() {
                        return Err(SecKillError::NotOwner {
                            promotion_id,
                            owner,
                        });
                    }
                    let metrics = &self.shared.metrics;
                    // The wait for the owner, in the caller's trace; the
                    // owner's spans continue it (`traceparent`). Only inside
                    // a caller's span: a command nobody traces starts no
                    // trace of its own here.
                    let span = if tracing::Span::current().is_none() {
                        tracing::Span::none()
                    } else {
                        tracing::debug_span!(target: TARGET, "forward", owner = %owner.address)
                    };
                    let traceparent = self
                        .shared
                        .trace
                        .as_deref()
                        .filter(|_| !span.is_disabled())
                        .and_then(|trace| trace.traceparent(&span));
                    let forwarded = cluster.forward(
                        metrics,
                        &owner,
                        ForwardedCommand {
                            promotion_id,
                            command: command.clone(),
                            traceparent,
                        },
                    );
                    match forwarded.instrument(span).await {
                        // It no longer owns it: claim again, next round.
                        Err(SecKillError::NotOwner { .. }) => {
                            cluster.forget_route(promotion_id);
                            continue;
                        }
                        answer => return answer,
                    }
                }
            }
            // Otherwise the promotion's writer decides; it answers once the
            // events are durable. Among replicas it first claims the
            // promotion, and may answer `NotOwner` having learnt the route:
            // then the next round forwards a copy of the command.
            let again = self.shared.cluster.is_some().then(|| command.clone());
            let Slot { queue, generation } = self.slot(promotion_id);
            let (reply, answer) = oneshot::channel();
            let trace = Traced::capture(self.shared.trace.as_deref());
            match queue.try_send(Request {
                command,
                reply,
                trace,
            }) {
                Ok(()) => {
                    // A writer that stops without answering (its task
                    // dropped with the runtime) may have been mid-commit.
                    let answer = answer.await.unwrap_or_else(|_| {
                        Err(SecKillError::OutcomeUnknown {
                            promotion_id,
                            source: StoreError::interrupted(
                                "the promotion's writer stopped before answering",
                            ),
                        })
                    });
                    match (answer, again) {
                        (Err(SecKillError::NotOwner { .. }), Some(again)) => command = again,
                        (answer, _) => return answer,
                    }
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.shared.metrics.overloaded.add(1);
                    return Err(SecKillError::Overloaded(promotion_id));
                }
                Err(mpsc::error::TrySendError::Closed(request)) => {
                    // Its writer just retired or froze.
                    command = request.command;
                    self.shared.drop_slot(promotion_id, generation);
                }
            }
        }
        Err(SecKillError::Overloaded(promotion_id))
    }

    /// Stops taking commands, lets every writer finish what it has queued, and
    /// waits for them.
    pub(crate) async fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        // Dropping the senders ends each writer's queue once it is drained.
        let slots = std::mem::take(
            &mut *self
                .shared
                .slots
                .write()
                .unwrap_or_else(PoisonError::into_inner),
        );
        drop(slots);
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
        if let Some(cluster) = &self.shared.cluster {
            // Hand over at once: the others claim our promotions on their next
            // command instead of waiting out the lease.
            cluster.forget_routes();
            let limit = self.shared.config.store_timeout;
            match tokio::time::timeout(limit, cluster.ownership.leave()).await {
                Ok(Ok(())) => tracing::info!("left the replicas; promotions handed over"),
                Ok(Err(error)) => tracing::warn!(%error, "could not leave; the lease will lapse"),
                Err(_) => tracing::warn!("leaving timed out; the lease will lapse"),
            }
        }
    }

    pub(crate) fn stats(&self) -> EngineStats {
        let m = &self.shared.metrics;
        let (queue_depth, writers) = {
            let slots = self
                .shared
                .slots
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            slots.values().fold((0u64, 0u64), |(depth, writers), slot| {
                let queued = slot.queue.max_capacity() - slot.queue.capacity();
                (depth + queued as u64, writers + 1)
            })
        };
        EngineStats {
            commits: m.commits.total(),
            committed_events: m.committed_events.total(),
            committed_commands: m.committed_commands.total(),
            failed_commits: m.failed_commits.total(),
            conflicts: m.conflicts.total(),
            overloaded: m.overloaded.total(),
            frozen_promotions: self.shared.frozen.load().len() as u64,
            queue_depth,
            writers,
            forwarded: m.forwarded.total(),
            expired_promotions: m.expired_promotions.total(),
            commit_groups: self.shared.committer.groups(),
        }
    }

    /// The promotion's slot, starting a writer if it has none.
    fn slot(&self, promotion_id: PromotionId) -> Slot {
        if let Some(slot) = self
            .shared
            .slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&promotion_id)
        {
            return slot.clone();
        }
        let mut slots = self
            .shared
            .slots
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        slots
            .entry(promotion_id)
            .or_insert_with(|| self.start_writer(promotion_id))
            .clone()
    }

    fn start_writer(&self, promotion_id: PromotionId) -> Slot {
        let (queue, requests) = mpsc::channel(self.shared.config.queue_capacity);
        let generation = self.shared.next_generation.fetch_add(1, Ordering::Relaxed);
        let writer = Writer::new(Arc::clone(&self.shared), promotion_id, generation, requests);
        // Counted down when the writer is dropped, however it stops.
        self.shared.metrics.writers.increment(1.0);
        self.shared.tasks.spawn(writer.run());
        Slot { queue, generation }
    }
}

impl Shared {
    /// Drops the promotion's slot if it still belongs to writer `generation`:
    /// a successor's slot is never touched. Both a writer that stops and a
    /// caller that found the writer's queue closed go through here.
    fn drop_slot(&self, promotion_id: PromotionId, generation: u64) {
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        if slots
            .get(&promotion_id)
            .is_some_and(|slot| slot.generation == generation)
        {
            slots.remove(&promotion_id);
        }
    }
}
