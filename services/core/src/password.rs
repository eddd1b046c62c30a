//! User passwords: argon2id, with a minimum length, and a login check that takes the same
//! time whether or not the account exists.

use crate::error::{AuthError, Reason};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::sync::OnceLock;

pub const MIN_LENGTH: usize = 8;
const MAX_LENGTH: usize = 1024;

/// Hashes a new password with argon2id and a random salt.
pub fn hash(password: &str) -> Result<String, AuthError> {
    let len = password.chars().count();
    if len < MIN_LENGTH {
        return Err(AuthError::InvalidRequest(Reason::PasswordTooShort));
    }
    if password.len() > MAX_LENGTH {
        return Err(AuthError::InvalidRequest(Reason::PasswordTooLong));
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Internal(e.to_string().into()))
}

/// Verifies a password against a stored PHC string.
pub fn verify(password: &str, stored: &str) -> bool {
    password.len() <= MAX_LENGTH
        && Argon2::default()
            .verify_password(password.as_bytes(), stored)
            .is_ok()
}

/// Spends the time of one verification without an account, so that a login for an unknown
/// email cannot be told apart by timing.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("dummy-password-for-timing").ok());
    if let Some(d) = dummy {
        let _ = verify(password, d);
    }
}

/// argon2id needs 19 MiB per hash. Running at most one per core keeps both CPU and memory
/// bounded under a login flood (unbounded, every blocking thread grows its own allocator
/// arena, and the process balloons).
fn permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    })
}

/// Runs `f` (an argon2 computation) off the async workers, at most one per core.
pub async fn bounded<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    let _permit = permits().acquire().await.map_err(AuthError::internal)?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(AuthError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_minimum_length() {
        let h = hash("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert_eq!(
            hash("short").expect_err("too short").code(),
            "invalid_request"
        );
    }
}
