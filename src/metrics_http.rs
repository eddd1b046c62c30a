//! The metrics port: Prometheus metrics and health probes. It is never the
//! public port, so it can be kept off the Ingress and behind a NetworkPolicy.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use latchkey_auth::readiness::Readiness;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::Arc;
use std::sync::OnceLock;

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once; later calls return the same handle.
pub fn recorder() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ];
            match PrometheusBuilder::new()
                .set_buckets(&buckets)
                .and_then(|b| b.install_recorder())
            {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

/// `/metrics`, `/health/live`, and `/health/ready` (the database and Redis when this process
/// runs the AuthService).
pub fn router(probes: Option<Arc<dyn Readiness>>) -> Router {
    let handle = recorder();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                async move { handle.map(|h| h.render()).unwrap_or_default() }
            }),
        )
        .route(
            "/health/live",
            get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route(
            "/health/ready",
            get(move || {
                let probes = probes.clone();
                async move { ready(probes).await }
            }),
        )
}

async fn ready(probes: Option<Arc<dyn Readiness>>) -> Response {
    let Some(p) = probes else {
        return axum::Json(serde_json::json!({ "status": "ok" })).into_response();
    };
    let r = p.check().await;
    let status = if r.database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if !r.database { "unavailable" } else if r.degraded.is_empty() { "ok" } else { "degraded" },
        "degraded": r.degraded,
    });
    (status, axum::Json(body)).into_response()
}
