//! Property tests of every parser that reads untrusted input, driven over real HTTP and gRPC
//! against the whole system (SQLite, or PostgreSQL when `LATCHKEY_TEST_DATABASE_URL` is
//! set): forms, Basic credentials, registration JSON, redirect URIs, resources, scopes, JWT
//! headers and claims, and cookies, with NUL bytes, control characters and invalid UTF-8.
//!
//! The property is the same everywhere: no input makes the server answer 5xx or fail a gRPC
//! call with `INTERNAL`/`UNKNOWN`, and a refusal at an RFC endpoint carries an RFC error code.
//! `LATCHKEY_PROPTEST_CASES` sets the cases per property (default 48), so CI stays within
//! its time; a failure prints the shrunk input.

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use latchkey_proto::v1 as pb;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

fn cases() -> u32 {
    std::env::var("LATCHKEY_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

/// Runs `property` over `strategy` on a runtime of its own, against one app with the rate
/// limits off (every request here comes from one address).
fn check<S, F, Fut>(strategy: S, property: F)
where
    S: Strategy,
    S::Value: Clone + std::fmt::Debug,
    F: Fn(std::sync::Arc<TestApp>, S::Value) -> Fut,
    Fut: std::future::Future<Output = Result<(), TestCaseError>>,
{
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let app = std::sync::Arc::new(rt.block_on(spawn_app_with(|s| {
        s.rate_limit_token_per_min = 0;
        s.rate_limit_authorize_per_min = 0;
        s.rate_limit_login_per_min = 0;
        s.rate_limit_register_per_min = 0;
    })));
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |input| rt.block_on(property(app.clone(), input)));
    rt.block_on(async move { drop(app) });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Text an attacker might send: ordinary words, URL-ish punctuation, control characters and
/// NUL, any Unicode (bidirectional marks included), and now and then something long.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9:/._~%+&=?#@!$'()*,;\\-\\[\\] ]{0,60}",
        2 => "[\\x00-\\x1f\\x7f]{0,8}[a-z]{0,8}[\\x00-\\x1f]{0,4}",
        2 => any::<String>().prop_map(|s| s.chars().take(80).collect()),
        1 => Just("https://mcp.example.com/mcp".to_owned()),
        1 => Just("http://127.0.0.1:33418/callback".to_owned()),
        1 => (1usize..9000).prop_map(|n| "x".repeat(n)),
    ]
}

/// A form body: known parameter names (repeated or not) with hostile values, or raw bytes
/// that need not be UTF-8 at all.
fn form_body(names: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let pairs = prop::collection::vec(
        (
            prop_oneof![4 => prop::sample::select(names).prop_map(str::to_owned), 1 => text()],
            text(),
        ),
        0..8,
    )
    .prop_map(|pairs| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes()
    });
    prop_oneof![4 => pairs, 1 => prop::collection::vec(any::<u8>(), 0..300)]
}

/// An `Authorization` header value: absent, Basic with hostile parts, or raw junk.
fn authorization() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        2 => Just(None),
        2 => (text(), text()).prop_map(|(id, secret)| {
            Some(format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))).into_bytes())
        }),
        1 => prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| {
            Some(format!("Basic {}", STANDARD.encode(b)).into_bytes())
        }),
        1 => "[ -~]{0,60}".prop_map(|s| Some(s.into_bytes())),
    ]
}

/// Any JSON value, nested a little, with hostile strings.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const REGISTRATION_FIELDS: &[&str] = &[
    "redirect_uris",
    "client_name",
    "client_uri",
    "logo_uri",
    "token_endpoint_auth_method",
    "grant_types",
    "response_types",
    "scope",
    "contacts",
    "software_id",
    "software_version",
    "jwks_uri",
    "tos_uri",
    "policy_uri",
];

