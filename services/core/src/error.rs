//! The one error type of the domain: [`AuthError`], named after the OAuth error codes.
//!
//! Each transport maps it exactly once: `latchkey-auth` to a `tonic::Status` carrying the code
//! in its details, and the gateway from there to RFC 6749 §5.2 JSON, an RFC 6750 challenge, an
//! error redirect or an error page. Reasons are typed so that a message never has to be parsed.

use std::fmt;

const MAX_DESCRIPTION: usize = 200;

/// An OAuth protocol error, or an internal failure the client must not see the details of.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// RFC 6749 §5.2 `invalid_request`: missing, repeated or malformed parameter.
    #[error("invalid_request: {0}")]
    InvalidRequest(Reason),
    /// RFC 6749 §5.2 `invalid_client`: client authentication failed.
    #[error("invalid_client: {0}")]
    InvalidClient(Reason),
    /// RFC 6749 §5.2 `invalid_grant`: the code, refresh token or verifier is not good.
    #[error("invalid_grant: {0}")]
    InvalidGrant(Reason),
    /// RFC 6749 §5.2 `unauthorized_client`: this client may not use this grant type.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(Reason),
    /// RFC 6749 §5.2 `unsupported_grant_type`.
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(Reason),
    /// RFC 6749 §4.1.2.1 `unsupported_response_type`.
    #[error("unsupported_response_type: {0}")]
    UnsupportedResponseType(Reason),
    /// RFC 6749 §5.2 `invalid_scope`.
    #[error("invalid_scope: {0}")]
    InvalidScope(Reason),
    /// RFC 8707 §2 `invalid_target`: the resource is unknown or malformed.
    #[error("invalid_target: {0}")]
    InvalidTarget(Reason),
    /// RFC 6749 §4.1.2.1 `access_denied`: the user said no.
    #[error("access_denied: {0}")]
    AccessDenied(Reason),
    /// RFC 7591 §3.2.2 `invalid_redirect_uri`.
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(Reason),
    /// RFC 7591 §3.2.2 `invalid_client_metadata`.
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(Reason),
    /// RFC 7009 §2.2.1 `unsupported_token_type`.
    #[error("unsupported_token_type: {0}")]
    UnsupportedTokenType(Reason),
    /// RFC 6750 §3.1 `invalid_token`.
    #[error("invalid_token: {0}")]
    InvalidToken(Reason),
    /// RFC 6750 §3.1 `insufficient_scope`.
    #[error("insufficient_scope: {0}")]
    InsufficientScope(Reason),
    /// RFC 6749 §4.1.2.1 / §5.2 `temporarily_unavailable`: a dependency is down; retry later.
    #[error("temporarily_unavailable: {0}")]
    TemporarilyUnavailable(Reason),
    /// The caller of a gateway-only operation is not the gateway.
    #[error("unauthenticated caller")]
    Unauthenticated,
    /// An administrative request that conflicts with existing state (duplicate email, …).
    #[error("conflict: {0}")]
    Conflict(Reason),
    /// An administrative request for something that does not exist.
    #[error("not found: {0}")]
    NotFound(Reason),
    /// RFC 6749 §5.2 `server_error`. The source is logged once at the edge, never shown.
    #[error("server_error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AuthError {
    /// The registered OAuth error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient(_) => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType(_) => "unsupported_grant_type",
            Self::UnsupportedResponseType(_) => "unsupported_response_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
            Self::AccessDenied(_) => "access_denied",
            Self::InvalidRedirectUri(_) => "invalid_redirect_uri",
            Self::InvalidClientMetadata(_) => "invalid_client_metadata",
            Self::UnsupportedTokenType(_) => "unsupported_token_type",
            Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::TemporarilyUnavailable(_) => "temporarily_unavailable",
            Self::Unauthenticated => "unauthenticated",
            Self::Conflict(_) => "conflict",
            Self::NotFound(_) => "not_found",
            Self::Internal(_) => "server_error",
        }
    }

    /// A human-readable description that is safe to show the client.
    ///
    /// RFC 6749 §5.2: `error_description` is limited to %x20-21 / %x23-5B / %x5D-7E, so any
    /// echoed request value is filtered to that set and truncated.
    pub fn description(&self) -> String {
        let raw = self.raw_description();
        let mut out: String = raw
            .chars()
            .map(|c| {
                if matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E') {
                    c
                } else {
                    '?'
                }
            })
            .take(MAX_DESCRIPTION)
            .collect();
        if raw.chars().count() > MAX_DESCRIPTION {
            out.push_str("...");
        }
        out
    }

    fn raw_description(&self) -> String {
        match self {
            Self::InvalidRequest(r)
            | Self::InvalidClient(r)
            | Self::InvalidGrant(r)
            | Self::UnauthorizedClient(r)
            | Self::UnsupportedGrantType(r)
            | Self::UnsupportedResponseType(r)
            | Self::InvalidScope(r)
            | Self::InvalidTarget(r)
            | Self::AccessDenied(r)
            | Self::InvalidRedirectUri(r)
            | Self::InvalidClientMetadata(r)
            | Self::UnsupportedTokenType(r)
            | Self::InvalidToken(r)
            | Self::InsufficientScope(r)
            | Self::Conflict(r)
            | Self::TemporarilyUnavailable(r)
            | Self::NotFound(r) => r.to_string(),
            Self::Unauthenticated => "the caller is not authenticated".into(),
            Self::Internal(_) => "the server failed to process the request".into(),
        }
    }

    /// Wraps any failure of a dependency (storage, crypto) as an internal error.
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }
}

