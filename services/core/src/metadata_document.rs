//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, as MCP
//! 2025-11-25 and later use it): a `client_id` that is an https URL names a JSON document
//! about the client, which this server fetches, judges and caches instead of a registration.
//!
//! This module owns the rules: which URLs may name a client, what a document must say, the
//! negotiation of what it offers, the host policy, how long a judgement is kept, and what the
//! consent page is told. It does not fetch: a [`ClientDocuments`] implementation does that
//! (the binary's, over the SSRF-safe `latchkey-outbound`), and reports only the bytes, their
//! freshness, or a typed failure.
//!
//! Judgements are cached in memory per replica; the documents themselves are shared through
//! the store, so that one fetch serves every replica for the document's freshness period.
//! Failures are remembered per replica only, briefly.

use crate::AuthCore;
use crate::error::{AuthError, AuthResult, Reason};
use crate::model::{AuthMethod, Client, ClientKeys, ClientTier, GrantType};
use crate::redirect_uri::{self, RedirectUriFault};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// A validated document is kept at least this long, whatever its cache headers say: a
/// document that asks for no caching would otherwise be fetched on every request.
pub const MIN_FRESHNESS: Duration = Duration::minutes(5);
/// And at most this long, so that a changed document is seen within a day.
pub const MAX_FRESHNESS: Duration = Duration::hours(24);
/// How long a document whose server says nothing about caching is kept.
pub const DEFAULT_FRESHNESS: Duration = Duration::hours(1);
/// How long a failure (a fetch or a document refused) is remembered before trying again.
pub const FAILURE_TTL: Duration = Duration::minutes(1);
/// A cached document that does not validate a request (a redirect URI not in it) is fetched
/// again, but not if it was fetched this recently: an anonymous request must not be able to
/// make this server fetch on every call.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::seconds(30);
/// Documents kept before the cache is emptied and refilled on demand.
const MAX_ENTRIES: usize = 10_000;
/// At most this many redirect URIs in a document (as for a registration).
const MAX_REDIRECT_URIS: usize = 20;
const MAX_NAME_LEN: usize = 500;
const MAX_URI_LEN: usize = 2000;

/// How long a fetched document may be used, as its server's cache headers say (RFC 9111).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentFreshness {
    /// `no-store`.
    NoStore,
    /// Fresh for this long from now (zero: stale already).
    Fresh(std::time::Duration),
    /// The server said nothing.
    Unspecified,
}

/// A fetched document: its bytes, already limited in size and checked for a JSON content
/// type by the fetcher.
#[derive(Debug, Clone)]
pub struct FetchedDocument {
    pub body: Vec<u8>,
    pub freshness: DocumentFreshness,
}

/// Why a document could not be fetched, as the fetcher reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchFailure {
    /// The URL is one the fetcher will not use.
    InvalidUrl,
    /// The host is, or resolves to, an address that may not be reached (loopback, private,
    /// link-local, the cloud metadata address, …).
    RefusedAddress,
    /// The name did not resolve, or no connection, TLS handshake or HTTP exchange succeeded.
    Unreachable,
    /// The fetch did not finish within its time limit.
    Timeout,
    /// An HTTP status other than 200.
    Status(u16),
    /// The server redirected; documents are not followed through redirects.
    Redirected,
    /// The response is not JSON (`Content-Type`), or is encoded.
    ContentType,
    /// The response is larger than a document may be.
    TooLarge,
    /// Too many fetches, in all or to this host: try again shortly.
    RateLimited,
}

/// Fetches what clients publish at URLs they choose: Client ID Metadata Documents and key
/// sets (`jwks_uri`). The composition root implements it over the SSRF-safe outbound client;
/// tests answer with documents of their own.
#[async_trait]
pub trait ClientDocuments: Send + Sync {
    /// Fetches `url`, an https URL the core has already judged acceptable as a `client_id`.
    async fn fetch(&self, url: &url::Url) -> Result<FetchedDocument, FetchFailure>;
    /// Fetches a client's JWK Set from its `jwks_uri` (a larger size limit than a document).
    async fn fetch_key_set(&self, url: &url::Url) -> Result<FetchedDocument, FetchFailure>;
}

