//! RFC 9068 JWT access tokens: minting and checking.
//!
//! The JWS compact serialization (RFC 7515 §7.1) is built here over ed25519-dalek with keys
//! parsed once (see `keys.rs`). The tests cross-check every minted token with the
//! jsonwebtoken crate, so the format stays interoperable.

use crate::error::{AuthError, Reason, TokenFault};
use crate::keys::KeyRing;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// RFC 9068 §2.1: the media type in the `typ` header of an access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Longest token we will look at; ours are well under 1 KiB.
const MAX_TOKEN_LEN: usize = 8 * 1024;

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
    /// Not before; never set on tokens minted here, honoured when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

/// The check every verifier makes once a token's signature, issuer and lifetime hold: it is
/// for `audience` (RFC 8707: a token minted for one resource is useless at another), and it
/// grants every one of `required` (RFC 6750 §3.1: a refusal names them all). VerifyToken,
/// ForwardAuth (through VerifyToken) and `latchkey-resource-server`'s local mode all use it.
///
/// This is the one rule for whether a token's scopes satisfy a requirement, scope
/// hierarchies included: a token's `scope` already names every scope its resource's hierarchy
/// implies (they are added when it is minted, see `scope_hierarchy`), so a token minted with
/// `files:write` where `files:write` implies `files:read` passes a `files:read` requirement
/// here, in every verifier alike, and one with `files:read` never passes `files:write`.
pub fn check_for_resource(
    claims: &AccessTokenClaims,
    audience: &str,
    required: &[String],
) -> crate::AuthResult<()> {
    if !crate::resource::same(&claims.aud, audience) {
        return Err(AuthError::InvalidToken(Reason::Token(
            TokenFault::OtherAudience,
        )));
    }
    // The scopes as the token names them, read without allocating on this, the hottest path.
    // A `scope` that is not a valid scope string (RFC 6749 §3.3) grants nothing, as when it
    // was parsed into a `ScopeSet`: a token is signed here, so this never happens to one
    // minted here, and a malformed one is no grant whatever it spells.
    let granted = crate::scope::tokens(&claims.scope);
    if required
        .iter()
        .any(|s| !granted.clone().is_some_and(|mut g| g.any(|t| t == s)))
    {
        return Err(AuthError::InsufficientScope(Reason::ScopesRequired(
            required.to_vec(),
        )));
    }
    Ok(())
}

impl AccessTokenClaims {
    /// Whether a user stands behind the token. RFC 9068 §2.2: with no user, `sub` identifies
    /// the client, so it equals `client_id`. A user's id (a UUID) never equals a client's id
    /// (22 characters of base64url, or an https URL for a metadata document).
    pub fn has_user(&self) -> bool {
        self.sub != self.client_id
    }
}

/// The JOSE header fields we read.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    /// RFC 7515 §4.1.11: we understand no extensions, so any `crit` is fatal.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Signs `claims` with the key that signs at `claims.iat`.
pub fn mint(keys: &KeyRing, claims: &AccessTokenClaims) -> Result<String, AuthError> {
    let (signing, header) = keys
        .signing_parts(claims.iat)
        .ok_or_else(|| AuthError::Internal("this key ring cannot sign".into()))?;
    let payload = serde_json::to_vec(claims).map_err(AuthError::internal)?;
    let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 90);
    token.push_str(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = signing.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
    Ok(token)
}

/// A token whose header we accept and whose signing key we hold, before its signature is
/// checked. Nothing in it may be trusted until [`SignedToken::check_signature`] (or a batch
/// check of [`SignedToken::signature_parts`]) has passed.
pub struct SignedToken<'a> {
    key: VerifyingKey,
    signing_input: &'a [u8],
    signature: Signature,
    payload: &'a str,
}

