//! The one mapping from a gRPC `Status` to an HTTP answer: RFC 6749 §5.2 JSON with the right
//! status code and headers, or an HTML error page for the browser.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tonic_types::StatusExt;

/// An OAuth error ready to be written as HTTP.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub code: String,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: &str, description: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            description: description.into(),
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    /// Reads the OAuth code from the status details; a status without one is a transport or
    /// server failure.
    pub fn from_status(status: &tonic::Status) -> Self {
        match status.get_details_error_info() {
            Some(info) => Self {
                description: info
                    .metadata
                    .get("error_description")
                    .cloned()
                    .unwrap_or_default(),
                code: info.reason,
            },
            None if matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
            ) =>
            {
                tracing::error!(code = ?status.code(), "AuthService unavailable");
                Self::new(
                    "temporarily_unavailable",
                    "the authorization service is unavailable",
                )
            }
            None => {
                tracing::error!(code = ?status.code(), message = status.message(), "AuthService call failed");
                Self::new("server_error", "the server failed to process the request")
            }
        }
    }

    pub fn http_status(&self) -> StatusCode {
        match self.code.as_str() {
            "invalid_client" | "invalid_token" | "unauthenticated" => StatusCode::UNAUTHORIZED,
            "insufficient_scope" | "access_denied" => StatusCode::FORBIDDEN,
            "not_found" => StatusCode::NOT_FOUND,
            "conflict" => StatusCode::CONFLICT,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
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
        let body = serde_json::json!({ "error": self.code, "error_description": self.description });
        let mut res = (status, axum::Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.code == "invalid_token" {
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
