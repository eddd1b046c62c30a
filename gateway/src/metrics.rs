//! Request counts and latency per endpoint, for Prometheus. Labels are route templates and
//! status codes only: never anything a client sent.

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// A route template as a label that costs no allocation per request: the templates are the
/// router's own (a client cannot mint one), so there are as many as there are routes.
fn endpoint_label(template: Option<&str>) -> &'static str {
    static SEEN: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let Some(template) = template else {
        return "unmatched";
    };
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(label) = seen.get(template) {
        return label;
    }
    let label: &'static str = Box::leak(template.to_owned().into_boxed_str());
    seen.insert(template.to_owned(), label);
    label
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

pub(crate) async fn record(req: Request, next: Next) -> Response {
    let endpoint = endpoint_label(req.extensions().get::<MatchedPath>().map(|p| p.as_str()));
    let method = method_label(req.method());
    let start = Instant::now();
    let res = next.run(req).await;
    let status = status_label(res.status());
    metrics::counter!("latchkey_http_requests_total", "endpoint" => endpoint, "method" => method, "status" => status).increment(1);
    metrics::histogram!("latchkey_http_request_duration_seconds", "endpoint" => endpoint)
        .record(start.elapsed().as_secs_f64());
    res
}
