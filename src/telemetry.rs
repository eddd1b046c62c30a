//! Logging and tracing setup: pretty logs in development, JSON in production, and OTLP
//! traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the exporter reads the standard
//! `OTEL_*` variables itself). W3C `traceparent` is the propagation format, so one trace
//! spans the gateway and the AuthService (`latchkey_auth::trace` reads it on the gRPC side).
//! Logs go to stderr, so a command's standard output holds only what it was asked for.
//!
//! Credentials never reach a log or a span: handlers record ids (client_id, grant_id,
//! user_id), never tokens, codes or secrets.

use crate::config::{Environment, Settings};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps the trace exporter and the log writer alive; dropping it flushes pending spans and
/// lines.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    _logs: tracing_appender::non_blocking::WorkerGuard,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("flushing traces failed: {e}");
        }
    }
}

fn otlp(service: &str) -> Option<SdkTracerProvider> {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())?;
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("OTLP exporter not started: {e}");
            return None;
        }
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(service.to_owned());
    }
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    )
}

/// Installs the global subscriber and propagator once; later calls are no-ops.
pub fn init(settings: &Settings, service: &str) -> Telemetry {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,h2=warn,tower=warn"));
    let json = match settings.log_format {
        Some(f) => f == crate::config::LogFormat::Json,
        None => settings.env == Environment::Production,
    };
    let provider = otlp(service);
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("latchkey")));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    // Lines are written by a thread of their own, so a request (each token issued leaves an
    // audit line) never waits on stderr; colours only for a terminal.
    // Not lossy: when the buffer is full a request waits rather than lose an audit line.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let _ = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_target(true)
                    .with_writer(writer),
            )
            .try_init()
    } else {
        use std::io::IsTerminal;
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(writer),
            )
            .try_init()
    };
    Telemetry {
        provider,
        _logs: guard,
    }
}