/// A host name pattern in the operator's lists: `example.com` matches that host only,
/// `*.example.com` matches every name below it (not `example.com` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    /// Parses one pattern; `None` when it is not a host name or `*.` and a host name.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let name = s.strip_prefix("*.").unwrap_or(&s);
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        valid.then_some(Self(s))
    }

    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self.0.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
            None => host == self.0,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The operator's policy for Client ID Metadata Documents.
#[derive(Debug, Clone)]
pub struct DocumentPolicy {
    /// Whether an https `client_id` is looked up as a document at all. On by default.
    pub enabled: bool,
    /// When not empty, only documents on these hosts are used.
    pub allowed_hosts: Vec<HostPattern>,
    /// Documents on these hosts are never used (checked before the allow list).
    pub denied_hosts: Vec<HostPattern>,
    /// Hosts the operator vouches for: their clients are shown as verified on the consent
    /// page, with their logo.
    pub trusted_hosts: Vec<HostPattern>,
}

impl Default for DocumentPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_hosts: Vec::new(),
            denied_hosts: Vec::new(),
            trusted_hosts: Vec::new(),
        }
    }
}

/// Why a metadata document does not name a usable client. Shown to the user on the error
/// page and returned to the client as `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentFault {
    // The URL (draft-ietf-oauth-client-id-metadata-document §3).
    UrlNotHttps,
    UrlMalformed,
    UrlNoPath,
    UrlFragment,
    UrlDotSegments,
    UrlUserinfo,
    HostDenied,
    HostNotAllowed,
    // The fetch.
    Fetch(FetchFailure),
    // The document (§4).
    NotJson,
    NotObject,
    UnsafeCharacters,
    /// §4.1: the document's `client_id` must equal the URL it was fetched from, exactly.
    ClientIdMismatch,
    /// §4.1: a document is public; it must not carry a shared secret.
    ClientSecretPresent,
    RedirectUrisMissing,
    RedirectUri(RedirectUriFault),
    TooManyRedirectUris,
    /// An auth method other than `none` and `private_key_jwt` (shared secrets cannot be
    /// published).
    AuthMethodUnsupported,
    /// `private_key_jwt` whose keys are missing, both given, or unusable.
    KeySet(crate::client_assertion::KeySetFault),
    /// `grant_types` without `authorization_code`.
    NoAuthorizationCode,
    /// `response_types` without `code`.
    NoCodeResponseType,
    /// A field of the wrong type or form.
    Malformed(&'static str),
}

impl DocumentFault {
    /// Whether the fault is the document's own answer (it is gone, moved, or invalid), not a
    /// failure to reach it: a 4xx status, a redirect, or a document that breaks a rule.
    fn is_definitive(&self) -> bool {
        match self {
            Self::Fetch(FetchFailure::Status(code)) => (400..500).contains(code),
            Self::Fetch(FetchFailure::Redirected) => true,
            Self::Fetch(_) => false,
            _ => true,
        }
    }
}

