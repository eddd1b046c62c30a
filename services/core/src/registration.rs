//! Client registration (RFC 7591): the dynamic path, the operator's path (the CLI, and a
//! registration carrying an initial access token), and the tier each one gives.
//!
//! One metadata parser serves every path; the tier decides only which grants are kept and
//! which resources the client may get tokens for without a user. A `dynamic` client manages
//! its own registration afterwards (RFC 7592, `management.rs`), through the same parser.

use crate::AuthCore;
use crate::error::{AuthError, AuthResult, Reason};
use crate::model::{AuthMethod, Client, ClientKeys, ClientTier, GrantType, InitialAccessToken};
use crate::redirect_uri;
use crate::scope::ScopeSet;
use crate::secret;
use serde_json::{Map, Value, json};
use std::fmt;

mod management;

// Bounds on what one registration can make the server store (RFC 7591 §2 sets none). Each
// is far above what a real client sends; past it, the metadata is refused
// (`invalid_client_metadata`, or `invalid_redirect_uri` for redirect URIs).
const MAX_REDIRECT_URIS: usize = 20;
/// Names and software identifiers.
const MAX_TEXT_LEN: usize = 500;
/// `client_uri`, `logo_uri`, `tos_uri`, `policy_uri`.
const MAX_URI_LEN: usize = 2000;
/// `contacts`: a few addresses, each at most an email address's 254 characters and a margin.
const MAX_CONTACTS: usize = 10;
const MAX_CONTACT_LEN: usize = 320;
/// `grant_types`, `response_types`: this server knows three grant types and one response
/// type; repeats are allowed, endless lists are not.
const MAX_TYPES: usize = 8;
const MAX_TYPE_LEN: usize = 64;
/// `scope`: as at the authorization endpoint.
const MAX_SCOPE_LEN: usize = crate::limits::MAX_SCOPE_LEN;
/// The longest an initial access token may live.
pub const MAX_INITIAL_TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;
/// How old a never-used `dynamic` client must be before it gives way to a new registration at
/// the bound. A client counts as used from the moment it starts an authorization (that first
/// use is written at once), so none gives way while its user signs in; the hour covers the
/// client that registered and has yet to send its user to `/authorize`.
pub const GIVE_WAY_AFTER: chrono::Duration = chrono::Duration::hours(1);

/// Who may register a client at `/register`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistrationPolicy {
    /// Anyone (RFC 7591 open registration): the client is `dynamic`. A registration that
    /// carries an initial access token still becomes `operator`.
    #[default]
    Open,
    /// Only a registration that carries an operator's initial access token (RFC 7591 §3).
    InitialAccessToken,
    /// No registration at `/register`; clients come from the operator alone.
    Off,
}

impl RegistrationPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "initial_access_token" => Some(Self::InitialAccessToken),
            "off" => Some(Self::Off),
            _ => None,
        }
    }
}

/// Client metadata that passed every check, before a tier is applied.
struct Parsed {
    auth_method: AuthMethod,
    grant_types: Vec<GrantType>,
    response_types: Vec<String>,
    redirect_uris: Vec<String>,
    scope: Option<ScopeSet>,
    /// The informational fields (name, URIs, contacts), checked.
    info: Map<String, Value>,
    /// A `private_key_jwt` client's keys.
    keys: Option<ClientKeys>,
}

impl Parsed {
    /// The `dynamic` tier's rule on grants, at registration and at every replacement (RFC
    /// 7592 §2.2): the grants that need no user are dropped (RFC 7591 §2 lets the server
    /// replace requested values), and what is left must be usable.
    fn keep_dynamic_grants(&mut self) -> AuthResult<()> {
        // Only an operator's client may have no grant at all (a resource server that only
        // verifies tokens); a self-registered one would be useless.
        if self.grant_types.is_empty() {
            return Err(bad(MetadataFault::EmptyGrantTypes));
        }
        let asked = self.grant_types.len();
        self.grant_types.retain(|g| g.needs_user());
        if self.grant_types.len() < asked
            && !self.grant_types.contains(&GrantType::AuthorizationCode)
        {
            return Err(bad(MetadataFault::UserlessGrantNeedsOperator));
        }
        Ok(())
    }

