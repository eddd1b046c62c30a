//! `private_key_jwt` (RFC 7523 §2.2 and §3): an assertion signed with each accepted
//! algorithm authenticates its client; every rule refuses what breaks it; a `jti` is
//! single-use across two cores over one store; `jwks_uri` is fetched, cached and fetched again
//! for an unknown `kid`, at most once per half minute.

mod common;

use chrono::Duration;
use common::*;
use latchkey_core::client_assertion::{AssertionFault, ClientAssertion, JWT_BEARER, KeySetFault};
use latchkey_core::client_auth::PresentedCredentials;
use latchkey_core::error::Reason;
use latchkey_core::metadata_document::{
    ClientDocuments, DocumentFreshness, FetchFailure, FetchedDocument,
};
use latchkey_core::model::ClientKeys;
use latchkey_core::testing::{ISSUER, TestCore};
use latchkey_core::testing_keys::{TestKey, claims, jwks};
use latchkey_core::{AuthError, AuthResult};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const CLIENT: &str = "signing-client";
const JWKS_URI: &str = "https://keys.example/jwks.json";

fn with_assertion(assertion: String) -> PresentedCredentials {
    PresentedCredentials {
        assertion: Some(ClientAssertion {
            assertion_type: JWT_BEARER.into(),
            assertion,
        }),
        ..Default::default()
    }
}

fn now_secs(t: &TestCore) -> i64 {
    use latchkey_core::clock::Clock;
    t.clock.now().timestamp()
}

fn fault(r: AuthResult<Arc<latchkey_core::model::Client>>) -> AssertionFault {
    match r {
        Err(AuthError::InvalidClient(Reason::Assertion(f))) => f,
        other => panic!("expected an assertion fault, got {other:?}"),
    }
}

async fn client_with_jwks(t: &TestCore, keys: &[&TestKey]) {
    client(CLIENT)
        .private_key_jwt(ClientKeys::Jwks(jwks(keys)))
        .seed(t)
        .await;
}

#[tokio::test]
async fn an_assertion_signed_with_each_accepted_algorithm_authenticates_the_client() {
    for key in TestKey::all() {
        let t = core().await;
        client_with_jwks(&t, &[&key]).await;
        let assertion = key.sign(&claims(CLIENT, ISSUER, now_secs(&t)));
        let client = t
            .core
            .authenticate_client(&with_assertion(assertion))
            .await
            .unwrap_or_else(|e| panic!("{:?} authenticates: {e:?}", key.alg));
        assert_eq!(client.id, CLIENT);
    }
}

#[tokio::test]
async fn the_token_endpoint_is_an_audience_too_and_a_key_without_kid_is_tried() {
    let t = core().await;
    let key = TestKey::es256();
    client_with_jwks(&t, &[&TestKey::eddsa(), &key]).await;
    let assertion = key.sign_without_kid(&claims(CLIENT, &format!("{ISSUER}/token"), now_secs(&t)));
    t.core
        .authenticate_client(&with_assertion(assertion))
        .await
        .expect("the token endpoint is an accepted audience");
}

