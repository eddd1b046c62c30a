//! RFC 7591 dynamic client registration.

use crate::AppState;
use crate::error::OAuthError;
use crate::form::body_error;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_proto::v1 as pb;
use latchkey_proto::v1::OauthErrorCode;

pub(crate) async fn register(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        return Err(OAuthError::new(
            OauthErrorCode::InvalidRequest,
            "the request body must be application/json",
        ));
    }
    // RFC 7591 §3: an initial access token, when the operator issued one, is a bearer token.
    let fields = headers.get_all(header::AUTHORIZATION);
    let initial_access_token =
        match latchkey_proto::bearer::token(fields.iter().map(|v| v.to_str().ok())) {
            Ok(Some(token)) => Some(token.to_owned()),
            Ok(None) if fields.iter().next().is_none() => None,
            // Another scheme, an empty token, or two Authorization fields.
            _ => {
                return Err(OAuthError::new(
                    OauthErrorCode::InvalidToken,
                    "the initial access token must be sent as Authorization: Bearer",
                ));
            }
        };
    let body = body.map_err(body_error)?;
    let metadata_json = String::from_utf8(body.to_vec()).map_err(|_| {
        OAuthError::new(
            OauthErrorCode::InvalidClientMetadata,
            "the body is not UTF-8",
        )
    })?;
    let doc = s
        .client
        .auth
        .clone()
        .register_client(pb::RegisterClientRequest {
            metadata_json,
            initial_access_token,
        })
        .await?
        .into_inner();
    // RFC 7591 §3.2.1: 201 Created; the secret in the body must not be cached.
    let mut res = (StatusCode::CREATED, doc.json).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(res)
}
