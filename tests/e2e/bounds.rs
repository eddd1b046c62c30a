//! Bounded memory and storage, as an HTTP client meets them: oversized parameters and
//! metadata, the authorizations in progress per address (in memory and in Redis), the bound
//! on self-registered clients, the revocations one client can add, and what goes with time:
//! idle clients (and the page that tells the user to register again), expiring client
//! secrets, the maximum age of a refresh grant, and the purge.

use crate::common::*;
use latchkey_core::store::{ClientStore, MaintenanceStore};
use serde_json::{Value, json};

const DAY: i64 = 24 * 3600;
const REDIRECT: &str = "http://127.0.0.1:7777/callback";

#[tokio::test]
async fn a_60_kb_state_is_refused_on_a_page_with_no_session_and_no_redirect() {
    let app = spawn_app().await;
    let client_id = app.public_client(REDIRECT).await;
    let p = pkce();
    let state = "s".repeat(60 * 1024);
    let mut params = auth_params(&client_id, REDIRECT, &p);
    params.retain(|(k, _)| *k != "state");
    params.push(("state", state.as_str()));
    let res = authorize(&app, &browser(), &params).await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none(), "never redirected");
    assert!(res.headers().get("set-cookie").is_none(), "no session");
    let html = res.text().await.expect("html");
    assert!(html.contains("invalid_request"), "{html}");
    assert!(html.contains("state is too long"), "{html}");
    assert!(!html.contains(&state[..100]), "the state is not echoed");
}

/// `/authorize` from the test's address (127.0.0.1) for `client_id`; returns the status.
async fn start(app: &TestApp, client_id: &str) -> (u16, String) {
    let p = pkce();
    let res = authorize(app, &browser(), &auth_params(client_id, REDIRECT, &p)).await;
    let status = res.status().as_u16();
    (status, res.text().await.expect("html"))
}

async fn sessions_per_address_are_bounded(app: TestApp) {
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.add_user(&email).await;
    let client_id = app.public_client(REDIRECT).await;
    // One in progress through to its end, two more waiting.
    let b = browser();
    let p = pkce();
    let first = authorize(&app, &b, &auth_params(&client_id, REDIRECT, &p)).await;
    assert_eq!(first.status(), 200);
    for _ in 0..2 {
        assert_eq!(start(&app, &client_id).await.0, 200);
    }
    let (status, html) = start(&app, &client_id).await;
    assert_eq!(status, 503, "the fourth from one address: {html}");
    assert!(html.contains("temporarily_unavailable"), "{html}");
    assert!(html.contains("too many sign-ins are in progress"), "{html}");

    // Signing in keeps its one place; finishing frees it.
    let consent = login(&app, &b, first, &email, PASSWORD).await;
    assert_eq!(consent.status(), 200);
    assert_eq!(start(&app, &client_id).await.0, 503);
    let done = decide(&app, &b, consent, "allow").await;
    assert_eq!(done.status(), 303);
    assert_eq!(start(&app, &client_id).await.0, 200, "a place was freed");
    assert_eq!(start(&app, &client_id).await.0, 503);

    // Expired sessions free theirs.
    app.advance(app.settings.session_ttl_secs + 1);
    for _ in 0..3 {
        assert_eq!(start(&app, &client_id).await.0, 200);
    }
}

#[tokio::test]
async fn the_authorizations_in_progress_from_one_address_are_bounded_in_memory() {
    let app = spawn_app_with(|s| s.max_sessions_per_address = 3).await;
    sessions_per_address_are_bounded(app).await;
}

#[tokio::test]
async fn the_authorizations_in_progress_from_one_address_are_bounded_in_redis_across_replicas() {
    let Some(redis) = test_redis_url() else {
        eprintln!("LATCHKEY_TEST_REDIS_URL is unset: the Redis half runs in CI");
        return;
    };
    // Rate limits off: in Redis they are shared with every other test on this address, and
    // this test must not spend their budget.
    let app = spawn_app_with(|s| {
        s.redis_url = Some(redis);
        s.max_sessions_per_address = 3;
        s.rate_limit_authorize_per_min = 0;
        s.rate_limit_login_per_min = 0;
    })
    .await;
    let peer = app.peer().await;
    let client_id = app.public_client(REDIRECT).await;
    // Two on one replica and one on the other fill the address's places on both.
    assert_eq!(start(&app, &client_id).await.0, 200);
    assert_eq!(start(&peer, &client_id).await.0, 200);
    assert_eq!(start(&app, &client_id).await.0, 200);
    assert_eq!(start(&peer, &client_id).await.0, 503, "the bound is shared");
    drop(peer);
    // The places left are counted as above; run the whole sequence on a fresh app.
    let fresh = spawn_app_with(|s| {
        s.redis_url = test_redis_url();
        s.max_sessions_per_address = 3;
        s.rate_limit_authorize_per_min = 0;
        s.rate_limit_login_per_min = 0;
    })
    .await;
    sessions_per_address_are_bounded(fresh).await;
    drop(app);
}

