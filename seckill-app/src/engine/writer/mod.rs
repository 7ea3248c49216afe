//! The writer task: the one owner of a promotion. It takes batches from the
//! promotion's queue, decides them on the aggregate in memory, commits their
//! events in one append (`pipeline`: deciding the next batch while a commit
//! is in flight), catches up after conflicts, saves snapshots, and retires
//! (idle) or freezes (finished) when its work is done.

mod pipeline;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cqrs_es::Aggregate;
use seckill_domain::{Promotion, PromotionCommand, PromotionError, PromotionId};
use tokio::sync::mpsc;

use super::{frozen, metrics};
use super::{Request, Shared};
use crate::cluster::{Claim, Replica};
use crate::error::{SecKillError, StoreError};
use crate::port::{Backend, Commit, Snapshot};
use crate::throttle::FAILURES;

/// The task that owns one promotion.
pub(super) struct Writer {
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
    /// This queue's share of the `seckill_queue_depth` gauge.
    reported_depth: usize,
    /// Among replicas: whether this replica's claim on the promotion was
    /// granted (and counted in `seckill_owned_promotions`).
    owned: bool,
    /// Among replicas: the owner a conflict revealed; the writer then hands
    /// the promotion's commands to it and stops.
    lost_to: Option<Replica>,
}

impl Writer {
    /// A writer for `promotion_id` that loads it when it starts running.
    pub(super) fn new(
        shared: Arc<Shared>,
        promotion_id: PromotionId,
        generation: u64,
        requests: mpsc::Receiver<Request>,
    ) -> Self {
        Self {
            shared,
            promotion_id,
            generation,
            requests,
            state: Promotion::default(),
            sequence: 0,
            snapshot_sequence: 0,
            reported_depth: 0,
            owned: false,
            lost_to: None,
        }
    }

    /// Runs until the promotion goes idle, finishes, or the engine stops.
    pub(super) async fn run(mut self) {
        if let Err(error) = self.claim().await {
            if let Some(left_out) = FAILURES.admit("cannot claim promotion") {
                tracing::warn!(promotion = %self.promotion_id, %error, left_out, "cannot claim promotion");
            }
            self.retire(Some(error)).await;
            return;
        }
        if let Some(owner) = self.lost_to.take() {
            self.redirect(owner).await;
            return;
        }
        if let Err(error) = self.reload().await {
            if let Some(left_out) = FAILURES.admit("cannot load promotion") {
                tracing::warn!(promotion = %self.promotion_id, %error, left_out, "cannot load promotion");
            }
            self.retire(Some(error)).await;
            return;
        }
        let max_batch = self.shared.config.max_batch;
        loop {
            let mut batch = Vec::new();
            let idle = self.shared.config.idle_timeout;
            match tokio::time::timeout(idle, self.requests.recv_many(&mut batch, max_batch)).await {
                // `max_batch` is at least 1 (`EngineConfig::validate`), so no
                // request means every sender is gone: the engine is stopping.
                Ok(0) => {
                    self.save_final_snapshot().await;
                    return;
                }
                Ok(_) => {}
                Err(_idle) => {
                    self.retire(None).await;
                    return;
                }
            }
            let processed = self.process(batch).await;
            // What queued up during the commit.
            self.report_queue_depth();
            if let Some(owner) = self.lost_to.take() {
                self.redirect(owner).await;
                return;
            }
            if let Err(error) = processed {
                if let Some(left_out) = FAILURES.admit("cannot reload promotion") {
                    tracing::warn!(promotion = %self.promotion_id, %error, left_out, "cannot reload promotion; writer stops");
                }
                self.retire(Some(error)).await;
                return;
            }
            if self.state.is_finished() {
                self.freeze().await;
                return;
            }
        }
    }

    /// Whether a snapshot falls due once `commit` lands.
    fn snapshot_due(&self, commit: &Commit) -> bool {
        self.snapshot_due_at(self.sequence + commit.events.len() as u64)
    }

    /// Whether a snapshot falls due at `sequence`: the events since the last
    /// one reach `max(snapshot_after, its sequence)`, so the gap doubles with
    /// the stream and the copying stays linear in it.
    fn snapshot_due_at(&self, sequence: u64) -> bool {
        let every = self.shared.config.snapshot_after;
        let since = sequence - self.snapshot_sequence;
        every != 0 && since >= every.max(self.snapshot_sequence)
    }

