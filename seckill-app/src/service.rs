//! `SecKill`, the application service that library users embed: commands go
//! through the grab engine, queries go to the projections.

use std::sync::Arc;

use seckill_domain::draw::DrawSeal;
use seckill_domain::{
    Coupon, CustomerId, Entry, PromotionCommand, PromotionEvent, PromotionId, PromotionTerms,
};
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::cluster::{Forward, Ownership};
use crate::draw::DrawKey;
use crate::engine::config::EngineConfig;
use crate::engine::{ConfigError, Done, Engine, EngineStats, Replication};
use crate::error::{SecKillError, StoreError};
use crate::port::{Backend, PositionedEvent, ProjectionStore};
use crate::projection::{coupons_in, PromotionSummary, PromotionView};
use crate::subscription::{SubscriptionBuilder, SubscriptionLag};
use crate::trace::TraceContext;

/// The flash-sale application service. Cheap to clone: clones share one
/// engine, so hand one to every request handler.
///
/// Must be used inside a Tokio runtime: each busy promotion gets a task.
#[derive(Clone)]
pub struct SecKill {
    engine: Engine,
    backend: Arc<dyn Backend>,
    /// What the queries read: the backend, or a replica of it.
    queries: Arc<dyn ProjectionStore>,
    clock: Arc<dyn Clock>,
}

/// Builds a [`SecKill`] with a clock and engine settings other than the defaults.
pub struct SecKillBuilder {
    backend: Arc<dyn Backend>,
    queries: Option<Arc<dyn ProjectionStore>>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    ownership: Option<Replication>,
    draw_key: Option<DrawKey>,
    trace: Option<Arc<dyn TraceContext>>,
}

impl SecKillBuilder {
    /// Follows each command's trace through the engine with `trace`: its
    /// wait in the queue, its decision and its batch's commit become spans
    /// of the caller's trace, a forwarded command carries the trace to the
    /// owner, and each event records the `traceparent` of the command that
    /// caused it ([`PositionedEvent::traceparent`]). See [`crate::trace`].
    #[must_use]
    pub fn trace_context(mut self, trace: Arc<dyn TraceContext>) -> Self {
        self.trace = Some(trace);
        self
    }

    /// Seals draws' secrets with `key` instead of the store's own
    /// ([`EventStore::draw_key`](crate::EventStore::draw_key)), so the key
    /// can live outside the database. Every process on the store must use
    /// the same key, and keep it while a draw is pending: a draw sealed
    /// with another key cannot be drawn.
    #[must_use]
    pub const fn draw_key(mut self, key: DrawKey) -> Self {
        self.draw_key = Some(key);
        self
    }

    /// Uses `clock` instead of the system clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Answers the queries ([`SecKill::coupons_of`], [`SecKill::promotion`],
    /// [`SecKill::active_promotions`]) from `queries` instead of the
    /// backend: a read replica of it, such as `seckill_postgres::PgReplica`,
    /// so reads scale out while the backend takes the grabs. Answers may
    /// then be as old as the replica allows; everything that decides, the
    /// global feed and the subscriptions still read the backend.
    #[must_use]
    pub fn queries(mut self, queries: Arc<dyn ProjectionStore>) -> Self {
        self.queries = Some(queries);
        self
    }

    /// Uses these engine settings.
    #[must_use]
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Runs as one replica of several on a shared store: a promotion's
    /// writer runs only on the replica that `ownership` says owns it, and
    /// commands for promotions owned elsewhere go to their owner through
    /// `forward`. Without a `forward`, such a command is answered
    /// [`SecKillError::NotOwner`] naming the owner, for the caller to send
    /// on itself. Ownership is a lease with a fencing epoch in the shared
    /// store, so no consensus of our own is involved, and optimistic
    /// concurrency stays the safety net against a stale owner.
    ///
    /// The service then keeps its lease on a task of its own, and
    /// [`SecKill::shutdown`] hands its promotions over to the others.
    #[must_use]
    pub fn replicated(
        mut self,
        ownership: Arc<dyn Ownership>,
        forward: Option<Arc<dyn Forward>>,
    ) -> Self {
        self.ownership = Some((ownership, forward));
        self
    }

