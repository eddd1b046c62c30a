//! State shared between replicas: authorization sessions and sign-in lockout.

use crate::common::*;

#[tokio::test]
async fn a_login_started_on_one_instance_finishes_on_another() {
    let Some(redis) = test_redis_url() else {
        eprintln!("LATCHKEY_TEST_REDIS_URL is unset: the shared-session suite runs in CI");
        return;
    };
    let a = spawn_app_with(|s| s.redis_url = Some(redis)).await;
    let b = a.peer().await;
    a.add_user("roam@example.com").await;
    let redirect = "http://127.0.0.1:7777/callback";
    let client_id = a.public_client(redirect).await;
    let p = pkce();
    let browser = browser();
    // /authorize on A; the login form and the consent form on B.
    let page = authorize(&a, &browser, &auth_params(&client_id, redirect, &p)).await;
    assert_eq!(page.status(), 200);
    let consent = login(&b, &browser, page, "roam@example.com", PASSWORD).await;
    assert_eq!(consent.status(), 200, "B continues the session A started");
    let done = decide(&b, &browser, consent, "allow").await;
    assert_eq!(done.status(), 303);
    let q = location_params(&done).1;
    // And the code works at either.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("redirect_uri", redirect),
        ("code_verifier", p.verifier.as_str()),
        ("client_id", client_id.as_str()),
    ];
    let (status, body) = a.token(&form).await;
    assert_eq!(status, 200, "{body}");
}

async fn attempt(app: &TestApp, client_id: &str, email: &str, password: &str) -> (u16, String) {
    let p = pkce();
    let b = browser();
    let page = authorize(
        app,
        &b,
        &auth_params(client_id, "http://127.0.0.1:7777/callback", &p),
    )
    .await;
    let res = login(app, &b, page, email, password).await;
    let status = res.status().as_u16();
    (status, res.text().await.expect("html"))
}

