//! `private_key_jwt`: a client authenticates with a JWT it signed with one of its own keys
//! (RFC 7523 §2.2 and §3, OIDC Core §9), instead of a shared secret. It is the method of
//! clients that cannot keep a secret issued to them but can keep a private key (ChatGPT's
//! Client ID Metadata Document uses it), and of operator clients that prefer keys.
//!
//! The rules, in the order they are applied:
//! - the assertion type is `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, and no
//!   other method is used in the same request (RFC 6749 §2.3);
//! - the JWS algorithm is EdDSA, ES256, RS256 or PS256: never `none`, never HMAC (a client's
//!   public key must not become a shared secret);
//! - `sub` names the client (and equals a `client_id` sent beside it), which must be
//!   registered for `private_key_jwt` (or be a document client that offers it beside `none`);
//! - `alg` is the client's `token_endpoint_auth_signing_alg` when it named one;
//! - the signature verifies with one of the client's keys: the key its `kid` names, or, with
//!   no `kid`, any of its keys for that algorithm. Keys come from `jwks` or from `jwks_uri`,
//!   which is fetched with the SSRF-safe fetcher, cached, and fetched again (rate-limited)
//!   when an assertion names a `kid` the cached set lacks (a document's own `jwks` likewise
//!   fetches the document again);
//! - `iss` equals `sub`; `aud` is this server's issuer or its token endpoint, and nothing else
//!   (a single value: draft-ietf-oauth-rfc7523bis, against audience injection);
//! - `exp` is present, not passed, and at most [`MAX_LIFETIME`] ahead; `nbf` and `iat`, when
//!   present, are not in the future (each with [`LEEWAY`] for clock skew);
//! - `jti` is present and used once: it is recorded in the shared store until `exp`, so a
//!   replay fails on every replica.

use crate::AuthCore;
use crate::error::{AuthError, AuthResult, Reason};
use crate::metadata_document::{FetchFailure, cache_lifetime};
use crate::model::{AuthMethod, Client, ClientKeys, ClientTier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// RFC 7523 §2.2: the `client_assertion_type` of a JWT assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The JWS algorithms accepted, as the metadata advertises them
/// (`token_endpoint_auth_signing_alg_values_supported`).
pub const ALGORITHMS: [&str; 4] = ["EdDSA", "ES256", "RS256", "PS256"];
/// The furthest ahead an assertion's `exp` may be: an assertion is made for one request.
pub const MAX_LIFETIME: Duration = Duration::minutes(5);
/// Clock skew allowed between the client and this server.
pub const LEEWAY: Duration = Duration::seconds(30);
/// The longest assertion read. An RS256 assertion with a certificate chain in `x5c` is a few
/// kilobytes; nothing legitimate comes near this.
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;
/// The longest `jti` kept.
const MAX_JTI_LEN: usize = 256;
/// The most keys a client's key set may hold.
const MAX_KEYS: usize = 16;
/// RSA keys shorter than this are refused (RFC 7518 §3.3: 2048 bits or larger).
const MIN_RSA_BITS: usize = 2048;
/// RSA keys longer than this are refused: the verifier (the `rsa` crate, under
/// jsonwebtoken) refuses them, so every assertion would fail with a bad signature.
const MAX_RSA_BITS: usize = 4096;
/// The largest RSA public exponent the verifier accepts (`rsa::RsaPublicKey::MAX_PUB_EXPONENT`).
const MAX_RSA_EXPONENT: u64 = (1 << 33) - 1;
/// A key set is fetched again for an unknown `kid`, but not if it was fetched this recently.
pub const KEY_SET_MIN_REFETCH: Duration = Duration::seconds(30);
/// Key sets kept before the cache is emptied and refilled on demand.
const MAX_CACHED_KEY_SETS: usize = 10_000;

/// A client assertion exactly as presented (RFC 7521 §4.2).
#[derive(Debug, Clone)]
pub struct ClientAssertion {
    pub assertion_type: String,
    pub assertion: String,
}

/// Why a key set is refused, at registration, in a document, or once fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySetFault {
    /// Not a JSON object with a `keys` array of objects.
    Malformed,
    Empty,
    TooManyKeys,
    /// A key with private or symmetric material (`d`, `k`, …): a client publishes only
    /// public keys, and a shared key would make its public key a secret anyone can read.
    PrivateOrSymmetricKey,
    /// A key type, curve, `use` or `alg` this server does not verify with.
    UnsupportedKey,
    /// An RSA modulus shorter than 2048 bits.
    WeakRsaKey,
    /// An RSA key no signature could verify with: a modulus over 4096 bits, or a public
    /// exponent that is even, below 3 or above 2^33 - 1.
    UnusableRsaKey,
    /// `token_endpoint_auth_signing_alg` is not one of [`ALGORITHMS`].
    SigningAlgUnsupported,
    /// `jwks_uri` is not an https URL.
    KeySetUriNotHttps,
    /// Both `jwks` and `jwks_uri` (RFC 7591 §2: MUST NOT both be present).
    BothJwksAndJwksUri,
    /// `private_key_jwt` needs `jwks` or `jwks_uri`.
    NoKeys,
}

