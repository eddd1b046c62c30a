//! The settings the core needs, already parsed into domain types.

use crate::resource::ProtectedResource;
use crate::scope::ScopePolicy;
use chrono::Duration;

#[derive(Debug, Clone)]
pub struct CoreSettings {
    /// The issuer identifier, without a trailing slash; endpoint URLs are built from it.
    pub issuer: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub code_ttl: Duration,
    /// How long a user has to finish login and consent.
    pub session_ttl: Duration,
    /// Clock skew tolerated when checking `exp` and `nbf`.
    pub leeway_secs: u64,
    pub scopes: ScopePolicy,
    /// Seals signing keys at rest.
    pub key_encryption_key: Option<crate::keys::Kek>,
    /// How long a new key is published before it signs.
    pub key_publish_secs: i64,
    /// Rotate the signing key when it has signed this long (0: never by itself).
    pub key_rotation_secs: i64,
    /// Per-account sign-in lockout.
    pub lockout: crate::lockout::LockoutPolicy,
    /// Protected resources from configuration, in addition to the registered ones.
    pub resources: Vec<ProtectedResource>,
    /// With no protected resource known, accept any https or loopback URL as one
    /// (development). Off in production, where a token's audience is always a resource the
    /// operator declared.
    pub open_resources: bool,
    /// Who may register clients at `/register`.
    pub registration: crate::registration::RegistrationPolicy,
}