#[tokio::test]
async fn repeated_failures_lock_the_account_progressively_without_revealing_it_exists() {
    let app = spawn_app_with(|s| {
        s.redis_url = test_redis_url();
        s.lockout_threshold = 2;
        s.lockout_base_secs = 2;
        s.lockout_max_secs = 4;
    })
    .await;
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.add_user(&email).await;
    let ghost = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let client_id = app.public_client("http://127.0.0.1:7777/callback").await;
    for who in [&email, &ghost] {
        for _ in 0..2 {
            let (status, html) = attempt(&app, &client_id, who, "wrong password").await;
            assert_eq!(status, 401);
            assert!(html.contains("Invalid email or password."));
        }
    }
    // Locked: even the right password is refused, with the same words for both accounts.
    let (status, html) = attempt(&app, &client_id, &email, PASSWORD).await;
    assert_eq!(status, 401);
    assert!(html.contains("Too many failed sign-in attempts"), "locked");
    let (_, ghost_html) = attempt(&app, &client_id, &ghost, PASSWORD).await;
    assert!(
        ghost_html.contains("Too many failed sign-in attempts"),
        "an unknown email locks the same way"
    );
    // The lock expires.
    app.advance(4);
    let (status, _) = attempt(&app, &client_id, &email, PASSWORD).await;
    assert_eq!(
        status, 200,
        "the right password works once the lock has passed"
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_per_ip_and_endpoint() {
    let redis = test_redis_url();
    let shared = redis.is_some();
    let a = spawn_app_with(|s| {
        s.redis_url = redis;
        s.rate_limit_register_per_min = 3;
        // The test client stands for a trusted proxy that names the client.
        s.trusted_proxies = latchkey::config::TrustedProxies::parse("127.0.0.1").expect("ranges");
    })
    .await;
    // A peer shares the counters through Redis; without Redis, each instance counts alone.
    let b = if shared { Some(a.peer().await) } else { None };
    // A fresh client IP per run, so runs and tests sharing Redis do not share counters.
    let ip = format!("10.{}.{}.{}", rand_octet(), rand_octet(), rand_octet());
    let register = |app: &TestApp, ip: &str| {
        http()
            .post(app.url("/register"))
            .header("x-forwarded-for", ip)
            .json(&serde_json::json!({"redirect_uris": ["http://127.0.0.1:7777/cb"], "token_endpoint_auth_method": "none"}))
            .send()
    };
    for i in 0..3 {
        let app = match (&b, i) {
            (Some(b), 2) => b,
            _ => &a,
        };
        assert_eq!(
            register(app, &ip).await.expect("post").status(),
            201,
            "request {i}"
        );
    }
    let over = register(b.as_ref().unwrap_or(&a), &ip).await.expect("post");
    assert_eq!(over.status(), 429);
    let retry: u64 = over.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        over.json::<serde_json::Value>().await.expect("json")["error"],
        "temporarily_unavailable"
    );
    // Another IP, and another endpoint, are not affected.
    let other_ip = format!("10.{}.{}.{}", rand_octet(), rand_octet(), rand_octet());
    assert_eq!(register(&a, &other_ip).await.expect("post").status(), 201);
    let meta = http()
        .get(a.url("/.well-known/oauth-authorization-server"))
        .header("x-forwarded-for", &ip)
        .send()
        .await
        .expect("get");
    assert_eq!(meta.status(), 200);
}

fn rand_octet() -> u8 {
    (uuid::Uuid::new_v4().as_u128() % 250) as u8 + 1
}

#[tokio::test]
async fn the_gateway_and_the_auth_service_run_as_separate_processes() {
    let app = spawn_app().await;
    let auth = app.replica().await;
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", http_listener.local_addr().expect("addr"));
    let gateway = latchkey::start_gateway(&app.settings, &auth.grpc_url, http_listener)
        .await
        .expect("gateway alone");
    let meta: serde_json::Value = http()
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(meta["issuer"], app.base.as_str());
    let res = http()
        .post(format!("{base}/register"))
        .json(&serde_json::json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), 201);
    let (id, secret) = app.operator_client(&[RESOURCE], None).await;
    let res = http()
        .post(format!("{base}/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(res.status(), 200, "over the network gRPC channel");
    let ready = http()
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
    gateway.shutdown().await.expect("graceful shutdown");
}

/// Polls `check` every 50 ms until it holds, for at most `within`; returns how long it took.
async fn within(
    within: std::time::Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    for _ in 0..200 {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > within {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn a_client_deleted_or_changed_on_one_replica_takes_effect_on_another_within_two_seconds() {
    let app = spawn_app_with(|s| s.redis_url = test_redis_url()).await;
    let peer = app.peer().await;
    let (id, secret) = app.operator_client(&[RESOURCE], None).await;
    let cc = |on: &TestApp| {
        http()
            .post(on.url("/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    assert_eq!(cc(&peer).await.expect("token").status(), 200, "known there");

    // A resource server whose resource is taken away by the operator on the first replica.
    let rs = app.resource_server(&[RESOURCE]).await;
    let token = flow(&app).await.exchange(&app).await["access_token"]
        .as_str()
        .expect("at")
        .to_owned();
    let verify_on_peer = || {
        let req = crate::grpc::as_client(
            latchkey_proto::v1::VerifyTokenRequest {
                token: token.clone(),
                audience: RESOURCE.into(),
                required_scopes: vec![],
            },
            &rs,
        );
        let url = peer.grpc_url.clone();
        async move {
            latchkey_proto::v1::verification_service_client::VerificationServiceClient::connect(url)
                .await
                .expect("connect")
                .verify_token(req)
                .await
        }
    };
    assert!(verify_on_peer().await.expect("allowed").into_inner().valid);

    assert!(app.core().delete_client(&id).await.expect("delete"));
    app.core()
        .set_client_resources(&rs.0, &[])
        .await
        .expect("take the resource away");
    let deleted = within(std::time::Duration::from_secs(2), async || {
        cc(&peer).await.expect("token").status() == 401
    })
    .await;
    assert!(
        deleted.is_some(),
        "the deleted client is refused there within 2 s"
    );
    let changed = within(std::time::Duration::from_secs(2), async || {
        verify_on_peer().await.is_err()
    })
    .await;
    assert!(
        changed.is_some(),
        "the resource server that lost its resource is refused there within 2 s"
    );
}

/// What a client or a proxy can see of one answer: its status, the RFC error and description,
/// and the headers that carry a challenge or a caller's identity.
async fn seen(res: reqwest::Response) -> Vec<String> {
    let mut seen = vec![res.status().as_u16().to_string()];
    for name in [
        "www-authenticate",
        "retry-after",
        "cache-control",
        "x-auth-subject-type",
        "x-auth-client-id",
        "x-auth-scope",
    ] {
        let value = res.headers().get(name).map(|v| v.to_str().unwrap_or("?"));
        seen.push(format!("{name}: {value:?}"));
    }
    // The whole body: an RFC error's, an introspection's (one token, one answer), or the
    // text of a 500.
    seen.push(res.text().await.unwrap_or_default());
    seen
}

/// `latchkey serve`'s gateway calls the services' implementations in process; a gateway alone
/// calls them over gRPC with its credential, so its errors cross the wire in status details.
/// Both must answer a client, and a proxy at ForwardAuth, alike: the same statuses, RFC
/// errors and challenges, and ForwardAuth admitted as the gateway in both.
#[tokio::test]
async fn a_gateway_alone_answers_every_client_and_proxy_as_the_gateway_in_process_does() {
    let app = spawn_app().await;
    let (id, secret) = app.operator_client(&[RESOURCE], None).await;
    let (rs_id, rs_secret) = app.introspector().await;
    let auth = app.replica().await;
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let remote_base = format!("http://{}", http_listener.local_addr().expect("addr"));
    let remote = latchkey::start_gateway(&app.settings, &auth.grpc_url, http_listener)
        .await
        .expect("gateway alone");
    let remote_forward_auth = format!(
        "http://{}",
        remote.forward_auth_addr.expect("ForwardAuth listener")
    );
    let token = app.client_credentials_token((&id, &secret)).await;

    let public = |base: String| {
        let (id, secret, rs_id, rs_secret, token) = (
            id.clone(),
            secret.clone(),
            rs_id.clone(),
            rs_secret.clone(),
            token.clone(),
        );
        async move {
            let url = |p: &str| format!("{base}{p}");
            let cc = [("grant_type", "client_credentials"), ("resource", RESOURCE)];
            let requests = [
                http()
                    .post(url("/token"))
                    .basic_auth(&id, Some("wrong"))
                    .form(&cc),
                http()
                    .post(url("/token"))
                    .basic_auth(&id, Some(&secret))
                    .form(&[("grant_type", "bogus")]),
                http()
                    .post(url("/token"))
                    .basic_auth(&id, Some(&secret))
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("resource", "https://other.example.com/mcp"),
                    ]),
                http()
                    .post(url("/token"))
                    .basic_auth(&id, Some(&secret))
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("resource", "https://mcp.example.com/mcp#f"),
                    ]),
                http().post(url("/token")).form(&cc),
                http()
                    .post(url("/introspect"))
                    .basic_auth(&rs_id, Some(&rs_secret))
                    .form(&[("token", token.as_str())]),
                http()
                    .post(url("/introspect"))
                    .basic_auth(&rs_id, Some(&rs_secret))
                    .form(&[("token", "not-a-token")]),
                http()
                    .post(url("/introspect"))
                    .basic_auth(&rs_id, Some("wrong"))
                    .form(&[("token", token.as_str())]),
                http()
                    .post(url("/revoke"))
                    .basic_auth(&id, Some("wrong"))
                    .form(&[("token", "x")]),
                http()
                    .post(url("/register"))
                    .header("content-type", "application/json")
                    .body("{"),
                http()
                    .get(url("/register/nobody"))
                    .bearer_auth("not-a-registration-token"),
                http().get(url("/.well-known/oauth-protected-resource/nothing-here")),
            ];
            let mut answers = Vec::new();
            for req in requests {
                answers.push(seen(req.send().await.expect("send")).await);
            }
            answers
        }
    };
    let in_process = public(app.base.clone()).await;
    assert_eq!(in_process[0][0], "401", "{in_process:?}");
    assert!(
        in_process[5][7].contains("\"active\":true"),
        "{in_process:?}"
    );
    assert_eq!(public(remote_base).await, in_process);

    let forward_auth = |base: String| {
        let token = token.clone();
        async move {
            let verify = |query: &str, bearer: Option<&str>| {
                let mut req = http().get(format!("{base}/verify?{query}"));
                if let Some(t) = bearer {
                    req = req.bearer_auth(t);
                }
                req
            };
            let audience = format!("audience={RESOURCE}");
            let requests = [
                verify(&audience, Some(&token)),
                verify(&format!("{audience}&scope=files:write"), Some(&token)),
                verify(&audience, Some("garbage")),
                verify(&audience, None),
                verify("audience=https://other.example.com/mcp", Some(&token)),
                verify("", Some(&token)),
            ];
            let mut answers = Vec::new();
            for req in requests {
                answers.push(seen(req.send().await.expect("send")).await);
            }
            answers
        }
    };
    let in_process = forward_auth(app.forward_auth.clone()).await;
    assert_eq!(
        in_process[0][0], "200",
        "the gateway's caller verifies any audience: {in_process:?}"
    );
    assert_eq!(
        in_process[0][5],
        format!("x-auth-client-id: Some({id:?})"),
        "{in_process:?}"
    );
    assert_eq!(forward_auth(remote_forward_auth).await, in_process);
    remote.shutdown().await.expect("graceful shutdown");
}