impl fmt::Display for DocumentFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = "client metadata document";
        match self {
            Self::UrlNotHttps => write!(f, "{prefix}: the client_id URL must use https"),
            Self::UrlMalformed => write!(f, "{prefix}: the client_id is not a valid URL"),
            Self::UrlNoPath => write!(f, "{prefix}: the client_id URL must have a path"),
            Self::UrlFragment => write!(f, "{prefix}: the client_id URL must not have a fragment"),
            Self::UrlDotSegments => {
                write!(
                    f,
                    "{prefix}: the client_id URL must not have . or .. segments"
                )
            }
            Self::UrlUserinfo => {
                write!(
                    f,
                    "{prefix}: the client_id URL must not have a user name or password"
                )
            }
            Self::HostDenied => write!(
                f,
                "{prefix}: this server does not accept clients from this host"
            ),
            Self::HostNotAllowed => {
                write!(
                    f,
                    "{prefix}: this host is not on the server's list of allowed client hosts"
                )
            }
            Self::Fetch(failure) => match failure {
                FetchFailure::InvalidUrl => write!(f, "{prefix}: the URL cannot be fetched"),
                FetchFailure::RefusedAddress => write!(
                    f,
                    "{prefix}: the host is on a private or reserved network and is not fetched"
                ),
                FetchFailure::Unreachable => {
                    write!(f, "{prefix}: the document could not be fetched")
                }
                FetchFailure::Timeout => write!(f, "{prefix}: fetching the document took too long"),
                FetchFailure::Status(s) => write!(f, "{prefix}: the server answered HTTP {s}"),
                FetchFailure::Redirected => {
                    write!(
                        f,
                        "{prefix}: the server redirected, and redirects are not followed"
                    )
                }
                FetchFailure::ContentType => {
                    write!(
                        f,
                        "{prefix}: the server did not answer with a JSON content type"
                    )
                }
                FetchFailure::TooLarge => write!(f, "{prefix}: the document is too large"),
                FetchFailure::RateLimited => {
                    write!(
                        f,
                        "{prefix}: too many documents are being fetched; retry shortly"
                    )
                }
            },
            Self::NotJson => write!(f, "{prefix}: the document is not valid JSON"),
            Self::NotObject => write!(f, "{prefix}: the document is not a JSON object"),
            Self::UnsafeCharacters => write!(
                f,
                "{prefix}: the document contains control or invisible formatting characters"
            ),
            Self::ClientIdMismatch => {
                write!(
                    f,
                    "{prefix}: its client_id does not equal the URL it was fetched from"
                )
            }
            Self::ClientSecretPresent => {
                write!(f, "{prefix}: a document must not contain a client_secret")
            }
            Self::RedirectUrisMissing => write!(f, "{prefix}: redirect_uris is missing or empty"),
            Self::RedirectUri(fault) => write!(f, "{prefix}: {fault}"),
            Self::TooManyRedirectUris => write!(f, "{prefix}: too many redirect_uris"),
            Self::AuthMethodUnsupported => write!(
                f,
                "{prefix}: token_endpoint_auth_method must be none or private_key_jwt"
            ),
            Self::KeySet(fault) => write!(f, "{prefix}: {fault}"),
            Self::NoAuthorizationCode => {
                write!(f, "{prefix}: grant_types must include authorization_code")
            }
            Self::NoCodeResponseType => write!(f, "{prefix}: response_types must include code"),
            Self::Malformed(field) => write!(f, "{prefix}: {field} is malformed"),
        }
    }
}

impl From<DocumentFault> for AuthError {
    /// RFC 7591 §3.2.2 `invalid_client_metadata`: the document is the client's metadata.
    /// A rate limit is `temporarily_unavailable` (RFC 6749 §4.1.2.1): nothing is wrong with
    /// the document.
    fn from(fault: DocumentFault) -> Self {
        match fault {
            DocumentFault::Fetch(FetchFailure::RateLimited) => {
                AuthError::TemporarilyUnavailable(Reason::MetadataDocument(fault))
            }
            _ => AuthError::InvalidClientMetadata(Reason::MetadataDocument(fault)),
        }
    }
}

/// Whether `client_id` is to be read as a metadata document URL: it is an https URL. Other
/// ids are registered clients.
pub fn is_document_url(client_id: &str) -> bool {
    client_id
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// Checks a `client_id` as a document URL (§3): https, a host, a path, no fragment, no
/// userinfo, no `.` or `..` segment. The URL parser would resolve dot segments away, so they
/// are looked for in the string as given, percent-encoded ones included.
pub fn parse_document_url(client_id: &str) -> Result<url::Url, DocumentFault> {
    if !is_document_url(client_id) {
        return Err(DocumentFault::UrlNotHttps);
    }
    let rest = &client_id[8..];
    let path_and_more = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
    let path = path_and_more.split(['?', '#']).next().unwrap_or_default();
    let dot = |seg: &str| {
        let s = seg.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    };
    if path.split('/').any(dot) {
        return Err(DocumentFault::UrlDotSegments);
    }
    let url = url::Url::parse(client_id).map_err(|_| DocumentFault::UrlMalformed)?;
    if url.scheme() != "https" {
        return Err(DocumentFault::UrlNotHttps);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DocumentFault::UrlUserinfo);
    }
    if url.fragment().is_some() || client_id.contains('#') {
        return Err(DocumentFault::UrlFragment);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(DocumentFault::UrlMalformed);
    }
    if url.path().is_empty() || url.path() == "/" {
        return Err(DocumentFault::UrlNoPath);
    }
    Ok(url)
}

