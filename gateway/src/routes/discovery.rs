//! Discovery documents (RFC 8414, the OpenID discovery location) and the JWKS.

use crate::AppState;
use crate::error::OAuthError;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_proto::v1 as pb;

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
        .clone()
        .get_server_metadata(pb::GetServerMetadataRequest {})
        .await?;
    Ok(json_document(doc.into_inner(), "public, max-age=300"))
}

pub(crate) async fn jwks(State(s): State<AppState>) -> Result<Response, OAuthError> {
    let doc = s.client.clone().get_jwks(pb::GetJwksRequest {}).await?;
    Ok(json_document(doc.into_inner(), "public, max-age=60"))
}

/// 200 when the AuthService answers, 503 when it does not.
pub(crate) async fn health(State(s): State<AppState>) -> Response {
    match s.client.clone().get_jwks(pb::GetJwksRequest {}).await {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "status": "ok" })),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unavailable" })),
        )
            .into_response(),
    }
}
