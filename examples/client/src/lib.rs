//! A typed client of the SecKill HTTP API, and the load generator built on
//! it.
//!
//! ```no_run
//! # async fn run() -> Result<(), seckill_client::ClientError> {
//! use seckill_client::{Client, Grab};
//!
//! let client = Client::with_timeout("http://127.0.0.1:3000", std::time::Duration::from_secs(5))?;
//! let promotion = uuid::Uuid::nil();
//! match client.grab(promotion, "alice").await? {
//!     Grab::Won(coupon) => println!("coupon #{}", coupon.number),
//!     other => println!("no coupon: {other:?}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! * [`api`]     – the wire contract: request and answer bodies and the
//!   problem types, which the server (`seckill-server`) serves as they are.
//! * `client`    – [`Client`]: every endpoint as a method; a grab's answer
//!   is a [`Grab`], anything unexpected a [`ClientError`]; [`EventFeed`]
//!   reads the global event stream.
//! * [`loadgen`] – N customers race for M coupons over HTTP, then it checks
//!   what the query API says.
//!
//! Binaries in `src/bin/`:
//! * `loadgen`  – the load generator against a running server.
//! * `fairness` – one bot against many people over HTTP: who wins the
//!   coupons (`examples/server/bench/fairness.sh`).

pub mod api;
mod client;
pub mod loadgen;

pub use client::{Client, ClientError, Enter, EventFeed, FeedFrame, Grab};
