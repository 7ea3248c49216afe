//! The embedded live page at `/` (its script and style beside it), compiled
//! into the binary so the server needs no files and no front-end build; the
//! security headers it and every answer carry; and the answer to a panic.

use std::any::Any;

use axum::http::{header, HeaderValue, Response};
use axum::response::{Html, IntoResponse};
use tower_http::set_header::SetResponseHeaderLayer;

use super::problem::{Problem, ProblemType};

/// Where the page's script is served.
pub(super) const SCRIPT: &str = "/live.js";
/// Where the page's style is served.
pub(super) const STYLE: &str = "/live.css";

/// The page's policy: its own origin only, for everything. Scripts and
/// styles are files of its own (no inline code, so no hash to keep in
/// step), it connects only to the API and its event feeds, it may not be
/// framed (clickjacking of the grab button), and forms post nowhere else.
pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The headers of the page and its files: the policy above.
fn page_headers() -> [(header::HeaderName, HeaderValue); 1] {
    [(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    )]
}

/// `GET /`: active promotions with live counters and grabs/s charts, finished
/// ones, and forms to grab, look up a customer's coupons and create.
pub(super) async fn live() -> impl IntoResponse {
    (page_headers(), Html(include_str!("../static/live.html")))
}

/// `GET /live.js`: the page's script.
pub(super) async fn script() -> impl IntoResponse {
    let javascript = (
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    (
        page_headers(),
        [javascript],
        include_str!("../static/live.js"),
    )
}

/// `GET /live.css`: the page's style.
pub(super) async fn style() -> impl IntoResponse {
    let css = (
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    (page_headers(), [css], include_str!("../static/live.css"))
}

/// `X-Content-Type-Options: nosniff` on every answer: a browser takes each
/// body as the type it is declared, never a JSON answer as a script.
pub(super) fn nosniff() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    )
}

/// `Referrer-Policy: no-referrer` on every answer: no URL of this server
/// (a promotion id, a customer's coupon list) leaks to a link's target.
pub(super) fn referrer_policy() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    )
}

/// A handler panicked: answer in the API's error format, log the bug, and keep
/// the message (it may hold internals) out of the response.
pub(super) fn panic_problem(panic: Box<dyn Any + Send + 'static>) -> Response<axum::body::Body> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "handler panicked");
    Problem::new(
        ProblemType::Internal,
        "the server hit a bug; it has been logged",
    )
    .into_response()
}
