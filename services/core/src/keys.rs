//! Ed25519 signing keys: generation, encryption at rest, rotation, and the in-memory key
//! ring used to mint and check access tokens.
//!
//! Keys are parsed once, when the ring is built; minting never re-parses a key and checking
//! never re-decompresses a public key. (jsonwebtoken's RustCrypto backend does both on every
//! call, which costs about half the throughput; see `benches/tokens.rs`.)
//!
//! Rotation is by time, so every replica switches at the same instant without talking to
//! the others:
//! - a new key is published (in the JWKS) at once but signs only from its `activates_at`
//!   (publish-before-use), which is later than any JWKS cache could be stale;
//! - the signer at time `t` is the key with the latest `activates_at <= t`;
//! - a superseded key stays in the JWKS until every token it signed has expired
//!   (retire-after-last-token-expiry).

use crate::error::AuthError;
use crate::model::StoredSigningKey;
use crate::secret::sha256_b64;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::collections::HashMap;

/// Where a stored signing key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// It signs new tokens.
    Signing,
    /// Published in the JWKS; it signs from its activation (publish-before-use).
    Published,
    /// No longer signs; kept while tokens it signed can still be valid.
    VerifyOnly,
    /// Gone from the JWKS.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signing => "signing",
            Self::Published => "published, signs from activation",
            Self::VerifyOnly => "verify-only",
            Self::Retired => "retired",
        }
    }
}

/// A stored signing key, described for an operator.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    pub kid: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub activates_at: chrono::DateTime<chrono::Utc>,
    pub state: KeyState,
}

/// Generates a new Ed25519 key that signs from `activates_at`. Its `kid` is the RFC 7638
/// JWK thumbprint. With a key-encryption key, the private key is sealed before it is returned.
pub fn generate(
    now: DateTime<Utc>,
    activates_at: DateTime<Utc>,
    kek: Option<&Kek>,
) -> Result<StoredSigningKey, AuthError> {
    let key = SigningKey::generate(&mut rand::rng());
    let der = key
        .to_pkcs8_der()
        .map_err(|e| AuthError::Internal(e.to_string().into()))?;
    let public = key.verifying_key().to_bytes();
    let kid = thumbprint(&public);
    let private_der = match kek {
        Some(k) => k.seal(&kid, der.as_bytes())?,
        None => der.as_bytes().to_vec(),
    };
    Ok(StoredSigningKey {
        kid,
        private_der,
        public_key: public.to_vec(),
        created_at: now,
        activates_at,
    })
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace.
fn thumbprint(public: &[u8]) -> String {
    let x = URL_SAFE_NO_PAD.encode(public);
    sha256_b64(format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#).as_bytes())
}

/// A key-encryption key: signing keys are sealed with it (ChaCha20-Poly1305, the `kid` as
/// associated data) before they reach the database.
#[derive(Clone)]
pub struct Kek([u8; 32]);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(redacted)")
    }
}

/// Marks a sealed private key: version 1, then a 12-byte nonce, then the ciphertext.
const SEALED: &[u8] = b"LKS1";

impl Kek {
    /// From base64 of exactly 32 random bytes (`openssl rand -base64 32`).
    pub fn from_base64(s: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(s.trim())
            .map_err(|_| "the key-encryption key is not base64".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the key-encryption key must be 32 bytes".to_owned())?;
        Ok(Self(key))
    }

    /// A 256-bit key for one `purpose`, derived with HKDF-SHA256 (RFC 5869): keys for
    /// different purposes are independent, and none of them reveals this key.
    pub(crate) fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut okm = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so expand cannot fail.
        let _ = hkdf::Hkdf::<sha2::Sha256>::new(None, &self.0).expand(purpose.as_bytes(), &mut okm);
        okm
    }

