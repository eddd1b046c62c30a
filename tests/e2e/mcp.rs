//! An MCP client's whole journey against the example MCP server: a 401, discovery through
//! RFC 9728 and RFC 8414, registration, login and consent, a token, and a tool call.

use crate::common::*;
use latchkey_resource_server::{Config, Mode, Verifier};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpListener;

struct McpServer {
    url: String,
    resource: String,
    verifier: Verifier,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn mcp_server(app: &TestApp, mode: Mode) -> McpServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let origin = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let resource = format!("{origin}/mcp");
    let (id, secret) = app.resource_server(&[resource.as_str()]).await;
    let config = Config::new(&resource, &app.base, &app.grpc_url, &id, &secret)
        .mode(mode)
        .scopes_supported(&["mcp:tools"]);
    let verifier = Verifier::connect(config).await.expect("verifier");
    let router = latchkey_example_mcp::router(&verifier, Vec::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    McpServer {
        url: resource.clone(),
        resource,
        verifier,
        stop,
    }
}

/// A JSON-RPC call over Streamable HTTP; the answer may come as JSON or as an SSE stream.
async fn rpc(
    url: &str,
    token: Option<&str>,
    session: Option<&str>,
    body: Value,
) -> (
    reqwest::StatusCode,
    reqwest::header::HeaderMap,
    Option<Value>,
) {
    let mut req = http()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let res = req.json(&body).send().await.expect("POST /mcp");
    let status = res.status();
    let headers = res.headers().clone();
    let sse = headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    let text = tokio::time::timeout(Duration::from_secs(5), res.text())
        .await
        .expect("answer in time")
        .unwrap_or_default();
    let value = if sse {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some())
    } else {
        serde_json::from_str(&text).ok()
    };
    (status, headers, value)
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}})
}

/// `key="value"` from a challenge.
fn param(challenge: &str, key: &str) -> Option<String> {
    let start = challenge.find(&format!("{key}=\""))? + key.len() + 2;
    let end = challenge[start..].find('"')? + start;
    Some(challenge[start..end].to_owned())
}