/// Judges a fetched document for `client_id` (§4) and builds the client it describes, at
/// `now`. Unknown fields are ignored. What the document offers is negotiated (OpenID Connect
/// RP Metadata Choices): `none` is chosen when offered (with the keys of a `private_key_jwt`
/// offered beside it, which the client may also use), and of the grant and response types
/// only those this server implements for a public client are kept.
pub fn validate_document(
    client_id: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Client, DocumentFault> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| DocumentFault::NotJson)?;
    let Value::Object(doc) = doc else {
        return Err(DocumentFault::NotObject);
    };
    if crate::registration::has_unsafe_chars(&Value::Object(doc.clone())) {
        return Err(DocumentFault::UnsafeCharacters);
    }
    match doc.get("client_id") {
        Some(Value::String(id)) if id == client_id => {}
        _ => return Err(DocumentFault::ClientIdMismatch),
    }
    if doc.contains_key("client_secret") || doc.contains_key("client_secret_expires_at") {
        return Err(DocumentFault::ClientSecretPresent);
    }
    let (auth_method, keys) = negotiate_auth_method(&doc)?;
    let grant_types = negotiate_grant_types(&doc)?;
    let redirect_uris = redirect_uris(&doc)?;

    let text = |field: &'static str, max: usize| -> Result<Option<String>, DocumentFault> {
        match doc.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
            Some(_) => Err(DocumentFault::Malformed(field)),
        }
    };
    let name = text("client_name", MAX_NAME_LEN)?;
    // Kept for the consent page and the operator; only URLs that are safe to link.
    let mut info = Map::new();
    for field in ["client_uri", "logo_uri", "tos_uri", "policy_uri"] {
        if let Some(u) = text(field, MAX_URI_LEN)? {
            if !crate::registration::is_web_url(&u) {
                return Err(DocumentFault::Malformed(field));
            }
            info.insert(field.into(), Value::String(u));
        }
    }
    if let Some(n) = &name {
        info.insert("client_name".into(), Value::String(n.clone()));
    }
    info.insert("client_id".into(), Value::String(client_id.to_owned()));
    info.insert(
        "redirect_uris".into(),
        Value::Array(redirect_uris.iter().cloned().map(Value::String).collect()),
    );
    info.insert(
        "token_endpoint_auth_method".into(),
        Value::String(auth_method.as_str().into()),
    );
    match &keys {
        Some(ClientKeys::Jwks(set)) => {
            info.insert("jwks".into(), set.clone());
        }
        Some(ClientKeys::JwksUri(uri)) => {
            info.insert("jwks_uri".into(), Value::String(uri.clone()));
        }
        None => {}
    }
    // Checked with the keys; held to when the client signs.
    if keys.is_some()
        && let Ok(Some(alg)) = crate::client_assertion::signing_alg(
            doc.get(crate::client_assertion::SIGNING_ALG_FIELD),
        )
    {
        info.insert(
            crate::client_assertion::SIGNING_ALG_FIELD.into(),
            Value::String(alg.into()),
        );
    }
    info.insert(
        "grant_types".into(),
        Value::Array(
            grant_types
                .iter()
                .map(|g| Value::String(g.as_str().into()))
                .collect(),
        ),
    );
    Ok(Client {
        id: client_id.to_owned(),
        secret_hash: None,
        name,
        redirect_uris,
        grant_types,
        auth_method,
        scope: None,
        metadata: Value::Object(info),
        resources: Vec::new(),
        tier: ClientTier::MetadataDocument,
        audiences: Vec::new(),
        trusted_redirects: false,
        created_at: now,
        updated_at: now,
        secret_expires_at: None,
        registration_token_hash: None,
        keys,
    })
}

/// A list of strings, or `None` when absent.
fn strings(
    doc: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<Vec<String>>, DocumentFault> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.len() <= 64 => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or(DocumentFault::Malformed(field))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(DocumentFault::Malformed(field)),
    }
}

