//! Storage that would otherwise only grow: the purge of what can no longer be used, the
//! deletion of self-registered clients gone unused, expiring client secrets, and the
//! absolute maximum age of a refresh grant. Time passes on the manual clock.

mod common;

use chrono::Duration;
use common::*;
use latchkey_core::clock::Clock;
use latchkey_core::model::{AuthMethod, GrantType};
use latchkey_core::store::{ClientStore, Expired, GrantStore};
use latchkey_core::{AuthError, Reason, secret};
use serde_json::json;

const DAY: i64 = 86_400;

#[tokio::test]
async fn the_purge_deletes_expired_codes_spent_refresh_tokens_and_dead_grants_and_keeps_reuse_detection()
 {
    let t = core().await;
    client("app").seed(&t).await;
    let user = seed_user(&t, EMAIL).await;

    // A live family that rotated once: its used token stays, to catch a replay.
    let live = grant(&t, "app", user.id);
    let first = tokens(&t, public("app"), &live).await;
    let used = first.refresh_token.expect("refresh");
    let rotated = t
        .core
        .exchange_token(refresh_request(public("app"), &used))
        .await
        .expect("rotated");
    // A revoked family: nothing of it can be used again.
    let revoked = grant(&t, "app", user.id);
    let gone = tokens(&t, public("app"), &revoked).await;
    t.core
        .revoke(
            &gone.refresh_token.expect("refresh"),
            None,
            &public("app"),
            &[],
        )
        .await
        .expect("revoked");
    // A code never redeemed.
    let unredeemed = grant(&t, "app", user.id);
    seed_code(&t, &unredeemed).await;

    let now_counts = t.core.purge_expired(true).await.expect("dry run");
    assert_eq!(
        (
            now_counts.codes,
            now_counts.refresh_tokens,
            now_counts.grants
        ),
        (0, 1, 0),
        "at once only the revoked family's refresh token goes"
    );
    let purged = t.core.purge_expired(false).await.expect("purge");
    assert_eq!(
        purged, now_counts,
        "the dry run counted what the purge deletes"
    );
    assert_eq!(
        t.store.refresh_tokens().len(),
        2,
        "the live family's two remain"
    );

    // A day and the longest code later: the codes are gone, and with them the grants that
    // hold nothing else; the live family stays whole.
    advance(&t, DAY + 700);
    let later = t.core.purge_expired(false).await.expect("purge");
    assert_eq!(later.codes, 3);
    assert_eq!(later.grants, 2, "the revoked and the unredeemed grant");
    assert!(t.store.grants().iter().any(|g| g.id == live.id));

    // The used token still revokes its family when it comes back.
    match t
        .core
        .exchange_token(refresh_request(public("app"), &used))
        .await
    {
        Err(AuthError::InvalidGrant(Reason::RefreshTokenReused)) => {}
        other => panic!("reuse is still detected, got {other:?}"),
    }
    let next = rotated.refresh_token.expect("rotated");
    assert_eq!(
        err_code(
            t.core
                .exchange_token(refresh_request(public("app"), &next))
                .await,
            "the family is revoked"
        ),
        "invalid_grant"
    );

    // Once the refresh tokens expire, nothing is left of the family.
    advance(&t, 31 * DAY);
    let last = t.core.purge_expired(false).await.expect("purge");
    assert_eq!(last.grants, 1);
    assert!(t.store.grants().is_empty());
    assert!(t.store.refresh_tokens().is_empty());
    assert!(t.store.codes().is_empty());
    assert_eq!(
        t.core.purge_expired(false).await.expect("purge"),
        Expired::default(),
        "nothing left to delete"
    );
}

#[tokio::test]
async fn the_purge_forgets_expired_authorization_sessions() {
    let t = core().await;
    client("app").seed(&t).await;
    for _ in 0..3 {
        start(&t, authorization_request("app")).await;
    }
    assert_eq!(
        t.core.purge_expired(false).await.expect("purge").sessions,
        0
    );
    advance(&t, t.core.settings().session_ttl.num_seconds());
    assert_eq!(
        t.core.purge_expired(true).await.expect("dry run").sessions,
        3
    );
    assert_eq!(t.sessions.len(), 3, "a dry run forgets nothing");
    assert_eq!(
        t.core.purge_expired(false).await.expect("purge").sessions,
        3
    );
    assert!(t.sessions.is_empty());
}

/// Seeds a `dynamic` client created now.
async fn dynamic(t: &TestCore, id: &str) {
    client(id).created_at(t.clock.now()).seed(t).await;
}

