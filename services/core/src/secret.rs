//! High-entropy secrets (client secrets, codes, refresh tokens, session handles) and how they
//! are stored and checked.
//!
//! Only the SHA-256 of a secret is ever stored. A 256-bit random secret needs no slow KDF:
//! SHA-256 is preimage-resistant, and argon2 here would cost three orders of magnitude more
//! per request for no gain. Comparisons are constant-time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest shared credential accepted anywhere (the gateway's, the operators'): 32 bytes.
/// Configuration refuses a shorter one before a port opens, and a guard given one anyway
/// treats it as unset, so an empty or guessable credential never opens a service.
pub const MIN_SHARED_SECRET_BYTES: usize = 32;

/// A fresh 256-bit random secret, base64url without padding (43 characters).
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh random identifier with 128 bits of entropy (22 characters); not a secret.
pub fn generate_id() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a secret: base64url(SHA-256(secret)).
pub fn hash(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `candidate` hashes to `stored_hash`, compared in constant time.
pub fn verify(candidate: &str, stored_hash: &str) -> bool {
    // base64url of 32 bytes is 43 characters: encoded on the stack, as `hash` would write it.
    let mut encoded = [0u8; 43];
    match URL_SAFE_NO_PAD.encode_slice(Sha256::digest(candidate.as_bytes()), &mut encoded) {
        Ok(n) => encoded[..n].ct_eq(stored_hash.as_bytes()).into(),
        Err(_) => false,
    }
}

/// The base64url SHA-256 of arbitrary bytes (PKCE, key thumbprints).
pub fn sha256_b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_distinct_and_256_bit() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }

    #[test]
    fn verify_accepts_only_the_original_secret() {
        let s = generate();
        let h = hash(&s);
        assert!(verify(&s, &h));
        assert!(!verify(&generate(), &h));
        assert!(!verify("", &h));
    }

    /// A stored value that is not exactly `hash`'s output (a prefix or extension of it, padded,
    /// another encoding, empty) matches no secret, whatever its length.
    #[test]
    fn verify_matches_only_a_stored_hash_exactly_as_hash_writes_it() {
        let s = generate();
        let h = hash(&s);
        let digest = Sha256::digest(s.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let standard = base64::engine::general_purpose::STANDARD.encode(digest);
        for stored in [
            String::new(),
            h[..42].to_owned(),
            format!("{h}="),
            format!("{h}{h}"),
            h.to_uppercase(),
            hex,
            standard,
            s.clone(),
        ] {
            assert!(!verify(&s, &stored), "{stored:?}");
        }
        // Secrets of any length hash to the stored form `hash` writes.
        for secret in ["", "a", &"x".repeat(10_000), "caf\u{e9} \u{85}"] {
            assert!(verify(secret, &hash(secret)), "{secret:?}");
        }
    }
}
