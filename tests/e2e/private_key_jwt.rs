//! `private_key_jwt` (RFC 7523 §2.2) end to end, over real HTTP and gRPC:
//! - a ChatGPT-shaped Client ID Metadata Document (RS256, `jwks_uri` on the local HTTPS
//!   document server) completes the code flow and refreshes, signing at `/token`, and revokes
//!   at `/revoke`; a document that offers `none` beside it is a public client, and ChatGPT's
//!   (which prefers `private_key_jwt` and offers `none` too) may sign or not;
//! - an operator's client with keys gets `client_credentials` tokens and introspects at
//!   `/introspect`;
//! - a self-registered client registers its keys at `/register`;
//! - an assertion used at one replica is refused at the other (one database);
//! - the metadata advertises the method and its algorithms.

use crate::cimd::{Answer, DocumentServer, app_for};
use crate::common::*;
use latchkey_core::client_assertion::JWT_BEARER;
use latchkey_core::testing_keys::{TestKey, claims, jwks};
use serde_json::{Value, json};

const CHATGPT_REDIRECT: &str = "https://chatgpt.example/connector_platform_oauth_redirect";

/// A ChatGPT-shaped document: a web redirect, and private_key_jwt with its keys at a URL.
fn chatgpt(jwks_uri: &str, methods: &[&str]) -> Value {
    json!({
        "client_name": "ChatGPT",
        "client_uri": "https://chatgpt.example",
        "redirect_uris": [CHATGPT_REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": methods[0],
        "token_endpoint_auth_methods_supported": methods,
        "jwks_uri": jwks_uri,
    })
}

/// `client_assertion_type` and a fresh `client_assertion` from `client_id`, signed by `key`,
/// addressed to the app's issuer.
fn assertion(app: &TestApp, key: &TestKey, client_id: &str) -> [(&'static str, String); 2] {
    let now = {
        use latchkey_core::clock::Clock;
        app.clock.now().timestamp()
    };
    [
        ("client_assertion_type", JWT_BEARER.to_owned()),
        (
            "client_assertion",
            key.sign(&claims(client_id, &app.settings.issuer, now)),
        ),
    ]
}

fn form<'a>(
    pairs: &'a [(&'a str, &'a str)],
    signed: &'a [(&'static str, String); 2],
) -> Vec<(&'a str, &'a str)> {
    let mut all: Vec<(&str, &str)> = pairs.to_vec();
    all.extend(signed.iter().map(|(k, v)| (*k, v.as_str())));
    all
}

