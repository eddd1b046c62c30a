//! Discovery documents (RFC 8414, the OpenID discovery location) and the JWKS.

use crate::AppState;
use crate::error::OAuthError;
use crate::forwarded;
use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_proto::v1 as pb;
use std::net::SocketAddr;

fn json_document(doc: pb::JsonDocument, cache: &'static str) -> Response {
    let mut res = doc.json.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

/// Served at both well-known locations: the same document, the same issuer, byte for byte.
pub(crate) async fn metadata(State(s): State<AppState>) -> Result<Response, OAuthError> {
    let doc = s
        .client
        .auth
        .get_server_metadata(tonic::Request::new(pb::GetServerMetadataRequest {}))
        .await?;
    Ok(json_document(doc.into_inner(), "public, max-age=300"))
}

/// RFC 9728 metadata for a resource guarded by ForwardAuth: the proxy routes the resource
/// origin's `/.well-known/oauth-protected-resource/…` here, keeping the `Host` (or setting
/// `X-Forwarded-Host` and `X-Forwarded-Proto`, believed from a trusted proxy only). The
/// resource is rebuilt from that origin and the rest of the path (RFC 9728 §3.1) and must be
/// one this server knows.
pub(crate) async fn resource_metadata(
    State(s): State<AppState>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Result<Response, OAuthError> {
    let (forwarded_host, forwarded_proto) = match peer {
        Some(Extension(ConnectInfo(peer))) => {
            forwarded::forwarded_origin(&headers, peer.ip(), &s.config.proxies)
        }
        None => (None, None),
    };
    let host = forwarded_host
        .or_else(|| headers.get("host").and_then(|v| v.to_str().ok()))
        // HTTP/2 carries the host in the request target, not in a Host field.
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let scheme = forwarded_proto.unwrap_or(if s.config.https_issuer {
        "https"
    } else {
        "http"
    });
    // The path as sent, not percent-decoded: the resource identifier is compared exactly.
    let rest = uri
        .path()
        .strip_prefix("/.well-known/oauth-protected-resource")
        .unwrap_or_default();
    let mut resource = format!("{scheme}://{host}{rest}");
    if let Some(q) = uri.query() {
        resource.push('?');
        resource.push_str(q);
    }
    let doc = s
        .client
        .auth
        .get_resource_metadata(tonic::Request::new(pb::GetResourceMetadataRequest {
            resource,
        }))
        .await?;
    let mut res = json_document(doc.into_inner(), "public, max-age=300");
    // The answer depends on the host it was asked for: a shared cache must key on it.
    res.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static("host, forwarded, x-forwarded-host, x-forwarded-proto"),
    );
    Ok(res)
}

pub(crate) async fn jwks(State(s): State<AppState>) -> Result<Response, OAuthError> {
    let doc = s
        .client
        .auth
        .get_jwks(tonic::Request::new(pb::GetJwksRequest {}))
        .await?;
    Ok(json_document(doc.into_inner(), "public, max-age=60"))
}

/// Liveness: the process answers.
pub(crate) async fn live() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({ "status": "ok" })),
    )
        .into_response()
}

/// How long readiness waits for the AuthService's answer. The AuthService bounds its own
/// checks well below this; this bounds a slow or unreachable AuthService.
const READINESS_BUDGET: std::time::Duration = std::time::Duration::from_millis(900);

/// Readiness: 503 when the AuthService or its database is unreachable; 200 when only Redis
/// is (tokens keep working; logins do not). It answers within a second in every case, so that
/// a probe never times out instead of failing. What is down, and why, is said only when the
/// operator opted in: the metrics port, which is never public, always says it.
pub(crate) async fn ready(State(s): State<AppState>) -> Response {
    let check = s
        .client
        .auth
        .check_readiness(tonic::Request::new(pb::CheckReadinessRequest {}));
    let answer = match tokio::time::timeout(READINESS_BUDGET, check).await {
        Ok(answer) => answer,
        Err(_) => Err(tonic::Status::deadline_exceeded(
            "readiness check took too long",
        )),
    };
    let (status, body) = match answer {
        Ok(r) => {
            let r = r.into_inner();
            let status = if r.database {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let word = if !r.database {
                "unavailable"
            } else if r.degraded.is_empty() {
                "ok"
            } else {
                "degraded"
            };
            let body = if s.config.health_details {
                serde_json::json!({
                    "status": word,
                    "database": if r.database { "up" } else { "down" },
                    "redis": r.redis.map(|up| if up { "up" } else { "down" }).unwrap_or("not configured"),
                    "degraded": r.degraded,
                })
            } else {
                serde_json::json!({ "status": word })
            };
            (status, body)
        }
        Err(_) => {
            let body = if s.config.health_details {
                serde_json::json!({ "status": "unavailable", "degraded": ["the AuthService is unreachable"] })
            } else {
                serde_json::json!({ "status": "unavailable" })
            };
            (StatusCode::SERVICE_UNAVAILABLE, body)
        }
    };
    (status, axum::Json(body)).into_response()
}