impl fmt::Display for KeySetFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "jwks is not a JWK Set",
            Self::Empty => "the JWK Set has no keys",
            Self::TooManyKeys => "the JWK Set has too many keys (at most 16)",
            Self::PrivateOrSymmetricKey => {
                "the JWK Set holds private or symmetric key material; publish public keys only"
            }
            Self::UnsupportedKey => {
                "the JWK Set holds a key this server cannot verify with (use RSA of 2048 bits \
                 or more, EC P-256 or Ed25519, for signing)"
            }
            Self::WeakRsaKey => "an RSA key is shorter than 2048 bits",
            Self::UnusableRsaKey => {
                "an RSA key must have a modulus of 2048 to 4096 bits and an odd public exponent \
                 from 3 to 2^33-1 (such as 65537)"
            }
            Self::SigningAlgUnsupported => {
                "token_endpoint_auth_signing_alg must be one of EdDSA, ES256, RS256, PS256"
            }
            Self::KeySetUriNotHttps => "jwks_uri must be an https URL",
            Self::BothJwksAndJwksUri => "jwks and jwks_uri must not both be present",
            Self::NoKeys => "private_key_jwt needs jwks or jwks_uri",
        })
    }
}

/// Why a client assertion does not authenticate its client (`invalid_client`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionFault {
    UnsupportedType,
    TooLong,
    /// Not a JWS in compact form with a JSON header and claims, or a `crit` header.
    Malformed,
    /// `alg` is not one of [`ALGORITHMS`] (`none` and HMAC included).
    AlgorithmNotAllowed,
    /// A `client_id` beside the assertion names another client than its `sub`.
    ClientIdMismatch,
    /// The client is not registered for `private_key_jwt`.
    MethodNotRegistered,
    /// No key of the client matches the `kid` (or, with none, verifies the signature).
    UnknownKey,
    BadSignature,
    /// A required claim is absent or of the wrong type.
    MissingClaim(&'static str),
    /// `iss` is not the client.
    WrongIssuer,
    /// `aud` is not this server (its issuer or token endpoint), or is several values.
    WrongAudience,
    Expired,
    /// `exp` is further ahead than [`MAX_LIFETIME`].
    LifetimeTooLong,
    /// `nbf` or `iat` in the future.
    NotYetValid,
    /// This `jti` was already used by this client.
    Replayed,
    /// The client's key set could not be fetched.
    KeySetUnavailable(FetchFailure),
    /// The client's key set is not usable.
    KeySet(KeySetFault),
}

