//! An OTLP/HTTP receiver that counts and drops what it gets: the collector
//! of the trace benchmark (`examples/server/bench/traces.sh`), so the
//! server's export path runs for real without a collector's own work.
//!
//! `POST /v1/traces` decodes the protobuf and counts the spans;
//! `GET /stats` answers `<requests> <spans>`.
//!
//! ```text
//! cargo run --release -p seckill-server --example otlp_sink -- 127.0.0.1:4318
//! seckill-server --otlp-endpoint http://127.0.0.1:4318
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    spans: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4318".to_owned());
    let counts = Arc::<Counts>::default();
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .route("/stats", get(stats))
        .with_state(counts);
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn receive(State(counts): State<Arc<Counts>>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .map(|scope| scope.spans.len())
        .sum();
    // Relaxed: two counters read by a person, ordered with nothing.
    counts.requests.fetch_add(1, Ordering::Relaxed);
    counts.spans.fetch_add(spans as u64, Ordering::Relaxed);
    StatusCode::OK
}

async fn stats(State(counts): State<Arc<Counts>>) -> String {
    format!(
        "{} {}\n",
        counts.requests.load(Ordering::Relaxed),
        counts.spans.load(Ordering::Relaxed)
    )
}
