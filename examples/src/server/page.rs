//! The embedded live page at `/`, compiled into the binary so the server
//! needs no files and no front-end build, and the answer to a panic.

use std::any::Any;

use axum::http::Response;
use axum::response::{Html, IntoResponse};

use super::problem::{Problem, ProblemType};

/// `GET /`: active promotions with live counters and grabs/s charts, finished
/// ones, and forms to grab, look up a customer's coupons and create.
pub(super) async fn live() -> Html<&'static str> {
    Html(include_str!("../../static/live.html"))
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
