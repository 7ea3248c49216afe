//! The handlers: one per endpoint of the original's API (admin, command,
//! query), plus the operational ones (metrics, health, OpenAPI).
//!
//! Each handler parses its input into domain values, calls [`SecKill`]
//! once, and maps the answer to a DTO or a [`Problem`].
//!
//! [`SecKill`]: seckill_app::SecKill

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use seckill_domain::{CustomerId, PromotionId};

use super::customer_auth::Caller;
use super::extract::{ApiJson, ApiPath};
use super::metrics::GrabOutcome;
use super::openapi::answers::{
    AdminDisabled, AdminUnauthorized, BadRequest, Conflict, CustomerUnauthorized, EntriesFull,
    EntryConflict, EntryForbidden, GrabForbidden, NotStarted, OtherCustomer, PayloadTooLarge,
    SoldOut, TooManyRequests, Unavailable, UnknownPromotion, Unprocessable, UnsupportedMediaType,
};
use super::problem::{Problem, ProblemType};
use super::AppState;
use seckill_client::api::{CouponDto, EntryDto, GrabRequest, PromotionDto, PromotionRequest};

/// A promotion id from a path: one that is not a UUID does not parse (400).
pub(super) fn parse_promotion_id(raw: &str) -> Result<PromotionId, Problem> {
    raw.parse().map_err(Problem::from)
}

/// A promotion's view, or the problem reading it.
async fn view(state: &AppState, promotion_id: PromotionId) -> Result<PromotionDto, Problem> {
    state
        .shared
        .seckill
        .promotion(promotion_id)
        .await
        .map(PromotionDto::from)
        .map_err(|error| Problem::from_error(promotion_id, error))
}

/// Creates a promotion.
#[utoipa::path(
    post,
    path = "/admin/promotions/",
    tag = "admin",
    request_body = PromotionRequest,
    responses(
        // The links lead a stateful client (schemathesis) from a created
        // promotion to the operations that take its id, instead of guessing
        // ids that do not exist. Not to its event stream: that response
        // never ends, so a client following the link would only time out.
        (status = 201, description = "Created; `Location` points at the promotion", body = PromotionDto,
            headers(("Location" = String, description = "The promotion's path under `/query/promotions/`")),
            links(
                ("GetPromotion" = (operation_id = "promotion", parameters(("promotionId" = "$response.body#/promotionId")))),
                ("UpdatePromotion" = (operation_id = "update_promotion", parameters(("promotionId" = "$response.body#/promotionId")))),
                ("CancelPromotion" = (operation_id = "cancel_promotion", parameters(("promotionId" = "$response.body#/promotionId")))),
                ("GrabCoupon" = (operation_id = "grab", request_body = json!({"promotionId": "$response.body#/promotionId", "customerId": "fuzz-customer"}))),
            )),
        BadRequest, AdminUnauthorized, AdminDisabled, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    ),
    security(("adminToken" = []))
)]
pub(super) async fn create_promotion(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<PromotionRequest>,
) -> Result<Response, Problem> {
    let terms = request.into_terms()?;
    let promotion_id = PromotionId::from_uuid(uuid::Uuid::new_v4());
    // The command answers with the promotion as created: no second read.
    let promotion = state
        .shared
        .seckill
        .create_promotion_with_id(promotion_id, terms)
        .await
        .map(PromotionDto::from)
        .map_err(|error| Problem::from_error(promotion_id, error))?;
    tracing::info!(promotion = %promotion_id, coupons = promotion.number_of_coupons, "promotion created");
    let location = HeaderValue::from_str(&format!("/query/promotions/{promotion_id}"))
        .map_err(|error| Problem::new(ProblemType::Internal, error.to_string()))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(promotion),
    )
        .into_response())
}

/// Replaces the terms of a promotion that has not opened yet.
#[utoipa::path(
    put,
    path = "/admin/promotions/{promotionId}",
    tag = "admin",
    params(("promotionId" = uuid::Uuid, Path, description = "The promotion's UUID")),
    request_body = PromotionRequest,
    responses(
        (status = 200, description = "Updated", body = PromotionDto),
        BadRequest, AdminUnauthorized, AdminDisabled, UnknownPromotion, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    ),
    security(("adminToken" = []))
)]
pub(super) async fn update_promotion(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(request): ApiJson<PromotionRequest>,
) -> Result<Json<PromotionDto>, Problem> {
    let promotion_id = parse_promotion_id(&raw)?;
    let terms = request.into_terms()?;
    let promotion = state
        .shared
        .seckill
        .update_promotion(promotion_id, terms)
        .await
        .map(PromotionDto::from)
        .map_err(|error| Problem::from_error(promotion_id, error))?;
    tracing::info!(promotion = %promotion_id, "promotion updated");
    Ok(Json(promotion))
}

