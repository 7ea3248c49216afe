//! `Client`: the one typed client of the HTTP API, shared by the load
//! generator, the HTTP suite and the reliability tests.
//!
//! It speaks in the server's own types: request and answer bodies are the
//! types of [`crate::api`], error bodies are read into
//! [`ProblemDetails`] and told apart by [`ProblemType`]. A grab's answer is a
//! [`Grab`]: every way the API says a grab ended is one variant, so callers
//! match on meaning instead of status codes. Anything else the server
//! answers is a [`ClientError`].
//!
//! `events` holds [`EventFeed`], the reader of the global event stream
//! (`GET /events`); `entries` holds [`Client::enter`] and [`Enter`], entering
//! a draw.

mod entries;
mod events;

pub use entries::Enter;
pub use events::{EventFeed, FeedFrame};

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::RETRY_AFTER;
use reqwest::{RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;

use crate::api::{
    CouponDto, ProblemDetails, ProblemType, PromotionDto, PromotionRequest, SyncCouponDto,
};

/// How a grab ended, as the server answered it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Grab {
    /// 201: the coupon, promised durable.
    Won(CouponDto),
    /// 409 `already-grabbed`: the coupon the customer already holds (so a
    /// retry of a grab that was committed after all learns its coupon).
    AlreadyGrabbed(CouponDto),
    /// 410 `sold-out`: every coupon has been taken.
    SoldOut,
    /// 425 `not-started`: grabbing opens at `publish_time`.
    NotStarted {
        /// When grabbing opens.
        publish_time: DateTime<Utc>,
    },
    /// 403 `ended`: the finish time passed or the promotion was cancelled.
    Ended {
        /// When it ended.
        finished_at: DateTime<Utc>,
    },
    /// 503 `overloaded`: the promotion's queue was full; nothing was done.
    Overloaded {
        /// How long the server asks the client to wait.
        retry_after: Option<Duration>,
    },
    /// 503 `shutting-down`: the server takes no new commands.
    ShuttingDown {
        /// How long the server asks the client to wait.
        retry_after: Option<Duration>,
    },
    /// 503 `storage-unavailable`: the store failed; nothing was acknowledged.
    StorageUnavailable {
        /// How long the server asks the client to wait.
        retry_after: Option<Duration>,
    },
    /// 503 `outcome-unknown`: the store's answer was lost, the grab may have
    /// been recorded. Grab again: a recorded one answers `AlreadyGrabbed`.
    OutcomeUnknown {
        /// How long the server asks the client to wait.
        retry_after: Option<Duration>,
    },
    /// 429 `rate-limited`: the client address or the customer is over its
    /// limit; nothing was done.
    RateLimited {
        /// How long the server asks the client to wait.
        retry_after: Option<Duration>,
    },
}

impl Grab {
    /// The problem type of a lost grab; `None` for [`Grab::Won`].
    pub const fn problem_type(&self) -> Option<ProblemType> {
        Some(match self {
            Self::Won(_) => return None,
            Self::AlreadyGrabbed(_) => ProblemType::AlreadyGrabbed,
            Self::SoldOut => ProblemType::SoldOut,
            Self::NotStarted { .. } => ProblemType::NotStarted,
            Self::Ended { .. } => ProblemType::Ended,
            Self::Overloaded { .. } => ProblemType::Overloaded,
            Self::ShuttingDown { .. } => ProblemType::ShuttingDown,
            Self::StorageUnavailable { .. } => ProblemType::StorageUnavailable,
            Self::OutcomeUnknown { .. } => ProblemType::OutcomeUnknown,
            Self::RateLimited { .. } => ProblemType::RateLimited,
        })
    }

    /// The status code it was answered with.
    pub const fn status(&self) -> StatusCode {
        match self.problem_type() {
            Some(kind) => kind.status(),
            None => StatusCode::CREATED,
        }
    }