#[tokio::test]
async fn every_broken_rule_is_refused_with_its_reason() {
    let t = core().await;
    let key = TestKey::rs256();
    client_with_jwks(&t, &[&key]).await;
    client("secret-client")
        .confidential(latchkey_core::model::AuthMethod::ClientSecretBasic)
        .seed(&t)
        .await;
    let now = now_secs(&t);
    let good = || claims(CLIENT, ISSUER, now);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good();
        f(&mut c);
        key.sign(&c)
    };
    let unsigned = |alg: &str| {
        use base64::Engine;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT"})),
            b64(&good())
        )
    };
    // HS256 keyed with the public key's bytes: the classic algorithm confusion.
    let hs256 = {
        let public = key.jwk().to_string();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &good(),
            &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
        )
        .expect("signs")
    };
    let cases: Vec<(&str, String, AssertionFault)> = vec![
        (
            "wrong aud",
            with(&|c| c["aud"] = json!("https://other.example")),
            AssertionFault::WrongAudience,
        ),
        (
            "aud with two values",
            with(&|c| c["aud"] = json!([ISSUER, "https://other.example"])),
            AssertionFault::WrongAudience,
        ),
        (
            "no aud",
            with(&|c| {
                c.as_object_mut().expect("object").remove("aud");
            }),
            AssertionFault::WrongAudience,
        ),
        (
            "expired",
            with(&|c| c["exp"] = json!(now - 120)),
            AssertionFault::Expired,
        ),
        (
            "exp an hour ahead",
            with(&|c| c["exp"] = json!(now + 3600)),
            AssertionFault::LifetimeTooLong,
        ),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().expect("object").remove("exp");
            }),
            AssertionFault::MissingClaim("exp"),
        ),
        (
            "nbf in the future",
            with(&|c| c["nbf"] = json!(now + 120)),
            AssertionFault::NotYetValid,
        ),
        (
            "iss is not the client",
            with(&|c| c["iss"] = json!("someone-else")),
            AssertionFault::WrongIssuer,
        ),
        (
            "no jti",
            with(&|c| {
                c.as_object_mut().expect("object").remove("jti");
            }),
            AssertionFault::MissingClaim("jti"),
        ),
        (
            "an unknown kid",
            key.clone().with_kid("nobody-has-this").sign(&good()),
            AssertionFault::UnknownKey,
        ),
        (
            "signed by another key under the client's kid",
            TestKey::es256().with_kid(&key.kid).sign(&good()),
            AssertionFault::UnknownKey,
        ),
        (
            "alg none",
            unsigned("none"),
            AssertionFault::AlgorithmNotAllowed,
        ),
        (
            "HS256 keyed with the public key",
            hs256,
            AssertionFault::AlgorithmNotAllowed,
        ),
        (
            "a tampered signature",
            {
                let a = key.sign(&good());
                let (body, sig) = a.rsplit_once('.').expect("three parts");
                let flipped = if sig.starts_with('A') { "B" } else { "A" };
                format!("{body}.{flipped}{}", &sig[1..])
            },
            AssertionFault::BadSignature,
        ),
        ("not a JWT", "not-a-jwt".into(), AssertionFault::Malformed),
        (
            "a crit header",
            {
                use base64::Engine;
                let b64 = |v: &Value| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
                };
                format!(
                    "{}.{}.c2ln",
                    b64(&json!({"alg": "RS256", "crit": ["exp"], "exp": 1})),
                    b64(&good())
                )
            },
            AssertionFault::Malformed,
        ),
        (
            "a client registered for a secret",
            key.sign(&claims("secret-client", ISSUER, now)),
            AssertionFault::MethodNotRegistered,
        ),
    ];
    for (why, assertion, want) in cases {
        let got = fault(t.core.authenticate_client(&with_assertion(assertion)).await);
        assert_eq!(got, want, "{why}");
    }

    let mut wrong_type = with_assertion(key.sign(&good()));
    if let Some(a) = &mut wrong_type.assertion {
        a.assertion_type = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer".into();
    }
    assert_eq!(
        fault(t.core.authenticate_client(&wrong_type).await),
        AssertionFault::UnsupportedType
    );
    let mut other_id = with_assertion(key.sign(&good()));
    other_id.client_id = Some("secret-client".into());
    assert_eq!(
        fault(t.core.authenticate_client(&other_id).await),
        AssertionFault::ClientIdMismatch
    );
    let mut two_methods = with_assertion(key.sign(&good()));
    two_methods.client_secret = Some(SECRET.into());
    assert!(matches!(
        t.core.authenticate_client(&two_methods).await,
        Err(AuthError::InvalidRequest(Reason::MultipleClientAuthMethods))
    ));
}

#[tokio::test]
async fn a_private_key_jwt_client_cannot_pass_as_public_or_with_a_secret() {
    let t = core().await;
    client_with_jwks(&t, &[&TestKey::eddsa()]).await;
    for (why, creds) in [
        ("client_id alone", public(CLIENT)),
        ("basic", basic(CLIENT)),
        ("post", post(CLIENT)),
    ] {
        assert_eq!(
            err_code(t.core.authenticate_client(&creds).await, why),
            "invalid_client",
            "{why}"
        );
    }
}

