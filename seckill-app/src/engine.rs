//! The grab engine: one writer task per promotion, deciding commands with the
//! aggregate held in memory and committing them in groups.
//!
//! Why this shape (see `docs/adr/0002-single-writer-group-commit.md`): a flash
//! sale is one hot aggregate. Load → handle → commit per command reloads the
//! stream every time and makes concurrent commits fight. Here one task owns
//! the promotion, so commands are decided in arrival order without conflicts,
//! and the events of many commands go to the store in one append. Callers are
//! answered only after that append is durable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use arc_swap::ArcSwap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use seckill_domain::{Promotion, PromotionCommand, PromotionError, PromotionEvent, PromotionId};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::error::{SecKillError, StoreError};
use crate::port::{Backend, Commit, Snapshot};
use crate::projection::PromotionSummary;

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

/// Counters of the grab engine since start, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
}

type Reply = Result<Vec<PromotionEvent>, SecKillError>;

struct Request {
    command: PromotionCommand,
    reply: oneshot::Sender<Reply>,
}

/// A promotion's live writer; `generation` tells one writer's slot from its
/// successor's.
#[derive(Clone)]
struct Slot {
    queue: mpsc::Sender<Request>,
    generation: u64,
}

/// Finished promotions: their state never changes again, so callers read it
/// directly and need neither a queue nor a writer.
type FrozenPromotions = HashMap<PromotionId, Frozen>;

#[derive(Clone)]
struct Frozen {
    promotion: Arc<Promotion>,
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
    fn new(promotion: Arc<Promotion>, now_ms: u64) -> Self {
        let usage = Usage {
            used: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(now_ms),
        };
        Self {
            promotion,
            usage: Arc::new(usage),
        }
    }

    /// Notes a use; costs one relaxed load when it was noted already.
    fn touch(&self) -> &Promotion {
        if !self.usage.used.load(Ordering::Relaxed) {
            self.usage.used.store(true, Ordering::Relaxed);
        }
        &self.promotion
    }
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    committed_events: AtomicU64,
    committed_commands: AtomicU64,
    failed_commits: AtomicU64,
    conflicts: AtomicU64,
    overloaded: AtomicU64,
}

struct Shared {
    backend: Arc<dyn Backend>,
    config: EngineConfig,
    // std RwLock, not tokio's: held only for a map lookup or insert, never across an `.await`.
    slots: RwLock<HashMap<PromotionId, Slot>>,
    // ArcSwap, not a lock: a sold-out storm reads this map millions of times
    // a second from every core, and a read here writes no shared memory. It
    // changes only when a promotion finishes (copy on write).
    frozen: ArcSwap<FrozenPromotions>,
    next_generation: AtomicU64,
    stopping: AtomicBool,
    /// Whether the task that drops expired frozen promotions is running.
    sweeping: AtomicBool,
    /// The origin of the sweeper's millisecond clock.
    epoch: Instant,
    tasks: TaskTracker,
    counters: Counters,
    // broadcast: many watchers, and a slow one only misses updates (it sees
    // `Lagged`) instead of slowing the writer down.
    changes: broadcast::Sender<PromotionSummary>,
}

/// The grab engine. Cheap to clone; all clones share the writers.
#[derive(Clone)]
pub(crate) struct Engine {
    shared: Arc<Shared>,
}

