//! Revocation: tokens (RFC 7009), refresh families, clients, users; and how another replica
//! over the same store learns of it.

mod common;

use common::*;
use latchkey_core::denylist::RevokedKind;
use latchkey_core::grant::TokenResponse;
use latchkey_core::model::{AuthMethod, Grant};
use latchkey_core::store::{ClientStore, GrantStore};
use latchkey_core::testing::TestCore;

/// A core with a public client `app` and a confidential client `other`, a user, and the
/// tokens of one grant to `app`.
async fn setup() -> (TestCore, Grant, TokenResponse) {
    let t = core().await;
    client("app").seed(&t).await;
    client("other")
        .confidential(AuthMethod::ClientSecretBasic)
        .seed(&t)
        .await;
    let user = seed_user(&t, EMAIL).await;
    let g = grant(&t, "app", user.id);
    let issued = tokens(&t, public("app"), &g).await;
    (t, g, issued)
}

fn refresh_token(issued: &TokenResponse) -> &str {
    issued.refresh_token.as_deref().expect("a refresh token")
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_whole_grant() {
    let (t, g, issued) = setup().await;
    let rotated = t
        .core
        .exchange_token(refresh_request(public("app"), refresh_token(&issued)))
        .await
        .expect("rotated");

    t.core
        .revoke(
            refresh_token(&rotated),
            Some("refresh_token"),
            &public("app"),
            &[],
        )
        .await
        .expect("revoked");

    let refreshed = t
        .core
        .exchange_token(refresh_request(public("app"), refresh_token(&rotated)))
        .await;
    assert_eq!(
        err_code(refreshed, "refresh after revocation"),
        "invalid_grant"
    );
    assert!(
        !is_live(&t, &issued.access_token).await,
        "every access token of the grant"
    );
    assert!(!is_live(&t, &rotated.access_token).await);
    let stored = t
        .store
        .find_grant(g.id)
        .await
        .expect("store")
        .expect("grant");
    assert!(stored.revoked_at.is_some());
}

#[tokio::test]
async fn revoking_an_access_token_revokes_that_token_alone() {
    let (t, _, issued) = setup().await;
    let sibling = t
        .core
        .exchange_token(refresh_request(public("app"), refresh_token(&issued)))
        .await
        .expect("rotated");

    t.core
        .revoke(&issued.access_token, None, &public("app"), &[])
        .await
        .expect("revoked");

    assert!(!is_live(&t, &issued.access_token).await);
    assert!(
        is_live(&t, &sibling.access_token).await,
        "the grant lives on"
    );
    let refreshed = t
        .core
        .exchange_token(refresh_request(public("app"), refresh_token(&sibling)))
        .await;
    assert!(refreshed.is_ok(), "{refreshed:?}");
}

#[tokio::test]
async fn revoking_again_adds_no_revocation_event() {
    let (t, _, issued) = setup().await;

    for _ in 0..3 {
        t.core
            .revoke(&issued.access_token, None, &public("app"), &[])
            .await
            .expect("revoked");
        t.core
            .revoke(refresh_token(&issued), None, &public("app"), &[])
            .await
            .expect("revoked");
    }

    let kinds: Vec<RevokedKind> = t.store.revocation_events().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [RevokedKind::Token, RevokedKind::Grant]);
}

#[tokio::test]
async fn another_clients_token_is_not_revoked() {
    let (t, _, issued) = setup().await;

    // (token, why)
    for (token, why) in [
        (issued.access_token.as_str(), "an access token"),
        (refresh_token(&issued), "a refresh token"),
    ] {
        let got = t.core.revoke(token, None, &basic("other"), &[]).await;
        assert_eq!(err_code(got, why), "unauthorized_client", "{why}");
    }

    assert!(is_live(&t, &issued.access_token).await);
    assert!(t.store.revocation_events().is_empty());
}

#[tokio::test]
async fn unknown_tokens_are_answered_with_success_and_bad_requests_with_errors() {
    let (t, _, issued) = setup().await;
    let ttl = t.core.settings().access_token_ttl.num_seconds();

    // RFC 7009 §2.2: an invalid token is no error. (token, why)
    for (token, why) in [("unknown", "garbage"), ("a.b.c", "three parts of garbage")] {
        let got = t.core.revoke(token, None, &public("app"), &[]).await;
        assert!(got.is_ok(), "{why}: {got:?}");
    }
    advance(&t, ttl + 60);
    let expired = t
        .core
        .revoke(&issued.access_token, None, &public("app"), &[])
        .await;
    assert!(expired.is_ok(), "an expired token: {expired:?}");

    // (token, credentials, repeated, error code, why)
    let cases = [
        ("", public("app"), vec![], "invalid_request", "no token"),
        (
            "unknown",
            public("app"),
            vec!["token".to_owned()],
            "invalid_request",
            "token twice",
        ),
        (
            "unknown",
            public("nobody"),
            vec![],
            "invalid_client",
            "an unknown client",
        ),
        (
            "unknown",
            public("other"),
            vec![],
            "invalid_client",
            "a confidential client without its secret",
        ),
    ];
    for (token, creds, repeated, code, why) in cases {
        let got = t.core.revoke(token, None, &creds, &repeated).await;
        assert_eq!(err_code(got, why), code, "{why}");
    }
}

