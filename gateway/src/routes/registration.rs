//! RFC 7591 dynamic client registration, and RFC 7592 management of a registration at its
//! client configuration endpoint (`/register/{client_id}`). Which client a token opens, and
//! what it may change, is the core's decision.

use crate::AppState;
use crate::error::OAuthError;
use crate::form::body_error;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_proto::v1 as pb;
use latchkey_proto::v1::OauthErrorCode;

/// RFC 6750 §3.1: a request that carries no credential at all is answered with a bare
/// `Bearer` challenge, without an error code (the client may not have known a token was
/// needed); the JSON body still says what is missing. A credential that was sent and refused
/// keeps `error="invalid_token"`.
fn challenge(headers: &HeaderMap, result: Result<Response, OAuthError>) -> Response {
    match result {
        Ok(res) => res,
        Err(e) => {
            let bare = e.code == OauthErrorCode::InvalidToken
                && headers.get(header::AUTHORIZATION).is_none();
            let mut res = e.into_response();
            if bare {
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            res
        }
    }
}

pub(crate) async fn register(
    s: State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = register_inner(s, headers.clone(), body).await;
    challenge(&headers, r)
}

/// RFC 7592 §2.1: the client's registration.
pub(crate) async fn read(
    s: State<AppState>,
    client_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let r = read_inner(s, client_id, headers.clone()).await;
    challenge(&headers, r)
}

/// RFC 7592 §2.2: replaces the client's metadata.
pub(crate) async fn replace(
    s: State<AppState>,
    client_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = replace_inner(s, client_id, headers.clone(), body).await;
    challenge(&headers, r)
}

/// RFC 7592 §2.3: deletes the client.
pub(crate) async fn delete(
    s: State<AppState>,
    client_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let r = delete_inner(s, client_id, headers.clone()).await;
    challenge(&headers, r)
}

async fn register_inner(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    require_json(&headers)?;
    // RFC 7591 §3: an initial access token, when the operator issued one, is a bearer token.
    let initial_access_token = bearer(&headers, "initial access token")?;
    let metadata_json = utf8_body(body)?;
    let doc = s
        .client
        .auth
        .register_client(tonic::Request::new(pb::RegisterClientRequest {
            metadata_json,
            initial_access_token,
        }))
        .await?
        .into_inner();
    // RFC 7591 §3.2.1: 201 Created; the secret in the body must not be cached.
    Ok(json_response(StatusCode::CREATED, doc.json))
}

/// RFC 7592 §2.1: the client's registration.
async fn read_inner(
    State(s): State<AppState>,
    client_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let client_id = path_client_id(client_id)?;
    let registration_access_token = registration_access_token(&headers)?;
    let doc = s
        .client
        .auth
        .get_client_registration(tonic::Request::new(pb::GetClientRegistrationRequest {
            client_id,
            registration_access_token,
        }))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::OK, doc.json))
}

/// RFC 7592 §2.2: replaces the client's metadata; answers with the new registration.
async fn replace_inner(
    State(s): State<AppState>,
    client_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OAuthError> {
    let client_id = path_client_id(client_id)?;
    let registration_access_token = registration_access_token(&headers)?;
    // Authorization before the body: a request with no token learns nothing about what the
    // body should be, and gets the RFC 6750 §3.1 challenge like a read or a delete.
    if registration_access_token.is_empty() {
        return Err(OAuthError::new(
            OauthErrorCode::InvalidToken,
            "the registration access token is missing (Authorization: Bearer)",
        ));
    }
    require_json(&headers)?;
    let metadata_json = utf8_body(body)?;
    let doc = s
        .client
        .auth
        .replace_client_registration(tonic::Request::new(pb::ReplaceClientRegistrationRequest {
            client_id,
            registration_access_token,
            metadata_json,
        }))
        .await?
        .into_inner();
    Ok(json_response(StatusCode::OK, doc.json))
}

/// RFC 7592 §2.3: deletes the client; 204 No Content.
async fn delete_inner(
    State(s): State<AppState>,
    client_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let client_id = path_client_id(client_id)?;
    let registration_access_token = registration_access_token(&headers)?;
    s.client
        .auth
        .delete_client_registration(tonic::Request::new(pb::DeleteClientRegistrationRequest {
            client_id,
            registration_access_token,
        }))
        .await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The body must be JSON (RFC 7591 §3.1, RFC 7592 §2.2).
fn require_json(headers: &HeaderMap) -> Result<(), OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        Ok(())
    } else {
        Err(OAuthError::new(
            OauthErrorCode::InvalidRequest,
            "the request body must be application/json",
        ))
    }
}

fn utf8_body(body: Result<Bytes, BytesRejection>) -> Result<String, OAuthError> {
    let body = body.map_err(body_error)?;
    String::from_utf8(body.to_vec()).map_err(|_| {
        OAuthError::new(
            OauthErrorCode::InvalidClientMetadata,
            "the body is not UTF-8",
        )
    })
}

/// The RFC 6750 §2.1 bearer token of the request, `None` when it has no `Authorization`.
/// Another scheme, an empty token or two `Authorization` fields are refused here: there is
/// no token to pass on.
fn bearer(headers: &HeaderMap, what: &str) -> Result<Option<String>, OAuthError> {
    let fields = headers.get_all(header::AUTHORIZATION);
    match latchkey_proto::bearer::token(fields.iter().map(|v| v.to_str().ok())) {
        Ok(Some(token)) => Ok(Some(token.to_owned())),
        Ok(None) if fields.iter().next().is_none() => Ok(None),
        _ => Err(OAuthError::new(
            OauthErrorCode::InvalidToken,
            format!("the {what} must be sent as Authorization: Bearer"),
        )),
    }
}

/// RFC 7592 §2: the registration access token, empty when none was sent (the core answers
/// that it is missing).
fn registration_access_token(headers: &HeaderMap) -> Result<String, OAuthError> {
    Ok(bearer(headers, "registration access token")?.unwrap_or_default())
}

/// The `client_id` path segment, percent-decoded. One that does not decode to text names no
/// client this server could have made.
fn path_client_id(path: Result<Path<String>, PathRejection>) -> Result<String, OAuthError> {
    path.map(|Path(id)| id)
        .map_err(|_| OAuthError::invalid_request("malformed client_id in the path"))
}

/// A JSON answer holding a registration (which may carry a secret and the registration
/// access token): never cached (RFC 7591 §3.2.1, RFC 6749 §5.1).
fn json_response(status: StatusCode, json: String) -> Response {
    let mut res = (status, json).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}
