//! Distributed tracing: the [`TraceContext`] port, through which the engine
//! carries a command's trace where `tracing`'s own span tree cannot follow
//! it: from the caller's task into the promotion's writer (a batch of many
//! callers' commands), to the owner replica, and into the stored events.
//!
//! The engine's spans are `tracing` spans at DEBUG level under the target
//! `seckill_app::engine`; a subscriber that does not enable them pays a
//! callsite check per command, nothing more. What turns them into a trace
//! (OpenTelemetry, say) is the embedder's choice: `seckill-opentelemetry`
//! implements this port for `tracing-opentelemetry`.
//!
//! The spans of one grab (docs/adr/0017-tracing.md): `queue` (its wait in
//! the promotion's queue) and `decide` (the aggregate's decision) are
//! children of the caller's span; `commit` (the batch's one append) is a
//! child of the batch's first sampled command's span and linked (follows
//! from) to every other sampled command it answered, so a commit of 500
//! grabs is one span.

use tracing::Span;

/// How a trace crosses what `tracing`'s parent spans cannot: the W3C
/// `traceparent` of a span, and a span continuing one. Implemented by the
/// tracing backend (`seckill_opentelemetry::OtelTraceContext`); given to
/// [`SecKillBuilder::trace_context`](crate::SecKillBuilder::trace_context).
pub trait TraceContext: Send + Sync + 'static {
    /// Whether `span` belongs to a trace that is sampled (exported). The
    /// engine follows only those through its writer: an unsampled command
    /// costs no span there.
    fn is_sampled(&self, span: &Span) -> bool;

    /// The W3C `traceparent` of `span` (`00-<trace>-<span>-<flags>`), if it
    /// belongs to a trace, sampled or not: a forwarded command carries it
    /// either way, so the owner follows the caller's sampling decision.
    fn traceparent(&self, span: &Span) -> Option<String>;

    /// Makes `span`, not yet entered, continue the trace `traceparent`
    /// names. A malformed one is ignored: the span starts a trace of its own.
    fn set_parent(&self, span: &Span, traceparent: &str);
}

/// The target of the engine's spans.
pub(crate) const TARGET: &str = "seckill_app::engine";

/// A command's place in a sampled trace, carried with it to the writer.
pub(crate) struct Traced {
    /// The caller's span: the parent of `queue` and `decide`.
    pub(crate) caller: Span,
    /// Open from the moment the command is queued until the writer takes it.
    pub(crate) queue: Option<Span>,
}

impl Traced {
    /// The trace of a command queued now from the current span, if tracing
    /// follows it: the engine's spans are enabled and its trace is sampled.
    pub(crate) fn capture(context: Option<&dyn TraceContext>) -> Option<Box<Self>> {
        let context = context?;
        // The callsite check first: with the engine's spans off, this is
        // all a command pays.
        if !tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
            return None;
        }
        let caller = Span::current();
        if !context.is_sampled(&caller) {
            return None;
        }
        let queue = tracing::debug_span!(target: TARGET, parent: &caller, "queue");
        Some(Box::new(Self {
            caller,
            queue: Some(queue),
        }))
    }
}

/// A count as a span field: signed, because OpenTelemetry's integers are,
/// and a `u64` field would reach it as text.
pub(crate) fn as_attribute(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