/// The auth methods offered: RFC 7591's `token_endpoint_auth_method` (absent means `none`
/// for a document, which can hold no secret) and the RP Metadata Choices list
/// `token_endpoint_auth_methods_supported`. `none` wins when offered, and the keys of a
/// `private_key_jwt` offered beside it are kept, so that the client may sign as well;
/// `private_key_jwt` alone brings its keys (`jwks` or `jwks_uri`).
fn negotiate_auth_method(
    doc: &Map<String, Value>,
) -> Result<(AuthMethod, Option<ClientKeys>), DocumentFault> {
    let mut offered = Vec::new();
    match doc.get("token_endpoint_auth_method") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => offered.push(s.clone()),
        Some(_) => return Err(DocumentFault::Malformed("token_endpoint_auth_method")),
    }
    if let Some(list) = strings(doc, "token_endpoint_auth_methods_supported")? {
        offered.extend(list);
    }
    let offers_none = offered.is_empty() || offered.iter().any(|m| m == "none");
    let keys = offered
        .iter()
        .any(|m| m == "private_key_jwt")
        .then(|| document_keys(doc));
    match (offers_none, keys) {
        // A document learns of no choice made for it, so a client offering both may use
        // either: it is public, and it may sign (see `client_assertion::may_sign`). Keys
        // that do not pass leave it public only.
        (true, Some(Ok(keys))) => Ok((AuthMethod::None, Some(keys))),
        (true, _) => Ok((AuthMethod::None, None)),
        (false, Some(Ok(keys))) => Ok((AuthMethod::PrivateKeyJwt, Some(keys))),
        (false, Some(Err(fault))) => Err(DocumentFault::KeySet(fault)),
        (false, None) => Err(DocumentFault::AuthMethodUnsupported),
    }
}

/// A document's keys for `private_key_jwt`, and the one algorithm it signs with if it names
/// one (`token_endpoint_auth_signing_alg`, which must then be one this server verifies).
fn document_keys(
    doc: &Map<String, Value>,
) -> Result<ClientKeys, crate::client_assertion::KeySetFault> {
    crate::client_assertion::signing_alg(doc.get(crate::client_assertion::SIGNING_ALG_FIELD))?;
    crate::client_assertion::client_keys(doc.get("jwks"), doc.get("jwks_uri"))
}

/// The grant types kept: `authorization_code` (required), and `refresh_token` when offered.
/// Grants without a user are never given to a document's client; unknown ones are dropped.
fn negotiate_grant_types(doc: &Map<String, Value>) -> Result<Vec<GrantType>, DocumentFault> {
    let offered = strings(doc, "grant_types")?
        .unwrap_or_else(|| vec![GrantType::AuthorizationCode.as_str().to_owned()]);
    let has = |g: GrantType| offered.iter().any(|o| o == g.as_str());
    if !has(GrantType::AuthorizationCode) {
        return Err(DocumentFault::NoAuthorizationCode);
    }
    let response_types = strings(doc, "response_types")?.unwrap_or_else(|| vec!["code".into()]);
    if !response_types.iter().any(|r| r == "code") {
        return Err(DocumentFault::NoCodeResponseType);
    }
    let mut grants = vec![GrantType::AuthorizationCode];
    if has(GrantType::RefreshToken) {
        grants.push(GrantType::RefreshToken);
    }
    Ok(grants)
}