/// Discovery, registration and the browser flow, as a client starting from a 401 would.
async fn obtain_token(app: &TestApp, server: &McpServer, scope: &str) -> String {
    let (status, headers, _) = rpc(&server.url, None, None, initialize()).await;
    assert_eq!(status, 401);
    let challenge = headers["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let metadata_url =
        param(&challenge, "resource_metadata").expect("resource_metadata in the challenge");
    let prm: Value = http()
        .get(&metadata_url)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(prm["resource"], server.resource.as_str());
    let issuer = prm["authorization_servers"][0]
        .as_str()
        .expect("authorization server")
        .to_owned();
    let asm: Value = http()
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let redirect = "http://127.0.0.1:7777/callback";
    let reg: Value = http()
        .post(asm["registration_endpoint"].as_str().expect("registration endpoint"))
        .json(&json!({"client_name": "e2e MCP client", "redirect_uris": [redirect], "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let client_id = reg["client_id"].as_str().expect("client_id").to_owned();
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.add_user(&email).await;
    let p = pkce();
    let params = vec![
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", redirect),
        ("code_challenge", p.challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "s"),
        ("scope", scope),
        ("resource", server.resource.as_str()),
    ];
    let q = code_flow(app, &params, &email).await;
    let (status, t) = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", p.verifier.as_str()),
            ("client_id", client_id.as_str()),
            ("resource", server.resource.as_str()),
        ])
        .await;
    assert_eq!(status, 200, "{t}");
    t["access_token"].as_str().expect("access token").to_owned()
}

#[tokio::test]
async fn an_mcp_client_goes_from_401_to_a_tool_call() {
    let app = spawn_app().await;
    let server = mcp_server(&app, Mode::Remote).await;
    let token = obtain_token(&app, &server, "mcp:tools").await;
    let (status, headers, init) = rpc(&server.url, Some(&token), None, initialize()).await;
    assert_eq!(status, 200);
    assert!(init.expect("initialize result")["result"]["serverInfo"].is_object());
    let session = headers
        .get("mcp-session-id")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let (status, _, _) = rpc(
        &server.url,
        Some(&token),
        session.as_deref(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert!(status.is_success());
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}});
    let (status, _, answer) = rpc(&server.url, Some(&token), session.as_deref(), call).await;
    assert_eq!(status, 200);
    let answer = answer.expect("tool result");
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .expect("text content");
    let who: Value = serde_json::from_str(text).expect("json");
    assert!(who["sub"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(who["scopes"], json!(["mcp:tools"]));
    let _ = server.stop.send(());
}

#[tokio::test]
async fn a_token_without_the_needed_scope_gets_403_naming_it() {
    let app = spawn_app().await;
    let server = mcp_server(&app, Mode::Remote).await;
    let token = obtain_token(&app, &server, "mcp:prompts").await;
    let (status, headers, _) = rpc(&server.url, Some(&token), None, initialize()).await;
    assert_eq!(status, 403);
    let challenge = headers["www-authenticate"].to_str().expect("ascii");
    assert_eq!(
        param(challenge, "error").as_deref(),
        Some("insufficient_scope")
    );
    assert_eq!(param(challenge, "scope").as_deref(), Some("mcp:tools"));
    assert!(param(challenge, "resource_metadata").is_some());
    let _ = server.stop.send(());
}

/// A local verifier knows every revocation in force as soon as it is connected: a token
/// revoked before it started fails on its very first check.
#[tokio::test]
async fn a_local_verifier_knows_earlier_revocations_once_connected() {
    let app = spawn_app().await;
    let probe = mcp_server(&app, Mode::Remote).await;
    let token = obtain_token(&app, &probe, "mcp:tools").await;
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("json");
    let client_id = claims["client_id"].as_str().expect("client_id");
    let res = http()
        .post(app.url("/revoke"))
        .form(&[("token", token.as_str()), ("client_id", client_id)])
        .send()
        .await
        .expect("revoke");
    assert_eq!(res.status(), 200);
    let (id, secret) = app.resource_server(&[probe.resource.as_str()]).await;
    let local = Verifier::connect(
        Config::new(&probe.resource, &app.base, &app.grpc_url, &id, &secret).mode(Mode::Local),
    )
    .await
    .expect("local verifier");
    assert_eq!(
        local.verify(&token, &[]).await,
        Err(latchkey_resource_server::Rejection::InvalidToken(
            "token revoked".into()
        ))
    );
    let _ = probe.stop.send(());
}

#[tokio::test]
async fn local_verification_follows_revocations_and_refuses_other_audiences() {
    let app = spawn_app().await;
    let server = mcp_server(&app, Mode::Local).await;
    let token = obtain_token(&app, &server, "mcp:tools").await;
    let scopes = vec!["mcp:tools".to_owned()];
    let claims = server
        .verifier
        .verify(&token, &scopes)
        .await
        .expect("valid locally");
    assert_eq!(claims.aud, server.resource);
    // A token for another resource is useless here.
    let f = flow(&app).await;
    let foreign = f.exchange(&app).await["access_token"]
        .as_str()
        .expect("at")
        .to_owned();
    assert!(matches!(
        server.verifier.verify(&foreign, &[]).await,
        Err(latchkey_resource_server::Rejection::InvalidToken(_))
    ));
    // The token only in the Authorization header: not in the query.
    let res = http()
        .post(format!("{}?access_token={token}", server.url))
        .json(&initialize())
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 401);
    // Revocation reaches the local verifier through WatchRevocations.
    let sub = claims.sub.clone();
    let email = app
        .core()
        .list_users()
        .await
        .expect("users")
        .into_iter()
        .find(|u| u.id.to_string() == sub)
        .expect("user")
        .email;
    app.core().disable_user(&email).await.expect("disable");
    let mut revoked = false;
    for _ in 0..40 {
        if server.verifier.verify(&token, &scopes).await.is_err() {
            revoked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        revoked,
        "the local verifier learned of the revocation within 2 s"
    );
    let _ = server.stop.send(());
}

/// Two `Authorization` headers are a malformed request (RFC 6750 §3.1 `invalid_request`),
/// not a chance to slip a second token past the check.
#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let app = spawn_app().await;
    let server = mcp_server(&app, Mode::Remote).await;
    let token = obtain_token(&app, &server, "mcp:tools").await;
    let res = http()
        .post(&server.url)
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", "Bearer forged")
        .json(&initialize())
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(
        param(&challenge, "error").as_deref(),
        Some("invalid_request")
    );
    assert!(param(&challenge, "resource_metadata").is_some());
    let _ = server.stop.send(());
}

/// What a browser at `origin` is allowed to read of `res`: the CORS headers of the answer.
fn cors_headers(res: &reqwest::Response) -> (Option<String>, String) {
    let get = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    (
        get("access-control-allow-origin"),
        get("access-control-expose-headers").unwrap_or_default(),
    )
}

/// A browser-based MCP client can read the metadata and the 401 (its `WWW-Authenticate`), and
/// its preflight is answered before any token is asked for; an operator can narrow the origins.
#[tokio::test]
async fn a_browser_client_can_read_the_metadata_and_the_challenge_from_an_allowed_origin() {
    let app = spawn_app().await;
    let server = mcp_server(&app, Mode::Remote).await;
    let origin = "https://inspector.example";
    let preflight = http()
        .request(reqwest::Method::OPTIONS, &server.url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, mcp-protocol-version, mcp-session-id",
        )
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    for h in ["authorization", "mcp-protocol-version", "mcp-session-id"] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    let unauthorized = http()
        .post(&server.url)
        .header("origin", origin)
        .json(&initialize())
        .send()
        .await
        .expect("post");
    assert_eq!(unauthorized.status(), 401);
    let (allow, expose) = cors_headers(&unauthorized);
    assert_eq!(allow.as_deref(), Some("*"));
    assert!(expose.contains("www-authenticate"), "{expose}");
    assert!(expose.contains("mcp-session-id"), "{expose}");
    let metadata = http()
        .get(server.verifier.metadata_url())
        .header("origin", origin)
        .send()
        .await
        .expect("metadata");
    assert_eq!(metadata.status(), 200);
    assert_eq!(cors_headers(&metadata).0.as_deref(), Some("*"));
    let _ = server.stop.send(());

    // Narrowed to one origin: another reads nothing.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let resource = format!(
        "http://127.0.0.1:{}/mcp",
        listener.local_addr().expect("addr").port()
    );
    let (id, secret) = app.resource_server(&[resource.as_str()]).await;
    let config = Config::new(&resource, &app.base, &app.grpc_url, &id, &secret)
        .cors_origins(&["https://allowed.example"]);
    let verifier = Verifier::connect(config).await.expect("verifier");
    let router = latchkey_example_mcp::router(&verifier, Vec::new());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    for (from, readable) in [
        ("https://allowed.example", true),
        ("https://other.example", false),
    ] {
        let res = http()
            .post(&resource)
            .header("origin", from)
            .json(&initialize())
            .send()
            .await
            .expect("post");
        assert_eq!(res.status(), 401);
        let (allow, _) = cors_headers(&res);
        assert_eq!(allow.is_some(), readable, "{from}: {allow:?}");
        if readable {
            assert_eq!(allow.as_deref(), Some(from));
        }
    }
}