#[tokio::test]
async fn deleting_a_client_deletes_what_was_issued_to_it_and_stops_its_tokens() {
    let (t, g, issued) = setup().await;

    let deleted = t.core.delete_client("app").await.expect("deleted");
    let again = t.core.delete_client("app").await.expect("answered");

    assert!(deleted);
    assert!(!again, "nothing left to delete");
    assert!(!is_live(&t, &issued.access_token).await);
    assert!(t.store.find_grant(g.id).await.expect("store").is_none());
    assert!(t.store.codes().is_empty());
    assert!(t.store.refresh_tokens().is_empty());
    assert!(t.store.consents().is_empty());
    let auth = t.core.authenticate_client(&public("app")).await;
    assert_eq!(err_code(auth, "deleted client"), "invalid_client");
    let other = t.core.authenticate_client(&basic("other")).await;
    assert!(other.is_ok(), "other clients are untouched: {other:?}");
}

#[tokio::test]
async fn deleting_a_client_by_an_id_no_client_can_have_deletes_nothing() {
    let t = core().await;
    client("bad\nid").seed(&t).await;

    let deleted = t.core.delete_client("bad\nid").await.expect("answered");

    assert!(!deleted);
    assert!(
        t.store
            .find_client("bad\nid")
            .await
            .expect("store")
            .is_some()
    );
}

#[tokio::test]
async fn disabling_a_user_stops_their_tokens_and_their_sign_in() {
    let (t, _, issued) = setup().await;

    t.core.disable_user(EMAIL).await.expect("disabled");

    assert!(!is_live(&t, &issued.access_token).await);
    let refreshed = t
        .core
        .exchange_token(refresh_request(public("app"), refresh_token(&issued)))
        .await;
    assert_eq!(err_code(refreshed, "refresh"), "invalid_grant");
    let prompt = start(&t, authorization_request("app")).await;
    let out = t
        .core
        .submit_login(
            &prompt.session_id,
            &prompt.csrf_token,
            EMAIL,
            PASSWORD,
            None,
        )
        .await
        .expect("answered");
    assert!(out.error.is_some(), "sign-in refused");
    let missing = t.core.disable_user("nobody@example.com").await;
    assert_eq!(err_code(missing, "unknown user"), "not_found");
}

#[tokio::test]
async fn disabling_one_user_leaves_another_users_tokens_alone() {
    let (t, _, _) = setup().await;
    let bob = seed_user(&t, "bob@example.com").await;
    let bobs = tokens(&t, public("app"), &grant(&t, "app", bob.id)).await;

    t.core.disable_user(EMAIL).await.expect("disabled");

    assert!(is_live(&t, &bobs.access_token).await);
}

#[tokio::test]
async fn another_replica_over_the_same_store_learns_a_revocation_from_it() {
    let (t, _, issued) = setup().await;
    let replica = TestCore::builder()
        .store(t.store.clone())
        .build()
        .await
        .expect("a second core over the same store");
    assert!(
        is_live(&replica, &issued.access_token).await,
        "it shares the signing key"
    );

    t.core
        .revoke(&issued.access_token, None, &public("app"), &[])
        .await
        .expect("revoked");
    let before_sync = is_live(&replica, &issued.access_token).await;
    let learned = replica.core.sync_revocations(0).await.expect("synced");

    assert!(before_sync, "nothing is shared but the store");
    assert_eq!(learned, 1);
    assert!(!is_live(&replica, &issued.access_token).await);
}

#[tokio::test]
async fn revocation_events_are_pruned_once_no_token_they_cover_can_be_valid() {
    let (t, _, issued) = setup().await;
    t.core
        .revoke(&issued.access_token, None, &public("app"), &[])
        .await
        .expect("revoked");
    let ttl = t.core.settings().access_token_ttl.num_seconds();

    let early = t.core.prune_revocations().await.expect("pruned");
    advance(&t, ttl + 3600);
    let late = t.core.prune_revocations().await.expect("pruned");

    assert_eq!(early, 0, "the token could still be valid");
    assert_eq!(late, 1);
    assert!(t.store.revocation_events().is_empty());
}