    /// Writes what checked metadata sets on a client, and the metadata echoed back as
    /// registered (RFC 7591 §3.2.1). Nothing an operator sets is touched.
    fn write_to(self, client: &mut Client) {
        let mut metadata = self.info;
        metadata.insert("redirect_uris".into(), json!(self.redirect_uris));
        metadata.insert(
            "token_endpoint_auth_method".into(),
            json!(self.auth_method.as_str()),
        );
        metadata.insert(
            "grant_types".into(),
            json!(
                self.grant_types
                    .iter()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>()
            ),
        );
        metadata.insert("response_types".into(), json!(self.response_types));
        if let Some(s) = &self.scope {
            metadata.insert("scope".into(), json!(s.to_string()));
        }
        client.name = metadata
            .get("client_name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        client.redirect_uris = self.redirect_uris;
        client.grant_types = self.grant_types;
        client.auth_method = self.auth_method;
        client.scope = self.scope;
        client.metadata = Value::Object(metadata);
        client.keys = self.keys;
    }
}

/// The resources a client serves, normalized. Only a confidential client can prove it is
/// the resource server.
fn owned_resources(confidential: bool, urls: &[String]) -> AuthResult<Vec<String>> {
    if !confidential && !urls.is_empty() {
        return Err(AuthError::InvalidRequest(
            Reason::OwnedResourceNeedsConfidentialClient,
        ));
    }
    let mut normalized = Vec::new();
    for u in urls {
        let r = crate::resource::Resource::parse(u)?.as_str().to_owned();
        if !normalized.contains(&r) {
            normalized.push(r);
        }
    }
    Ok(normalized)
}

/// A new initial access token: its value, shown once, and what was stored.
#[derive(Debug)]
pub struct IssuedInitialAccessToken {
    pub token: String,
    pub record: InitialAccessToken,
}

/// Human-readable or informational metadata echoed back as registered (RFC 7591 §2).
const TEXT_FIELDS: &[&str] = &[
    "client_name",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "software_id",
    "software_version",
];

/// A registered client and, for a confidential one, its secret, shown this once.
#[derive(Debug)]
pub struct Registration {
    pub client: Client,
    /// Only when one was just made: a stored secret is only a hash, and cannot be shown again.
    pub client_secret: Option<String>,
    /// RFC 7592 §3: the token that opens the client configuration endpoint, for a `dynamic`
    /// client only. Made at registration; in a read or update response it is the token the
    /// client presented, which stays valid (only its hash is stored).
    pub registration_access_token: Option<String>,
    /// RFC 7592 §3: `{issuer}/register/{client_id}`, with the token.
    pub registration_client_uri: Option<String>,
}

impl Registration {
    /// The RFC 7591 §3.2.1 response body, with the RFC 7592 §3 fields of a managed client.
    /// A read or update answers with the same body (RFC 7592 §2.1, §2.2).
    pub fn to_json(&self) -> Value {
        let mut body = match &self.client.metadata {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        body.insert("client_id".into(), json!(self.client.id));
        body.insert(
            "client_id_issued_at".into(),
            json!(self.client.created_at.timestamp()),
        );
        if let Some(s) = &self.client_secret {
            body.insert("client_secret".into(), json!(s));
        }
        // RFC 7591 §3.2.1: required with a secret; 0 when it does not expire. Sent for every
        // client that has a secret, so a read (which cannot show the secret) still says when
        // the one the client holds stops working.
        if self.client.secret_hash.is_some() {
            let expires = self.client.secret_expires_at.map_or(0, |at| at.timestamp());
            body.insert("client_secret_expires_at".into(), json!(expires));
        }
        if let (Some(token), Some(uri)) = (
            &self.registration_access_token,
            &self.registration_client_uri,
        ) {
            body.insert("registration_access_token".into(), json!(token));
            body.insert("registration_client_uri".into(), json!(uri));
        }
        Value::Object(body)
    }
}

/// An absolute https URL (or http on loopback, for development).
pub(crate) fn is_web_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| match u.scheme() {
        "https" => u.host().is_some(),
        "http" => matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        _ => false,
    })
}