impl fmt::Display for AssertionFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = "client assertion";
        match self {
            Self::UnsupportedType => write!(
                f,
                "{p}: client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            ),
            Self::TooLong => write!(f, "{p}: too long"),
            Self::Malformed => write!(f, "{p}: not a valid signed JWT"),
            Self::AlgorithmNotAllowed => {
                write!(f, "{p}: alg must be one of EdDSA, ES256, RS256, PS256")
            }
            Self::ClientIdMismatch => write!(f, "{p}: sub does not match client_id"),
            Self::MethodNotRegistered => {
                write!(f, "{p}: the client is not registered for private_key_jwt")
            }
            Self::UnknownKey => write!(f, "{p}: no key of the client matches"),
            Self::BadSignature => write!(f, "{p}: bad signature"),
            Self::MissingClaim(c) => write!(f, "{p}: the {c} claim is missing or malformed"),
            Self::WrongIssuer => write!(f, "{p}: iss must be the client_id"),
            Self::WrongAudience => write!(
                f,
                "{p}: aud must be this server's issuer or token endpoint, as a single value"
            ),
            Self::Expired => write!(f, "{p}: expired"),
            Self::LifetimeTooLong => write!(f, "{p}: exp is more than 5 minutes ahead"),
            Self::NotYetValid => write!(f, "{p}: not yet valid (nbf or iat in the future)"),
            Self::Replayed => write!(f, "{p}: this jti was already used"),
            Self::KeySetUnavailable(_) => {
                write!(f, "{p}: the client's jwks_uri could not be fetched")
            }
            Self::KeySet(fault) => write!(f, "{p}: {fault}"),
        }
    }
}

fn refused(fault: AssertionFault) -> AuthError {
    AuthError::InvalidClient(Reason::Assertion(fault))
}

/// One public key of a client, ready to verify with.
struct ClientKey {
    kid: Option<String>,
    /// The key's own `alg`, when it names one: then only that algorithm may use it.
    alg: Option<Algorithm>,
    /// The algorithms the key's type and curve can verify.
    fits: &'static [Algorithm],
    key: DecodingKey,
}

impl ClientKey {
    fn verifies(&self, alg: Algorithm) -> bool {
        self.fits.contains(&alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// A client's checked key set.
pub struct KeySet(Vec<ClientKey>);

impl KeySet {
    fn has_kid(&self, kid: &str) -> bool {
        self.0.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys that may verify an assertion signed with `alg` under `kid`.
    fn candidates<'a>(
        &'a self,
        alg: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a ClientKey> + 'a {
        self.0
            .iter()
            .filter(move |k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
            .filter(move |k| k.verifies(alg))
    }
}

/// Checks a JWK Set a client publishes and makes it ready to verify with: public signing keys
/// only, of the kinds [`ALGORITHMS`] verify with.
pub fn parse_key_set(v: &Value) -> Result<KeySet, KeySetFault> {
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(KeySetFault::Malformed)?;
    if keys.is_empty() {
        return Err(KeySetFault::Empty);
    }
    if keys.len() > MAX_KEYS {
        return Err(KeySetFault::TooManyKeys);
    }
    keys.iter()
        .map(parse_key)
        .collect::<Result<_, _>>()
        .map(KeySet)
}

fn parse_key(v: &Value) -> Result<ClientKey, KeySetFault> {
    let Value::Object(fields) = v else {
        return Err(KeySetFault::Malformed);
    };
    // RFC 7518 §6: private parameters of RSA, EC and OKP keys; `k` is a symmetric key.
    if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
        .iter()
        .any(|f| fields.contains_key(*f))
    {
        return Err(KeySetFault::PrivateOrSymmetricKey);
    }
    if fields.get("kty").and_then(Value::as_str) == Some("oct") {
        return Err(KeySetFault::PrivateOrSymmetricKey);
    }
    match fields.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Err(KeySetFault::UnsupportedKey),
    }
    let alg = match fields.get("alg") {
        None => None,
        Some(Value::String(a)) if ALGORITHMS.contains(&a.as_str()) => Some(
            a.parse::<Algorithm>()
                .map_err(|_| KeySetFault::UnsupportedKey)?,
        ),
        Some(_) => return Err(KeySetFault::UnsupportedKey),
    };
    let kid = match fields.get("kid") {
        None => None,
        Some(Value::String(k)) if k.len() <= MAX_JTI_LEN => Some(k.clone()),
        Some(_) => return Err(KeySetFault::Malformed),
    };
    let jwk: Jwk = serde_json::from_value(v.clone()).map_err(|_| KeySetFault::UnsupportedKey)?;
    let fits: &'static [Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => {
            let decode = |v: &str| {
                URL_SAFE_NO_PAD
                    .decode(v)
                    .map_err(|_| KeySetFault::Malformed)
            };
            let n = decode(&p.n)?;
            let e = decode(&p.e)?;
            let bits = bit_length(&n);
            if bits < MIN_RSA_BITS {
                return Err(KeySetFault::WeakRsaKey);
            }
            // What the verifier would refuse at every assertion is refused here, once, with
            // a reason the client can act on.
            let e = significant(&e);
            let exponent = if e.len() <= 8 {
                e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
            } else {
                u64::MAX
            };
            if bits > MAX_RSA_BITS
                || !(3..=MAX_RSA_EXPONENT).contains(&exponent)
                || exponent % 2 == 0
                || n.last().is_some_and(|b| b % 2 == 0)
            {
                return Err(KeySetFault::UnusableRsaKey);
            }
            &[Algorithm::RS256, Algorithm::PS256]
        }
        // Coordinates of the wrong length could never verify: refused here, not at every
        // assertion.
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            if !is_bytes(&p.x, 32) || !is_bytes(&p.y, 32) {
                return Err(KeySetFault::UnsupportedKey);
            }
            &[Algorithm::ES256]
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            if !is_bytes(&p.x, 32) {
                return Err(KeySetFault::UnsupportedKey);
            }
            &[Algorithm::EdDSA]
        }
        _ => return Err(KeySetFault::UnsupportedKey),
    };
    if alg.is_some_and(|a| !fits.contains(&a)) {
        return Err(KeySetFault::UnsupportedKey);
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| KeySetFault::UnsupportedKey)?;
    Ok(ClientKey {
        kid,
        alg,
        fits,
        key,
    })
}

