//! The engine among replicas: this replica's lease, the routes to
//! promotions other replicas own, and the couriers that carry commands to
//! those owners in batches (`docs/adr/0008-promotion-ownership-by-lease.md`).
//!
//! Only built when the service is given an [`Ownership`]; a single process
//! never pays for any of it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use seckill_domain::PromotionId;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use super::metrics::EngineMetrics;
use super::{frozen, writer, Reply, Shared};
use crate::cluster::{Claim, Ownership, Replica, ReplicaId};
use crate::cluster::{Forward, ForwardedCommand, ForwardedReply};
use crate::error::{SecKillError, StoreError};
use crate::projection::PromotionSummary;

/// Most commands one forwarded batch carries.
const MAX_PARCELS: usize = 4_096;
/// Batches in flight to one owner at once: while one waits for the owner's
/// commit, the next fills up, so the owner's group commit stays fed.
const BATCHES_IN_FLIGHT: usize = 4;
/// Commands waiting for a courier before callers get `Overloaded`.
const COURIER_QUEUE: usize = 65_536;
/// Commit summaries waiting to be announced; past it they are dropped
/// (announcements are best effort, and the next commit announces anew).
const ANNOUNCE_QUEUE: usize = 16_384;

/// Ownership, routes and couriers. Owned by the engine's `Shared`.
pub(super) struct Cluster {
    pub(super) ownership: Arc<dyn Ownership>,
    forward: Option<Arc<dyn Forward>>,
    // std RwLock: held for a map lookup or insert, never across an `.await`.
    routes: RwLock<HashMap<PromotionId, Replica>>,
    // std RwLock, as above; written once per owner a courier starts for.
    couriers: RwLock<HashMap<ReplicaId, mpsc::Sender<Parcel>>>,
    /// Until when this replica's lease surely holds, in milliseconds since
    /// `epoch`: the send time of the last renewal that succeeded, plus the
    /// lease. 0 before the first heartbeat.
    lease_until_ms: AtomicU64,
    epoch: Instant,
    /// How long a forwarded batch may take.
    timeout: Duration,
    /// To the task that announces this replica's commits.
    announcements: mpsc::Sender<PromotionSummary>,
}

/// One forwarded command waiting for its courier.
struct Parcel {
    command: ForwardedCommand,
    reply: oneshot::Sender<Result<ForwardedReply, StoreError>>,
}

impl Cluster {
    /// The cluster, and the queue of summaries its announcer task takes.
    pub(super) fn new(
        ownership: Arc<dyn Ownership>,
        forward: Option<Arc<dyn Forward>>,
        timeout: Duration,
    ) -> (Self, mpsc::Receiver<PromotionSummary>) {
        let (announcements, queued) = mpsc::channel(ANNOUNCE_QUEUE);
        let cluster = Self {
            ownership,
            forward,
            routes: RwLock::default(),
            couriers: RwLock::default(),
            lease_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            timeout,
            announcements,
        };
        (cluster, queued)
    }

    /// Queues a commit's summary for the other replicas; never waits.
    pub(super) fn announce(&self, summary: &PromotionSummary) {
        let _ = self.announcements.try_send(summary.clone());
    }

    /// Whether this replica's lease surely holds now. A writer commits only
    /// while it does: past it, another replica may own the promotion.
    pub(super) fn holds_lease(&self) -> bool {
        self.now_ms() < self.lease_until_ms.load(Ordering::Acquire)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Renews the lease once; on success it holds for a lease from the
    /// moment the renewal was sent (the database's expiry is later still).
    pub(super) async fn heartbeat(&self) -> Result<Vec<Replica>, StoreError> {
        let sent_ms = self.now_ms();
        let lease = self.ownership.lease();
        let live = tokio::time::timeout(lease / 3, self.ownership.heartbeat())
            .await
            .unwrap_or(Err(StoreError::Timeout(lease / 3)))?;
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        self.lease_until_ms
            .fetch_max(sent_ms.saturating_add(lease_ms), Ordering::AcqRel);
        Ok(live)
    }

    /// Who owns `promotion_id`, asking the ownership backend. An owner
    /// elsewhere is remembered as the route for the next command.
    pub(super) async fn claim(&self, promotion_id: PromotionId) -> Result<Claim, StoreError> {
        if !self.holds_lease() {
            // Not live (the store is unreachable, or we have not joined yet):
            // claiming would only hand the promotion to someone who is.
            self.heartbeat().await?;
        }
        let claim = tokio::time::timeout(self.timeout, self.ownership.claim(promotion_id))
            .await
            .unwrap_or(Err(StoreError::Timeout(self.timeout)))?;
        if let Claim::OwnedBy { owner, .. } = &claim {
            self.routes
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(promotion_id, owner.clone());
        }
        Ok(claim)
    }

    /// The replica known to own `promotion_id`, if another one does.
    pub(super) fn route(&self, promotion_id: PromotionId) -> Option<Replica> {
        self.routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&promotion_id)
            .cloned()
    }