/// Registration metadata: an object of the RFC 7591 fields (redirect URIs usually a list of
/// hostile strings), sometimes with raw bytes instead of JSON.
fn registration_body() -> impl Strategy<Value = Vec<u8>> {
    let object = (
        prop::collection::vec(text(), 0..4),
        prop::collection::btree_map(
            prop::sample::select(REGISTRATION_FIELDS),
            json_value(),
            0..6,
        ),
    )
        .prop_map(|(uris, fields)| {
            let mut m: serde_json::Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            m.entry("redirect_uris").or_insert(json!(uris));
            serde_json::to_vec(&Value::Object(m)).expect("json")
        });
    prop_oneof![
        5 => object,
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).expect("json")),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// A JWT-shaped string: a header and claims of any JSON (with `alg`, `typ`, `kid` often
/// plausible), and a signature of any length; or three segments of junk.
fn jwt_like() -> impl Strategy<Value = String> {
    let header = (
        prop_oneof![
            Just("EdDSA"),
            Just("none"),
            Just("HS256"),
            Just("RS256"),
            Just("")
        ],
        prop_oneof![Just(Some("at+jwt")), Just(None), Just(Some("JWT"))],
        prop::option::of(text()),
        prop::option::of(json_value()),
    )
        .prop_map(|(alg, typ, kid, crit)| {
            let mut h = json!({ "alg": alg });
            if let Some(t) = typ {
                h["typ"] = json!(t);
            }
            if let Some(k) = kid {
                h["kid"] = json!(k);
            }
            if let Some(c) = crit {
                h["crit"] = c;
            }
            h
        });
    let claims = prop::collection::btree_map(
        prop::sample::select(
            &[
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "nbf",
                "scope",
                "client_id",
                "jti",
            ][..],
        ),
        json_value(),
        0..9,
    );
    let shaped =
        (header, claims, prop::collection::vec(any::<u8>(), 0..80)).prop_map(|(h, c, sig)| {
            let c: serde_json::Map<String, Value> =
                c.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(h.to_string()),
                URL_SAFE_NO_PAD.encode(Value::Object(c).to_string()),
                URL_SAFE_NO_PAD.encode(sig)
            )
        });
    prop_oneof![4 => shaped, 1 => text()]
}

const RFC_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "unsupported_token_type",
    "invalid_token",
    "invalid_redirect_uri",
    "invalid_client_metadata",
    "access_denied",
    "temporarily_unavailable",
];

/// No 5xx; a 4xx from an RFC endpoint carries one of the RFC error codes (a 413 from the
/// body limit and a 429 from the rate limiter may carry none).
async fn rfc_answer(
    res: reqwest::Response,
    input: &dyn std::fmt::Debug,
) -> Result<(), TestCaseError> {
    let status = res.status().as_u16();
    prop_assert!(status < 500, "{status} for {input:?}");
    if (400..500).contains(&status) && status != 413 && status != 429 {
        let body: Value = res.json().await.unwrap_or(Value::Null);
        let code = body["error"].as_str().unwrap_or_default();
        prop_assert!(RFC_ERRORS.contains(&code), "{status} {body} for {input:?}");
    }
    Ok(())
}

fn post(
    app: &TestApp,
    path: &str,
    body: Vec<u8>,
    auth: Option<Vec<u8>>,
    content_type: &str,
) -> reqwest::RequestBuilder {
    let mut req = http()
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body);
    if let Some(a) = auth
        && let Ok(v) = reqwest::header::HeaderValue::from_bytes(&a)
    {
        req = req.header("authorization", v);
    }
    req
}

const TOKEN_FIELDS: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "scope",
    "resource",
    "client_id",
    "client_secret",
];

#[test]
fn token_endpoint_forms_and_basic_credentials_never_get_a_server_error() {
    check(
        (form_body(TOKEN_FIELDS), authorization()),
        |app, (body, auth)| async move {
            let res = post(
                &app,
                "/token",
                body.clone(),
                auth.clone(),
                "application/x-www-form-urlencoded",
            )
            .send()
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
            rfc_answer(
                res,
                &(
                    String::from_utf8_lossy(&body),
                    auth.map(|a| String::from_utf8_lossy(&a).into_owned()),
                ),
            )
            .await
        },
    );
}