#[tokio::test]
async fn a_jti_is_single_use_across_two_cores_over_one_store_until_it_expires() {
    let first = core().await;
    let second = TestCore::builder()
        .store(first.store.clone())
        .starting_at({
            use latchkey_core::clock::Clock;
            first.clock.now()
        })
        .build()
        .await
        .expect("a second replica");
    let key = TestKey::eddsa();
    client_with_jwks(&first, &[&key]).await;
    let c = claims(CLIENT, ISSUER, now_secs(&first));
    let assertion = key.sign(&c);
    first
        .core
        .authenticate_client(&with_assertion(assertion.clone()))
        .await
        .expect("the first use");
    assert_eq!(
        fault(
            second
                .core
                .authenticate_client(&with_assertion(assertion.clone()))
                .await
        ),
        AssertionFault::Replayed,
        "the other replica refuses the replay"
    );
    assert_eq!(
        fault(
            first
                .core
                .authenticate_client(&with_assertion(assertion))
                .await
        ),
        AssertionFault::Replayed,
        "and so does the first"
    );
    // Another client may use the same jti: it is unique per issuer.
    client("another-signer")
        .private_key_jwt(ClientKeys::Jwks(jwks(&[&key])))
        .seed(&first)
        .await;
    let mut theirs = claims("another-signer", ISSUER, now_secs(&first));
    theirs["jti"] = c["jti"].clone();
    first
        .core
        .authenticate_client(&with_assertion(key.sign(&theirs)))
        .await
        .expect("a jti is single-use per client");

    // Expired assertions are purged with the rest.
    first.clock.advance(Duration::minutes(10));
    let gone = first.core.purge_expired(false).await.expect("purge");
    assert_eq!(gone.client_assertions, 2);
}

/// Key sets served from memory, counting fetches.
#[derive(Default)]
struct KeySets {
    body: Mutex<Option<Value>>,
    fetches: AtomicUsize,
}

#[async_trait::async_trait]
impl ClientDocuments for KeySets {
    async fn fetch(&self, _: &url::Url) -> Result<FetchedDocument, FetchFailure> {
        Err(FetchFailure::Status(404))
    }

    async fn fetch_key_set(&self, url: &url::Url) -> Result<FetchedDocument, FetchFailure> {
        assert_eq!(url.as_str(), JWKS_URI);
        self.fetches.fetch_add(1, Ordering::SeqCst);
        match &*self.body.lock().expect("lock") {
            Some(v) => Ok(FetchedDocument {
                body: v.to_string().into_bytes(),
                freshness: DocumentFreshness::Fresh(std::time::Duration::from_secs(3600)),
            }),
            None => Err(FetchFailure::Unreachable),
        }
    }
}

/// A core fetching key sets from `sets`, with [`CLIENT`] signing with the keys at [`JWKS_URI`].
async fn reading_key_sets(sets: &Arc<KeySets>) -> TestCore {
    let t = TestCore::builder()
        .client_documents(sets.clone())
        .build()
        .await
        .expect("core");
    client(CLIENT)
        .private_key_jwt(ClientKeys::JwksUri(JWKS_URI.into()))
        .seed(&t)
        .await;
    t
}

#[tokio::test]
async fn a_jwks_uri_is_fetched_cached_and_fetched_again_for_a_new_kid_at_most_every_half_minute() {
    let sets = Arc::new(KeySets::default());
    let t = reading_key_sets(&sets).await;
    let old = TestKey::eddsa().with_kid("old");
    let new = TestKey::es256().with_kid("new");
    *sets.body.lock().expect("lock") = Some(jwks(&[&old]));
    let sign =
        |k: &TestKey, t: &TestCore| with_assertion(k.sign(&claims(CLIENT, ISSUER, now_secs(t))));

    t.core
        .authenticate_client(&sign(&old, &t))
        .await
        .expect("the first key");
    t.core
        .authenticate_client(&sign(&old, &t))
        .await
        .expect("again");
    assert_eq!(sets.fetches.load(Ordering::SeqCst), 1, "cached");

    // The client rotates: its new kid is not in the cached set, which is fetched again.
    *sets.body.lock().expect("lock") = Some(jwks(&[&old, &new]));
    t.clock.advance(Duration::seconds(31));
    t.core
        .authenticate_client(&sign(&new, &t))
        .await
        .expect("the rotated key");
    assert_eq!(sets.fetches.load(Ordering::SeqCst), 2);

    // An unknown kid within the half minute is refused without a fetch.
    for _ in 0..5 {
        let stranger = TestKey::rs256().with_kid("stranger");
        assert_eq!(
            fault(t.core.authenticate_client(&sign(&stranger, &t)).await),
            AssertionFault::UnknownKey
        );
    }
    assert_eq!(
        sets.fetches.load(Ordering::SeqCst),
        2,
        "refetches are rate-limited"
    );
}

