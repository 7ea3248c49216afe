//! The OpenAPI 3.1 document, generated from the handlers' annotations so it
//! cannot drift from the routes' status codes and bodies.

use axum::Json;
use chrono::{DateTime, Duration, SecondsFormat, SubsecRound, Utc};
use serde_json::json;
use utoipa::OpenApi;

use super::dto::{CouponDto, GrabRequest, PromotionDto, PromotionRequest, StatusDto};
use super::problem::ProblemDetails as Problem;
use super::{routes, sse};

/// The API description served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "SecKill",
        description = "Flash sales: a promotion offers a fixed number of coupons; customers race to grab one. \
                       Every error is application/problem+json; see docs/api.md."
    ),
    paths(
        routes::create_promotion,
        routes::update_promotion,
        routes::cancel_promotion,
        routes::grab,
        routes::coupons_of,
        routes::active_promotions,
        routes::promotion,
        sse::promotion_events,
        routes::metrics,
        routes::healthz,
        routes::readyz,
    ),
    components(schemas(PromotionRequest, GrabRequest, PromotionDto, CouponDto, StatusDto, Problem)),
    tags(
        (name = "admin", description = "Create, change and cancel promotions"),
        (name = "command", description = "Grab a coupon"),
        (name = "query", description = "Coupons and promotions, and their live feed"),
        (name = "operations", description = "Metrics and probes"),
    )
)]
pub struct ApiDoc;

/// `GET /openapi.json`: the generated document, plus what only the running
/// server knows (see [`with_live_examples_and_links`]).
pub(super) async fn document() -> Json<serde_json::Value> {
    let document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let document = with_event_stream_items(document);
    Json(with_live_examples_and_links(document, Utc::now()))
}

/// Describes what the event stream's 200 carries: events whose `data` is a
/// promotion as JSON. utoipa can only name a body type, which would say the
/// whole stream is one promotion; readers of `text/event-stream` (and
/// schemathesis) check each event, as `{event, id, data, retry}`.
fn with_event_stream_items(mut document: serde_json::Value) -> serde_json::Value {
    let content = &mut document["paths"]["/query/promotions/{promotionId}/events"]["get"]
        ["responses"]["200"]["content"]["text/event-stream"];
    if content.is_object() {
        content["schema"] = json!({
            "type": "object",
            "description": "One server-sent event: `promotion`, whose data is the promotion as JSON.",
            "required": ["data"],
            "properties": {
                "event": {"type": "string", "enum": ["promotion"]},
                "id": {"type": "string", "description": "The last event sequence number the promotion includes."},
                "retry": {"type": "integer", "minimum": 0},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": "#/components/schemas/PromotionDto"},
                },
            },
        });
    }
    document
}

/// Adds to the document:
/// - example times for a new promotion relative to `now` (opening now, for an
///   hour), so the example request creates a promotion, as a client or a
///   fuzzer trying the examples expects; a fixed time would be refused as
///   already over or too far ahead once the calendar moves on;
/// - OpenAPI links from a created promotion to the operations that take its
///   id, grabbing included, so a stateful client (schemathesis) follows a
///   real promotion instead of guessing ids that do not exist. Not to its
///   event stream: that response never ends, so a client following the link
///   would only wait for its own timeout.
fn with_live_examples_and_links(
    mut document: serde_json::Value,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let now = now.trunc_subsecs(0);
    let properties = &mut document["components"]["schemas"]["PromotionRequest"]["properties"];
    if properties.is_object() {
        properties["publishTime"]["example"] =
            json!(now.to_rfc3339_opts(SecondsFormat::Secs, true));
        properties["finishTime"]["example"] =
            json!((now + Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true));
    }
    let created = &mut document["paths"]["/admin/promotions/"]["post"]["responses"]["201"];
    if created.is_object() {
        let by_id = |operation: &str| {
            json!({
                "operationId": operation,
                "parameters": {"promotionId": "$response.body#/promotionId"},
            })
        };
        created["links"] = json!({
            "GetPromotion": by_id("promotion"),
            "UpdatePromotion": by_id("update_promotion"),
            "CancelPromotion": by_id("cancel_promotion"),
            "GrabCoupon": {
                "operationId": "grab",
                "requestBody": {
                    "promotionId": "$response.body#/promotionId",
                    "customerId": "fuzz-customer",
                },
            },
        });
    }
    document
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn examples_open_a_promotion_now_and_links_lead_from_it() {
        let now = Utc.with_ymd_and_hms(2031, 5, 6, 7, 8, 9).unwrap();
        let document = with_live_examples_and_links(
            with_event_stream_items(serde_json::to_value(ApiDoc::openapi()).unwrap()),
            now,
        );
        let stream = &document["paths"]["/query/promotions/{promotionId}/events"]["get"]
            ["responses"]["200"]["content"]["text/event-stream"]["schema"];
        assert_eq!(
            stream["properties"]["data"]["contentSchema"]["$ref"],
            "#/components/schemas/PromotionDto"
        );
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
                .any(|methods| {
                    methods
                        .as_object()
                        .unwrap()
                        .values()
                        .any(|op| op["operationId"] == operation)
                });
            assert!(exists, "{operation}");
        }
    }
}