#[tokio::test]
async fn dynamic_clients_unused_for_the_idle_period_without_a_live_refresh_token_are_deleted() {
    let t = core_with(|s| {
        s.dynamic_client_idle = Some(Duration::days(90));
        s.refresh_token_ttl = Duration::days(200);
        s.refresh_max_age = None;
    })
    .await;
    let user = seed_user(&t, EMAIL).await;
    // Holds a refresh token that lives past the idle period: kept.
    dynamic(&t, "holder").await;
    // Used once, for a code without refresh: deleted.
    client("no-refresh")
        .grants(&[GrantType::AuthorizationCode])
        .created_at(t.clock.now())
        .seed(&t)
        .await;
    // Registered and never used: deleted.
    dynamic(&t, "never-used").await;
    // Used again on day 80: kept.
    client("regular")
        .grants(&[GrantType::AuthorizationCode])
        .created_at(t.clock.now())
        .seed(&t)
        .await;
    // An operator's client is never deleted for disuse.
    client("operator")
        .operator(&[])
        .created_at(t.clock.now())
        .seed(&t)
        .await;

    tokens(&t, public("holder"), &grant(&t, "holder", user.id)).await;
    tokens(&t, public("no-refresh"), &grant(&t, "no-refresh", user.id)).await;
    advance(&t, 80 * DAY);
    tokens(&t, public("regular"), &grant(&t, "regular", user.id)).await;
    advance(&t, 11 * DAY);

    assert_eq!(
        t.core
            .purge_expired(true)
            .await
            .expect("dry run")
            .idle_clients,
        2
    );
    assert!(
        t.store
            .find_client("never-used")
            .await
            .expect("find")
            .is_some()
    );
    let purged = t.core.purge_expired(false).await.expect("purge");
    assert_eq!(purged.idle_clients, 2);
    for (id, kept) in [
        ("holder", true),
        ("no-refresh", false),
        ("never-used", false),
        ("regular", true),
        ("operator", true),
    ] {
        assert_eq!(
            t.store.find_client(id).await.expect("find").is_some(),
            kept,
            "{id}"
        );
    }
    // Everything issued to a deleted client went with it.
    assert!(t.store.grants().iter().all(|g| g.client_id != "no-refresh"));
    assert!(
        t.store
            .consents()
            .iter()
            .all(|c| c.client_id != "no-refresh")
    );

    // The deleted client is told to register again, at /token and at /authorize; its
    // access tokens are revoked.
    assert_eq!(
        err_code(
            t.core
                .exchange_token(code_request(public("no-refresh"), "any-code"))
                .await,
            "a deleted client at /token"
        ),
        "invalid_client"
    );
    match t
        .core
        .start_authorization(authorization_request("no-refresh"))
        .await
    {
        Err(e @ AuthError::InvalidClient(Reason::UnknownClient)) => {
            assert!(
                e.description().contains("must register again"),
                "{}",
                e.description()
            );
        }
        other => panic!("expected unknown client, got {other:?}"),
    }

    // Once its refresh token has expired, the holder goes too.
    advance(&t, 110 * DAY);
    assert_eq!(
        t.core
            .purge_expired(false)
            .await
            .expect("purge")
            .idle_clients,
        2
    );
    assert!(t.store.find_client("holder").await.expect("find").is_none());
}

#[tokio::test]
async fn with_no_idle_period_no_client_is_deleted_for_disuse() {
    let t = core_with(|s| {
        s.dynamic_client_idle = None;
        s.dynamic_client_unused = None;
    })
    .await;
    dynamic(&t, "never-used").await;
    advance(&t, 3650 * DAY);
    assert_eq!(
        t.core
            .purge_expired(false)
            .await
            .expect("purge")
            .idle_clients,
        0
    );
    assert!(
        t.store
            .find_client("never-used")
            .await
            .expect("find")
            .is_some()
    );
}

#[tokio::test]
async fn a_client_with_a_code_waiting_to_be_redeemed_is_not_idle() {
    let t = core_with(|s| s.dynamic_client_idle = Some(Duration::days(1))).await;
    dynamic(&t, "app").await;
    let user = seed_user(&t, EMAIL).await;
    advance(&t, 2 * DAY);
    let code = seed_code(&t, &grant(&t, "app", user.id)).await;
    assert_eq!(
        t.core
            .purge_expired(false)
            .await
            .expect("purge")
            .idle_clients,
        0
    );
    t.core
        .exchange_token(code_request(public("app"), &code))
        .await
        .expect("the code still works");
}

#[tokio::test]
async fn a_pending_authorization_of_a_client_deleted_meanwhile_ends_with_unknown_client() {
    let t = core().await;
    client("app").seed(&t).await;
    seed_user(&t, EMAIL).await;
    let prompt = start(&t, authorization_request("app")).await;
    let prompt = login(&t, &prompt, EMAIL).await;
    assert!(t.core.delete_client("app").await.expect("delete"));
    match t
        .core
        .submit_consent(&prompt.session_id, &prompt.csrf_token, true)
        .await
    {
        Err(AuthError::InvalidClient(Reason::UnknownClient)) => {}
        other => panic!("expected unknown client, got {other:?}"),
    }
    assert!(t.store.grants().is_empty(), "nothing stored for it");
}

fn confidential_metadata() -> String {
    json!({
        "client_name": "mcp",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "client_secret_basic",
    })
    .to_string()
}