#[tokio::test]
async fn an_unusable_key_set_is_refused_with_its_fault() {
    let sets = Arc::new(KeySets::default());
    let t = reading_key_sets(&sets).await;
    let key = TestKey::rs256_1024();
    *sets.body.lock().expect("lock") = Some(jwks(&[&key]));
    assert_eq!(
        fault(
            t.core
                .authenticate_client(&with_assertion(key.sign(&claims(
                    CLIENT,
                    ISSUER,
                    now_secs(&t)
                ))))
                .await
        ),
        AssertionFault::KeySet(KeySetFault::WeakRsaKey)
    );
    // Unreachable: refused, and remembered for a minute.
    let t2 = reading_key_sets(&Arc::new(KeySets::default())).await;
    let key = TestKey::eddsa();
    assert_eq!(
        fault(
            t2.core
                .authenticate_client(&with_assertion(key.sign(&claims(
                    CLIENT,
                    ISSUER,
                    now_secs(&t2)
                ))))
                .await
        ),
        AssertionFault::KeySetUnavailable(FetchFailure::Unreachable)
    );
}

#[test]
fn key_sets_with_private_symmetric_or_weak_keys_are_refused() {
    use latchkey_core::client_assertion::parse_key_set;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut set = jwks(&[&TestKey::es256()]);
        f(&mut set["keys"][0]);
        set
    };
    let cases: Vec<(&str, Value, KeySetFault)> = vec![
        ("not a set", json!({"kty": "EC"}), KeySetFault::Malformed),
        ("no keys", json!({"keys": []}), KeySetFault::Empty),
        (
            "a private key",
            with(&|k| k["d"] = json!("AAAA")),
            KeySetFault::PrivateOrSymmetricKey,
        ),
        (
            "a symmetric key",
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
            KeySetFault::PrivateOrSymmetricKey,
        ),
        (
            "an encryption key",
            with(&|k| k["use"] = json!("enc")),
            KeySetFault::UnsupportedKey,
        ),
        (
            "an HMAC alg",
            with(&|k| k["alg"] = json!("HS256")),
            KeySetFault::UnsupportedKey,
        ),
        (
            "an alg that does not fit the key",
            with(&|k| k["alg"] = json!("RS256")),
            KeySetFault::UnsupportedKey,
        ),
        (
            "P-384",
            with(&|k| k["crv"] = json!("P-384")),
            KeySetFault::UnsupportedKey,
        ),
        (
            "a short RSA key",
            jwks(&[&TestKey::rs256_1024()]),
            KeySetFault::WeakRsaKey,
        ),
        (
            "too many keys",
            json!({"keys": (0..17).map(|i| TestKey::eddsa().with_kid(&format!("k{i}")).jwk()).collect::<Vec<_>>()}),
            KeySetFault::TooManyKeys,
        ),
    ];
    for (why, set, want) in cases {
        assert_eq!(parse_key_set(&set).err(), Some(want), "{why}");
    }
    assert!(parse_key_set(&jwks(&TestKey::all().iter().collect::<Vec<_>>())).is_ok());
}

#[tokio::test]
async fn an_exp_at_the_end_of_time_is_refused_without_a_panic() {
    let t = core().await;
    let key = TestKey::eddsa();
    client_with_jwks(&t, &[&key]).await;
    // The last second chrono can represent: adding the leeway to it overflowed.
    let end_of_time = chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp();
    for exp in [json!(end_of_time), json!(end_of_time - 1), json!(1e300)] {
        let mut c = claims(CLIENT, ISSUER, now_secs(&t));
        c["exp"] = exp.clone();
        let got = fault(
            t.core
                .authenticate_client(&with_assertion(key.sign(&c)))
                .await,
        );
        assert!(
            matches!(
                got,
                AssertionFault::LifetimeTooLong | AssertionFault::MissingClaim("exp")
            ),
            "exp {exp}: {got:?}"
        );
    }
}

#[tokio::test]
async fn a_jti_that_is_not_printable_text_is_refused() {
    let t = core().await;
    let key = TestKey::es256();
    client_with_jwks(&t, &[&key]).await;
    for jti in ["a\u{0}b", "line\nbreak", "\u{7f}"] {
        let mut c = claims(CLIENT, ISSUER, now_secs(&t));
        c["jti"] = json!(jti);
        assert_eq!(
            fault(
                t.core
                    .authenticate_client(&with_assertion(key.sign(&c)))
                    .await
            ),
            AssertionFault::MissingClaim("jti"),
            "{jti:?}"
        );
    }
}

