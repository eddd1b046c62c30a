//! State shared between replicas: authorization sessions and sign-in lockout.

use crate::common::*;
use std::time::Duration;

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
    let page = authorize(app, &b, &auth_params(client_id, "http://127.0.0.1:7777/callback", &p)).await;
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
    assert!(ghost_html.contains("Too many failed sign-in attempts"), "an unknown email locks the same way");
    // The lock expires.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (status, _) = attempt(&app, &client_id, &email, PASSWORD).await;
    assert_eq!(status, 200, "the right password works once the lock has passed");
}
