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
/// `RUST_LOG=info,latchkey_auth=debug` brings it back to the logs (as the README says).
pub fn grpc_span(req: &http::Request<()>, exported: bool) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    // The path is the caller's: it may hold any Unicode (`http` accepts UTF-8 in a path),
    // line and paragraph separators and C1 controls included. `RpcPath` writes the plain ASCII
    // of every real RPC as it is and escapes anything else, so a caller cannot forge a log
    // line or a terminal escape through it.
    let path = RpcPath(req.uri().path());
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

/// A request's path as a span field: written as it is when it is printable ASCII with nothing
/// a log reader treats specially (every RPC's path is), and escaped as `Debug` escapes a
/// string otherwise. Writing a plain path as it is spares the escaping of each character.
struct RpcPath<'a>(&'a str);

impl std::fmt::Display for RpcPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plain = self
            .0
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        if plain {
            f.write_str(self.0)
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RpcPath, grpc_span};

    /// What a text log shows of a call whose path carries a next-line character and a line
    /// separator: the path, escaped, on the call's own line.
    #[test]
    fn a_callers_path_cannot_break_a_text_log_line() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let req = http::Request::builder()
                .uri("/x\u{85}audit_event=forged\u{2028}y")
                .body(())
                .expect("request");
            let span = grpc_span(&req, true);
            let _entered = span.enter();
            tracing::info!("answered");
        });
        let written = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
        assert!(written.contains("answered"), "{written}");
        assert!(
            !written.contains(['\u{85}', '\u{2028}']),
            "the path's separators are escaped: {written:?}"
        );
    }

    #[test]
    fn a_path_is_written_as_it_is_only_when_nothing_in_it_needs_escaping() {
        let plain = "/latchkey.v1.VerificationService/VerifyToken";
        assert_eq!(RpcPath(plain).to_string(), plain);
        for (path, written) in [
            ("/a\u{85}b", "\"/a\\u{85}b\""),
            ("/a\u{2028}b", "\"/a\\u{2028}b\""),
            ("/a\u{9b}31m", "\"/a\\u{9b}31m\""),
            ("/a\u{202e}b", "\"/a\\u{202e}b\""),
            ("/a\"b", "\"/a\\\"b\""),
        ] {
            assert_eq!(RpcPath(path).to_string(), written, "{path:?}");
        }
    }
}
