//! Logs and traces: the `tracing` subscriber the server runs under, with a
//! log layer (`--log`, `--log-format`) and, with `--otlp-endpoint`, an
//! OpenTelemetry layer that exports the request and engine spans over OTLP
//! (docs/adr/0017-tracing.md).

use std::time::Duration;

use anyhow::Context;
use clap::Args as ClapArgs;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use seckill_opentelemetry::MeteredExporter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use super::LogFormat;

/// The spans and events the trace layer records: the server's and the
/// engine's spans (DEBUG), and warnings from anywhere as span events. Never
/// the exporter's own HTTP client, whose spans would trace every export.
const TRACE_FILTER: &str = "warn,seckill_app=debug,seckill_server=debug,seckill_postgres=debug,\
seckill_nats=debug,hyper=off,hyper_util=off,h2=off,opentelemetry=off,opentelemetry_sdk=off,\
opentelemetry_otlp=off,opentelemetry_http=off";

/// Spans queued for export before new ones are dropped: a sale at full
/// sampling ends thousands of spans a second, more than the SDK's default
/// queue holds between two exports.
const EXPORT_QUEUE: usize = 65_536;

/// Most links a span keeps: a commit links every sampled grab it answered,
/// up to `--max-batch`; the SDK's default keeps 128.
const MAX_LINKS: u32 = 8_192;

/// Where traces go, and how many.
#[derive(Debug, Clone, ClapArgs)]
pub(crate) struct TraceArgs {
    /// Export traces over OTLP/HTTP (protobuf) to this collector, e.g.
    /// `http://127.0.0.1:4318`; spans go to `<endpoint>/v1/traces`.
    /// Without it nothing is traced, and the engine follows no trace.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub(crate) otlp_endpoint: Option<String>,

    /// The `service.name` of the exported spans.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "seckill-server")]
    pub(crate) otel_service_name: String,

    /// The share of requests without a `traceparent` that start a trace,
    /// from 0 to 1, drawn before the request's span exists. A request with
    /// a `traceparent` follows its caller's decision, and a forwarded grab
    /// its first replica's.
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG", default_value_t = 1.0, value_parser = parse_ratio)]
    pub(crate) trace_sample_ratio: f64,
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("{text:?} is not a ratio from 0 to 1")),
    }
}

/// The trace pipeline, to flush on the way out.
pub(crate) struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Exports what is still queued, within the exporter's timeout.
    pub(crate) async fn shutdown(self) {
        // Blocking: the SDK waits for its export thread, which exports on
        // this runtime, so not on a worker of it.
        let provider = self.provider;
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
}

/// Installs the subscriber: logs by `log` in `format`, and with `traces`
/// naming an endpoint, spans exported there. Call inside the runtime.
pub(crate) fn init(
    log: &str,
    format: LogFormat,
    traces: Option<&TraceArgs>,
) -> anyhow::Result<Option<Tracing>> {
    let filter = EnvFilter::try_new(log).context("parsing --log / RUST_LOG")?;
    // Colours for a terminal only: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Human => logs.with_filter(filter).boxed(),
        LogFormat::Json => logs.json().with_filter(filter).boxed(),
    };
    let Some((args, endpoint)) =
        traces.and_then(|args| Some((args, args.otlp_endpoint.as_deref()?)))
    else {
        Registry::default().with(logs).init();
        return Ok(None);
    };
    let provider = provider(args, endpoint)?;
    // Only what a trace of a grab needs: no source locations, thread names,
    // busy and idle times or targets in each span, and no OpenTelemetry
    // context switched on every poll (propagation goes through
    // `OtelTraceContext`). Each is work per span, sampled or not.
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("seckill-server"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_target(false)
        .with_context_activation(false)
        // `Targets`, not `EnvFilter`: a static filter that needs no hook on
        // every span's entry and exit.
        .with_filter(
            TRACE_FILTER
                .parse::<Targets>()
                .context("the trace filter")?,
        )
        .boxed();
    Registry::default().with(vec![logs, spans]).init();
    tracing::info!(
        endpoint,
        ratio = args.trace_sample_ratio,
        "exporting traces"
    );
    Ok(Some(Tracing { provider }))
}

/// The tracer provider: OTLP/HTTP to `endpoint`, batched, parent-based
/// sampling, failures counted and logged by `MeteredExporter`.
fn provider(args: &TraceArgs, endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(Duration::from_secs(5))
        .build()
        .context("building the OTLP exporter (--otlp-endpoint)")?;
    let exporter = MeteredExporter::new(exporter, tokio::runtime::Handle::current());
    let batches = BatchConfigBuilder::default()
        .with_max_queue_size(EXPORT_QUEUE)
        .with_max_export_batch_size(2_048)
        .with_scheduled_delay(Duration::from_secs(1))
        .build();
    // Every root is a request the server already drew for
    // (`AppState::with_trace_ratio`, before the span exists); below a root,
    // the parent decides.
    let sampler = Sampler::ParentBased(Box::new(Sampler::AlwaysOn));
    Ok(SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter)
                .with_batch_config(batches)
                .build(),
        )
        .with_sampler(sampler)
        .with_max_links_per_span(MAX_LINKS)
        .with_resource(
            Resource::builder()
                .with_service_name(args.otel_service_name.clone())
                .build(),
        )
        .build())
}
