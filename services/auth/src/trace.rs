//! Continuing the caller's trace: W3C `traceparent` read from gRPC metadata, so one trace
//! spans the gateway and the AuthService. The subscriber and exporter are set up by the
//! binary; this is only the gRPC end of propagation.
//!
//! Credentials never reach a span: handlers record ids (client_id, grant_id, user_id), never
//! tokens, codes or secrets.

/// Reads `traceparent` from HTTP headers or gRPC metadata.
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// A span for an incoming gRPC request, continuing the caller's trace when it sent one.
///
/// The span is at INFO when traces are `exported`, and at DEBUG otherwise: with no exporter
/// it would only prefix the log lines of the RPC, which its handler's own span already names,
/// and making it (formatting its fields for the log) was a twelfth of VerifyToken's cost.
/// `RUST_LOG=latchkey_auth=debug` brings it back to the logs.
pub fn grpc_span(req: &http::Request<()>, exported: bool) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let path = req.uri().path();
    // `%`: the path is written as it is; as a plain `&str` field it would be escaped character
    // by character, for a value that never needs it.
    let span = if exported {
        tracing::info_span!("grpc", rpc = %path, otel.kind = "server")
    } else {
        tracing::debug_span!("grpc", rpc = %path, otel.kind = "server")
    };
    // Only a caller that sent a trace context has one to continue; reading the propagator
    // for every other request costs VerifyToken for nothing.
    if !span.is_disabled() && req.headers().contains_key("traceparent") {
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(req.headers()))
        });
        let _ = span.set_parent(parent);
    }
    span
}