/// Closes a promotion early.
#[utoipa::path(
    post,
    path = "/admin/promotions/{promotionId}/cancel",
    tag = "admin",
    params(("promotionId" = uuid::Uuid, Path, description = "The promotion's UUID")),
    responses(
        (status = 200, description = "Cancelled; grabs now answer `ended`", body = PromotionDto),
        BadRequest, AdminUnauthorized, AdminDisabled, UnknownPromotion, Conflict, TooManyRequests, Unavailable,
    ),
    security(("adminToken" = []))
)]
pub(super) async fn cancel_promotion(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<PromotionDto>, Problem> {
    let promotion_id = parse_promotion_id(&raw)?;
    let promotion = state
        .shared
        .seckill
        .cancel_promotion(promotion_id)
        .await
        .map(PromotionDto::from)
        .map_err(|error| Problem::from_error(promotion_id, error))?;
    tracing::info!(promotion = %promotion_id, "promotion cancelled");
    Ok(Json(promotion))
}

/// Grabs a coupon for a customer; answers once the coupon is durable.
#[utoipa::path(
    post,
    path = "/command/coupons/",
    tag = "command",
    request_body = GrabRequest,
    responses(
        (status = 201, description = "Won: the coupon, durable before this answer", body = CouponDto),
        BadRequest, CustomerUnauthorized, GrabForbidden, UnknownPromotion, Conflict, SoldOut, PayloadTooLarge, UnsupportedMediaType, Unprocessable, NotStarted, TooManyRequests, Unavailable,
    ),
    // Without customer tokens (the default) no credentials; with them, a JWT.
    security((), ("customerToken" = []))
)]
pub(super) async fn grab(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<GrabRequest>,
) -> Response {
    let answer = match request.parse() {
        Err(invalid) => Err((GrabOutcome::Invalid, Problem::from(invalid))),
        Ok((promotion_id, customer_id)) => match admit_grab(&state, &caller, &customer_id) {
            Err(refused) => Err(refused),
            Ok(()) => state
                .shared
                .seckill
                .grab(promotion_id, customer_id)
                .await
                .map_err(|error| {
                    let outcome = GrabOutcome::of_error(&error);
                    (outcome, Problem::from_error(promotion_id, error))
                }),
        },
    };
    let (outcome, mut response) = match answer {
        Ok(coupon) => (
            GrabOutcome::Won,
            (StatusCode::CREATED, Json(CouponDto::from(coupon))).into_response(),
        ),
        Err((outcome, problem)) => (outcome, problem.into_response()),
    };
    // For `metrics::track_grab`, the route layer that counts and times grabs.
    response.extensions_mut().insert(outcome);
    response
}

/// Enters a customer into a draw; answers once the entry is durable.
/// Entries go through the promotion's writer and group commit as grabs do,
/// and take the same rate limits and customer tokens.
#[utoipa::path(
    post,
    path = "/command/entries/",
    tag = "command",
    request_body = GrabRequest,
    responses(
        (status = 201, description = "Entered: the entry, durable before this answer", body = EntryDto),
        BadRequest, CustomerUnauthorized, EntryForbidden, UnknownPromotion, EntryConflict, EntriesFull, PayloadTooLarge, UnsupportedMediaType, Unprocessable, NotStarted, TooManyRequests, Unavailable,
    ),
    security((), ("customerToken" = []))
)]
pub(super) async fn enter(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<GrabRequest>,
) -> Result<(StatusCode, Json<EntryDto>), Problem> {
    let (promotion_id, customer_id) = request.parse()?;
    admit_grab(&state, &caller, &customer_id).map_err(|(_, problem)| problem)?;
    let entry = state
        .shared
        .seckill
        .enter_draw(promotion_id, customer_id)
        .await
        .map_err(|error| Problem::from_error(promotion_id, error))?;
    Ok((StatusCode::CREATED, Json(EntryDto::from(entry))))
}

