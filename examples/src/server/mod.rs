//! The SecKill web server: the Java original's HTTP API over [`SecKill`],
//! with problem+json errors, Prometheus metrics, health probes, an OpenAPI
//! document, a live page and a Server-Sent Events feed per promotion.
//!
//! [`app`] builds the router (tests drive it with `tower::ServiceExt::oneshot`);
//! [`serve`] runs it on a listener until a shutdown signal, then drains.
//!
//! # Layout
//! * `routes`  – one handler per endpoint.
//! * `dto`     – the JSON bodies (camelCase, as in the original).
//! * `extract` – `Json` and `Path` extractors whose rejections are problem+json.
//! * `problem` – [`Problem`]: which status code and type every failure gets.
//! * `metrics` – the Prometheus recorder behind `/metrics`, and the route
//!   layer that counts and times grabs.
//! * `sse`     – the live feed of one promotion.
//! * `page`    – the embedded HTML: the live page and the API browser.
//! * `openapi` – the OpenAPI document.

mod dto;
mod extract;
mod metrics;
mod openapi;
mod page;
mod problem;
mod routes;
mod sse;

use std::future::Future;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post, put, MethodRouter};
use axum::serve::ListenerExt;
use axum::Router;
use seckill_app::SecKill;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use dto::{CouponDto, GrabRequest, PromotionDto, PromotionRequest, StatusDto, DEFAULT_RUN};
pub use extract::{ApiJson, ApiPath};
pub use metrics::{GrabOutcome, Metrics};
pub use openapi::ApiDoc;
pub use problem::{Problem, ProblemDetails, ProblemType, PROBLEM_JSON};
pub use sse::MIN_INTERVAL;

/// The largest request body accepted. The largest legitimate body (a
/// promotion with a 200-character name) is under 1 KiB.
pub const BODY_LIMIT: usize = 16 * 1024;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    seckill: SecKill,
    metrics: Metrics,
    stopping: CancellationToken,
}

impl AppState {
    /// State for a server over `seckill` whose `/metrics` renders `metrics`.
    pub fn new(seckill: SecKill, metrics: Metrics) -> Self {
        Self {
            seckill,
            metrics,
            stopping: CancellationToken::new(),
        }
    }

    /// Cancelled when the server starts shutting down: event feeds end and
    /// `/readyz` answers 503, so a load balancer stops sending traffic.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }
}

/// The router: every endpoint, with problem+json for unknown paths and
/// methods, a body limit, request tracing, and a panic guard.
pub fn app(state: AppState) -> Router {
    let track_grab = middleware::from_fn_with_state(state.metrics.clone(), metrics::track_grab);
    let router = Router::new();
    let router = both_spellings(router, "/admin/promotions", post(routes::create_promotion));
    let router = both_spellings(
        router,
        "/command/coupons",
        post(routes::grab).route_layer(track_grab),
    );
    let router = both_spellings(router, "/query/promotions", get(routes::active_promotions));
    router
        .route(
            "/admin/promotions/{promotion_id}",
            put(routes::update_promotion),
        )
        .route(
            "/admin/promotions/{promotion_id}/cancel",
            post(routes::cancel_promotion),
        )
        .route("/query/coupons/{customer_id}", get(routes::coupons_of))
        .route("/query/promotions/{promotion_id}", get(routes::promotion))
        .route(
            "/query/promotions/{promotion_id}/events",
            get(sse::promotion_events),
        )
        .route("/metrics", get(routes::metrics))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(page::docs))
        .route("/", get(page::live))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http())
        // Last resort: a bug must still answer in the API's error format.
        .layer(CatchPanicLayer::custom(page::panic_problem))
        .with_state(state)
}

/// The original's collection paths end in `/`; both spellings are served.
fn both_spellings(
    router: Router<AppState>,
    path: &str,
    handler: MethodRouter<AppState>,
) -> Router<AppState> {
    router
        .route(path, handler.clone())
        .route(&format!("{path}/"), handler)
}

/// How often the recorder's histograms are drained between scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Serves `seckill` on `listener` until `shutdown` completes, then drains:
/// stop accepting, end the event feeds, let in-flight requests finish, and
/// finally stop the engine once every queued command is answered.
/// `/metrics` renders `metrics`, the recorder `seckill` was built with.
pub async fn serve(
    listener: TcpListener,
    seckill: SecKill,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::new(seckill.clone(), metrics.clone());
    let stopping = state.stopping().clone();
    // Histograms keep raw samples until upkeep folds them into buckets.
    let upkeep = stopping.clone();
    tokio::spawn(async move {
        while upkeep
            .run_until_cancelled(tokio::time::sleep(METRICS_UPKEEP))
            .await
            .is_some()
        {
            metrics.run_upkeep();
        }
    });
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving");
    }
    // TCP_NODELAY: every answer is one small write; waiting for the peer's
    // ACK before sending it (Nagle) only adds latency.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            stopping.cancel();
        })
        .await?;
    // Every HTTP request has been answered; this waits for writers to finish
    // whatever is still queued (nothing, unless a client went away mid-grab).
    seckill.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use seckill_memory::MemoryStore;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn the_router_answers_without_a_socket() {
        let app = app(AppState::new(
            SecKill::new(MemoryStore::new()),
            Metrics::isolated(),
        ));
        let health = Request::get("/healthz").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(health).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        let broken = Request::post("/command/coupons/")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{"))
            .unwrap();
        let response = app.oneshot(broken).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
