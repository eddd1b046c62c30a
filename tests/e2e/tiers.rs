//! Who may get a token: client tiers. No anonymous party gets a token that a protected
//! resource accepts; a token needs a user who signed in and consented, or an operator who
//! provisioned that client for that resource.

use crate::common::*;
use latchkey_core::store::ClientStore;
use latchkey_proto::v1 as pb;
use latchkey_resource_server::{Bearer, Config, Mode, Subject, Verifier};
use serde_json::{Value, json};

const OTHER: &str = "https://other.example.com/mcp";

async fn register_with(app: &TestApp, metadata: Value, bearer: Option<&str>) -> reqwest::Response {
    let mut req = http().post(app.url("/register")).json(&metadata);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("POST /register")
}

async fn client_credentials(
    app: &TestApp,
    id: &str,
    secret: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    app.token_with(
        http()
            .post(app.url("/token"))
            .basic_auth(id, Some(secret))
            .form(&form),
    )
    .await
}

/// An app with two protected resources registered, RESOURCE the default.
async fn app_with_resources() -> TestApp {
    let app = spawn_app().await;
    app.core()
        .add_resource(RESOURCE, None, true)
        .await
        .expect("resource");
    app.core()
        .add_resource(OTHER, Some("mcp:tools"), false)
        .await
        .expect("resource");
    app
}

async fn initial_token(app: &TestApp, audiences: &[&str], scope: Option<&str>) -> String {
    let audiences: Vec<String> = audiences.iter().map(|a| a.to_string()).collect();
    app.core()
        .issue_initial_access_token(&audiences, scope, 3600)
        .await
        .expect("initial access token")
        .token
}

#[tokio::test]
async fn a_self_registered_client_gets_no_token_without_a_user() {
    let app = app_with_resources().await;
    // It asked for both kinds: it keeps the user flow, and the response says so.
    let res = register_with(
        &app,
        json!({
            "redirect_uris": ["https://app.example.com/cb"],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        }),
        None,
    )
    .await;
    assert_eq!(res.status(), 201);
    let reg: Value = res.json().await.expect("json");
    assert_eq!(
        reg["grant_types"],
        json!(["authorization_code", "refresh_token"]),
        "RFC 7591 §2: the server replaced the requested grants"
    );
    let (id, secret) = (
        reg["client_id"].as_str().expect("id"),
        reg["client_secret"].as_str().expect("secret"),
    );
    for extra in [
        vec![],
        vec![("resource", RESOURCE)],
        vec![("resource", OTHER)],
    ] {
        let (s, body) = client_credentials(&app, id, secret, &extra).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (400, Some("unauthorized_client")),
            "{extra:?}: {body}"
        );
    }
    // It asked only for a grant without a user: nothing usable would be left.
    let res = register_with(
        &app,
        json!({"grant_types": ["client_credentials"], "response_types": []}),
        None,
    )
    .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client_metadata");
    assert!(
        body["error_description"]
            .as_str()
            .expect("description")
            .contains("initial access token"),
        "{body}"
    );
    // The user flow still works for self-registered public clients, exactly as before.
    let f = flow(&app).await;
    let t = f.exchange(&app).await;
    let (_, claims) = jwt_parts(t["access_token"].as_str().expect("at"));
    assert_ne!(claims["sub"], claims["client_id"], "a user's token");
}