    /// Builds the service, once its engine settings pass
    /// [`EngineConfig::validate`]. The engine takes its metric handles from
    /// the `metrics` recorder current now: install it first. It starts its
    /// tasks (writers, timers, the lease) on the current Tokio runtime, so
    /// it must be built inside one ([`ConfigError::NoRuntime`] otherwise).
    pub fn build(self) -> Result<SecKill, ConfigError> {
        self.config.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::NoRuntime);
        }
        Ok(self.assemble())
    }

    /// The service, its settings taken as they are.
    fn assemble(self) -> SecKill {
        SecKill {
            engine: Engine::new(
                Arc::clone(&self.backend),
                self.config,
                Arc::clone(&self.clock),
                self.ownership,
                self.draw_key,
                self.trace,
            ),
            queries: self
                .queries
                .unwrap_or_else(|| Arc::clone(&self.backend) as Arc<dyn ProjectionStore>),
            backend: self.backend,
            clock: self.clock,
        }
    }
}

/// A store the service can run on: any [`Backend`] by value (an adapter such
/// as `MemoryStore` or `PgStore`), or one already shared as an
/// `Arc<dyn Backend>` or `Arc<B>`. So [`SecKill::new`] and
/// [`SecKill::builder`] take the same things.
pub trait IntoBackend {
    /// The backend, shared.
    fn into_backend(self) -> Arc<dyn Backend>;
}

impl<B: Backend> IntoBackend for B {
    fn into_backend(self) -> Arc<dyn Backend> {
        Arc::new(self)
    }
}

impl<B: Backend> IntoBackend for Arc<B> {
    fn into_backend(self) -> Arc<dyn Backend> {
        self
    }
}

impl IntoBackend for Arc<dyn Backend> {
    fn into_backend(self) -> Arc<dyn Backend> {
        self
    }
}

impl SecKill {
    /// A service over `backend`, with the system clock and default settings.
    ///
    /// # Panics
    /// Outside a Tokio runtime, as `tokio::spawn` does: the service starts
    /// its tasks on the current one. [`SecKillBuilder::build`] answers
    /// [`ConfigError::NoRuntime`] instead.
    pub fn new(backend: impl IntoBackend) -> Self {
        // Only the runtime can be missing: the defaults are valid (a unit
        // test of `EngineConfig` says so).
        Self::builder(backend)
            .build()
            .expect("SecKill::new must be called inside a Tokio runtime")
    }

    /// Starts building a service over `backend`.
    pub fn builder(backend: impl IntoBackend) -> SecKillBuilder {
        SecKillBuilder {
            backend: backend.into_backend(),
            queries: None,
            clock: Arc::new(SystemClock),
            config: EngineConfig::default(),
            ownership: None,
            draw_key: None,
            trace: None,
        }
    }

    /// Opens a new promotion under a fresh id, and returns it as it stands
    /// once created (its id is [`PromotionView::id`]).
    pub async fn create_promotion(
        &self,
        terms: PromotionTerms,
    ) -> Result<PromotionView, SecKillError> {
        let promotion_id = PromotionId::from_uuid(uuid::Uuid::new_v4());
        self.create_promotion_with_id(promotion_id, terms).await
    }

    /// Opens a new promotion under an id the caller chose, and returns it as
    /// it stands once created.
    pub async fn create_promotion_with_id(
        &self,
        promotion_id: PromotionId,
        terms: PromotionTerms,
    ) -> Result<PromotionView, SecKillError> {
        let seal = self.seal(promotion_id, &terms).await?;
        let at = self.clock.now();
        let command = PromotionCommand::CreatePromotion {
            promotion_id,
            terms,
            at,
            seal,
        };
        self.administer(promotion_id, command).await
    }

    /// Replaces the terms of a promotion that has not started, and returns
    /// it as it stands after.
    pub async fn update_promotion(
        &self,
        promotion_id: PromotionId,
        terms: PromotionTerms,
    ) -> Result<PromotionView, SecKillError> {
        // Every new terms of a draw get a new secret: the one before was
        // never revealed, and its seal is replaced with the terms.
        let seal = self.seal(promotion_id, &terms).await?;
        let at = self.clock.now();
        let command = PromotionCommand::UpdatePromotion { terms, at, seal };
        self.administer(promotion_id, command).await
    }

