//! The OAuth error code on the wire: [`OauthErrorCode`] and its registered string, and the
//! [`OauthErrorDetail`] status detail that carries it.
//!
//! Both edges share this table: `latchkey-auth` writes the code into a failed call's status
//! details, and the gateway and resource servers read it back. Which code an error gets is
//! decided in `latchkey-auth` (`status.rs`); which HTTP answer a code gets, in the gateway.

use crate::v1::{OauthErrorCode, OauthErrorDetail, VerifyTokenResponse};
use prost::Message;

impl OauthErrorCode {
    /// Every code that is sent, in the order of the proto (not `Unspecified`).
    pub const ALL: [Self; 19] = [
        Self::InvalidRequest,
        Self::InvalidClient,
        Self::InvalidGrant,
        Self::UnauthorizedClient,
        Self::UnsupportedGrantType,
        Self::UnsupportedResponseType,
        Self::InvalidScope,
        Self::InvalidTarget,
        Self::AccessDenied,
        Self::InvalidRedirectUri,
        Self::InvalidClientMetadata,
        Self::UnsupportedTokenType,
        Self::InvalidToken,
        Self::InsufficientScope,
        Self::TemporarilyUnavailable,
        Self::ServerError,
        Self::Unauthenticated,
        Self::Conflict,
        Self::NotFound,
    ];

    /// The registered error code (`ErrorInfo.reason`, and the `error` of RFC 6749 §5.2 JSON).
    /// `None` for `Unspecified`, which is not a code.
    pub const fn rfc_code(self) -> Option<&'static str> {
        Some(match self {
            Self::Unspecified => return None,
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
            Self::Unauthenticated => "unauthenticated",
            Self::Conflict => "conflict",
            Self::NotFound => "not_found",
        })
    }

    /// The code registered as `code`, for `ErrorInfo.reason` sent by a server older than
    /// [`OauthErrorDetail`]. An exact match of a registered code, never a message parse.
    pub fn from_rfc_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.rfc_code() == Some(code))
    }
}

impl OauthErrorDetail {
    /// The type URL of the detail in `google.rpc.Status.details`.
    pub const TYPE_URL: &'static str = "type.googleapis.com/latchkey.v1.OauthErrorDetail";

    /// The detail for `code`, packed for `google.rpc.Status.details`.
    pub fn any(code: OauthErrorCode) -> prost_types::Any {
        prost_types::Any {
            type_url: Self::TYPE_URL.to_owned(),
            value: Self { code: code as i32 }.encode_to_vec(),
        }
    }

    /// The first detail of this type among `details`, if one decodes.
    pub fn find(details: &[prost_types::Any]) -> Option<Self> {
        details
            .iter()
            .filter(|a| a.type_url == Self::TYPE_URL)
            .find_map(|a| Self::decode(a.value.as_slice()).ok())
    }
}

impl VerifyTokenResponse {
    /// Why the token was refused (RFC 6750 §3.1): `error_code`, or for a server older than
    /// that field, the registered code in `error`. `Unspecified` when neither names one.
    pub fn refusal_code(&self) -> OauthErrorCode {
        match self.error_code() {
            OauthErrorCode::Unspecified => {
                OauthErrorCode::from_rfc_code(&self.error).unwrap_or(OauthErrorCode::Unspecified)
            }
            code => code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_but_unspecified_has_one_registered_string_that_reads_back() {
        assert_eq!(OauthErrorCode::Unspecified.rfc_code(), None);
        for code in OauthErrorCode::ALL {
            let s = code.rfc_code().expect("every listed code has a string");
            assert_eq!(OauthErrorCode::from_rfc_code(s), Some(code), "{s}");
        }
        // ALL lists every value of the proto enum but UNSPECIFIED.
        let max = OauthErrorCode::ALL.iter().map(|c| *c as i32).max();
        assert_eq!(max, Some(OauthErrorCode::ALL.len() as i32));
        assert_eq!(OauthErrorCode::try_from(max.unwrap_or(0) + 1).ok(), None);
        assert_eq!(OauthErrorCode::from_rfc_code("no_such_code"), None);
    }

    #[test]
    fn a_refusal_is_read_from_the_typed_field_or_from_an_older_servers_string() {
        let typed = VerifyTokenResponse {
            error: "invalid_token".into(),
            error_code: OauthErrorCode::InsufficientScope as i32,
            ..Default::default()
        };
        assert_eq!(typed.refusal_code(), OauthErrorCode::InsufficientScope);
        let older = VerifyTokenResponse {
            error: "insufficient_scope".into(),
            ..Default::default()
        };
        assert_eq!(older.refusal_code(), OauthErrorCode::InsufficientScope);
        assert_eq!(
            VerifyTokenResponse::default().refusal_code(),
            OauthErrorCode::Unspecified
        );
    }

    #[test]
    fn the_detail_reads_back_from_among_other_details() {
        let other = prost_types::Any {
            type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
            value: vec![1, 2, 3],
        };
        let details = [other, OauthErrorDetail::any(OauthErrorCode::InvalidGrant)];
        assert_eq!(
            OauthErrorDetail::find(&details).map(|d| d.code()),
            Some(OauthErrorCode::InvalidGrant)
        );
        assert_eq!(OauthErrorDetail::find(&details[..1]), None);
    }
}