/// Why client metadata was refused (`invalid_client_metadata`, RFC 7591 §3.2.2), where no
/// more general [`Reason`] (a missing, malformed or unsupported value) says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataFault {
    NotJsonObject,
    /// Control characters and Unicode format characters (category Cf): see `has_unsafe_chars`.
    UnsafeCharacters,
    /// Only an operator's client may have no grant at all.
    EmptyGrantTypes,
    /// Grants without a user are for `operator` clients.
    UserlessGrantNeedsOperator,
    /// An operator's `client_credentials` client must be given a resource.
    UserlessGrantNeedsResource,
    /// RFC 7591 §2.1: response_types and grant_types must agree.
    InconsistentResponseTypes,
    RefreshTokenAlone,
    /// A public client cannot authenticate, so cannot use a grant without a user.
    ClientCredentialsNeedsConfidentialClient,
    MalformedScope,
    /// `jwks` or `jwks_uri` refused, or given to a client that does not sign (RFC 7591 §2).
    Keys(crate::client_assertion::KeySetFault),
    /// `jwks` or `jwks_uri` for a method other than `private_key_jwt`.
    KeysWithoutPrivateKeyJwt,
    /// RFC 7592 §2.2: an update names its own client, the one of the configuration endpoint.
    ClientIdMismatch,
    /// RFC 7592 §2.2: a `client_secret` in an update must be the current one; a client never
    /// chooses its secret.
    ClientSecretMismatch,
    /// RFC 7592 §2.2: a field only the server sets, which an update must not carry.
    ServerAssigned(&'static str),
    /// A confidential client cannot become public by an update: its refresh tokens would
    /// then work without the secret, for anyone holding the registration access token.
    ConfidentialToPublic,
    /// A confidential client keeps its kind of credential (a secret, or keys) through an
    /// update: otherwise whoever holds the registration access token could give the client
    /// a credential of its own choosing (keys) or learn a new one (a secret).
    CredentialKindChange,
}

impl fmt::Display for MetadataFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ServerAssigned(field) => {
                return write!(f, "{field} is set by the server and must not be sent");
            }
            Self::ClientIdMismatch => {
                "client_id must be this client's own, as in the registration_client_uri"
            }
            Self::ClientSecretMismatch => {
                "client_secret does not match the current one; a client cannot choose its secret"
            }
            Self::ConfidentialToPublic => {
                "a confidential client cannot become public; register a new client instead"
            }
            Self::CredentialKindChange => {
                "a confidential client keeps its kind of credential (client secret or keys); \
                 register a new client instead"
            }
            Self::NotJsonObject => "the body is not a JSON object",
            Self::UnsafeCharacters => {
                "client metadata must not contain control or invisible formatting characters"
            }
            Self::EmptyGrantTypes => "grant_types must not be empty",
            Self::UserlessGrantNeedsOperator => {
                "grants without a user (client_credentials) are for operator clients; \
                 ask the operator for an initial access token"
            }
            Self::UserlessGrantNeedsResource => {
                "client_credentials needs at least one resource the client may get tokens for"
            }
            Self::InconsistentResponseTypes => "response_types and grant_types are inconsistent",
            Self::RefreshTokenAlone => "refresh_token alone is not a usable grant",
            Self::ClientCredentialsNeedsConfidentialClient => {
                "client_credentials requires a confidential client"
            }
            Self::MalformedScope => "scope is malformed",
            Self::Keys(fault) => return fault.fmt(f),
            Self::KeysWithoutPrivateKeyJwt => {
                "jwks and jwks_uri are for token_endpoint_auth_method private_key_jwt"
            }
        })
    }
}

fn bad(fault: MetadataFault) -> AuthError {
    AuthError::InvalidClientMetadata(Reason::Metadata(fault))
}

/// A character that must not appear in client metadata: a control character (PostgreSQL
/// refuses NUL in text, and terminals act on escapes), a format character (Unicode category
/// Cf: bidirectional overrides, zero-width characters, tags that can carry hidden text to an
/// agent reading the name), a default-ignorable one (fillers, variation selectors), or a
/// separator other than the ordinary space. With these a client's name could read as
/// another's, or as nothing, on the consent page.
fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Cf, format characters.
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
                // Default-ignorable and blank-looking code points.
                | '\u{034F}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FFA0}'
                | '\u{E0100}'..='\u{E01EF}'
                // Zl, Zp: line and paragraph separators.
                | '\u{2028}'..='\u{2029}'
        )
}