impl Engine {
    pub(crate) fn new(backend: Arc<dyn Backend>, config: EngineConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                backend,
                config,
                slots: RwLock::default(),
                frozen: ArcSwap::default(),
                next_generation: AtomicU64::new(1),
                stopping: AtomicBool::new(false),
                sweeping: AtomicBool::new(false),
                epoch: Instant::now(),
                tasks: TaskTracker::new(),
                counters: Counters::default(),
                changes: broadcast::channel(1_024).0,
            }),
        }
    }

    /// Decides `command` on the promotion's writer and returns the events it
    /// recorded, once they are durable.
    pub(crate) async fn execute(
        &self,
        promotion_id: PromotionId,
        mut command: PromotionCommand,
    ) -> Result<Vec<PromotionEvent>, SecKillError> {
        // A closed queue means its writer just retired or froze; the next look
        // finds its successor. A few rounds are plenty: each one makes progress.
        // The sold-out storm's path: a finished promotion answers a grab from
        // its frozen state right here, without a queue, a lock or a clone.
        // A stopping service takes no command, not even one it could answer
        // from frozen state.
        if self.shared.stopping.load(Ordering::Acquire) {
            return Err(SecKillError::ShuttingDown);
        }
        if let PromotionCommand::GrabCoupon { customer_id, at } = &command {
            if let Some(frozen) = self.shared.frozen.load().get(&promotion_id) {
                if let Err(error) = frozen.touch().decide_grab(customer_id, *at) {
                    return Err(SecKillError::from_domain(promotion_id, error));
                }
            }
        }
        for _ in 0..8 {
            if self.shared.stopping.load(Ordering::Acquire) {
                return Err(SecKillError::ShuttingDown);
            }
            let frozen = self.shared.frozen.load().get(&promotion_id).map(|frozen| {
                frozen.touch();
                Arc::clone(&frozen.promotion)
            });
            if let Some(promotion) = frozen {
                if let Some(answer) = answer_frozen(&promotion, promotion_id, &command).await {
                    return answer;
                }
                // Frozen state cannot record events; should a command ever
                // want to, a writer decides it instead.
                self.unfreeze(promotion_id);
            }
            let Slot { queue, generation } = self.slot(promotion_id);
            let (reply, answer) = oneshot::channel();
            match queue.try_send(Request { command, reply }) {
                Ok(()) => {
                    return answer.await.unwrap_or_else(|_| {
                        Err(SecKillError::Storage(StoreError::backend(
                            "the promotion's writer stopped before answering",
                        )))
                    });
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.shared
                        .counters
                        .overloaded
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(SecKillError::Overloaded(promotion_id));
                }
                Err(mpsc::error::TrySendError::Closed(request)) => {
                    command = request.command;
                    self.forget(promotion_id, generation);
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
    }

    /// A feed of every promotion's summary after each commit that changed it.
    pub(crate) fn watch(&self) -> broadcast::Receiver<PromotionSummary> {
        self.shared.changes.subscribe()
    }

    pub(crate) fn stats(&self) -> EngineStats {
        let c = &self.shared.counters;
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
            commits: c.commits.load(Ordering::Relaxed),
            committed_events: c.committed_events.load(Ordering::Relaxed),
            committed_commands: c.committed_commands.load(Ordering::Relaxed),
            failed_commits: c.failed_commits.load(Ordering::Relaxed),
            conflicts: c.conflicts.load(Ordering::Relaxed),
            overloaded: c.overloaded.load(Ordering::Relaxed),
            frozen_promotions: self.shared.frozen.load().len() as u64,
            queue_depth,
            writers,
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
        let (queue, requests) = mpsc::channel(self.shared.config.queue_capacity.max(1));
        let generation = self.shared.next_generation.fetch_add(1, Ordering::Relaxed);
        let writer = Writer {
            shared: Arc::clone(&self.shared),
            promotion_id,
            generation,
            requests,
            state: Promotion::default(),
            sequence: 0,
            snapshot_sequence: 0,
        };
        self.shared.tasks.spawn(writer.run());
        Slot { queue, generation }
    }

    /// Drops the promotion's slot if it is still the one the caller saw.
    fn forget(&self, promotion_id: PromotionId, generation: u64) {
        remove_slot(&self.shared, promotion_id, generation);
    }

    /// Drops a promotion's frozen state, so a writer takes it over again.
    fn unfreeze(&self, promotion_id: PromotionId) {
        self.shared.frozen.rcu(|frozen| {
            let mut frozen = FrozenPromotions::clone(frozen);
            frozen.remove(&promotion_id);
            frozen
        });
    }
}

/// Answers a command from a finished promotion's frozen state, or `None` if
/// the command would record events (which no rule allows once finished).
async fn answer_frozen(
    promotion: &Promotion,
    promotion_id: PromotionId,
    command: &PromotionCommand,
) -> Option<Reply> {
    match command {
        // The hot case, without cloning the state: the same rule function
        // `handle` uses.
        PromotionCommand::GrabCoupon { customer_id, at } => promotion
            .decide_grab(customer_id, *at)
            .err()
            .map(|error| Err(SecKillError::from_domain(promotion_id, error))),
        // Admin commands are rare; deciding them on a copy keeps one rule book.
        other => {
            let mut copy = promotion.clone();
            let sink = EventSink::default();
            match copy.handle(other.clone(), &(), &sink).await {
                Err(error) => Some(Err(SecKillError::from_domain(promotion_id, error))),
                Ok(()) if sink.collect().await.is_empty() => Some(Ok(Vec::new())),
                Ok(()) => None,
            }
        }
    }
}

/// The task that owns one promotion.
struct Writer {
    shared: Arc<Shared>,
    promotion_id: PromotionId,
    generation: u64,
    requests: mpsc::Receiver<Request>,
    /// The aggregate after every committed event (between batches).
    state: Promotion,
    /// The sequence number of the last committed event.
    sequence: u64,
    /// The sequence number of the newest snapshot saved or loaded.
    snapshot_sequence: u64,
}

impl Writer {
    async fn run(mut self) {
        if let Err(error) = self.reload().await {
            tracing::warn!(promotion = %self.promotion_id, %error, "cannot load promotion");
            self.retire(Some(error)).await;
            return;
        }
        loop {
            let first =
                match tokio::time::timeout(self.shared.config.idle_timeout, self.requests.recv())
                    .await
                {
                    Ok(Some(request)) => request,
                    // Every sender is gone: the engine is shutting down.
                    Ok(None) => {
                        self.save_final_snapshot().await;
                        return;
                    }
                    Err(_idle) => {
                        self.retire(None).await;
                        return;
                    }
                };
            let batch = self.take_batch(first);
            if let Err(error) = self.process(batch).await {
                tracing::warn!(promotion = %self.promotion_id, %error, "cannot reload promotion; writer stops");
                self.retire(Some(error)).await;
                return;
            }
            if self.state.is_finished() {
                self.freeze().await;
                return;
            }
        }
    }

    /// `first` plus whatever else is already queued, up to `max_batch`.
    fn take_batch(&mut self, first: Request) -> Vec<Request> {
        let mut batch =
            Vec::with_capacity(self.requests.len().min(self.shared.config.max_batch) + 1);
        batch.push(first);
        while batch.len() < self.shared.config.max_batch {
            match self.requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        batch
    }

    /// Decides and commits one batch, answering every request in it. Fails
    /// only if the state could not be reloaded after a failed commit, in which
    /// case the writer must stop.
    async fn process(&mut self, requests: Vec<Request>) -> Result<(), StoreError> {
        let mut conflicts = 0;
        loop {
            let mut events = Vec::with_capacity(requests.len() + 1);
            let mut decided: Vec<Result<usize, SecKillError>> = Vec::with_capacity(requests.len());
            for request in &requests {
                let outcome = match &request.command {
                    // The hot path: the same decision `handle` makes, without
                    // its `EventSink` or a clone of the command.
                    PromotionCommand::GrabCoupon { customer_id, at } => {
                        self.state.grab_events(customer_id, *at).map(|grab| {
                            let before = events.len();
                            for event in grab {
                                self.state.apply(event.clone());
                                events.push(event);
                            }
                            events.len() - before
                        })
                    }
                    other => {
                        let sink = EventSink::default();
                        match self.state.handle(other.clone(), &(), &sink).await {
                            Ok(()) => {
                                let recorded = sink.collect().await;
                                let count = recorded.len();
                                events.extend(recorded);
                                Ok(count)
                            }
                            Err(error) => Err(error),
                        }
                    }
                };
                decided.push(
                    outcome.map_err(|error| SecKillError::from_domain(self.promotion_id, error)),
                );
            }
            if events.is_empty() {
                // Nothing speculative happened: every answer is already true.
                for (request, outcome) in requests.into_iter().zip(decided) {
                    let _ = request.reply.send(outcome.map(|_| Vec::new()));
                }
                return Ok(());
            }

            let count = events.len() as u64;
            let Some(summary) = PromotionSummary::of(&self.state, self.sequence + count) else {
                // Events were recorded, so the promotion exists; this cannot happen.
                let error =
                    StoreError::backend("events recorded for a promotion that does not exist");
                fail_all(requests, &error);
                return self.reload().await;
            };
            let commit = Commit {
                promotion_id: self.promotion_id,
                expected_sequence: self.sequence,
                events,
                summary,
            };
            let timeout = self.shared.config.store_timeout;
            let outcome = tokio::time::timeout(timeout, self.shared.backend.append(&commit))
                .await
                .unwrap_or(Err(StoreError::Timeout(timeout)));
            let counters = &self.shared.counters;
            match outcome {
                Ok(()) => {
                    self.sequence += count;
                    counters.commits.fetch_add(1, Ordering::Relaxed);
                    counters
                        .committed_events
                        .fetch_add(count, Ordering::Relaxed);
                    counters
                        .committed_commands
                        .fetch_add(requests.len() as u64, Ordering::Relaxed);
                    // No receivers is fine: nobody is watching.
                    let _ = self.shared.changes.send(commit.summary.clone());
                    self.maybe_snapshot();
                    let mut events = commit.events.into_iter();
                    for (request, outcome) in requests.into_iter().zip(decided) {
                        let answer = outcome.map(|n| events.by_ref().take(n).collect());
                        let _ = request.reply.send(answer);
                    }
                    return Ok(());
                }
                Err(error)
                    if error.is_conflict()
                        && conflicts < self.shared.config.max_conflict_retries =>
                {
                    // Another process wrote this promotion: catch up with it and
                    // decide the same requests again, in the same order.
                    conflicts += 1;
                    counters.conflicts.fetch_add(1, Ordering::Relaxed);
                    // Random, growing backoff: two writers that keep colliding
                    // would otherwise reload and collide again in lockstep.
                    let ceiling_ms = 1u64 << conflicts.min(6);
                    tokio::time::sleep(Duration::from_micros(fastrand::u64(
                        0..=ceiling_ms * 1_000,
                    )))
                    .await;
                    if let Err(reload) = self.reload().await {
                        fail_all(requests, &reload);
                        return Err(reload);
                    }
                }
                Err(error) => {
                    // Not acknowledged, so nothing is promised. Every answer in
                    // the batch was decided on state that includes the failed
                    // events, so every request gets the error, not just grabs.
                    counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(promotion = %self.promotion_id, %error, requests = requests.len(), "commit failed");
                    fail_all(requests, &error);
                    // Memory holds the failed events; the store is the truth.
                    return self.reload().await;
                }
            }
        }
    }

    /// Saves a snapshot in the background once enough events have piled up
    /// since the last one. The copy is taken here, between batches; the write
    /// happens on its own task so the writer goes on deciding.
    fn maybe_snapshot(&mut self) {
        let every = self.shared.config.snapshot_after;
        let since = self.sequence - self.snapshot_sequence;
        if every == 0 || since < every.max(self.snapshot_sequence) {
            return;
        }
        self.snapshot_sequence = self.sequence;
        let snapshot = Snapshot {
            promotion: self.state.clone(),
            sequence: self.sequence,
        };
        self.shared.tasks.spawn(save_snapshot(
            Arc::clone(&self.shared.backend),
            self.promotion_id,
            snapshot,
        ));
    }

    /// Replaces the in-memory state with what the store holds.
    async fn reload(&mut self) -> Result<(), StoreError> {
        let timeout = self.shared.config.store_timeout;
        let backend = &self.shared.backend;
        let id = self.promotion_id;
        let load = async {
            let (mut state, mut sequence) = match backend.load_snapshot(id).await? {
                Some(snapshot) => (snapshot.promotion, snapshot.sequence),
                None => (Promotion::default(), 0),
            };
            let snapshot_sequence = sequence;
            for event in backend.load_events(id, sequence).await? {
                state.apply(event);
                sequence += 1;
            }
            Ok::<_, StoreError>((state, sequence, snapshot_sequence))
        };
        let (state, sequence, snapshot_sequence) = tokio::time::timeout(timeout, load)
            .await
            .unwrap_or(Err(StoreError::Timeout(timeout)))?;
        self.state = state;
        self.sequence = sequence;
        self.snapshot_sequence = snapshot_sequence;
        Ok(())
    }

    /// Hands the promotion back: removes this writer's slot, then answers what
    /// is still queued (with `error`, or by deciding it as usual).
    async fn retire(mut self, error: Option<StoreError>) {
        self.release_slot();
        self.requests.close();
        let mut pending = Vec::new();
        while let Some(request) = self.requests.recv().await {
            pending.push(request);
        }
        match error {
            Some(error) => fail_all(pending, &error),
            None => {
                for chunk in chunks(pending, self.shared.config.max_batch) {
                    if let Err(error) = self.process(chunk).await {
                        tracing::warn!(promotion = %self.promotion_id, %error, "retiring writer lost its store");
                        return;
                    }
                }
                self.save_final_snapshot().await;
            }
        }
    }

    /// Saves the writer's state as it stops, so the next writer (or the next
    /// process) starts from here instead of replaying the stream.
    async fn save_final_snapshot(&mut self) {
        if self.shared.config.snapshot_after != 0 && self.sequence > self.snapshot_sequence {
            let snapshot = Snapshot {
                promotion: std::mem::take(&mut self.state),
                sequence: self.sequence,
            };
            self.snapshot_sequence = self.sequence;
            save_snapshot(
                Arc::clone(&self.shared.backend),
                self.promotion_id,
                snapshot,
            )
            .await;
        }
    }

    /// The promotion finished: publish its final state for callers to read
    /// directly, answer what is queued from it, and stop.
    async fn freeze(mut self) {
        let frozen = Arc::new(std::mem::take(&mut self.state));
        if !self.shared.stopping.load(Ordering::Acquire) {
            // Published before the slot goes, so no caller finds neither.
            let now_ms = millis_since(self.shared.epoch);
            self.shared.frozen.rcu(|all| {
                let mut all = FrozenPromotions::clone(all);
                let promotion = Frozen::new(Arc::clone(&frozen), now_ms);
                all.insert(self.promotion_id, promotion);
                all
            });
            start_sweeping(&self.shared);
        }
        self.release_slot();
        if self.shared.config.snapshot_after != 0 && self.sequence > self.snapshot_sequence {
            // The final state, so a restarted service never replays this sale.
            let (backend, id, sequence) = (
                Arc::clone(&self.shared.backend),
                self.promotion_id,
                self.sequence,
            );
            let state = Arc::clone(&frozen);
            self.shared.tasks.spawn(async move {
                let snapshot = Snapshot {
                    promotion: (*state).clone(),
                    sequence,
                };
                save_snapshot(backend, id, snapshot).await;
            });
        }
        self.requests.close();
        while let Some(request) = self.requests.recv().await {
            let answer = answer_frozen(&frozen, self.promotion_id, &request.command)
                .await
                .unwrap_or(Err(SecKillError::Rejected(PromotionError::AlreadyFinished)));
            let _ = request.reply.send(answer);
        }
    }

    /// Removes this writer's slot, unless a successor owns it.
    fn release_slot(&self) {
        remove_slot(&self.shared, self.promotion_id, self.generation);
    }
}

/// Removes the promotion's slot if it still belongs to writer `generation`:
/// a successor's slot is never touched.
fn remove_slot(shared: &Shared, promotion_id: PromotionId, generation: u64) {
    let mut slots = shared.slots.write().unwrap_or_else(PoisonError::into_inner);
    if slots
        .get(&promotion_id)
        .is_some_and(|slot| slot.generation == generation)
    {
        slots.remove(&promotion_id);
    }
}

/// Starts the task that drops frozen promotions `frozen_ttl` after their
/// last use, unless it runs already or they are kept for good.
fn start_sweeping(shared: &Arc<Shared>) {
    let ttl = shared.config.frozen_ttl;
    if ttl == Duration::MAX || shared.sweeping.swap(true, Ordering::AcqRel) {
        return;
    }
    // A quarter of the TTL between checks, from 10 ms to a minute.
    let every = (ttl / 4).clamp(Duration::from_millis(10), Duration::from_secs(60));
    // Weak, and not in `tasks`: the sweeper must neither keep a dropped engine
    // alive nor hold up `shutdown`, which waits for every tracked task.
    let guard = SweeperGuard(Arc::downgrade(shared));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(shared) = guard.0.upgrade() else {
                return;
            };
            if shared.stopping.load(Ordering::Acquire) {
                return;
            }
            sweep_frozen(&shared, millis_since(shared.epoch));
        }
    });
}

