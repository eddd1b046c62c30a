//! The verification plane: who may call VerifyToken and Introspect, what they may learn, and
//! how revocation reaches every replica.

use crate::common::*;
use crate::grpc::{as_client, with_secret};
use latchkey_proto::v1 as pb;
use std::time::{Duration, Instant};
use tonic::Code;

const OTHER: &str = "https://other.example.com/mcp";

fn verify(token: &str, audience: &str, scopes: &[&str]) -> pb::VerifyTokenRequest {
    pb::VerifyTokenRequest {
        token: token.to_owned(),
        audience: audience.to_owned(),
        required_scopes: scopes.iter().map(|s| s.to_string()).collect(),
    }
}

/// A user's access token for RESOURCE, with the rest of the token response.
async fn user_tokens(app: &TestApp) -> (Flow, serde_json::Value) {
    let f = flow(app).await;
    let t = f.exchange(app).await;
    (f, t)
}

fn at(t: &serde_json::Value) -> String {
    t["access_token"].as_str().expect("access token").to_owned()
}

#[tokio::test]
async fn only_authenticated_resource_servers_and_the_gateway_may_verify() {
    let app = spawn_app().await;
    let (_, t) = user_tokens(&app).await;
    let token = at(&t);
    let rs = app.introspector().await;
    let (owns_nothing, owns_nothing_secret) = app.resource_server(&[]).await;
    let public = app.public_client("http://127.0.0.1:7777/callback").await;
    let mut c = app.grpc().await;
    let cases: Vec<(tonic::Request<pb::VerifyTokenRequest>, Code, &str)> = vec![
        (
            tonic::Request::new(verify(&token, RESOURCE, &[])),
            Code::Unauthenticated,
            "no credentials",
        ),
        (
            as_client(
                verify(&token, RESOURCE, &[]),
                &(rs.0.clone(), "wrong".into()),
            ),
            Code::Unauthenticated,
            "wrong secret",
        ),
        (
            as_client(
                verify(&token, RESOURCE, &[]),
                &(public.clone(), String::new()),
            ),
            Code::Unauthenticated,
            "public client",
        ),
        (
            with_secret(verify(&token, RESOURCE, &[]), Some("not-the-gateway")),
            Code::Unauthenticated,
            "wrong gateway secret",
        ),
        (
            as_client(
                verify(&token, RESOURCE, &[]),
                &(owns_nothing.clone(), owns_nothing_secret.clone()),
            ),
            Code::PermissionDenied,
            "owns no resource",
        ),
    ];
    for (req, code, why) in cases {
        assert_eq!(
            c.verify_token(req).await.expect_err(why).code(),
            code,
            "{why}"
        );
    }
    let ok = c
        .verify_token(as_client(verify(&token, RESOURCE, &[]), &rs))
        .await
        .expect("resource server")
        .into_inner();
    assert!(ok.valid);
    let ok = c
        .verify_token(with_secret(
            verify(&token, RESOURCE, &[]),
            Some(GATEWAY_SECRET),
        ))
        .await
        .expect("gateway")
        .into_inner();
    assert!(ok.valid);
    let defaulted = c
        .verify_token(as_client(verify(&token, "", &[]), &rs))
        .await
        .expect("one owned resource")
        .into_inner();
    assert!(
        defaulted.valid,
        "a resource server with one resource may omit the audience"
    );
}

