//! The engine's series, as an embedder sees them: recorded through the
//! `metrics` facade into a Prometheus recorder of this test's own, and read
//! back from its text rendering.

use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use seckill_app::SecKill;
use seckill_domain::{CouponCount, CustomerId, Discount, PromotionTerms};
use seckill_memory::MemoryStore;

/// The value of the unlabelled series `name`, if it is rendered.
fn value(handle: &PrometheusHandle, name: &str) -> Option<f64> {
    handle.render().lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.parse().ok()
    })
}

#[tokio::test]
async fn a_sale_shows_in_the_engine_series_and_matches_its_stats() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // The engine takes its handles from the recorder current when it is built.
    let seckill = metrics::with_local_recorder(&recorder, || SecKill::new(MemoryStore::new()));
    let now = chrono::Utc::now();
    let terms = PromotionTerms::new(
        CouponCount::new(2).unwrap(),
        Discount::new(0.8).unwrap(),
        now - chrono::Duration::minutes(1),
        now + chrono::Duration::hours(1),
        None,
    )
    .unwrap();
    let promotion = seckill.create_promotion(terms).await.unwrap().id();
    for name in ["alice", "bob"] {
        let customer = CustomerId::parse(name).unwrap();
        seckill.grab(promotion, customer).await.unwrap();
    }
    // Sold out: answered from the frozen state, no writer involved.
    let carol = CustomerId::parse("carol").unwrap();
    assert!(seckill.grab(promotion, carol).await.is_err());

    // The writer froze the promotion and is stopping; its gauge share goes
    // when it is dropped.
    let writer_gone = async {
        while value(&handle, "seckill_writers") != Some(0.0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), writer_gone)
        .await
        .expect("the writers gauge falls to 0 once the writer stops");

    let stats = seckill.stats();
    assert_eq!(stats.commits, 3, "the creation and two grabs");
    for (name, expected) in [
        ("seckill_commits_total", stats.commits),
        ("seckill_committed_commands_total", stats.committed_commands),
        ("seckill_committed_events_total", stats.committed_events),
        ("seckill_failed_commits_total", 0),
        ("seckill_conflicts_total", 0),
        ("seckill_overloaded_total", 0),
        ("seckill_frozen_promotions", 1),
        ("seckill_queue_depth", 0),
        // One observation per batch, and each batch was committed.
        ("seckill_batch_size_count", 3),
        ("seckill_commit_duration_seconds_count", 3),
    ] {
        assert_eq!(value(&handle, name), Some(expected as f64), "{name}");
    }
}