/// Whether any string in `v`, key or value, holds an unsafe character.
pub(crate) fn has_unsafe_chars(v: &Value) -> bool {
    let unsafe_str = |s: &str| s.chars().any(is_unsafe_char);
    match v {
        Value::String(s) => unsafe_str(s),
        Value::Array(items) => items.iter().any(has_unsafe_chars),
        Value::Object(m) => m.iter().any(|(k, v)| unsafe_str(k) || has_unsafe_chars(v)),
        _ => false,
    }
}

fn invalid_initial_token() -> AuthError {
    AuthError::InvalidToken(Reason::InitialAccessTokenUnusable)
}

/// A list of strings, each at most `max_len` bytes, refused with `too_many` past
/// `max_items` entries.
fn string_array(
    v: Option<&Value>,
    field: &'static str,
    max_items: usize,
    max_len: usize,
    too_many: AuthError,
) -> AuthResult<Option<Vec<String>>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.len() > max_items => Err(too_many),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i.as_str() {
                Some(s) if s.len() > max_len => Err(AuthError::InvalidClientMetadata(
                    Reason::TooLong(field, max_len),
                )),
                Some(s) => Ok(s.to_owned()),
                None => Err(AuthError::InvalidClientMetadata(Reason::Malformed(field))),
            })
            .collect::<AuthResult<Vec<_>>>()
            .map(Some),
        Some(_) => Err(AuthError::InvalidClientMetadata(Reason::Malformed(field))),
    }
}

/// `invalid_client_metadata`: more values of `field` than `max`.
fn too_many(field: &'static str, max: usize) -> AuthError {
    AuthError::InvalidClientMetadata(Reason::TooMany(field, max))
}

impl AuthCore {
    /// Registers a client at `/register`, under the registration policy. With an operator's
    /// initial access token the client is `operator`; without one it is `dynamic`, and the
    /// grants that need no user are dropped from what it asked for (RFC 7591 §2 lets the
    /// server replace requested values; the response says what was granted).
    pub async fn register_client(
        &self,
        metadata_json: &str,
        initial_access_token: Option<&str>,
    ) -> AuthResult<Registration> {
        match (self.settings.registration, initial_access_token) {
            (RegistrationPolicy::Off, _) => {
                Err(AuthError::AccessDenied(Reason::RegistrationDisabled))
            }
            (_, Some(token)) => self.register_with_initial_token(metadata_json, token).await,
            (RegistrationPolicy::InitialAccessToken, None) => Err(AuthError::InvalidToken(
                Reason::Missing("initial access token (Authorization: Bearer)"),
            )),
            (RegistrationPolicy::Open, None) => {
                let mut parsed = self.parse_metadata(metadata_json)?;
                parsed.keep_dynamic_grants()?;
                self.ensure_room_for_dynamic_client().await?;
                let client = self.new_client(parsed, ClientTier::Dynamic, Vec::new(), false);
                self.stores.clients.insert_client(&client.client).await?;
                self.remember_client(&client.client);
                self.audit_registration(&client.client);
                Ok(client)
            }
        }
    }

    /// Makes room for one more `dynamic` client, or refuses: past `max_dynamic_clients`,
    /// the oldest registration that was never used and is older than [`GIVE_WAY_AFTER`]
    /// gives way (it holds no grant, no code and no token: its client registers again if it
    /// ever comes back). Only when there is none is the registration refused, with 503
    /// `temporarily_unavailable`: the metadata is fine, and the same request succeeds once
    /// room is made (or the operator raises the bound), which a client reading a 400 would
    /// never try. So registrations that are never used do not keep everyone else out for
    /// long: to hold the bound, a flood must register it all again every hour, which the
    /// per-network and per-/48 registration limits make take many networks.
    ///
    /// The count is read before the insert, so registrations racing at the bound may pass
    /// it by as many as run at once; the registration rate limit keeps that small.
    async fn ensure_room_for_dynamic_client(&self) -> AuthResult<()> {
        let held = self
            .stores
            .clients
            .count_clients(ClientTier::Dynamic)
            .await?;
        if held < self.settings.max_dynamic_clients {
            return Ok(());
        }
        // This replica's unwritten usage first: a client used a moment ago is not unused.
        self.flush_usage().await?;
        let now = self.clock.now();
        let unused = self
            .stores
            .maintenance
            .idle_dynamic_clients(chrono::DateTime::UNIX_EPOCH, now - GIVE_WAY_AFTER, now, 1)
            .await?;
        if let Some(id) = unused.first()
            && self.delete_client(id).await?
        {
            crate::audit::Audit {
                event: "client_deleted",
                outcome: "success",
                client_id: id,
                client_tier: ClientTier::Dynamic.as_str(),
                detail: "gave_way",
                ..Default::default()
            }
            .emit();
            return Ok(());
        }
        tracing::warn!(
            held,
            limit = self.settings.max_dynamic_clients,
            "registration refused: the bound on self-registered clients is reached, and none unused can give way (LATCHKEY_MAX_DYNAMIC_CLIENTS)"
        );
        crate::audit::Audit {
            event: "client_registered",
            outcome: "denied",
            client_tier: ClientTier::Dynamic.as_str(),
            detail: "client_limit",
            ..Default::default()
        }
        .emit();
        Err(AuthError::TemporarilyUnavailable(
            Reason::DynamicClientLimit,
        ))
    }