#[tokio::test]
async fn a_dynamic_clients_secret_expires_when_the_operator_sets_a_lifetime() {
    let t = core_with(|s| s.dynamic_client_secret_ttl = Some(Duration::days(30))).await;
    let reg = t
        .core
        .register_client(&confidential_metadata(), None)
        .await
        .expect("registered");
    let secret = reg.client_secret.clone().expect("confidential");
    let expires = t.clock.now() + Duration::days(30);
    assert_eq!(
        reg.to_json()["client_secret_expires_at"],
        json!(expires.timestamp())
    );
    let creds = || latchkey_core::client_auth::PresentedCredentials {
        basic: Some((reg.client.id.clone(), secret.clone())),
        ..Default::default()
    };
    t.core.authenticate_client(&creds()).await.expect("valid");
    advance(&t, 30 * DAY);
    match t.core.authenticate_client(&creds()).await {
        Err(AuthError::InvalidClient(Reason::ClientSecretExpired)) => {}
        other => panic!("an expired secret is invalid_client, got {other:?}"),
    }
    // Only the holder of the secret learns that it expired.
    let wrong = latchkey_core::client_auth::PresentedCredentials {
        basic: Some((reg.client.id.clone(), "wrong".into())),
        ..Default::default()
    };
    match t.core.authenticate_client(&wrong).await {
        Err(AuthError::InvalidClient(Reason::ClientAuthenticationFailed)) => {}
        other => panic!("a wrong secret says nothing more, got {other:?}"),
    }
    // An operator's client's secret does not expire by this setting.
    let op = t
        .core
        .register_operator_client(&confidential_metadata(), &[], &[])
        .await
        .expect("operator");
    assert_eq!(op.to_json()["client_secret_expires_at"], json!(0));
    assert_eq!(op.client.secret_expires_at, None);
}

#[tokio::test]
async fn by_default_a_dynamic_clients_secret_does_not_expire() {
    let t = core().await;
    let reg = t
        .core
        .register_client(&confidential_metadata(), None)
        .await
        .expect("registered");
    assert_eq!(reg.to_json()["client_secret_expires_at"], json!(0));
    advance(&t, 3650 * DAY);
    let creds = latchkey_core::client_auth::PresentedCredentials {
        basic: Some((
            reg.client.id.clone(),
            reg.client_secret.clone().expect("secret"),
        )),
        ..Default::default()
    };
    t.core
        .authenticate_client(&creds)
        .await
        .expect("still valid");
    assert!(
        t.store
            .find_client(&reg.client.id)
            .await
            .expect("find")
            .expect("stored")
            .secret_expires_at
            .is_none()
    );
}

#[tokio::test]
async fn a_refresh_grant_ends_at_its_maximum_age_however_often_it_rotates() {
    let t = core_with(|s| {
        s.refresh_max_age = Some(Duration::days(10));
        s.refresh_token_ttl = Duration::days(30);
    })
    .await;
    client("app").seed(&t).await;
    client("rs")
        .confidential(AuthMethod::ClientSecretBasic)
        .owns(&[ISSUER])
        .seed(&t)
        .await;
    let user = seed_user(&t, EMAIL).await;
    let g = grant(&t, "app", user.id);
    let mut rt = tokens(&t, public("app"), &g)
        .await
        .refresh_token
        .expect("refresh");
    for _ in 0..3 {
        advance(&t, 3 * DAY);
        rt = t
            .core
            .exchange_token(refresh_request(public("app"), &rt))
            .await
            .expect("within the maximum age")
            .refresh_token
            .expect("rotated");
    }
    // Issued on day 9: it expires with the grant on day 10, not 30 days later.
    let stored = t
        .store
        .find_refresh_token(&secret::hash(&rt))
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(stored.expires_at, g.created_at + Duration::days(10));
    let introspected = t
        .core
        .introspect(&rt, Some("refresh_token"), &basic("rs"), &[])
        .await
        .expect("introspect");
    assert!(introspected.active);

    advance(&t, DAY);
    match t
        .core
        .exchange_token(refresh_request(public("app"), &rt))
        .await
    {
        Err(AuthError::InvalidGrant(Reason::GrantMaxAgeReached)) => {}
        other => panic!("past the maximum age: invalid_grant, got {other:?}"),
    }
    let introspected = t
        .core
        .introspect(&rt, Some("refresh_token"), &basic("rs"), &[])
        .await
        .expect("introspect");
    assert!(!introspected.active, "inactive past the maximum age");
}

#[tokio::test]
async fn without_a_maximum_age_a_refreshed_grant_lives_on() {
    let t = core_with(|s| s.refresh_max_age = None).await;
    client("app").seed(&t).await;
    let user = seed_user(&t, EMAIL).await;
    let mut rt = tokens(&t, public("app"), &grant(&t, "app", user.id))
        .await
        .refresh_token
        .expect("refresh");
    for _ in 0..10 {
        advance(&t, 20 * DAY);
        rt = t
            .core
            .exchange_token(refresh_request(public("app"), &rt))
            .await
            .expect("rotation keeps it alive")
            .refresh_token
            .expect("rotated");
    }
}

#[tokio::test]
async fn the_unknown_client_error_at_authorize_is_shown_not_redirected() {
    let t = core().await;
    match t
        .core
        .start_authorization(authorization_request("gone"))
        .await
    {
        Err(AuthError::InvalidClient(Reason::UnknownClient)) => {}
        other => panic!("expected unknown client, shown, got {other:?}"),
    }
}