#[tokio::test]
async fn a_resource_server_cannot_probe_another_resources_tokens() {
    let app = spawn_app().await;
    let (_, t) = user_tokens(&app).await;
    let token = at(&t);
    let other_rs = app.resource_server(&[OTHER]).await;
    let mut c = app.grpc().await;
    let err = c
        .verify_token(as_client(verify(&token, RESOURCE, &[]), &other_rs))
        .await
        .expect_err("not its audience");
    assert_eq!(err.code(), Code::PermissionDenied);
    let r = c
        .verify_token(as_client(verify(&token, OTHER, &[]), &other_rs))
        .await
        .expect("rpc")
        .into_inner();
    assert!(!r.valid);
    assert_eq!(
        r.error, "invalid_token",
        "a token minted for one resource is useless at another"
    );
    let i = c
        .introspect(as_client(
            pb::IntrospectRequest {
                token: token.clone(),
                ..Default::default()
            },
            &other_rs,
        ))
        .await
        .expect("introspect")
        .into_inner();
    assert!(
        !i.active,
        "introspection reveals nothing about another resource's token"
    );
    assert_eq!(
        app.introspect(&other_rs, &token).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(
        app.introspect(&other_rs, t["refresh_token"].as_str().expect("rt"))
            .await,
        serde_json::json!({"active": false})
    );
}

#[tokio::test]
async fn verify_token_rejections() {
    let app = spawn_app().await;
    let rs = app.introspector().await;
    let (_, t) = user_tokens(&app).await;
    let token = at(&t);
    let other_app = spawn_app().await;
    let (_, foreign) = user_tokens(&other_app).await;
    let payload = token.split('.').nth(1).expect("payload").to_owned();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.{payload}.");
    let mut c = app.grpc().await;
    for (req, error, why) in [
        (
            verify(&at(&foreign), RESOURCE, &[]),
            "invalid_token",
            "signed by another server's key",
        ),
        (verify(&none, RESOURCE, &[]), "invalid_token", "alg none"),
        (
            verify("not.a.jwt", RESOURCE, &[]),
            "invalid_token",
            "malformed",
        ),
        (verify("", RESOURCE, &[]), "invalid_token", "empty"),
        (
            verify(&token, RESOURCE, &["mcp:tools", "mcp:admin"]),
            "insufficient_scope",
            "missing scope",
        ),
    ] {
        let r = c
            .verify_token(as_client(req, &rs))
            .await
            .expect("rpc")
            .into_inner();
        assert!(!r.valid, "{why}");
        assert_eq!(r.error, error, "{why}");
        assert_eq!(
            r.error_code().rfc_code(),
            Some(error),
            "{why}: the typed code agrees"
        );
    }
    let r = c
        .verify_token(as_client(
            verify(&token, RESOURCE, &["mcp:tools", "mcp:admin"]),
            &rs,
        ))
        .await
        .expect("rpc")
        .into_inner();
    assert!(
        r.error_description.contains("mcp:tools mcp:admin"),
        "every required scope is named: {}",
        r.error_description
    );
}

/// First-seen tokens checked at the same time share signature batches; a forged one among
/// them fails alone, and every good one passes.
#[tokio::test]
async fn concurrent_first_checks_each_get_their_own_answer() {
    let app = spawn_app().await;
    let rs = app.introspector().await;
    let mut tokens = Vec::new();
    for i in 0..48 {
        let good = app.client_credentials_token((&rs.0, &rs.1)).await;
        // Every third token is forged: one with a signature byte changed, one with a payload
        // that was not signed.
        let token = match i % 6 {
            0 => {
                let (rest, sig) = good.rsplit_once('.').expect("jws");
                let mut sig = sig.to_owned().into_bytes();
                sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
                format!("{rest}.{}", String::from_utf8(sig).expect("ascii"))
            }
            3 => {
                let other = tokens.first().map(|(t, _): &(String, bool)| t.clone());
                let other = other.unwrap_or_else(|| good.clone());
                let mut parts: Vec<&str> = good.split('.').collect();
                parts[1] = other.split('.').nth(1).expect("payload");
                parts.join(".")
            }
            _ => good,
        };
        let expected = !matches!(i % 6, 0 | 3);
        tokens.push((token, expected));
    }
    let c = app.grpc().await;
    let checks = tokens.iter().map(|(token, expected)| {
        let mut c = c.clone();
        let req = as_client(verify(token, RESOURCE, &["mcp:tools"]), &rs);
        async move {
            let r = c.verify_token(req).await.expect("rpc").into_inner();
            (r.valid, *expected, r.error)
        }
    });
    let answers = futures::future::join_all(checks).await;
    for (i, (valid, expected, error)) in answers.into_iter().enumerate() {
        assert_eq!(valid, expected, "token {i}: {error}");
        if !expected {
            assert_eq!(error, "invalid_token", "token {i}");
        }
    }
}

#[tokio::test]
async fn expired_tokens_fail_verification() {
    let app = spawn_app_with(|s| {
        s.access_token_ttl_secs = 3;
        s.leeway_secs = 0;
    })
    .await;
    let rs = app.introspector().await;
    let (_, t) = user_tokens(&app).await;
    let mut c = app.grpc().await;
    let first = c
        .verify_token(as_client(verify(&at(&t), RESOURCE, &[]), &rs))
        .await
        .expect("rpc")
        .into_inner();
    assert!(first.valid, "fresh token");
    app.advance(4);
    let r = c
        .verify_token(as_client(verify(&at(&t), RESOURCE, &[]), &rs))
        .await
        .expect("rpc")
        .into_inner();
    assert!(!r.valid, "expired, even though it was cached as verified");
    assert_eq!(r.error, "invalid_token");
}

async fn verdict(
    c: &mut latchkey_proto::v1::verification_service_client::VerificationServiceClient<
        tonic::transport::Channel,
    >,
    rs: &(String, String),
    token: &str,
) -> bool {
    c.verify_token(as_client(verify(token, RESOURCE, &[]), rs))
        .await
        .expect("rpc")
        .into_inner()
        .valid
}

#[tokio::test]
async fn every_kind_of_revocation_fails_verify_token() {
    let app = spawn_app().await;
    let rs = app.introspector().await;
    let mut c = app.grpc().await;
    // An access token, revoked alone.
    let (f, t) = user_tokens(&app).await;
    assert!(verdict(&mut c, &rs, &at(&t)).await);
    http()
        .post(app.url("/revoke"))
        .form(&[("token", at(&t).as_str()), ("client_id", &f.client_id)])
        .send()
        .await
        .expect("revoke");
    assert!(!verdict(&mut c, &rs, &at(&t)).await, "access token revoked");
    // A refresh family.
    let (f, t) = user_tokens(&app).await;
    http()
        .post(app.url("/revoke"))
        .form(&[
            ("token", t["refresh_token"].as_str().expect("rt")),
            ("client_id", &f.client_id),
        ])
        .send()
        .await
        .expect("revoke");
    assert!(!verdict(&mut c, &rs, &at(&t)).await, "grant revoked");
    // A user.
    let (f, t) = user_tokens(&app).await;
    app.core().disable_user(&f.email).await.expect("disable");
    assert!(!verdict(&mut c, &rs, &at(&t)).await, "user disabled");
    // A client.
    let (f, t) = user_tokens(&app).await;
    assert!(
        app.core()
            .delete_client(&f.client_id)
            .await
            .expect("delete")
    );
    assert!(!verdict(&mut c, &rs, &at(&t)).await, "client deleted");
    // A client_credentials token of a deleted client.
    let (svc, svc_secret) = app.operator_client(&[RESOURCE], None).await;
    let (_, cc) = app
        .token_with(
            http()
                .post(app.url("/token"))
                .basic_auth(&svc, Some(&svc_secret))
                .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)]),
        )
        .await;
    assert!(verdict(&mut c, &rs, &at(&cc)).await);
    app.core().delete_client(&svc).await.expect("delete");
    assert!(
        !verdict(&mut c, &rs, &at(&cc)).await,
        "service client deleted"
    );
}

