//! `Problem`: the one error body of the HTTP API (RFC 9457,
//! `application/problem+json`), and the single place that decides which
//! status code and problem type each failure gets.
//!
//! An application error's problem type is the one whose slug is the error's
//! [`SecKillError::code`]: the library names it, this table gives it a
//! status and a title, so an embedder that maps `code()` gets the same slugs.
//!
//! Every status code and type is listed in `docs/api.md`; change them here
//! and there together.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use seckill_app::SecKillError;
use seckill_domain::{PromotionError, ValueError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::CouponDto;

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
}

impl ProblemType {
    /// Every problem type, for documentation and tests.
    pub const ALL: [Self; 27] = [
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
            | Self::NotYetExpired => StatusCode::CONFLICT,
            Self::SoldOut => StatusCode::GONE,
            Self::NotStarted => StatusCode::TOO_EARLY,
            Self::Ended | Self::Forbidden | Self::AdminDisabled => StatusCode::FORBIDDEN,
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

/// An error answer, ready to send. Boxed, so `Result<T, Problem>` stays
/// small on every handler's happy path.
#[derive(Debug, Clone)]
pub struct Problem(Box<ProblemDetails>);

/// The body of an error answer: RFC 9457 members plus a few of our own where
/// a client can act on them. `Deserialize` is for [`crate::client`].
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
    /// Sent as the `Retry-After` header, not in the body.
    #[serde(skip)]
    retry_after: Option<HeaderValue>,
    /// Sent as the `WWW-Authenticate` header of a 401, not in the body.
    #[serde(skip)]
    challenge: Option<HeaderValue>,
}

impl Problem {
    /// A problem of `kind` with this detail.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self(Box::new(ProblemDetails {
            problem_type: kind.uri(),
            title: kind.title().to_owned(),
            status: kind.status().as_u16(),
            detail: detail.into(),
            promotion_id: None,
            coupon: None,
            publish_time: None,
            finished_at: None,
            retry_after: None,
            challenge: None,
        }))
    }

    /// The body.
    pub fn details(&self) -> &ProblemDetails {
        &self.0
    }

    /// Names the promotion concerned.
    #[must_use]
    pub fn promotion(mut self, promotion_id: seckill_domain::PromotionId) -> Self {
        self.0.promotion_id = Some(*promotion_id.as_uuid());
        self
    }

    /// Adds a `Retry-After` header of this many seconds.
    #[must_use]
    pub fn retry_after_secs(mut self, seconds: u32) -> Self {
        self.0.retry_after = Some(HeaderValue::from(seconds));
        self
    }

    /// Adds a `WWW-Authenticate` header: the scheme and realm to
    /// authenticate with (a 401 must say how, RFC 9110 §15.5.2).
    #[must_use]
    pub fn challenge(mut self, challenge: &'static str) -> Self {
        self.0.challenge = Some(HeaderValue::from_static(challenge));
        self
    }

    /// The status code this problem is answered with.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Maps an application error, for the promotion the request was about:
    /// its type is the one named by [`SecKillError::code`]; the detail, the
    /// `Retry-After` and the members a client acts on (`coupon`,
    /// `publishTime`, `finishedAt`) come from the error's data.
    pub fn from_error(promotion_id: seckill_domain::PromotionId, error: SecKillError) -> Self {
        let kind = ProblemType::from_slug(error.code()).unwrap_or_else(|| {
            // A unit test holds every library code to a type: only a code
            // added to the library without one here lands here.
            tracing::error!(code = error.code(), %error, "no problem type for this error code");
            ProblemType::Internal
        });
        let detail = match &error {
            SecKillError::NotFound(_) => format!("no promotion exists under id {promotion_id}"),
            SecKillError::ShuttingDown => "the server is shutting down and takes no new \
                                           commands; retry on another instance"
                .to_owned(),
            SecKillError::NotOwner { .. } => {
                tracing::warn!(promotion = %promotion_id, %error, "no owner took the command");
                "the replica that owns this promotion could not take the command; nothing was \
                 acknowledged. Retrying is safe"
                    .to_owned()
            }
            SecKillError::Storage(cause) => {
                // The cause may name hosts or credentials: it goes to the log,
                // not to the client.
                tracing::warn!(promotion = %promotion_id, error = %cause, "storage failure");
                "the store failed; nothing was acknowledged. Retrying is safe: a grab that was \
                 recorded after all answers with its coupon"
                    .to_owned()
            }
            SecKillError::OutcomeUnknown { source, .. } => {
                tracing::warn!(promotion = %promotion_id, error = %source, "outcome unknown");
                "the store's answer was lost: your command may have been recorded, or not. \
                 Retrying is safe: a grab that was recorded answers 409 with your coupon"
                    .to_owned()
            }
            other => other.to_string(),
        };
        let mut problem = Self::new(kind, detail).promotion(promotion_id);
        if error.is_retryable() {
            problem = match error {
                // A restarted or second instance should be up by then.
                SecKillError::ShuttingDown => problem.retry_after_secs(5),
                // One second is about how long a full queue takes to drain
                // at the measured commit rates; clients that wait spread the
                // next burst. A store, an owner or a rival writer settles in
                // about as long.
                _ => problem.retry_after_secs(1),
            };
        }
        if let SecKillError::Rejected(rejection) = error {
            problem.add_rejection_members(rejection);
        }
        problem
    }

    /// The members of a rejection's body a client acts on.
    fn add_rejection_members(&mut self, rejection: PromotionError) {
        match rejection {
            PromotionError::AlreadyGrabbed(coupon) => {
                self.0.coupon = Some(CouponDto::from(*coupon));
            }
            PromotionError::NotStarted { publish_time } => {
                self.0.publish_time = Some(publish_time);
                // Retry-After as an HTTP date: the moment grabbing opens.
                let date = httpdate::fmt_http_date(publish_time.into());
                self.0.retry_after = HeaderValue::from_str(&date).ok();
            }
            PromotionError::Ended { finished_at } => self.0.finished_at = Some(finished_at),
            PromotionError::AlreadyStarted { publish_time } => {
                self.0.publish_time = Some(publish_time);
            }
            _ => {}
        }
    }
}

