//! Metrics: a Prometheus recorder for the `metrics` facade, rendered at
//! `/metrics`, and the grab counters and latency histogram of the HTTP layer.
//!
//! The engine's series (commits, batch sizes, queue depth, ...) come from
//! `seckill-app` through the same facade. Its handles are taken when the
//! service is built, from the recorder current then: the binary installs
//! the global one first ([`Metrics::install`]); tests, which run several
//! servers in one process, give each its own ([`Metrics::isolated`] and
//! [`Metrics::recording`]). See docs/adr/0007-metrics-facade-and-prometheus-exporter.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Extension;
use metrics::{counter, describe_counter, describe_histogram, histogram, Unit};
use metrics_exporter_prometheus::{
    BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use seckill_app::SecKillError;
use seckill_domain::PromotionError;

/// How a grab request ended, as the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrabOutcome {
    /// The customer got a coupon.
    Won,
    /// The customer already held one.
    AlreadyGrabbed,
    /// Every coupon was taken.
    SoldOut,
    /// The promotion opens later.
    NotStarted,
    /// The promotion ended.
    Ended,
    /// No such promotion.
    UnknownPromotion,
    /// The ids in the body did not parse or broke their rules. Bodies that
    /// are not even JSON of the right shape never reach the handler and are
    /// not counted here.
    Invalid,
    /// The promotion's queue was full.
    Overloaded,
    /// The server was shutting down.
    ShuttingDown,
    /// The customer token speaks for another customer.
    Forbidden,
    /// The customer grabbed more often than their limit.
    RateLimited,
    /// The store failed, the promotion's owner could not be reached, or a
    /// rival writer kept winning: nothing was recorded.
    StorageFailed,
    /// The commit's answer was lost: it may have been recorded.
    OutcomeUnknown,
}

impl GrabOutcome {
    /// The label value.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Won => "won",
            Self::AlreadyGrabbed => "already_grabbed",
            Self::SoldOut => "sold_out",
            Self::NotStarted => "not_started",
            Self::Ended => "ended",
            Self::UnknownPromotion => "unknown_promotion",
            Self::Invalid => "invalid",
            Self::Overloaded => "overloaded",
            Self::ShuttingDown => "shutting_down",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::StorageFailed => "storage_failed",
            Self::OutcomeUnknown => "outcome_unknown",
        }
    }

    /// The outcome of an application error.
    pub fn of_error(error: &SecKillError) -> Self {
        match error {
            SecKillError::Rejected(rejection) => match rejection {
                PromotionError::AlreadyGrabbed(_) => Self::AlreadyGrabbed,
                PromotionError::SoldOut { .. } => Self::SoldOut,
                PromotionError::NotStarted { .. } => Self::NotStarted,
                PromotionError::Ended { .. } | PromotionError::AlreadyFinished => Self::Ended,
                PromotionError::UnknownPromotion => Self::UnknownPromotion,
                _ => Self::Invalid,
            },
            SecKillError::NotFound(_) => Self::UnknownPromotion,
            SecKillError::Overloaded(_) => Self::Overloaded,
            SecKillError::ShuttingDown => Self::ShuttingDown,
            SecKillError::OutcomeUnknown { .. } => Self::OutcomeUnknown,
            // Nothing was recorded, whatever failed: the store, the owner,
            // a rival writer, or a failure added to the library later.
            _ => Self::StorageFailed,
        }
    }
}

const GRABS: &str = "seckill_grabs_total";
const RATE_LIMITED: &str = "seckill_rate_limited_total";
const GRAB_DURATION: &str = "seckill_grab_duration_seconds";

/// Upper bounds of the grab latency buckets, in seconds: 100 µs to 5 s,
/// about 2.5× apart, which covers an in-memory grab and a slow PostgreSQL
/// commit. The engine's commit latency uses them too.
const LATENCY_BOUNDS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Commands per batch: 1 (no batching) up to the default `max_batch`.
const BATCH_BOUNDS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// The server's recorder: what `/metrics` renders. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    /// `Some` when this recorder is not the process's global one: then every
    /// series is recorded with it as the current recorder.
    own: Option<Arc<PrometheusRecorder>>,
}

