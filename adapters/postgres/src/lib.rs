//! PostgreSQL storage for SecKill: the event store and the projections in one
//! database, so a commit writes both atomically.
//!
//! Events live in postgres-es's `events` table, byte-compatible with what
//! cqrs-es's own `PostgresEventRepository` reads and writes. What this crate
//! adds is the hot path postgres-es lacks: a batch of any size, or the
//! batches of many promotions, is appended in **one function call** (one
//! transaction, one round trip), together with the coupons it grants and the
//! promotion's summary. A stale writer gets `StoreError::Conflict`, with
//! nothing written. The projections share the events' transaction, so a query never
//! sees a coupon that is not durable, nor misses one that is.
//!
//! Everything SecKill creates, its `_sqlx_migrations` included, lives in one
//! schema ([`PgOptions::schema`], default `seckill`), so an application's own
//! tables and sqlx migrations in `public` never meet ours.
//!
//! ```no_run
//! use seckill_app::SecKill;
//! use seckill_postgres::{PgOptions, PgStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PgStore::connect_with(
//!     "postgres://postgres@127.0.0.1:5432/seckill",
//!     PgOptions::default().with_max_connections(5), // in the schema `seckill`
//! )
//! .await?; // connects, creates the schema, migrates
//! let seckill = SecKill::new(store);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! * `store`       – [`PgStore`]: the pool, connecting, migrating ([`MIGRATOR`]).
//! * `options`     – [`PgOptions`]: pool size, timeouts and the schema, their
//!   rules ([`OptionsError`]), and how they shape a pool.
//! * `schema`      – the schema: created when missing, checked against the
//!   pool's `search_path`, filled from an old layout in `public`.
//! * `events`      – the `EventStore` port: appends, loading, snapshots.
//! * `write`       – the one write path: one commit or many promotions'
//!   commits in one transaction, each checked and answered on its own.
//! * `feed`        – the global feed: events in position order, which is
//!   commit order (ADR 0011), so a follower never skips one.
//! * `projections` – the `ProjectionStore` port: coupons by customer and
//!   promotion summaries.
//! * `replica`     – [`PgReplica`]: queries from a standby within a lag
//!   bound, and from the primary past it.
//! * `rows`        – the column encoding both ports share: coupons and
//!   summaries as bind parameters, and rows back into domain values.
//! * `ownership`   – [`PgOwnership`]: which replica owns each promotion, as
//!   leases in the shared database.
//! * `subscriptions` – subscription leases and checkpoints, and
//!   [`Transactional`] delivery: a handler's writes and the checkpoint in
//!   one transaction, for exactly-once effects.
//! * `upcast`      – reading stored events back: upcasters from old event
//!   versions, and `CorruptEvent` for every row that cannot be read.
//! * `writable`    – keeping the pool on a server that takes writes: read-only
//!   connections refused and dropped, and the readiness ping.
//! * `error`       – [`ConnectError`], and sqlx errors mapped to `StoreError`.
//! * `testing` (feature `testing`) – `PgFixture`: a migrated store on a
//!   fresh database per test, for the conformance suite.
//! * `../sql`, `../migrations` – every statement, as SQL files; the append
//!   and the summary upsert are SQL functions (migration 0011).

mod error;
mod events;
mod feed;
mod options;
mod ownership;
mod projections;
mod replica;
mod rows;
mod schema;
mod store;
mod subscriptions;
#[cfg(feature = "testing")]
pub mod testing;
mod upcast;
mod writable;
mod write;

pub use error::ConnectError;
pub use options::{OptionsError, PgOptions, DEFAULT_SCHEMA};
pub use ownership::{PgOwnership, DEFAULT_LEASE};
pub use replica::{PgReplica, DEFAULT_MAX_LAG};
pub use store::{PgStore, MIGRATOR};
pub use subscriptions::{Transactional, TransactionalHandler};
pub use upcast::{upcasters, DiscountPercentUpcaster};
