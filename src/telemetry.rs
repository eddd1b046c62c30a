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
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps the trace exporter and the log writer alive; dropping it flushes pending spans and
/// lines.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    _logs: BatchFlusher,
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

/// Whether spans go to an OTLP collector: `OTEL_EXPORTER_OTLP_ENDPOINT` names one.
pub fn traces_exported() -> bool {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|v| !v.is_empty())
}

fn otlp(service: &str) -> Option<SdkTracerProvider> {
    if !traces_exported() {
        return None;
    }
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

/// Bytes of log lines held before the request that fills the buffer writes them itself.
const BATCH_BYTES: usize = 64 * 1024;
/// How long a line waits, at most, before a background flush writes it.
const BATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Log lines bound for stderr, written in batches: when [`BATCH_BYTES`] have gathered (by
/// the request that fills the buffer) or every [`BATCH_INTERVAL`] (by [`BatchFlusher`]'s
/// thread). Nothing is dropped: a full buffer is written before the next line goes in. A line
/// is written whole, and batches go out in the order they were filled.
#[derive(Clone)]
struct BatchedStderr {
    pending: Arc<Mutex<Vec<u8>>>,
    /// Held while a batch is written, so batches go out in order.
    output: Arc<Mutex<Box<dyn std::io::Write + Send>>>,
}

impl BatchedStderr {
    fn new(output: Box<dyn std::io::Write + Send>) -> Self {
        Self {
            pending: Arc::default(),
            output: Arc::new(Mutex::new(output)),
        }
    }

    /// Writes what has gathered; with `only_if_full`, only when a batch is full.
    fn flush_pending(&self, only_if_full: bool) -> std::io::Result<()> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.is_empty() || (only_if_full && pending.len() < BATCH_BYTES) {
            return Ok(());
        }
        let batch = std::mem::take(&mut *pending);
        let mut output = self.output.lock().unwrap_or_else(|p| p.into_inner());
        drop(pending);
        output.write_all(&batch)?;
        output.flush()
    }
}

impl std::io::Write for BatchedStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(line);
        self.flush_pending(true)?;
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_pending(false)
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedStderr {
    type Writer = BatchedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Flushes [`BatchedStderr`] every [`BATCH_INTERVAL`]; dropping it writes what is left.
struct BatchFlusher {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for BatchFlusher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn batched(output: Box<dyn std::io::Write + Send>) -> (BatchedStderr, BatchFlusher) {
    use std::sync::mpsc::RecvTimeoutError;
    let writer = BatchedStderr::new(output);
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let flushing = writer.clone();
    let thread = std::thread::Builder::new()
        .name("log-flush".into())
        .spawn(move || {
            loop {
                let last = !matches!(
                    stopped.recv_timeout(BATCH_INTERVAL),
                    Err(RecvTimeoutError::Timeout)
                );
                if let Err(e) = flushing.flush_pending(false) {
                    eprintln!("writing logs failed: {e}");
                }
                if last {
                    return;
                }
            }
        })
        .map_err(|e| {
            eprintln!(
                "log flushing thread not started ({e}): logs are written every {BATCH_BYTES} bytes"
            )
        })
        .ok();
    (
        writer,
        BatchFlusher {
            stop: Some(stop),
            thread,
        },
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
    // Each token issued leaves an audit line: lines are collected in memory and written in
    // batches, so a request neither writes to stderr nor wakes a writer thread. Colours only
    // for a terminal.
    let (writer, guard) = batched(Box::new(std::io::stderr()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A `Write` whose bytes a test can read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn batched_lines_are_written_whole_in_order_and_none_is_lost_when_the_flusher_stops() {
        let out = Captured::default();
        let (writer, flusher) = batched(Box::new(out.clone()));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        w.write_all(format!("thread {t} line {i:05}\n").as_bytes())
                            .expect("write");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer thread");
        }
        drop(flusher);
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8_000, "every line, once");
        for t in 0..4 {
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            assert_eq!(mine.len(), 2_000, "thread {t}: whole lines");
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "thread {t}: in order");
        }
    }

    #[test]
    fn a_quiet_log_is_written_within_the_flush_interval() {
        let out = Captured::default();
        let (mut writer, _flusher) = batched(Box::new(out.clone()));
        writer.write_all(b"one line\n").expect("write");
        assert!(out.0.lock().expect("lock").is_empty(), "held for a batch");
        // Bounded: 50 intervals at most.
        for _ in 0..50 {
            std::thread::sleep(BATCH_INTERVAL);
            if !out.0.lock().expect("lock").is_empty() {
                break;
            }
        }
        assert_eq!(&*out.0.lock().expect("lock"), b"one line\n");
    }
}