#[tokio::test]
async fn an_operator_client_gets_tokens_only_for_its_listed_resources_and_scopes() {
    let app = app_with_resources().await;
    let (id, secret) = app
        .operator_client(
            &[RESOURCE],
            Some(json!({"grant_types": ["client_credentials"], "response_types": [], "scope": "mcp:tools mcp:prompts"})),
        )
        .await;
    let (s, body) = client_credentials(&app, &id, &secret, &[]).await;
    assert_eq!(s, 200, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().expect("at"));
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(
        claims["sub"],
        id.as_str(),
        "RFC 9068 §2.2: sub is the client"
    );
    assert_eq!(claims["scope"], "mcp:prompts mcp:tools");
    for (extra, status, code, why) in [
        (
            vec![("resource", OTHER)],
            400,
            "invalid_target",
            "a registered resource not listed on the client",
        ),
        (
            vec![("resource", "https://unknown.example.com/mcp")],
            400,
            "invalid_target",
            "an unknown resource",
        ),
        (
            vec![("scope", "mcp:resources")],
            400,
            "invalid_scope",
            "a scope not listed on the client",
        ),
        (
            vec![("scope", "offline_access")],
            400,
            "invalid_scope",
            "no refresh without a user",
        ),
    ] {
        let (s, body) = client_credentials(&app, &id, &secret, &extra).await;
        assert_eq!((s, body["error"].as_str()), (status, Some(code)), "{why}");
    }
    // The operator can never list a resource this server does not know.
    let err = app
        .core()
        .issue_initial_access_token(&[RESOURCE.into()], None, i64::MAX)
        .await
        .expect_err("no token lives that long");
    assert_eq!(err.code(), "invalid_request");
    let err = app
        .core()
        .register_operator_client(
            &json!({"grant_types": ["client_credentials"], "response_types": []}).to_string(),
            &["https://unknown.example.com/mcp".into()],
            &[],
        )
        .await
        .expect_err("unknown audience");
    assert_eq!(err.code(), "invalid_target");
}

#[tokio::test]
async fn an_initial_access_token_allows_exactly_one_operator_registration() {
    let app = app_with_resources().await;
    let token = initial_token(&app, &[OTHER], Some("mcp:tools")).await;
    let metadata = json!({"client_name": "batch", "grant_types": ["client_credentials"], "response_types": []});
    // Asking for more than the token allows is refused, and spends nothing.
    let res = register_with(
        &app,
        json!({"grant_types": ["client_credentials"], "response_types": [], "scope": "mcp:prompts"}),
        Some(&token),
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = register_with(&app, metadata.clone(), Some(&token)).await;
    assert_eq!(res.status(), 201);
    let reg: Value = res.json().await.expect("json");
    assert_eq!(reg["grant_types"], json!(["client_credentials"]));
    assert_eq!(reg["scope"], "mcp:tools");
    let id = reg["client_id"].as_str().expect("id");
    let secret = reg["client_secret"].as_str().expect("secret");
    assert_eq!(
        reg["client_secret_expires_at"], 0,
        "an operator client lives on"
    );
    let (s, body) = client_credentials(&app, id, secret, &[]).await;
    assert_eq!(s, 200, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().expect("at"));
    assert_eq!(claims["aud"], OTHER);
    let (s, _) = client_credentials(&app, id, secret, &[("resource", RESOURCE)]).await;
    assert_eq!(s, 400, "only the token's resources");
    let client = app
        .store()
        .await
        .find_client(id)
        .await
        .expect("find")
        .expect("client");
    assert_eq!(client.tier.as_str(), "operator");

    // Used, unknown, expired, or not a bearer token: 401 invalid_token with a Bearer challenge.
    let expired = "expired-initial-access-token";
    let now = chrono::Utc::now();
    app.store()
        .await
        .insert_initial_access_token(&latchkey_core::model::InitialAccessToken {
            token_hash: latchkey_core::secret::hash(expired),
            audiences: vec![RESOURCE.into()],
            scope: None,
            created_at: now - chrono::Duration::hours(2),
            expires_at: now - chrono::Duration::hours(1),
            used_at: None,
        })
        .await
        .expect("insert");
    for (bearer, why) in [
        (token.as_str(), "used"),
        ("no-such-token", "unknown"),
        (expired, "expired"),
    ] {
        let res = register_with(&app, metadata.clone(), Some(bearer)).await;
        assert_eq!(res.status(), 401, "{why}");
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\"",
            "{why}"
        );
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["error"], "invalid_token", "{why}");
    }
    let res = http()
        .post(app.url("/register"))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .json(&metadata)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 401, "another scheme");
}

