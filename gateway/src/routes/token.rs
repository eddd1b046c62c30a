//! The token (RFC 6749 §3.2), revocation (RFC 7009) and introspection (RFC 7662) endpoints.

use crate::AppState;
use crate::error::OAuthError;
use crate::form::{Params, basic_credentials, form_body};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_proto::v1 as pb;
use serde::Serialize;
use serde_json::json;

fn client_auth(headers: &HeaderMap, form: &Params) -> Result<pb::ClientAuthentication, OAuthError> {
    Ok(pb::ClientAuthentication {
        basic: basic_credentials(headers)?.map(|(client_id, client_secret)| pb::BasicCredentials {
            client_id,
            client_secret,
        }),
        client_id: form.get("client_id"),
        client_secret: form.get("client_secret"),
        client_assertion_type: form.get("client_assertion_type"),
        client_assertion: form.get("client_assertion"),
    })
}

/// JSON with `Cache-Control: no-store` (RFC 6749 §5.1).
fn no_store_json(body: impl Serialize) -> Response {
    let mut res = (StatusCode::OK, axum::Json(body)).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// The successful token response (RFC 6749 §5.1), serialized as it is: no JSON tree built
/// first.
#[derive(Serialize)]
struct Issued {
    access_token: String,
    token_type: String,
    expires_in: i64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// The introspection response (RFC 7662 §2.2). An inactive token has `{"active": false}`
/// and nothing else: the core leaves every other field out.
#[derive(Serialize)]
struct Introspected {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
}

pub(crate) async fn token(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let form = form_body(&headers, body)?;
    let req = pb::ExchangeTokenRequest {
        grant_type: form.get("grant_type").unwrap_or_default(),
        code: form.get("code"),
        redirect_uri: form.get("redirect_uri"),
        code_verifier: form.get("code_verifier"),
        refresh_token: form.get("refresh_token"),
        scope: form.get("scope"),
        resource: form.all("resource"),
        client: Some(client_auth(&headers, &form)?),
        repeated_parameters: form.repeated(),
    };
    let t = s
        .client
        .auth
        .exchange_token(tonic::Request::new(req))
        .await?
        .into_inner();
    Ok(no_store_json(Issued {
        access_token: t.access_token,
        token_type: t.token_type,
        expires_in: t.expires_in,
        scope: t.scope,
        refresh_token: t.refresh_token,
    }))
}

pub(crate) async fn revoke(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    // Repeated parameters are passed on: the core refuses them (RFC 6749 §3.2).
    let form = form_body(&headers, body)?;
    let req = pb::RevokeTokenRequest {
        token: form.get("token").unwrap_or_default(),
        token_type_hint: form.get("token_type_hint"),
        client: Some(client_auth(&headers, &form)?),
        repeated_parameters: form.repeated(),
    };
    s.client.auth.revoke_token(tonic::Request::new(req)).await?;
    Ok(no_store_json(json!({})))
}

pub(crate) async fn introspect(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    // Repeated parameters are passed on: the core refuses them (RFC 6749 §3.2).
    let form = form_body(&headers, body)?;
    let req = pb::IntrospectRequest {
        token: form.get("token").unwrap_or_default(),
        token_type_hint: form.get("token_type_hint"),
        client: Some(client_auth(&headers, &form)?),
        repeated_parameters: form.repeated(),
    };
    let i = s
        .client
        .auth
        .introspect(tonic::Request::new(req))
        .await?
        .into_inner();
    Ok(no_store_json(Introspected {
        active: i.active,
        scope: i.scope,
        client_id: i.client_id,
        sub: i.sub,
        aud: i.aud,
        iss: i.iss,
        jti: i.jti,
        token_type: i.token_type,
        exp: i.exp,
        iat: i.iat,
    }))
}
