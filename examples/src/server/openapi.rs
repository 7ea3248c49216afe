//! The OpenAPI 3.1 document, generated from the handlers' annotations so it
//! cannot drift from the routes' status codes and bodies.

use axum::Json;
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

/// `GET /openapi.json`
pub(super) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