#[tokio::test]
async fn two_registrations_racing_for_one_initial_access_token_make_one_client() {
    let app = app_with_resources().await;
    let token = initial_token(&app, &[RESOURCE], None).await;
    let metadata = json!({"grant_types": ["client_credentials"], "response_types": []});
    let attempts = (0..8).map(|_| register_with(&app, metadata.clone(), Some(&token)));
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        7,
        "{statuses:?}"
    );
    let operators = app
        .store()
        .await
        .list_clients()
        .await
        .expect("list")
        .into_iter()
        .filter(|c| c.is_operator())
        .count();
    assert_eq!(operators, 1);
}

#[tokio::test]
async fn the_registration_policy_can_require_an_initial_access_token_or_turn_registration_off() {
    let app = spawn_app_with(|s| {
        s.registration = latchkey::config::RegistrationSetting::InitialAccessToken
    })
    .await;
    let public =
        json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"});
    let res = register_with(&app, public.clone(), None).await;
    assert_eq!(res.status(), 401);
    // RFC 6750 §3.1: no credential at all, no error code in the challenge.
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "invalid_token"
    );
    let token = initial_token(&app, &[RESOURCE], None).await;
    let res = register_with(&app, public.clone(), Some(&token)).await;
    assert_eq!(res.status(), 201);

    let off = spawn_app_with(|s| s.registration = latchkey::config::RegistrationSetting::Off).await;
    let token = initial_token(&off, &[RESOURCE], None).await;
    for bearer in [None, Some(token.as_str())] {
        let res = register_with(&off, public.clone(), bearer).await;
        assert_eq!(res.status(), 403, "{bearer:?}");
        assert_eq!(
            res.json::<Value>().await.expect("json")["error"],
            "access_denied"
        );
    }
    let meta: Value = http()
        .get(off.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(
        meta.get("registration_endpoint").is_none(),
        "RFC 8414: no registration endpoint advertised: {meta}"
    );
}

#[tokio::test]
async fn errors_before_sign_in_go_back_at_once_only_to_operator_clients() {
    let app = spawn_app().await;
    let redirect = "https://evil.example/cb";
    let p = pkce();
    let broken = |client_id: &str| -> Vec<(String, String)> {
        auth_params(client_id, redirect, &p)
            .into_iter()
            .filter(|(k, _)| *k != "code_challenge")
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    // A self-registered client: a page that names the host, and no redirect.
    let res = app
        .register(json!({"redirect_uris": [redirect], "client_name": "Totally Legit"}))
        .await;
    let dynamic = res.json::<Value>().await.expect("json")["client_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let params = broken(&dynamic);
    let res = browser()
        .get(app.url("/authorize"))
        .query(&params)
        .send()
        .await
        .expect("get");
    let (link, q) = notice_params(res).await;
    assert!(link.starts_with(redirect), "{link}");
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["state"], "xyz-state");
    assert_eq!(q["iss"], app.base);
    // An operator's client is trusted: the error goes back at once.
    let (operator, _) = app
        .operator_client(&[], Some(json!({"redirect_uris": [redirect]})))
        .await;
    let res = browser()
        .get(app.url("/authorize"))
        .query(&broken(&operator))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 303);
    let (loc, q) = location_params(&res);
    assert!(loc.starts_with(redirect));
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["state"], "xyz-state");
    assert_eq!(q["iss"], app.base);
    // A client registered with an initial access token is an operator's, but its redirect
    // URIs are its own choice: the user still chooses.
    let token = initial_token(&app, &[RESOURCE], None).await;
    let res = register_with(
        &app,
        json!({"redirect_uris": [redirect], "token_endpoint_auth_method": "none"}),
        Some(&token),
    )
    .await;
    assert_eq!(res.status(), 201);
    let invited = res.json::<Value>().await.expect("json")["client_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let res = browser()
        .get(app.url("/authorize"))
        .query(&broken(&invited))
        .send()
        .await
        .expect("get");
    assert_eq!(notice_params(res).await.1["error"], "invalid_request");
}

