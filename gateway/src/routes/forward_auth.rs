//! ForwardAuth (`GET /verify`) for Traefik `forwardAuth` and nginx `auth_request`: the proxy
//! forwards the client's `Authorization` header, and we answer 200 with the caller's identity
//! in headers, or 401/403 with an RFC 6750 challenge. The decision is the AuthService's
//! `VerifyToken`. It is served on a listener of its own (`LATCHKEY_FORWARD_AUTH_ADDR`) that
//! only the proxies reach, never on the public one, and it is rate-limited per client.

use crate::AppState;
use crate::error::OAuthError;
use crate::form::Params;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_proto::v1 as pb;

fn challenge(
    status: StatusCode,
    error: Option<(&str, &str)>,
    scope: &str,
    resource_metadata: &str,
) -> Response {
    let value = latchkey_proto::bearer::Challenge {
        realm: Some("latchkey"),
        // RFC 9728 §5.1 / MCP: point the client at the resource's metadata.
        resource_metadata: Some(resource_metadata),
        error: error.map(|(code, _)| code),
        error_description: error.map(|(_, description)| description),
        scope: Some(scope),
    }
    .header_value();
    let mut res = status.into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pub(crate) async fn verify(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let q = Params::parse(query.unwrap_or_default().as_bytes());
    let audience = q
        .get("audience")
        .or_else(|| s.config.forward_auth_audience.clone())
        .unwrap_or_default();
    let scope = q
        .get("scope")
        .or_else(|| s.config.forward_auth_scopes.clone())
        .unwrap_or_default();
    // RFC 6750 §2.1: the token comes only from the Authorization header, and from one such
    // header: with two, the proxy's backend might read another token than the one checked.
    let token = match latchkey_proto::bearer::token(
        headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(|v| v.to_str().ok()),
    ) {
        Ok(t) => t.map(str::to_owned),
        Err(_) => {
            return challenge(
                StatusCode::BAD_REQUEST,
                Some(("invalid_request", "more than one Authorization header")),
                &scope,
                "",
            );
        }
    };
    // Without a token the AuthService is still asked, for the audience's metadata URL; its
    // verdict on the empty token is not passed on (RFC 6750 §3.1: no credentials, no error
    // code), and if it cannot be asked the challenge goes without the URL.
    let req = pb::VerifyTokenRequest {
        token: token.clone().unwrap_or_default(),
        audience,
        required_scopes: scope.split_whitespace().map(str::to_owned).collect(),
    };
    let answer = s
        .client
        .verification
        .verify_token(tonic::Request::new(req))
        .await;
    if token.is_none()
        && let Err(status) = &answer
    {
        tracing::warn!(error = %status.message(), "ForwardAuth: no metadata URL for the challenge");
        return challenge(StatusCode::UNAUTHORIZED, None, &scope, "");
    }
    match answer {
        Ok(r) => {
            let r = r.into_inner();
            let metadata = r.resource_metadata.as_str();
            if token.is_none() {
                return challenge(StatusCode::UNAUTHORIZED, None, &scope, metadata);
            }
            let refusal = r.refusal_code();
            match (r.valid, r.claims) {
                (true, Some(c)) => {
                    let mut res = StatusCode::OK.into_response();
                    let h = res.headers_mut();
                    // Whether a user stands behind the token, as the AuthService judged it.
                    let subject_type = match c.subject() {
                        pb::TokenSubject::Client => "client",
                        _ => "user",
                    };
                    for (name, value) in [
                        ("x-auth-subject", c.sub),
                        ("x-auth-subject-type", subject_type.to_owned()),
                        ("x-auth-client-id", c.client_id),
                        ("x-auth-scope", c.scopes.join(" ")),
                    ] {
                        if let Ok(v) = HeaderValue::from_str(&value) {
                            h.insert(name, v);
                        }
                    }
                    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    res
                }
                // RFC 6750 §3.1: every other refusal is answered as invalid_token.
                _ if refusal == pb::OauthErrorCode::InsufficientScope => challenge(
                    StatusCode::FORBIDDEN,
                    Some(("insufficient_scope", &r.error_description)),
                    &scope,
                    metadata,
                ),
                _ => challenge(
                    StatusCode::UNAUTHORIZED,
                    Some(("invalid_token", &r.error_description)),
                    &scope,
                    metadata,
                ),
            }
        }
        Err(status) => {
            let e = OAuthError::from_status(&status);
            if e.http_status().is_server_error() {
                return e.into_response();
            }
            // A missing audience is a proxy misconfiguration, not the client's fault.
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("forward auth is misconfigured: {}", e.description),
            )
                .into_response()
        }
    }
}