    /// Registers an `operator` client (the CLI, an operator's admin call). It may use grants
    /// without a user for `audiences`, which must be protected resources this server knows.
    ///
    /// It serves `owned` (it may verify and introspect their tokens), set in the same write,
    /// so that no replica ever sees it without them.
    pub async fn register_operator_client(
        &self,
        metadata_json: &str,
        audiences: &[String],
        owned: &[String],
    ) -> AuthResult<Registration> {
        let parsed = self.parse_metadata(metadata_json)?;
        let audiences = self.operator_audiences(audiences).await?;
        let userless = parsed.grant_types.iter().any(|g| !g.needs_user());
        if userless && audiences.is_empty() {
            return Err(bad(MetadataFault::UserlessGrantNeedsResource));
        }
        let owned = owned_resources(parsed.auth_method != AuthMethod::None, owned)?;
        let mut client = self.new_client(parsed, ClientTier::Operator, audiences, true);
        client.client.resources = owned;
        self.stores.clients.insert_client(&client.client).await?;
        self.remember_client(&client.client);
        self.audit_registration(&client.client);
        Ok(client)
    }

    /// RFC 7591 §3: a registration authorized by an operator's initial access token. The
    /// token is spent by this registration alone, atomically with storing the client.
    async fn register_with_initial_token(
        &self,
        metadata_json: &str,
        token: &str,
    ) -> AuthResult<Registration> {
        let now = self.clock.now();
        let token_hash = secret::hash(token);
        let record = self
            .stores
            .clients
            .find_initial_access_token(&token_hash)
            .await?
            .filter(|t| t.used_at.is_none() && t.expires_at > now)
            .ok_or_else(invalid_initial_token)?;
        let mut parsed = self.parse_metadata(metadata_json)?;
        if let Some(allowed) = &record.scope {
            match &parsed.scope {
                Some(asked) => {
                    if let Some(extra) = asked.difference(allowed).first() {
                        return Err(AuthError::InvalidClientMetadata(Reason::ScopeBroadened(
                            (*extra).to_owned(),
                        )));
                    }
                }
                None => parsed.scope = Some(allowed.clone()),
            }
        }
        // Its redirect URIs are its own choice, not the operator's: not trusted for redirects
        // before sign-in.
        let client = self.new_client(
            parsed,
            ClientTier::Operator,
            record.audiences.clone(),
            false,
        );
        if !self
            .stores
            .clients
            .insert_client_redeeming(&client.client, &token_hash, now)
            .await?
        {
            return Err(invalid_initial_token());
        }
        self.remember_client(&client.client);
        self.audit_registration(&client.client);
        Ok(client)
    }

