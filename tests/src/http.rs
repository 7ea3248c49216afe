//! The HTTP end-to-end suite: the real server (`seckill_examples::server::serve`)
//! on a port of 127.0.0.1, driven over HTTP with reqwest, written once and run
//! against every backend through [`http_suite!`].
//!
//! Every error answer is checked for `application/problem+json`, its status
//! and its problem type; no test may provoke a 5xx other than the deliberate
//! 503 of a shutting-down server.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use futures::StreamExt;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Response, StatusCode};
use seckill_app::{Backend, EngineConfig, SecKill};
use seckill_examples::server::{self, CouponDto, PromotionDto, StatusDto, PROBLEM_JSON};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::faults::{FaultPlan, FaultyStore};
use crate::fixture::Fixture;

/// Runs every HTTP test against one backend. `$fixture` is an expression
/// that yields a fresh [`Fixture`] (it is evaluated once per test).
#[macro_export]
macro_rules! http_suite {
    ($fixture:expr) => {
        $crate::http_suite!(@tests $fixture;
            creates_updates_grabs_and_queries_over_http,
            each_losing_grab_has_its_own_status_and_problem_type,
            malformed_requests_are_answered_with_problems_not_5xx,
            invalid_values_are_422_and_rule_breaks_409,
            the_event_stream_delivers_an_update_after_a_grab,
            metrics_count_grabs_by_outcome,
            probes_openapi_and_pages_answer,
            graceful_shutdown_answers_queued_grabs,
            the_load_generator_verifies_a_small_flash_sale,
            unavailable_answers_are_503_with_retry_after_never_500,
        );
    };
    (@tests $fixture:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fixture;
                $crate::http::$name(fixture).await;
            }
        )+
    };
}

