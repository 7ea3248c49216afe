//! The problem types of the API (RFC 9457, `application/problem+json`):
//! each kind's slug, title and status code, and the body every error answer
//! carries. The server decides which kind a failure is; a client branches on
//! the kind.

use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CouponDto, EntryDto};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every kind of problem the API reports. Each has one status code and one
/// type URI, so a client can branch on either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    /// The body is not valid JSON for the endpoint, has unknown fields, or a
    /// path or body value (id, time) does not parse at all.
    MalformedRequest,
    /// The body is not declared as `application/json`.
    UnsupportedMediaType,
    /// The body is larger than the server accepts.
    PayloadTooLarge,
    /// A value parses but breaks its rule (discount outside (0, 1], ...).
    InvalidValue,
    /// The publish and finish times are not a schedule a sale can run on now:
    /// already over, opening more than 366 days ahead, or running longer.
    InvalidSchedule,
    /// No promotion exists under the id.
    UnknownPromotion,
    /// No endpoint exists at the path.
    NotFound,
    /// The endpoint exists, but not for this method.
    MethodNotAllowed,
    /// The customer already holds a coupon of this promotion.
    AlreadyGrabbed,
    /// Every coupon has been taken.
    SoldOut,
    /// The promotion opens later.
    NotStarted,
    /// The promotion's finish time passed or it was cancelled.
    Ended,
    /// A promotion already exists under the id.
    AlreadyExists,
    /// The promotion opened; its terms are frozen.
    AlreadyStarted,
    /// The promotion is already finished.
    AlreadyFinished,
    /// The promotion cannot expire before its finish time.
    NotYetExpired,
    /// The promotion's queue is full.
    Overloaded,
    /// The server is shutting down.
    ShuttingDown,
    /// The replica that owns the promotion could not take the command
    /// (forwarding gave up while the owner changed); nothing was
    /// acknowledged.
    NotOwner,
    /// Another writer kept appending to the promotion's stream (two
    /// processes selling it without ownership) until the engine's retries
    /// ran out; nothing was acknowledged.
    Conflict,
    /// The store failed; nothing was acknowledged.
    StorageUnavailable,
    /// The commit was sent but its answer was lost: it may have been
    /// recorded. A retry tells.
    OutcomeUnknown,
    /// The request lacks the credentials the endpoint needs, or they are
    /// wrong (a forged or expired token): answered with `WWW-Authenticate`.
    Unauthorized,
    /// The credentials are good but do not cover this request: a customer
    /// grabbing for, or reading the coupons of, another customer.
    Forbidden,
    /// The admin routes are closed: the server has no admin token.
    AdminDisabled,
    /// The client sent more requests than its rate limit allows.
    RateLimited,
    /// A bug: a handler panicked. No request is known to reach this.
    Internal,
    /// The customer already entered this draw.
    AlreadyEntered,
    /// The draw's entries closed.
    EntriesClosed,
    /// The draw holds as many entries as it takes.
    EntriesFull,
    /// An entry into a promotion that allocates first come.
    NotADraw,
    /// A grab on a promotion that allocates by draw: enter it instead.
    IsADraw,
    /// The promotion has been drawn and can no longer change.
    AlreadyDrawn,
}

impl ProblemType {
    /// Every problem type, for documentation and tests.
    pub const ALL: [Self; 33] = [
        Self::MalformedRequest,
        Self::UnsupportedMediaType,
        Self::PayloadTooLarge,
        Self::InvalidValue,
        Self::InvalidSchedule,
        Self::UnknownPromotion,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::AlreadyGrabbed,
        Self::SoldOut,
        Self::NotStarted,
        Self::Ended,
        Self::AlreadyExists,
        Self::AlreadyStarted,
        Self::AlreadyFinished,
        Self::NotYetExpired,
        Self::Overloaded,
        Self::ShuttingDown,
        Self::NotOwner,
        Self::Conflict,
        Self::StorageUnavailable,
        Self::OutcomeUnknown,
        Self::Unauthorized,
        Self::Forbidden,
        Self::AdminDisabled,
        Self::RateLimited,
        Self::Internal,
        Self::AlreadyEntered,
        Self::EntriesClosed,
        Self::EntriesFull,
        Self::NotADraw,
        Self::IsADraw,
        Self::AlreadyDrawn,
    ];

