//! Sealing what the server keeps outside itself and the database, in a store that others may
//! be able to write (Redis): authorization sessions, and revocation messages between replicas.
//!
//! Whoever can write Redis could otherwise hand the server a session in which "the user has
//! signed in", or revoke anyone's tokens. Sealed, a value only opens if this deployment wrote
//! it, for the very key it is read under:
//! - XChaCha20-Poly1305 (an AEAD with a 192-bit nonce, so random nonces never collide in
//!   practice, however many values one key seals);
//! - the key is derived from the key-encryption key with HKDF-SHA256 and a label per purpose,
//!   so a session can never be opened as a revocation message, nor either as a signing key;
//! - the caller's context (the Redis key a session is stored under) is the associated data,
//!   so a sealed value moved to another key does not open.
//!
//! What sealing cannot do: notice that a value was deleted, or replaced by an older value
//! that was sealed for the same key. SECURITY.md says what that leaves to a Redis writer.

use crate::keys::Kek;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// What a sealing key is for. Each purpose gets its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Authorization sessions in Redis; the context is the Redis key.
    AuthorizationSession,
    /// Revocation events on the Redis pub/sub channel; the context is the channel.
    RevocationMessage,
}

impl Purpose {
    /// The HKDF `info` label. Changing one makes every value sealed under it unreadable.
    fn label(self) -> &'static str {
        match self {
            Self::AuthorizationSession => "latchkey/v1/redis/authorization-session",
            Self::RevocationMessage => "latchkey/v1/redis/revocation-message",
        }
    }
}

/// Marks a sealed value: version 1, then the 24-byte nonce, then the ciphertext and tag.
const MAGIC: &[u8] = b"LKB1";
const NONCE_LEN: usize = 24;

/// Why a value does not open. Deliberately without detail: forged, moved, tampered with, or
/// sealed under another key-encryption key all look the same, and none of them is logged
/// with the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the value is not sealed by this deployment for this context")]
pub struct Unsealable;

/// Sealing failed: only possible for a value larger than the cipher allows (about 256 GiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealing failed")]
pub struct SealFailed;

/// Seals and opens values for one [`Purpose`].
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(redacted)")
    }
}

impl Sealer {
    /// The sealer for `purpose`, under a key derived from `kek`.
    pub fn new(kek: &Kek, purpose: Purpose) -> Self {
        let key = kek.derive(purpose.label());
        Self {
            cipher: XChaCha20Poly1305::new((&key).into()),
        }
    }

    /// `plain`, sealed and bound to `context`.
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Result<Vec<u8>, SealFailed> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .map_err(|_| SealFailed)?;
        Ok([MAGIC, &nonce, &sealed].concat())
    }

    /// The plain value, if `sealed` was sealed by this sealer for `context` and not changed.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Unsealable> {
        let body = sealed.strip_prefix(MAGIC).ok_or(Unsealable)?;
        if body.len() < NONCE_LEN {
            return Err(Unsealable);
        }
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Unsealable)?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn kek(byte: u8) -> Kek {
        Kek::from_base64(&base64::engine::general_purpose::STANDARD.encode([byte; 32]))
            .expect("32 bytes")
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_context_purpose_and_key() {
        let sessions = Sealer::new(&kek(1), Purpose::AuthorizationSession);
        let sealed = sessions
            .seal(b"latchkey:authz:a", br#"{"user_id":null}"#)
            .expect("seal");
        assert_eq!(
            sessions.open(b"latchkey:authz:a", &sealed).as_deref(),
            Ok(&br#"{"user_id":null}"#[..])
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let mut flipped_body = sealed.clone();
        flipped_body[MAGIC.len() + NONCE_LEN] ^= 0x80;
        let other_purpose = Sealer::new(&kek(1), Purpose::RevocationMessage);
        let other_kek = Sealer::new(&kek(2), Purpose::AuthorizationSession);
        let cases: [(&str, Result<Vec<u8>, Unsealable>); 7] = [
            (
                "moved to another key",
                sessions.open(b"latchkey:authz:b", &sealed),
            ),
            ("tag changed", sessions.open(b"latchkey:authz:a", &tampered)),
            (
                "ciphertext changed",
                sessions.open(b"latchkey:authz:a", &flipped_body),
            ),
            (
                "opened for another purpose",
                other_purpose.open(b"latchkey:authz:a", &sealed),
            ),
            (
                "opened under another key-encryption key",
                other_kek.open(b"latchkey:authz:a", &sealed),
            ),
            (
                "plain JSON",
                sessions.open(b"latchkey:authz:a", br#"{"user_id":null}"#),
            ),
            (
                "truncated",
                sessions.open(b"latchkey:authz:a", &sealed[..10]),
            ),
        ];
        for (case, opened) in cases {
            assert_eq!(opened, Err(Unsealable), "{case}");
        }
    }

    #[test]
    fn sealing_the_same_value_twice_gives_different_bytes() {
        let s = Sealer::new(&kek(1), Purpose::AuthorizationSession);
        assert_ne!(
            s.seal(b"k", b"v").expect("seal"),
            s.seal(b"k", b"v").expect("seal")
        );
    }
}