/// Why a request was rejected, stated for the client.
///
/// Typed so that tests and transports can match on it; `Display` gives the
/// `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Missing(&'static str),
    Repeated(String),
    Malformed(&'static str),
    Unsupported(&'static str, String),
    UnknownClient,
    ClientAuthenticationFailed,
    MultipleClientAuthMethods,
    ClientAuthMethodNotAllowed(&'static str),
    PublicClientNotAllowed,
    RedirectUriMismatch,
    PkceRequired,
    PkcePlainNotAllowed,
    PkceVerificationFailed,
    CodeUnusable,
    CodeReplayed,
    RefreshTokenUnusable,
    RefreshTokenReused,
    ClientMismatch,
    GrantNotAllowed(&'static str),
    ScopeUnknown(String),
    ScopeBroadened(String),
    ResourceUnknown(String),
    ResourceMalformed(&'static str),
    ResourceMismatch,
    MultipleResources,
    UserDenied,
    SessionExpired,
    CsrfMismatch,
    Token(&'static str),
    /// The token names a `kid` this key ring does not have (a verifier may refetch the JWKS).
    UnknownSigningKey,
    Text(&'static str),
    Owned(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(p) => write!(f, "missing required parameter: {p}"),
            Self::Repeated(p) => write!(f, "parameter included more than once: {p}"),
            Self::Malformed(p) => write!(f, "malformed parameter: {p}"),
            Self::Unsupported(what, v) => write!(f, "unsupported {what}: {v}"),
            Self::UnknownClient => f.write_str("unknown client"),
            Self::ClientAuthenticationFailed => f.write_str("client authentication failed"),
            Self::MultipleClientAuthMethods => {
                f.write_str("the client used more than one authentication method")
            }
            Self::ClientAuthMethodNotAllowed(m) => {
                write!(
                    f,
                    "the client is not registered for authentication method {m}"
                )
            }
            Self::PublicClientNotAllowed => {
                f.write_str("this operation requires a confidential client")
            }
            Self::RedirectUriMismatch => {
                f.write_str("redirect_uri does not match a registered redirect URI")
            }
            Self::PkceRequired => f.write_str("PKCE is required: send code_challenge"),
            Self::PkcePlainNotAllowed => {
                f.write_str("code_challenge_method must be S256; plain is not allowed")
            }
            Self::PkceVerificationFailed => f.write_str("code_verifier does not match"),
            Self::CodeUnusable => f.write_str("authorization code is invalid or expired"),
            Self::CodeReplayed => {
                f.write_str("authorization code was already used; its tokens are revoked")
            }
            Self::RefreshTokenUnusable => f.write_str("refresh token is invalid or expired"),
            Self::RefreshTokenReused => {
                f.write_str("refresh token was already used; the grant is revoked")
            }
            Self::ClientMismatch => f.write_str("the grant was issued to another client"),
            Self::GrantNotAllowed(g) => {
                write!(f, "the client is not registered for grant type {g}")
            }
            Self::ScopeUnknown(s) => write!(f, "unknown scope: {s}"),
            Self::ScopeBroadened(s) => write!(f, "scope exceeds the original grant: {s}"),
            Self::ResourceUnknown(r) => write!(f, "unknown resource: {r}"),
            Self::ResourceMalformed(why) => write!(f, "malformed resource: {why}"),
            Self::ResourceMismatch => f.write_str("resource does not match the grant"),
            Self::MultipleResources => f.write_str("only one resource per request is supported"),
            Self::UserDenied => f.write_str("the user denied the request"),
            Self::SessionExpired => f.write_str("the authorization session expired or is unknown"),
            Self::CsrfMismatch => f.write_str("the form is stale or was not sent by this server"),
            Self::Token(why) => f.write_str(why),
            Self::UnknownSigningKey => f.write_str("unknown signing key"),
            Self::Text(t) => f.write_str(t),
            Self::Owned(t) => f.write_str(t),
        }
    }
}

/// Shorthand for results in the core.
pub type AuthResult<T> = Result<T, AuthError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_filtered_to_the_rfc_6749_character_set_and_truncated() {
        let e = AuthError::InvalidRequest(Reason::Unsupported(
            "response_type",
            format!("tök\"en\\{}", "x".repeat(500)),
        ));
        let d = e.description();
        assert!(
            d.chars()
                .all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')),
            "{d}"
        );
        assert!(d.len() <= 210);
    }
}
