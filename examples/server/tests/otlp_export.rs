//! Traces exported by real server processes (`--otlp-endpoint`) to an OTLP
//! receiver in the test: a grab forwarded between two replicas is one
//! trace across both; the JetStream message of a traced grab carries the
//! grab's `traceparent`; and a server whose collector is unreachable serves
//! grabs as ever while it counts the failed exports and logs them once.

mod common;
#[path = "common/otlp.rs"]
mod otlp;

use common::{create_open, free_port, metric, publishing_to, ServerProcess};
use otlp::{Collector, ReceivedSpan};
use seckill_client::Grab;
use seckill_nats::testing::NatsFixture;
use seckill_nats::{EVENT_TYPE_HEADER, TRACEPARENT_HEADER};
use seckill_postgres::testing::PgFixture;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

fn traced_by<'a>(collector: &'a Collector, service: &'a str) -> [&'a str; 6] {
    [
        "--otlp-endpoint",
        &collector.endpoint,
        "--otel-service-name",
        service,
        "--trace-sample-ratio",
        "1",
    ]
}

fn one<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> &'a ReceivedSpan {
    let found: Vec<_> = spans
        .iter()
        .filter(|span| span.trace_id == TRACE && span.service == service && span.name == name)
        .collect();
    match found[..] {
        [span] => span,
        _ => panic!("one {name} span of {service} in the trace: {spans:#?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_grab_is_one_trace_across_both_replicas() {
    let collector = Collector::start().await;
    let fixture = PgFixture::new().await;
    let owner = ServerProcess::builder()
        .database(fixture.url())
        .replica()
        .flags(&traced_by(&collector, "owner"))
        .start()
        .await;
    let promotion = create_open(&owner.client, 10).await;
    let id = promotion.promotion_id;
    // The first grab's writer claims the promotion for this replica.
    let first = owner.client.grab(id, "first").await;
    assert!(matches!(first, Ok(Grab::Won(_))), "{first:?}");
    let other = ServerProcess::builder()
        .database(fixture.url())
        .replica()
        .flags(&traced_by(&collector, "other"))
        .start()
        .await;

    let answer = other
        .client
        .grab_request(id, "second")
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await
        .expect("grab on the other replica");
    assert_eq!(answer.status(), reqwest::StatusCode::CREATED);

    let spans = collector
        .wait_for("the owner's commit in the caller's trace", |spans| {
            spans.iter().any(|span| {
                span.trace_id == TRACE && span.service == "owner" && span.name == "commit"
            }) && spans.iter().any(|span| {
                span.trace_id == TRACE && span.service == "other" && span.name.starts_with("POST")
            })
        })
        .await;
    let request = one(&spans, "other", "POST /command/coupons/");
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    let forward = one(&spans, "other", "forward");
    assert_eq!(forward.parent_span_id, request.span_id);
    let forwarded = one(&spans, "owner", "forwarded");
    assert_eq!(
        forwarded.parent_span_id, forward.span_id,
        "the owner continues the forward's trace"
    );
    for name in ["queue", "decide", "commit"] {
        let span = one(&spans, "owner", name);
        assert_eq!(
            span.parent_span_id, forwarded.span_id,
            "{name} on the owner"
        );
    }
    let group = one(&spans, "owner", "append group");
    assert_eq!(group.parent_span_id, one(&spans, "owner", "commit").span_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_collector_grabs_are_served_and_failed_exports_counted_and_logged_once() {
    // Nothing listens there: every export is refused.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let log = std::env::temp_dir().join(format!("seckill-otlp-{}.log", uuid::Uuid::new_v4()));
    let server = ServerProcess::builder()
        .flags(&["--otlp-endpoint", &endpoint])
        .log_file(&log)
        .start()
        .await;
    let promotion = create_open(&server.client, 100).await;
    let mut customer = 0;
    let mut failures = 0.0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Grab until three exports have failed: each round ends spans, and the
    // exporter sends what ended every second.
    while failures < 3.0 {
        assert!(std::time::Instant::now() < deadline, "exports never failed");
        customer += 1;
        let grab = server
            .client
            .grab(promotion.promotion_id, &format!("c-{customer}"))
            .await;
        assert!(matches!(grab, Ok(Grab::Won(_))), "{grab:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        failures = metric(&server.client, "seckill_trace_export_failures_total").await;
    }
    server.terminate().await;
    let log = std::fs::read_to_string(&log).expect("the server's log");
    let lines = log.matches("span export failed").count();
    assert_eq!(lines, 1, "one line per interval, not per export:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jetstream_message_of_a_traced_grab_carries_its_traceparent() {
    let collector = Collector::start().await;
    let fixture = PgFixture::new().await;
    let nats = NatsFixture::new().await;
    let server = ServerProcess::builder()
        .database(fixture.url())
        .flags(&publishing_to(&nats))
        .flags(&traced_by(&collector, "publisher"))
        .start()
        .await;
    let promotion = create_open(&server.client, 10).await;
    let answer = server
        .client
        .grab_request(promotion.promotion_id, "traced")
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await
        .expect("grab");
    assert_eq!(answer.status(), reqwest::StatusCode::CREATED);
    let untraced = server.client.grab(promotion.promotion_id, "untraced").await;
    assert!(matches!(untraced, Ok(Grab::Won(_))), "{untraced:?}");

    let spans = collector
        .wait_for("the grab's request span", |spans| {
            spans
                .iter()
                .any(|span| span.trace_id == TRACE && span.name.starts_with("POST"))
        })
        .await;
    let request = one(&spans, "publisher", "POST /command/coupons/");
    let expected = format!("00-{TRACE}-{}-01", request.span_id);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let grabs = loop {
        let grabs: Vec<_> = nats
            .messages()
            .await
            .into_iter()
            .filter(|message| {
                message
                    .headers
                    .get(EVENT_TYPE_HEADER)
                    .is_some_and(|kind| kind.as_str() == "CouponGrabbed")
            })
            .collect();
        if grabs.len() == 2 {
            break grabs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the grabs never reached JetStream"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let traceparents: Vec<Option<String>> = grabs
        .iter()
        .map(|message| {
            message
                .headers
                .get(TRACEPARENT_HEADER)
                .map(|value| value.as_str().to_owned())
        })
        .collect();
    // The traced grab's message carries its request's trace context. The
    // other grab is sampled too (a new trace, ratio 1), so it has one of
    // its own, in another trace.
    assert_eq!(
        traceparents[0].as_deref(),
        Some(expected.as_str()),
        "{traceparents:?}"
    );
    let other = traceparents[1]
        .as_deref()
        .expect("the second grab is traced too");
    assert!(!other.contains(TRACE), "{other}");
}
