use crate::common::*;
use serde_json::Value;

#[tokio::test]
async fn the_whole_mcp_flow_works_from_discovery_to_revocation() {
    let app = spawn_app().await;
    app.add_user("alice@example.com").await;
    // Discover.
    let meta: Value = http()
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    // Register.
    let redirect = "http://127.0.0.1:43210/callback";
    let client_id = app.public_client(redirect).await;
    // Authorize, log in, consent.
    let p = pkce();
    let mut params = auth_params(&client_id, redirect, &p);
    params.push(("scope", "mcp:tools offline_access"));
    let b = browser();
    let page = authorize(&app, &b, &params).await;
    assert_eq!(page.status(), 200);
    let cookie = page
        .headers()
        .get("set-cookie")
        .expect("session cookie")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain-http issuer: no Secure flag"
    );
    let consent = login(&app, &b, page, "Alice@Example.com", PASSWORD).await;
    assert_eq!(consent.status(), 200);
    let done = decide(&app, &b, consent, "allow").await;
    assert_eq!(done.status(), 303);
    let (loc, q) = location_params(&done);
    assert!(loc.starts_with(redirect), "{loc}");
    assert_eq!(q["state"], "xyz-state");
    assert_eq!(q["iss"], meta["issuer"].as_str().expect("issuer"));
    // Exchange.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("redirect_uri", redirect),
        ("code_verifier", p.verifier.as_str()),
        ("client_id", client_id.as_str()),
    ];
    let res = http()
        .post(app.url("/token"))
        .form(&form)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("cache-control").expect("cc"), "no-store");
    let tokens: Value = res.json().await.expect("json");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], "mcp:tools offline_access");
    let at = tokens["access_token"].as_str().expect("at");
    let (header, claims) = jwt_parts(at);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());
    assert_eq!(claims["iss"], app.base.as_str());
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["client_id"], client_id.as_str());
    for c in ["sub", "jti", "iat", "exp", "scope"] {
        assert!(!claims[c].is_null(), "claim {c}");
    }
    // Refresh.
    let rt = tokens["refresh_token"].as_str().expect("refresh token");
    let (status, refreshed) = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let rt2 = refreshed["refresh_token"].as_str().expect("rotated");
    assert_ne!(rt, rt2);
    // Revoke.
    let res = http()
        .post(app.url("/revoke"))
        .form(&[("token", rt2), ("client_id", &client_id)])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    let (status, body) = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt2),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn unknown_client_or_unregistered_redirect_gets_an_error_page_and_no_redirect() {
    let app = spawn_app().await;
    let client_id = app.public_client("http://127.0.0.1:7777/callback").await;
    let p = pkce();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            auth_params("no-such-client", "http://127.0.0.1:7777/callback", &p),
            "unknown client",
        ),
        (
            auth_params(&client_id, "https://evil.example.com/callback", &p),
            "unregistered redirect",
        ),
        (
            auth_params(&client_id, "http://127.0.0.1:7777/other", &p),
            "different path",
        ),
        (
            auth_params(&client_id, "http://127.0.0.1:7777/callback?x=1", &p),
            "extra query",
        ),
        (
            {
                let mut v = auth_params(&client_id, "http://127.0.0.1:7777/callback", &p);
                v.push(("redirect_uri", "https://evil.example.com/cb"));
                v
            },
            "repeated redirect_uri",
        ),
        (
            auth_params(&client_id, "", &p)
                .into_iter()
                .filter(|(k, _)| *k != "client_id")
                .collect(),
            "missing client_id",
        ),
    ];
    for (params, why) in cases {
        let res = authorize(&app, &browser(), &params).await;
        assert_eq!(res.status(), 400, "{why}");
        assert!(
            res.headers().get("location").is_none(),
            "{why}: never redirected"
        );
        assert_eq!(res.headers().get("x-frame-options").expect("xfo"), "DENY");
    }
}

#[tokio::test]
async fn loopback_redirect_uri_may_differ_only_in_port() {
    let app = spawn_app().await;
    app.add_user("lo@example.com").await;
    let client_id = app.public_client("http://127.0.0.1/callback").await;
    let p = pkce();
    let q = code_flow(
        &app,
        &auth_params(&client_id, "http://127.0.0.1:51515/callback", &p),
        "lo@example.com",
    )
    .await;
    assert!(q.contains_key("code"));
}

