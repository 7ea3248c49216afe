//! The OpenAPI document against what it describes: the router (every
//! documented operation reaches its handler, and answers a status the
//! document lists) and the endpoint table of `docs/api.md`.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use chrono::{TimeZone, Utc};
use seckill_app::SecKill;
use seckill_memory::MemoryStore;
use serde_json::Value;
use tower::ServiceExt;
use utoipa::Modify;

use super::LiveExamples;
use crate::{app, AppState};

/// The endpoint table of `docs/api.md`.
const API_MD: &str = include_str!("../../../../docs/api.md");

/// The document as built, without the live example times, as JSON.
fn document() -> Value {
    serde_json::to_value(crate::openapi()).expect("the document serialises")
}

/// Admin routes open, so every documented request reaches its handler
/// (the admin token has tests of its own, in `security_tests`).
fn router() -> Router {
    app(
        AppState::new(SecKill::new(MemoryStore::new()), crate::Metrics::isolated())
            .with_security(crate::Security::new(crate::AdminAccess::Open)),
    )
}

/// Every (method, path) of the document, with the statuses it lists.
fn operations(document: &Value) -> BTreeMap<(String, String), BTreeSet<u16>> {
    let mut operations = BTreeMap::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let statuses = operation["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .map(|status| status.parse().expect("numeric status"))
                .collect();
            operations.insert((method.to_uppercase(), path.clone()), statuses);
        }
    }
    operations
}

/// Sends `method path` (with its parameters filled in) and an empty body;
/// returns the status and, for a problem, its type.
async fn answer(router: &Router, method: &str, path: &str) -> (StatusCode, String) {
    let uri = path
        .replace("{promotionId}", "67e55044-10b1-426f-9247-bb680e5fe0c8")
        .replace("{customerId}", "alice");
    let request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("answered");
    let status = response.status();
    let is_problem = response
        .headers()
        .get("content-type")
        .is_some_and(|value| value == seckill_client::api::PROBLEM_JSON);
    let problem_type = if is_problem {
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .expect("body");
        let problem: Value = serde_json::from_slice(&body).expect("problem JSON");
        problem["type"].as_str().unwrap_or_default().to_owned()
    } else {
        String::new()
    };
    (status, problem_type)
}

/// The router's fallbacks answer these; a handler never does.
const FALLBACKS: [&str; 2] = ["/problems/not-found", "/problems/method-not-allowed"];

#[tokio::test]
async fn every_documented_operation_reaches_its_handler_and_answers_a_listed_status() {
    let router = router();
    let operations = operations(&document());
    assert!(operations.len() >= 11, "{operations:?}");
    for ((method, path), statuses) in &operations {
        let (status, problem_type) = answer(&router, method, path).await;
        assert!(
            !FALLBACKS.contains(&problem_type.as_str()),
            "{method} {path} fell through to {problem_type}"
        );
        assert!(
            statuses.contains(&status.as_u16()),
            "{method} {path} answered {status}, the document lists {statuses:?}"
        );
    }
}

#[tokio::test]
async fn collection_paths_answer_with_and_without_the_trailing_slash() {
    let router = router();
    for (method, path) in [
        ("POST", "/admin/promotions/"),
        ("POST", "/command/coupons/"),
        ("GET", "/query/promotions"),
    ] {
        let other = match path.strip_suffix('/') {
            Some(bare) => bare.to_owned(),
            None => format!("{path}/"),
        };
        let documented = answer(&router, method, path).await;
        let alias = answer(&router, method, &other).await;
        assert_eq!(documented, alias, "{method} {path} and {other}");
        assert!(!FALLBACKS.contains(&alias.1.as_str()), "{method} {other}");
    }
}

#[tokio::test]
async fn an_undocumented_path_falls_through_to_not_found() {
    let (status, problem_type) = answer(&router(), "GET", "/admin/promotion").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem_type, "/problems/not-found");
}

