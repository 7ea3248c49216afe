//! Starting the server for a test: [`TestServer`] runs `serve()` on a
//! loopback port and holds a [`Client`] for it; beside it, the helpers every
//! HTTP test shares (promotion requests, the problem check, waiting).

#![allow(dead_code, unreachable_pub)] // Each test binary uses a different part.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Response, StatusCode};
use seckill_app::{Backend, SecKill};
use seckill_client::api::{CouponDto, PromotionDto, PromotionRequest, PROBLEM_JSON};
use seckill_client::{Client, Grab};
use seckill_server::{AdminAccess, AdminToken, AppState, Metrics, Security};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The admin token of every [`TestServer`] (its client presents it).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The rules of a [`TestServer`]: the admin routes behind [`ADMIN_TOKEN`],
/// no rate limit (several tests send thousands of grabs from one address).
pub fn test_security() -> Security {
    Security::new(AdminAccess::Token(
        AdminToken::new(ADMIN_TOKEN).expect("a valid token"),
    ))
}

/// A server running `serve()` on 127.0.0.1:0, and a client for it.
pub struct TestServer {
    /// A client with a timeout, so a hung server fails the test.
    pub client: Client,
    /// The service the server runs, for checks behind the API's back.
    pub seckill: SecKill,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<std::io::Result<()>>>,
}

/// How a test's [`TestServer`] is started: [`TestServer::builder`], then
/// what differs from the defaults, then [`start`](Self::start).
#[derive(Default)]
pub struct TestServerBuilder {
    store: Option<Arc<dyn Backend>>,
    seckill: Option<SecKill>,
    metrics: Option<Metrics>,
    security: Option<Security>,
    trace_ratio: Option<f64>,
}

impl TestServerBuilder {
    /// Serves a service with the default engine settings over `store`.
    pub fn store(mut self, store: Arc<dyn Backend>) -> Self {
        self.store = Some(store);
        self
    }

    /// Serves this service instead (its own settings or store).
    pub fn seckill(mut self, seckill: SecKill) -> Self {
        self.seckill = Some(seckill);
        self
    }

    /// `/metrics` renders this recorder, the one the service was built
    /// with; by default a recorder of its own.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// These access rules instead of [`test_security`].
    pub fn security(mut self, security: Security) -> Self {
        self.security = Some(security);
        self
    }

    /// Starts a trace for this share of the requests without a
    /// `traceparent` (`AppState::with_trace_ratio`); all by default.
    pub fn trace_ratio(mut self, ratio: f64) -> Self {
        self.trace_ratio = Some(ratio);
        self
    }

    /// Serves on a loopback port; the client presents [`ADMIN_TOKEN`].
    ///
    /// # Panics
    /// Without a store or a service to serve.
    pub async fn start(self) -> TestServer {
        let seckill = match (self.seckill, self.store) {
            (Some(seckill), _) => seckill,
            (None, Some(store)) => SecKill::builder(store)
                .build()
                .expect("default engine settings"),
            (None, None) => panic!("a TestServer needs a store or a service"),
        };
        let metrics = self.metrics.unwrap_or_else(Metrics::isolated);
        let mut state = AppState::new(seckill.clone(), metrics)
            .with_security(self.security.unwrap_or_else(test_security));
        if let Some(ratio) = self.trace_ratio {
            state = state.with_trace_ratio(ratio);
        }
        TestServer::serve(seckill, state).await
    }
}

impl TestServer {
    /// A builder: say what to serve (a store or a service), and what
    /// differs from the defaults.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    async fn serve(seckill: SecKill, state: AppState) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a port on loopback");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = seckill_server::serve(listener, None, state, async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(serving);
        // The token on every request, so the suite's raw requests reach the
        // admin routes as an operator's would; the tests of the token itself
        // send their requests from a client without it.
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {ADMIN_TOKEN}")
                .parse()
                .expect("a header value"),
        );
        let http = reqwest::Client::builder()
            .timeout(StdDuration::from_secs(20))
            .default_headers(headers)
            .build()
            .expect("build client");
        let client = Client::with_http(base, http).with_admin_token(ADMIN_TOKEN);
        Self {
            client,
            seckill,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        self.client.url(path)
    }

    /// `POST /admin/promotions/`; panics unless it is 201.
    pub async fn create(&self, request: &PromotionRequest) -> PromotionDto {
        self.client
            .create_promotion(request)
            .await
            .unwrap_or_else(|error| panic!("{error}: {request:?}"))
    }

    /// An open promotion with `coupons` coupons.
    pub async fn create_open(&self, coupons: u64) -> PromotionDto {
        self.create(&promotion_request(
            coupons,
            Utc::now() - Duration::minutes(1),
            Some(Utc::now() + Duration::hours(1)),
        ))
        .await
    }

    /// `POST /command/coupons/` for this customer: the answer as sent, for
    /// checks of its status, headers and body.
    pub async fn grab(&self, promotion: &PromotionDto, customer: &str) -> Response {
        self.client
            .grab_request(promotion.promotion_id, customer)
            .send()
            .await
            .expect("grab request")
    }

    /// `POST /command/coupons/`, which must win: the coupon.
    pub async fn won(&self, promotion: &PromotionDto, customer: &str) -> CouponDto {
        match self.client.grab(promotion.promotion_id, customer).await {
            Ok(Grab::Won(coupon)) => coupon,
            other => panic!("{customer} should win: {other:?}"),
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.client
            .http()
            .get(self.url(path))
            .send()
            .await
            .expect("GET request")
    }

    /// Signals shutdown and waits until `serve` returns.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task panicked")
                .expect("server failed");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Polls `condition` until it holds; fails the test after 20 s. Tests wait
/// on the engine's own counters rather than sleeping a guessed time.
pub async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + StdDuration::from_secs(20);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
}

/// An RFC 3339 time, as a client would send it.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A create/update request named "Test sale" at a discount of 0.8. Times are
/// cut to whole milliseconds, as a client would send them.
pub fn promotion_request(
    coupons: u64,
    publish: DateTime<Utc>,
    finish: Option<DateTime<Utc>>,
) -> PromotionRequest {
    PromotionRequest {
        number_of_coupons: coupons,
        discount: 0.8,
        publish_time: publish.trunc_subsecs(3),
        finish_time: finish.map(|finish| finish.trunc_subsecs(3)),
        name: Some("Test sale".into()),
        draw_closes_at: None,
    }
}

/// Checks that `response` is a problem of `status` and type `slug`, and
/// returns its body.
pub async fn assert_problem(response: Response, status: StatusCode, slug: &str) -> Value {
    assert_eq!(response.status(), status, "status of a `{slug}` problem");
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        content_type, PROBLEM_JSON,
        "content type of a `{slug}` problem"
    );
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["type"], format!("/problems/{slug}"), "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}