/// Whether `b64` is base64url of exactly `len` bytes.
fn is_bytes(b64: &str, len: usize) -> bool {
    URL_SAFE_NO_PAD.decode(b64).is_ok_and(|b| b.len() == len)
}

/// A big-endian unsigned integer without its leading zero bytes.
fn significant(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    &bytes[zeros..]
}

/// The number of bits of a big-endian unsigned integer.
fn bit_length(bytes: &[u8]) -> usize {
    match significant(bytes) {
        [] => 0,
        [first, rest @ ..] => rest.len() * 8 + (8 - first.leading_zeros() as usize),
    }
}

/// OIDC Dynamic Client Registration §2 `token_endpoint_auth_signing_alg`: the one algorithm
/// a client's assertions must be signed with, when it names one. It must be one this server
/// verifies, or every assertion of the client would be refused.
pub fn signing_alg(v: Option<&Value>) -> Result<Option<&'static str>, KeySetFault> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(a)) => ALGORITHMS
            .iter()
            .find(|known| *known == a)
            .copied()
            .map(Some)
            .ok_or(KeySetFault::SigningAlgUnsupported),
        Some(_) => Err(KeySetFault::SigningAlgUnsupported),
    }
}

/// The metadata field that holds a client's [`signing_alg`].
pub const SIGNING_ALG_FIELD: &str = "token_endpoint_auth_signing_alg";

/// Checks the key metadata of a client registered (or described by a document) for
/// `private_key_jwt`: exactly one of `jwks` (a valid set) and `jwks_uri` (https).
pub fn client_keys(
    jwks: Option<&Value>,
    jwks_uri: Option<&Value>,
) -> Result<ClientKeys, KeySetFault> {
    let absent = |v: Option<&Value>| v.is_none_or(Value::is_null);
    match (absent(jwks), absent(jwks_uri)) {
        (false, false) => Err(KeySetFault::BothJwksAndJwksUri),
        (true, true) => Err(KeySetFault::NoKeys),
        (false, true) => {
            let set = jwks.cloned().unwrap_or_default();
            parse_key_set(&set)?;
            Ok(ClientKeys::Jwks(set))
        }
        (true, false) => {
            let uri = jwks_uri
                .and_then(Value::as_str)
                .ok_or(KeySetFault::KeySetUriNotHttps)?;
            let parsed = url::Url::parse(uri).map_err(|_| KeySetFault::KeySetUriNotHttps)?;
            if parsed.scheme() != "https"
                || parsed.host_str().is_none_or(str::is_empty)
                || !parsed.username().is_empty()
                || parsed.password().is_some()
                || parsed.fragment().is_some()
                || uri.len() > crate::client_auth::MAX_CLIENT_ID_LEN
            {
                return Err(KeySetFault::KeySetUriNotHttps);
            }
            Ok(ClientKeys::JwksUri(uri.to_owned()))
        }
    }
}