/// The rows of `docs/api.md`'s endpoint table: (method, path) and every
/// status code in the row, success first.
fn endpoint_table() -> BTreeMap<(String, String), BTreeSet<u16>> {
    let table = API_MD
        .split("## Endpoints")
        .nth(1)
        .expect("docs/api.md has an Endpoints section");
    table
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2) // the header and its rule
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let statuses = [cells[3], cells[4]]
                .iter()
                .flat_map(|cell| cell.split([',', ' ']))
                .filter_map(|word| word.parse::<u16>().ok())
                .filter(|code| (100..600).contains(code))
                .collect();
            let key = (cells[1].to_owned(), cells[2].trim_matches('`').to_owned());
            (key, statuses)
        })
        .collect()
}

#[tokio::test]
async fn the_endpoint_table_of_api_md_lists_what_the_document_and_router_say() {
    let table = endpoint_table();
    let documented = operations(&document());
    for (operation, statuses) in &documented {
        assert_eq!(
            table.get(operation),
            Some(statuses),
            "docs/api.md's row for {operation:?}"
        );
    }
    // The rest of the table are the pages and the document itself: served,
    // but not API operations.
    let router = router();
    for ((method, path), statuses) in table
        .iter()
        .filter(|(row, _)| !documented.contains_key(*row))
    {
        let (status, _) = answer(&router, method, path).await;
        assert_eq!(
            BTreeSet::from([status.as_u16()]),
            *statuses,
            "docs/api.md's row for {method} {path}"
        );
    }
}

#[test]
fn the_document_times_its_examples_links_a_created_promotion_and_shapes_the_stream() {
    let now = Utc.with_ymd_and_hms(2031, 5, 6, 7, 8, 9).unwrap();
    let mut document = crate::openapi();
    LiveExamples { now }.modify(&mut document);
    let document = serde_json::to_value(document).unwrap();
    let stream = &document["paths"]["/query/promotions/{promotionId}/events"]["get"]["responses"]
        ["200"]["content"]["text/event-stream"]["schema"];
    assert_eq!(
        stream["properties"]["data"]["contentSchema"]["$ref"],
        "#/components/schemas/PromotionDto"
    );
    let feed = &document["paths"]["/events"]["get"]["responses"]["200"]["content"]
        ["text/event-stream"]["schema"];
    assert_eq!(
        feed["properties"]["data"]["contentSchema"]["$ref"],
        "#/components/schemas/FeedEventDto"
    );
    assert_eq!(feed["properties"]["event"]["enum"][2], "CouponGrabbed");
    assert!(document["components"]["schemas"]["FeedEventDto"].is_object());
    let properties = &document["components"]["schemas"]["PromotionRequest"]["properties"];
    assert_eq!(properties["publishTime"]["example"], "2031-05-06T07:08:09Z");
    assert_eq!(properties["finishTime"]["example"], "2031-05-06T08:08:09Z");
    let links = &document["paths"]["/admin/promotions/"]["post"]["responses"]["201"]["links"];
    for (link, operation) in [
        ("GetPromotion", "promotion"),
        ("UpdatePromotion", "update_promotion"),
        ("CancelPromotion", "cancel_promotion"),
        ("GrabCoupon", "grab"),
    ] {
        assert_eq!(links[link]["operationId"], operation, "{link}");
        // Every link names an operation that exists.
        let exists = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|methods| methods.as_object().unwrap().values())
            .any(|op| op["operationId"] == operation);
        assert!(exists, "{operation}");
    }
    assert_eq!(
        links["GrabCoupon"]["requestBody"]["promotionId"],
        "$response.body#/promotionId"
    );
}

#[tokio::test]
async fn the_served_document_opens_its_example_promotion_now() {
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let response = router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let document: Value = serde_json::from_slice(&body).unwrap();
    let example = &document["components"]["schemas"]["PromotionRequest"]["properties"]
        ["publishTime"]["example"];
    let publish: chrono::DateTime<Utc> = example.as_str().unwrap().parse().unwrap();
    let age = Utc::now() - publish;
    assert!(
        (chrono::Duration::zero()..chrono::Duration::minutes(5)).contains(&age),
        "{publish}"
    );
}

#[tokio::test]
async fn docs_is_swagger_ui_over_the_served_document() {
    let router = router();
    let request = Request::get("/docs").body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(response.headers()["location"], "/docs/");

    for (path, expected) in [
        ("/docs/", "<html"),
        ("/docs/swagger-initializer.js", "\"url\": \"/openapi.json\""),
    ] {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains(expected), "{path}: {text}");
    }
}