/// Whether `caller` may grab for `customer` now: their own customer, within
/// the customer's rate limit.
fn admit_grab(
    state: &AppState,
    caller: &Caller,
    customer: &CustomerId,
) -> Result<(), (GrabOutcome, Problem)> {
    caller
        .may_act_for(customer)
        .map_err(|problem| (GrabOutcome::Forbidden, problem))?;
    state
        .shared
        .security
        .limit_customer(customer, &state.shared.metrics)
        .map_err(|problem| (GrabOutcome::RateLimited, problem))
}

/// Lists the coupons a customer holds.
#[utoipa::path(
    get,
    path = "/query/coupons/{customerId}",
    tag = "query",
    params(("customerId" = String, Path, description = "The customer's id", min_length = 1, max_length = 64, pattern = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$")),
    responses(
        (status = 200, description = "The customer's coupons, oldest first; `[]` for a stranger", body = Vec<CouponDto>),
        BadRequest, CustomerUnauthorized, OtherCustomer, Unprocessable, TooManyRequests, Unavailable,
    ),
    security((), ("customerToken" = []))
)]
pub(super) async fn coupons_of(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Vec<CouponDto>>, Problem> {
    let customer_id = CustomerId::parse(raw)?;
    caller.may_act_for(&customer_id)?;
    let coupons = state
        .shared
        .seckill
        .coupons_of(&customer_id)
        .await
        .map_err(query_problem)?;
    Ok(Json(coupons.into_iter().map(CouponDto::from).collect()))
}

/// Lists the promotions that are open or will open.
#[utoipa::path(
    get,
    path = "/query/promotions",
    tag = "query",
    responses(
        (status = 200, description = "Promotions open now or opening later, soonest first", body = Vec<PromotionDto>),
        TooManyRequests, Unavailable,
    )
)]
pub(super) async fn active_promotions(
    State(state): State<AppState>,
) -> Result<Json<Vec<PromotionDto>>, Problem> {
    let promotions = state
        .shared
        .seckill
        .active_promotions()
        .await
        .map_err(query_problem)?;
    Ok(Json(
        promotions.into_iter().map(PromotionDto::from).collect(),
    ))
}

/// Reads one promotion: remaining coupons, status and times.
#[utoipa::path(
    get,
    path = "/query/promotions/{promotionId}",
    tag = "query",
    params(("promotionId" = uuid::Uuid, Path, description = "The promotion's UUID")),
    responses(
        (status = 200, description = "The promotion now: remaining coupons, status, times", body = PromotionDto),
        BadRequest, UnknownPromotion, TooManyRequests, Unavailable,
    )
)]
pub(super) async fn promotion(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<PromotionDto>, Problem> {
    let promotion_id = parse_promotion_id(&raw)?;
    view(&state, promotion_id).await.map(Json)
}

/// A query's failure: queries name no promotion, and only storage can fail.
pub(super) fn query_problem(error: seckill_app::SecKillError) -> Problem {
    if let Some(left_out) = crate::problem::FAILURES.admit("query failed") {
        tracing::warn!(%error, left_out, "query failed");
    }
    Problem::new(
        ProblemType::StorageUnavailable,
        "the store failed to answer; retry shortly",
    )
    .retry_after_secs(1)
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain"))
)]
pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.shared.metrics.render(),
    )
}

/// Liveness: answers while the process serves HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is up", content_type = "text/plain"))
)]
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the store answers and the server is not shutting down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The store answers", content_type = "text/plain"),
        Unavailable,
    )
)]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<&'static str, Problem> {
    if state.shared.stopping.is_cancelled() {
        return Err(
            Problem::new(ProblemType::ShuttingDown, "the server is shutting down")
                .retry_after_secs(5),
        );
    }
    state.shared.seckill.ready().await.map_err(|error| {
        if let Some(left_out) = crate::problem::FAILURES.admit("readiness check failed") {
            tracing::warn!(%error, left_out, "readiness check failed");
        }
        // Says why (a read-only server, no answer in time); store errors
        // never carry the database URL.
        Problem::new(
            ProblemType::StorageUnavailable,
            format!("the store is not ready: {error}"),
        )
        .retry_after_secs(1)
    })?;
    Ok("ready\n")
}

/// Answers a path no route matches.
pub(super) async fn not_found() -> Problem {
    Problem::new(ProblemType::NotFound, "no endpoint at this path; see /docs")
}

/// Answers a method a route does not take.
pub(super) async fn method_not_allowed() -> Problem {
    Problem::new(
        ProblemType::MethodNotAllowed,
        "this endpoint does not take this method; see /docs",
    )
}