/// One fetched key set (or why it could not be had).
#[derive(Clone)]
struct CachedKeySet {
    keys: Result<Arc<KeySet>, AssertionFault>,
    fetched_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// Key sets fetched from `jwks_uri`, in memory, per replica.
#[derive(Default)]
pub(crate) struct KeySetCache {
    entries: Mutex<HashMap<String, CachedKeySet>>,
}

impl KeySetCache {
    fn get(&self, uri: &str, now: DateTime<Utc>) -> Option<CachedKeySet> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(uri).filter(|e| e.expires_at > now).cloned()
    }

    fn put(&self, uri: &str, entry: CachedKeySet) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED_KEY_SETS && !map.contains_key(uri) {
            map.clear();
        }
        map.insert(uri.to_owned(), entry);
    }
}

/// The claims read from an assertion. Types are checked by hand, so that a wrong type is
/// reported as the claim it is.
#[derive(serde::Deserialize)]
struct Claims {
    iss: Option<Value>,
    sub: Option<Value>,
    aud: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    jti: Option<Value>,
}

fn string_claim<'a>(v: &'a Option<Value>, name: &'static str) -> AuthResult<&'a str> {
    v.as_ref()
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(refused(AssertionFault::MissingClaim(name)))
}

fn time_claim(v: &Option<Value>, name: &'static str) -> AuthResult<Option<DateTime<Utc>>> {
    match v {
        None => Ok(None),
        Some(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .map(Some)
            .ok_or(refused(AssertionFault::MissingClaim(name))),
    }
}

/// The `alg` and `kid` of an assertion's header, refusing what is not a compact JWS this
/// server would verify.
fn header(assertion: &str) -> AuthResult<(Algorithm, Option<String>)> {
    let malformed = || refused(AssertionFault::Malformed);
    let mut parts = assertion.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let raw = URL_SAFE_NO_PAD.decode(h).map_err(|_| malformed())?;
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&raw) else {
        return Err(malformed());
    };
    // RFC 7515 §4.1.11: no extension is understood here.
    if fields.contains_key("crit") {
        return Err(malformed());
    }
    let alg = fields
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(malformed)?;
    if !ALGORITHMS.contains(&alg) {
        return Err(refused(AssertionFault::AlgorithmNotAllowed));
    }
    let alg = alg
        .parse::<Algorithm>()
        .map_err(|_| refused(AssertionFault::AlgorithmNotAllowed))?;
    let kid = match fields.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(malformed()),
    };
    Ok((alg, kid))
}

/// Whether `client` may authenticate with an assertion: it is registered for
/// `private_key_jwt`, or it is a document client that offers `private_key_jwt` beside `none`
/// (OpenID Connect RP Metadata Choices). A document learns of no choice made for it, so such
/// a client may use either: ChatGPT's document offers both, and signs when this server's
/// metadata lists `private_key_jwt`. An assertion it sends is checked in full all the same.
fn may_sign(client: &Client) -> bool {
    match client.auth_method {
        AuthMethod::PrivateKeyJwt => true,
        AuthMethod::None => client.tier == ClientTier::MetadataDocument && client.keys.is_some(),
        _ => false,
    }
}

/// OIDC Dynamic Client Registration §2: a client that named its
/// `token_endpoint_auth_signing_alg` is held to it.
fn held_to_its_alg(client: &Client, alg: Algorithm) -> AuthResult<()> {
    match client
        .metadata
        .get(SIGNING_ALG_FIELD)
        .and_then(Value::as_str)
    {
        Some(named) if named.parse::<Algorithm>().ok() != Some(alg) => {
            Err(refused(AssertionFault::AlgorithmNotAllowed))
        }
        _ => Ok(()),
    }
}

/// Whether the client's keys are a `jwks` inside its metadata document.
fn has_document_jwks(client: &Client) -> bool {
    client.tier == ClientTier::MetadataDocument && matches!(client.keys, Some(ClientKeys::Jwks(_)))
}

