//! The one mapping from [`AuthError`] to `tonic::Status`.
//!
//! The OAuth error code travels as `google.rpc.ErrorInfo.reason` (domain `oauth2`) with the
//! description in its metadata, so callers map by code and never parse a message.

use latchkey_core::AuthError;
use std::collections::HashMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of OAuth errors.
pub const OAUTH_DOMAIN: &str = "oauth2";

pub fn to_status(err: AuthError) -> Status {
    let code = match &err {
        AuthError::InvalidClient(_) | AuthError::Unauthenticated | AuthError::InvalidToken(_) => {
            Code::Unauthenticated
        }
        AuthError::InsufficientScope(_) | AuthError::AccessDenied(_) => Code::PermissionDenied,
        AuthError::NotFound(_) => Code::NotFound,
        AuthError::TemporarilyUnavailable(_) => Code::Unavailable,
        AuthError::Conflict(_) => Code::AlreadyExists,
        AuthError::Internal(source) => {
            // Logged once, here, with its chain; the caller gets a generic message.
            tracing::error!(error = %source, chain = ?source, "internal error");
            Code::Internal
        }
        _ => Code::InvalidArgument,
    };
    // Labelled by the registered error code only.
    metrics::counter!("latchkey_oauth_errors_total", "error" => err.code()).increment(1);
    let description = err.description();
    let metadata = HashMap::from([("error_description".to_owned(), description.clone())]);
    Status::with_error_details(
        code,
        description,
        ErrorDetails::with_error_info(err.code(), OAUTH_DOMAIN, metadata),
    )
}
