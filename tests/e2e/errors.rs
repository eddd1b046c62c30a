//! Every `AuthError` crosses both edges as the same code: core -> `tonic::Status` (the one
//! mapping in latchkey-auth) -> the gateway's HTTP answer (its one mapping), with the HTTP
//! status, `error`, and headers of RFC 6749 §5.2 and RFC 6750 §3.

use axum::response::IntoResponse;
use latchkey_auth::status::to_status;
use latchkey_core::{AuthError, Reason, TokenFault};
use latchkey_gateway::error::OAuthError;
use latchkey_proto::v1::OauthErrorCode;
use std::collections::BTreeSet;

/// What the gateway answers for each error today (the e2e suites assert these too).
/// Exhaustive: a new variant does not compile until its answer is written here.
fn expected(e: &AuthError) -> (u16, &'static str) {
    match e {
        AuthError::InvalidRequest(_) => (400, "invalid_request"),
        AuthError::InvalidClient(_) => (401, "invalid_client"),
        AuthError::InvalidGrant(_) => (400, "invalid_grant"),
        AuthError::UnauthorizedClient(_) => (400, "unauthorized_client"),
        AuthError::UnsupportedGrantType(_) => (400, "unsupported_grant_type"),
        AuthError::UnsupportedResponseType(_) => (400, "unsupported_response_type"),
        AuthError::InvalidScope(_) => (400, "invalid_scope"),
        AuthError::InvalidTarget(_) => (400, "invalid_target"),
        AuthError::AccessDenied(_) => (403, "access_denied"),
        AuthError::InvalidRedirectUri(_) => (400, "invalid_redirect_uri"),
        AuthError::InvalidClientMetadata(_) => (400, "invalid_client_metadata"),
        AuthError::UnsupportedTokenType(_) => (400, "unsupported_token_type"),
        AuthError::InvalidToken(_) => (401, "invalid_token"),
        AuthError::InsufficientScope(_) => (403, "insufficient_scope"),
        AuthError::TemporarilyUnavailable(_) => (503, "temporarily_unavailable"),
        AuthError::Unauthenticated => (401, "unauthenticated"),
        AuthError::Conflict(_) => (409, "conflict"),
        AuthError::NotFound(_) => (404, "not_found"),
        AuthError::Internal(_) => (500, "server_error"),
    }
}

fn every_error() -> Vec<AuthError> {
    vec![
        AuthError::InvalidRequest(Reason::Missing("code")),
        AuthError::InvalidClient(Reason::ClientAuthenticationFailed),
        AuthError::InvalidGrant(Reason::CodeUnusable),
        AuthError::UnauthorizedClient(Reason::TokenOfAnotherClient),
        AuthError::UnsupportedGrantType(Reason::Unsupported("grant_type", "password".into())),
        AuthError::UnsupportedResponseType(Reason::Unsupported("response_type", "token".into())),
        AuthError::InvalidScope(Reason::NoDefaultScope),
        AuthError::InvalidTarget(Reason::ResourceAmbiguous),
        AuthError::AccessDenied(Reason::UserDenied),
        AuthError::InvalidRedirectUri(Reason::RedirectUri(
            latchkey_core::redirect_uri::RedirectUriFault::Fragment,
        )),
        AuthError::InvalidClientMetadata(Reason::Metadata(
            latchkey_core::registration::MetadataFault::KeysWithoutPrivateKeyJwt,
        )),
        AuthError::UnsupportedTokenType(Reason::Unsupported("token_type_hint", "x".into())),
        AuthError::InvalidToken(Reason::Token(TokenFault::Expired)),
        AuthError::InsufficientScope(Reason::ScopesRequired(vec!["mcp:tools".into()])),
        AuthError::TemporarilyUnavailable(Reason::DependencyUnavailable),
        AuthError::TemporarilyUnavailable(Reason::DatabaseUnavailable {
            retry_after_secs: 7,
        }),
        AuthError::Unauthenticated,
        AuthError::Conflict(Reason::EmailTaken),
        AuthError::NotFound(Reason::NoSuchUser),
        AuthError::internal(std::io::Error::other("disk on fire")),
    ]
}

#[tokio::test]
async fn every_auth_error_reaches_http_with_its_status_code_and_rfc_error() {
    let mut seen = BTreeSet::new();
    for err in every_error() {
        let (status, code) = expected(&err);
        assert_eq!(err.code(), code, "core code of {err:?}");
        let description = err.description();
        let case = format!("{err:?}");
        let retry_after = err.retry_after_secs();

        let http = OAuthError::from_status(&to_status(err));
        assert_eq!(http.code.rfc_code(), Some(code), "{case}");
        let res = http.into_response();
        assert_eq!(res.status().as_u16(), status, "{case}");
        assert_eq!(res.headers()["cache-control"], "no-store", "{case}");
        let challenge = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let want_challenge = match (status, code) {
            (401, "invalid_token") => Some("Bearer error=\"invalid_token\""),
            (401, _) => Some("Basic realm=\"latchkey\", charset=\"UTF-8\""),
            _ => None,
        };
        assert_eq!(challenge.as_deref(), want_challenge, "{case}");
        // RFC 9110 §10.2.3: every 503 says when to come back, and nothing else does.
        let retry = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        if status == 503 {
            assert!(retry_after.is_some(), "{case}");
            assert_eq!(retry, retry_after.map(|s| s.to_string()), "{case}");
            if case.contains("DatabaseUnavailable") {
                assert_eq!(retry.as_deref(), Some("7"), "the store's hint: {case}");
            }
        } else {
            assert_eq!(retry, None, "{case}");
        }

        let body = axum::body::to_bytes(res.into_body(), 64 * 1024)
            .await
            .expect("a small body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(json["error"], code, "{case}");
        assert_eq!(json["error_description"], description.as_str(), "{case}");
        assert!(!description.contains("disk on fire"), "{case}");
        seen.insert(code);
    }
    // One case per wire code: the table above covers the whole enum.
    let all: BTreeSet<_> = OauthErrorCode::ALL
        .iter()
        .filter_map(|c| c.rfc_code())
        .collect();
    assert_eq!(seen, all);
}

#[test]
fn a_code_the_gateway_does_not_know_is_a_logged_500_not_a_400() {
    // A newer AuthService's code: the typed value is unknown here, and so is its reason.
    let mut status = to_status(AuthError::InvalidRequest(Reason::Missing("code")));
    let details = {
        use prost::Message;
        let mut s = tonic_types::pb::Status::decode(status.details()).expect("details");
        for any in &mut s.details {
            if any.type_url == latchkey_proto::v1::OauthErrorDetail::TYPE_URL {
                any.value = latchkey_proto::v1::OauthErrorDetail { code: 9_999 }.encode_to_vec();
            } else {
                let mut info =
                    tonic_types::pb::ErrorInfo::decode(any.value.as_slice()).expect("ErrorInfo");
                info.reason = "invalid_everything".into();
                any.value = info.encode_to_vec();
            }
        }
        s.encode_to_vec()
    };
    status = tonic::Status::with_details(status.code(), status.message(), details.into());
    let http = OAuthError::from_status(&status);
    assert_eq!(http.code, OauthErrorCode::ServerError);
    assert_eq!(http.into_response().status().as_u16(), 500);
}