    /// Issues an initial access token that lets exactly one registration become an
    /// `operator` client for `audiences` (and `scope`, if given), until `ttl` has passed.
    pub async fn issue_initial_access_token(
        &self,
        audiences: &[String],
        scope: Option<&str>,
        ttl_secs: i64,
    ) -> AuthResult<IssuedInitialAccessToken> {
        let audiences = self.operator_audiences(audiences).await?;
        if audiences.is_empty() {
            return Err(AuthError::InvalidRequest(
                Reason::InitialAccessTokenWithoutResource,
            ));
        }
        if !(1..=MAX_INITIAL_TOKEN_TTL_SECS).contains(&ttl_secs) {
            return Err(AuthError::InvalidRequest(
                Reason::InitialAccessTokenLifetime,
            ));
        }
        let ttl = chrono::Duration::seconds(ttl_secs);
        let scope = match scope {
            None => None,
            Some(s) => {
                let set = ScopeSet::parse(s)?;
                if let Some(unknown) = self.settings.scopes.first_unsupported(&set) {
                    return Err(AuthError::InvalidScope(Reason::ScopeUnknown(unknown)));
                }
                (!set.is_empty()).then_some(set)
            }
        };
        let token = secret::generate();
        let now = self.clock.now();
        let record = InitialAccessToken {
            token_hash: secret::hash(&token),
            audiences,
            scope,
            created_at: now,
            expires_at: now + ttl,
            used_at: None,
        };
        self.stores
            .clients
            .insert_initial_access_token(&record)
            .await?;
        Ok(IssuedInitialAccessToken { token, record })
    }