#[tokio::test]
async fn the_notice_page_names_the_host_and_escapes_what_the_client_chose() {
    let app = spawn_app().await;
    let redirect = "https://evil.example/cb?a=1&b=\"2\"";
    let res = app
        .register(json!({"redirect_uris": [redirect], "client_name": "<script>alert(1)</script>"}))
        .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.expect("json")["client_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let res = browser()
        .get(app.url("/authorize"))
        .query(&[
            ("client_id", id.as_str()),
            ("redirect_uri", redirect),
            ("response_type", "token"),
        ])
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let html = res.text().await.expect("html");
    assert!(!html.contains("<script>alert"), "escaped");
    assert!(html.contains("evil.example"), "the host is named");
}

#[tokio::test]
async fn a_used_code_presented_by_another_client_does_not_revoke_the_grant() {
    let app = spawn_app().await;
    let f = flow(&app).await;
    let first = f.exchange(&app).await;
    let attacker = app.public_client("http://127.0.0.1:7777/callback").await;
    let mut form = f.exchange_form();
    form.retain(|(k, _)| *k != "client_id");
    form.push(("client_id", attacker.as_str()));
    let (s, body) = app.token(&form).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    // The rightful client's grant is intact.
    let (s, body) = app
        .token(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                first["refresh_token"].as_str().expect("rt"),
            ),
            ("client_id", f.client_id.as_str()),
        ])
        .await;
    assert_eq!(s, 200, "{body}");
    // A replay by the code's own client still revokes it (RFC 9700 §4.5).
    let (s, _) = app.token(&f.exchange_form()).await;
    assert_eq!(s, 400);
    let (s, _) = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().expect("rt")),
            ("client_id", f.client_id.as_str()),
        ])
        .await;
    assert_eq!(s, 400, "the replay revoked the grant");
}