/// The client an assertion claims to come from (`sub`), read before it is verified, only to
/// find the keys that verify it.
fn claimed_client(assertion: &str) -> AuthResult<String> {
    let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
        .map_err(|_| refused(AssertionFault::Malformed))?;
    string_claim(&claims.sub, "sub").map(str::to_owned)
}

impl AuthCore {
    /// Authenticates a client by its assertion (`private_key_jwt`). `body_client_id` is a
    /// `client_id` sent beside it, if any.
    pub(crate) async fn authenticate_by_assertion(
        &self,
        presented: &ClientAssertion,
        body_client_id: Option<&str>,
    ) -> AuthResult<Arc<Client>> {
        if presented.assertion_type != JWT_BEARER {
            return Err(refused(AssertionFault::UnsupportedType));
        }
        let assertion = presented.assertion.as_str();
        if assertion.len() > MAX_ASSERTION_LEN {
            return Err(refused(AssertionFault::TooLong));
        }
        let (alg, kid) = header(assertion)?;
        let client_id = claimed_client(assertion)?;
        if body_client_id.is_some_and(|id| id != client_id) {
            return Err(refused(AssertionFault::ClientIdMismatch));
        }
        if !crate::client_auth::is_client_id(&client_id) {
            return Err(AuthError::InvalidClient(Reason::ClientAuthenticationFailed));
        }
        let client = self
            .client_to_authenticate(&client_id)
            .await?
            .ok_or(AuthError::InvalidClient(Reason::ClientAuthenticationFailed))?;
        if !may_sign(&client) {
            return Err(refused(AssertionFault::MethodNotRegistered));
        }
        held_to_its_alg(&client, alg)?;
        let (client, claims) = match self
            .verify_assertion(&client, assertion, alg, kid.as_deref())
            .await
        {
            Err(AuthError::InvalidClient(Reason::Assertion(AssertionFault::UnknownKey)))
                if kid.is_some() && has_document_jwks(&client) =>
            {
                // A document's own `jwks` is read with the document: a client that rotated
                // its keys names a `kid` the cached document lacks, so the document is
                // fetched again (at most once per MIN_REFETCH_INTERVAL), as a `jwks_uri` is.
                let fresh = crate::client_auth::as_client_failure(
                    self.document_client(&client.id, true).await,
                )?;
                if !may_sign(&fresh) {
                    return Err(refused(AssertionFault::MethodNotRegistered));
                }
                held_to_its_alg(&fresh, alg)?;
                let claims = self
                    .verify_assertion(&fresh, assertion, alg, kid.as_deref())
                    .await?;
                (fresh, claims)
            }
            other => (client, other?),
        };
        let expires_at = self.check_claims(&client.id, &claims)?;
        let jti = string_claim(&claims.jti, "jti")?;
        // Printable text only: the id is stored, and a NUL or a newline is no identifier
        // (and PostgreSQL cannot store a NUL).
        if jti.len() > MAX_JTI_LEN || jti.chars().any(char::is_control) {
            return Err(refused(AssertionFault::MissingClaim("jti")));
        }
        if !self
            .stores
            .assertions
            .use_assertion(&client.id, jti, expires_at, self.clock.now())
            .await?
        {
            return Err(refused(AssertionFault::Replayed));
        }
        Ok(client)
    }