    fn seal(&self, kid: &str, plain: &[u8]) -> Result<Vec<u8>, AuthError> {
        let mut nonce = [0u8; 12];
        rand::fill(&mut nonce[..]);
        let sealed = ChaCha20Poly1305::new((&self.0).into())
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| AuthError::Internal("sealing a signing key failed".into()))?;
        Ok([SEALED, &nonce, &sealed].concat())
    }

    fn open(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, AuthError> {
        let body = &sealed[SEALED.len()..];
        if body.len() < 12 {
            return Err(AuthError::Internal(
                format!("signing key {kid} is corrupt").into(),
            ));
        }
        let (nonce, ciphertext) = body.split_at(12);
        let nonce: [u8; 12] = nonce
            .try_into()
            .map_err(|_| AuthError::Internal(format!("signing key {kid} is corrupt").into()))?;
        ChaCha20Poly1305::new((&self.0).into())
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| {
                AuthError::Internal(
                    format!("signing key {kid} cannot be decrypted with this key-encryption key")
                        .into(),
                )
            })
    }
}

/// The plain PKCS#8 DER of a stored key, opening it when it is sealed.
pub fn private_der(key: &StoredSigningKey, kek: Option<&Kek>) -> Result<Vec<u8>, AuthError> {
    if key.private_der.starts_with(SEALED) {
        let kek = kek.ok_or_else(|| {
            AuthError::Internal(
                format!(
                    "signing key {} is encrypted: configure the key-encryption key",
                    key.kid
                )
                .into(),
            )
        })?;
        kek.open(&key.kid, &key.private_der)
    } else {
        Ok(key.private_der.clone())
    }
}

struct Signer {
    kid: String,
    activates_at: i64,
    key: SigningKey,
    /// base64url of the JOSE header every token from this key carries.
    header_b64: String,
}