fn basic_raw(raw: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[tokio::test]
async fn basic_credentials_are_percent_decoded_per_part_on_both_edges() {
    let app = spawn_app().await;
    let (id, secret) = app.introspector().await;
    let token = f_token(&app).await;
    let encoded = |s: &str| -> String { s.bytes().map(|b| format!("%{b:02X}")).collect() };
    for (raw, ok, why) in [
        (format!("{id}:{secret}"), true, "plain"),
        (
            format!("{}:{}", encoded(&id), encoded(&secret)),
            true,
            "every byte percent-encoded",
        ),
        (
            format!("{id}&junk:{secret}"),
            false,
            "& is data, not a separator",
        ),
        (format!("{id}=x:{secret}"), false, "= is data"),
        (
            format!("x&client_id={id}:{secret}"),
            false,
            "no query parsing",
        ),
    ] {
        let res = http()
            .post(app.url("/introspect"))
            .header("authorization", basic_raw(&raw))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .expect("post");
        assert_eq!(
            res.status().as_u16(),
            if ok { 200 } else { 401 },
            "HTTP: {why}"
        );
        let mut req = tonic::Request::new(pb::VerifyTokenRequest {
            token: token.clone(),
            audience: RESOURCE.into(),
            required_scopes: vec![],
        });
        req.metadata_mut()
            .insert("authorization", basic_raw(&raw).parse().expect("ascii"));
        let answer = app.grpc().await.verify_token(req).await;
        match answer {
            Ok(r) => assert!(ok && r.into_inner().valid, "gRPC: {why}"),
            Err(status) => {
                assert!(!ok, "gRPC: {why}: {status:?}");
                assert_eq!(status.code(), tonic::Code::Unauthenticated, "gRPC: {why}");
            }
        }
    }
}

async fn f_token(app: &TestApp) -> String {
    let f = flow(app).await;
    f.exchange(app).await["access_token"]
        .as_str()
        .expect("at")
        .to_owned()
}

#[tokio::test]
async fn control_characters_get_the_endpoints_error_not_a_server_error() {
    let app = spawn_app().await;
    for path in ["/token", "/revoke", "/introspect"] {
        let form_id = http()
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&token=x&client_id=ab%00cd");
        let basic_id = http()
            .post(app.url(path))
            .header("authorization", basic_raw("ab%00cd:secret"))
            .form(&[("grant_type", "client_credentials"), ("token", "x")]);
        let newline_id = http()
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&token=x&client_id=a%0Ab");
        let non_ascii = http()
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&token=x&client_id=%C3%A9");
        for (req, why) in [
            (form_id, "NUL in the form"),
            (basic_id, "NUL in Basic"),
            (newline_id, "newline in the form"),
            (non_ascii, "not VSCHAR"),
        ] {
            let res = req.send().await.expect("post");
            assert_eq!(res.status(), 401, "{path}: {why}");
            let body: Value = res.json().await.expect("json");
            assert_eq!(body["error"], "invalid_client", "{path}: {why}");
        }
    }
    for (metadata, code, why) in [
        (
            json!({"redirect_uris": ["https://a.example.com/cb"], "client_name": "a\u{0}b"}),
            "invalid_client_metadata",
            "NUL in client_name",
        ),
        (
            json!({"redirect_uris": ["https://a.example.com/cb"], "contacts": ["x\u{7}@example.com"]}),
            "invalid_client_metadata",
            "BEL in contacts",
        ),
        (
            json!({"redirect_uris": ["https://a.example.com/c\u{0}b"]}),
            "invalid_client_metadata",
            "NUL in a redirect URI",
        ),
        (
            json!({"redirect_uris": ["https://a.example.com/cb"], "software_id": "\u{1b}[31m"}),
            "invalid_client_metadata",
            "an escape sequence",
        ),
        (
            json!({"redirect_uris": ["https://a.example.com/cb"], "client_name": "Good\u{202e}liveD"}),
            "invalid_client_metadata",
            "a bidirectional override",
        ),
        (
            json!({"redirect_uris": ["https://a.example.com/cb"], "client_name": "a\u{2028}b\u{200b}"}),
            "invalid_client_metadata",
            "a line separator and a zero-width space",
        ),
        (
            json!({"redirect_uris": [" https://a.example.com/cb"]}),
            "invalid_redirect_uri",
            "a space the URL parser would drop",
        ),
    ] {
        let res = app.register(metadata).await;
        assert_eq!(res.status(), 400, "{why}");
        assert_eq!(
            res.json::<Value>().await.expect("json")["error"],
            code,
            "{why}"
        );
    }
    // The authorization endpoint shows an error page, never a 500.
    let res = browser()
        .get(format!(
            "{}?client_id=a%00b&response_type=code",
            app.url("/authorize")
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 400);
    // A redirect URI that the URL parser would clean up is no match: shown, never stored.
    let loopback = app.public_client("http://127.0.0.1/callback").await;
    let p = pkce();
    for bad in [
        "http://127.0.0.1/callback\u{0}",
        "http://127.0.0.1:5555/callback\u{0}",
        "http://127.0.0.1:5555/callback\u{1f}",
        " http://127.0.0.1:5555/callback",
    ] {
        let res = authorize(&app, &browser(), &auth_params(&loopback, bad, &p)).await;
        assert_eq!(res.status(), 400, "{bad:?}");
        assert!(
            !res.text().await.expect("html").contains("csrf_token"),
            "{bad:?}: an error page, not the sign-in form"
        );
    }
    // A NUL in the sign-in email fails like any unknown account.
    let redirect = "http://127.0.0.1:7777/callback";
    let client_id = app.public_client(redirect).await;
    let p = pkce();
    let b = browser();
    let page = authorize(&app, &b, &auth_params(&client_id, redirect, &p)).await;
    let res = login(&app, &b, page, "a\u{0}b@example.com", PASSWORD).await;
    assert_eq!(res.status(), 401, "the login page again, with its error");
    assert!(
        res.text()
            .await
            .expect("html")
            .contains("Invalid email or password")
    );
}

#[tokio::test]
async fn verify_token_and_the_resource_server_crate_say_whether_a_user_is_behind_a_token() {
    let app = spawn_app().await;
    let rs = app.resource_server(&[RESOURCE]).await;
    let user_token = f_token(&app).await;
    let (svc, svc_secret) = app.operator_client(&[RESOURCE], None).await;
    let (_, body) = client_credentials(&app, &svc, &svc_secret, &[]).await;
    let client_token = body["access_token"].as_str().expect("at").to_owned();

    for (token, want) in [
        (&user_token, pb::TokenSubject::User),
        (&client_token, pb::TokenSubject::Client),
    ] {
        let mut req = tonic::Request::new(pb::VerifyTokenRequest {
            token: token.clone(),
            audience: RESOURCE.into(),
            required_scopes: vec![],
        });
        req.metadata_mut().insert(
            "authorization",
            basic_raw(&format!("{}:{}", rs.0, rs.1))
                .parse()
                .expect("ascii"),
        );
        let claims = app
            .grpc()
            .await
            .verify_token(req)
            .await
            .expect("verify")
            .into_inner()
            .claims
            .expect("claims");
        assert_eq!(claims.subject(), want);
    }

    for mode in [Mode::Remote, Mode::Local] {
        let verifier = Verifier::connect(
            Config::new(RESOURCE, &app.base, &app.grpc_url, &rs.0, &rs.1).mode(mode),
        )
        .await
        .expect("verifier");
        assert_eq!(
            verifier
                .verify(&user_token, &[])
                .await
                .expect("user")
                .subject,
            Subject::User
        );
        assert_eq!(
            verifier
                .verify(&client_token, &[])
                .await
                .expect("client")
                .subject,
            Subject::Client
        );
        let app_router = axum::Router::new()
            .route(
                "/for-users",
                axum::routing::get(|Bearer(c): Bearer| async move { c.sub }),
            )
            .layer(verifier.require(&[]).users_only())
            .merge(
                axum::Router::new()
                    .route(
                        "/for-anyone",
                        axum::routing::get(|Bearer(c): Bearer| async move { c.sub }),
                    )
                    .layer(verifier.require(&[])),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move { axum::serve(listener, app_router).await });
        for (path, token, status) in [
            ("/for-users", &user_token, 200),
            ("/for-users", &client_token, 403),
            ("/for-anyone", &client_token, 200),
        ] {
            let res = http()
                .get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("get");
            assert_eq!(res.status(), status, "{mode:?} {path}");
            if status == 403 {
                let challenge = res.headers()["www-authenticate"]
                    .to_str()
                    .expect("ascii")
                    .to_owned();
                assert!(
                    challenge.contains("insufficient_scope") && challenge.contains("user"),
                    "{challenge}"
                );
            }
        }
        server.abort();
    }
}

#[tokio::test]
async fn production_refuses_to_serve_with_no_protected_resource() {
    let db = fresh_database().await;
    let _guard = DbGuard(db.clone());
    let settings = latchkey::Settings {
        env: latchkey::config::Environment::Production,
        issuer: "https://auth.example.com".into(),
        cors_origins: "https://app.example.com".into(),
        key_encryption_key: Some(
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
                .to_owned()
                .into(),
        ),
        gateway_secret: Some(GATEWAY_SECRET.to_owned().into()),
        metrics_addr: None,
        forward_auth_addr: None,
        database_url: db.clone(),
        ..latchkey::Settings::default()
    };
    let start = || async {
        let http = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        latchkey::start_all(&settings, http, grpc).await
    };
    let err = start().await.err().expect("refused").to_string();
    if db.starts_with("sqlite:") {
        // Production refuses SQLite before it can look for resources.
        assert!(err.contains("PostgreSQL"), "{err}");
        return;
    }
    assert!(err.contains("protected resource"), "{err}");
    let store = latchkey_store::SeaStore::connect(&db).await.expect("db");
    use latchkey_core::store::ResourceStore;
    store
        .insert_resource(&latchkey_core::resource::ProtectedResource {
            resource: latchkey_core::resource::Resource::parse(RESOURCE).expect("resource"),
            scopes: None,
            is_default: true,
            implies: Default::default(),
        })
        .await
        .expect("resource");
    let running = start().await.expect("serves once a resource is registered");
    // Deleting the last resource while serving does not reopen the development default.
    assert!(
        running
            .core
            .as_ref()
            .expect("core")
            .delete_resource(RESOURCE)
            .await
            .expect("delete the last resource")
    );
    let base = format!("http://{}", running.http_addr.expect("http addr"));
    let res = http()
        .post(format!("{base}/register"))
        .json(&json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .expect("register");
    let client_id = res.json::<Value>().await.expect("json")["client_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let p = pkce();
    let res = browser()
        .get(format!("{base}/authorize"))
        .query(&auth_params(&client_id, "http://127.0.0.1/cb", &p))
        .send()
        .await
        .expect("authorize");
    assert_eq!(notice_params(res).await.1["error"], "invalid_target");
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_deleted_resource_stops_its_grants_codes_and_refresh_tokens() {
    let app = app_with_resources().await;
    let used = flow(&app).await;
    let tokens = used.exchange(&app).await;
    let pending = flow(&app).await;
    assert!(app.core().delete_resource(RESOURCE).await.expect("delete"));
    let (s, body) = app.token(&pending.exchange_form()).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "a code for it: {body}"
    );
    let (s, body) = app
        .token(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                tokens["refresh_token"].as_str().expect("rt"),
            ),
            ("client_id", used.client_id.as_str()),
        ])
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "a refresh token for it: {body}"
    );
}

/// RFC 6749 §3.3 lets a server ignore scopes it does not know, or refuse them. By default they
/// are ignored and the answer's `scope` says what was granted (mcp-remote asks for `openid
/// email profile`); `LATCHKEY_UNKNOWN_SCOPES=reject` refuses them.
#[tokio::test]
async fn unknown_scopes_are_ignored_unless_the_operator_refuses_them() {
    for reject in [false, true] {
        let app = spawn_app_with(|s| {
            if reject {
                s.unknown_scopes = latchkey::config::UnknownScopesSetting::Reject;
            }
        })
        .await;
        app.core()
            .add_resource(RESOURCE, None, true)
            .await
            .expect("resource");
        let (id, secret) = app
            .operator_client(
                &[RESOURCE],
                Some(json!({"grant_types": ["client_credentials"], "response_types": [], "scope": "mcp:tools mcp:prompts"})),
            )
            .await;
        let asked = [
            ("mcp:tools openid", "mcp:tools"),
            ("openid email profile", "mcp:prompts mcp:tools"),
        ];
        for (scope, granted) in asked {
            let (s, body) = client_credentials(&app, &id, &secret, &[("scope", scope)]).await;
            if reject {
                assert_eq!(
                    (s, body["error"].as_str()),
                    (400, Some("invalid_scope")),
                    "{scope}"
                );
                assert!(
                    body["error_description"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("unknown scope: "),
                    "names the scope: {body}"
                );
            } else {
                assert_eq!(s, 200, "{scope}: {body}");
                assert_eq!(body["scope"], granted, "{scope}");
                let (_, claims) = jwt_parts(body["access_token"].as_str().expect("at"));
                assert_eq!(claims["scope"], granted, "{scope}");
            }
        }
        // A known scope the client may not have is refused either way.
        let (s, body) =
            client_credentials(&app, &id, &secret, &[("scope", "mcp:resources openid")]).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (400, Some("invalid_scope")),
            "reject {reject}"
        );
    }
}

/// A host-only resource names one thing with or without its trailing slash: Claude Code sends
/// `https://h/` for a resource registered as `https://h`.
#[tokio::test]
async fn a_host_only_resource_is_the_same_with_or_without_its_trailing_slash() {
    const HOST_ONLY: &str = "https://host-only.example.com";
    let app = spawn_app().await;
    app.core()
        .add_resource(&format!("{HOST_ONLY}/"), None, true)
        .await
        .expect("resource");
    let (id, secret) = app
        .operator_client(
            &[HOST_ONLY],
            Some(json!({"grant_types": ["client_credentials"], "response_types": []})),
        )
        .await;
    for asked in [format!("{HOST_ONLY}/"), HOST_ONLY.to_owned()] {
        let (s, body) = client_credentials(&app, &id, &secret, &[("resource", &asked)]).await;
        assert_eq!(s, 200, "{asked}: {body}");
        let (_, claims) = jwt_parts(body["access_token"].as_str().expect("at"));
        assert_eq!(claims["aud"], HOST_ONLY, "{asked}");
    }
    let (s, body) = client_credentials(
        &app,
        &id,
        &secret,
        &[("resource", "https://host-only.example.com/mcp")],
    )
    .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_target")));
}
