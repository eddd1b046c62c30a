//! Bounds on what one authorization request can make the server store or send back.
//!
//! A pending authorization keeps `state` and the validated request until the user decides,
//! and every answer to the client echoes `state`. Without a bound, one request could park
//! 64 KB in the session store, and a flood of them exhaust it. Each parameter has a bound
//! well above what any client sends; past it, the request is refused with `invalid_request`
//! before anything is looked up or stored.
//!
//! The refusal is shown to the user, never redirected: a redirect would have to carry the
//! oversized `state` back, or drop it and fail the client's own check of it. An honest client
//! never meets these bounds.
//!
//! `nonce` is an OpenID Connect parameter; this server does not implement OpenID Connect, and
//! the gateway does not pass it on, so it is neither stored nor echoed.
//!
//! The bounds on registration metadata live with the metadata parser (`registration`), and
//! those on sessions, clients and revocations are settings ([`crate::CoreSettings`]).

use crate::authorize::AuthorizationRequest;
use crate::error::{AuthError, AuthResult, Reason};

/// The longest `state`. Clients use a random value of 20 to 50 characters, some a few hundred
/// characters of encoded JSON; 2 KB keeps the whole redirect back well under the 8 KB that
/// browsers and proxies accept in a URL.
pub const MAX_STATE_LEN: usize = 2048;
/// The longest `redirect_uri`, as at registration.
pub const MAX_REDIRECT_URI_LEN: usize = 2000;
/// The longest `scope` string: far beyond any supported set of scopes.
pub const MAX_SCOPE_LEN: usize = 2048;
/// `resource` may repeat (RFC 8707 §2); this server uses one, and refuses more than this
/// many before looking at any.
pub const MAX_RESOURCES: usize = 8;
/// The longest `resource`, as a protected resource's URI may be.
pub const MAX_RESOURCE_LEN: usize = 2000;
/// RFC 7636 §4.2: an S256 challenge is 43 characters; the bound leaves room for the error
/// that names a malformed one.
pub const MAX_CODE_CHALLENGE_LEN: usize = 128;
/// `response_type`, `response_mode`, `code_challenge_method`: short words.
pub const MAX_WORD_LEN: usize = 64;

/// Refuses an authorization request with a parameter past its bound.
pub(crate) fn check_authorization_request(req: &AuthorizationRequest) -> AuthResult<()> {
    let bounded = [
        (
            "client_id",
            req.client_id.as_deref(),
            crate::client_auth::MAX_CLIENT_ID_LEN,
        ),
        (
            "redirect_uri",
            req.redirect_uri.as_deref(),
            MAX_REDIRECT_URI_LEN,
        ),
        ("state", req.state.as_deref(), MAX_STATE_LEN),
        ("scope", req.scope.as_deref(), MAX_SCOPE_LEN),
        (
            "code_challenge",
            req.code_challenge.as_deref(),
            MAX_CODE_CHALLENGE_LEN,
        ),
        (
            "code_challenge_method",
            req.code_challenge_method.as_deref(),
            MAX_WORD_LEN,
        ),
        ("response_type", req.response_type.as_deref(), MAX_WORD_LEN),
        ("response_mode", req.response_mode.as_deref(), MAX_WORD_LEN),
    ];
    for (name, value, max) in bounded {
        if value.is_some_and(|v| v.len() > max) {
            return Err(AuthError::InvalidRequest(Reason::TooLong(name, max)));
        }
    }
    if req.resource.len() > MAX_RESOURCES {
        return Err(AuthError::InvalidRequest(Reason::TooMany(
            "resource",
            MAX_RESOURCES,
        )));
    }
    if req.resource.iter().any(|r| r.len() > MAX_RESOURCE_LEN) {
        return Err(AuthError::InvalidRequest(Reason::TooLong(
            "resource",
            MAX_RESOURCE_LEN,
        )));
    }
    Ok(())
}