/// The keys in memory: those that sign (by time) and every one that may verify.
pub struct KeyRing {
    /// Sorted by `activates_at`, oldest first. Empty in a verify-only ring.
    signers: Vec<Signer>,
    verifying: HashMap<String, VerifyingKey>,
    jwks: serde_json::Value,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("kids", &self.verifying.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Builds the ring at `now` from stored keys, dropping keys superseded more than
    /// `retire_after_secs` ago (every token they signed has expired by then).
    pub fn build(
        keys: &[StoredSigningKey],
        kek: Option<&Kek>,
        now: i64,
        retire_after_secs: i64,
    ) -> Result<Self, AuthError> {
        let bad = |kid: &str| AuthError::Internal(format!("signing key {kid} is corrupt").into());
        let mut sorted: Vec<&StoredSigningKey> = keys.iter().collect();
        sorted.sort_by_key(|k| k.activates_at);
        // The instant each key stopped signing: the next key's activation.
        let superseded: Vec<Option<i64>> = (0..sorted.len())
            .map(|i| sorted.get(i + 1).map(|n| n.activates_at.timestamp()))
            .collect();
        let mut signers = Vec::new();
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for (k, gone) in sorted.iter().zip(superseded) {
            if gone.is_some_and(|at| at + retire_after_secs < now) {
                continue;
            }
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
            // A superseded key only verifies; it never signs again.
            if gone.is_none_or(|at| at > now) {
                let key =
                    SigningKey::from_pkcs8_der(&private_der(k, kek)?).map_err(|_| bad(&k.kid))?;
                if key.verifying_key().to_bytes() != public {
                    return Err(bad(&k.kid));
                }
                let header = serde_json::json!({ "alg": "EdDSA", "typ": crate::token::ACCESS_TOKEN_TYP, "kid": k.kid });
                signers.push(Signer {
                    kid: k.kid.clone(),
                    activates_at: k.activates_at.timestamp(),
                    key,
                    header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
                });
            }
        }
        if signers.is_empty() {
            return Err(AuthError::Internal("no signing key".into()));
        }
        Ok(Self {
            signers,
            verifying,
            jwks: serde_json::json!({ "keys": jwks }),
        })
    }

    /// A ring with one key active since its creation (tests, benchmarks).
    pub fn new(keys: &[StoredSigningKey]) -> Result<Self, AuthError> {
        Self::build(keys, None, Utc::now().timestamp(), i64::MAX / 4)
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
            signers: Vec::new(),
            verifying,
            jwks: jwks.clone(),
        })
    }

    /// The key that signs at `now`: the latest activated one (or the earliest, if none has
    /// activated yet, which only happens on a fresh install).
    fn signer(&self, now: i64) -> Option<&Signer> {
        self.signers
            .iter()
            .rev()
            .find(|s| s.activates_at <= now)
            .or_else(|| self.signers.first())
    }

    /// The `kid` that signs at `now`.
    pub fn active_kid_at(&self, now: i64) -> Option<&str> {
        self.signer(now).map(|s| s.kid.as_str())
    }

    /// The `kid` that signs now.
    pub fn active_kid(&self) -> &str {
        self.active_kid_at(Utc::now().timestamp()).unwrap_or("")
    }

    /// When the current signer started signing (for the key-age gauge and rotation).
    pub fn active_since(&self, now: i64) -> Option<i64> {
        self.signer(now).map(|s| s.activates_at)
    }

    /// Whether a key that has not started signing yet is published.
    pub fn has_pending(&self, now: i64) -> bool {
        self.signers.iter().any(|s| s.activates_at > now)
    }

    pub(crate) fn signing_parts(&self, now: i64) -> Option<(&SigningKey, &str)> {
        self.signer(now).map(|s| (&s.key, s.header_b64.as_str()))
    }

    pub(crate) fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.get(kid)
    }

    /// The `kid`s this ring verifies, sorted: two rings with the same set verify the same.
    pub fn kids(&self) -> Vec<&str> {
        let mut k: Vec<&str> = self.verifying.keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    /// The RFC 7517 JWK Set of every verifying key.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn sealed_keys_open_only_with_their_kek_and_kid() {
        let kek = Kek::from_base64(&STANDARD.encode([7u8; 32])).expect("kek");
        let k = generate(Utc::now(), Utc::now(), Some(&kek)).expect("key");
        assert!(k.private_der.starts_with(SEALED));
        assert!(private_der(&k, Some(&kek)).is_ok());
        assert!(private_der(&k, None).is_err(), "no KEK");
        let other = Kek::from_base64(&STANDARD.encode([8u8; 32])).expect("kek");
        assert!(private_der(&k, Some(&other)).is_err(), "wrong KEK");
        let mut moved = k.clone();
        moved.kid = "another".into();
        assert!(private_der(&moved, Some(&kek)).is_err(), "bound to its kid");
        assert!(Kek::from_base64("c2hvcnQ=").is_err());
    }

    #[test]
    fn rotation_publishes_first_switches_on_time_and_retires_after_expiry() {
        let t0 = Utc::now();
        let old = generate(t0, t0, None).expect("old");
        let new = generate(t0, t0 + Duration::seconds(100), None).expect("new");
        let keys = [old.clone(), new.clone()];
        let now = t0.timestamp();
        let ring = KeyRing::build(&keys, None, now + 10, 50).expect("ring");
        assert_eq!(
            ring.active_kid_at(now + 10),
            Some(old.kid.as_str()),
            "not yet"
        );
        assert_eq!(
            ring.kids().len(),
            2,
            "the new key is published before it signs"
        );
        assert!(ring.has_pending(now + 10));
        assert_eq!(
            ring.active_kid_at(now + 100),
            Some(new.kid.as_str()),
            "switches at activation"
        );
        let later = KeyRing::build(&keys, None, now + 140, 50).expect("ring");
        assert_eq!(
            later.kids().len(),
            2,
            "the old key verifies until its tokens expire"
        );
        let retired = KeyRing::build(&keys, None, now + 151, 50).expect("ring");
        assert_eq!(retired.kids(), vec![new.kid.as_str()], "then it is retired");
    }
}