#[tokio::test]
async fn registration_past_the_bound_on_dynamic_clients_answers_503_temporarily_unavailable() {
    let app = spawn_app_with(|s| s.max_dynamic_clients = 2).await;
    app.public_client(REDIRECT).await;
    app.public_client(REDIRECT).await;
    let res = app
        .register(json!({
            "client_name": "third",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    // The operator still adds clients.
    app.operator_client(&[RESOURCE], None).await;
}

#[tokio::test]
async fn registration_metadata_past_its_bounds_is_refused() {
    let app = spawn_app().await;
    let base = || {
        json!({
            "client_name": "ok",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
        })
    };
    let with = |k: &str, v: Value| {
        let mut m = base();
        m[k] = v;
        m
    };
    let cases = [
        (
            with("client_name", json!("n".repeat(501))),
            "invalid_client_metadata",
            "a long name",
        ),
        (
            with("contacts", json!(vec!["a@example.com"; 11])),
            "invalid_client_metadata",
            "eleven contacts",
        ),
        (
            with(
                "redirect_uris",
                json!(
                    (0..21)
                        .map(|i| format!("{REDIRECT}{i}"))
                        .collect::<Vec<_>>()
                ),
            ),
            "invalid_redirect_uri",
            "twenty-one redirect URIs",
        ),
    ];
    for (metadata, code, case) in cases {
        let res = app.register(metadata).await;
        assert_eq!(res.status(), 400, "{case}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["error"], code, "{case}: {body}");
    }
}

#[tokio::test]
async fn the_page_for_an_unknown_client_says_the_application_must_register_again() {
    let app = spawn_app().await;
    let p = pkce();
    let res = authorize(
        &app,
        &browser(),
        &auth_params("a-client-id-nobody-knows", REDIRECT, &p),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    let html = res.text().await.expect("html");
    assert!(
        html.contains("This application must register again"),
        "{html}"
    );
    assert!(html.contains("invalid_client"), "{html}");

    // The same page when the client goes while the user decides; nothing is issued.
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.add_user(&email).await;
    let client_id = app.public_client(REDIRECT).await;
    let b = browser();
    let page = authorize(&app, &b, &auth_params(&client_id, REDIRECT, &p)).await;
    let consent = login(&app, &b, page, &email, PASSWORD).await;
    assert_eq!(consent.status(), 200);
    assert!(app.core().delete_client(&client_id).await.expect("delete"));
    let res = decide(&app, &b, consent, "allow").await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    let html = res.text().await.expect("html");
    assert!(
        html.contains("This application must register again"),
        "{html}"
    );
}

/// A public client for the code flow with the grant types given; returns its id.
async fn client_with(app: &TestApp, grant_types: &[&str]) -> String {
    let res = app
        .register(json!({
            "client_name": "mcp",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": grant_types,
        }))
        .await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.expect("json")["client_id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Signs `email` in for `client_id` and exchanges the code; returns the token response.
async fn tokens(app: &TestApp, client_id: &str, email: &str) -> Value {
    let p = pkce();
    let code = code_flow(app, &auth_params(client_id, REDIRECT, &p), email)
        .await
        .remove("code")
        .expect("code");
    let (status, body) = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", p.verifier.as_str()),
            ("client_id", client_id),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn an_idle_dynamic_client_is_deleted_and_must_register_again() {
    let app = spawn_app_with(|s| {
        s.refresh_token_ttl_secs = 200 * DAY;
        s.refresh_max_age_days = 0;
    })
    .await;
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.add_user(&email).await;
    let holder = client_with(&app, &["authorization_code", "refresh_token"]).await;
    let idle = client_with(&app, &["authorization_code"]).await;
    let held = tokens(&app, &holder, &email).await;
    tokens(&app, &idle, &email).await;

    let store = app.store().await;
    assert!(store.find_client(&idle).await.expect("find").is_some());

    app.advance(91 * DAY);
    // Maintenance purges every minute; purge now rather than wait for it.
    app.core().purge_expired(false).await.expect("purge");
    assert!(store.find_client(&idle).await.expect("find").is_none());
    assert!(store.find_client(&holder).await.expect("find").is_some());

    // The deleted client: 401 invalid_client at /token, and the register-again page.
    let (status, body) = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", "whatever"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &pkce().verifier),
            ("client_id", idle.as_str()),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    let p = pkce();
    let res = authorize(&app, &browser(), &auth_params(&idle, REDIRECT, &p)).await;
    assert_eq!(res.status(), 400);
    assert!(
        res.text()
            .await
            .expect("html")
            .contains("This application must register again")
    );
    // Nothing issued to it is left in the database.
    let stats = store.stats(app.core().now()).await.expect("stats");
    assert_eq!(stats.grants, 1, "only the holder's grant: {stats:?}");

    // The client that holds a live refresh token stays, and refreshes.
    let (status, body) = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", held["refresh_token"].as_str().expect("rt")),
            ("client_id", holder.as_str()),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_expired_dynamic_client_secret_is_invalid_client() {
    let app = spawn_app_with(|s| s.dynamic_client_secret_days = 1).await;
    let res = app
        .register(json!({
            "client_name": "confidential",
            "redirect_uris": [REDIRECT],
        }))
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    let expires = body["client_secret_expires_at"].as_i64().expect("a number");
    let issued = body["client_id_issued_at"].as_i64().expect("a number");
    assert_eq!(expires - issued, DAY, "{body}");
    let id = body["client_id"].as_str().expect("id").to_owned();
    let secret = body["client_secret"].as_str().expect("secret").to_owned();
    let revoke = |app: &TestApp| {
        http()
            .post(app.url("/revoke"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", "not-a-token")])
            .send()
    };
    assert_eq!(revoke(&app).await.expect("POST").status(), 200);
    app.advance(DAY);
    let res = revoke(&app).await.expect("POST");
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("expired")),
        "{body}"
    );
}

#[tokio::test]
async fn a_refresh_past_the_grants_maximum_age_answers_invalid_grant() {
    let app = spawn_app_with(|s| s.refresh_max_age_days = 2).await;
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.add_user(&email).await;
    let client_id = client_with(&app, &["authorization_code", "refresh_token"]).await;
    let mut rt = tokens(&app, &client_id, &email).await["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    let refresh = |rt: String| {
        let client_id = client_id.clone();
        let app = &app;
        async move {
            app.token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
                ("client_id", client_id.as_str()),
            ])
            .await
        }
    };
    app.advance(DAY);
    let (status, body) = refresh(rt).await;
    assert_eq!(status, 200, "within the maximum age: {body}");
    rt = body["refresh_token"].as_str().expect("rotated").to_owned();
    app.advance(DAY);
    let (status, body) = refresh(rt).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}

#[tokio::test]
async fn past_its_bound_revoking_a_client_credentials_token_answers_503() {
    let app = spawn_app_with(|s| s.max_token_revocations_per_client = 1).await;
    app.core()
        .add_resource(RESOURCE, None, true)
        .await
        .expect("resource");
    let (id, secret) = app.operator_client(&[RESOURCE], None).await;
    let mint = || async {
        let (status, body) = app
            .token_with(
                http()
                    .post(app.url("/token"))
                    .basic_auth(&id, Some(&secret))
                    .form(&[("grant_type", "client_credentials")]),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().expect("token").to_owned()
    };
    let revoke = |token: String| {
        http()
            .post(app.url("/revoke"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", token)])
            .send()
    };
    let (a, b) = (mint().await, mint().await);
    assert_eq!(revoke(a).await.expect("POST").status(), 200);
    let res = revoke(b).await.expect("POST");
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn the_purge_deletes_what_can_no_longer_be_used_on_the_database() {
    let app = spawn_app().await;
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.add_user(&email).await;
    let client_id = client_with(&app, &["authorization_code", "refresh_token"]).await;
    let first = tokens(&app, &client_id, &email).await;
    // Rotate once: the used token is kept for reuse detection.
    let (status, rotated) = app
        .token(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                first["refresh_token"].as_str().expect("rt"),
            ),
            ("client_id", client_id.as_str()),
        ])
        .await;
    assert_eq!(status, 200, "{rotated}");
    // A second family, revoked: its refresh token goes at once.
    let second = tokens(&app, &client_id, &email).await;
    let res = http()
        .post(app.url("/revoke"))
        .form(&[
            ("token", second["refresh_token"].as_str().expect("rt")),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .expect("POST /revoke");
    assert_eq!(res.status(), 200);

    let mut admin = app.admin_grpc().await;
    let purge = |dry_run| latchkey_proto::v1::PurgeExpiredRequest { dry_run };
    let now = admin
        .purge_expired(purge(false))
        .await
        .expect("purge")
        .into_inner();
    assert_eq!(
        (now.refresh_tokens, now.grants, now.codes),
        (1, 0, 0),
        "{now:?}"
    );

    app.advance(DAY + 3600);
    let day = admin
        .purge_expired(purge(true))
        .await
        .expect("dry run")
        .into_inner();
    assert_eq!((day.codes, day.grants), (2, 1), "{day:?}");
    let day = admin
        .purge_expired(purge(false))
        .await
        .expect("purge")
        .into_inner();
    assert_eq!((day.codes, day.grants), (2, 1), "{day:?}");
    // The live family keeps its rotated-away token: a replay still revokes the family.
    let (status, body) = app
        .token(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                first["refresh_token"].as_str().expect("rt"),
            ),
            ("client_id", client_id.as_str()),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("already used")),
        "{body}"
    );
    let after = admin
        .purge_expired(purge(false))
        .await
        .expect("purge")
        .into_inner();
    assert_eq!(
        (after.refresh_tokens, after.grants),
        (2, 1),
        "the revoked family's tokens, and then its grant: {after:?}"
    );
    // Once the access tokens the revocations covered have expired, the events go too.
    app.advance(2 * 3600);
    let last = admin
        .purge_expired(purge(false))
        .await
        .expect("purge")
        .into_inner();
    assert!(last.revocation_events >= 1, "{last:?}");
    let none = admin
        .purge_expired(purge(true))
        .await
        .expect("dry run")
        .into_inner();
    assert_eq!(
        (
            none.codes,
            none.refresh_tokens,
            none.grants,
            none.revocation_events
        ),
        (0, 0, 0, 0),
        "{none:?}"
    );
}
