use crate::common::*;
use latchkey_core::store::ClientStore;
use serde_json::{Value, json};

#[tokio::test]
async fn public_client_gets_no_secret() {
    let app = spawn_app().await;
    let res = app
        .register(json!({"redirect_uris": ["http://localhost:3000/cb"], "token_endpoint_auth_method": "none", "client_name": "Inspector"}))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers().get("cache-control").expect("cc"), "no-store");
    let body: Value = res.json().await.expect("json");
    assert!(body["client_id"].is_string());
    assert!(body.get("client_secret").is_none());
    assert_eq!(body["client_name"], "Inspector");
    assert_eq!(body["grant_types"], json!(["authorization_code"]));
}

#[tokio::test]
async fn confidential_client_secret_is_shown_once_and_only_its_hash_is_stored() {
    let app = spawn_app().await;
    let (id, secret) = app
        .confidential_client(json!({"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "client_secret_post"}))
        .await;
    let stored = app
        .store()
        .await
        .find_client(&id)
        .await
        .expect("db")
        .expect("client");
    let hash = stored.secret_hash.expect("hash");
    assert_ne!(hash, secret);
    assert_eq!(hash, latchkey_core::secret::hash(&secret));
}

#[tokio::test]
async fn allowed_redirect_uris() {
    let app = spawn_app().await;
    for (uri, method) in [
        ("https://app.example.com/cb", "client_secret_basic"),
        ("http://localhost:3000/cb", "none"),
        ("http://127.0.0.1/callback", "none"),
        ("http://[::1]:8080/cb", "none"),
        (
            "cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback",
            "none",
        ),
    ] {
        let res = app
            .register(json!({"redirect_uris": [uri], "token_endpoint_auth_method": method}))
            .await;
        assert_eq!(res.status(), 201, "{uri}");
    }
}

#[tokio::test]
async fn rejected_redirect_uris_get_invalid_redirect_uri() {
    let app = spawn_app().await;
    for (uri, method, why) in [
        ("javascript:alert(1)", "none", "javascript scheme"),
        ("data:text/html,<h1>x</h1>", "none", "data scheme"),
        ("https://app.example.com/cb#frag", "none", "fragment"),
        ("http://app.example.com/cb", "none", "non-loopback http"),
        (
            "cursor://callback",
            "client_secret_basic",
            "private-use scheme on a confidential client",
        ),
        ("not a uri", "none", "not absolute"),
    ] {
        let res = app
            .register(json!({"redirect_uris": [uri], "token_endpoint_auth_method": method}))
            .await;
        assert_eq!(res.status(), 400, "{why}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["error"], "invalid_redirect_uri", "{why}");
    }
}

#[tokio::test]
async fn code_clients_need_a_redirect_uri() {
    let app = spawn_app().await;
    let res = app
        .register(json!({"token_endpoint_auth_method": "none"}))
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "invalid_redirect_uri"
    );
}

#[tokio::test]
async fn bad_metadata_gets_invalid_client_metadata() {
    let app = spawn_app().await;
    let cases: &[(Value, &str)] = &[
        (json!(["not", "an", "object"]), "array body"),
        (
            json!({"redirect_uris": "https://a.example.com/cb"}),
            "redirect_uris not an array",
        ),
        (
            json!({"redirect_uris": ["https://a.example.com/cb"], "grant_types": ["implicit"]}),
            "implicit grant",
        ),
        (
            json!({"grant_types": [], "response_types": []}),
            "no grant at all",
        ),
        (
            json!({"redirect_uris": ["https://a.example.com/cb"], "grant_types": ["password"]}),
            "password grant",
        ),
        (
            json!({"redirect_uris": ["https://a.example.com/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "unsupported auth method",
        ),
        (
            json!({"redirect_uris": ["https://a.example.com/cb"], "scope": "mcp:tools \\x"}),
            "malformed scope",
        ),
        (
            json!({"redirect_uris": ["https://a.example.com/cb"], "response_types": ["token"]}),
            "token response type",
        ),
        (
            json!({"grant_types": ["client_credentials"], "response_types": [], "token_endpoint_auth_method": "none"}),
            "public client_credentials",
        ),
        (
            json!({"redirect_uris": ["https://a.example.com/cb"], "client_name": 42}),
            "client_name not a string",
        ),
    ];
    for (body, why) in cases {
        let res = app.register(body.clone()).await;
        assert_eq!(res.status(), 400, "{why}");
        assert_eq!(
            res.json::<Value>().await.expect("json")["error"],
            "invalid_client_metadata",
            "{why}"
        );
    }
    let res = http()
        .post(app.url("/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "invalid_client_metadata"
    );
}
