//! Request counts and latency per endpoint, for Prometheus. Labels are route templates and
//! status codes only: never anything a client sent.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The maps below are read on every request, with keys no client chooses: a fast hash.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// One endpoint's series: its label, its latency histogram, and its request counters by
/// method and status, each registered on first use and kept. Looking a series up in the
/// Prometheus registry builds and hashes its key on every call.
struct Endpoint {
    label: String,
    duration: Histogram,
    requests: Mutex<Map<(&'static str, &'static str), Counter>>,
}

impl Endpoint {
    fn new(label: &str) -> Self {
        Self {
            label: label.to_owned(),
            duration: metrics::histogram!("latchkey_http_request_duration_seconds", "endpoint" => label.to_owned()),
            requests: Mutex::default(),
        }
    }

    fn requests(&self, method: &'static str, status: &'static str) -> Counter {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        requests
            .entry((method, status))
            .or_insert_with(|| {
                metrics::counter!("latchkey_http_requests_total", "endpoint" => self.label.clone(), "method" => method, "status" => status)
            })
            .clone()
    }
}

/// A router's endpoints, by route template. The templates are the router's own (a client
/// cannot mint one), so there are as many as there are routes, plus `unmatched`. One table per
/// gateway, each endpoint registered on its first request: with the recorder the process has by
/// then, never one cached from before it was installed.
#[derive(Clone, Default)]
pub(crate) struct Endpoints(Arc<Mutex<Map<Box<str>, Arc<Endpoint>>>>);

impl Endpoints {
    fn get(&self, template: Option<&str>) -> Arc<Endpoint> {
        let template = template.unwrap_or("unmatched");
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = seen.get(template) {
            return e.clone();
        }
        let e = Arc::new(Endpoint::new(template));
        seen.insert(template.into(), e.clone());
        e
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

fn status_label(s: StatusCode) -> &'static str {
    match s.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        302 => "302",
        303 => "303",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

/// Counts and times every request, and writes the one line a failed request (a 5xx) leaves,
/// naming its endpoint and method whether or not its span is recorded.
pub(crate) async fn record(
    State(endpoints): State<Endpoints>,
    req: Request,
    next: Next,
) -> Response {
    let endpoint = endpoints.get(req.extensions().get::<MatchedPath>().map(|p| p.as_str()));
    let method = method_label(req.method());
    let start = Instant::now();
    let res = next.run(req).await;
    let elapsed = start.elapsed();
    let status = res.status();
    endpoint.requests(method, status_label(status)).increment(1);
    endpoint.duration.record(elapsed.as_secs_f64());
    if status.is_server_error() {
        tracing::error!(
            endpoint = endpoint.label.as_str(),
            method,
            status = status.as_u16(),
            latency_ms = elapsed.as_millis() as u64,
            "request failed"
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use std::sync::Arc;
    use tower::ServiceExt;

    /// What a test subscriber wrote.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A 5xx leaves one line naming its endpoint (the route's template, never the path sent)
    /// and method, with no span around it; an answer below 500 leaves none.
    #[tokio::test]
    async fn a_failed_request_leaves_one_line_naming_its_endpoint() {
        let router = Router::new()
            .route("/fails/{id}", get(|| async { StatusCode::BAD_GATEWAY }))
            .route("/refuses", get(|| async { StatusCode::BAD_REQUEST }))
            .layer(axum::middleware::from_fn_with_state(
                Endpoints::default(),
                record,
            ));
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        for (path, status) in [
            ("/fails/c0de-secret?code=c0de-secret", 502),
            ("/refuses", 400),
        ] {
            let req = axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .expect("request");
            let res = router.clone().oneshot(req).await.expect("answer");
            assert_eq!(res.status(), status, "{path}");
        }
        let out = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
        assert_eq!(out.lines().count(), 1, "{out}");
        for needle in [
            "ERROR",
            "request failed",
            "endpoint=\"/fails/{id}\"",
            "method=\"GET\"",
            "status=502",
        ] {
            assert!(out.contains(needle), "{needle} missing from {out}");
        }
        assert!(
            !out.contains("c0de"),
            "the path sent is never logged: {out}"
        );
    }
}