/// A server running `serve()` on 127.0.0.1:0, and a client for it.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client with a timeout, so a hung server fails the test.
    pub client: reqwest::Client,
    /// The service the server runs, for checks behind the API's back.
    pub seckill: SecKill,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server over the fixture's store.
    pub async fn start(fixture: &impl Fixture) -> Self {
        Self::over(fixture.store().await).await
    }

    /// Starts a server over `store`.
    pub async fn over(store: Arc<dyn Backend>) -> Self {
        Self::serving(
            SecKill::builder(store)
                .build()
                .expect("default engine settings"),
        )
        .await
    }

    /// Starts a server for `seckill`, with a metrics recorder of its own.
    pub async fn serving(seckill: SecKill) -> Self {
        Self::serving_with(seckill, server::Metrics::isolated()).await
    }

    /// Starts a server for `seckill` whose `/metrics` renders `metrics`.
    pub async fn serving_with(seckill: SecKill, metrics: server::Metrics) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a port on loopback");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = server::serve(listener, seckill.clone(), metrics, async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(serving);
        let client = reqwest::Client::builder()
            .timeout(StdDuration::from_secs(20))
            .build()
            .expect("build client");
        Self {
            base,
            client,
            seckill,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /admin/promotions/` with `body`; panics unless it is 201.
    pub async fn create(&self, body: Value) -> PromotionDto {
        let response = self
            .client
            .post(self.url("/admin/promotions/"))
            .json(&body)
            .send()
            .await
            .expect("create request");
        assert_eq!(response.status(), StatusCode::CREATED, "{body}");
        response.json().await.expect("promotion JSON")
    }

    /// An open promotion with `coupons` coupons.
    pub async fn create_open(&self, coupons: u64) -> PromotionDto {
        self.create(promotion_body(
            coupons,
            Utc::now() - Duration::minutes(1),
            Some(Utc::now() + Duration::hours(1)),
        ))
        .await
    }

    /// `POST /command/coupons/` for this customer.
    pub async fn grab(&self, promotion: &PromotionDto, customer: &str) -> Response {
        self.client
            .post(self.url("/command/coupons/"))
            .json(&json!({ "promotionId": promotion.promotion_id, "customerId": customer }))
            .send()
            .await
            .expect("grab request")
    }

    /// `POST /command/coupons/`, which must win: the coupon.
    pub async fn won(&self, promotion: &PromotionDto, customer: &str) -> CouponDto {
        let response = self.grab(promotion, customer).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{customer} should win"
        );
        response.json().await.expect("coupon JSON")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.client
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
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A create/update body.
pub fn promotion_body(
    coupons: u64,
    publish: DateTime<Utc>,
    finish: Option<DateTime<Utc>>,
) -> Value {
    let mut body = json!({
        "numberOfCoupons": coupons,
        "discount": 0.8,
        "publishTime": rfc3339(publish),
        "name": "Test sale",
    });
    if let Some(finish) = finish {
        body["finishTime"] = json!(rfc3339(finish));
    }
    body
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

/// Create, list, update (finish time defaults to a day), grab, query, cancel.
pub async fn creates_updates_grabs_and_queries_over_http(fixture: impl Fixture) {
    let server = TestServer::start(&fixture).await;
    let publish = Utc::now() + Duration::hours(1);

    // Created upcoming, without a finish time: it runs for a day.
    let upcoming = server.create(promotion_body(5, publish, None)).await;
    assert_eq!(upcoming.status, StatusDto::Upcoming);
    assert_eq!(upcoming.id, upcoming.promotion_id);
    assert_eq!(
        upcoming.finish_time - upcoming.publish_time,
        Duration::days(1)
    );
    assert_eq!(upcoming.remaining, 5);

    // The path without the trailing slash works too, and answers Location.
    let response = server
        .client
        .post(server.url("/admin/promotions"))
        .json(&promotion_body(3, Utc::now() - Duration::minutes(1), None))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let open: PromotionDto = response.json().await.unwrap();
    assert_eq!(location, format!("/query/promotions/{}", open.promotion_id));
    assert_eq!(open.status, StatusDto::Active);

    // Both are listed, soonest first, with either spelling of the path.
    for path in ["/query/promotions", "/query/promotions/"] {
        let listed: Vec<PromotionDto> = server.get(path).await.json().await.unwrap();
        let ids: Vec<_> = listed.iter().map(|p| p.promotion_id).collect();
        assert_eq!(
            ids,
            vec![open.promotion_id, upcoming.promotion_id],
            "{path}"
        );
    }

    // The upcoming one can still change.
    let updated: PromotionDto = server
        .client
        .put(server.url(&format!("/admin/promotions/{}", upcoming.promotion_id)))
        .json(&json!({
            "numberOfCoupons": 7,
            "discount": 0.5,
            "publishTime": rfc3339(publish),
            "finishTime": rfc3339(publish + Duration::hours(2)),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated.number_of_coupons, 7);
    assert_eq!(updated.discount, 0.5);
    assert_eq!(
        updated.finish_time - updated.publish_time,
        Duration::hours(2)
    );
    assert_eq!(updated.name, None, "an update replaces the whole terms");

    // Grab: 201 with the durable coupon, visible in both query endpoints.
    let response = server.grab(&open, "alice").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let coupon: CouponDto = response.json().await.unwrap();
    assert_eq!((coupon.number, coupon.customer_id.as_str()), (1, "alice"));
    assert_eq!(coupon.promotion_id, open.promotion_id);
    let held: Vec<CouponDto> = server
        .get("/query/coupons/alice")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(held, vec![coupon]);
    let strangers: Vec<CouponDto> = server
        .get("/query/coupons/nobody")
        .await
        .json()
        .await
        .unwrap();
    assert!(strangers.is_empty());
    let now: PromotionDto = server
        .get(&format!("/query/promotions/{}", open.promotion_id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((now.remaining, now.granted), (2, 1));

    // Cancel: the promotion ends, and grabs say so.
    let response = server
        .client
        .post(server.url(&format!("/admin/promotions/{}/cancel", open.promotion_id)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cancelled: PromotionDto = response.json().await.unwrap();
    assert_eq!(cancelled.status, StatusDto::Cancelled);
    assert_problem(
        server.grab(&open, "bob").await,
        StatusCode::FORBIDDEN,
        "ended",
    )
    .await;
    let listed: Vec<PromotionDto> = server.get("/query/promotions").await.json().await.unwrap();
    assert_eq!(listed.len(), 1, "a cancelled promotion is no longer active");
}

/// Not started 425, ended 403, sold out 410, already grabbed 409 with the
/// coupon, unknown promotion 404: distinct codes and types.
pub async fn each_losing_grab_has_its_own_status_and_problem_type(fixture: impl Fixture) {
    let server = TestServer::start(&fixture).await;

    let later = Utc::now() + Duration::hours(3);
    let upcoming = server.create(promotion_body(1, later, None)).await;
    let response = server.grab(&upcoming, "alice").await;
    assert!(
        response.headers().contains_key("retry-after"),
        "not-started says when to come back"
    );
    let body = assert_problem(response, StatusCode::TOO_EARLY, "not-started").await;
    assert_eq!(body["publishTime"], json!(upcoming.publish_time));
    assert_eq!(body["promotionId"], json!(upcoming.promotion_id));

    // A promotion can no longer be created already over, so this one runs
    // for a moment and the test waits it out (the server's real clock).
    let finish = Utc::now() + Duration::milliseconds(300);
    let past = server
        .create(promotion_body(
            1,
            Utc::now() - Duration::hours(1),
            Some(finish),
        ))
        .await;
    while Utc::now() <= finish {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let body = assert_problem(
        server.grab(&past, "alice").await,
        StatusCode::FORBIDDEN,
        "ended",
    )
    .await;
    assert_eq!(body["finishedAt"], json!(past.finish_time));

    let open = server.create_open(1).await;
    server.won(&open, "alice").await;
    let body = assert_problem(
        server.grab(&open, "alice").await,
        StatusCode::CONFLICT,
        "already-grabbed",
    )
    .await;
    let coupon: CouponDto = serde_json::from_value(body["coupon"].clone()).expect("coupon member");
    assert_eq!((coupon.number, coupon.customer_id.as_str()), (1, "alice"));
    assert_problem(
        server.grab(&open, "bob").await,
        StatusCode::GONE,
        "sold-out",
    )
    .await;

    let unknown = PromotionDto {
        promotion_id: uuid::Uuid::new_v4(),
        ..open.clone()
    };
    assert_problem(
        server.grab(&unknown, "bob").await,
        StatusCode::NOT_FOUND,
        "unknown-promotion",
    )
    .await;
    assert_problem(
        server
            .get(&format!("/query/promotions/{}", unknown.promotion_id))
            .await,
        StatusCode::NOT_FOUND,
        "unknown-promotion",
    )
    .await;
    assert_problem(
        server
            .get(&format!(
                "/query/promotions/{}/events",
                unknown.promotion_id
            ))
            .await,
        StatusCode::NOT_FOUND,
        "unknown-promotion",
    )
    .await;
}

/// Broken requests: 400 for what does not parse, 415 for the wrong media
/// type, 413 for oversized bodies, problem+json 404/405 for unknown routes.
pub async fn malformed_requests_are_answered_with_problems_not_5xx(fixture: impl Fixture) {
    let server = TestServer::start(&fixture).await;
    let open = server.create_open(10).await;
    let grab_url = server.url("/command/coupons/");
    let post_raw = |url: String, content_type: Option<&'static str>, body: String| {
        let mut request = server.client.post(url).body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        request.send()
    };
    let json_type = Some("application/json");

    let cases: Vec<(&str, Response, StatusCode, &str)> = vec![
        (
            "truncated JSON",
            post_raw(grab_url.clone(), json_type, "{\"promotionId\":".into())
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "wrong content type",
            post_raw(grab_url.clone(), Some("text/plain"), "{}".into())
                .await
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "no content type",
            post_raw(grab_url.clone(), None, "{}".into()).await.unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
        (
            "oversized body",
            post_raw(
                grab_url.clone(),
                json_type,
                format!("{{\"customerId\":\"{}\"}}", "x".repeat(20_000)),
            )
            .await
            .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
        ),
        (
            "unknown field",
            post_raw(
                grab_url.clone(),
                json_type,
                json!({"promotionId": open.promotion_id, "customerId": "a", "coupons": 2})
                    .to_string(),
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "missing field",
            post_raw(
                grab_url.clone(),
                json_type,
                json!({"customerId": "a"}).to_string(),
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "promotion id in the body is not a UUID",
            post_raw(
                grab_url.clone(),
                json_type,
                json!({"promotionId": "42", "customerId": "a"}).to_string(),
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "time is not RFC 3339",
            post_raw(
                server.url("/admin/promotions/"),
                json_type,
                json!({"numberOfCoupons": 1, "discount": 0.5, "publishTime": "tomorrow"})
                    .to_string(),
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "negative coupon count is not a count at all",
            post_raw(
                server.url("/admin/promotions/"),
                json_type,
                json!({"numberOfCoupons": -1, "discount": 0.5, "publishTime": rfc3339(Utc::now())})
                    .to_string(),
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "fractional coupon count is not a count either",
            post_raw(
                server.url("/admin/promotions/"),
                json_type,
                json!({"numberOfCoupons": 2.5, "discount": 0.5, "publishTime": rfc3339(Utc::now())})
                    .to_string(),
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "bad UUID in a query path",
            server.get("/query/promotions/not-a-uuid").await,
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "bad UUID in the events path",
            server.get("/query/promotions/not-a-uuid/events").await,
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "bad UUID in an admin path",
            server
                .client
                .put(server.url("/admin/promotions/not-a-uuid"))
                .json(&promotion_body(1, Utc::now(), None))
                .send()
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "bad UUID in a cancel path",
            post_raw(
                server.url("/admin/promotions/nope/cancel"),
                None,
                String::new(),
            )
            .await
            .unwrap(),
            StatusCode::BAD_REQUEST,
            "malformed-request",
        ),
        (
            "unknown path",
            server.get("/query/nothing-here").await,
            StatusCode::NOT_FOUND,
            "not-found",
        ),
        (
            "wrong method",
            server.client.delete(grab_url.clone()).send().await.unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        ),
    ];
    for (case, response, status, slug) in cases {
        assert!(
            !response.status().is_server_error(),
            "{case}: {}",
            response.status()
        );
        let body = assert_problem(response, status, slug).await;
        assert!(
            !body["detail"].as_str().unwrap_or_default().is_empty(),
            "{case}"
        );
    }
    // Nothing above reached the promotion.
    let now: PromotionDto = server
        .get(&format!("/query/promotions/{}", open.promotion_id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now.remaining, 10);
}

/// Values that parse but break a rule are 422; admin commands against a
/// promotion's state are 409; updating an unknown promotion is 404.
pub async fn invalid_values_are_422_and_rule_breaks_409(fixture: impl Fixture) {
    let server = TestServer::start(&fixture).await;
    let now = Utc::now();
    let invalid_bodies = [
        json!({"numberOfCoupons": 0, "discount": 0.5, "publishTime": rfc3339(now)}),
        json!({"numberOfCoupons": 10_000_001u64, "discount": 0.5, "publishTime": rfc3339(now)}),
        json!({"numberOfCoupons": 5, "discount": 1.5, "publishTime": rfc3339(now)}),
        json!({"numberOfCoupons": 5, "discount": 0, "publishTime": rfc3339(now)}),
        json!({"numberOfCoupons": 5, "discount": 0.5, "publishTime": rfc3339(now), "finishTime": rfc3339(now - Duration::hours(1))}),
        json!({"numberOfCoupons": 5, "discount": 0.5, "publishTime": rfc3339(now), "name": ""}),
    ];
    for body in invalid_bodies {
        let response = server
            .client
            .post(server.url("/admin/promotions/"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid-value").await;
    }
    // A whole number written with a fraction part is still a count (as
    // JSON Schema and Jackson have it).
    let response = server
        .client
        .post(server.url("/admin/promotions/"))
        .json(&json!({"numberOfCoupons": 3.0, "discount": 0.5, "publishTime": rfc3339(now)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let counted: PromotionDto = response.json().await.unwrap();
    assert_eq!(counted.number_of_coupons, 3);
    server
        .client
        .post(server.url(&format!(
            "/admin/promotions/{}/cancel",
            counted.promotion_id
        )))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();

    // Times that parse but no sale could run on now.
    let year = Duration::days(365);
    let bad_schedules = [
        (
            "over already",
            now - Duration::hours(2),
            Some(now - Duration::hours(1)),
        ),
        ("far past", now - year * 50, None),
        ("far future", now + year * 50, None),
        ("opens too far ahead", now + Duration::days(367), None),
        ("runs too long", now, Some(now + year * 2)),
        (
            "from the far past to the future",
            now - year * 50,
            Some(now + Duration::hours(1)),
        ),
    ];
    for (case, publish, finish) in bad_schedules {
        let response = server
            .client
            .post(server.url("/admin/promotions/"))
            .json(&promotion_body(5, publish, finish))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}"
        );
        assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-schedule",
        )
        .await;
    }
    // The calendar's ends: no overflow computing the default finish time.
    for publish in [
        "9999-12-31T23:59:59Z",
        "+262142-12-31T23:59:59Z",
        "-262143-01-01T00:00:00Z",
    ] {
        let response = server
            .client
            .post(server.url("/admin/promotions/"))
            .json(&json!({"numberOfCoupons": 5, "discount": 0.5, "publishTime": publish}))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error(),
            "{publish}: {}",
            response.status()
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["type"].as_str().is_some(),
            "{publish}: a problem, got {body}"
        );
    }
    let listed: Vec<PromotionDto> = server.get("/query/promotions").await.json().await.unwrap();
    assert!(listed.is_empty(), "no invalid promotion was created");

    let open = server.create_open(2).await;
    for customer in ["", " padded", &"x".repeat(65)] {
        assert_problem(
            server.grab(&open, customer).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-value",
        )
        .await;
    }
    assert_problem(
        server
            .get(&format!("/query/coupons/{}", "x".repeat(65)))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-value",
    )
    .await;

    // An open promotion's terms are frozen.
    let response = server
        .client
        .put(server.url(&format!("/admin/promotions/{}", open.promotion_id)))
        .json(&promotion_body(9, Utc::now() + Duration::hours(1), None))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::CONFLICT, "already-started").await;

    // A finished one cannot be cancelled again.
    let cancel = format!("/admin/promotions/{}/cancel", open.promotion_id);
    assert_eq!(
        server
            .client
            .post(server.url(&cancel))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let response = server
        .client
        .post(server.url(&cancel))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::CONFLICT, "already-finished").await;

    let response = server
        .client
        .put(server.url(&format!("/admin/promotions/{}", uuid::Uuid::new_v4())))
        .json(&promotion_body(9, Utc::now() + Duration::hours(1), None))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::NOT_FOUND, "unknown-promotion").await;
}

/// One Server-Sent Event: its `event:` name and its `data:` parsed as JSON.
async fn next_event<S, B>(stream: &mut S, buffer: &mut String) -> (String, Value)
where
    S: futures::Stream<Item = reqwest::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let mut name = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim());
                }
            }
            if data.is_empty() {
                continue; // a keep-alive comment
            }
            return (
                name,
                serde_json::from_str(&data).expect("event data is JSON"),
            );
        }
        let chunk = tokio::time::timeout(StdDuration::from_secs(10), stream.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream stays open")
            .expect("the stream reads");
        buffer.push_str(std::str::from_utf8(chunk.as_ref()).expect("UTF-8 events"));
    }
}

/// The feed sends the state at once, then the state after a grab.
pub async fn the_event_stream_delivers_an_update_after_a_grab(fixture: impl Fixture) {
    let server = TestServer::start(&fixture).await;
    let open = server.create_open(3).await;
    let other = server.create_open(3).await;
    let response = server
        .get(&format!("/query/promotions/{}/events", open.promotion_id))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();

    let (name, first) = next_event(&mut stream, &mut buffer).await;
    assert_eq!(name, "promotion");
    assert_eq!(first["remaining"], 3);
    // Each event's data is a whole promotion, as /openapi.json says.
    let promotion: PromotionDto =
        serde_json::from_value(first.clone()).expect("event data is a PromotionDto");
    assert_eq!(promotion.promotion_id, open.promotion_id);

    // Another promotion's grab is not this feed's business.
    server.won(&other, "carol").await;
    server.won(&open, "alice").await;
    let (_, update) = next_event(&mut stream, &mut buffer).await;
    assert_eq!(update["promotionId"], json!(open.promotion_id));
    assert_eq!(update["remaining"], 2);

    // Two grabs in quick succession may arrive as one coalesced frame; the
    // feed must end at the sold-out state either way.
    server.won(&open, "bob").await;
    server.won(&open, "dave").await;
    let mut last = update;
    while last["remaining"] != 0 {
        last = next_event(&mut stream, &mut buffer).await.1;
    }
    assert_eq!(last["status"], "sold_out");
}

/// `/metrics` counts grabs by outcome and exposes the engine's counters.
pub async fn metrics_count_grabs_by_outcome(fixture: impl Fixture) {
    // The recorder is this server's own, not the process's global one (other
    // tests serve and grab concurrently), and the service is built inside it
    // so the engine's series are there too.
    let metrics = server::Metrics::isolated();
    let store = fixture.store().await;
    let seckill = metrics
        .recording(|| SecKill::builder(store).build())
        .expect("default engine settings");
    let server = TestServer::serving_with(seckill, metrics).await;
    let open = server.create_open(1).await;
    server.won(&open, "alice").await;
    assert_eq!(
        server.grab(&open, "alice").await.status(),
        StatusCode::CONFLICT
    );
    assert_eq!(server.grab(&open, "bob").await.status(), StatusCode::GONE);
    assert_eq!(server.grab(&open, "carol").await.status(), StatusCode::GONE);

    let response = server.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    for line in [
        "seckill_grabs_total{outcome=\"won\"} 1",
        "seckill_grabs_total{outcome=\"already_grabbed\"} 1",
        "seckill_grabs_total{outcome=\"sold_out\"} 2",
        "seckill_grab_duration_seconds_bucket{le=\"+Inf\"} 4",
        "seckill_grab_duration_seconds_count 4",
        "# TYPE seckill_grab_duration_seconds histogram",
        "# TYPE seckill_queue_depth gauge",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    let commits = text
        .lines()
        .find_map(|l| l.strip_prefix("seckill_commits_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("seckill_commits_total");
    assert!(commits >= 2, "create and grab committed: {commits}");
}

/// `/healthz`, `/readyz`, `/openapi.json`, `/docs` and `/` answer.
pub async fn probes_openapi_and_pages_answer(fixture: impl Fixture) {
    let server = TestServer::start(&fixture).await;
    assert_eq!(server.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(server.get("/readyz").await.status(), StatusCode::OK);

    let document: Value = server
        .get("/openapi.json")
        .await
        .json()
        .await
        .expect("OpenAPI is JSON");
    let paths: HashSet<&str> = document["paths"]
        .as_object()
        .expect("paths object")
        .keys()
        .map(String::as_str)
        .collect();
    for path in [
        "/admin/promotions/",
        "/admin/promotions/{promotionId}",
        "/admin/promotions/{promotionId}/cancel",
        "/command/coupons/",
        "/query/coupons/{customerId}",
        "/query/promotions",
        "/query/promotions/{promotionId}",
        "/query/promotions/{promotionId}/events",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains(path), "OpenAPI lacks {path}: {paths:?}");
    }
    assert!(document["components"]["schemas"]["Problem"].is_object());
    // The document states the value rules the server enforces, so clients
    // and fuzzers know them without reading docs/api.md.
    let schemas = &document["components"]["schemas"];
    let promotion = &schemas["PromotionRequest"]["properties"];
    assert_eq!(promotion["numberOfCoupons"]["minimum"], json!(1));
    assert_eq!(promotion["numberOfCoupons"]["maximum"], json!(10_000_000));
    assert_eq!(
        promotion["discount"]["exclusiveMinimum"].as_f64(),
        Some(0.0)
    );
    assert_eq!(promotion["discount"]["maximum"].as_f64(), Some(1.0));
    let grab = &schemas["GrabRequest"]["properties"];
    assert_eq!(grab["promotionId"]["format"], json!("uuid"));
    assert_eq!(grab["customerId"]["maxLength"], json!(64));
    assert!(grab["customerId"]["pattern"].is_string());
    let promotion_path = &document["paths"]["/query/promotions/{promotionId}"]["get"];
    assert_eq!(
        promotion_path["parameters"][0]["schema"]["format"],
        json!("uuid")
    );

    for page in ["/", "/docs"] {
        let response = server.get(page).await;
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        assert!(response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(response.text().await.unwrap().contains("<html"), "{page}");
    }
}

/// Grabs held in the queue by a stalled store when shutdown starts are all
/// answered (none is cut off), the server waits for them, every coupon
/// answered is stored, and afterwards the service refuses new grabs.
pub async fn graceful_shutdown_answers_queued_grabs(fixture: impl Fixture) {
    let store = fixture.store().await;
    let stalling = Arc::new(FaultyStore::new(store.clone(), FaultPlan::default()));
    // One grab per commit, so "all queued" is observable: one in the stalled
    // append, the other 79 in the queue.
    let seckill = SecKill::builder(stalling.clone())
        .config(EngineConfig {
            max_batch: 1,
            ..EngineConfig::default()
        })
        .build()
        .expect("valid engine settings");
    let mut server = TestServer::serving(seckill).await;
    let open = server.create_open(50).await;
    let stop = server.stop.take().expect("not stopped yet");
    stalling.pause();

    let (server_ref, open_ref) = (&server, &open);
    let grabs = futures::future::join_all((0..80).map(|i| async move {
        let response = server_ref.grab(open_ref, &format!("customer-{i}")).await;
        (i, std::time::Instant::now(), response)
    }));
    let shutdown = async {
        // Shutdown starts only once every grab is queued behind the stalled commit.
        wait_until("the grabs queue up", || {
            server_ref.seckill.stats().queue_depth >= 79
        })
        .await;
        let _ = stop.send(());
        tokio::time::sleep(StdDuration::from_millis(200)).await;
        let task = server_ref.task.as_ref().expect("server task");
        assert!(!task.is_finished(), "the server must wait for queued grabs");
        stalling.resume();
        std::time::Instant::now()
    };
    let (answers, resumed_at) = tokio::join!(grabs, shutdown);

    let mut winners = Vec::new();
    for (i, answered_at, response) in answers {
        assert!(
            answered_at >= resumed_at,
            "grab {i} was answered while the store stalled"
        );
        match response.status() {
            StatusCode::CREATED => winners.push(response.json::<CouponDto>().await.unwrap()),
            StatusCode::GONE => {}
            other => panic!("grab {i} got {other} during shutdown"),
        }
    }
    assert_eq!(winners.len(), 50);
    server.stop().await;

    // Every acknowledged coupon is stored; the stopped service takes no grabs.
    for coupon in &winners {
        let customer = seckill_domain::CustomerId::parse(coupon.customer_id.clone()).unwrap();
        let held = store.coupons_of(&customer).await.unwrap();
        assert_eq!(held.len(), 1, "{} holds {held:?}", coupon.customer_id);
        assert_eq!(held[0].number, coupon.number);
    }
    let late = server
        .seckill
        .grab(
            seckill_domain::PromotionId::from_uuid(open.promotion_id),
            seckill_domain::CustomerId::parse("late").unwrap(),
        )
        .await;
    assert!(
        matches!(late, Err(seckill_app::SecKillError::ShuttingDown)),
        "{late:?}"
    );
}

/// The load generator races 300 customers for 40 coupons and finds every
/// promise kept; a second run on the same, now sold-out, promotion finds
/// zero winners expected and zero won.
pub async fn the_load_generator_verifies_a_small_flash_sale(fixture: impl Fixture) {
    use seckill_examples::loadgen::{self, LoadConfig};

    let server = TestServer::start(&fixture).await;
    let mut config = LoadConfig::new(server.base.clone(), 300, 40);
    config.concurrency = 16;
    let report = loadgen::run(&config).await.expect("load generator runs");
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!((report.won, report.sold_out), (40, 260), "{report}");
    assert_eq!(report.latency.len(), 300);

    let mut again = LoadConfig::new(server.base.clone(), 20, 0);
    again.promotion = Some(report.promotion_id);
    let report = loadgen::run(&again).await.expect("second run");
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!((report.won, report.sold_out), (0, 20), "{report}");
}

/// A failing store and a full queue are 503s with `Retry-After`, each with
/// its own problem type; neither is ever a 500.
pub async fn unavailable_answers_are_503_with_retry_after_never_500(fixture: impl Fixture) {
    let store = fixture.store().await;
    // Every append after the promotion's creation fails.
    let failing = Arc::new(FaultyStore::new(
        store,
        FaultPlan {
            fail_every: 1,
            ..FaultPlan::default()
        },
    ));
    let seckill = SecKill::builder(failing.clone())
        .config(EngineConfig {
            queue_capacity: 1,
            ..EngineConfig::default()
        })
        .build()
        .expect("valid engine settings");
    let server = TestServer::serving(seckill).await;
    let open = server.create_open(10).await;

    let response = server.grab(&open, "alice").await;
    assert_eq!(response.headers()["retry-after"], "1");
    let body = assert_problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "storage-unavailable",
    )
    .await;
    assert!(
        !body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("injected"),
        "the store's own message stays in the log: {body}"
    );

    // A stalled store holds one grab in the writer and one in the queue of
    // one; the rest are turned away at once.
    failing.pause();
    let server_ref = &server;
    let open_ref = &open;
    let grabs = futures::future::join_all(
        (0..20).map(|i| async move { server_ref.grab(open_ref, &format!("customer-{i}")).await }),
    );
    let resume = async {
        // At most two grabs get past the queue of one (one taken into the
        // stalled batch, one waiting); resume once the others were refused.
        wait_until("the queue overflows", || {
            server_ref.seckill.stats().overloaded >= 17
        })
        .await;
        tokio::time::sleep(StdDuration::from_millis(50)).await;
        failing.resume();
    };
    let (responses, ()) = tokio::join!(grabs, resume);
    let mut overloaded = 0;
    for response in responses {
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], 503, "{body}");
        match body["type"].as_str() {
            Some("/problems/overloaded") => overloaded += 1,
            Some("/problems/storage-unavailable") => {}
            other => panic!("unexpected problem {other:?}"),
        }
    }
    assert!(overloaded >= 17, "only {overloaded} of 20 were turned away");
}
