use crate::common::*;
use serde_json::Value;

#[tokio::test]
async fn the_metadata_carries_the_issuer_and_only_what_is_implemented() {
    let app = spawn_app().await;
    let a: Value = http()
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    // No OpenID Provider metadata while no ID token is issued: a client that validates it as
    // such would refuse the RFC 8414 document, and moves on past a 404.
    let oidc = http()
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("get");
    assert_eq!(oidc.status(), 404);
    assert_eq!(a["issuer"], Value::String(app.base.clone()));
    assert_eq!(
        a["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        a["authorization_response_iss_parameter_supported"],
        Value::Bool(true)
    );
    assert_eq!(a["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(a["token_endpoint"], Value::String(app.url("/token")));
    assert_eq!(
        a["registration_endpoint"],
        Value::String(app.url("/register"))
    );
    let scopes = a["scopes_supported"].as_array().expect("scopes");
    for s in [
        "mcp:tools",
        "mcp:resources",
        "mcp:prompts",
        "offline_access",
    ] {
        assert!(scopes.iter().any(|x| x == s), "{s} advertised");
    }
    let methods = a["token_endpoint_auth_methods_supported"]
        .as_array()
        .expect("methods");
    assert_eq!(
        methods,
        &[
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none"
        ]
    );
}

#[tokio::test]
async fn jwks_publishes_the_key_that_signs_access_tokens() {
    let app = spawn_app().await;
    let (cid, secret) = app.introspector().await;
    let (status, body) = app
        .token_with(
            http()
                .post(app.url("/token"))
                .basic_auth(&cid, Some(&secret))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (header, _) = jwt_parts(body["access_token"].as_str().expect("token"));
    let jwks: Value = http()
        .get(app.url("/jwks.json"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["kid"], header["kid"]);
}

#[tokio::test]
async fn cors_preflight_allows_browser_clients_and_the_mcp_header() {
    let app = spawn_app().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/register",
        "/token",
        "/revoke",
    ] {
        let res = http()
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("Origin", "http://localhost:6274")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "content-type,mcp-protocol-version",
            )
            .send()
            .await
            .expect("preflight");
        assert!(res.status().is_success(), "{path}: {}", res.status());
        let allow = res
            .headers()
            .get("access-control-allow-headers")
            .expect("allow-headers")
            .to_str()
            .expect("ascii")
            .to_lowercase();
        assert!(allow.contains("mcp-protocol-version"), "{path}: {allow}");
        assert!(
            res.headers().get("access-control-allow-origin").is_some(),
            "{path}"
        );
    }
}

#[tokio::test]
async fn health_answers_when_the_auth_service_is_up() {
    let app = spawn_app().await;
    let res = http().get(app.url("/health")).send().await.expect("get");
    assert_eq!(res.status(), 200);
}