    /// Forgets the route to `promotion_id`'s owner, so the next command
    /// claims again.
    pub(super) fn forget_route(&self, promotion_id: PromotionId) {
        self.routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&promotion_id);
    }

    /// Forgets every route: after this replica lost its lease, or on leaving.
    pub(super) fn forget_routes(&self) {
        self.routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Whether commands for other owners can be forwarded at all.
    pub(super) fn forwards(&self) -> bool {
        self.forward.is_some()
    }

    /// Hands `command` to `owner` through its courier and waits for the answer.
    pub(super) async fn forward(
        self: &Arc<Self>,
        metrics: &EngineMetrics,
        owner: &Replica,
        command: ForwardedCommand,
    ) -> Reply {
        let promotion_id = command.promotion_id;
        let Some(forward) = &self.forward else {
            return Err(SecKillError::NotOwner {
                promotion_id,
                owner: owner.clone(),
            });
        };
        let courier = self.courier(owner, forward);
        let (reply, answer) = oneshot::channel();
        let parcel = Parcel { command, reply };
        if courier.try_send(parcel).is_err() {
            metrics.overloaded.add(1);
            return Err(SecKillError::Overloaded(promotion_id));
        }
        metrics.forwarded.add(1);
        match answer.await {
            Ok(Ok(reply)) => reply.into_result(promotion_id, owner),
            Ok(Err(error)) => {
                // The owner did not answer: maybe it died. Its lease lapses
                // soon; until then a claim names it again, so the caller
                // hears "unavailable, retry" rather than a guess.
                tracing::warn!(promotion = %promotion_id, owner = %owner.address, %error, "forwarding failed");
                self.forget_route(promotion_id);
                match error {
                    StoreError::Unavailable(_) | StoreError::Backend(_) => {
                        Err(SecKillError::Storage(error))
                    }
                    // Sent, and maybe run there: only "unknown" is true.
                    source => Err(SecKillError::OutcomeUnknown {
                        promotion_id,
                        source,
                    }),
                }
            }
            Err(_) => Err(SecKillError::Storage(StoreError::unavailable(
                "the courier to the promotion's owner stopped",
            ))),
        }
    }

    /// The courier to `owner`, started on first use.
    fn courier(
        self: &Arc<Self>,
        owner: &Replica,
        forward: &Arc<dyn Forward>,
    ) -> mpsc::Sender<Parcel> {
        if let Some(courier) = self
            .couriers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&owner.id)
            .filter(|courier| !courier.is_closed())
        {
            return courier.clone();
        }
        let mut couriers = self
            .couriers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(courier) = couriers.get(&owner.id).filter(|c| !c.is_closed()) {
            return courier.clone();
        }
        let (sender, parcels) = mpsc::channel(COURIER_QUEUE);
        // Weak: a courier must not keep a dropped engine alive.
        tokio::spawn(carry(
            Arc::downgrade(self),
            Arc::clone(forward),
            owner.clone(),
            parcels,
        ));
        couriers.insert(owner.id, sender.clone());
        sender
    }
}

