//! RFC 9068 JWT access tokens: minting and checking.

use crate::error::{AuthError, Reason};
use crate::keys::KeyRing;
use crate::scope::ScopeSet;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

/// RFC 9068 §2.1: the media type in the `typ` header of an access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims of an access token (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    /// The RFC 8707 resource the token is for.
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The grant the token came from, when it came from a user's grant; revoking the grant
    /// revokes the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl AccessTokenClaims {
    pub fn scopes(&self) -> ScopeSet {
        ScopeSet::parse(&self.scope).unwrap_or_default()
    }
}

/// Signs `claims` with the active key.
pub fn mint(keys: &KeyRing, claims: &AccessTokenClaims) -> Result<String, AuthError> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
    header.kid = Some(keys.active_kid().to_owned());
    jsonwebtoken::encode(&header, claims, keys.encoding_key()).map_err(AuthError::internal)
}

/// Checks signature, `typ`, `iss`, `exp` and `nbf` (with `leeway_secs`). The audience and
/// scopes are the caller's to check, since they depend on who is asking.
pub fn verify(
    keys: &KeyRing,
    token: &str,
    issuer: &str,
    leeway_secs: u64,
) -> Result<AccessTokenClaims, AuthError> {
    let invalid = |why| AuthError::InvalidToken(Reason::Token(why));
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token"))?;
    // RFC 9068 §4: the resource server MUST verify typ is at+jwt; we refuse anything else
    // (including alg "none", which never reaches a key).
    if header.alg != Algorithm::EdDSA {
        return Err(invalid("unsupported algorithm"));
    }
    if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP)
        && header.typ.as_deref() != Some("application/at+jwt")
    {
        return Err(invalid("not an access token"));
    }
    let kid = header.kid.ok_or(invalid("token has no key id"))?;
    let key = keys
        .decoding_key(&kid)
        .ok_or(invalid("unknown signing key"))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.leeway = leeway_secs;
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud", "iat"]);
    jsonwebtoken::decode::<AccessTokenClaims>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => invalid("token expired"),
            jsonwebtoken::errors::ErrorKind::InvalidIssuer => invalid("wrong issuer"),
            jsonwebtoken::errors::ErrorKind::InvalidSignature => invalid("bad signature"),
            _ => invalid("malformed token"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys;
    use chrono::Utc;

    fn claims(exp_in: i64) -> AccessTokenClaims {
        let now = Utc::now().timestamp();
        AccessTokenClaims {
            iss: "http://localhost:8080".into(),
            sub: "user-1".into(),
            aud: "https://mcp.example.com/mcp".into(),
            client_id: "c1".into(),
            scope: "mcp:tools".into(),
            iat: now,
            exp: now + exp_in,
            jti: "j1".into(),
            sid: None,
        }
    }

    fn ring() -> KeyRing {
        KeyRing::new(&[keys::generate(Utc::now(), true).expect("key")]).expect("ring")
    }

    #[test]
    fn minted_token_verifies_and_has_rfc9068_header() {
        let ring = ring();
        let token = mint(&ring, &claims(60)).expect("mint");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(ring.active_kid()));
        let got = verify(&ring, &token, "http://localhost:8080", 0).expect("verify");
        assert_eq!(got, claims(60).clone_with_times(&got));
    }

    impl AccessTokenClaims {
        fn clone_with_times(mut self, other: &Self) -> Self {
            self.iat = other.iat;
            self.exp = other.exp;
            self
        }
    }

    #[test]
    fn rejects_expired_foreign_key_wrong_issuer_and_alg_none() {
        let ring = ring();
        let expired = mint(&ring, &claims(-120)).expect("mint");
        assert!(
            verify(&ring, &expired, "http://localhost:8080", 5).is_err(),
            "expired"
        );
        let foreign = mint(&ring_other(), &claims(60)).expect("mint");
        assert!(
            verify(&ring, &foreign, "http://localhost:8080", 5).is_err(),
            "unknown key"
        );
        let good = mint(&ring, &claims(60)).expect("mint");
        assert!(verify(&ring, &good, "https://other", 5).is_err(), "issuer");
        // alg none: header {"alg":"none","typ":"at+jwt"} with the same payload, no signature.
        let payload = good.split('.').nth(1).expect("payload");
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.{payload}.");
        assert!(
            verify(&ring, &none, "http://localhost:8080", 5).is_err(),
            "alg none"
        );
        assert!(
            verify(&ring, "garbage", "http://localhost:8080", 5).is_err(),
            "garbage"
        );
    }

    fn ring_other() -> KeyRing {
        ring()
    }
}