/// Reads the JOSE header of `token` and finds its key. Refuses, before any key is touched,
/// every algorithm but EdDSA (`none` included), any `crit`, and a `typ` other than `at+jwt`.
pub fn parse<'a>(keys: &KeyRing, token: &'a str) -> Result<SignedToken<'a>, AuthError> {
    let invalid = |why| AuthError::InvalidToken(Reason::Token(why));
    let malformed = || invalid(TokenFault::Malformed);
    if token.len() > MAX_TOKEN_LEN {
        return Err(malformed());
    }
    let mut parts = token.splitn(3, '.');
    let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed());
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(malformed)?;
    if header.alg != "EdDSA" {
        return Err(invalid(TokenFault::UnsupportedAlgorithm));
    }
    if header.crit.is_some() {
        return Err(invalid(TokenFault::CriticalHeader));
    }
    // RFC 9068 §4: the typ header must be at+jwt (or its full media type).
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(invalid(TokenFault::NotAnAccessToken));
    }
    let kid = header.kid.ok_or(invalid(TokenFault::NoKeyId))?;
    let key = keys
        .verifying_key(&kid)
        .ok_or(AuthError::InvalidToken(Reason::UnknownSigningKey))?;
    let mut sig = [0u8; 64];
    match URL_SAFE_NO_PAD.decode_slice(s, &mut sig) {
        Ok(64) => {}
        _ => return Err(malformed()),
    }
    Ok(SignedToken {
        key: *key,
        signing_input: &token.as_bytes()[..h.len() + 1 + p.len()],
        signature: Signature::from_bytes(&sig),
        payload: p,
    })
}

impl<'a> SignedToken<'a> {
    /// RFC 8032 verification (canonical S enforced). `verify_strict`'s extra weak-key checks
    /// guard against attacker-chosen public keys; ours are generated here, and the check
    /// costs a fifth of the throughput.
    pub fn check_signature(&self) -> Result<(), AuthError> {
        self.key
            .verify(self.signing_input, &self.signature)
            .map_err(|_| bad_signature())
    }

    /// The key, the signed bytes and the signature, for a batch check.
    pub fn signature_parts(&self) -> (&VerifyingKey, &'a [u8], &Signature) {
        (&self.key, self.signing_input, &self.signature)
    }

    /// Decodes the claims and checks `iss`, `exp` and `nbf` (with `leeway_secs`) at `now`.
    /// Call only once the signature has been checked.
    pub fn claims(
        &self,
        issuer: &str,
        now: i64,
        leeway_secs: u64,
    ) -> Result<AccessTokenClaims, AuthError> {
        let invalid = |why| AuthError::InvalidToken(Reason::Token(why));
        let payload = URL_SAFE_NO_PAD
            .decode(self.payload)
            .map_err(|_| invalid(TokenFault::Malformed))?;
        let claims: AccessTokenClaims =
            serde_json::from_slice(&payload).map_err(|_| invalid(TokenFault::Malformed))?;
        let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
        if claims.iss != issuer {
            return Err(invalid(TokenFault::WrongIssuer));
        }
        if claims.exp.saturating_add(leeway) <= now {
            return Err(invalid(TokenFault::Expired));
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf.saturating_sub(leeway) > now)
        {
            return Err(invalid(TokenFault::NotYetValid));
        }
        Ok(claims)
    }
}

/// The rejection for a signature that does not verify.
pub fn bad_signature() -> AuthError {
    AuthError::InvalidToken(Reason::Token(TokenFault::BadSignature))
}

