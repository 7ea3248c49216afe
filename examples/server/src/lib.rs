//! The SecKill web server: the Java original's HTTP API over [`SecKill`],
//! with problem+json errors, Prometheus metrics, health probes, an OpenAPI
//! document, a live page, a Server-Sent Events feed per promotion and the
//! global event feed.
//!
//! [`app`] builds the router (tests drive it with `tower::ServiceExt::oneshot`);
//! [`serve`] runs it on a listener until a shutdown signal, then drains.
//!
//! # Layout
//! * `routes`  – one handler per endpoint, each with its OpenAPI annotation.
//! * `security` – [`Security`]: who may call what and how often, applied by
//!   one middleware and per listener ([`Surface`], `--admin-bind`).
//! * `admin_auth` – the admin token and [`AdminAccess`].
//! * `customer_auth` – customers as claimed, or as a JWT's `sub`.
//! * `rate_limit` – the fairness limits per address and per customer, and
//!   the client address behind trusted proxies.
//! * `cluster` – replicas: the HTTP transport of forwarded commands and the
//!   internal endpoint that takes them, behind the cluster secret.
//! * `extract` – `Json` and `Path` extractors whose rejections are problem+json.
//! * `problem` – [`Problem`]: which status code and type every failure gets.
//! * `linger`  – reads the rest of a body refused as too large before the
//!   413, so a client still sending it sees the answer, not a reset.
//! * `metrics` – the Prometheus recorder behind `/metrics`, and the route
//!   layer that counts and times grabs.
//! * `sync`    – `GET /sync/{latestId}`, the original's feed of new coupons.
//! * `sse`     – the live feed of one promotion.
//! * `event_feed` – `GET /events`, every event of every promotion live, as
//!   Server-Sent Events resumed with `Last-Event-ID`.
//! * `page`    – the embedded live page, and the panic answer.
//! * `openapi` – the OpenAPI document's frame, shared answers and live parts.
//!
//! `/docs` is Swagger UI (utoipa-swagger-ui, its assets compiled in) over
//! `/openapi.json`.

mod admin_auth;
mod cluster;
mod customer_auth;
mod event_feed;
mod extract;
mod linger;
mod metrics;
mod openapi;
mod page;
mod problem;
mod rate_limit;
mod routes;
mod security;
mod sse;
mod sync;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::middleware;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Extension;
use axum::Router;
use seckill_app::trace::TraceContext as _;
use seckill_app::SecKill;
use seckill_opentelemetry::{OtelTraceContext, TRACEPARENT};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config, SwaggerUi};

pub use admin_auth::{AdminAccess, AdminToken, AdminTokenError};
pub use cluster::{ClusterSecret, HttpForward};
pub use customer_auth::{CustomerAuth, JwtKeyError, JwtVerifier};
pub use metrics::{GrabOutcome, Metrics};
pub use problem::Problem;
pub use rate_limit::{Limit, RateLimits, TrustedProxies};
pub use security::{Security, Surface};

/// The largest request body accepted. The largest legitimate body (a
/// promotion with a 200-character name) is under 1 KiB.
pub(crate) const BODY_LIMIT: usize = 16 * 1024;

/// What every handler shares. Cheap to clone: one reference count.
///
/// Behind one `Arc`, because the router clones it for every request (each
/// middleware with state, each `State` extractor): cloning its parts one by
/// one cost eight contended reference counts and the cancellation token's
/// mutex, per clone.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

/// What [`AppState`] holds.
#[derive(Clone)]
struct Shared {
    seckill: SecKill,
    metrics: Metrics,
    stopping: CancellationToken,
    /// Peers present it on `/internal/commands`; `None` takes no forwarded
    /// command at all.
    cluster_secret: Option<ClusterSecret>,
    /// Who may call what, and how often.
    security: Arc<Security>,
    /// The share of requests without a `traceparent` that start a trace.
    trace_ratio: f64,
}

impl AppState {
    /// State for a server over `seckill` whose `/metrics` renders `metrics`.
    pub fn new(seckill: SecKill, metrics: Metrics) -> Self {
        Self {
            shared: Arc::new(Shared {
                seckill,
                metrics,
                stopping: CancellationToken::new(),
                cluster_secret: None,
                security: Arc::default(),
                trace_ratio: 1.0,
            }),
        }
    }

