//! `Problem`: the one error body of the HTTP API (RFC 9457,
//! `application/problem+json`), and the single place that decides which
//! status code and problem type each failure gets. The types themselves
//! ([`ProblemType`], [`ProblemDetails`]) are the wire contract, in
//! `seckill_client::api`.
//!
//! An application error's problem type is the one whose slug is the error's
//! [`SecKillError::code`]: the library names it, this table gives it a
//! status and a title, so an embedder that maps `code()` gets the same slugs.
//!
//! Every status code and type is listed in `docs/api.md`; change them here
//! and there together.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use seckill_app::throttle::{LogThrottle, DEFAULT_INTERVAL};
use seckill_app::SecKillError;
use seckill_client::api::{CouponDto, EntryDto};
// The wire types, for the modules that build problems.
pub(crate) use seckill_client::api::{ProblemDetails, ProblemType, PROBLEM_JSON};
use seckill_domain::{PromotionError, ValueError};

/// The failures every request of an outage meets, logged once per kind and
/// interval with a count; the metrics count each.
pub(crate) static FAILURES: LogThrottle = LogThrottle::new(DEFAULT_INTERVAL);

/// An error answer, ready to send. Boxed, so `Result<T, Problem>` stays
/// small on every handler's happy path.
#[derive(Debug, Clone)]
pub struct Problem(Box<Answer>);

/// The body, and the headers that go beside it.
#[derive(Debug, Clone)]
struct Answer {
    details: ProblemDetails,
    /// Sent as the `Retry-After` header, not in the body.
    retry_after: Option<HeaderValue>,
    /// Sent as the `WWW-Authenticate` header of a 401, not in the body.
    challenge: Option<HeaderValue>,
}

impl Problem {
    /// A problem of `kind` with this detail.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self(Box::new(Answer {
            details: ProblemDetails {
                problem_type: kind.uri(),
                title: kind.title().to_owned(),
                status: kind.status().as_u16(),
                detail: detail.into(),
                promotion_id: None,
                coupon: None,
                publish_time: None,
                finished_at: None,
                entry: None,
                closes_at: None,
            },
            retry_after: None,
            challenge: None,
        }))
    }

    /// The body.
    pub fn details(&self) -> &ProblemDetails {
        &self.0.details
    }

    /// Names the promotion concerned.
    #[must_use]
    pub fn promotion(mut self, promotion_id: seckill_domain::PromotionId) -> Self {
        self.0.details.promotion_id = Some(*promotion_id.as_uuid());
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
        StatusCode::from_u16(self.0.details.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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
                if let Some(left_out) = FAILURES.admit("no owner took the command") {
                    tracing::warn!(promotion = %promotion_id, %error, left_out, "no owner took the command");
                }
                "the replica that owns this promotion could not take the command; nothing was \
                 acknowledged. Retrying is safe"
                    .to_owned()
            }
            SecKillError::Storage(cause) => {
                // The cause may name hosts or credentials: it goes to the log,
                // not to the client.
                if let Some(left_out) = FAILURES.admit("storage failure") {
                    tracing::warn!(promotion = %promotion_id, error = %cause, left_out, "storage failure");
                }
                "the store failed; nothing was acknowledged. Retrying is safe: a grab that was \
                 recorded after all answers with its coupon"
                    .to_owned()
            }
            SecKillError::OutcomeUnknown { source, .. } => {
                if let Some(left_out) = FAILURES.admit("outcome unknown") {
                    tracing::warn!(promotion = %promotion_id, error = %source, left_out, "outcome unknown");
                }
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
                self.0.details.coupon = Some(CouponDto::from(*coupon));
            }
            PromotionError::NotStarted { publish_time } => {
                self.0.details.publish_time = Some(publish_time);
                // Retry-After as an HTTP date: the moment grabbing opens.
                let date = httpdate::fmt_http_date(publish_time.into());
                self.0.retry_after = HeaderValue::from_str(&date).ok();
            }
            PromotionError::Ended { finished_at } => self.0.details.finished_at = Some(finished_at),
            PromotionError::AlreadyStarted { publish_time } => {
                self.0.details.publish_time = Some(publish_time);
            }
            PromotionError::AlreadyEntered(entry) => {
                self.0.details.entry = Some(EntryDto::from(*entry));
            }
            PromotionError::EntriesClosed { closes_at } | PromotionError::IsADraw { closes_at } => {
                self.0.details.closes_at = Some(closes_at);
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
        let mut response = (status, axum::Json(self.0.details)).into_response();
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
        write!(
            f,
            "{} {}: {}",
            self.0.details.status, self.0.details.title, self.0.details.detail
        )
    }
}

impl std::error::Error for Problem {}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

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
}
