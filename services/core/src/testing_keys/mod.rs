//! Client keys for tests of `private_key_jwt`: one fixed key per algorithm (made once with
//! `openssl genpkey`, so that no test spends seconds making an RSA key), with what a client
//! publishes (its JWK) and what it sends (a signed assertion).

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// One client key and the algorithm it signs with.
#[derive(Clone)]
pub struct TestKey {
    pub alg: Algorithm,
    pub kid: String,
    encoding: EncodingKey,
}

const RSA: &str = include_str!("rsa.pem");
/// A 1024-bit RSA key: too short to be accepted.
const RSA_1024: &str = include_str!("rsa1024.pem");
const EC: &str = include_str!("ec.pem");
const ED25519: &str = include_str!("ed25519.pem");

impl TestKey {
    fn new(alg: Algorithm, pem: &str, kid: &str) -> Self {
        let encoding = match alg {
            Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            other => panic!("no test key for {other:?}"),
        }
        .expect("the fixture key parses");
        Self {
            alg,
            kid: kid.to_owned(),
            encoding,
        }
    }

    pub fn rs256() -> Self {
        Self::new(Algorithm::RS256, RSA, "rsa-1")
    }

    pub fn ps256() -> Self {
        Self::new(Algorithm::PS256, RSA, "rsa-1")
    }

    pub fn es256() -> Self {
        Self::new(Algorithm::ES256, EC, "ec-1")
    }

    pub fn eddsa() -> Self {
        Self::new(Algorithm::EdDSA, ED25519, "ed-1")
    }

    /// An RS256 key too short to be accepted.
    pub fn rs256_1024() -> Self {
        Self::new(Algorithm::RS256, RSA_1024, "rsa-weak")
    }

    /// Every accepted algorithm.
    pub fn all() -> [Self; 4] {
        [Self::eddsa(), Self::es256(), Self::rs256(), Self::ps256()]
    }

    /// The same key under another `kid`.
    pub fn with_kid(mut self, kid: &str) -> Self {
        self.kid = kid.to_owned();
        self
    }

    /// The public JWK a client publishes, with its `kid` and `use`, without `alg` (so that
    /// one RSA key serves RS256 and PS256).
    pub fn jwk(&self) -> Value {
        let jwk = Jwk::from_encoding_key(&self.encoding, self.alg).expect("a public JWK");
        let mut v = serde_json::to_value(jwk).expect("a JWK serializes");
        if let Value::Object(m) = &mut v {
            m.remove("alg");
            m.insert("kid".into(), json!(self.kid));
            m.insert("use".into(), json!("sig"));
        }
        v
    }

    /// Signs `claims` with this key, naming its `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("the assertion signs")
    }

    /// Signs `claims` without a `kid`.
    pub fn sign_without_kid(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(self.alg), claims, &self.encoding)
            .expect("the assertion signs")
    }
}

/// A JWK Set of `keys`.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// The claims of a good assertion from `client_id` to `audience`, issued at `now` (Unix
/// seconds) and valid for a minute, with a fresh `jti`.
pub fn claims(client_id: &str, audience: &str, now: i64) -> Value {
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": crate::secret::generate(),
    })
}