/// A courier: takes what is queued for one owner, up to `MAX_PARCELS`, and
/// sends it as one batch, with up to `BATCHES_IN_FLIGHT` batches at once.
/// Ends when the engine is gone, or after a minute without parcels.
async fn carry(
    cluster: Weak<Cluster>,
    forward: Arc<dyn Forward>,
    owner: Replica,
    mut parcels: mpsc::Receiver<Parcel>,
) {
    let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    let idle = Duration::from_secs(60);
    let mut closing = false;
    loop {
        let mut batch = Vec::new();
        let received = if closing {
            // Closed: what was sent before the close still goes, then 0.
            parcels.recv_many(&mut batch, MAX_PARCELS).await
        } else {
            match tokio::time::timeout(idle, parcels.recv_many(&mut batch, MAX_PARCELS)).await {
                Ok(received) => received,
                Err(_idle) => {
                    // Closing lets `courier` see `is_closed` and start a
                    // fresh one for the next command.
                    parcels.close();
                    closing = true;
                    continue;
                }
            }
        };
        if received == 0 {
            break;
        }
        let Some(timeout) = cluster.upgrade().map(|cluster| cluster.timeout) else {
            break;
        };
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let (forward, owner) = (Arc::clone(&forward), owner.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let (commands, replies): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|parcel| (parcel.command, parcel.reply))
                .unzip();
            let sent = commands.len();
            let answers = tokio::time::timeout(timeout, forward.forward(&owner, commands))
                .await
                .unwrap_or(Err(StoreError::Timeout(timeout)));
            match answers {
                Ok(answers) if answers.len() == sent => {
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        let _ = reply.send(Ok(answer));
                    }
                }
                Ok(answers) => {
                    let error = StoreError::backend(format!(
                        "the owner at {} answered {} of {sent} forwarded commands",
                        owner.address,
                        answers.len()
                    ));
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
                Err(error) => {
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        });
    }
}

/// Keeps this replica's lease: a heartbeat every lease / 3. Ends when the
/// engine is gone or stopping.
pub(super) async fn keep_lease(shared: Weak<super::Shared>) {
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.stopping.load(Ordering::Acquire) {
            return;
        }
        let Some(cluster) = &shared.cluster else {
            return;
        };
        let every = cluster.ownership.lease() / 3;
        match cluster.heartbeat().await {
            Ok(live) => shared.metrics.replicas.set(live.len() as f64),
            Err(error) => {
                tracing::warn!(%error, "lease not renewed");
                if !cluster.holds_lease() {
                    // Others may own our promotions now; our writers stop at
                    // their next commit, and routes are claimed afresh.
                    cluster.forget_routes();
                }
            }
        }
        drop(shared);
        tokio::time::sleep(every).await;
    }
}

/// Announces this replica's commits to the others, newest summary per
/// promotion, in batches. Ends with the engine.
pub(super) async fn announce_commits(
    shared: Weak<Shared>,
    mut queued: mpsc::Receiver<PromotionSummary>,
) {
    let mut batch = Vec::new();
    while queued.recv_many(&mut batch, 1_024).await > 0 {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Some(cluster) = &shared.cluster else {
            return;
        };
        // Only the newest summary of each promotion matters.
        let mut newest: HashMap<PromotionId, PromotionSummary> = HashMap::new();
        for summary in batch.drain(..) {
            newest.insert(summary.promotion_id, summary);
        }
        let summaries: Vec<_> = newest.into_values().collect();
        if let Err(error) = cluster.ownership.announce(&summaries).await {
            tracing::debug!(%error, "commits not announced");
        }
    }
}

/// Follows the other replicas' announcements: each goes to this replica's
/// watchers (its live feeds), and a finished promotion is loaded and frozen
/// here, so its sold-out storm is answered without forwarding.
pub(super) async fn follow_others(shared: Weak<Shared>) {
    let mut announced = loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        if strong.stopping.load(Ordering::Acquire) {
            return;
        }
        let Some(cluster) = &strong.cluster else {
            return;
        };
        match cluster.ownership.listen().await {
            Ok(Some(announced)) => break announced,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for other replicas' commits; retrying")
            }
        }
        drop(strong);
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    while let Some(summary) = announced.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.publish(&summary);
        if summary.finish_reason.is_some() {
            freeze_here(&shared, summary.promotion_id);
        }
    }
}

/// Loads a promotion another replica finished and freezes it here, unless
/// this replica has it frozen or runs its writer already.
fn freeze_here(shared: &Arc<Shared>, promotion_id: PromotionId) {
    let known = shared.frozen.load().contains_key(&promotion_id)
        || shared
            .slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&promotion_id);
    if known {
        return;
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        match writer::load(&shared, promotion_id).await {
            Ok((state, sequence, _)) if state.is_finished() => {
                frozen::publish(&shared, promotion_id, Arc::new(state), sequence);
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(promotion = %promotion_id, %error, "finished elsewhere; not frozen here")
            }
        }
    });
}
