//! Traces (docs/adr/0017-tracing.md), read back from the OpenTelemetry
//! SDK's in-memory exporter in-process: a grab over HTTP is one trace of
//! its request, queue, decide and commit spans, continuing the caller's
//! `traceparent`; a batch's commit is one span linked to every grab it
//! answered; a group append is one span over its commits.
//!
//! The tests run on a current-thread runtime under a subscriber set for
//! the thread, so the server's tasks and the writers record into this
//! test's exporter and no other.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use common::server::TestServer;
use futures::future::join_all;
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use seckill_app::SecKill;
use seckill_memory::MemoryStore;
use seckill_opentelemetry::OtelTraceContext;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The caller's trace, as a client would send it.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Records the server's and the engine's spans into an in-memory exporter
/// for as long as the guard lives.
fn record() -> (InMemorySpanExporter, SdkTracerProvider, DefaultGuard) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("test"))
        .with_filter(EnvFilter::new("seckill_app=debug,seckill_server=debug"));
    let guard = tracing::subscriber::set_default(Registry::default().with(layer));
    (exporter, provider, guard)
}

fn spans(exporter: &InMemorySpanExporter, provider: &SdkTracerProvider) -> Vec<SpanData> {
    provider.force_flush().expect("flushing spans");
    exporter.get_finished_spans().expect("the exported spans")
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|pair| pair.key.as_str() == key)
        .map(|pair| &pair.value)
}

/// The spans a batch span stands for: its parent, then those it links to.
fn parent_and_links(span: &SpanData) -> Vec<(TraceId, SpanId)> {
    let parent = (span.span_context.trace_id(), span.parent_span_id);
    let linked = span
        .links
        .iter()
        .map(|link| (link.span_context.trace_id(), link.span_context.span_id()));
    std::iter::once(parent).chain(linked).collect()
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|span| span.name == name).collect()
}

/// A service in memory that follows traces through its engine.
fn traced_service() -> SecKill {
    SecKill::builder(MemoryStore::new())
        .trace_context(Arc::new(OtelTraceContext))
        .build()
        .expect("default settings")
}

async fn traced_server() -> TestServer {
    TestServer::builder()
        .seckill(traced_service())
        .start()
        .await
}

#[tokio::test]
async fn a_grab_over_http_is_one_trace_of_its_request_queue_decision_and_commit() {
    let (exporter, provider, _guard) = record();
    let server = traced_server().await;
    let promotion = server.create_open(10).await;
    exporter.reset();

    let answer = server
        .client
        .grab_request(promotion.promotion_id, "alice")
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await
        .expect("grab");
    assert_eq!(answer.status(), reqwest::StatusCode::CREATED);

    let spans = spans(&exporter, &provider);
    let trace = TraceId::from_hex(TRACE).unwrap();
    let requests = named(&spans, "POST /command/coupons/");
    let [request] = requests[..] else {
        panic!("one request span: {spans:#?}");
    };
    assert_eq!(
        request.span_context.trace_id(),
        trace,
        "continues the caller's trace"
    );
    assert_eq!(
        request.parent_span_id,
        SpanId::from_hex(CALLER_SPAN).unwrap()
    );
    assert_eq!(
        attribute(request, "http.response.status_code"),
        Some(&Value::I64(201))
    );
    for name in ["queue", "decide", "commit"] {
        let found = named(&spans, name);
        let [span] = found[..] else {
            panic!("one {name} span: {spans:#?}");
        };
        assert_eq!(
            span.span_context.trace_id(),
            trace,
            "{name} is in the trace"
        );
        assert_eq!(
            span.parent_span_id,
            request.span_context.span_id(),
            "{name} is a child of the request"
        );
        assert!(span.start_time <= span.end_time);
        assert!(span.start_time >= request.start_time && span.end_time <= request.end_time);
    }
    let commit = named(&spans, "commit")[0];
    assert_eq!(attribute(commit, "requests"), Some(&Value::I64(1)));
    assert_eq!(attribute(commit, "events"), Some(&Value::I64(1)));
    let queue = named(&spans, "queue")[0];
    let decide = named(&spans, "decide")[0];
    assert!(queue.end_time <= decide.start_time, "queued, then decided");
    assert!(
        decide.end_time <= commit.start_time,
        "decided, then committed"
    );
}

