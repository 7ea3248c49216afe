//! Extractors that reject with problem+json: axum's own `Json` and `Path`
//! answer in plain text, and a client should get one error format, whatever
//! went wrong. Each wraps axum's extractor and maps its rejection through a
//! `From` impl into a [`Problem`].

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;

use super::problem::{Problem, ProblemType};

/// A JSON request body; any failure to read it is a [`Problem`].
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub(crate) struct ApiJson<T>(pub(crate) T);

/// Path parameters; any failure to read them is a [`Problem`].
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub(crate) struct ApiPath<T>(pub(crate) T);

/// Which problem a body that cannot be read is. Every shape or syntax error
/// (unknown field, wrong type, a time that is not RFC 3339) is a 400: rule
/// violations of values that do parse are decided later, and are 422.
impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        let kind = match &rejection {
            JsonRejection::MissingJsonContentType(_) => ProblemType::UnsupportedMediaType,
            // The body limit surfaces as a failure to buffer the body.
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ProblemType::PayloadTooLarge
            }
            _ => ProblemType::MalformedRequest,
        };
        Self::new(kind, rejection.body_text())
    }
}

/// A path parameter that does not decode (bad percent-encoding, not UTF-8)
/// does not parse at all: 400.
impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Self {
        Self::new(ProblemType::MalformedRequest, rejection.body_text())
    }
}