    /// The last segment of the type URI.
    pub const fn slug(self) -> &'static str {
        match self {
            Self::MalformedRequest => "malformed-request",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::PayloadTooLarge => "payload-too-large",
            Self::InvalidValue => "invalid-value",
            Self::InvalidSchedule => "invalid-schedule",
            Self::UnknownPromotion => "unknown-promotion",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::AlreadyGrabbed => "already-grabbed",
            Self::SoldOut => "sold-out",
            Self::NotStarted => "not-started",
            Self::Ended => "ended",
            Self::AlreadyExists => "already-exists",
            Self::AlreadyStarted => "already-started",
            Self::AlreadyFinished => "already-finished",
            Self::NotYetExpired => "not-yet-expired",
            Self::Overloaded => "overloaded",
            Self::ShuttingDown => "shutting-down",
            Self::NotOwner => "not-owner",
            Self::Conflict => "conflict",
            Self::StorageUnavailable => "storage-unavailable",
            Self::OutcomeUnknown => "outcome-unknown",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::AdminDisabled => "admin-disabled",
            Self::RateLimited => "rate-limited",
            Self::Internal => "internal",
            Self::AlreadyEntered => "already-entered",
            Self::EntriesClosed => "entries-closed",
            Self::EntriesFull => "entries-full",
            Self::NotADraw => "not-a-draw",
            Self::IsADraw => "is-a-draw",
            Self::AlreadyDrawn => "already-drawn",
        }
    }

    /// The problem type whose slug is `slug`, if any.
    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.slug() == slug)
    }

    /// The type URI: relative, resolved against the server, and documented in
    /// `docs/api.md` under the slug.
    pub fn uri(self) -> String {
        format!("/problems/{}", self.slug())
    }

    /// The short, fixed summary of the problem type.
    pub const fn title(self) -> &'static str {
        match self {
            Self::MalformedRequest => "Malformed request",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::PayloadTooLarge => "Payload too large",
            Self::InvalidValue => "Invalid value",
            Self::InvalidSchedule => "Invalid schedule",
            Self::UnknownPromotion => "Unknown promotion",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::AlreadyGrabbed => "Coupon already grabbed",
            Self::SoldOut => "Sold out",
            Self::NotStarted => "Promotion not started",
            Self::Ended => "Promotion ended",
            Self::AlreadyExists => "Promotion already exists",
            Self::AlreadyStarted => "Promotion already started",
            Self::AlreadyFinished => "Promotion already finished",
            Self::NotYetExpired => "Promotion not yet expired",
            Self::Overloaded => "Overloaded",
            Self::ShuttingDown => "Shutting down",
            Self::NotOwner => "Promotion owner unavailable",
            Self::Conflict => "Write conflict",
            Self::StorageUnavailable => "Storage unavailable",
            Self::OutcomeUnknown => "Outcome unknown",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::AdminDisabled => "Admin routes disabled",
            Self::RateLimited => "Too many requests",
            Self::Internal => "Internal error",
            Self::AlreadyEntered => "Already entered",
            Self::EntriesClosed => "Entries closed",
            Self::EntriesFull => "Entries full",
            Self::NotADraw => "Not a draw",
            Self::IsADraw => "Allocated by draw",
            Self::AlreadyDrawn => "Promotion already drawn",
        }
    }

    /// The status code. The three ways a grab can lose for good each have
    /// their own code (410 sold out, 403 ended, 425 not started), so a client
    /// needs no body to tell them apart; `docs/api.md` says why these.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::MalformedRequest => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidValue | Self::InvalidSchedule => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnknownPromotion | Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::AlreadyGrabbed
            | Self::AlreadyExists
            | Self::AlreadyStarted
            | Self::AlreadyFinished
            | Self::NotYetExpired
            | Self::AlreadyEntered
            | Self::NotADraw
            | Self::IsADraw
            | Self::AlreadyDrawn => StatusCode::CONFLICT,
            Self::SoldOut | Self::EntriesFull => StatusCode::GONE,
            Self::NotStarted => StatusCode::TOO_EARLY,
            Self::Ended | Self::EntriesClosed | Self::Forbidden | Self::AdminDisabled => {
                StatusCode::FORBIDDEN
            }
            Self::Overloaded
            | Self::ShuttingDown
            | Self::NotOwner
            | Self::Conflict
            | Self::StorageUnavailable
            | Self::OutcomeUnknown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The body of an error answer: RFC 9457 members plus a few of our own where
/// a client can act on them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Problem)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDetails {
    /// The problem type URI, e.g. `/problems/sold-out`.
    #[serde(rename = "type")]
    #[schema(example = "/problems/sold-out")]
    pub problem_type: String,
    /// The problem type's fixed summary.
    #[schema(example = "Sold out")]
    pub title: String,
    /// The HTTP status code, repeated.
    #[schema(example = 410)]
    pub status: u16,
    /// What went wrong in this request.
    #[schema(example = "all 100 coupons have been taken")]
    pub detail: String,
    /// The promotion concerned, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion_id: Option<uuid::Uuid>,
    /// On `already-grabbed`: the coupon the customer holds, so a retry is safe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon: Option<CouponDto>,
    /// On `not-started`: when grabbing opens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_time: Option<DateTime<Utc>>,
    /// On `ended`: when the promotion ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// On `already-entered`: the customer's entry, so a retry is safe.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub entry: Option<EntryDto>,
    /// On `entries-closed` and `is-a-draw`: when the draw's entries close.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub closes_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_type_has_its_own_slug() {
        let slugs: std::collections::HashSet<_> =
            ProblemType::ALL.iter().map(|kind| kind.slug()).collect();
        assert_eq!(slugs.len(), ProblemType::ALL.len());
    }

    #[test]
    fn the_ways_a_grab_loses_for_good_have_distinct_status_codes() {
        let codes: std::collections::HashSet<_> = [
            ProblemType::SoldOut,
            ProblemType::Ended,
            ProblemType::NotStarted,
            ProblemType::AlreadyGrabbed,
        ]
        .iter()
        .map(|kind| kind.status())
        .collect();
        assert_eq!(codes.len(), 4);
    }

    #[test]
    fn only_a_panic_is_a_server_error_that_is_not_503() {
        for kind in ProblemType::ALL {
            let status = kind.status();
            if status.is_server_error() && kind != ProblemType::Internal {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{kind:?}");
            }
        }
    }
}