    /// Whether the grab was not decided, or not known to be (a 503): asking
    /// again later may still win, or learn the coupon it won.
    pub const fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Overloaded { .. }
                | Self::ShuttingDown { .. }
                | Self::StorageUnavailable { .. }
                | Self::OutcomeUnknown { .. }
        )
    }

    /// Reads an answer that is not a 201 from its problem type.
    fn lost(what: &str, answer: Answer) -> Result<Self, ClientError> {
        let retry_after = answer.retry_after;
        let Some(problem) = answer.problem() else {
            return Err(answer.refused(what));
        };
        let missing = |member: &str| ClientError::Decode {
            what: format!("{what}: the problem lacks `{member}`"),
            status: answer.status,
            source: None,
        };
        Ok(match problem_type(&problem) {
            Some(ProblemType::AlreadyGrabbed) => {
                Self::AlreadyGrabbed(problem.coupon.ok_or_else(|| missing("coupon"))?)
            }
            Some(ProblemType::SoldOut) => Self::SoldOut,
            Some(ProblemType::NotStarted) => Self::NotStarted {
                publish_time: problem.publish_time.ok_or_else(|| missing("publishTime"))?,
            },
            Some(ProblemType::Ended) => Self::Ended {
                finished_at: problem.finished_at.ok_or_else(|| missing("finishedAt"))?,
            },
            Some(ProblemType::Overloaded) => Self::Overloaded { retry_after },
            Some(ProblemType::ShuttingDown) => Self::ShuttingDown { retry_after },
            Some(ProblemType::StorageUnavailable) => Self::StorageUnavailable { retry_after },
            Some(ProblemType::OutcomeUnknown) => Self::OutcomeUnknown { retry_after },
            Some(ProblemType::RateLimited) => Self::RateLimited { retry_after },
            _ => return Err(answer.refused(what)),
        })
    }
}

/// Why a call got no answer it could use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No answer: the connection failed, timed out, or broke mid-body.
    #[error("{what}: {source}")]
    Transport {
        /// What was being done.
        what: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered, but not with success: the problem it reported,
    /// when the body was one.
    #[error("{what}: HTTP {status}{}", detail(problem.as_deref()))]
    Status {
        /// What was being done.
        what: String,
        /// The status it answered.
        status: StatusCode,
        /// The problem+json body, if the answer had one.
        problem: Option<Box<ProblemDetails>>,
        /// The `Retry-After` header, when it was a number of seconds.
        retry_after: Option<Duration>,
    },
    /// The answer's status was right but its body was not what the API
    /// promises.
    #[error("{what}: unreadable answer to HTTP {status}")]
    Decode {
        /// What was being done.
        what: String,
        /// The status it answered.
        status: StatusCode,
        /// Why the body did not parse, if it was not just a missing member.
        #[source]
        source: Option<serde_json::Error>,
    },
}

impl ClientError {
    /// The status the server answered, if it answered at all.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Transport { .. } => None,
            Self::Status { status, .. } | Self::Decode { status, .. } => Some(*status),
        }
    }

    /// The problem type the server reported, if it sent a problem.
    pub fn problem_type(&self) -> Option<ProblemType> {
        match self {
            Self::Status {
                problem: Some(problem),
                ..
            } => problem_type(problem),
            _ => None,
        }
    }

    /// How long the server asked the client to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// `: detail` of a problem, for [`ClientError`]'s message.
fn detail(problem: Option<&ProblemDetails>) -> String {
    problem.map_or_else(String::new, |problem| format!(": {}", problem.detail))
}

/// Which of the API's problem types `problem` is, by its type URI.
fn problem_type(problem: &ProblemDetails) -> Option<ProblemType> {
    let slug = problem.problem_type.strip_prefix("/problems/")?;
    ProblemType::ALL
        .into_iter()
        .find(|kind| kind.slug() == slug)
}