#[tokio::test]
async fn a_client_that_names_its_signing_alg_is_held_to_it() {
    let t = core().await;
    let rsa = TestKey::rs256();
    let registered = |alg: &str| {
        json!({
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": alg,
            "jwks": jwks(&[&rsa]),
        })
        .to_string()
    };
    let reg = t
        .core
        .register_client(&registered("PS256"), None)
        .await
        .expect("registers");
    let id = reg.client.id.clone();
    let now = now_secs(&t);
    // The key fits RS256 too, but the client said PS256.
    assert_eq!(
        fault(
            t.core
                .authenticate_client(&with_assertion(rsa.sign(&claims(&id, ISSUER, now))))
                .await
        ),
        AssertionFault::AlgorithmNotAllowed
    );
    t.core
        .authenticate_client(&with_assertion(
            TestKey::ps256().sign(&claims(&id, ISSUER, now)),
        ))
        .await
        .expect("its own algorithm");

    // One this server cannot verify is refused at registration, not at every assertion.
    for alg in ["HS256", "none", "ES384"] {
        assert!(
            matches!(
                t.core.register_client(&registered(alg), None).await,
                Err(AuthError::InvalidClientMetadata(Reason::Metadata(_)))
            ),
            "{alg}"
        );
    }
}

#[test]
fn keys_the_verifier_cannot_use_are_refused_with_the_key_set() {
    use base64::Engine;
    use latchkey_core::client_assertion::parse_key_set;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut set = jwks(&[&TestKey::rs256()]);
        f(&mut set["keys"][0]);
        set
    };
    let cases: Vec<(&str, Value, KeySetFault)> = vec![
        (
            "an 8192-bit modulus",
            with(&|k| k["n"] = json!(b64(&[0xff; 1024]))),
            KeySetFault::UnusableRsaKey,
        ),
        (
            "a 2047-bit modulus",
            with(&|k| {
                let mut n = vec![0xff; 256];
                n[0] = 0x7f;
                k["n"] = json!(b64(&n));
            }),
            KeySetFault::WeakRsaKey,
        ),
        (
            "an even exponent",
            with(&|k| k["e"] = json!(b64(&[1, 0, 0]))),
            KeySetFault::UnusableRsaKey,
        ),
        (
            "an exponent of 1",
            with(&|k| k["e"] = json!(b64(&[1]))),
            KeySetFault::UnusableRsaKey,
        ),
        (
            "an exponent over 2^33",
            with(&|k| k["e"] = json!(b64(&[1, 0, 0, 0, 0, 1]))),
            KeySetFault::UnusableRsaKey,
        ),
    ];
    let short = |key: TestKey, field: &'static str| {
        let mut set = jwks(&[&key]);
        set["keys"][0][field] = json!(b64(&[7; 31]));
        set
    };
    let mut cases = cases;
    cases.extend([
        (
            "a P-256 x of 31 bytes",
            short(TestKey::es256(), "x"),
            KeySetFault::UnsupportedKey,
        ),
        (
            "a P-256 y of 31 bytes",
            short(TestKey::es256(), "y"),
            KeySetFault::UnsupportedKey,
        ),
        (
            "an Ed25519 x of 31 bytes",
            short(TestKey::eddsa(), "x"),
            KeySetFault::UnsupportedKey,
        ),
    ]);
    for (why, set, want) in cases {
        assert_eq!(parse_key_set(&set).err(), Some(want), "{why}");
    }
    assert!(
        parse_key_set(&with(&|k| k["e"] = json!(b64(&[0, 1, 0, 1])))).is_ok(),
        "65537 with a leading zero byte"
    );
}

const DOCUMENT: &str = "https://signer.example/oauth/client.json";

/// One metadata document served from memory, counting fetches.
#[derive(Default)]
struct Published {
    document: Mutex<Option<Value>>,
    fetches: AtomicUsize,
}

impl Published {
    fn publish(&self, doc: Value) {
        *self.document.lock().expect("lock") = Some(doc);
    }
}

