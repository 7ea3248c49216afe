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
//! The root holds what an embedder needs first: [`SecKill`], its builder
//! [`SecKillBuilder`] and [`IntoBackend`] (what both take as a store),
//! [`EngineConfig`], [`SecKillError`], the views the queries answer
//! ([`PromotionView`], [`PromotionSummary`], and [`PositionedEvent`] from the
//! global feed), and the storage port an adapter implements ([`Backend`],
//! [`EventStore`], [`ProjectionStore`], with [`Commit`], [`Snapshot`] and
//! [`StoreError`] from their signatures). The rest is in public modules:
//!
//! * [`cluster`]      – running as one replica of several: the [`Ownership`]
//!   and [`Forward`] ports, the wire protocol replicas speak
//!   ([`ForwardedCommand`], [`ForwardedReply`]) and
//!   [`execute_forwarded`](cluster::execute_forwarded), the owner's side.
//! * [`subscription`] – durable, named followers of the global event order:
//!   [`EventHandler`], the [`SubscriptionStore`] port for leases and
//!   checkpoints (the third part of a [`Backend`]), and the task that
//!   delivers, retries and takes over.
//! * [`engine`]       – the grab engine. Its public part is [`ConfigError`]
//!   and [`EngineStats`], each the answer of one call
//!   ([`SecKillBuilder::build`], [`SecKill::stats`]): an embedder meets them
//!   there and seldom writes their names. Inside, in eight rooms:
//!   * `engine/mod.rs` – `Engine::execute`: routes each command to its
//!     promotion's writer through a bounded queue (the slots); the stats.
//!   * `changes` – who hears of each commit: the feed of all promotions
//!     and one promotion's watchers.
//!   * `writer`  – the writer task: batches, conflict reload, snapshots,
//!     idle retirement; `writer/pipeline` decides the next batch while a
//!     commit is in flight (ADR 0015).
//!   * `frozen`  – finished promotions answered from their final state
//!     without a writer, and the sweeper that drops unused ones.
//!   * `expiry`  – the timer that records a promotion expired at its finish
//!     time, and draws a draw at its close (by the [`Clock`]), through the
//!     normal command path, on the owner only.
//!   * `config`  – [`EngineConfig`] and the rules it must keep.
//!   * `metrics` – the series it records through the `metrics` facade.
//!   * `cluster` – among replicas: the lease, routes to other owners, and
//!     the couriers that forward commands to them in batches.
//! * [`draw`]         – [`DrawKey`](draw::DrawKey): how a draw's secret is
//!   sealed in its creation event until the close (docs/draws.md).
//! * [`throttle`]     – [`LogThrottle`](throttle::LogThrottle): a failure
//!   logged once per kind and interval, with a count, not once per request.
//! * [`clock`]        – the [`Clock`] port and [`SystemClock`]; the domain
//!   never reads a clock.
//! * [`trace`]        – the [`TraceContext`](trace::TraceContext) port: how
//!   a command's trace reaches its writer, its owner and its events
//!   (`seckill-opentelemetry` implements it).
//! * `testing`        – with the `testing` feature, for tests only:
//!   `FixedClock`, and `coupons_in`, the coupons a stream grants, which the
//!   conformance suite checks projections against.
//!
//! And the private files behind the root:
//! * `service`    – [`SecKill`], [`SecKillBuilder`], [`IntoBackend`].
//! * `port`       – the storage traits and [`Commit`].
//! * `projection` – what the read side stores for each event.
//! * `error`      – [`SecKillError`] for callers (each with a stable
//!   `code()` and `is_retryable()`), [`StoreError`] for adapters.
//!
//! [`Ownership`]: cluster::Ownership
//! [`Forward`]: cluster::Forward
//! [`ForwardedCommand`]: cluster::ForwardedCommand
//! [`ForwardedReply`]: cluster::ForwardedReply
//! [`EventHandler`]: subscription::EventHandler
//! [`SubscriptionStore`]: subscription::SubscriptionStore
//! [`ConfigError`]: engine::ConfigError
//! [`EngineStats`]: engine::EngineStats
//! [`Clock`]: clock::Clock
//! [`SystemClock`]: clock::SystemClock
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

pub mod clock;
pub mod cluster;
pub mod draw;
pub mod engine;
mod error;
mod port;
mod projection;
mod service;
pub mod subscription;
#[cfg(feature = "testing")]
pub mod testing;
pub mod throttle;
pub mod trace;

pub use engine::config::EngineConfig;
pub use error::{SecKillError, StoreError};
pub use port::{Backend, Commit, EventStore, PositionedEvent, ProjectionStore, Snapshot};
pub use projection::{DrawSummary, PromotionSummary, PromotionView};
pub use service::{IntoBackend, SecKill, SecKillBuilder};
