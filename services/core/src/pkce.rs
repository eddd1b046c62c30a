//! PKCE (RFC 7636), S256 only, as OAuth 2.1 and RFC 9700 §2.1.1 require.

use crate::error::{AuthError, Reason};
use crate::secret::sha256_b64;
use subtle::ConstantTimeEq;

/// A validated S256 `code_challenge`: base64url(SHA-256(verifier)), 43 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Parses the authorization request's challenge and method.
    ///
    /// RFC 7636 §4.3: an absent method means `plain`, which we refuse like an explicit one.
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Self, AuthError> {
        let challenge = challenge
            .filter(|c| !c.is_empty())
            .ok_or(AuthError::InvalidRequest(Reason::PkceRequired))?;
        match method {
            Some("S256") => {}
            None | Some("plain") => {
                return Err(AuthError::InvalidRequest(Reason::PkcePlainNotAllowed));
            }
            Some(other) => {
                return Err(AuthError::InvalidRequest(Reason::Unsupported(
                    "code_challenge_method",
                    other.to_owned(),
                )));
            }
        }
        let well_formed = challenge.len() == 43
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(AuthError::InvalidRequest(Reason::Malformed(
                "code_challenge",
            )));
        }
        Ok(Self(challenge.to_owned()))
    }

    /// Restores a challenge that was validated before it was stored.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// RFC 7636 §4.6: checks `code_verifier` against this challenge.
    pub fn verify(&self, verifier: &str) -> Result<(), AuthError> {
        // RFC 7636 §4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !well_formed {
            return Err(AuthError::InvalidGrant(Reason::PkceVerificationFailed));
        }
        let computed = sha256_b64(verifier.as_bytes());
        if bool::from(computed.as_bytes().ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(AuthError::InvalidGrant(Reason::PkceVerificationFailed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector_verifies() {
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).expect("valid challenge");
        assert!(c.verify(VERIFIER).is_ok());
    }

    #[test]
    fn rejections() {
        let cases: &[(Option<&str>, Option<&str>, &str)] = &[
            (None, Some("S256"), "missing challenge"),
            (Some(CHALLENGE), Some("plain"), "plain method"),
            (Some(CHALLENGE), None, "absent method means plain"),
            (Some(CHALLENGE), Some("S512"), "unknown method"),
            (Some("short"), Some("S256"), "malformed challenge"),
        ];
        for (challenge, method, why) in cases {
            let err = CodeChallenge::parse(*challenge, *method).expect_err(why);
            assert_eq!(err.code(), "invalid_request", "{why}");
        }
    }

    #[test]
    fn wrong_or_malformed_verifier_is_invalid_grant() {
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).expect("valid challenge");
        for v in ["x".repeat(43), "short".into(), format!("{VERIFIER}!")] {
            assert_eq!(c.verify(&v).expect_err("must fail").code(), "invalid_grant");
        }
    }
}
