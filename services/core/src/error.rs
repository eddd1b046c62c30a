//! The one error type of the domain: [`AuthError`], named after the OAuth error codes.
//!
//! Each transport maps it exactly once: `latchkey-auth` to a `tonic::Status` carrying the code
//! in its details, and the gateway from there to RFC 6749 §5.2 JSON, an RFC 6750 challenge, an
//! error redirect or an error page. Reasons are typed so that a message never has to be parsed.

use std::fmt;

const MAX_DESCRIPTION: usize = 200;

/// The retry hint of a `temporarily_unavailable` that brings none of its own.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 1;

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

    /// For `temporarily_unavailable`, how many seconds the client should wait before it
    /// retries (HTTP `Retry-After`, RFC 9110 §10.2.3); `None` for every other error.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::TemporarilyUnavailable(Reason::DatabaseUnavailable { retry_after_secs }) => {
                Some((*retry_after_secs).max(1))
            }
            // Room is made when a never-used registration is old enough to give way.
            Self::TemporarilyUnavailable(Reason::DynamicClientLimit) => {
                Some(u64::try_from(crate::registration::GIVE_WAY_AFTER.num_seconds()).unwrap_or(1))
            }
            Self::TemporarilyUnavailable(_) => Some(DEFAULT_RETRY_AFTER_SECS),
            _ => None,
        }
    }

    /// Wraps any failure of a dependency (storage, crypto) as an internal error.
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }
}

/// Why an access token is refused (RFC 6750 §3.1 `invalid_token`; RFC 9068 §4 for the
/// checks on a JWT access token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFault {
    /// Not three base64url parts, a header or claims that are not JSON, or too long.
    Malformed,
    /// Any `alg` but EdDSA, `none` included.
    UnsupportedAlgorithm,
    /// A `crit` header, which this server understands none of.
    CriticalHeader,
    /// A `typ` other than `at+jwt` (RFC 9068 §4).
    NotAnAccessToken,
    /// No `kid` to find the key with.
    NoKeyId,
    BadSignature,
    /// `iss` is not this server.
    WrongIssuer,
    Expired,
    /// `nbf` is still ahead.
    NotYetValid,
    Revoked,
    /// `aud` is not the resource asking (RFC 8707).
    OtherAudience,
}