/// Checks signature, `typ`, `iss`, `exp` and `nbf` (with `leeway_secs`) at `now` (Unix
/// seconds). The audience and scopes are the caller's to check, since they depend on who asks.
pub fn verify(
    keys: &KeyRing,
    token: &str,
    issuer: &str,
    now: i64,
    leeway_secs: u64,
) -> Result<AccessTokenClaims, AuthError> {
    let signed = parse(keys, token)?;
    signed.check_signature()?;
    signed.claims(issuer, now, leeway_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys;
    use crate::scope::ScopeSet;
    use chrono::Utc;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    const ISS: &str = "http://localhost:8080";

    fn claims(exp_in: i64) -> AccessTokenClaims {
        let now = Utc::now().timestamp();
        AccessTokenClaims {
            iss: ISS.into(),
            sub: "user-1".into(),
            aud: "https://mcp.example.com/mcp".into(),
            client_id: "c1".into(),
            scope: "mcp:tools".into(),
            iat: now,
            exp: now + exp_in,
            jti: "j1".into(),
            sid: None,
            nbf: None,
        }
    }

    fn ring() -> (KeyRing, Vec<u8>) {
        let k = keys::generate(Utc::now(), Utc::now(), None).expect("key");
        (
            KeyRing::new(std::slice::from_ref(&k)).expect("ring"),
            k.public_key,
        )
    }

    fn now() -> i64 {
        Utc::now().timestamp()
    }

    /// The scope check reads the token's `scope` in place; it answers as parsing it into a
    /// `ScopeSet` (as it did before) would, for every shape of scope string and requirement.
    #[test]
    fn the_scope_check_answers_as_the_parsed_scope_set_does() {
        let scopes = [
            "",
            " ",
            "mcp:tools",
            "mcp:tools files:read",
            "mcp:tools  files:read",
            " mcp:tools ",
            "mcp:toolsx",
            "mcp",
            "mcp:tools\tfiles:read",
            "mcp:tools files\"read",
            "mcp:tools caf\u{e9}",
            "mcp:tools\u{85}files:read",
        ];
        let required: [&[&str]; 11] = [
            &[],
            &[""],
            &["mcp:tools"],
            &["mcp"],
            &["mcp:tool"],
            &["files:read"],
            &["mcp:tools", "files:read"],
            &["mcp:tools files:read"],
            &[" mcp:tools"],
            &["files\"read"],
            &["caf\u{e9}"],
        ];
        for scope in scopes {
            let c = AccessTokenClaims {
                scope: scope.into(),
                ..claims(60)
            };
            let parsed = ScopeSet::parse(scope).unwrap_or_default();
            for req in required {
                let req: Vec<String> = req.iter().map(|s| s.to_string()).collect();
                let expected = req.iter().all(|s| parsed.contains(s));
                let got = check_for_resource(&c, &c.aud, &req);
                assert_eq!(got.is_ok(), expected, "{scope:?} for {req:?}: {got:?}");
            }
        }
    }

    #[test]
    fn minted_token_verifies_here_and_with_jsonwebtoken() {
        let (ring, public) = ring();
        let c = claims(60);
        let token = mint(&ring, &c).expect("mint");
        assert_eq!(verify(&ring, &token, ISS, now(), 0).expect("verify"), c);
        // An independent JWT library accepts it, with the RFC 9068 header.
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(ring.active_kid()));
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&["https://mcp.example.com/mcp"]);
        v.set_issuer(&[ISS]);
        let decoded = jsonwebtoken::decode::<AccessTokenClaims>(
            &token,
            &DecodingKey::from_ed_der(&public),
            &v,
        )
        .expect("jsonwebtoken");
        assert_eq!(decoded.claims, c);
    }

    #[test]
    fn a_jsonwebtoken_minted_token_verifies_here() {
        let k = keys::generate(Utc::now(), Utc::now(), None).expect("key");
        let ring = KeyRing::new(std::slice::from_ref(&k)).expect("ring");
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = Some(k.kid.clone());
        let token = jsonwebtoken::encode(
            &header,
            &claims(60),
            &jsonwebtoken::EncodingKey::from_ed_der(&k.private_der),
        )
        .expect("encode");
        assert!(verify(&ring, &token, ISS, now(), 0).is_ok());
    }

    #[test]
    fn rejections() {
        let (ring, _) = ring();
        let (other, _) = self::ring();
        let good = mint(&ring, &claims(60)).expect("mint");
        let (h, rest) = good.split_once('.').expect("dot");
        let payload = rest.split('.').next().expect("payload");
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let kid = ring.active_kid();
        let tampered_payload = b64(&serde_json::to_string(&AccessTokenClaims {
            scope: "admin".into(),
            ..claims(60)
        })
        .expect("json"));
        let sig = good.rsplit('.').next().expect("sig");
        let cases: Vec<(String, &str)> = vec![
            (mint(&ring, &claims(-120)).expect("mint"), "expired"),
            (
                mint(&other, &claims(60)).expect("mint"),
                "signed by an unknown key",
            ),
            (
                format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"at+jwt"}"#)),
                "alg none",
            ),
            (
                format!(
                    "{}.{payload}.{sig}",
                    b64(&format!(
                        r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#
                    ))
                ),
                "alg HS256",
            ),
            (
                format!(
                    "{}.{payload}.{sig}",
                    b64(&format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#))
                ),
                "typ JWT (an ID token, say)",
            ),
            (
                format!(
                    "{}.{payload}.{sig}",
                    b64(&format!(
                        r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","crit":["x"]}}"#
                    ))
                ),
                "crit",
            ),
            (format!("{h}.{tampered_payload}.{sig}"), "tampered payload"),
            (format!("{h}.{payload}"), "two parts"),
            ("garbage".into(), "garbage"),
            (
                format!("{h}.{payload}.{}", "A".repeat(86)),
                "wrong signature",
            ),
        ];
        for (token, why) in cases {
            let err = verify(&ring, &token, ISS, now(), 5).expect_err(why);
            assert_eq!(err.code(), "invalid_token", "{why}");
        }
        assert!(
            verify(&ring, &good, "https://other", now(), 5).is_err(),
            "wrong issuer"
        );
        assert!(
            verify(&ring, &good, ISS, now() + 3600, 5).is_err(),
            "checked later than exp"
        );
    }
}