/// `redirect_uris`, each judged by the rules for a public client's registration.
fn redirect_uris(doc: &Map<String, Value>) -> Result<Vec<String>, DocumentFault> {
    let uris = match doc.get("redirect_uris") {
        None | Some(Value::Null) => return Err(DocumentFault::RedirectUrisMissing),
        Some(Value::Array(items)) if items.len() > MAX_REDIRECT_URIS => {
            return Err(DocumentFault::TooManyRedirectUris);
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or(DocumentFault::Malformed("redirect_uris"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(DocumentFault::Malformed("redirect_uris")),
    };
    if uris.is_empty() {
        return Err(DocumentFault::RedirectUrisMissing);
    }
    for uri in &uris {
        match redirect_uri::validate_for_registration(uri, true) {
            Ok(_) => {}
            Err(AuthError::InvalidRedirectUri(Reason::RedirectUri(fault))) => {
                return Err(DocumentFault::RedirectUri(fault));
            }
            Err(_) => return Err(DocumentFault::Malformed("redirect_uris")),
        }
    }
    Ok(uris)
}

/// What the consent page shows about a document's client.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DocumentView {
    /// The document's host (with its port when not 443): who vouches for the client.
    pub host: String,
    /// The host is on the operator's trusted list.
    pub verified: bool,
    /// Every redirect URI is on the loopback interface: any program on the user's machine
    /// could be the client (MCP security considerations).
    pub localhost_only: bool,
    /// The document's logo, for a verified client only.
    pub logo_uri: Option<String>,
}

impl DocumentPolicy {
    fn host_permitted(&self, host: &str) -> Result<(), DocumentFault> {
        if self.denied_hosts.iter().any(|p| p.matches(host)) {
            return Err(DocumentFault::HostDenied);
        }
        if !self.allowed_hosts.is_empty() && !self.allowed_hosts.iter().any(|p| p.matches(host)) {
            return Err(DocumentFault::HostNotAllowed);
        }
        Ok(())
    }

    /// The consent page's view of a document's client; `None` for any other client.
    pub fn view(&self, client: &Client) -> Option<DocumentView> {
        if client.tier != ClientTier::MetadataDocument {
            return None;
        }
        let url = url::Url::parse(&client.id).ok()?;
        let name = url.host_str()?.to_owned();
        let host = match url.port() {
            Some(p) => format!("{name}:{p}"),
            None => name.clone(),
        };
        let verified = self.trusted_hosts.iter().any(|p| p.matches(&name));
        let localhost_only = client
            .redirect_uris
            .iter()
            .all(|u| url::Url::parse(u).is_ok_and(|u| redirect_uri::is_loopback(&u)));
        let logo_uri = verified
            .then(|| client.metadata.get("logo_uri").and_then(Value::as_str))
            .flatten()
            .map(str::to_owned);
        Some(DocumentView {
            host,
            verified,
            localhost_only,
            logo_uri,
        })
    }
}

/// What the shared copy of a document is good for.
enum Shared {
    /// Fresh and valid: used.
    Used(Arc<Client>),
    /// Fresh, but fetched longer ago than a refetch allows: fetched again.
    LiveButRefetching,
    /// None, expired, or no longer valid.
    Absent,
}

/// One cached judgement.
#[derive(Clone)]
enum Judgement {
    Client(Arc<Client>),
    Fault(DocumentFault),
}

#[derive(Clone)]
struct Entry {
    judgement: Judgement,
    fetched_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// The judgements of documents, in memory, per replica.
#[derive(Default)]
pub(crate) struct DocumentCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl DocumentCache {
    fn get(&self, id: &str, now: DateTime<Utc>) -> Option<Entry> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).filter(|e| e.expires_at > now).cloned()
    }

    fn put(&self, id: &str, entry: Entry) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES && !map.contains_key(id) {
            map.clear();
        }
        map.insert(id.to_owned(), entry);
    }
}

/// How long a validated document is kept: its freshness, bounded to
/// [`MIN_FRESHNESS`, `MAX_FRESHNESS`].
pub fn cache_lifetime(freshness: DocumentFreshness) -> Duration {
    let asked = match freshness {
        DocumentFreshness::NoStore => Duration::zero(),
        DocumentFreshness::Fresh(d) => Duration::from_std(d).unwrap_or(MAX_FRESHNESS),
        DocumentFreshness::Unspecified => DEFAULT_FRESHNESS,
    };
    asked.clamp(MIN_FRESHNESS, MAX_FRESHNESS)
}

impl AuthCore {
    /// Whether https `client_id`s are read as metadata documents: the operator's switch,
    /// and a fetcher to read them with.
    pub fn client_documents_enabled(&self) -> bool {
        self.settings.client_documents.enabled && self.documents.is_some()
    }