/// Clears `sweeping` when the sweeper ends for any reason, its runtime's
/// shutdown included, so the next promotion to freeze starts a new one.
struct SweeperGuard(std::sync::Weak<Shared>);

impl Drop for SweeperGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.sweeping.store(false, Ordering::Release);
        }
    }
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
        // Copy on write only when something expired: the map is read far
        // more often than it changes.
        return;
    }
    let before = shared.frozen.rcu(|all| {
        let mut all = FrozenPromotions::clone(all);
        for (id, usage) in &expired {
            // Only the state that expired, and only if nobody used it since
            // the check: a promotion frozen again meanwhile has a new `Usage`.
            if all.get(id).is_some_and(|frozen| {
                Arc::ptr_eq(&frozen.usage, usage) && !usage.used.load(Ordering::Relaxed)
            }) {
                all.remove(id);
            }
        }
        all
    });
    let dropped = before.len().saturating_sub(shared.frozen.load().len());
    tracing::debug!(dropped, "dropped idle frozen promotions");
}

/// Saves a snapshot; a failure only costs a longer replay next time.
async fn save_snapshot(backend: Arc<dyn Backend>, promotion_id: PromotionId, snapshot: Snapshot) {
    if let Err(error) = backend.save_snapshot(promotion_id, &snapshot).await {
        tracing::warn!(promotion = %promotion_id, %error, sequence = snapshot.sequence, "snapshot not saved");
    }
}

fn fail_all(requests: Vec<Request>, error: &StoreError) {
    for request in requests {
        let _ = request
            .reply
            .send(Err(SecKillError::Storage(error.clone())));
    }
}

fn chunks(mut items: Vec<Request>, size: usize) -> Vec<Vec<Request>> {
    let mut out = Vec::new();
    while items.len() > size {
        let rest = items.split_off(size);
        out.push(std::mem::replace(&mut items, rest));
    }
    if !items.is_empty() {
        out.push(items);
    }
    out
}