    /// Saves a snapshot of the committed state (`copied`, or a copy of the
    /// writer's state when it holds nothing uncommitted) in the background,
    /// if one is due at the current sequence
    /// ([`snapshot_due_at`](Self::snapshot_due_at)). The copy is taken here,
    /// between commits; the write happens on its own task so the writer goes
    /// on deciding. The copy is cheap at
    /// any size: it shares the holder set's full chunks and index tables
    /// (docs/adr/0013-compact-holder-set.md).
    fn maybe_snapshot(&mut self, copied: Option<Promotion>) {
        if !self.snapshot_due_at(self.sequence) {
            return;
        }
        self.snapshot_sequence = self.sequence;
        let snapshot = Snapshot {
            promotion: copied.unwrap_or_else(|| self.state.clone()),
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
        let (state, sequence, snapshot_sequence) = load(&self.shared, self.promotion_id).await?;
        self.state = state;
        self.sequence = sequence;
        self.snapshot_sequence = snapshot_sequence;
        Ok(())
    }

    /// Hands the promotion back: removes this writer's slot, then answers what
    /// is still queued (with `error`, or by deciding it as usual).
    async fn retire(mut self, error: Option<StoreError>) {
        self.shared.drop_slot(self.promotion_id, self.generation);
        self.requests.close();
        let max_batch = self.shared.config.max_batch;
        let mut failure = error;
        loop {
            let mut batch = Vec::new();
            // Closed, so this ends (with 0) once the queue is drained.
            if self.requests.recv_many(&mut batch, max_batch).await == 0 {
                break;
            }
            match &failure {
                Some(error) => fail_all(batch, error),
                None => {
                    if let Err(error) = self.process(batch).await {
                        if let Some(left_out) = FAILURES.admit("retiring writer lost its store") {
                            tracing::warn!(promotion = %self.promotion_id, %error, left_out, "retiring writer lost its store");
                        }
                        failure = Some(error);
                    }
                }
            }
        }
        if failure.is_none() {
            self.save_final_snapshot().await;
        }
    }

    /// Among replicas: claims the promotion for this replica. If another
    /// replica owns it, `lost_to` names it (the claim also left the route
    /// for the engine's next command).
    async fn claim(&mut self) -> Result<(), StoreError> {
        let Some(cluster) = &self.shared.cluster else {
            return Ok(());
        };
        match cluster.claim(self.promotion_id).await? {
            Claim::Owned { epoch, taken_over } => {
                if !self.owned {
                    self.owned = true;
                    self.shared.metrics.owned_promotions.increment(1.0);
                }
                if taken_over {
                    self.shared.metrics.takeovers.add(1);
                    tracing::info!(promotion = %self.promotion_id, epoch, "took the promotion over");
                }
            }
            Claim::OwnedBy { owner, .. } => self.lost_to = Some(owner),
        }
        Ok(())
    }

    /// Another replica owns the promotion: stop, and answer everything
    /// queued with `NotOwner`, which the engine turns into a forward.
    async fn redirect(mut self, owner: Replica) {
        self.shared.drop_slot(self.promotion_id, self.generation);
        self.requests.close();
        let mut batch = Vec::new();
        while self
            .requests
            .recv_many(&mut batch, self.shared.config.max_batch)
            .await
            > 0
        {
            redirect_all(std::mem::take(&mut batch), self.promotion_id, &owner);
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
            frozen::publish(
                &self.shared,
                self.promotion_id,
                Arc::clone(&frozen),
                self.sequence,
            );
        }
        self.shared.drop_slot(self.promotion_id, self.generation);
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
            let answer =
                frozen::decide_on(&frozen, self.sequence, self.promotion_id, &request.command)
                    .await
                    .unwrap_or(Err(SecKillError::Rejected(PromotionError::AlreadyFinished)));
            let _ = request.reply.send(answer);
        }
    }
}

impl Writer {
    /// Moves the queue-depth gauge to what waits in this queue now. Called
    /// between batches, not per request: a gauge shared by every writer
    /// would otherwise be one more contended atomic on each grab.
    fn report_queue_depth(&mut self) {
        let now = self.requests.len();
        metrics::shift(&self.shared.metrics.queue_depth, self.reported_depth, now);
        self.reported_depth = now;
    }
}

impl Drop for Writer {
    /// However the writer stops (retired, frozen, shut down, or its task
    /// dropped with the runtime), its share of the gauges goes with it.
    fn drop(&mut self) {
        let metrics = &self.shared.metrics;
        metrics::shift(&metrics.queue_depth, self.reported_depth, 0);
        metrics.writers.decrement(1.0);
        if self.owned {
            metrics.owned_promotions.decrement(1.0);
        }
    }
}

/// A promotion as the store holds it (its snapshot, then the events after
/// it), within `store_timeout`: the state, its sequence, and the snapshot's.
pub(super) async fn load(
    shared: &Shared,
    promotion_id: PromotionId,
) -> Result<(Promotion, u64, u64), StoreError> {
    let timeout = shared.config.store_timeout;
    let backend = &shared.backend;
    let load = async {
        let (mut state, mut sequence) = match backend.load_snapshot(promotion_id).await? {
            Some(snapshot) => (snapshot.promotion, snapshot.sequence),
            None => (Promotion::default(), 0),
        };
        let snapshot_sequence = sequence;
        for event in backend.load_events(promotion_id, sequence).await? {
            state.apply(event);
            sequence += 1;
        }
        Ok::<_, StoreError>((state, sequence, snapshot_sequence))
    };
    tokio::time::timeout(timeout, load)
        .await
        .unwrap_or(Err(StoreError::Timeout(timeout)))
}

/// Saves a snapshot; a failure only costs a longer replay next time.
async fn save_snapshot(backend: Arc<dyn Backend>, promotion_id: PromotionId, snapshot: Snapshot) {
    if let Err(error) = backend.save_snapshot(promotion_id, &snapshot).await {
        tracing::warn!(promotion = %promotion_id, %error, sequence = snapshot.sequence, "snapshot not saved");
    }
}

/// Answers every request `NotOwner`: nothing was decided on them here.
fn redirect_all(requests: Vec<Request>, promotion_id: PromotionId, owner: &Replica) {
    for request in requests {
        let _ = request.reply.send(Err(SecKillError::NotOwner {
            promotion_id,
            owner: owner.clone(),
        }));
    }
}

/// Answers every request with `error`: a conflict whose retries ran out is
/// [`SecKillError::Conflict`], any other failure [`SecKillError::Storage`].
fn fail_all(requests: Vec<Request>, error: &StoreError) {
    let error = SecKillError::from(error.clone());
    for request in requests {
        let _ = request.reply.send(Err(error.clone()));
    }
}

/// Whether `command` is a grab or an entry, whose caller gets a coupon or
/// an entry, not a summary.
const fn is_grab(command: &PromotionCommand) -> bool {
    matches!(
        command,
        PromotionCommand::GrabCoupon { .. } | PromotionCommand::EnterDraw { .. }
    )
}
