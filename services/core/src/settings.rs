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

    // Bounds on what callers can make the server hold.
    /// Self-registered (`dynamic`) clients kept at most; past it, `/register` answers
    /// `temporarily_unavailable` until some are deleted.
    pub max_dynamic_clients: u64,
    /// Authorizations in progress per client network (an IPv4 address, an IPv6 /64).
    pub max_sessions_per_network: u32,
    /// Access-token revocations (RFC 7009) in force per client; past it, revoking a token
    /// revokes its whole grant instead of adding an event.
    pub max_token_revocations_per_client: u64,

    // Storage that would otherwise only grow.
    /// A `dynamic` client unused this long, with no live refresh token, is deleted (`None`:
    /// never).
    pub dynamic_client_idle: Option<Duration>,
    /// A `dynamic` client never used this long after it registered, with nothing pending,
    /// is deleted (`None`: only the idle rule applies). Registrations that are never used
    /// would otherwise hold their place in `max_dynamic_clients` for the whole idle period.
    pub dynamic_client_unused: Option<Duration>,
    /// How long the secret of a `dynamic` confidential client stays valid (`None`: forever;
    /// RFC 7591 §3.2.1 `client_secret_expires_at` 0).
    pub dynamic_client_secret_ttl: Option<Duration>,
    /// RFC 9700 §4.14.2: a grant issues no refresh token past this age, however often it is
    /// refreshed (`None`: no bound beyond the refresh token's own lifetime).
    pub refresh_max_age: Option<Duration>,
    /// Client ID Metadata Documents: on or off, and which hosts are allowed, denied and
    /// trusted.
    pub client_documents: crate::metadata_document::DocumentPolicy,
}