    /// Normalizes the resources an operator lists on a client. Once protected resources are
    /// registered, each must be one of them.
    async fn operator_audiences(&self, urls: &[String]) -> AuthResult<Vec<String>> {
        let registered = self.protected_resources();
        let mut out = Vec::new();
        for u in urls {
            let r = crate::resource::Resource::parse(u)?;
            if !registered.is_empty() && !registered.iter().any(|p| p.resource == r) {
                return Err(AuthError::InvalidTarget(Reason::ResourceUnknown(
                    r.as_str().to_owned(),
                )));
            }
            let r = r.as_str().to_owned();
            if !out.contains(&r) {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn audit_registration(&self, client: &Client) {
        crate::audit::Audit {
            event: "client_registered",
            outcome: "success",
            client_id: &client.id,
            client_tier: client.tier.as_str(),
            detail: client.auth_method.as_str(),
            ..Default::default()
        }
        .emit();
    }

    /// Checks RFC 7591 metadata. Decides nothing about trust.
    fn parse_metadata(&self, metadata_json: &str) -> AuthResult<Parsed> {
        self.check_metadata(&metadata_object(metadata_json)?)
    }

    /// Checks RFC 7591 metadata already read as a JSON object: every registration, and every
    /// RFC 7592 replacement. Fields it does not know are ignored. Decides nothing about trust.
    fn check_metadata(&self, input: &Map<String, Value>) -> AuthResult<Parsed> {
        if input
            .iter()
            .any(|(k, v)| k.chars().any(is_unsafe_char) || has_unsafe_chars(v))
        {
            return Err(bad(MetadataFault::UnsafeCharacters));
        }

        let auth_method = match input.get("token_endpoint_auth_method") {
            None | Some(Value::Null) => AuthMethod::ClientSecretBasic, // RFC 7591 §2 default
            Some(Value::String(s)) => AuthMethod::parse(s).ok_or_else(|| {
                AuthError::InvalidClientMetadata(Reason::Unsupported(
                    "token_endpoint_auth_method",
                    s.clone(),
                ))
            })?,
            Some(_) => {
                return Err(AuthError::InvalidClientMetadata(Reason::Malformed(
                    "token_endpoint_auth_method",
                )));
            }
        };
        let public = auth_method == AuthMethod::None;

        let grant_types = match string_array(
            input.get("grant_types"),
            "grant_types",
            MAX_TYPES,
            MAX_TYPE_LEN,
            too_many("grant_types", MAX_TYPES),
        )? {
            None => vec![GrantType::AuthorizationCode], // RFC 7591 §2 default
            Some(names) => {
                let mut out = Vec::new();
                for n in names {
                    let g = GrantType::parse(&n).ok_or_else(|| {
                        AuthError::InvalidClientMetadata(Reason::Unsupported(
                            "grant_type",
                            n.clone(),
                        ))
                    })?;
                    if !out.contains(&g) {
                        out.push(g);
                    }
                }
                out
            }
        };
        let uses_code = grant_types.contains(&GrantType::AuthorizationCode);

        // RFC 7591 §2.1: response_types and grant_types must agree.
        let response_types = string_array(
            input.get("response_types"),
            "response_types",
            MAX_TYPES,
            MAX_TYPE_LEN,
            too_many("response_types", MAX_TYPES),
        )?
        .unwrap_or_else(|| {
            if uses_code {
                vec!["code".into()]
            } else {
                Vec::new()
            }
        });
        if let Some(other) = response_types.iter().find(|r| r.as_str() != "code") {
            return Err(AuthError::InvalidClientMetadata(Reason::Unsupported(
                "response_type",
                other.clone(),
            )));
        }
        if uses_code != response_types.iter().any(|r| r == "code") {
            return Err(bad(MetadataFault::InconsistentResponseTypes));
        }
        if grant_types == [GrantType::RefreshToken] {
            return Err(bad(MetadataFault::RefreshTokenAlone));
        }
        if public && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(bad(MetadataFault::ClientCredentialsNeedsConfidentialClient));
        }

        // Each URI's length is judged with the rest of its form, by the redirect URI rules.
        let redirect_uris = string_array(
            input.get("redirect_uris"),
            "redirect_uris",
            MAX_REDIRECT_URIS,
            usize::MAX,
            redirect_uri::RedirectUriFault::TooMany.into(),
        )?
        .unwrap_or_default();
        if uses_code && redirect_uris.is_empty() {
            return Err(redirect_uri::RedirectUriFault::Missing.into());
        }
        for uri in &redirect_uris {
            redirect_uri::validate_for_registration(uri, public)?;
        }

        let scope = match input.get("scope") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() > MAX_SCOPE_LEN => {
                return Err(AuthError::InvalidClientMetadata(Reason::TooLong(
                    "scope",
                    MAX_SCOPE_LEN,
                )));
            }
            Some(Value::String(s)) => {
                let set = ScopeSet::parse(s).map_err(|_| bad(MetadataFault::MalformedScope))?;
                // Scopes this server does not know are dropped unless the operator refuses
                // them; a client left with none is registered without a scope restriction.
                let set = self.settings.scopes.known(set).map_err(|unknown| {
                    AuthError::InvalidClientMetadata(Reason::ScopeUnknown(unknown))
                })?;
                (!set.is_empty()).then_some(set)
            }
            Some(_) => return Err(AuthError::InvalidClientMetadata(Reason::Malformed("scope"))),
        };

        // Keep the fields we understand, checked, and echo them back (RFC 7591 §3.2.1).
        let mut info = Map::new();
        for field in TEXT_FIELDS {
            let is_uri = field.ends_with("_uri");
            let max = if is_uri { MAX_URI_LEN } else { MAX_TEXT_LEN };
            match input.get(*field) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.len() > max => {
                    return Err(AuthError::InvalidClientMetadata(Reason::TooLong(
                        field, max,
                    )));
                }
                // RFC 7591 §5: URLs shown to users must be safe to link (no javascript:).
                Some(Value::String(s)) if is_uri && !is_web_url(s) => {
                    return Err(AuthError::InvalidClientMetadata(Reason::Malformed(field)));
                }
                Some(Value::String(s)) => {
                    info.insert((*field).into(), json!(s));
                }
                Some(_) => return Err(AuthError::InvalidClientMetadata(Reason::Malformed(field))),
            }
        }
        if let Some(contacts) = string_array(
            input.get("contacts"),
            "contacts",
            MAX_CONTACTS,
            MAX_CONTACT_LEN,
            too_many("contacts", MAX_CONTACTS),
        )? {
            info.insert("contacts".into(), json!(contacts));
        }
        let keys = if auth_method == AuthMethod::PrivateKeyJwt {
            let keys =
                crate::client_assertion::client_keys(input.get("jwks"), input.get("jwks_uri"))
                    .map_err(|f| bad(MetadataFault::Keys(f)))?;
            match &keys {
                ClientKeys::Jwks(set) => info.insert("jwks".into(), set.clone()),
                ClientKeys::JwksUri(uri) => info.insert("jwks_uri".into(), json!(uri)),
            };
            // OIDC Dynamic Client Registration §2: the one algorithm its assertions use.
            let field = crate::client_assertion::SIGNING_ALG_FIELD;
            if let Some(alg) = crate::client_assertion::signing_alg(input.get(field))
                .map_err(|f| bad(MetadataFault::Keys(f)))?
            {
                info.insert(field.into(), json!(alg));
            }
            Some(keys)
        } else if input.contains_key("jwks") || input.contains_key("jwks_uri") {
            return Err(bad(MetadataFault::KeysWithoutPrivateKeyJwt));
        } else {
            None
        };
        Ok(Parsed {
            auth_method,
            grant_types,
            response_types,
            redirect_uris,
            scope,
            info,
            keys,
        })
    }