#[cfg(test)]
mod jwks_tests {
    use super::*;
    use crate::keys;
    use chrono::Utc;

    #[test]
    fn a_ring_built_from_the_jwks_verifies_but_cannot_sign() {
        let ring = KeyRing::new(&[keys::generate(Utc::now(), Utc::now(), None).expect("key")])
            .expect("ring");
        let public = KeyRing::from_jwks(ring.jwks()).expect("from jwks");
        let now = Utc::now().timestamp();
        let c = AccessTokenClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: "a".into(),
            client_id: "c".into(),
            scope: String::new(),
            iat: now,
            exp: now + 60,
            jti: "j".into(),
            sid: None,
            nbf: None,
        };
        let t = mint(&ring, &c).expect("mint");
        assert_eq!(verify(&public, &t, "i", now, 0).expect("verify"), c);
        assert!(mint(&public, &c).is_err());
    }

    #[test]
    fn the_resource_check_takes_a_host_only_resource_with_or_without_its_slash() {
        let claims = |aud: &str| AccessTokenClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: aud.into(),
            client_id: "c".into(),
            scope: "mcp:tools".into(),
            iat: 0,
            exp: 60,
            jti: "j".into(),
            sid: None,
            nbf: None,
        };
        let tools = ["mcp:tools".to_owned()];
        for (aud, audience, ok) in [
            ("https://h.example", "https://h.example/", true),
            ("https://h.example/", "https://h.example", true),
            ("https://h.example/mcp", "https://h.example/mcp/", false),
            ("https://h.example", "https://g.example", false),
        ] {
            let got = check_for_resource(&claims(aud), audience, &tools);
            assert_eq!(got.is_ok(), ok, "{aud} at {audience}: {got:?}");
        }
        let err = check_for_resource(
            &claims("https://h.example"),
            "https://h.example/",
            &["mcp:prompts".to_owned()],
        )
        .expect_err("scope");
        assert_eq!(err.code(), "insufficient_scope");
    }
}