    /// For draw terms, a new secret's seal (docs/draws.md); none for first
    /// come.
    async fn seal(
        &self,
        promotion_id: PromotionId,
        terms: &PromotionTerms,
    ) -> Result<Option<DrawSeal>, SecKillError> {
        if terms.allocation().is_first_come() {
            return Ok(None);
        }
        let key = self.engine.draw_key().await?;
        let (_, seal) = key
            .new_secret(promotion_id)
            .map_err(|error| SecKillError::Storage(StoreError::backend(error)))?;
        Ok(Some(seal))
    }

    /// Closes a promotion early, and returns it as it stands after.
    pub async fn cancel_promotion(
        &self,
        promotion_id: PromotionId,
    ) -> Result<PromotionView, SecKillError> {
        let at = self.clock.now();
        let command = PromotionCommand::CancelPromotion { at };
        self.administer(promotion_id, command).await
    }

    /// Records that a promotion's finish time has passed, and returns it as
    /// it stands after.
    pub async fn expire_promotion(
        &self,
        promotion_id: PromotionId,
    ) -> Result<PromotionView, SecKillError> {
        let at = self.clock.now();
        let command = PromotionCommand::ExpirePromotion { at };
        self.administer(promotion_id, command).await
    }

    /// Runs an admin command and answers the promotion after it: from the
    /// writer's summary, which it holds after the commit, so no second read.
    async fn administer(
        &self,
        promotion_id: PromotionId,
        command: PromotionCommand,
    ) -> Result<PromotionView, SecKillError> {
        let done = self.engine.execute(promotion_id, command).await?;
        // An admin command's answer always carries the summary; only a
        // forwarding owner that broke the protocol answers without one. The
        // command was carried out, so a retry learns the outcome.
        done.summary
            .map(|summary| self.view(summary))
            .ok_or_else(|| SecKillError::OutcomeUnknown {
                promotion_id,
                source: StoreError::backend(
                    "the promotion's owner carried out the command but sent no summary",
                ),
            })
    }

    /// One customer grabs one coupon. Returns it only once it is durable in
    /// the store. A customer who already holds one gets
    /// `Rejected(AlreadyGrabbed(coupon))`, so retries are safe.
    pub async fn grab(
        &self,
        promotion_id: PromotionId,
        customer_id: CustomerId,
    ) -> Result<Coupon, SecKillError> {
        let at = self.clock.now();
        let command = PromotionCommand::GrabCoupon { customer_id, at };
        let done: Done = self.engine.execute(promotion_id, command).await?;
        // A grab recorded here always carries its coupon; only a forwarding
        // owner that broke the protocol answers without one. The grab was
        // recorded, so a retry is answered with the coupon.
        done.into_coupon()
            .ok_or_else(|| SecKillError::OutcomeUnknown {
                promotion_id,
                source: StoreError::backend(
                    "the promotion's owner recorded the grab but sent no coupon",
                ),
            })
    }

    /// Enters `customer_id` into the draw of `promotion_id`, and returns the
    /// entry once it is durable. A second entry is refused with the first
    /// (`PromotionError::AlreadyEntered`), so a retry is safe. Entries go
    /// through the promotion's writer and group commit, as grabs do.
    pub async fn enter_draw(
        &self,
        promotion_id: PromotionId,
        customer_id: CustomerId,
    ) -> Result<Entry, SecKillError> {
        let at = self.clock.now();
        let command = PromotionCommand::EnterDraw { customer_id, at };
        let done: Done = self.engine.execute(promotion_id, command).await?;
        // As for a grab: recorded, so a retry is answered with the entry.
        done.into_entry()
            .ok_or_else(|| SecKillError::OutcomeUnknown {
                promotion_id,
                source: StoreError::backend(
                    "the promotion's owner recorded the entry but sent no entry",
                ),
            })
    }