#[tokio::test]
async fn the_grabs_of_one_batch_share_one_commit_span_linked_to_each() {
    let (exporter, provider, _guard) = record();
    let server = traced_server().await;
    let promotion = server.create_open(1_000).await;
    exporter.reset();

    const GRABS: usize = 64;
    let answers = join_all((0..GRABS).map(|i| {
        let (server, promotion) = (&server, &promotion);
        async move { server.grab(promotion, &format!("batch-{i}")).await.status() }
    }))
    .await;
    assert!(answers
        .iter()
        .all(|status| *status == reqwest::StatusCode::CREATED));

    let spans = spans(&exporter, &provider);
    let requests: HashSet<(TraceId, SpanId)> = named(&spans, "POST /command/coupons/")
        .iter()
        .map(|span| (span.span_context.trace_id(), span.span_context.span_id()))
        .collect();
    assert_eq!(requests.len(), GRABS, "one trace per grab");
    // Each grab is answered by exactly one commit: its parent, or a link.
    let mut answered_by: HashMap<(TraceId, SpanId), usize> = HashMap::new();
    let commits = named(&spans, "commit");
    for (i, commit) in commits.iter().enumerate() {
        let answered = parent_and_links(commit);
        assert_eq!(
            attribute(commit, "requests"),
            Some(&Value::I64(answered.len() as i64)),
            "a commit names every grab it answered"
        );
        for grab in answered {
            assert!(requests.contains(&grab), "a commit answers grabs only");
            assert_eq!(answered_by.insert(grab, i), None, "one commit per grab");
        }
    }
    assert_eq!(answered_by.len(), GRABS, "every grab has its commit");
    assert!(
        commits.len() < GRABS,
        "{GRABS} grabs at once share commits: {} commits",
        commits.len()
    );
}

#[tokio::test]
async fn a_group_append_is_one_span_over_the_commits_it_carries() {
    let (exporter, provider, _guard) = record();
    let fixture = seckill_postgres::testing::PgFixture::new().await;
    let seckill = SecKill::builder(fixture.pg_store().clone())
        .trace_context(Arc::new(OtelTraceContext))
        .build()
        .expect("default settings");
    let server = TestServer::builder().seckill(seckill).start().await;
    let promotions = [server.create_open(100).await, server.create_open(100).await];
    exporter.reset();

    // Grabs of two promotions at once: their writers' commits meet in the
    // committer's groups.
    let answers = join_all((0..40).map(|i| {
        let (server, promotion) = (&server, &promotions[i % 2]);
        async move { server.grab(promotion, &format!("group-{i}")).await.status() }
    }))
    .await;
    assert!(answers
        .iter()
        .all(|status| *status == reqwest::StatusCode::CREATED));

    let spans = spans(&exporter, &provider);
    let commits: HashMap<(TraceId, SpanId), &SpanData> = named(&spans, "commit")
        .into_iter()
        .map(|span| {
            (
                (span.span_context.trace_id(), span.span_context.span_id()),
                span,
            )
        })
        .collect();
    let groups = named(&spans, "append group");
    assert!(!groups.is_empty(), "the appends are traced: {spans:#?}");
    let mut carried = HashSet::new();
    for group in groups {
        let mut events = 0;
        let mut promotions = 0;
        for commit in parent_and_links(group) {
            let span = commits.get(&commit).expect("a group carries commits");
            assert!(carried.insert(commit), "a commit is in one group");
            events += attribute(span, "events").and_then(as_i64).unwrap();
            promotions += 1;
        }
        assert_eq!(attribute(group, "events").and_then(as_i64), Some(events));
        assert_eq!(
            attribute(group, "promotions").and_then(as_i64),
            Some(promotions)
        );
    }
    assert_eq!(carried.len(), commits.len(), "every commit went in a group");
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::I64(value) => Some(*value),
        _ => None,
    }
}

#[tokio::test]
async fn a_request_the_ratio_leaves_out_has_no_span_but_a_callers_trace_is_followed() {
    let (exporter, provider, _guard) = record();
    // Ratio 0: no request starts a trace of its own.
    let server = TestServer::builder()
        .seckill(traced_service())
        .trace_ratio(0.0)
        .start()
        .await;
    let client = &server.client;
    let promotion = server.create_open(10).await;

    let untraced = client
        .grab_request(promotion.promotion_id, "left-out")
        .send()
        .await
        .unwrap();
    assert_eq!(untraced.status(), reqwest::StatusCode::CREATED);
    assert!(
        spans(&exporter, &provider).is_empty(),
        "no span for a request left out"
    );

    let traced = client
        .grab_request(promotion.promotion_id, "followed")
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(traced.status(), reqwest::StatusCode::CREATED);
    let spans = spans(&exporter, &provider);
    let trace = TraceId::from_hex(TRACE).unwrap();
    assert!(!spans.is_empty());
    assert!(spans
        .iter()
        .all(|span| span.span_context.trace_id() == trace));
    for name in ["POST /command/coupons/", "queue", "decide", "commit"] {
        assert_eq!(named(&spans, name).len(), 1, "{name}: {spans:#?}");
    }
}