#[test]
fn revocation_and_introspection_forms_and_tokens_never_get_a_server_error() {
    let names: &'static [&'static str] =
        &["token", "token_type_hint", "client_id", "client_secret"];
    check(
        (form_body(names), jwt_like(), authorization(), any::<bool>()),
        |app, (body, jwt, auth, as_introspector)| async move {
            let (id, secret) = app.introspector().await;
            // Half the cases present a real resource server's credentials, so the token
            // itself is read, not only the client authentication.
            let auth = if as_introspector {
                Some(latchkey_proto::credentials::encode_basic(&id, &secret).into_bytes())
            } else {
                auth
            };
            let with_jwt = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("token", &jwt)
                .finish()
                .into_bytes();
            for path in ["/introspect", "/revoke"] {
                for body in [body.clone(), with_jwt.clone()] {
                    let res = post(
                        &app,
                        path,
                        body.clone(),
                        auth.clone(),
                        "application/x-www-form-urlencoded",
                    )
                    .send()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    rfc_answer(res, &(path, String::from_utf8_lossy(&body))).await?;
                }
            }
            Ok(())
        },
    );
}

#[test]
fn registration_metadata_never_gets_a_server_error() {
    check(registration_body(), |app, body| async move {
        let res = post(&app, "/register", body.clone(), None, "application/json")
            .send()
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let status = res.status().as_u16();
        if status == 201 {
            // Whatever was accepted reads back as JSON with a client id.
            let v: Value = res
                .json()
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(v["client_id"].is_string(), "{v}");
            return Ok(());
        }
        rfc_answer(res, &String::from_utf8_lossy(&body)).await
    });
}

#[test]
fn authorization_requests_and_session_cookies_never_get_a_server_error() {
    let query = prop::collection::vec(
        (
            prop_oneof![
                4 => prop::sample::select(&[
                    "client_id", "redirect_uri", "response_type", "code_challenge",
                    "code_challenge_method", "state", "scope", "resource",
                ][..]).prop_map(str::to_owned),
                1 => text(),
            ],
            text(),
        ),
        0..9,
    );
    let login = form_body(&["email", "password", "csrf", "decision", "session"]);
    check(
        (query, text(), login, any::<bool>()),
        |app, (query, cookie, login, real_client)| async move {
            let mut pairs = query.clone();
            if real_client {
                // A registered client, so validation goes past the client lookup.
                let id = app.public_client("http://127.0.0.1:9/cb").await;
                pairs.insert(0, ("client_id".into(), id));
            }
            let qs = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            let res = http()
                .get(format!("{}?{qs}", app.url("/authorize")))
                .send()
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(
                res.status().as_u16() < 500,
                "{} for {pairs:?}",
                res.status()
            );
            for path in ["/authorize/login", "/authorize/consent"] {
                let mut req = http()
                    .post(app.url(path))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(login.clone());
                if let Ok(v) =
                    reqwest::header::HeaderValue::from_str(&format!("latchkey_authz={cookie}"))
                {
                    req = req.header("cookie", v);
                }
                let res = req
                    .send()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(
                    res.status().as_u16() < 500,
                    "{} at {path} for {cookie:?}",
                    res.status()
                );
            }
            Ok(())
        },
    );
}

#[test]
fn verify_token_reads_any_jwt_shaped_input_without_an_internal_error() {
    check(
        (jwt_like(), text(), text()),
        |app, (token, audience, scope)| async move {
            let (id, secret) = app.introspector().await;
            let mut grpc = app.grpc().await;
            let mut req = tonic::Request::new(pb::VerifyTokenRequest {
                token: token.clone(),
                audience: audience.clone(),
                required_scopes: vec![scope.clone()],
            });
            req.metadata_mut().insert(
                "authorization",
                latchkey_proto::credentials::encode_basic(&id, &secret)
                    .parse()
                    .map_err(|_| TestCaseError::fail("metadata"))?,
            );
            match grpc.verify_token(req).await {
                Ok(r) => prop_assert!(!r.into_inner().valid, "{token} accepted"),
                Err(status) => prop_assert!(
                    !matches!(status.code(), tonic::Code::Internal | tonic::Code::Unknown),
                    "{status:?} for {token:?} {audience:?} {scope:?}"
                ),
            }
            Ok(())
        },
    );
}