async fn post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let res = http()
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .expect("POST");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_chatgpt_shaped_document_client_signs_at_the_token_and_revocation_endpoints() {
    let server = DocumentServer::start().await;
    let key = TestKey::rs256();
    server.answer("/jwks.json", Answer::json(&jwks(&[&key])));
    let client_id = server.serve(
        "/chatgpt/client.json",
        chatgpt(&server.url("/jwks.json"), &["private_key_jwt"]),
    );
    let app = app_for(&server, |_| {}).await;
    let meta: Value = http()
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    for field in [
        "token_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
    ] {
        assert!(
            meta[field]
                .as_array()
                .expect(field)
                .contains(&json!("private_key_jwt")),
            "{field}: {meta}"
        );
    }
    assert_eq!(
        meta["token_endpoint_auth_signing_alg_values_supported"],
        json!(["EdDSA", "ES256", "RS256", "PS256"])
    );

    let email = "chatgpt-user@example.com";
    app.add_user(email).await;
    let p = pkce();
    let q = code_flow(&app, &auth_params(&client_id, CHATGPT_REDIRECT, &p), email).await;
    let code = q["code"].clone();
    let token_form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CHATGPT_REDIRECT),
        ("code_verifier", p.verifier.as_str()),
    ];

    // Without an assertion the client cannot pass as public, and the code stays unspent.
    let mut unsigned = token_form.to_vec();
    unsigned.push(("client_id", client_id.as_str()));
    let (status, body) = post(&app, "/token", &unsigned).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    // Signed by a key the client does not publish.
    let stranger = TestKey::rs256().with_kid("not-theirs");
    let signed = assertion(&app, &TestKey::es256().with_kid(&stranger.kid), &client_id);
    let (status, body) = post(&app, "/token", &form(&token_form, &signed)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );

    let signed = assertion(&app, &key, &client_id);
    let (status, tokens) = post(&app, "/token", &form(&token_form, &signed)).await;
    assert_eq!(status, 200, "{tokens}");
    let (_, access) = jwt_parts(tokens["access_token"].as_str().expect("access token"));
    assert_eq!(access["client_id"], client_id.as_str());

    // The same assertion again is a replay.
    let rt = tokens["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
    ];
    let (status, body) = post(&app, "/token", &form(&refresh_form, &signed)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("jti"),
        "{body}"
    );
    let (status, refreshed) = post(
        &app,
        "/token",
        &form(&refresh_form, &assertion(&app, &key, &client_id)),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");

    // Revocation with an assertion; the refresh token stops working.
    let new_rt = refreshed["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    let (status, _) = post(
        &app,
        "/revoke",
        &form(
            &[("token", new_rt.as_str())],
            &assertion(&app, &key, &client_id),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = post(
        &app,
        "/token",
        &form(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", new_rt.as_str()),
            ],
            &assertion(&app, &key, &client_id),
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}

#[tokio::test]
async fn a_document_offering_none_beside_private_key_jwt_is_a_public_client() {
    let server = DocumentServer::start().await;
    let client_id = server.serve(
        "/chatgpt/both.json",
        chatgpt(&server.url("/jwks.json"), &["none", "private_key_jwt"]),
    );
    let app = app_for(&server, |_| {}).await;
    let email = "both@example.com";
    app.add_user(email).await;
    let p = pkce();
    let q = code_flow(&app, &auth_params(&client_id, CHATGPT_REDIRECT, &p), email).await;
    let (status, tokens) = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
            ("redirect_uri", CHATGPT_REDIRECT),
            ("code_verifier", p.verifier.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .await;
    assert_eq!(status, 200, "none was chosen: {tokens}");
}

#[tokio::test]
async fn chatgpts_document_preferring_private_key_jwt_with_none_beside_it_may_sign() {
    // ChatGPT's published document: private_key_jwt first, none beside it, RS256 named.
    // Since this server's metadata lists private_key_jwt, ChatGPT signs at /token.
    let server = DocumentServer::start().await;
    let key = TestKey::rs256();
    server.answer("/jwks.json", Answer::json(&jwks(&[&key])));
    let mut doc = chatgpt(&server.url("/jwks.json"), &["private_key_jwt", "none"]);
    doc["token_endpoint_auth_signing_alg"] = json!("RS256");
    let client_id = server.serve("/chatgpt/preferring.json", doc);
    let app = app_for(&server, |_| {}).await;
    let email = "prefers-signing@example.com";
    app.add_user(email).await;
    for signs in [true, false] {
        let p = pkce();
        let q = code_flow(&app, &auth_params(&client_id, CHATGPT_REDIRECT, &p), email).await;
        let mut token_form = vec![
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
            ("redirect_uri", CHATGPT_REDIRECT),
            ("code_verifier", p.verifier.as_str()),
        ];
        let signed = assertion(&app, &key, &client_id);
        if !signs {
            token_form.push(("client_id", client_id.as_str()));
        }
        let body = if signs {
            form(&token_form, &signed)
        } else {
            token_form
        };
        let (status, tokens) = post(&app, "/token", &body).await;
        assert_eq!(status, 200, "signed: {signs}: {tokens}");
    }
}

#[tokio::test]
async fn an_operator_client_with_keys_gets_client_credentials_and_introspects() {
    let app = spawn_app().await;
    let key = TestKey::eddsa();
    let reg = app
        .core()
        .register_operator_client(
            &json!({
                "client_name": "signing resource server",
                "grant_types": ["client_credentials"],
                "response_types": [],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": jwks(&[&key]),
            })
            .to_string(),
            &[RESOURCE.to_owned()],
            &[RESOURCE.to_owned()],
        )
        .await
        .expect("an operator client with keys");
    assert!(
        reg.client_secret.is_none(),
        "no secret for a client that signs"
    );
    let id = reg.client.id;

    let (status, tokens) = post(
        &app,
        "/token",
        &form(
            &[("grant_type", "client_credentials"), ("resource", RESOURCE)],
            &assertion(&app, &key, &id),
        ),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["access_token"].as_str().expect("token");
    let (status, answer) = post(
        &app,
        "/introspect",
        &form(&[("token", token)], &assertion(&app, &key, &id)),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["client_id"], id.as_str());

    // A wrong audience at /introspect is refused like a wrong secret.
    let now = {
        use latchkey_core::clock::Clock;
        app.clock.now().timestamp()
    };
    let mut wrong = claims(&id, "https://elsewhere.example", now);
    wrong["jti"] = json!("once");
    let bad = key.sign(&wrong);
    let res = http()
        .post(app.url("/introspect"))
        .form(&[
            ("token", token),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", bad.as_str()),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn a_self_registered_client_registers_its_keys_and_bad_keys_are_refused() {
    let app = spawn_app().await;
    let key = TestKey::es256();
    let res = app
        .register(json!({
            "client_name": "keyed",
            "redirect_uris": ["https://keyed.example/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": jwks(&[&key]),
        }))
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    assert!(body.get("client_secret").is_none(), "{body}");
    assert_eq!(body["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(body["jwks"]["keys"][0]["kid"], key.kid.as_str());

    let cases = [
        (
            "both jwks and jwks_uri",
            json!({"jwks": jwks(&[&key]), "jwks_uri": "https://keyed.example/jwks"}),
        ),
        ("no keys", json!({})),
        (
            "jwks_uri over http",
            json!({"jwks_uri": "http://keyed.example/jwks"}),
        ),
        ("a private key", {
            let mut set = jwks(&[&key]);
            set["keys"][0]["d"] = json!("AAAA");
            json!({ "jwks": set })
        }),
        (
            "a 1024-bit RSA key",
            json!({"jwks": jwks(&[&TestKey::rs256_1024()])}),
        ),
    ];
    for (why, extra) in cases {
        let mut meta = json!({
            "client_name": "keyed",
            "redirect_uris": ["https://keyed.example/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
        });
        for (k, v) in extra.as_object().expect("object") {
            meta[k] = v.clone();
        }
        let res = app.register(meta).await;
        assert_eq!(res.status(), 400, "{why}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["error"], "invalid_client_metadata", "{why}: {body}");
    }
    let res = app
        .register(json!({
            "client_name": "secret with keys",
            "redirect_uris": ["https://keyed.example/cb"],
            "jwks": jwks(&[&key]),
        }))
        .await;
    assert_eq!(res.status(), 400, "keys are for private_key_jwt only");
}

#[tokio::test]
async fn an_assertion_used_at_one_replica_is_refused_at_the_other() {
    let app = spawn_app().await;
    let peer = app.peer().await;
    let key = TestKey::ps256();
    let reg = app
        .core()
        .register_operator_client(
            &json!({
                "client_name": "replayed",
                "grant_types": ["client_credentials"],
                "response_types": [],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": jwks(&[&key]),
            })
            .to_string(),
            &[RESOURCE.to_owned()],
            &[],
        )
        .await
        .expect("client");
    let signed = assertion(&app, &key, &reg.client.id);
    let request = [("grant_type", "client_credentials"), ("resource", RESOURCE)];
    let (status, body) = post(&app, "/token", &form(&request, &signed)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&peer, "/token", &form(&request, &signed)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
}