impl fmt::Display for TokenFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed token",
            Self::UnsupportedAlgorithm => "unsupported algorithm",
            Self::CriticalHeader => "unsupported critical header",
            Self::NotAnAccessToken => "not an access token",
            Self::NoKeyId => "token has no key id",
            Self::BadSignature => "bad signature",
            Self::WrongIssuer => "wrong issuer",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::Revoked => "token revoked",
            Self::OtherAudience => "token is for another audience",
        })
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
    /// RFC 6750 §3.1 `invalid_token`: why an access token is refused.
    Token(TokenFault),
    /// The token names a `kid` this key ring does not have (a verifier may refetch the JWKS).
    UnknownSigningKey,

    // Client authentication and registration.
    /// RFC 6749 §2.3.1: Basic credentials and a body `client_id` must name the same client.
    BasicAndBodyClientIdDiffer,
    /// Registration is switched off by the operator.
    RegistrationDisabled,
    /// RFC 7591 §3: the initial access token does not open registration.
    InitialAccessTokenUnusable,
    /// An operator's initial access token must name a resource its clients may get tokens for.
    InitialAccessTokenWithoutResource,
    /// An initial access token outlives [`crate::registration::MAX_INITIAL_TOKEN_TTL_SECS`].
    InitialAccessTokenLifetime,
    /// RFC 7592 §2 (RFC 6750 §3.1 `invalid_token`): the registration access token does not
    /// open this client's configuration endpoint. One reason for every cause (no such client,
    /// a client not managed this way, a wrong token), so the answer reveals none of them.
    RegistrationAccessTokenUnusable,
    /// RFC 7591 §2: client metadata the server refuses.
    Metadata(crate::registration::MetadataFault),
    /// draft-ietf-oauth-client-id-metadata-document: a `client_id` URL whose document
    /// names no usable client.
    MetadataDocument(crate::metadata_document::DocumentFault),
    /// RFC 7523 §3: why a client assertion (`private_key_jwt`) does not authenticate.
    Assertion(crate::client_assertion::AssertionFault),
    /// RFC 7591 §2, RFC 6749 §3.1.2, RFC 8252: a redirect URI the server refuses.
    RedirectUri(crate::redirect_uri::RedirectUriFault),
    /// A public client cannot prove it is the resource server it claims to be.
    OwnedResourceNeedsConfidentialClient,

    // Grants, sessions and consent.
    /// The user behind a grant is disabled.
    UserDisabled,
    /// The resource a grant is bound to has been deleted since.
    ResourceNoLongerProtected,
    /// `offline_access` asks for a refresh token, which a grant without a user never gets.
    OfflineAccessWithoutUser,
    /// RFC 6749 §10.10: the authorization ends after too many failed sign-ins.
    TooManyFailedLogins,
    /// Consent submitted before a user signed in.
    NotLoggedIn,
    /// RFC 6749 §3.3: no scope asked for, and no default applies.
    NoDefaultScope,
    /// RFC 7009 §2.1: a client may only revoke its own tokens.
    TokenOfAnotherClient,

    // Resources and verification.
    /// RFC 8707 §2: no protected resource is registered, so no audience can be chosen.
    NoResourceRegistered,
    /// RFC 8707 §2: the client may get tokens for several resources and named none.
    ResourceAmbiguous,
    /// Introspection and verification are for clients that own a protected resource.
    OwnsNoResource,
    /// A resource server asked about an audience it does not own.
    AudienceNotOwned,
    /// RFC 6750 §3.1: every scope the operation needs, in the order the caller listed them.
    ScopesRequired(Vec<String>),
    /// MCP 2026-07-28 scope hierarchies: an operator's declaration the server refuses.
    ScopeHierarchy(crate::scope_hierarchy::HierarchyFault),

    // Administration.
    NoSuchClient,
    NoSuchUser,
    NoSuchResource,
    EmailTaken,
    ResourceAlreadyRegistered,
    MalformedEmail,
    PasswordTooShort,
    PasswordTooLong,

    /// RFC 6749 §5.2 `temporarily_unavailable`: a shared dependency (Redis) is down.
    DependencyUnavailable,

    // Bounds on what a caller can make the server hold (see `limits`).
    /// A parameter or metadata value longer than the server keeps: (name, most bytes).
    TooLong(&'static str, usize),
    /// More values of a parameter or metadata list than the server keeps: (name, most).
    TooMany(&'static str, usize),
    /// The caller's network already has as many authorizations in progress as it may.
    TooManyPendingAuthorizations,
    /// The operator's bound on self-registered clients is reached.
    DynamicClientLimit,
    /// RFC 7591 §3.2.1: the client's `client_secret_expires_at` has passed.
    ClientSecretExpired,
    /// RFC 9700 §4.14.2: the grant is older than the absolute maximum age of a refresh grant.
    GrantMaxAgeReached,
    /// The client has as many access-token revocations in force as it may, and the token
    /// belongs to no grant that could be revoked instead.
    TooManyRevocations,
    /// RFC 6749 §5.2 `temporarily_unavailable`: the database cannot be reached; retry after
    /// the given number of seconds (HTTP `Retry-After`, gRPC `RetryInfo`).
    DatabaseUnavailable {
        retry_after_secs: u64,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(p) => write!(f, "missing required parameter: {p}"),
            Self::Repeated(p) => write!(f, "parameter included more than once: {p}"),
            Self::Malformed(p) => write!(f, "malformed parameter: {p}"),
            Self::Unsupported(what, v) => write!(f, "unsupported {what}: {v}"),
            // Some clients (Claude Code among them) keep replaying a client_id that was deleted
            // (unused for long): the person reading this must learn that only registering
            // again helps.
            Self::UnknownClient => f.write_str(
                "unknown client: the application is not registered here, or was removed after \
                 a long time unused; the application must register again",
            ),
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
            Self::Token(fault) => fault.fmt(f),
            Self::UnknownSigningKey => f.write_str("unknown signing key"),
            Self::BasicAndBodyClientIdDiffer => {
                f.write_str("client_id in the body differs from the Basic credentials")
            }
            Self::RegistrationDisabled => {
                f.write_str("client registration is disabled on this server")
            }
            Self::InitialAccessTokenUnusable => {
                f.write_str("the initial access token is invalid, expired or already used")
            }
            Self::InitialAccessTokenWithoutResource => {
                f.write_str("an initial access token names at least one resource")
            }
            Self::InitialAccessTokenLifetime => {
                f.write_str("an initial access token lives between 1 second and 30 days")
            }
            Self::RegistrationAccessTokenUnusable => f.write_str(
                "the registration access token is invalid, or does not manage this client",
            ),
            Self::Metadata(fault) => fault.fmt(f),
            Self::RedirectUri(fault) => fault.fmt(f),
            Self::MetadataDocument(fault) => fault.fmt(f),
            Self::Assertion(fault) => fault.fmt(f),
            Self::OwnedResourceNeedsConfidentialClient => {
                f.write_str("only a confidential client can own a resource")
            }
            Self::UserDisabled => f.write_str("the user is disabled"),
            Self::ResourceNoLongerProtected => {
                f.write_str("the grant's resource is no longer protected by this server")
            }
            Self::OfflineAccessWithoutUser => {
                f.write_str("offline_access does not apply to client_credentials")
            }
            Self::TooManyFailedLogins => {
                f.write_str("too many failed sign-in attempts; start again from the application")
            }
            Self::NotLoggedIn => f.write_str("log in first"),
            Self::NoDefaultScope => f.write_str("no scope requested and no default applies"),
            Self::TokenOfAnotherClient => f.write_str("the token was not issued to this client"),
            Self::NoResourceRegistered => f.write_str("no protected resource is registered"),
            Self::ResourceAmbiguous => f.write_str(
                "this client may get tokens for several resources: name one as resource",
            ),
            Self::OwnsNoResource => f.write_str("the client owns no protected resource"),
            Self::AudienceNotOwned => f.write_str("the caller does not own this audience"),
            Self::ScopesRequired(scopes) => write!(f, "requires scope: {}", scopes.join(" ")),
            Self::ScopeHierarchy(fault) => fault.fmt(f),
            Self::NoSuchClient => f.write_str("no such client"),
            Self::NoSuchUser => f.write_str("no user with this email"),
            Self::NoSuchResource => f.write_str("no such protected resource"),
            Self::EmailTaken => f.write_str("a user with this email already exists"),
            Self::ResourceAlreadyRegistered => f.write_str("this resource is already registered"),
            Self::MalformedEmail => f.write_str("malformed email address"),
            Self::PasswordTooShort => write!(
                f,
                "password must be at least {} characters",
                crate::password::MIN_LENGTH
            ),
            Self::PasswordTooLong => f.write_str("password is too long"),
            Self::DependencyUnavailable => {
                f.write_str("a service this request needs is unavailable; retry later")
            }
            Self::TooLong(what, max) => write!(f, "{what} is too long (at most {max} bytes)"),
            Self::TooMany(what, max) => write!(f, "too many values of {what} (at most {max})"),
            Self::TooManyPendingAuthorizations => f.write_str(
                "too many sign-ins are in progress from this network; finish one or retry later",
            ),
            Self::DynamicClientLimit => f.write_str(
                "this server holds as many self-registered clients as it allows; retry later",
            ),
            Self::ClientSecretExpired => {
                f.write_str("the client secret has expired; the client must register again")
            }
            Self::GrantMaxAgeReached => {
                f.write_str("the grant has reached its maximum age; the user must authorize again")
            }
            Self::TooManyRevocations => {
                f.write_str("this client has too many revoked tokens in force; retry later")
            }
            Self::DatabaseUnavailable { .. } => {
                f.write_str("the server's storage is unavailable; retry later")
            }
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
