//! Extractors that reject with problem+json: axum's own `Json` and `Path`
//! answer in plain text, and a client should get one error format, whatever
//! went wrong.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

use super::problem::{Problem, ProblemType};

/// A JSON request body; any failure to read it is a [`Problem`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

/// Which problem a body that cannot be read is. Every shape or syntax error
/// (unknown field, wrong type, a time that is not RFC 3339) is a 400: rule
/// violations of values that do parse are decided later, and are 422.
fn json_problem(rejection: &JsonRejection) -> Problem {
    let kind = match rejection {
        JsonRejection::MissingJsonContentType(_) => ProblemType::UnsupportedMediaType,
        // The body limit surfaces as a failure to buffer the body.
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ProblemType::PayloadTooLarge,
        _ => ProblemType::MalformedRequest,
    };
    Problem::new(kind, rejection.body_text())
}

/// Path parameters; any failure to read them is a [`Problem`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_problem(&rejection)),
        }
    }
}

fn path_problem(rejection: &PathRejection) -> Problem {
    Problem::new(ProblemType::MalformedRequest, rejection.body_text())
}