#[tokio::test]
async fn errors_after_redirect_validation_go_back_with_state_and_iss() {
    let app = spawn_app().await;
    let redirect = "http://127.0.0.1:7777/callback";
    let client_id = app.public_client(redirect).await;
    let p = pkce();
    let with = |k: &'static str, v: &'static str| {
        let mut base: Vec<(&str, &str)> = auth_params(&client_id, redirect, &p)
            .into_iter()
            .filter(|(n, _)| *n != k)
            .collect();
        if !v.is_empty() {
            base.push((k, v));
        }
        base
    };
    let cases: Vec<(Form, &str, &str)> = vec![
        (
            with("code_challenge_method", "plain"),
            "invalid_request",
            "plain PKCE",
        ),
        (
            with("code_challenge_method", ""),
            "invalid_request",
            "no method means plain",
        ),
        (
            with("code_challenge", ""),
            "invalid_request",
            "missing PKCE",
        ),
        (
            with("response_type", "token"),
            "unsupported_response_type",
            "implicit",
        ),
        (
            with("response_type", ""),
            "invalid_request",
            "missing response_type",
        ),
        (
            with("scope", "mcp:tools \"x\""),
            "invalid_scope",
            "malformed scope",
        ),
        (
            with("resource", "https://mcp.example.com/mcp#frag"),
            "invalid_target",
            "resource with fragment",
        ),
        (
            with("resource", "http://mcp.example.com/mcp"),
            "invalid_target",
            "plain http resource",
        ),
        (
            with("response_mode", "fragment"),
            "invalid_request",
            "fragment response mode",
        ),
        (
            {
                let mut v = auth_params(&client_id, redirect, &p);
                v.push(("scope", "mcp:tools"));
                v.push(("scope", "mcp:prompts"));
                v
            },
            "invalid_request",
            "repeated scope",
        ),
        (
            {
                let mut v = auth_params(&client_id, redirect, &p);
                v.push(("resource", "https://other.example.com/mcp"));
                v
            },
            "invalid_target",
            "two resources",
        ),
    ];
    for (params, code, why) in cases {
        let res = authorize(&app, &browser(), &params).await;
        let (loc, q) = notice_params(res).await;
        assert!(loc.starts_with(redirect), "{why}");
        assert_eq!(q.get("error").map(String::as_str), Some(code), "{why}");
        assert_eq!(
            q.get("state").map(String::as_str),
            Some("xyz-state"),
            "{why}"
        );
        assert_eq!(
            q.get("iss").map(String::as_str),
            Some(app.base.as_str()),
            "{why}"
        );
    }
}

#[tokio::test]
async fn missing_scope_gets_the_configured_defaults() {
    let app = spawn_app_with(|s| s.default_scopes = "mcp:tools".into()).await;
    let f = flow(&app).await;
    let tokens = f.exchange(&app).await;
    assert_eq!(tokens["scope"], "mcp:tools");
}

#[tokio::test]
async fn deny_gives_access_denied_with_state_and_iss() {
    let app = spawn_app().await;
    app.add_user("deny@example.com").await;
    let redirect = "http://127.0.0.1:7777/callback";
    let client_id = app.public_client(redirect).await;
    let p = pkce();
    let b = browser();
    let page = authorize(&app, &b, &auth_params(&client_id, redirect, &p)).await;
    let consent = login(&app, &b, page, "deny@example.com", PASSWORD).await;
    let res = decide(&app, &b, consent, "deny").await;
    assert_eq!(res.status(), 303);
    let (_, q) = location_params(&res);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "xyz-state");
    assert_eq!(q["iss"], app.base);
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn failed_logins_look_the_same_for_unknown_users_wrong_passwords_and_disabled_users() {
    let app = spawn_app().await;
    app.add_user("bob@example.com").await;
    app.add_user("carol@example.com").await;
    app.core()
        .disable_user("carol@example.com")
        .await
        .expect("disable");
    let redirect = "http://127.0.0.1:7777/callback";
    let client_id = app.public_client(redirect).await;
    let p = pkce();
    let mut pages = Vec::new();
    for (email, password) in [
        ("nobody@example.com", PASSWORD),
        ("bob@example.com", "wrong password"),
        ("carol@example.com", PASSWORD),
    ] {
        let b = browser();
        let page = authorize(&app, &b, &auth_params(&client_id, redirect, &p)).await;
        let res = login(&app, &b, page, email, password).await;
        assert_eq!(res.status(), 401, "{email}");
        let html = res.text().await.expect("html");
        assert!(html.contains("Invalid email or password."), "{email}");
        assert!(
            html.contains("name=\"password\""),
            "{email}: the login form is shown again"
        );
        pages.push(html.replace(&csrf(&html), ""));
    }
    assert_eq!(pages[0], pages[1]);
    assert_eq!(pages[1], pages[2]);
}

