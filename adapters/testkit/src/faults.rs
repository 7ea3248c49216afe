//! Fault injection: a store wrapper that makes chosen appends fail, fail
//! *after* writing (the ambiguous case a lost network reply causes), or report
//! a concurrency conflict. Everything else passes through to the real store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use seckill_app::subscription::{SubscriptionLease, SubscriptionStore};
use seckill_app::{
    Backend, Commit, EventStore, ProjectionStore, PromotionSummary, Snapshot, StoreError,
};
use seckill_domain::{Coupon, CustomerId, PromotionEvent, PromotionId};

/// Which appends go wrong. Every `n`-th append (counting from 1) gets the
/// fault; 0 turns a fault off. Conflict wins over the others when both match.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultPlan {
    /// Fail without writing anything.
    pub fail_every: u64,
    /// Write, then report a failure anyway.
    pub fail_after_write_every: u64,
    /// Report a conflict without writing.
    pub conflict_every: u64,
    /// Write, then report the connection broken mid-call
    /// ([`StoreError::Interrupted`]): the answer is lost, the write is not.
    pub lose_answer_every: u64,
    /// Write on a task of its own, which goes on while the store is paused
    /// even after the caller stopped waiting (a commit that lands after its
    /// timeout).
    pub land_late_every: u64,
    /// How long every append takes before it reaches the store: a slow
    /// database, so that requests queue behind a commit in flight. Zero by
    /// default.
    pub latency: std::time::Duration,
}

/// How many faults were injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Appends attempted.
    pub appends: u64,
    /// Failed without writing.
    pub failed: u64,
    /// Written, then reported failed.
    pub failed_after_write: u64,
    /// Reported as conflicts.
    pub conflicts: u64,
    /// Written, then reported as interrupted.
    pub lost_answers: u64,
}

/// A backend whose appends fail according to a [`FaultPlan`], and which can
/// be paused to hold appends, as a stalled database would.
pub struct FaultyStore {
    inner: Arc<dyn Backend>,
    plan: FaultPlan,
    // watch: every waiting append sees the latest value, and resuming wakes them all.
    paused: tokio::sync::watch::Sender<bool>,
    appends: AtomicU64,
    failed: AtomicU64,
    failed_after_write: AtomicU64,
    conflicts: AtomicU64,
    lost_answers: AtomicU64,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>, plan: FaultPlan) -> Self {
        Self {
            inner,
            plan,
            paused: tokio::sync::watch::channel(false).0,
            appends: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            failed_after_write: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            lost_answers: AtomicU64::new(0),
        }
    }

    /// Holds every append from now on until [`FaultyStore::resume`].
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Lets held and future appends through.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// What has been injected so far.
    pub fn counts(&self) -> FaultCounts {
        FaultCounts {
            appends: self.appends.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            failed_after_write: self.failed_after_write.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
            lost_answers: self.lost_answers.load(Ordering::Relaxed),
        }
    }
}

fn hits(n: u64, every: u64) -> bool {
    every != 0 && n.is_multiple_of(every)
}

#[async_trait]
impl EventStore for FaultyStore {
    async fn load_events(
        &self,
        promotion_id: PromotionId,
        after: u64,
    ) -> Result<Vec<PromotionEvent>, StoreError> {
        self.inner.load_events(promotion_id, after).await
    }

    /// As the wrapped store, so a faulty PostgreSQL still runs its writers'
    /// commits through the engine's committer; each commit of a group then
    /// meets its faults one by one (the default `append_group`).
    fn groups_commits(&self) -> bool {
        self.inner.groups_commits()
    }

    async fn append(&self, commit: &Commit) -> Result<(), StoreError> {
        let n = self.appends.fetch_add(1, Ordering::Relaxed) + 1;
        let mut paused = self.paused.subscribe();
        if hits(n, self.plan.land_late_every) {
            let (inner, commit) = (Arc::clone(&self.inner), commit.clone());
            // A task, not this future: it lands even if the caller gives up.
            let late = tokio::spawn(async move {
                let _ = paused.wait_for(|p| !*p).await;
                inner.append(&commit).await
            });
            return late
                .await
                .unwrap_or_else(|_| Err(StoreError::backend("the late append panicked")));
        }
        // The sender lives in `self`, so this cannot fail while we wait.
        let _ = paused.wait_for(|p| !*p).await;
        if !self.plan.latency.is_zero() {
            tokio::time::sleep(self.plan.latency).await;
        }
        // Creating the promotion always works, so every test has something to grab from.
        let creating = commit.expected_sequence == 0;
        if !creating && hits(n, self.plan.conflict_every) {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Conflict {
                promotion_id: commit.promotion_id,
                expected: commit.expected_sequence,
            });
        }
        if !creating && hits(n, self.plan.fail_every) {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::backend("injected failure before writing"));
        }
        self.inner.append(commit).await?;
        if !creating && hits(n, self.plan.lose_answer_every) {
            self.lost_answers.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::interrupted(
                "injected: the connection broke after the commit",
            ));
        }
        if !creating && hits(n, self.plan.fail_after_write_every) {
            self.failed_after_write.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::backend("injected failure after writing"));
        }
        Ok(())
    }

    async fn load_snapshot(
        &self,
        promotion_id: PromotionId,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(promotion_id).await
    }

    async fn save_snapshot(
        &self,
        promotion_id: PromotionId,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        self.inner.save_snapshot(promotion_id, snapshot).await
    }

    async fn promotion_ids(&self) -> Result<Vec<PromotionId>, StoreError> {
        self.inner.promotion_ids().await
    }

    async fn read_all(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<seckill_app::PositionedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.head_position().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn draw_key(&self) -> Result<seckill_app::draw::DrawKey, StoreError> {
        self.inner.draw_key().await
    }
}

#[async_trait]
impl SubscriptionStore for FaultyStore {
    async fn claim_subscription(
        &self,
        name: &str,
        consumer: uuid::Uuid,
        lease: std::time::Duration,
        start: u64,
    ) -> Result<Option<SubscriptionLease>, StoreError> {
        self.inner
            .claim_subscription(name, consumer, lease, start)
            .await
    }

    async fn save_checkpoint(
        &self,
        lease: &SubscriptionLease,
        position: u64,
    ) -> Result<bool, StoreError> {
        self.inner.save_checkpoint(lease, position).await
    }

    async fn release_subscription(&self, lease: &SubscriptionLease) -> Result<(), StoreError> {
        self.inner.release_subscription(lease).await
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        self.inner.checkpoint(name).await
    }
}

#[async_trait]
impl ProjectionStore for FaultyStore {
    async fn coupons_of(&self, customer: &CustomerId) -> Result<Vec<Coupon>, StoreError> {
        self.inner.coupons_of(customer).await
    }

    async fn promotion(
        &self,
        promotion_id: PromotionId,
    ) -> Result<Option<PromotionSummary>, StoreError> {
        self.inner.promotion(promotion_id).await
    }

    async fn unfinished_promotions(&self) -> Result<Vec<PromotionSummary>, StoreError> {
        self.inner.unfinished_promotions().await
    }

    async fn replace_projection(
        &self,
        summary: &PromotionSummary,
        coupons: &[Coupon],
    ) -> Result<(), StoreError> {
        self.inner.replace_projection(summary, coupons).await
    }

    async fn replace_projection_if_current(
        &self,
        summary: &PromotionSummary,
        coupons: &[Coupon],
    ) -> Result<bool, StoreError> {
        self.inner
            .replace_projection_if_current(summary, coupons)
            .await
    }
}
