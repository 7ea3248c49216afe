//! Running the server: `/metrics`, the probes, the OpenAPI document and the
//! pages, and a graceful shutdown that answers every queued grab.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use seckill_app::{EngineConfig, SecKill};
use seckill_client::api::CouponDto;
use serde_json::{json, Value};

use crate::server::{wait_until, TestServer};
use seckill_testkit::faults::{FaultPlan, FaultyStore};
use seckill_testkit::Fixture;
/// `/metrics` counts grabs by outcome and exposes the engine's counters.
pub(crate) async fn metrics_count_grabs_by_outcome(fixture: impl Fixture) {
    // The recorder is this server's own, not the process's global one (other
    // tests serve and grab concurrently), and the service is built inside it
    // so the engine's series are there too.
    let metrics = seckill_server::Metrics::isolated();
    let store = fixture.store().await;
    let seckill = metrics
        .recording(|| SecKill::builder(store).build())
        .expect("default engine settings");
    let server = TestServer::builder()
        .seckill(seckill)
        .metrics(metrics)
        .start()
        .await;
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
pub(crate) async fn probes_openapi_and_pages_answer(fixture: impl Fixture) {
    let server = TestServer::builder()
        .store(fixture.store().await)
        .start()
        .await;
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
pub(crate) async fn graceful_shutdown_answers_queued_grabs(fixture: impl Fixture) {
    let store = fixture.store().await;
    let stalling = Arc::new(FaultyStore::new(store.clone(), FaultPlan::default()));
    // One grab per batch, so "all queued" is observable: one in the stalled
    // append, one decided ahead of it, the other 78 in the queue.
    let seckill = SecKill::builder(stalling.clone())
        .config(EngineConfig::default().with_max_batch(1))
        .build()
        .expect("valid engine settings");
    let mut server = TestServer::builder().seckill(seckill).start().await;
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
            server_ref.seckill.stats().queue_depth >= 78
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
