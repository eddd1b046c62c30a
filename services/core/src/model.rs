//! The domain records the stores keep. They are plain data; rules live in the flow modules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// RFC 7591 §2 `token_endpoint_auth_method`, as far as this server implements it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A public client: no secret (native and browser apps).
    None,
    ClientSecretBasic,
    ClientSecretPost,
    /// RFC 7523 §2.2: a JWT signed with one of the client's keys (OIDC Core §9).
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Whether the client authenticates with a client secret (RFC 6749 §2.3.1), which the
    /// server makes and stores as a hash.
    pub fn uses_secret(self) -> bool {
        matches!(self, Self::ClientSecretBasic | Self::ClientSecretPost)
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "private_key_jwt" => Some(Self::PrivateKeyJwt),
            _ => None,
        }
    }
}

/// The grant types this server implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// Whether a token from this grant always stands for a user who signed in and consented.
    /// Grants without a user are for operator clients only.
    pub fn needs_user(self) -> bool {
        match self {
            Self::AuthorizationCode | Self::RefreshToken => true,
            Self::ClientCredentials => false,
        }
    }
}

/// How far a client is trusted, which decides what it may do. Stored on the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientTier {
    /// Made by an operator (the CLI, or a registration with an operator's initial access
    /// token). The only tier that may use grants without a user, and only for the resources
    /// and scopes listed on it. Trusted with error redirects before sign-in.
    Operator,
    /// Self-registered through RFC 7591: user-delegated grants only.
    Dynamic,
    /// A Client ID Metadata Document URL as `client_id`: the powers of `Dynamic`.
    MetadataDocument,
}

impl ClientTier {
    pub const ALL: [ClientTier; 3] = [Self::Operator, Self::Dynamic, Self::MetadataDocument];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Dynamic => "dynamic",
            Self::MetadataDocument => "metadata_document",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A registered OAuth client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    /// SHA-256 of the client secret; `None` for a public client.
    pub secret_hash: Option<String>,
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub auth_method: AuthMethod,
    /// The scopes the client registered for; `None` means any supported scope.
    pub scope: Option<crate::scope::ScopeSet>,
    /// The full RFC 7591 metadata as registered (echoed back, never trusted for decisions).
    pub metadata: serde_json::Value,
    /// Protected resources this client serves (set by an administrator, never by the
    /// client): it may verify and introspect tokens whose audience is one of them.
    pub resources: Vec<String>,
    pub tier: ClientTier,
    /// Protected resources this client may get tokens for without a user (normalized; set
    /// by an operator, never by the client). Empty for every tier but `Operator`.
    pub audiences: Vec<String>,
    /// Whether an operator set the redirect URIs itself (the CLI), so that errors found
    /// before sign-in may go back to them at once. A client registered with an initial access
    /// token is an operator's, but chose its own redirect URIs.
    pub trusted_redirects: bool,
    pub created_at: DateTime<Utc>,
    /// When it was last changed (created, tier, owned resources, or its metadata replaced
    /// through RFC 7592); replicas refresh what changed since their last look.
    pub updated_at: DateTime<Utc>,
    /// RFC 7591 §3.2.1 `client_secret_expires_at`: after this instant the secret no longer
    /// authenticates the client. `None`: it does not expire.
    pub secret_expires_at: Option<DateTime<Utc>>,
    /// SHA-256 of the RFC 7592 registration access token, with which a self-registered
    /// (`Dynamic`) client reads, replaces and deletes its own registration. `None` for every
    /// other tier, and for a dynamic client registered before the token existed: neither can
    /// be managed that way.
    pub registration_token_hash: Option<String>,
    /// The public keys of a `private_key_jwt` client; `None` for every other method.
    pub keys: Option<ClientKeys>,
}

/// Where a `private_key_jwt` client's public keys are (RFC 7591 §2: one or the other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientKeys {
    /// A JWK Set given by value, already checked (see `client_assertion::parse_key_set`).
    Jwks(serde_json::Value),
    /// An https URL the key set is fetched from.
    JwksUri(String),
}

impl Client {
    /// Whether the client authenticates (a secret or a key), as opposed to a public client.
    pub fn is_confidential(&self) -> bool {
        self.auth_method != AuthMethod::None
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    pub fn is_operator(&self) -> bool {
        self.tier == ClientTier::Operator
    }
}

/// An operator's permission for exactly one registration to become an `Operator` client
/// (RFC 7591 §3 initial access token), stored by the SHA-256 of its value.
#[derive(Debug, Clone)]
pub struct InitialAccessToken {
    pub token_hash: String,
    /// The resources the client it creates may get tokens for without a user (normalized).
    pub audiences: Vec<String>,
    /// The scopes it may get; `None` means whatever those resources accept.
    pub scope: Option<crate::scope::ScopeSet>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// A resource owner who logs in with email and password.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A grant: what one user's consent (or one code) gave one client. Every refresh token and
/// every access token from the same code belongs to it, so revoking it revokes them all.
#[derive(Debug, Clone)]
pub struct Grant {
    pub id: Uuid,
    pub client_id: String,
    pub user_id: Uuid,
    pub scope: crate::scope::ScopeSet,
    pub resource: String,
    /// The install it was made for (see `redirect_uri::install_key`); `None` for grants made
    /// before installs were recorded.
    pub install: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An authorization code, stored by the SHA-256 of its value.
#[derive(Debug, Clone)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub grant_id: Uuid,
    pub client_id: String,
    /// The redirect URI used in the authorization request, or `None` if it was omitted
    /// (OAuth 2.1 §4.1.3: the token request must then omit it too).
    pub redirect_uri: Option<String>,
    pub code_challenge: String,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
}

/// A refresh token, stored by the SHA-256 of its value.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub token_hash: String,
    pub grant_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
}

/// An Ed25519 signing key as stored.
#[derive(Debug, Clone)]
pub struct StoredSigningKey {
    pub kid: String,
    /// PKCS#8 DER of the private key, sealed with the key-encryption key when one is set.
    pub private_der: Vec<u8>,
    /// The raw 32-byte public key.
    pub public_key: Vec<u8>,
    pub created_at: DateTime<Utc>,
    /// When it starts signing; until then it is only published (publish-before-use).
    pub activates_at: DateTime<Utc>,
}