#[async_trait::async_trait]
impl ClientDocuments for Published {
    async fn fetch(&self, url: &url::Url) -> Result<FetchedDocument, FetchFailure> {
        assert_eq!(url.as_str(), DOCUMENT);
        self.fetches.fetch_add(1, Ordering::SeqCst);
        match &*self.document.lock().expect("lock") {
            Some(v) => Ok(FetchedDocument {
                body: v.to_string().into_bytes(),
                freshness: DocumentFreshness::Fresh(std::time::Duration::from_secs(3600)),
            }),
            None => Err(FetchFailure::Status(404)),
        }
    }

    async fn fetch_key_set(&self, _: &url::Url) -> Result<FetchedDocument, FetchFailure> {
        Err(FetchFailure::Unreachable)
    }
}

/// A document client that signs with the keys in its own `jwks`, offering `methods`.
fn signer(methods: &[&str], keys: &[&TestKey]) -> Value {
    json!({
        "client_id": DOCUMENT,
        "client_name": "Signer",
        "redirect_uris": ["https://signer.example/callback"],
        "token_endpoint_auth_method": methods[0],
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg": "ES256",
        "jwks": jwks(keys),
    })
}

async fn reading(published: &Arc<Published>) -> TestCore {
    TestCore::builder()
        .client_documents(published.clone())
        .build()
        .await
        .expect("core")
}

#[tokio::test]
async fn a_document_offering_private_key_jwt_beside_none_may_sign_or_not() {
    // ChatGPT's document: it prefers private_key_jwt, offers none too, and signs when the
    // server's metadata lists private_key_jwt, which this server's does.
    let published = Arc::new(Published::default());
    let key = TestKey::es256();
    published.publish(signer(&["private_key_jwt", "none"], &[&key]));
    let t = reading(&published).await;

    let signed = t
        .core
        .authenticate_client(&with_assertion(key.sign(&claims(
            DOCUMENT,
            ISSUER,
            now_secs(&t),
        ))))
        .await
        .expect("a signed request authenticates it");
    assert_eq!(signed.id, DOCUMENT);
    t.core
        .authenticate_client(&public(DOCUMENT))
        .await
        .expect("and so does its client_id alone");

    // An assertion it sends is judged in full, never skipped for the public method.
    let stranger = TestKey::eddsa().with_kid(&key.kid);
    assert_eq!(
        fault(
            t.core
                .authenticate_client(&with_assertion(stranger.sign(&claims(
                    DOCUMENT,
                    ISSUER,
                    now_secs(&t)
                ))))
                .await
        ),
        AssertionFault::AlgorithmNotAllowed,
        "its document names ES256"
    );
    assert_eq!(
        fault(
            t.core
                .authenticate_client(&with_assertion(
                    TestKey::es256().with_kid("unknown").sign(&claims(
                        DOCUMENT,
                        ISSUER,
                        now_secs(&t)
                    ))
                ))
                .await
        ),
        AssertionFault::UnknownKey
    );
}

#[tokio::test]
async fn a_document_client_that_rotates_its_own_jwks_is_fetched_again_for_the_new_kid() {
    let published = Arc::new(Published::default());
    let old = TestKey::es256().with_kid("old");
    let new = TestKey::es256().with_kid("new");
    published.publish(signer(&["private_key_jwt"], &[&old]));
    let t = reading(&published).await;
    let sign =
        |k: &TestKey, t: &TestCore| with_assertion(k.sign(&claims(DOCUMENT, ISSUER, now_secs(t))));
    t.core
        .authenticate_client(&sign(&old, &t))
        .await
        .expect("the first key");
    assert_eq!(published.fetches.load(Ordering::SeqCst), 1);

    // The client rotates: its document now lists the new key, which the cached copy lacks.
    published.publish(signer(&["private_key_jwt"], &[&old, &new]));
    t.clock.advance(Duration::seconds(31));
    let client = t
        .core
        .authenticate_client(&sign(&new, &t))
        .await
        .expect("the rotated key, from the document fetched again");
    assert_eq!(client.id, DOCUMENT);
    assert_eq!(published.fetches.load(Ordering::SeqCst), 2);

    // A kid nobody has fetches at most once per half minute.
    for _ in 0..5 {
        assert_eq!(
            fault(
                t.core
                    .authenticate_client(&sign(&TestKey::es256().with_kid("stranger"), &t))
                    .await
            ),
            AssertionFault::UnknownKey
        );
    }
    assert_eq!(published.fetches.load(Ordering::SeqCst), 2);
}