    /// A new client of `tier` from checked metadata, with its secret if it is confidential,
    /// and, if it is `dynamic`, the registration access token that manages it (RFC 7592).
    fn new_client(
        &self,
        p: Parsed,
        tier: ClientTier,
        audiences: Vec<String>,
        trusted_redirects: bool,
    ) -> Registration {
        let client_secret = p.auth_method.uses_secret().then(secret::generate);
        let now = self.clock.now();
        // Only a self-registered client's secret expires: an operator's clients are the
        // operator's to rotate.
        let secret_expires_at = match (tier, &client_secret) {
            (ClientTier::Dynamic, Some(_)) => self.dynamic_secret_expiry(now),
            _ => None,
        };
        // RFC 7592 is for the clients that registered themselves: an operator's client is
        // changed by the operator, and a metadata document's by its document.
        let registration_access_token = (tier == ClientTier::Dynamic).then(secret::generate);
        let mut client = Client {
            id: secret::generate_id(),
            secret_hash: client_secret.as_deref().map(secret::hash),
            name: None,
            redirect_uris: Vec::new(),
            grant_types: Vec::new(),
            auth_method: p.auth_method,
            scope: None,
            metadata: Value::Null,
            // Owned resources are assigned by an administrator, never registered.
            resources: Vec::new(),
            tier,
            audiences,
            trusted_redirects,
            created_at: now,
            updated_at: now,
            secret_expires_at,
            registration_token_hash: registration_access_token.as_deref().map(secret::hash),
            keys: None,
        };
        p.write_to(&mut client);
        let registration_client_uri = registration_access_token
            .as_ref()
            .map(|_| self.registration_client_uri(&client.id));
        Registration {
            client,
            client_secret,
            registration_access_token,
            registration_client_uri,
        }
    }

    /// When a `dynamic` client's secret made at `now` expires, if it does.
    fn dynamic_secret_expiry(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.settings.dynamic_client_secret_ttl.map(|ttl| now + ttl)
    }
}

/// The body of a registration (or replacement) as a JSON object; anything else is refused.
fn metadata_object(metadata_json: &str) -> AuthResult<Map<String, Value>> {
    match serde_json::from_str(metadata_json) {
        Ok(Value::Object(input)) => Ok(input),
        _ => Err(bad(MetadataFault::NotJsonObject)),
    }
}

impl AuthCore {
    /// Declares which protected resources a confidential client serves (administrators only;
    /// a client can never claim a resource through registration).
    pub async fn set_client_resources(
        &self,
        client_id: &str,
        urls: &[String],
    ) -> AuthResult<Vec<String>> {
        let client = self
            .stores
            .clients
            .find_client(client_id)
            .await?
            .ok_or(AuthError::NotFound(Reason::NoSuchClient))?;
        let normalized = owned_resources(client.is_confidential(), urls)?;
        self.stores
            .clients
            .set_client_resources(client_id, &normalized, self.clock.now())
            .await?;
        // Only an operator assigns resources: a client that serves one is the operator's.
        if !normalized.is_empty() && !client.is_operator() {
            self.stores
                .clients
                .set_client_tier(client_id, ClientTier::Operator, self.clock.now())
                .await?;
        }
        self.directory.forget(client_id);
        Ok(normalized)
    }
}

#[cfg(test)]
mod tests {
    use super::is_unsafe_char;

    #[test]
    fn invisible_and_spoofing_characters_are_unsafe_and_ordinary_text_is_not() {
        for c in [
            '\0',
            '\u{1b}',
            '\u{7f}',
            '\u{85}',
            '\u{200b}',
            '\u{202e}',
            '\u{2066}',
            '\u{2028}',
            '\u{feff}',
            '\u{e0041}',
            '\u{3164}',
            '\u{115f}',
            '\u{fe0f}',
            '\u{34f}',
            '\u{2800}',
        ] {
            assert!(is_unsafe_char(c), "U+{:04X}", c as u32);
        }
        for c in "Acme MCP Client — Éditeur 日本語 ü ß 😀 .-_()".chars() {
            assert!(!is_unsafe_char(c), "U+{:04X}", c as u32);
        }
    }
}