    /// Starts building a durable subscription named `name`: every event
    /// after its checkpoint goes to a handler, in order, and the checkpoint
    /// is kept in this service's backend. One consumer per name is active
    /// across every process on the store. See `docs/events.md`.
    ///
    /// ```
    /// # use seckill_app::{PositionedEvent, SecKill};
    /// # use seckill_app::subscription::{EventHandler, HandlerError, Start};
    /// # use seckill_memory::MemoryStore;
    /// struct Welcome;
    ///
    /// #[async_trait::async_trait]
    /// impl EventHandler for Welcome {
    ///     async fn handle(&self, event: &PositionedEvent) -> Result<(), HandlerError> {
    ///         println!("{} #{}", event.promotion_id, event.sequence);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let seckill = SecKill::new(MemoryStore::new());
    /// let subscription = seckill
    ///     .subscription("welcome-mail")
    ///     .start(Start::Beginning)
    ///     .run(Welcome)?;
    /// subscription.stop().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscription(&self, name: impl Into<String>) -> SubscriptionBuilder {
        SubscriptionBuilder::new(Arc::clone(&self.backend), self.engine.watch(), name.into())
    }

    /// How far the subscription `name` is behind the newest event, from its
    /// stored checkpoint; `None` for a name never run.
    pub async fn subscription_lag(
        &self,
        name: &str,
    ) -> Result<Option<SubscriptionLag>, SecKillError> {
        let Some(position) = self.backend.checkpoint(name).await? else {
            return Ok(None);
        };
        let head = self.backend.head_position().await?;
        Ok(Some(SubscriptionLag::new(position, head)))
    }

    /// Every promotion's events after global position `after`, in order, at
    /// most `limit`: a follower that resumes after the last position it
    /// handled never misses an event ([`EventStore::read_all`]).
    ///
    /// [`EventStore::read_all`]: crate::EventStore::read_all
    pub async fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<PositionedEvent>, SecKillError> {
        Ok(self.backend.read_all(after, limit).await?)
    }

    /// The coupons granted after global position `after`, oldest first, at
    /// most `limit`, each with its position: the cursor to resume after.
    pub async fn coupons_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Coupon)>, SecKillError> {
        let mut coupons = Vec::new();
        let mut cursor = after;
        // Pages of other events (creations, cancels) are read past, so a
        // long run of them never ends the feed early.
        while coupons.len() < limit {
            let page = self.backend.read_all(cursor, limit.max(256)).await?;
            let Some(last) = page.last() else {
                break;
            };
            cursor = last.position;
            for positioned in page {
                if let PromotionEvent::CouponGrabbed { coupon, .. } = positioned.event {
                    coupons.push((positioned.position, coupon));
                    if coupons.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok(coupons)
    }

    /// Every coupon the customer holds, oldest first; empty for a stranger.
    pub async fn coupons_of(&self, customer_id: &CustomerId) -> Result<Vec<Coupon>, SecKillError> {
        Ok(self.queries.coupons_of(customer_id).await?)
    }

    /// One promotion's state now.
    pub async fn promotion(
        &self,
        promotion_id: PromotionId,
    ) -> Result<PromotionView, SecKillError> {
        let summary = self
            .queries
            .promotion(promotion_id)
            .await?
            .ok_or(SecKillError::NotFound(promotion_id))?;
        Ok(self.view(summary))
    }

    /// The promotions that are open now or will open later, soonest first.
    pub async fn active_promotions(&self) -> Result<Vec<PromotionView>, SecKillError> {
        let mut views: Vec<_> = self
            .queries
            .unfinished_promotions()
            .await?
            .into_iter()
            .map(|summary| self.view(summary))
            .filter(|view| view.status.is_open_or_upcoming())
            .collect();
        views.sort_by(|a, b| {
            (a.summary.publish_time, a.summary.promotion_id)
                .cmp(&(b.summary.publish_time, b.summary.promotion_id))
        });
        Ok(views)
    }

    /// Brings every projection up to its promotion's event stream: any
    /// promotion whose summary is missing or older than its last event is
    /// rebuilt from its events. Run it at start-up: it repairs projections of
    /// events written by other tools (e.g. postgres-es directly) and fills a
    /// newly added projection from history. Returns how many were repaired.
    pub async fn catch_up_projections(&self) -> Result<usize, SecKillError> {
        let mut repaired = 0;
        for id in self.backend.promotion_ids().await? {
            let position = self
                .backend
                .promotion(id)
                .await?
                .map_or(0, |summary| summary.last_sequence);
            if position == 0 || !self.backend.load_events(id, position).await?.is_empty() {
                self.rebuild_projection(id).await?;
                repaired += 1;
            }
        }
        Ok(repaired)
    }

    /// Rebuilds every projection from the event streams, e.g. after adding a
    /// projection or repairing one by hand. `progress` is told each promotion
    /// as it is done. Returns how many promotions were rebuilt.
    pub async fn rebuild_projections(
        &self,
        mut progress: impl FnMut(PromotionId) + Send,
    ) -> Result<usize, SecKillError> {
        let ids = self.backend.promotion_ids().await?;
        for &id in &ids {
            self.rebuild_projection(id).await?;
            progress(id);
        }
        Ok(ids.len())
    }

    /// Recomputes one promotion's projections from all its events.
    async fn rebuild_projection(&self, id: PromotionId) -> Result<(), SecKillError> {
        let events = self.backend.load_events(id, 0).await?;
        let mut promotion = seckill_domain::Promotion::default();
        for event in events.iter().cloned() {
            cqrs_es::Aggregate::apply(&mut promotion, event);
        }
        if let Some(summary) = PromotionSummary::of(&promotion, events.len() as u64) {
            let coupons: Vec<Coupon> = coupons_in(&events).cloned().collect();
            // Only if no writer appended since the events were read: on a
            // replicated deployment another replica may be selling it now.
            self.backend
                .replace_projection_if_current(&summary, &coupons)
                .await?;
        }
        Ok(())
    }

    /// Whether the store answers, for readiness probes.
    pub async fn ready(&self) -> Result<(), SecKillError> {
        Ok(self.backend.ping().await?)
    }

    /// A feed of promotion summaries, one after every commit that changed a
    /// promotion (batches are coalesced, so one update may cover many grabs).
    /// It holds [`EngineConfig::watch_capacity`] summaries for a slow
    /// receiver; one that falls further behind gets `RecvError::Lagged` and
    /// should re-read the promotions it cares about instead. To follow one
    /// promotion, [`watch_promotion`](Self::watch_promotion) never lags.
    pub fn watch(&self) -> tokio::sync::broadcast::Receiver<PromotionSummary> {
        self.engine.watch()
    }

    /// Follows one promotion: the receiver holds its latest summary, from
    /// the projection now and then after every commit that changes it
    /// (here, or on another replica of a replicated service). It never lags:
    /// a slow reader skips to the newest summary (`changed()` then
    /// `borrow_and_update()`), and what it reads never goes back to an
    /// older one. [`SecKillError::NotFound`] for a promotion that does not
    /// exist.
    pub async fn watch_promotion(
        &self,
        promotion_id: PromotionId,
    ) -> Result<watch::Receiver<PromotionSummary>, SecKillError> {
        let current = self
            .backend
            .promotion(promotion_id)
            .await?
            .ok_or(SecKillError::NotFound(promotion_id))?;
        let receiver = self.engine.watch_promotion(current);
        // A commit between the read and the subscription told no watcher;
        // the projection, written with the events, has it.
        if let Some(newer) = self.backend.promotion(promotion_id).await? {
            self.engine.offer(&newer);
        }
        Ok(receiver)
    }

    /// The grab engine's counters.
    pub fn stats(&self) -> EngineStats {
        self.engine.stats()
    }

    /// Stops taking commands and waits until every queued one is answered.
    /// Queries keep working.
    pub async fn shutdown(&self) {
        self.engine.shutdown().await;
    }

    /// The clock this service decides with.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The engine, for [`cluster::execute_forwarded`](crate::cluster::execute_forwarded).
    pub(crate) const fn engine(&self) -> &Engine {
        &self.engine
    }

    fn view(&self, summary: PromotionSummary) -> PromotionView {
        let status = summary.status(self.clock.now());
        PromotionView { summary, status }
    }
}