    /// The parts, to change before serving (a copy if already shared).
    fn parts(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.shared)
    }

    /// Starts a trace for this share of the requests that arrive without a
    /// `traceparent` (from 0 to 1; 1 by default). The draw is made before
    /// the request's span exists, so a request left out costs nothing of
    /// the tracer; one with a `traceparent` follows its caller's decision.
    /// Matters only under a subscriber that records the spans.
    #[must_use]
    pub fn with_trace_ratio(mut self, ratio: f64) -> Self {
        self.parts().trace_ratio = ratio.clamp(0.0, 1.0);
        self
    }

    /// Applies these access rules (the default closes the admin routes).
    #[must_use]
    pub fn with_security(mut self, security: Security) -> Self {
        self.parts().security = Arc::new(security);
        self
    }

    /// Takes commands forwarded by peers that present `secret`.
    #[must_use]
    pub fn with_cluster_secret(mut self, secret: ClusterSecret) -> Self {
        self.parts().cluster_secret = Some(secret);
        self
    }

    /// Cancelled when the server starts shutting down: event feeds end and
    /// `/readyz` answers 503, so a load balancer stops sending traffic.
    pub fn stopping(&self) -> &CancellationToken {
        &self.shared.stopping
    }
}

/// The router: every endpoint, with problem+json for unknown paths and
/// methods, a body limit (drained before its 413), request tracing, and a
/// panic guard.
pub fn app(state: AppState) -> Router {
    let trace_ratio = state.shared.trace_ratio;
    let (router, document) = api();
    let document = Arc::new(document);
    router
        .route(
            "/openapi.json",
            get(move || openapi::document(document.clone())),
        )
        .merge(SwaggerUi::new("/docs").config(Config::from("/openapi.json")))
        .route("/", get(page::live))
        .route(page::SCRIPT, get(page::script))
        .route(page::STYLE, get(page::style))
        // Internal, so not in the OpenAPI document: peers forward commands
        // here in batches larger than any public body.
        .route(
            cluster::INTERNAL_COMMANDS,
            post(cluster::forwarded_commands)
                .layer(DefaultBodyLimit::max(cluster::INTERNAL_BODY_LIMIT))
                .route_layer(middleware::from_fn_with_state(
                    state.clone(),
                    cluster::require_secret,
                )),
        )
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        // For the grab route's `metrics::track_grab` layer, which `api()`
        // registers without a state to take the recorder from.
        .layer(Extension(state.shared.metrics.clone()))
        // Rate limits and the admin token, before routing (see `security`).
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::guard,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(linger::drain_refused_body))
        // A failed response at DEBUG, not ERROR: in an outage every request
        // fails alike, and the handlers' own lines (one per kind per
        // interval, `seckill_app::throttle`) already say why.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &_| request_span(request, trace_ratio))
                .on_response(record_status)
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        // Last resort: a bug must still answer in the API's error format.
        .layer(CatchPanicLayer::custom(page::panic_problem))
        .layer(page::nosniff())
        .layer(page::referrer_policy())
        .with_state(state)
}

/// The span of one request: named by method and route, continuing the
/// caller's trace when it sends a W3C `traceparent`, else starting one for
/// `ratio` of the requests (head sampling before the span exists: a span
/// the tracer sees costs it work, sampled or not). DEBUG, so it costs
/// nothing unless a layer (the trace exporter's) enables it. None for the
/// internal endpoint: each forwarded command there continues its own
/// caller's trace (`seckill_app::cluster::execute_forwarded`).
fn request_span(request: &axum::http::Request<axum::body::Body>, ratio: f64) -> tracing::Span {
    let Some(route) = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
    else {
        return tracing::Span::none();
    };
    if route == cluster::INTERNAL_COMMANDS {
        return tracing::Span::none();
    }
    let traceparent = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok());
    if traceparent.is_none() && ratio < 1.0 && fastrand::f64() >= ratio {
        return tracing::Span::none();
    }
    let method = request.method().as_str();
    let span = tracing::debug_span!(
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        url.path = request.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(traceparent) = traceparent {
        if !span.is_disabled() {
            OtelTraceContext.set_parent(&span, traceparent);
        }
    }
    span
}

