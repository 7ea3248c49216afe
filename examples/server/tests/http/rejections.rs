//! Requests the server refuses: what does not parse (400, 413, 415, 404,
//! 405), values that break a rule (422, 409), and a store or queue that
//! cannot take a grab (503 with `Retry-After`, never 500).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Response, StatusCode};
use seckill_app::{EngineConfig, SecKill};
use seckill_client::api::PromotionDto;
use seckill_client::Grab;
use serde_json::{json, Value};

use crate::server::{assert_problem, promotion_request, rfc3339, wait_until, TestServer};
use seckill_testkit::faults::{FaultPlan, FaultyStore};
use seckill_testkit::Fixture;
/// Broken requests: 400 for what does not parse, 415 for the wrong media
/// type, 413 for oversized bodies, problem+json 404/405 for unknown routes.
pub(crate) async fn malformed_requests_are_answered_with_problems_not_5xx(fixture: impl Fixture) {
    let server = TestServer::builder()
        .store(fixture.store().await)
        .start()
        .await;
    let open = server.create_open(10).await;
    let grab_url = server.url("/command/coupons/");
    let post_raw = |url: String, content_type: Option<&'static str>, body: String| {
        let mut request = server.client.http().post(url).body(body);
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
                .http()
                .put(server.url("/admin/promotions/not-a-uuid"))
                .json(&promotion_request(1, Utc::now(), None))
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
            server.client.http().delete(grab_url.clone()).send().await.unwrap(),
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
    let now = server.client.promotion(open.promotion_id).await.unwrap();
    assert_eq!(now.remaining, 10);
}

/// Values that parse but break a rule are 422; admin commands against a
/// promotion's state are 409; updating an unknown promotion is 404.
pub(crate) async fn invalid_values_are_422_and_rule_breaks_409(fixture: impl Fixture) {
    let server = TestServer::builder()
        .store(fixture.store().await)
        .start()
        .await;
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
            .http()
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
        .http()
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
        .http()
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
            .http()
            .post(server.url("/admin/promotions/"))
            .json(&promotion_request(5, publish, finish))
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
            .http()
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
    let listed = server.client.active_promotions().await.unwrap();
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
        .http()
        .put(server.url(&format!("/admin/promotions/{}", open.promotion_id)))
        .json(&promotion_request(9, Utc::now() + Duration::hours(1), None))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::CONFLICT, "already-started").await;

    // A finished one cannot be cancelled again.
    let cancel = format!("/admin/promotions/{}/cancel", open.promotion_id);
    assert_eq!(
        server
            .client
            .http()
            .post(server.url(&cancel))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let response = server
        .client
        .http()
        .post(server.url(&cancel))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::CONFLICT, "already-finished").await;

    let response = server
        .client
        .http()
        .put(server.url(&format!("/admin/promotions/{}", uuid::Uuid::new_v4())))
        .json(&promotion_request(9, Utc::now() + Duration::hours(1), None))
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::NOT_FOUND, "unknown-promotion").await;
}

/// A failing store and a full queue are 503s with `Retry-After`, each with
/// its own problem type; neither is ever a 500.
pub(crate) async fn unavailable_answers_are_503_with_retry_after_never_500(fixture: impl Fixture) {
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
        .config(
            EngineConfig::default()
                .with_queue_capacity(1)
                .with_max_batch(1),
        )
        .build()
        .expect("valid engine settings");
    let server = TestServer::builder().seckill(seckill).start().await;
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

    // A stalled store holds one grab in the stalled commit, one decided
    // ahead of it (batches of one) and one in the queue of one; the rest are
    // turned away at once.
    failing.pause();
    let server_ref = &server;
    let open_ref = &open;
    let grabs = futures::future::join_all(
        (0..20).map(|i| async move { server_ref.grab(open_ref, &format!("customer-{i}")).await }),
    );
    let resume = async {
        // At most three grabs get past the queue of one; resume once the
        // others were refused.
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

/// A commit still in flight when the engine stops waiting is a 503
/// `outcome-unknown` with `Retry-After`, never "failed"; once it lands, the
/// client's retry learns the coupon (409 `already-grabbed`), or wins it if
/// the late commit lost the race.
pub(crate) async fn a_lost_commit_answer_is_503_outcome_unknown_and_a_retry_learns_the_coupon(
    fixture: impl Fixture,
) {
    let late = Arc::new(FaultyStore::new(
        fixture.store().await,
        FaultPlan {
            land_late_every: 1,
            ..FaultPlan::default()
        },
    ));
    // Seconds, not milliseconds: every store call (the promotion's creation,
    // the late commit once resumed) runs under it on a possibly stalled
    // machine; the paused grab still times out, only later.
    let seckill = SecKill::builder(late.clone())
        .config(EngineConfig::default().with_store_timeout(StdDuration::from_secs(3)))
        .build()
        .expect("valid engine settings");
    let server = TestServer::builder().seckill(seckill).start().await;
    let open = server.create_open(10).await;
    late.pause();
    let response = server.grab(&open, "erin").await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, "outcome-unknown").await;
    late.resume();
    let mut answer = Grab::OutcomeUnknown { retry_after: None };
    for _ in 0..50 {
        answer = server.client.grab(open.promotion_id, "erin").await.unwrap();
        if !answer.is_unavailable() {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    // Either the late commit landed first (the retry learns its coupon), or
    // the retry's commit did and the late one met a conflict: one coupon.
    match answer {
        Grab::AlreadyGrabbed(coupon) | Grab::Won(coupon) => {
            assert_eq!((coupon.customer_id.as_str(), coupon.number), ("erin", 1));
        }
        other => panic!("expected erin's one coupon, got {other:?}"),
    }
    let held = server.client.coupons_of("erin").await.unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
}
