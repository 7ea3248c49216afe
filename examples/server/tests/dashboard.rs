//! The Grafana dashboard (`docs/grafana/seckill.json`) queries only metrics
//! the server exports: every `seckill_*` series its panels name is one the
//! real server lists in `/metrics`, once it has sold, refused a grab over a
//! rate limit and published to JetStream (so its subscription's series
//! exist too).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{create_open, publishing_to, ServerProcess, ADMIN_TOKEN};
use seckill_client::Grab;
use seckill_nats::testing::NatsFixture;

const DASHBOARD: &str = include_str!("../../../docs/grafana/seckill.json");

/// Every `seckill_*` metric name in `text`, as written.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("seckill_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The metric names the dashboard's queries use, each as the series it
/// belongs to (a histogram's `_bucket` is its histogram's).
fn queried() -> BTreeSet<String> {
    let dashboard: serde_json::Value =
        serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut names = BTreeSet::new();
    for panel in panels {
        let targets = panel["targets"].as_array().expect("every panel queries");
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            names.extend(names_in(expr).into_iter().map(|name| {
                name.strip_suffix("_bucket")
                    .map_or(name.clone(), str::to_owned)
            }));
        }
    }
    names
}

/// The metric families `/metrics` declares (`# TYPE <name> <kind>`).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let names =
        names_in("sum by (le) (rate(seckill_a_total[1m])) / max(seckill_b_bucket{x=\"1\"})");
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["seckill_a_total", "seckill_b_bucket"]
    );
    let exported =
        exported("# HELP seckill_a_total A.\n# TYPE seckill_a_total counter\nseckill_a_total 1\n");
    assert_eq!(
        exported.into_iter().collect::<Vec<_>>(),
        ["seckill_a_total"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exported() {
    let wanted = queried();
    assert!(wanted.len() >= 15, "{wanted:?}");
    let nats = NatsFixture::new().await;
    let server = ServerProcess::builder()
        .bare()
        .flags(&["--admin-token", ADMIN_TOKEN])
        .flags(&publishing_to(&nats))
        .flags(&["--limit-grab-per-customer", "1/min burst 1"])
        .start()
        .await;
    let client = server.client.clone();
    let promotion = create_open(&client, 5).await.promotion_id;
    assert!(matches!(
        client.grab(promotion, "alice").await,
        Ok(Grab::Won(_))
    ));
    // Over the customer's limit: a rate-limited answer, counted by scope.
    assert!(matches!(
        client.grab(promotion, "alice").await,
        Ok(Grab::RateLimited { .. })
    ));

    // The publisher's series appear once its subscription runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = client.metrics().await.expect("/metrics");
        let missing: Vec<_> = wanted.difference(&exported(&metrics)).cloned().collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard queries metrics the server does not export: {missing:?}\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.kill().await;
}