    /// Verifies the signature with the client's keys and returns the claims.
    async fn verify_assertion(
        &self,
        client: &Client,
        assertion: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> AuthResult<Claims> {
        let keys = self.key_set(client, kid).await?;
        let mut validation = Validation::new(alg);
        // Time, audience and issuer are judged below on the core's clock, with this
        // module's rules; the library checks only the signature.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let mut any = false;
        for key in keys.candidates(alg, kid) {
            any = true;
            if let Ok(data) = jsonwebtoken::decode::<Claims>(assertion, &key.key, &validation) {
                return Ok(data.claims);
            }
        }
        Err(refused(if any {
            AssertionFault::BadSignature
        } else {
            AssertionFault::UnknownKey
        }))
    }

    /// The claims other than the signature and `jti`; returns when the assertion expires.
    fn check_claims(&self, client_id: &str, claims: &Claims) -> AuthResult<DateTime<Utc>> {
        if string_claim(&claims.iss, "iss")? != client_id {
            return Err(refused(AssertionFault::WrongIssuer));
        }
        let issuer = &self.settings.issuer;
        let token_endpoint = format!("{issuer}/token");
        let aud = match &claims.aud {
            Some(Value::String(a)) => Some(a.as_str()),
            Some(Value::Array(items)) if items.len() == 1 => items[0].as_str(),
            _ => None,
        };
        if !aud.is_some_and(|a| a == issuer || a == token_endpoint) {
            return Err(refused(AssertionFault::WrongAudience));
        }
        let now = self.clock.now();
        let exp =
            time_claim(&claims.exp, "exp")?.ok_or(refused(AssertionFault::MissingClaim("exp")))?;
        if exp > now + MAX_LIFETIME + LEEWAY {
            return Err(refused(AssertionFault::LifetimeTooLong));
        }
        // Checked after the bound above, so that an `exp` at the end of chrono's range
        // cannot overflow the addition.
        if exp + LEEWAY <= now {
            return Err(refused(AssertionFault::Expired));
        }
        for (claim, name) in [(&claims.nbf, "nbf"), (&claims.iat, "iat")] {
            if time_claim(claim, name)?.is_some_and(|t| t > now + LEEWAY) {
                return Err(refused(AssertionFault::NotYetValid));
            }
        }
        // Kept past `exp` by the leeway, while the assertion could still be accepted.
        Ok(exp + LEEWAY)
    }

    /// The client's keys: its `jwks`, or its `jwks_uri` from the cache, fetched when absent,
    /// stale, or lacking `kid` (at most once per [`KEY_SET_MIN_REFETCH`]).
    async fn key_set(&self, client: &Client, kid: Option<&str>) -> AuthResult<Arc<KeySet>> {
        let uri = match &client.keys {
            Some(ClientKeys::Jwks(set)) => {
                return parse_key_set(set)
                    .map(Arc::new)
                    .map_err(|f| refused(AssertionFault::KeySet(f)));
            }
            Some(ClientKeys::JwksUri(uri)) => uri,
            None => return Err(refused(AssertionFault::KeySet(KeySetFault::NoKeys))),
        };
        let now = self.clock.now();
        if let Some(entry) = self.key_sets.get(uri, now) {
            let lacks_kid = match (&entry.keys, kid) {
                (Ok(keys), Some(kid)) => !keys.has_kid(kid),
                _ => false,
            };
            if !(lacks_kid && now - entry.fetched_at >= KEY_SET_MIN_REFETCH) {
                return entry.keys.map_err(refused);
            }
        }
        let Some(fetcher) = &self.documents else {
            return Err(refused(AssertionFault::KeySetUnavailable(
                FetchFailure::Unreachable,
            )));
        };
        let url = url::Url::parse(uri)
            .map_err(|_| refused(AssertionFault::KeySet(KeySetFault::KeySetUriNotHttps)))?;
        let (keys, lifetime) = match fetcher.fetch_key_set(&url).await {
            // Not remembered: the limit says nothing about the key set.
            Err(FetchFailure::RateLimited) => {
                return Err(AuthError::TemporarilyUnavailable(Reason::Assertion(
                    AssertionFault::KeySetUnavailable(FetchFailure::RateLimited),
                )));
            }
            Err(failure) => (
                Err(AssertionFault::KeySetUnavailable(failure)),
                crate::metadata_document::FAILURE_TTL,
            ),
            Ok(fetched) => match serde_json::from_slice::<Value>(&fetched.body)
                .map_err(|_| KeySetFault::Malformed)
                .and_then(|v| parse_key_set(&v))
            {
                Ok(set) => (Ok(Arc::new(set)), cache_lifetime(fetched.freshness)),
                Err(fault) => (
                    Err(AssertionFault::KeySet(fault)),
                    crate::metadata_document::FAILURE_TTL,
                ),
            },
        };
        if let Err(fault) = &keys {
            tracing::info!(client_id = %client.id, jwks_uri = %uri, %fault, "client key set refused");
        }
        self.key_sets.put(
            uri,
            CachedKeySet {
                keys: keys.clone(),
                fetched_at: now,
                expires_at: now + lifetime,
            },
        );
        keys.map_err(refused)
    }
}
