//! Ed25519 signing keys: generation, loading, and the in-memory key ring used to mint and
//! check access tokens.
//!
//! Keys are parsed once, when the ring is built; minting never re-parses a key and checking
//! never re-decompresses a public key. (jsonwebtoken's RustCrypto backend does both on every
//! call, which costs about half the throughput; see `benches/tokens.rs`.)

use crate::error::AuthError;
use crate::model::StoredSigningKey;
use crate::secret::sha256_b64;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::collections::HashMap;

/// Generates a new Ed25519 key. Its `kid` is the RFC 7638 JWK thumbprint.
pub fn generate(now: DateTime<Utc>, active: bool) -> Result<StoredSigningKey, AuthError> {
    let key = SigningKey::generate(&mut rand::rng());
    let der = key
        .to_pkcs8_der()
        .map_err(|e| AuthError::Internal(e.to_string().into()))?;
    let public = key.verifying_key().to_bytes();
    Ok(StoredSigningKey {
        kid: thumbprint(&public),
        private_der: der.as_bytes().to_vec(),
        public_key: public.to_vec(),
        created_at: now,
        active,
    })
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace.
fn thumbprint(public: &[u8]) -> String {
    let x = URL_SAFE_NO_PAD.encode(public);
    sha256_b64(format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#).as_bytes())
}

/// The keys in memory: the one that signs, and every one that may verify.
pub struct KeyRing {
    active_kid: String,
    /// `None` in a verify-only ring built from a JWKS (resource servers).
    signing: Option<SigningKey>,
    /// base64url of the JOSE header every token from the active key carries.
    header_b64: String,
    verifying: HashMap<String, VerifyingKey>,
    jwks: serde_json::Value,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("active_kid", &self.active_kid)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Builds the ring from stored keys. Exactly one must be active.
    pub fn new(keys: &[StoredSigningKey]) -> Result<Self, AuthError> {
        let active = keys
            .iter()
            .filter(|k| k.active)
            .max_by_key(|k| k.created_at)
            .ok_or_else(|| AuthError::Internal("no active signing key".into()))?;
        let bad = |kid: &str| AuthError::Internal(format!("signing key {kid} is corrupt").into());
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for k in keys {
            let public: [u8; 32] = k
                .public_key
                .as_slice()
                .try_into()
                .map_err(|_| bad(&k.kid))?;
            verifying.insert(
                k.kid.clone(),
                VerifyingKey::from_bytes(&public).map_err(|_| bad(&k.kid))?,
            );
            jwks.push(serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(&k.public_key),
                "kid": k.kid,
                "use": "sig",
                "alg": "EdDSA",
            }));
        }
        let signing =
            SigningKey::from_pkcs8_der(&active.private_der).map_err(|_| bad(&active.kid))?;
        if signing.verifying_key().to_bytes().as_slice() != active.public_key.as_slice() {
            return Err(bad(&active.kid));
        }
        let header = serde_json::json!({ "alg": "EdDSA", "typ": crate::token::ACCESS_TOKEN_TYP, "kid": active.kid });
        Ok(Self {
            active_kid: active.kid.clone(),
            signing: Some(signing),
            header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
            verifying,
            jwks: serde_json::json!({ "keys": jwks }),
        })
    }

    pub fn active_kid(&self) -> &str {
        &self.active_kid
    }

    /// A verify-only ring from an RFC 7517 JWK Set, keeping the Ed25519 keys that have a `kid`.
    pub fn from_jwks(jwks: &serde_json::Value) -> Result<Self, String> {
        let mut verifying = HashMap::new();
        for k in jwks["keys"]
            .as_array()
            .ok_or("a JWK Set needs a keys array")?
        {
            let (Some("OKP"), Some("Ed25519"), Some(x), Some(kid)) = (
                k["kty"].as_str(),
                k["crv"].as_str(),
                k["x"].as_str(),
                k["kid"].as_str(),
            ) else {
                continue;
            };
            let bytes = URL_SAFE_NO_PAD
                .decode(x)
                .map_err(|_| format!("key {kid}: x is not base64url"))?;
            let public: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| format!("key {kid}: x is not 32 bytes"))?;
            verifying.insert(
                kid.to_owned(),
                VerifyingKey::from_bytes(&public)
                    .map_err(|_| format!("key {kid}: not a valid point"))?,
            );
        }
        Ok(Self {
            active_kid: String::new(),
            signing: None,
            header_b64: String::new(),
            verifying,
            jwks: jwks.clone(),
        })
    }

    pub(crate) fn signing_key(&self) -> Option<&SigningKey> {
        self.signing.as_ref()
    }

    pub(crate) fn header_b64(&self) -> &str {
        &self.header_b64
    }

    pub(crate) fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.get(kid)
    }

    /// The RFC 7517 JWK Set of every verifying key.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }
}
