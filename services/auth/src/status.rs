//! The one mapping from [`AuthError`] to `tonic::Status`, and to the wire's [`OauthErrorCode`].
//!
//! The OAuth error code travels twice in the status details: typed, as an `OauthErrorDetail`,
//! and as `google.rpc.ErrorInfo.reason` (domain `oauth2`) with the description in its metadata,
//! for callers in other languages. Callers map by code and never parse a message.

use latchkey_core::AuthError;
use latchkey_proto::v1::{OauthErrorCode, OauthErrorDetail};
use prost::Message;
use std::collections::HashMap;
use tonic::{Code, Status};
use tonic_types::{ErrorInfo, RetryInfo, pb};

/// The `ErrorInfo.domain` of OAuth errors.
pub const OAUTH_DOMAIN: &str = "oauth2";

/// The gRPC code and the wire's OAuth code of `err`. Exhaustive: a new `AuthError` variant
/// does not compile until it is given both.
fn codes(err: &AuthError) -> (Code, OauthErrorCode) {
    use OauthErrorCode as O;
    match err {
        AuthError::InvalidRequest(_) => (Code::InvalidArgument, O::InvalidRequest),
        AuthError::InvalidClient(_) => (Code::Unauthenticated, O::InvalidClient),
        AuthError::InvalidGrant(_) => (Code::InvalidArgument, O::InvalidGrant),
        AuthError::UnauthorizedClient(_) => (Code::InvalidArgument, O::UnauthorizedClient),
        AuthError::UnsupportedGrantType(_) => (Code::InvalidArgument, O::UnsupportedGrantType),
        AuthError::UnsupportedResponseType(_) => {
            (Code::InvalidArgument, O::UnsupportedResponseType)
        }
        AuthError::InvalidScope(_) => (Code::InvalidArgument, O::InvalidScope),
        AuthError::InvalidTarget(_) => (Code::InvalidArgument, O::InvalidTarget),
        AuthError::AccessDenied(_) => (Code::PermissionDenied, O::AccessDenied),
        AuthError::InvalidRedirectUri(_) => (Code::InvalidArgument, O::InvalidRedirectUri),
        AuthError::InvalidClientMetadata(_) => (Code::InvalidArgument, O::InvalidClientMetadata),
        AuthError::UnsupportedTokenType(_) => (Code::InvalidArgument, O::UnsupportedTokenType),
        AuthError::InvalidToken(_) => (Code::Unauthenticated, O::InvalidToken),
        AuthError::InsufficientScope(_) => (Code::PermissionDenied, O::InsufficientScope),
        AuthError::TemporarilyUnavailable(_) => (Code::Unavailable, O::TemporarilyUnavailable),
        AuthError::Unauthenticated => (Code::Unauthenticated, O::Unauthenticated),
        AuthError::Conflict(_) => (Code::AlreadyExists, O::Conflict),
        AuthError::NotFound(_) => (Code::NotFound, O::NotFound),
        AuthError::Internal(_) => (Code::Internal, O::ServerError),
    }
}

/// The wire's code for `err`, for answers that carry it outside a status
/// (`VerifyTokenResponse.error_code`).
pub fn oauth_code(err: &AuthError) -> OauthErrorCode {
    codes(err).1
}

/// `err` and its sources, outermost first, joined as `a: b: c`.
fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

pub fn to_status(err: AuthError) -> Status {
    let (code, oauth) = codes(&err);
    if let AuthError::Internal(source) = &err {
        // Logged once, here, with its whole chain; the caller gets the generic RFC text.
        let source: &(dyn std::error::Error + 'static) = source.as_ref();
        tracing::error!(error = %cause_chain(source), "internal error");
    }
    // Labelled by the registered error code only.
    metrics::counter!("latchkey_oauth_errors_total", "error" => err.code()).increment(1);
    let description = err.description();
    let metadata = HashMap::from([("error_description".to_owned(), description.clone())]);
    let info = pb::ErrorInfo {
        reason: err.code().to_owned(),
        domain: OAUTH_DOMAIN.to_owned(),
        metadata,
    };
    let mut details = vec![
        prost_types::Any {
            type_url: ErrorInfo::TYPE_URL.to_owned(),
            value: info.encode_to_vec(),
        },
        OauthErrorDetail::any(oauth),
    ];
    // google.rpc.RetryInfo: when to try again, which the gateway sends as `Retry-After`.
    if let Some(secs) = err.retry_after_secs() {
        let retry = pb::RetryInfo {
            retry_delay: Some(prost_types::Duration {
                seconds: i64::try_from(secs).unwrap_or(i64::MAX),
                nanos: 0,
            }),
        };
        details.push(prost_types::Any {
            type_url: RetryInfo::TYPE_URL.to_owned(),
            value: retry.encode_to_vec(),
        });
    }
    let details = pb::Status {
        code: code as i32,
        message: description.clone(),
        details,
    };
    Status::with_details(code, description, details.encode_to_vec().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::Reason;
    use tonic_types::StatusExt;

    #[derive(Debug, thiserror::Error)]
    #[error("query failed")]
    struct Outer(#[source] Inner);
    #[derive(Debug, thiserror::Error)]
    #[error("connection reset")]
    struct Inner;

    #[test]
    fn the_cause_chain_names_every_source_outermost_first() {
        assert_eq!(cause_chain(&Outer(Inner)), "query failed: connection reset");
    }

    #[test]
    fn an_internal_error_shows_the_caller_only_the_rfc_text() {
        let s = to_status(AuthError::internal(Outer(Inner)));
        assert_eq!(s.code(), Code::Internal);
        assert_eq!(s.message(), "the server failed to process the request");
        let info = s.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "server_error");
        assert!(!format!("{:?}", s.details()).contains("connection reset"));
    }

    #[test]
    fn an_unreachable_database_is_unavailable_with_a_retry_delay_and_nothing_else_is() {
        let s = to_status(AuthError::TemporarilyUnavailable(
            Reason::DatabaseUnavailable {
                retry_after_secs: 3,
            },
        ));
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(
            s.get_details_error_info().map(|i| i.reason),
            Some("temporarily_unavailable".to_owned())
        );
        let delay = s.get_details_retry_info().and_then(|r| r.retry_delay);
        assert_eq!(delay, Some(std::time::Duration::from_secs(3)));
        let other = to_status(AuthError::internal(Outer(Inner)));
        assert_eq!(other.code(), Code::Internal);
        assert!(other.get_details_retry_info().is_none());
    }

    #[test]
    fn the_typed_code_and_the_error_info_reason_name_the_same_code() {
        let s = to_status(AuthError::InvalidGrant(Reason::CodeUnusable));
        let info = s.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "invalid_grant");
        assert_eq!(info.domain, OAUTH_DOMAIN);
        let status = pb::Status::decode(s.details()).expect("google.rpc.Status");
        let typed = OauthErrorDetail::find(&status.details).map(|d| d.code());
        assert_eq!(typed, Some(OauthErrorCode::InvalidGrant));
        assert_eq!(
            typed.and_then(OauthErrorCode::rfc_code),
            Some(info.reason.as_str())
        );
    }
}