/// A client of one server. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    /// Sent as `Authorization: Bearer` on the admin calls.
    admin_token: Option<Arc<str>>,
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:3000`)
    /// over `http`, which says how to connect (timeouts, pool size).
    pub fn with_http(base_url: impl Into<String>, http: reqwest::Client) -> Self {
        let base = base_url.into().trim_end_matches('/').to_owned();
        Self {
            http,
            base,
            admin_token: None,
        }
    }

    /// This client, presenting `token` on the admin calls (create, update,
    /// cancel).
    #[must_use]
    pub fn with_admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(Arc::from(token));
        self
    }

    /// `request` with the admin token, if this client has one.
    pub fn as_admin(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.admin_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// A client of the server at `base_url` whose every request is bounded by
    /// `timeout`, so a hung server is an error instead of a hang.
    pub fn with_timeout(
        base_url: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|source| ClientError::Transport {
                what: "building the HTTP client".into(),
                source,
            })?;
        Ok(Self::with_http(base_url, http))
    }

    /// A client of the server at `base_url` whose connections start from
    /// `local_address` (on Linux any of 127.0.0.0/8 reaches loopback, so a
    /// benchmark can be many clients with addresses of their own), at most
    /// `connections` kept idle, every request bounded by 30 s.
    pub fn bound_to(
        base_url: impl Into<String>,
        local_address: std::net::IpAddr,
        connections: usize,
    ) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .local_address(local_address)
            .pool_max_idle_per_host(connections)
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            .map_err(|source| ClientError::Transport {
                what: "building the HTTP client".into(),
                source,
            })?;
        Ok(Self::with_http(base_url, http))
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The underlying HTTP client, for requests the typed calls do not
    /// make (malformed bodies, raw headers).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `POST /admin/promotions/`: the created promotion.
    pub async fn create_promotion(
        &self,
        request: &PromotionRequest,
    ) -> Result<PromotionDto, ClientError> {
        let sent = self.as_admin(self.http.post(self.url("/admin/promotions/")).json(request));
        self.expect(sent, StatusCode::CREATED, "creating a promotion")
            .await
    }

    /// `PUT /admin/promotions/{id}`: the promotion with its new terms.
    pub async fn update_promotion(
        &self,
        promotion: Uuid,
        request: &PromotionRequest,
    ) -> Result<PromotionDto, ClientError> {
        let sent = self.as_admin(
            self.http
                .put(self.url(&format!("/admin/promotions/{promotion}")))
                .json(request),
        );
        let what = format!("updating promotion {promotion}");
        self.expect(sent, StatusCode::OK, &what).await
    }

    /// `POST /admin/promotions/{id}/cancel`: the cancelled promotion.
    pub async fn cancel_promotion(&self, promotion: Uuid) -> Result<PromotionDto, ClientError> {
        let sent = self.as_admin(
            self.http
                .post(self.url(&format!("/admin/promotions/{promotion}/cancel"))),
        );
        let what = format!("cancelling promotion {promotion}");
        self.expect(sent, StatusCode::OK, &what).await
    }

    /// `GET /query/promotions/{id}`.
    pub async fn promotion(&self, promotion: Uuid) -> Result<PromotionDto, ClientError> {
        self.get_json(
            &format!("/query/promotions/{promotion}"),
            &format!("reading promotion {promotion}"),
        )
        .await
    }

    /// `GET /query/promotions`: the promotions open or upcoming, soonest first.
    pub async fn active_promotions(&self) -> Result<Vec<PromotionDto>, ClientError> {
        self.get_json("/query/promotions", "listing the active promotions")
            .await
    }

    /// `GET /query/coupons/{customer}`: every coupon the customer holds.
    pub async fn coupons_of(&self, customer: &str) -> Result<Vec<CouponDto>, ClientError> {
        self.get_json(
            &format!("/query/coupons/{customer}"),
            &format!("listing the coupons of {customer}"),
        )
        .await
    }

    /// `GET /sync/{after}?limit=`: up to `limit` coupons granted after the
    /// cursor `after`, oldest first; resume with the last one's `id`.
    pub async fn sync(&self, after: u64, limit: usize) -> Result<Vec<SyncCouponDto>, ClientError> {
        self.get_json(
            &format!("/sync/{after}?limit={limit}"),
            &format!("reading the coupons after {after}"),
        )
        .await
    }

    /// `GET /events`: the global event feed, live, after `last_event_id`
    /// (sent as `Last-Event-ID`; `None` reads from the beginning). Fails if
    /// the server does not answer 200.
    pub async fn events(&self, last_event_id: Option<u64>) -> Result<EventFeed, ClientError> {
        let mut request = self.http.get(self.url("/events"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let what = "following the global event feed";
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                what: what.to_owned(),
                source,
            })?;
        if response.status() != StatusCode::OK {
            return Err(Answer::of(response, what).await?.refused(what));
        }
        Ok(EventFeed::new(response))
    }

    /// The request of a grab, unsent: for tests of the answer's wire format.
    pub fn grab_request(&self, promotion: Uuid, customer: &str) -> RequestBuilder {
        self.http
            .post(self.url("/command/coupons/"))
            .json(&json!({ "promotionId": promotion, "customerId": customer }))
    }

    /// `POST /command/coupons/`: how the grab ended. Answers that are no
    /// grab outcome (unknown promotion, invalid customer id) are errors.
    pub async fn grab(&self, promotion: Uuid, customer: &str) -> Result<Grab, ClientError> {
        let what = format!("grab of promotion {promotion} for {customer}");
        let answer = Answer::read(self.grab_request(promotion, customer), &what).await?;
        if answer.status == StatusCode::CREATED {
            answer.json(&what).map(Grab::Won)
        } else {
            Grab::lost(&what, answer)
        }
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let what = "reading the metrics";
        let answer = self.ok(self.http.get(self.url("/metrics")), what).await?;
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }

    /// `GET /healthz`: `Ok` while the process serves HTTP.
    pub async fn health(&self) -> Result<(), ClientError> {
        let sent = self.http.get(self.url("/healthz"));
        self.ok(sent, "probing liveness").await.map(drop)
    }

    /// `GET /readyz`: `Ok` while the store answers and the server is not
    /// shutting down; otherwise the 503 with its problem and `Retry-After`.
    pub async fn ready(&self) -> Result<(), ClientError> {
        let sent = self.http.get(self.url("/readyz"));
        self.ok(sent, "probing readiness").await.map(drop)
    }

    /// A query that must answer 200 with JSON.
    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<T, ClientError> {
        self.expect(self.http.get(self.url(path)), StatusCode::OK, what)
            .await
    }

    /// Sends `request`; the answer must be `expected` with a JSON body.
    async fn expect<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        expected: StatusCode,
        what: &str,
    ) -> Result<T, ClientError> {
        let answer = Answer::read(request, what).await?;
        if answer.status != expected {
            return Err(answer.refused(what));
        }
        answer.json(what)
    }

    /// Sends `request`; the answer must be 200.
    async fn ok(&self, request: RequestBuilder, what: &str) -> Result<Answer, ClientError> {
        let answer = Answer::read(request, what).await?;
        if answer.status == StatusCode::OK {
            Ok(answer)
        } else {
            Err(answer.refused(what))
        }
    }
}

/// A whole answer, read before it is interpreted.
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

impl Answer {
    /// Sends `request` and reads the whole answer.
    async fn read(request: RequestBuilder, what: &str) -> Result<Self, ClientError> {
        let transport = |source| ClientError::Transport {
            what: what.to_owned(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        Self::of(response, what).await
    }

    /// Reads the whole of an answer already received.
    async fn of(response: reqwest::Response, what: &str) -> Result<Self, ClientError> {
        let transport = |source| ClientError::Transport {
            what: what.to_owned(),
            source,
        };
        let status = response.status();
        // Seconds only: the HTTP-date form (on `not-started`) repeats the
        // publish time, which the problem body carries anyway.
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(transport)?.into();
        Ok(Self {
            status,
            retry_after,
            body,
        })
    }

    /// The body as `T`.
    fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|source| ClientError::Decode {
            what: what.to_owned(),
            status: self.status,
            source: Some(source),
        })
    }

    /// The body as a problem, if it is one.
    fn problem(&self) -> Option<ProblemDetails> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The error of an answer that was not the one asked for.
    fn refused(&self, what: &str) -> ClientError {
        ClientError::Status {
            what: what.to_owned(),
            status: self.status,
            problem: self.problem().map(Box::new),
            retry_after: self.retry_after,
        }
    }
}