impl From<ValueError> for Problem {
    fn from(error: ValueError) -> Self {
        match error {
            // An id that is not a UUID is not a value with a broken rule: it
            // does not parse at all.
            ValueError::PromotionId(_) => {
                Self::new(ProblemType::MalformedRequest, error.to_string())
            }
            other => Self::new(ProblemType::InvalidValue, other.to_string()),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.0.retry_after.clone();
        let challenge = self.0.challenge.clone();
        let mut response = (status, axum::Json(self.0)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(value) = retry_after {
            headers.insert(header::RETRY_AFTER, value);
        }
        if let Some(value) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.0.status, self.0.title, self.0.detail)
    }
}

impl std::error::Error for Problem {}

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
    fn not_started_says_when_grabbing_opens_as_an_http_date() {
        use chrono::TimeZone;

        let publish_time = Utc.with_ymd_and_hms(2030, 11, 11, 0, 0, 0).unwrap();
        let rejection = PromotionError::NotStarted { publish_time };
        let promotion_id = seckill_domain::PromotionId::from_uuid(uuid::Uuid::nil());
        let response =
            Problem::from_error(promotion_id, SecKillError::Rejected(rejection)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_EARLY);
        assert_eq!(
            response.headers()[header::RETRY_AFTER],
            "Mon, 11 Nov 2030 00:00:00 GMT"
        );
    }

    #[test]
    fn every_code_of_the_library_is_a_problem_type_of_its_own_slug() {
        for code in SecKillError::CODES {
            let kind = ProblemType::from_slug(code).unwrap_or_else(|| panic!("{code}"));
            assert_ne!(kind, ProblemType::Internal, "{code}");
        }
    }

    #[test]
    fn an_application_error_is_answered_with_the_type_its_code_names() {
        let promotion_id = seckill_domain::PromotionId::from_uuid(uuid::Uuid::nil());
        let errors = [
            SecKillError::Conflict { promotion_id },
            SecKillError::NotFound(promotion_id),
            SecKillError::Overloaded(promotion_id),
            SecKillError::Rejected(PromotionError::AlreadyFinished),
        ];
        for error in errors {
            let code = error.code();
            let problem = Problem::from_error(promotion_id, error);
            assert!(
                problem
                    .details()
                    .problem_type
                    .ends_with(&format!("/{code}")),
                "{code}: {}",
                problem.details().problem_type
            );
        }
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