/// Records the answer's status on the request's span.
fn record_status(
    response: &axum::http::Response<axum::body::Body>,
    _latency: Duration,
    span: &tracing::Span,
) {
    // Signed: OpenTelemetry's integers are, and an unsigned one arrives as text.
    span.record(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    );
}

/// The OpenAPI document `/openapi.json` serves, but for the example times
/// of a new promotion, which each answer sets to its own "now".
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The API's routes and their OpenAPI document, from one registration per
/// route (the document lacks only the live example times).
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let api = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi());
    let api = both_spellings(api, routes!(routes::create_promotion));
    let (schemas, paths, grab) = routes!(routes::grab);
    let grab = grab.route_layer(middleware::from_fn(metrics::track_grab));
    let api = both_spellings(api, (schemas, paths, grab));
    let api = both_spellings(api, routes!(routes::enter));
    let api = both_spellings(api, routes!(routes::active_promotions));
    let (router, mut document) = api
        .routes(routes!(routes::update_promotion))
        .routes(routes!(routes::cancel_promotion))
        .routes(routes!(routes::coupons_of))
        .routes(routes!(routes::promotion))
        .routes(routes!(sse::promotion_events))
        .routes(routes!(sync::sync))
        .routes(routes!(event_feed::events))
        .routes(routes!(routes::metrics))
        .routes(routes!(routes::healthz))
        .routes(routes!(routes::readyz))
        .split_for_parts();
    openapi::EventStreamItems.modify(&mut document);
    openapi::CamelCaseLinks.modify(&mut document);
    (router, document)
}

/// The original's collection paths end in `/`; both spellings are served,
/// and the document lists the one its annotation names.
fn both_spellings(
    api: OpenApiRouter<AppState>,
    route: UtoipaMethodRouter<AppState>,
) -> OpenApiRouter<AppState> {
    let (_, paths, handler) = &route;
    let api = paths.paths.keys().fold(api, |api, path| {
        let other = match path.strip_suffix('/') {
            Some(bare) => bare.to_owned(),
            None => format!("{path}/"),
        };
        api.route(&other, handler.clone())
    });
    api.routes(route)
}

/// How often the recorder's histograms are drained between scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Serves `state` on `listener` until `shutdown` completes, then drains:
/// stop accepting, end the event feeds, let in-flight requests finish, and
/// finally stop the engine once every queued command is answered.
/// `/metrics` renders the state's [`Metrics`], the recorder its `SecKill`
/// was built with. With `admin_listener` (`--admin-bind`), `/admin`,
/// `/metrics` and `/docs` are served there instead of on `listener`.
pub async fn serve(
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (seckill, metrics) = (state.shared.seckill.clone(), state.shared.metrics.clone());
    let security = state.shared.security.clone();
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
            security.upkeep();
        }
    });
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "serving");
    }
    let router = app(state);
    let (public, operators) = match admin_listener {
        None => (router, None),
        Some(operators) => {
            if let Ok(address) = operators.local_addr() {
                tracing::info!(%address, "serving /admin, /metrics and /docs");
            }
            let only = |surface: Surface| {
                middleware::from_fn(move |request, next| surface.filter(request, next))
            };
            let admin = router.clone().layer(only(Surface::Operators));
            let stopped = stopping.clone();
            // Its own task: the two listeners serve side by side, and both
            // drain when the server stops.
            let task = tokio::spawn(async move {
                axum::serve(
                    operators,
                    admin.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async move { stopped.cancelled().await })
                .await
            });
            (router.layer(only(Surface::Public)), Some(task))
        }
    };
    // TCP_NODELAY: every answer is one small write; waiting for the peer's
    // ACK before sending it (Nagle) only adds latency.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
    });
    // The peer's address reaches the handlers, for the per-address limits.
    let public = public.into_make_service_with_connect_info::<SocketAddr>();
    let draining = stopping.clone();
    let served = axum::serve(listener, public)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            draining.cancel();
        })
        .await;
    // Also when serving failed: the operators' listener stops with it.
    stopping.cancel();
    if let Some(task) = operators {
        task.await.map_err(std::io::Error::other)??;
    }
    served?;
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
    use seckill_client::api::PROBLEM_JSON;
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
