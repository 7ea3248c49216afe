//! The wire contract of the HTTP API: the JSON bodies the server reads and
//! writes (camelCase, as in the Java original) and its problem types. The
//! server serves exactly these types and the [`Client`](crate::Client)
//! reads them, so the two cannot drift.
//!
//! # Layout
//! * `dto`     – request and answer bodies, and their conversions from the
//!   application's views.
//! * `draw`    – the bodies of draws: an entry, and where a draw stands.
//! * `problem` – [`ProblemType`] (slug, title, status code of every kind of
//!   error answer) and [`ProblemDetails`], the error body.

mod draw;
mod dto;
mod problem;

pub use draw::{DrawDto, EntryDto};
pub use dto::{
    CouponDto, FeedEventDto, GrabRequest, PromotionDto, PromotionRequest, StatusDto, SyncCouponDto,
    DEFAULT_RUN,
};
pub use problem::{ProblemDetails, ProblemType, PROBLEM_JSON};
