//! The one mapping from a gRPC `Status` to an HTTP answer: RFC 6749 §5.2 JSON with the right
//! status code and headers, or an HTML error page for the browser.
//!
//! The OAuth code is read from the status details (the typed `OauthErrorDetail`, or the
//! `ErrorInfo.reason` of a server older than it), never from the message. A code this gateway
//! does not know is a server error, logged: never a guess that it was the client's fault.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_proto::v1::{OauthErrorCode, OauthErrorDetail};
use prost::Message;
use tonic_types::StatusExt;

/// An OAuth error ready to be written as HTTP.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub code: OauthErrorCode,
    pub description: String,
    /// Seconds to wait before retrying, from the status's `google.rpc.RetryInfo`; sent as
    /// `Retry-After` with every 503.
    pub retry_after: Option<u64>,
}

/// `Retry-After` of a 503 that came with no hint (the AuthService itself unreachable).
const DEFAULT_RETRY_AFTER_SECS: u64 = 1;

impl OAuthError {
    pub fn new(code: OauthErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OauthErrorCode::InvalidRequest, description)
    }

    /// `server_error` with the generic description: the cause is in the log, not the answer.
    pub fn server_error() -> Self {
        Self::new(
            OauthErrorCode::ServerError,
            "the server failed to process the request",
        )
    }

    /// The registered code, the `error` of the JSON body.
    pub fn error(&self) -> &'static str {
        self.code.rfc_code().unwrap_or("server_error")
    }

    /// Reads the OAuth code from the status details. A status without one is a transport or
    /// server failure; one with a code this gateway does not know is a server failure too.
    pub fn from_status(status: &tonic::Status) -> Self {
        let info = status.get_details_error_info();
        let typed = tonic_types::pb::Status::decode(status.details())
            .ok()
            .and_then(|s| OauthErrorDetail::find(&s.details));
        let code = match (&typed, &info) {
            (Some(detail), _) => OauthErrorCode::try_from(detail.code).ok(),
            // A server older than `OauthErrorDetail`: the registered code, matched exactly.
            (None, Some(info)) => OauthErrorCode::from_rfc_code(&info.reason),
            (None, None)
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                ) =>
            {
                tracing::error!(code = ?status.code(), "AuthService unavailable");
                return Self::new(
                    OauthErrorCode::TemporarilyUnavailable,
                    "the authorization service is unavailable",
                );
            }
            (None, None) => {
                tracing::error!(code = ?status.code(), message = status.message(), "AuthService call failed");
                return Self::server_error();
            }
        };
        match code {
            Some(code) if code != OauthErrorCode::Unspecified => Self {
                code,
                description: info
                    .and_then(|i| i.metadata.get("error_description").cloned())
                    .unwrap_or_default(),
                retry_after: status
                    .get_details_retry_info()
                    .and_then(|r| r.retry_delay)
                    // Whole seconds, rounded up: RFC 9110 §10.2.3 has no fractions.
                    .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
            },
            _ => {
                tracing::error!(
                    code = ?status.code(),
                    typed = ?typed.map(|d| d.code),
                    reason = ?info.map(|i| i.reason),
                    "AuthService answered with an OAuth error code this gateway does not know"
                );
                Self::server_error()
            }
        }
    }

    /// `Retry-After` (RFC 9110 §10.2.3) for an answer with this error: on every 503, the
    /// AuthService's hint or one second.
    pub fn retry_after_header(&self) -> Option<HeaderValue> {
        (self.http_status() == StatusCode::SERVICE_UNAVAILABLE)
            .then(|| HeaderValue::from(self.retry_after.unwrap_or(DEFAULT_RETRY_AFTER_SECS).max(1)))
    }

    /// The HTTP status of the code. Exhaustive: a new code does not compile until it has one.
    pub fn http_status(&self) -> StatusCode {
        use OauthErrorCode as O;
        match self.code {
            O::InvalidClient | O::InvalidToken | O::Unauthenticated => StatusCode::UNAUTHORIZED,
            O::InsufficientScope | O::AccessDenied => StatusCode::FORBIDDEN,
            O::NotFound => StatusCode::NOT_FOUND,
            O::Conflict => StatusCode::CONFLICT,
            O::ServerError | O::Unspecified => StatusCode::INTERNAL_SERVER_ERROR,
            O::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            O::InvalidRequest
            | O::InvalidGrant
            | O::UnauthorizedClient
            | O::UnsupportedGrantType
            | O::UnsupportedResponseType
            | O::InvalidScope
            | O::InvalidTarget
            | O::InvalidRedirectUri
            | O::InvalidClientMetadata
            | O::UnsupportedTokenType => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<tonic::Status> for OAuthError {
    fn from(s: tonic::Status) -> Self {
        Self::from_status(&s)
    }
}

/// RFC 6749 §5.2 JSON, `Cache-Control: no-store`, and for `invalid_client` a 401 with
/// `WWW-Authenticate` (RFC 6749 §5.2).
impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = self.http_status();
        let body =
            serde_json::json!({ "error": self.error(), "error_description": self.description });
        let mut res = (status, axum::Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(retry) = self.retry_after_header() {
            h.insert(header::RETRY_AFTER, retry);
        }
        if self.code == OauthErrorCode::InvalidToken {
            // RFC 6750 §3: a bearer credential (an initial access token at /register).
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        } else if status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"latchkey\", charset=\"UTF-8\""),
            );
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn status_with(details: Vec<prost_types::Any>) -> tonic::Status {
        let s = tonic_types::pb::Status {
            code: tonic::Code::InvalidArgument as i32,
            message: "m".into(),
            details,
        };
        tonic::Status::with_details(tonic::Code::InvalidArgument, "m", s.encode_to_vec().into())
    }

    fn error_info(reason: &str) -> prost_types::Any {
        let info = tonic_types::pb::ErrorInfo {
            reason: reason.into(),
            domain: "oauth2".into(),
            metadata: HashMap::from([("error_description".into(), "why".into())]),
        };
        prost_types::Any {
            type_url: tonic_types::ErrorInfo::TYPE_URL.into(),
            value: info.encode_to_vec(),
        }
    }

    fn typed(code: i32) -> prost_types::Any {
        prost_types::Any {
            type_url: OauthErrorDetail::TYPE_URL.into(),
            value: OauthErrorDetail { code }.encode_to_vec(),
        }
    }

    #[test]
    fn codes_this_gateway_does_not_know_are_server_errors_not_client_errors() {
        let unknown = OauthErrorCode::ALL.len() as i32 + 1;
        let cases = [
            (
                vec![typed(unknown), error_info("invalid_request")],
                "an unknown typed code",
            ),
            (
                vec![typed(OauthErrorCode::Unspecified as i32), error_info("x")],
                "an UNSPECIFIED typed code",
            ),
            (
                vec![error_info("some_new_code")],
                "an unknown reason from an older server",
            ),
            (vec![], "no details at all"),
        ];
        for (details, case) in cases {
            let e = OAuthError::from_status(&status_with(details));
            assert_eq!(e.code, OauthErrorCode::ServerError, "{case}");
            assert_eq!(e.http_status(), StatusCode::INTERNAL_SERVER_ERROR, "{case}");
            assert_eq!(e.error(), "server_error", "{case}");
        }
    }

    #[test]
    fn the_typed_code_wins_and_the_reason_serves_an_older_server() {
        let e = OAuthError::from_status(&status_with(vec![
            error_info("invalid_request"),
            typed(OauthErrorCode::InvalidGrant as i32),
        ]));
        assert_eq!(
            (e.code, e.description.as_str()),
            (OauthErrorCode::InvalidGrant, "why")
        );
        let old = OAuthError::from_status(&status_with(vec![error_info("invalid_scope")]));
        assert_eq!(old.code, OauthErrorCode::InvalidScope);
    }

    #[test]
    fn an_unreachable_auth_service_is_temporarily_unavailable() {
        let e = OAuthError::from_status(&tonic::Status::unavailable("down"));
        assert_eq!(e.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.error(), "temporarily_unavailable");
        let res = e.into_response();
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    }
}
