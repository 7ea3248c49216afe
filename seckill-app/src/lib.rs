//! The flash-sale application service: what a Rust service embeds to run
//! SecKill promotions.
//!
//! [`SecKill`] takes commands (create, update, cancel, grab) and answers
//! queries (a customer's coupons, one promotion, the active ones). Commands
//! run through the grab engine: one writer task per promotion decides with
//! the `Promotion` aggregate in memory and appends the events of many
//! commands at once. A caller is answered only once its events are durable.
//!
//! Metrics go through the [`metrics`](https://docs.rs/metrics) facade
//! (`seckill_commits_total`, `seckill_queue_depth`, ...): install a recorder
//! of your choice **before** building the service, which takes its handles
//! then. [`SecKill::stats`] gives the counters without one.
//!
//! Storage is a port: pick `seckill-memory` (embedded, the default) or
//! `seckill-postgres`, or implement [`EventStore`] and [`ProjectionStore`].
//!
//! # Layout
//! * `service`    – [`SecKill`], the application service and its builder,
//!   and [`IntoBackend`], what both take as a store.
//! * `engine`     – the grab engine, in seven rooms:
//!   * `engine/mod.rs` – `Engine::execute`: routes each command to its
//!     promotion's writer through a bounded queue (the slots); the stats.
//!   * `writer`  – the writer task: batches, conflict reload, snapshots,
//!     idle retirement; `writer/pipeline` decides the next batch while a
//!     commit is in flight (ADR 0015).
//!   * `frozen`  – finished promotions answered from their final state
//!     without a writer, and the sweeper that drops unused ones.
//!   * `expiry`  – the timer that records a promotion expired at its finish
//!     time (by the [`Clock`]), through the normal command path, on the
//!     owner only.
//!   * `config`  – [`EngineConfig`], the engine's settings, and
//!     [`ConfigError`] for those it cannot run with.
//!   * `metrics` – the series it records through the `metrics` facade.
//!   * `cluster` – among replicas: the lease, routes to other owners, and
//!     the couriers that forward commands to them in batches.
//! * `subscription` – durable, named followers of the global event order:
//!   [`EventHandler`], the [`SubscriptionStore`] port for leases and
//!   checkpoints, and the task that delivers, retries and takes over.
//! * `port`       – the storage traits adapters implement, and [`Commit`].
//! * `forward`    – the [`Forward`] port and the wire form of forwarded
//!   commands and answers.
//! * `ownership`  – the [`Ownership`] port: which replica runs a promotion's
//!   writer when several processes share one store.
//! * `projection` – what the read side stores for each event.
//! * `clock`      – the clock port; the domain never reads one.
//! * `error`      – [`SecKillError`] for callers (each with a stable
//!   `code()` and `is_retryable()`), [`StoreError`] for adapters.
//!
//! # Example
//! ```
//! use seckill_app::SecKill;
//! use seckill_domain::{CouponCount, CustomerId, Discount, PromotionTerms};
//! # use seckill_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let seckill = SecKill::new(MemoryStore::new());
//! let now = chrono::Utc::now();
//! let terms = PromotionTerms::new(
//!     CouponCount::new(100)?,
//!     Discount::new(0.8)?,
//!     now,
//!     now + chrono::Duration::hours(1),
//!     None,
//! )?;
//! let promotion = seckill.create_promotion(terms).await?.id();
//! let alice = CustomerId::parse("alice")?;
//! let coupon = seckill.grab(promotion, alice.clone()).await?;
//! assert_eq!(coupon.number, 1);
//! assert_eq!(seckill.coupons_of(&alice).await?, vec![coupon]);
//! # Ok(())
//! # }
//! ```

mod clock;
mod engine;
mod error;
mod forward;
mod ownership;
mod port;
mod projection;
mod service;
mod subscription;

pub use clock::{Clock, FixedClock, SystemClock};
pub use engine::{ConfigError, EngineConfig, EngineStats};
pub use error::{SecKillError, SourceError, StoreError};
pub use forward::{Forward, ForwardedCommand, ForwardedReply};
pub use ownership::{Claim, Ownership, Replica, ReplicaId};
pub use port::{Backend, Commit, EventStore, PositionedEvent, ProjectionStore, Snapshot};
pub use projection::{coupons_in, PromotionSummary, PromotionView};
pub use service::{IntoBackend, SecKill, SecKillBuilder};
pub use subscription::{
    AtLeastOnce, BatchFailure, Delivery, DeliveryFailure, EventHandler, HandlerError, Start,
    Subscription, SubscriptionBuilder, SubscriptionError, SubscriptionLag, SubscriptionLease,
    SubscriptionStatus, SubscriptionStore, DEFAULT_SUBSCRIPTION_LEASE,
};