/// Polls `replica` until the token stops verifying; the bound is the 2-second promise.
async fn revoked_on(replica: &Replica, rs: &(String, String), token: &str) -> Option<Duration> {
    let mut c = replica.grpc().await;
    let start = Instant::now();
    for _ in 0..40 {
        if !verdict(&mut c, rs, token).await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn revocation_reaches_another_replica_within_two_seconds() {
    let app = spawn_app_with(|s| s.redis_url = test_redis_url()).await;
    let replica = app.replica().await;
    let rs = app.introspector().await;
    let (f, t) = user_tokens(&app).await;
    let mut c = replica.grpc().await;
    assert!(
        verdict(&mut c, &rs, &at(&t)).await,
        "the replica accepts the token first"
    );
    http()
        .post(app.url("/revoke"))
        .form(&[("token", at(&t).as_str()), ("client_id", &f.client_id)])
        .send()
        .await
        .expect("revoke");
    let took = revoked_on(&replica, &rs, &at(&t)).await;
    assert!(
        took.is_some(),
        "the replica learned of the revocation within 2 s"
    );
}

#[tokio::test]
async fn redis_carries_revocations_without_the_database_poll() {
    let Some(redis) = test_redis_url() else {
        eprintln!("LATCHKEY_TEST_REDIS_URL is unset: the Redis fan-out suite runs in CI");
        return;
    };
    // A one-minute poll: only Redis pub/sub can deliver within 2 s.
    let app = spawn_app_with(|s| {
        s.redis_url = Some(redis);
        s.revocation_poll_ms = 60_000;
    })
    .await;
    let replica = app.replica().await;
    // Let the replica's subscription settle before revoking.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rs = app.introspector().await;
    let (f, t) = user_tokens(&app).await;
    app.core().disable_user(&f.email).await.expect("disable");
    assert!(
        revoked_on(&replica, &rs, &at(&t)).await.is_some(),
        "pub/sub delivered the revocation"
    );
}

#[tokio::test]
async fn a_replica_started_later_knows_earlier_revocations() {
    let app = spawn_app().await;
    let rs = app.introspector().await;
    let (f, t) = user_tokens(&app).await;
    http()
        .post(app.url("/revoke"))
        .form(&[("token", at(&t).as_str()), ("client_id", &f.client_id)])
        .send()
        .await
        .expect("revoke");
    let replica = app.replica().await;
    let mut c = replica.grpc().await;
    assert!(
        !verdict(&mut c, &rs, &at(&t)).await,
        "replayed from the database at startup"
    );
}

#[tokio::test]
// The older events-only stream stays served for existing watchers.
#[allow(deprecated)]
async fn watch_revocations_streams_what_is_in_force_then_new_events() {
    let app = spawn_app().await;
    let rs = app.introspector().await;
    let (f1, t1) = user_tokens(&app).await;
    http()
        .post(app.url("/revoke"))
        .form(&[("token", at(&t1).as_str()), ("client_id", &f1.client_id)])
        .send()
        .await
        .expect("revoke");
    let mut c = app.grpc().await;
    let unauth = c
        .watch_revocations(pb::WatchRevocationsRequest {})
        .await
        .expect_err("no credentials");
    assert_eq!(unauth.code(), Code::Unauthenticated);
    // The original stream: events only, for watchers built before the end-of-snapshot mark.
    let mut events = c
        .watch_revocations(as_client(pb::WatchRevocationsRequest {}, &rs))
        .await
        .expect("watch")
        .into_inner();
    let old = tokio::time::timeout(Duration::from_secs(2), events.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("event");
    assert_eq!(old.kind, "token");
    let mut stream = c
        .watch_revocation_updates(as_client(pb::WatchRevocationsRequest {}, &rs))
        .await
        .expect("watch")
        .into_inner();
    use pb::revocation_update::Update;
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(2), stream.message())
            .await
            .expect("in time")
            .expect("ok")
            .expect("update")
            .update
            .expect("an update")
    };
    let Update::Event(first) = next().await else {
        panic!("the snapshot comes first")
    };
    assert_eq!(
        first.kind, "token",
        "the snapshot carries the earlier revocation"
    );
    assert!(
        matches!(next().await, Update::SnapshotComplete(_)),
        "then the end of the snapshot"
    );
    let (f2, _) = user_tokens(&app).await;
    let before = chrono::Utc::now().timestamp();
    app.core().disable_user(&f2.email).await.expect("disable");
    let Update::Event(live) = next().await else {
        panic!("then live events")
    };
    assert_eq!(live.kind, "user");
    let old_live = tokio::time::timeout(Duration::from_secs(2), events.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("event");
    assert_eq!(old_live.kind, "user", "the original stream carries it too");
    // Tokens minted in the next moments (another replica's cached view, a clock a little
    // ahead) still fall under it, and the event outlives every token it covers.
    let leeway = app.settings.leeway_secs as i64;
    assert!(
        live.revoked_at >= before + leeway + 2,
        "revoked_at {} covers tokens minted just after {before}",
        live.revoked_at
    );
    assert!(
        live.expires_at >= live.revoked_at + app.settings.access_token_ttl_secs as i64 + leeway
    );
}

#[tokio::test]
async fn watch_keys_sends_the_jwks() {
    let app = spawn_app().await;
    let rs = app.introspector().await;
    let mut c = app.grpc().await;
    let mut stream = c
        .watch_keys(as_client(pb::WatchKeysRequest {}, &rs))
        .await
        .expect("watch")
        .into_inner();
    let doc = tokio::time::timeout(Duration::from_secs(2), stream.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("jwks");
    let jwks: serde_json::Value = serde_json::from_str(&doc.json).expect("json");
    let http_jwks: serde_json::Value = http()
        .get(app.url("/jwks.json"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(jwks, http_jwks);
}

#[tokio::test]
async fn forward_auth_answers_proxies_with_identity_headers_or_a_challenge() {
    let app = spawn_app_with(|s| s.forward_auth_audience = Some(RESOURCE.into())).await;
    let (f, t) = user_tokens(&app).await;
    let token = at(&t);
    let get = |query: &str, bearer: Option<&str>| {
        let mut req = http().get(format!("{}?{query}", app.forward_auth_url("/verify")));
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        req.send()
    };
    let ok = get("scope=mcp%3Atools", Some(&token)).await.expect("get");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-auth-client-id"], f.client_id.as_str());
    assert!(
        ok.headers()["x-auth-scope"]
            .to_str()
            .expect("ascii")
            .contains("mcp:tools")
    );
    assert!(!ok.headers()["x-auth-subject"].is_empty());
    assert_eq!(ok.headers()["x-auth-subject-type"], "user");
    let (svc, svc_secret) = app.operator_client(&[RESOURCE], None).await;
    let (_, body) = app
        .token_with(
            http()
                .post(app.url("/token"))
                .basic_auth(&svc, Some(&svc_secret))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    let client_token = at(&body);
    let by_client = get("", Some(&client_token)).await.expect("get");
    assert_eq!(by_client.status(), 200);
    assert_eq!(by_client.headers()["x-auth-subject-type"], "client");
    assert_eq!(by_client.headers()["x-auth-subject"], svc.as_str());
    let explicit = get(
        &format!(
            "audience={}",
            url::form_urlencoded::byte_serialize(RESOURCE.as_bytes()).collect::<String>()
        ),
        Some(&token),
    )
    .await
    .expect("get");
    assert_eq!(explicit.status(), 200);

    let cases = [
        (get("", None).await.expect("get"), 401, None, "no token"),
        (
            get(&format!("access_token={token}"), None)
                .await
                .expect("get"),
            401,
            None,
            "token in the query is ignored",
        ),
        (
            get("", Some("garbage")).await.expect("get"),
            401,
            Some("invalid_token"),
            "malformed token",
        ),
        (
            get(
                "audience=https%3A%2F%2Fother.example.com%2Fmcp",
                Some(&token),
            )
            .await
            .expect("get"),
            401,
            Some("invalid_token"),
            "wrong audience",
        ),
        (
            get("scope=mcp%3Atools+mcp%3Aadmin", Some(&token))
                .await
                .expect("get"),
            403,
            Some("insufficient_scope"),
            "missing scope",
        ),
    ];
    for (res, status, error, why) in cases {
        assert_eq!(res.status().as_u16(), status, "{why}");
        let www = res
            .headers()
            .get("www-authenticate")
            .expect("challenge")
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(www.starts_with("Bearer "), "{why}: {www}");
        match error {
            Some(e) => assert!(www.contains(&format!("error=\"{e}\"")), "{why}: {www}"),
            None => assert!(!www.contains("error="), "{why}: {www}"),
        }
        if status == 403 {
            assert!(
                www.contains("scope=\"mcp:tools mcp:admin\""),
                "{why}: every needed scope in one challenge: {www}"
            );
        }
        if why != "wrong audience" {
            assert!(
                www.contains(
                    "resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
                ),
                "{why}: the challenge points at the resource's metadata: {www}"
            );
        }
    }

    // Two Authorization headers: the backend might read the other one.
    let twice = http()
        .get(app.forward_auth_url("/verify"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", "Bearer forged")
        .send()
        .await
        .expect("get");
    assert_eq!(twice.status(), 400);
    assert!(
        twice.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .contains("error=\"invalid_request\"")
    );
}

/// A resource behind ForwardAuth knows no OAuth: the proxy routes its well-known metadata
/// path to the gateway, which answers for the resources this server knows.
#[tokio::test]
async fn the_gateway_serves_metadata_for_resources_behind_forward_auth() {
    let app = spawn_app_with(|s| {
        s.trusted_proxies = latchkey::config::TrustedProxies::parse("127.0.0.1").expect("ranges");
        s.resources = vec![latchkey::config::ResourceConfig {
            url: RESOURCE.into(),
            scopes: Some("mcp:tools".into()),
            default: true,
            implies: Default::default(),
        }];
    })
    .await;
    let get = |path: &str, host: &str| {
        http()
            .get(app.url(path))
            .header("x-forwarded-host", host)
            .header("x-forwarded-proto", "https")
            .send()
    };
    let res = get(
        "/.well-known/oauth-protected-resource/mcp",
        "mcp.example.com",
    )
    .await
    .expect("get");
    assert_eq!(res.status(), 200);
    let doc: serde_json::Value = res.json().await.expect("json");
    assert_eq!(doc["resource"], RESOURCE);
    assert_eq!(doc["authorization_servers"][0], app.base.as_str());
    assert_eq!(doc["bearer_methods_supported"][0], "header");
    assert_eq!(doc["scopes_supported"], serde_json::json!(["mcp:tools"]));
    for (path, host, why) in [
        (
            "/.well-known/oauth-protected-resource/other",
            "mcp.example.com",
            "unknown path",
        ),
        (
            "/.well-known/oauth-protected-resource/mcp",
            "evil.example.com",
            "unknown host",
        ),
    ] {
        let res = get(path, host).await.expect("get");
        assert_eq!(res.status(), 404, "{why}");
    }
}

/// MCP 2026-07-28: `offline_access` names no access to a resource, so a resource that
/// accepts every scope lists every one but that, and a challenge never asks for it.
#[tokio::test]
async fn offline_access_is_never_a_scope_of_a_resource() {
    let app = spawn_app_with(|s| {
        s.trusted_proxies = latchkey::config::TrustedProxies::parse("127.0.0.1").expect("ranges");
        s.resources = vec![latchkey::config::ResourceConfig {
            url: RESOURCE.into(),
            scopes: None,
            default: true,
            implies: Default::default(),
        }];
    })
    .await;
    let res = http()
        .get(app.url("/.well-known/oauth-protected-resource/mcp"))
        .header("x-forwarded-host", "mcp.example.com")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 200);
    let doc: serde_json::Value = res.json().await.expect("json");
    let mut scopes: Vec<&str> = doc["scopes_supported"]
        .as_array()
        .expect("scopes")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["mcp:prompts", "mcp:resources", "mcp:tools"]);
}
