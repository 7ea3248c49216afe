//! OpenTelemetry for SecKill: the engine's trace context over
//! `tracing-opentelemetry`, and a span exporter wrapper for services.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn run(store: seckill_memory::MemoryStore) -> Result<(), seckill_app::engine::ConfigError> {
//! use seckill_opentelemetry::OtelTraceContext;
//!
//! // With a subscriber that has a `tracing_opentelemetry` layer and enables
//! // `seckill_app=debug` spans for it:
//! let seckill = seckill_app::SecKill::builder(store)
//!     .trace_context(Arc::new(OtelTraceContext))
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! * [`OtelTraceContext`] – `seckill_app::trace::TraceContext` for spans
//!   that a `tracing_opentelemetry` layer records: whether a span is
//!   sampled, its W3C `traceparent`, and a span continuing one.
//! * [`MeteredExporter`] – runs another span exporter's exports on a Tokio
//!   runtime (the SDK's batch processor exports from a thread of its own,
//!   where a hyper-based OTLP exporter finds no runtime), counts the
//!   failures in `seckill_trace_export_failures_total`, and logs them once
//!   per interval, so a collector that is down costs one line a minute,
//!   not one per batch.
//! * [`traceparent`] and [`TRACEPARENT`] – the W3C header's value for a
//!   span context, and its name, for transports that carry it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use seckill_app::throttle::LogThrottle;
use seckill_app::trace::TraceContext;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C trace context header, `traceparent`.
pub const TRACEPARENT: &str = "traceparent";

/// The engine's [`TraceContext`] for spans a `tracing_opentelemetry` layer
/// records. A span that layer does not see (filtered out, or no such
/// layer) belongs to no trace: not sampled, no `traceparent`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtelTraceContext;

impl OtelTraceContext {
    fn span_context(span: &Span) -> SpanContext {
        span.context().span().span_context().clone()
    }
}

impl TraceContext for OtelTraceContext {
    fn is_sampled(&self, span: &Span) -> bool {
        Self::span_context(span).is_sampled()
    }

    fn traceparent(&self, span: &Span) -> Option<String> {
        let context = Self::span_context(span);
        context.is_valid().then(|| traceparent(&context))
    }

    fn set_parent(&self, span: &Span, traceparent: &str) {
        let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        if parent.span().span_context().is_valid() {
            // Fails only for a span already started or not recorded by the
            // layer; then it keeps the parent it has.
            let _ = span.set_parent(parent);
        }
    }
}

/// The W3C `traceparent` of `context`: version 00, trace id, span id, flags.
pub fn traceparent(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

/// Failed exports, by the [`MeteredExporter`]s of this process.
const EXPORT_FAILURES: &str = "seckill_trace_export_failures_total";

/// A span exporter around `E` for a service: each export runs on the
/// Tokio runtime given (so an exporter that needs one works under the
/// SDK's batch thread), and a failed export is counted in
/// `seckill_trace_export_failures_total` and logged once per interval with
/// how many failed since. Spans of a failed export are dropped: traces are
/// for diagnosis, and nothing waits for them.
pub struct MeteredExporter<E> {
    inner: Arc<E>,
    runtime: tokio::runtime::Handle,
    failures: metrics::Counter,
    throttle: Arc<LogThrottle>,
}

impl<E: SpanExporter + 'static> MeteredExporter<E> {
    /// Wraps `inner`, exporting on `runtime`.
    pub fn new(inner: E, runtime: tokio::runtime::Handle) -> Self {
        metrics::describe_counter!(
            EXPORT_FAILURES,
            "Span exports that failed (the collector unreachable or refusing)."
        );
        Self {
            inner: Arc::new(inner),
            runtime,
            failures: metrics::counter!(EXPORT_FAILURES),
            throttle: Arc::new(LogThrottle::new(std::time::Duration::from_secs(60))),
        }
    }
}

impl<E> fmt::Debug for MeteredExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteredExporter").finish_non_exhaustive()
    }
}

impl<E: SpanExporter + 'static> SpanExporter for MeteredExporter<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let inner = Arc::clone(&self.inner);
        let spans = batch.len();
        let task = self.runtime.spawn(async move { inner.export(batch).await });
        let failures = self.failures.clone();
        let throttle = Arc::clone(&self.throttle);
        async move {
            let outcome = task.await.unwrap_or_else(|error| {
                Err(OTelSdkError::InternalFailure(format!(
                    "the export task failed: {error}"
                )))
            });
            if let Err(error) = &outcome {
                failures.increment(1);
                if let Some(left_out) = throttle.admit("span export failed") {
                    tracing::warn!(%error, spans, left_out, "span export failed; its spans are dropped");
                }
            }
            outcome
        }
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Only before the first export, when nothing else holds `inner`.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn recorded(sampler: Sampler) -> (InMemorySpanExporter, tracing::subscriber::DefaultGuard) {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .with_sampler(sampler)
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        (exporter, tracing::subscriber::set_default(subscriber))
    }

    #[test]
    fn a_span_continues_a_traceparent_and_hands_on_its_own() {
        let (_exporter, _guard) = recorded(Sampler::AlwaysOn);
        let span = tracing::info_span!("forwarded");
        OtelTraceContext.set_parent(&span, PARENT);
        let own = OtelTraceContext.traceparent(&span).expect("a traced span");
        assert!(
            own.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{own}"
        );
        assert!(!own.contains("00f067aa0ba902b7"), "its own span id: {own}");
        assert!(own.ends_with("-01"));
        assert!(OtelTraceContext.is_sampled(&span));
    }

    #[test]
    fn an_unsampled_trace_is_followed_but_not_sampled() {
        let (_exporter, _guard) = recorded(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
        let span = tracing::info_span!("forwarded");
        OtelTraceContext.set_parent(
            &span,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        );
        assert!(
            !OtelTraceContext.is_sampled(&span),
            "the caller's decision holds"
        );
        let own = OtelTraceContext
            .traceparent(&span)
            .expect("still in the trace");
        assert!(own.ends_with("-00"), "{own}");
    }

    #[test]
    fn a_malformed_traceparent_leaves_the_span_a_root_of_its_own() {
        let (_exporter, _guard) = recorded(Sampler::AlwaysOn);
        let span = tracing::info_span!("forwarded");
        OtelTraceContext.set_parent(&span, "not a traceparent");
        let own = OtelTraceContext.traceparent(&span).expect("a traced span");
        assert!(!own.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
    }

    #[test]
    fn without_an_opentelemetry_layer_a_span_is_in_no_trace() {
        let _guard = tracing::subscriber::set_default(tracing_subscriber::registry());
        let span = tracing::info_span!("request");
        OtelTraceContext.set_parent(&span, PARENT);
        assert_eq!(OtelTraceContext.traceparent(&span), None);
        assert!(!OtelTraceContext.is_sampled(&span));
    }
}