#[tokio::test]
async fn forms_without_the_session_or_with_a_wrong_csrf_token_are_refused() {
    let app = spawn_app().await;
    app.add_user("dave@example.com").await;
    let redirect = "http://127.0.0.1:7777/callback";
    let client_id = app.public_client(redirect).await;
    let p = pkce();
    let b = browser();
    let page = authorize(&app, &b, &auth_params(&client_id, redirect, &p)).await;
    let html = page.text().await.expect("html");
    let token = csrf(&html);
    // Wrong CSRF token.
    let res = b
        .post(app.url("/authorize/login"))
        .form(&[
            ("csrf_token", "forged"),
            ("email", "dave@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400);
    // The right token, but from a browser without the session cookie.
    let res = browser()
        .post(app.url("/authorize/login"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", "dave@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400);
    // Consent before login.
    let res = b
        .post(app.url("/authorize/consent"))
        .form(&[("csrf_token", token.as_str()), ("decision", "allow")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
}

#[tokio::test]
async fn pages_escape_client_metadata_and_forbid_framing() {
    let app = spawn_app().await;
    app.add_user("eve@example.com").await;
    let redirect = "http://127.0.0.1:7777/callback";
    let res = app
        .register(serde_json::json!({
            "client_name": "<script>alert('x')</script>",
            "redirect_uris": [redirect],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let client_id = res.json::<Value>().await.expect("json")["client_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let p = pkce();
    let b = browser();
    let page = authorize(&app, &b, &auth_params(&client_id, redirect, &p)).await;
    for (h, want) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(page.headers().get(h).expect(h), want);
    }
    assert!(
        page.headers()
            .get("content-security-policy")
            .expect("csp")
            .to_str()
            .expect("ascii")
            .contains("frame-ancestors 'none'")
    );
    let consent = login(&app, &b, page, "eve@example.com", PASSWORD).await;
    let html = consent.text().await.expect("html");
    assert!(!html.contains("<script>"), "client name must be escaped");
    assert!(
        html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;"),
        "escaped name is shown"
    );
    assert!(
        html.contains("127.0.0.1"),
        "consent shows the redirect host"
    );
    assert!(html.contains("mcp:tools"), "consent shows the scopes");
}

#[tokio::test]
async fn registered_resources_bind_the_audience() {
    let app = spawn_app_with(|s| {
        s.resources = vec![
            latchkey::config::ResourceConfig {
                url: "https://a.example.com/mcp".into(),
                scopes: None,
                default: false,
                implies: Default::default(),
            },
            latchkey::config::ResourceConfig {
                url: "https://B.example.com/mcp".into(),
                scopes: None,
                default: true,
                implies: Default::default(),
            },
        ]
    })
    .await;
    app.add_user("rs@example.com").await;
    let redirect = "http://127.0.0.1:7777/callback";
    let client_id = app.public_client(redirect).await;
    // Unknown resource.
    let p = pkce();
    let mut params: Vec<(&str, &str)> = auth_params(&client_id, redirect, &p)
        .into_iter()
        .filter(|(k, _)| *k != "resource")
        .collect();
    params.push(("resource", "https://c.example.com/mcp"));
    let res = authorize(&app, &browser(), &params).await;
    assert_eq!(notice_params(res).await.1["error"], "invalid_target");
    // No resource: the default, normalized.
    params.pop();
    let q = code_flow(&app, &params, "rs@example.com").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("redirect_uri", redirect),
        ("code_verifier", p.verifier.as_str()),
        ("client_id", client_id.as_str()),
    ];
    let (status, body) = app.token(&form).await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().expect("at"));
    assert_eq!(claims["aud"], "https://b.example.com/mcp");
}

#[tokio::test]
async fn an_expired_authorization_session_cannot_be_completed() {
    let app = spawn_app_with(|s| s.session_ttl_secs = 1).await;
    app.add_user("slow@example.com").await;
    let redirect = "http://127.0.0.1:7777/callback";
    let client_id = app.public_client(redirect).await;
    let p = pkce();
    let b = browser();
    let page = authorize(&app, &b, &auth_params(&client_id, redirect, &p)).await;
    app.advance(2);
    let res = login(&app, &b, page, "slow@example.com", PASSWORD).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    assert!(res.text().await.expect("html").contains("expired"));
}

#[tokio::test]
async fn a_consent_form_cannot_be_submitted_twice() {
    let app = spawn_app().await;
    app.add_user("twice@example.com").await;
    let redirect = "http://127.0.0.1:7777/callback";
    let client_id = app.public_client(redirect).await;
    let p = pkce();
    let b = browser();
    let page = authorize(&app, &b, &auth_params(&client_id, redirect, &p)).await;
    let consent = login(&app, &b, page, "twice@example.com", PASSWORD).await;
    let set_cookie = consent
        .headers()
        .get("set-cookie")
        .expect("new session cookie after login")
        .to_str()
        .expect("ascii")
        .to_owned();
    let session = set_cookie.split(';').next().expect("name=value").to_owned();
    let token = csrf(&consent.text().await.expect("html"));
    let submit = || {
        http()
            .post(app.url("/authorize/consent"))
            .header("cookie", session.clone())
            .form(&[("csrf_token", token.as_str()), ("decision", "allow")])
            .send()
    };
    assert_eq!(submit().await.expect("post").status(), 303);
    let again = submit().await.expect("post");
    assert_eq!(again.status(), 400, "the session is single-use");
    assert!(again.headers().get("location").is_none());
}

#[tokio::test]
async fn five_failed_sign_ins_end_the_authorization() {
    let app = spawn_app().await;
    app.add_user("guess@example.com").await;
    let redirect = "http://127.0.0.1:7777/callback";
    let client_id = app.public_client(redirect).await;
    let p = pkce();
    let b = browser();
    let mut page = authorize(&app, &b, &auth_params(&client_id, redirect, &p)).await;
    for attempt in 1..=5 {
        let res = login(&app, &b, page, "guess@example.com", "wrong password").await;
        if attempt < 5 {
            assert_eq!(res.status(), 401, "attempt {attempt}");
            page = res;
        } else {
            assert_eq!(
                res.status(),
                400,
                "the session is gone after the fifth failure"
            );
            assert!(
                res.text()
                    .await
                    .expect("html")
                    .contains("too many failed sign-in attempts")
            );
            return;
        }
    }
}

#[tokio::test]
async fn redirect_uri_may_be_omitted_with_one_registered_uri() {
    let app = spawn_app().await;
    app.add_user("omit@example.com").await;
    let redirect = "http://127.0.0.1:7777/callback";
    let client_id = app.public_client(redirect).await;
    let p = pkce();
    let params: Vec<(&str, &str)> = auth_params(&client_id, redirect, &p)
        .into_iter()
        .filter(|(k, _)| *k != "redirect_uri")
        .collect();
    let q = code_flow(&app, &params, "omit@example.com").await;
    let code = q["code"].as_str();
    // OAuth 2.1 §4.1.3: the token request may then omit it, or name the registered URI.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("code_verifier", p.verifier.as_str()),
        ("client_id", client_id.as_str()),
    ];
    let (s, body) = app.token(&form).await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn no_usable_default_scope_is_invalid_scope() {
    let app = spawn_app_with(|s| s.default_scopes = "mcp:prompts".into()).await;
    let redirect = "http://127.0.0.1:7777/callback";
    let res = app
        .register(serde_json::json!({"redirect_uris": [redirect], "token_endpoint_auth_method": "none", "scope": "mcp:tools"}))
        .await;
    let client_id = res.json::<Value>().await.expect("json")["client_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let p = pkce();
    let res = authorize(&app, &browser(), &auth_params(&client_id, redirect, &p)).await;
    assert_eq!(notice_params(res).await.1["error"], "invalid_scope");
}

#[tokio::test]
async fn error_descriptions_never_echo_characters_outside_the_rfc_set() {
    let app = spawn_app().await;
    let redirect = "http://127.0.0.1:7777/callback";
    let client_id = app.public_client(redirect).await;
    let p = pkce();
    let mut params: Vec<(&str, &str)> = auth_params(&client_id, redirect, &p)
        .into_iter()
        .filter(|(k, _)| *k != "response_type")
        .collect();
    params.push(("response_type", "tök\"en<>"));
    let res = authorize(&app, &browser(), &params).await;
    let desc = notice_params(res).await.1["error_description"].clone();
    assert!(
        desc.chars()
            .all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')),
        "{desc}"
    );
}
