//! Replicas of the server on one database: the HTTP transport that carries
//! forwarded commands to a promotion's owner ([`HttpForward`]), and the
//! internal endpoint that takes them (`POST /internal/commands`).
//!
//! The endpoint is not part of the public API: it trusts the commands it
//! gets (their times, their customers), so it answers only requests that
//! carry the cluster secret, and none at all on a server started without one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use seckill_app::cluster::{execute_forwarded, Forward, ForwardedCommand, ForwardedReply, Replica};
use seckill_app::StoreError;
use subtle::ConstantTimeEq;

use super::extract::ApiJson;
use super::problem::{Problem, ProblemType};
use super::AppState;

/// Where peers send forwarded commands, below a replica's advertised URL.
pub(crate) const INTERNAL_COMMANDS: &str = "/internal/commands";

/// The largest forwarded batch accepted: 4,096 commands of well under 1 KiB.
pub(super) const INTERNAL_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// The shared secret that replicas of one deployment present to each other.
#[derive(Clone)]
pub struct ClusterSecret(Arc<str>);

impl ClusterSecret {
    /// A secret; any non-empty string, ideally 32 random bytes or more.
    pub fn new(secret: &str) -> Self {
        Self(Arc::from(secret))
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `header` is `Bearer <this secret>`, compared in constant time
    /// so the comparison's duration says nothing about the secret.
    fn admits(&self, header: &[u8]) -> bool {
        header.ct_eq(self.bearer().as_bytes()).into()
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

/// Refuses internal requests without the cluster secret: 404 when the
/// server has none (it takes no forwarded commands), 401 otherwise.
pub(super) async fn require_secret(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(secret) = &state.shared.cluster_secret else {
        return routes_not_found();
    };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .map(|value| value.as_bytes());
    if !presented.is_some_and(|header| secret.admits(header)) {
        return Problem::new(
            ProblemType::Unauthorized,
            "internal endpoint: present the cluster secret as `Authorization: Bearer …`",
        )
        .into_response();
    }
    next.run(request).await
}

fn routes_not_found() -> Response {
    Problem::new(ProblemType::NotFound, "no such endpoint").into_response()
}

/// `POST /internal/commands`: runs a batch of commands forwarded by a peer
/// for promotions this replica owns, and answers each in order.
pub(super) async fn forwarded_commands(
    State(state): State<AppState>,
    ApiJson(commands): ApiJson<Vec<ForwardedCommand>>,
) -> Json<Vec<ForwardedReply>> {
    Json(execute_forwarded(&state.shared.seckill, commands).await)
}

/// Forwards batches of commands to their owner as one HTTP request each,
/// over a keep-alive connection pool.
#[derive(Debug, Clone)]
pub struct HttpForward {
    http: reqwest::Client,
    secret: ClusterSecret,
}

impl HttpForward {
    /// A transport that presents `secret` and gives up on a peer after
    /// `timeout` (the engine bounds each batch too).
    pub fn new(secret: ClusterSecret, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(1)))
            // Several batches may be in flight to one owner at once.
            .pool_max_idle_per_host(8)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self { http, secret })
    }
}

#[async_trait]
impl Forward for HttpForward {
    async fn forward(
        &self,
        owner: &Replica,
        commands: Vec<ForwardedCommand>,
    ) -> Result<Vec<ForwardedReply>, StoreError> {
        let url = format!("{}{INTERNAL_COMMANDS}", owner.address.trim_end_matches('/'));
        let response = self
            .http
            .post(&url)
            .header(AUTHORIZATION, self.secret.bearer())
            .json(&commands)
            .send()
            .await
            .map_err(|error| lost(&url, &error))?;
        let status = response.status();
        if !status.is_success() {
            // The owner refused the batch as a whole (a wrong secret, a body
            // limit, shutting down): it ran none of it.
            return Err(StoreError::unavailable(format!(
                "forwarding to {url}: the owner answered {status}"
            )));
        }
        response.json().await.map_err(|error| lost(&url, &error))
    }
}

/// A forward that failed in flight. Only a failure to connect proves the
/// owner never got the batch; after that it may have run it, and the
/// engine answers "outcome unknown".
fn lost(url: &str, error: &reqwest::Error) -> StoreError {
    let message = format!("forwarding to {url}: {error}");
    if error.is_connect() {
        StoreError::unavailable(message)
    } else {
        StoreError::interrupted(message)
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use seckill_app::SecKill;
    use seckill_memory::MemoryStore;
    use tower::ServiceExt;

    use super::*;
    use crate::{app, Metrics};
    use seckill_client::api::PROBLEM_JSON;

    fn forwarded(authorization: Option<&str>) -> Request<Body> {
        let request =
            Request::post(INTERNAL_COMMANDS).header(header::CONTENT_TYPE, "application/json");
        let request = match authorization {
            Some(value) => request.header(AUTHORIZATION, value),
            None => request,
        };
        request.body(Body::from("[]")).unwrap()
    }

    #[tokio::test]
    async fn forwarded_commands_need_the_cluster_secret() {
        let state = AppState::new(SecKill::new(MemoryStore::new()), Metrics::isolated());
        let app = app(state.with_cluster_secret(ClusterSecret::new("s3cret")));
        for refused in [
            None,
            Some("Bearer wrong"),
            Some("s3cret"),
            Some("Bearer s3cret "),
        ] {
            let response = app.clone().oneshot(forwarded(refused)).await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{refused:?}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        }
        let response = app.oneshot(forwarded(Some("Bearer s3cret"))).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_server_without_a_secret_takes_no_forwarded_command() {
        let app = app(AppState::new(
            SecKill::new(MemoryStore::new()),
            Metrics::isolated(),
        ));
        let response = app
            .oneshot(forwarded(Some("Bearer anything")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
