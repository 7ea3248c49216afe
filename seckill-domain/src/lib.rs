//! Flash-sale domain: the `Promotion` aggregate and the rules it enforces.
//!
//! A promotion offers a fixed number of coupons between a publish time and a
//! finish time. First come, first get; never more coupons than offered; at
//! most one coupon per customer. This crate decides all of that and nothing
//! else: it has no I/O, no async runtime of its own and never reads a clock —
//! every command carries its time as data.
//!
//! # Layout
//! * `promotion` – the aggregate: decides commands, applies `PromotionEvent`s,
//!   and `PromotionStatus`, the one definition of where a sale stands.
//! * `command`   – what callers ask for (`CreatePromotion`, `GrabCoupon`, ...).
//! * `event`     – what happened; the only source of truth, serde-stable.
//! * `draw`      – the second allocation: entries, the secret and its
//!   commitment, the draw's order, and checking a draw from its events.
//! * `holders`   – who holds a coupon: a compact, append-only set whose copy
//!   shares its full chunks, and its snapshot JSON.
//! * `coupon`    – what a winning grab hands out.
//! * `value`     – parsed value types (`Discount`, `CouponCount`, `CustomerId`, ...).
//! * `error`     – one variant per broken rule, so callers can match on it.
//! * `testing`   – fixtures for the tests of every crate (times, terms,
//!   customers), behind the `testing` feature.
//!
//! # Example
//! ```
//! use chrono::{TimeZone, Utc};
//! use cqrs_es::test::TestFramework;
//! use seckill_domain::*;
//!
//! let opens = Utc.with_ymd_and_hms(2030, 11, 11, 0, 0, 0).unwrap();
//! let terms = PromotionTerms::new(
//!     CouponCount::new(1)?,
//!     Discount::new(0.7)?,
//!     opens,
//!     opens + chrono::Duration::hours(1),
//!     None,
//! )?;
//! let id = PromotionId::from_uuid(uuid::Uuid::nil());
//! let alice = CustomerId::parse("alice")?;
//! let created = PromotionEvent::PromotionCreated { promotion_id: id, terms, seal: None };
//!
//! // One coupon: Alice's grab takes it and finishes the sale.
//! let events = TestFramework::<Promotion>::with(())
//!     .given(vec![created])
//!     .when(PromotionCommand::GrabCoupon { customer_id: alice, at: opens })
//!     .inspect_result()?;
//! assert!(matches!(events[1], PromotionEvent::PromotionFinished { reason: FinishReason::SoldOut, .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod command;
mod coupon;
pub mod draw;
mod error;
mod event;
mod holders;
mod promotion;
#[cfg(feature = "testing")]
pub mod testing;
mod value;

pub use command::PromotionCommand;
pub use coupon::Coupon;
pub use draw::{Allocation, Entry};
pub use error::{PromotionError, ScheduleError, ValueError};
pub use event::{FinishReason, PromotionEvent};
pub use promotion::{GrabEvents, Promotion, PromotionStatus};
pub use value::{CouponCount, CustomerId, Discount, PromotionId, PromotionName, PromotionTerms};