    /// The client a metadata document describes: from the cache while fresh, else fetched
    /// and judged. With `refetch`, a cached document fetched longer ago than
    /// [`MIN_REFETCH_INTERVAL`] is fetched again.
    pub(crate) async fn document_client(&self, id: &str, refetch: bool) -> AuthResult<Arc<Client>> {
        let Some(fetcher) = self
            .documents
            .as_ref()
            .filter(|_| self.settings.client_documents.enabled)
        else {
            return Err(AuthError::InvalidClient(Reason::UnknownClient));
        };
        let url = parse_document_url(id)?;
        let host = url.host_str().unwrap_or_default();
        self.settings.client_documents.host_permitted(host)?;
        let now = self.clock.now();
        if let Some(entry) = self.document_cache.get(id, now)
            && !(refetch && now - entry.fetched_at >= MIN_REFETCH_INTERVAL)
        {
            return match entry.judgement {
                Judgement::Client(c) => Ok(c),
                Judgement::Fault(f) => Err(f.into()),
            };
        }
        let shared_is_live = match self.shared_document(id, refetch, now).await? {
            Shared::Used(client) => return Ok(client),
            Shared::LiveButRefetching => true,
            Shared::Absent => false,
        };
        let (judgement, lifetime) = match fetcher.fetch(&url).await {
            // Not remembered: the limit says nothing about the document.
            Err(FetchFailure::RateLimited) => {
                return Err(DocumentFault::Fetch(FetchFailure::RateLimited).into());
            }
            Err(failure) => (Judgement::Fault(DocumentFault::Fetch(failure)), FAILURE_TTL),
            Ok(doc) => match validate_document(id, &doc.body, now) {
                Ok(client) => {
                    let lifetime = cache_lifetime(doc.freshness);
                    self.share_document(id, doc.body, now, now + lifetime).await;
                    (Judgement::Client(Arc::new(client)), lifetime)
                }
                Err(fault) => (Judgement::Fault(fault), FAILURE_TTL),
            },
        };
        // A document fetched again and found gone or invalid ends the shared copy too: kept,
        // it would bring the client back on every replica (this one included, once the
        // failure is forgotten) until its freshness ran out. A failure that says nothing
        // about the document (unreachable, a timeout, a 5xx) leaves the copy in place.
        if shared_is_live
            && let Judgement::Fault(fault) = &judgement
            && fault.is_definitive()
        {
            self.share_document(id, Vec::new(), now, now).await;
        }
        if let Judgement::Fault(fault) = &judgement {
            tracing::info!(client_id = %id, fault = %fault, "client metadata document refused");
        }
        self.document_cache.put(
            id,
            Entry {
                judgement: judgement.clone(),
                fetched_at: now,
                expires_at: now + lifetime,
            },
        );
        match judgement {
            Judgement::Client(c) => Ok(c),
            Judgement::Fault(f) => Err(f.into()),
        }
    }

    /// The document another replica (or this one, before a restart) fetched, while it is
    /// fresh and, with `refetch`, was fetched less than [`MIN_REFETCH_INTERVAL`] ago. It is
    /// judged again here: what is shared is the bytes, never a judgement.
    async fn shared_document(
        &self,
        id: &str,
        refetch: bool,
        now: DateTime<Utc>,
    ) -> AuthResult<Shared> {
        let Some(doc) = self.stores.documents.find_document(id).await? else {
            return Ok(Shared::Absent);
        };
        if doc.expires_at <= now {
            return Ok(Shared::Absent);
        }
        if refetch && now - doc.fetched_at >= MIN_REFETCH_INTERVAL {
            return Ok(Shared::LiveButRefetching);
        }
        let Ok(client) = validate_document(id, &doc.body, now) else {
            return Ok(Shared::Absent);
        };
        let client = Arc::new(client);
        self.document_cache.put(
            id,
            Entry {
                judgement: Judgement::Client(client.clone()),
                fetched_at: doc.fetched_at,
                expires_at: doc.expires_at,
            },
        );
        Ok(Shared::Used(client))
    }

    /// Keeps a valid document for the other replicas. Failing to is not the request's
    /// failure: the document was fetched and judged, and only sharing it is lost.
    async fn share_document(
        &self,
        id: &str,
        body: Vec<u8>,
        fetched_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) {
        let doc = crate::store::StoredDocument {
            client_id: id.to_owned(),
            body,
            fetched_at,
            expires_at,
        };
        if let Err(e) = self.stores.documents.put_document(&doc).await {
            tracing::warn!(client_id = %id, error = %e, "client metadata document not shared with other replicas");
        }
    }

    /// Makes sure a document's client has a row in the client store before something that
    /// refers to it (a grant, a consent) is stored. The row is only an anchor: the document
    /// stays the authority, and is read from the cache or fetched, never from the row.
    pub(crate) async fn anchor_document_client(&self, client: &Client) -> AuthResult<()> {
        if client.tier != ClientTier::MetadataDocument
            || self.stores.clients.find_client(&client.id).await?.is_some()
        {
            return Ok(());
        }
        match self.stores.clients.insert_client(client).await {
            Ok(()) | Err(crate::store::StoreError::Duplicate(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