impl Metrics {
    /// Installs the process's global recorder. Do it once, before building
    /// the service, so the engine's handles are taken from it.
    pub fn install() -> Result<Self, BuildError> {
        let handle = builder()?.install_recorder()?;
        let metrics = Self { handle, own: None };
        metrics.recording(describe);
        Ok(metrics)
    }

    /// A recorder of its own, not installed: several servers in one process
    /// (the HTTP tests) each count only their own grabs. Build the service
    /// inside [`Metrics::recording`] so its engine reports here too.
    pub fn isolated() -> Self {
        let recorder = builder()
            .expect("the bucket bounds are constants and not empty")
            .build_recorder();
        let metrics = Self {
            handle: recorder.handle(),
            own: Some(Arc::new(recorder)),
        };
        metrics.recording(describe);
        metrics
    }

    /// Runs `f` with this recorder as the current one: series registered or
    /// recorded inside go here. `SecKill` registers its handles when it is
    /// built, so `metrics.recording(|| SecKill::builder(store).build())`.
    pub fn recording<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.own {
            Some(recorder) => metrics::with_local_recorder(recorder.as_ref(), f),
            None => f(),
        }
    }

    /// Counts one answered grab and how long the server took to answer it.
    pub fn record_grab(&self, outcome: GrabOutcome, elapsed: Duration) {
        self.recording(|| {
            counter!(GRABS, "outcome" => outcome.label()).increment(1);
            histogram!(GRAB_DURATION).record(elapsed.as_secs_f64());
        });
    }

    /// Counts one request refused by the rate limit of `scope`.
    pub(super) fn record_rate_limited(&self, scope: &'static str) {
        self.recording(|| counter!(RATE_LIMITED, "scope" => scope).increment(1));
    }

    /// The exposition, in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains the histograms' recent samples into their buckets, so memory
    /// stays bounded between scrapes. [`super::serve`] calls it periodically.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// Histograms as Prometheus histograms with fixed buckets (not summaries).
fn builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(GRAB_DURATION.into()), &LATENCY_BOUNDS)?
        .set_buckets_for_metric(
            Matcher::Full("seckill_commit_duration_seconds".into()),
            &LATENCY_BOUNDS,
        )?
        .set_buckets_for_metric(Matcher::Full("seckill_batch_size".into()), &BATCH_BOUNDS)
}

fn describe() {
    describe_counter!(GRABS, "Grab requests answered, by outcome.");
    describe_counter!(
        RATE_LIMITED,
        "Requests refused with 429 by a rate limit, by scope (grab_address, grab_customer, api_address)."
    );
    describe_histogram!(
        GRAB_DURATION,
        Unit::Seconds,
        "Time the server took to answer a grab that reached the handler, parsing, queueing and commit included."
    );
}

/// The route layer of the grab endpoint: times each request and counts it by
/// the [`GrabOutcome`] the handler left in the response's extensions. A
/// request refused before the handler (malformed JSON) carries none and is
/// not counted.
pub(super) async fn track_grab(
    Extension(metrics): Extension<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    if let Some(&outcome) = response.extensions().get::<GrabOutcome>() {
        metrics.record_grab(outcome, started.elapsed());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let metrics = Metrics::isolated();
        metrics.record_grab(GrabOutcome::Won, Duration::from_micros(50));
        metrics.record_grab(GrabOutcome::SoldOut, Duration::from_millis(3));
        metrics.record_grab(GrabOutcome::SoldOut, Duration::from_secs(9));
        let text = metrics.render();
        assert!(text.contains("seckill_grab_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("seckill_grab_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("seckill_grab_duration_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("seckill_grab_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("seckill_grab_duration_seconds_count 3\n"));
        assert!(text.contains("seckill_grabs_total{outcome=\"sold_out\"} 2\n"));
    }

    #[test]
    fn isolated_recorders_count_only_their_own() {
        let (one, other) = (Metrics::isolated(), Metrics::isolated());
        one.record_grab(GrabOutcome::Won, Duration::from_millis(1));
        assert!(one
            .render()
            .contains("seckill_grabs_total{outcome=\"won\"} 1\n"));
        assert!(!other.render().contains("outcome=\"won\""));
    }
}
