//! The in-memory store keeps the contracts written on the store traits, so that the flow
//! tests prove what they would prove over a database.

mod common;

use chrono::Duration;
use common::*;
use latchkey_core::clock::Clock;
use latchkey_core::model::{AuthorizationCode, InitialAccessToken, RefreshToken};
use latchkey_core::resource::{ProtectedResource, Resource};
use latchkey_core::store::{ClientStore, GrantStore, ResourceStore, StoreError, UserStore};
use std::sync::Arc;

fn refresh(grant_id: uuid::Uuid, name: &str, t: &TestCore) -> RefreshToken {
    RefreshToken {
        token_hash: name.to_owned(),
        grant_id,
        expires_at: t.clock.now() + Duration::days(1),
        consumed_at: None,
    }
}

#[tokio::test]
async fn duplicate_client_ids_emails_and_resources_are_refused() {
    let t = core().await;
    client("app").seed(&t).await;
    seed_user(&t, EMAIL).await;
    seed_resource(&t, RESOURCE, None, true).await;

    let client_again = t.store.insert_client(&client("app").0).await;
    let mut shouting = t
        .store
        .find_user_by_email(EMAIL)
        .await
        .expect("store")
        .expect("user");
    shouting.id = uuid::Uuid::new_v4();
    shouting.email = "ALICE@Example.com".into();
    let email_again = t.store.insert_user(&shouting).await;
    let resource_again = t
        .store
        .insert_resource(&ProtectedResource {
            resource: Resource::parse(RESOURCE).expect("valid"),
            scopes: None,
            is_default: false,
            implies: Default::default(),
        })
        .await;

    assert!(matches!(client_again, Err(StoreError::Duplicate(_))));
    assert!(matches!(email_again, Err(StoreError::Duplicate(_))));
    assert!(matches!(resource_again, Err(StoreError::Duplicate(_))));
    let resources = t.store.list_resources().await.expect("store");
    assert_eq!(resources.len(), 1);
    assert!(
        resources[0].is_default,
        "a refused insert keeps the default"
    );
}

#[tokio::test]
async fn a_new_default_resource_replaces_the_old_one() {
    let t = core().await;
    seed_resource(&t, RESOURCE, None, true).await;
    seed_resource(&t, OTHER_RESOURCE, None, true).await;

    let defaults: Vec<String> = t
        .store
        .list_resources()
        .await
        .expect("store")
        .into_iter()
        .filter(|r| r.is_default)
        .map(|r| r.resource.as_str().to_owned())
        .collect();

    assert_eq!(defaults, [OTHER_RESOURCE]);
}

#[tokio::test]
async fn a_code_is_redeemed_once_and_a_losing_redemption_writes_nothing() {
    let t = core().await;
    client("app").seed(&t).await;
    let user = seed_user(&t, EMAIL).await;
    let g = grant(&t, "app", user.id);
    let code = seed_code(&t, &g).await;
    let hash = latchkey_core::secret::hash(&code);
    let now = t.clock.now();

    let first = t
        .store
        .redeem_code(&hash, now, Some(&refresh(g.id, "first", &t)))
        .await
        .expect("store");
    let second = t
        .store
        .redeem_code(&hash, now, Some(&refresh(g.id, "second", &t)))
        .await
        .expect("store");
    let unknown = t
        .store
        .redeem_code("unknown", now, None)
        .await
        .expect("store");

    assert!(first);
    assert!(!second);
    assert!(!unknown);
    let stored: Vec<String> = t
        .store
        .refresh_tokens()
        .into_iter()
        .map(|r| r.token_hash)
        .collect();
    assert_eq!(stored, ["first"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_concurrent_rotations_of_one_refresh_token_exactly_one_wins() {
    let t = core().await;
    client("app").seed(&t).await;
    let user = seed_user(&t, EMAIL).await;
    let g = grant(&t, "app", user.id);
    let code = seed_code(&t, &g).await;
    let now = t.clock.now();
    t.store
        .redeem_code(
            &latchkey_core::secret::hash(&code),
            now,
            Some(&refresh(g.id, "old", &t)),
        )
        .await
        .expect("store");

    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&t.store);
            let new = refresh(g.id, &format!("new-{i}"), &t);
            tokio::spawn(async move { store.rotate_refresh_token("old", now, &new).await })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        if task.await.expect("joined").expect("store") {
            wins += 1;
        }
    }

    assert_eq!(wins, 1);
    assert_eq!(
        t.store.refresh_tokens().len(),
        2,
        "the old token and one successor"
    );
}

#[tokio::test]
async fn an_initial_access_token_is_spent_once_and_not_when_the_client_is_refused() {
    let t = core().await;
    client("taken").seed(&t).await;
    let now = t.clock.now();
    let token = |hash: &str, expires_in: i64| InitialAccessToken {
        token_hash: hash.to_owned(),
        audiences: vec![RESOURCE.to_owned()],
        scope: None,
        created_at: now,
        expires_at: now + Duration::seconds(expires_in),
        used_at: None,
    };
    for (hash, ttl) in [("live", 60), ("expired", 0)] {
        t.store
            .insert_initial_access_token(&token(hash, ttl))
            .await
            .expect("store");
    }

    let duplicate = t
        .store
        .insert_client_redeeming(&client("taken").0, "live", now)
        .await;
    let first = t
        .store
        .insert_client_redeeming(&client("a").0, "live", now)
        .await
        .expect("store");
    let second = t
        .store
        .insert_client_redeeming(&client("b").0, "live", now)
        .await
        .expect("store");
    let expired = t
        .store
        .insert_client_redeeming(&client("c").0, "expired", now)
        .await
        .expect("store");

    assert!(
        matches!(duplicate, Err(StoreError::Duplicate(_))),
        "a refused client leaves the token unspent"
    );
    assert!(first);
    assert!(!second);
    assert!(!expired);
    let ids: Vec<String> = t
        .store
        .list_clients()
        .await
        .expect("store")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["taken", "a"]);
}

#[tokio::test]
async fn deleting_a_client_cascades_and_grants_for_missing_parties_are_refused() {
    let t = core().await;
    client("app").seed(&t).await;
    client("keep").seed(&t).await;
    let user = seed_user(&t, EMAIL).await;
    let gone = grant(&t, "app", user.id);
    seed_code(&t, &gone).await;
    let kept = grant(&t, "keep", user.id);
    seed_code(&t, &kept).await;
    let now = t.clock.now();
    for c in ["app", "keep"] {
        t.store
            .record_consent(user.id, c, REDIRECT, ALL_SCOPES, ISSUER, now)
            .await
            .expect("store");
    }

    let deleted = t.store.delete_client("app").await.expect("store");
    let orphan = grant(&t, "app", user.id);
    let orphan_code = AuthorizationCode {
        code_hash: "orphan".into(),
        grant_id: orphan.id,
        client_id: "app".into(),
        redirect_uri: None,
        code_challenge: challenge(VERIFIER),
        expires_at: now,
        consumed_at: None,
    };
    let refused = t.store.insert_grant_with_code(&orphan, &orphan_code).await;

    assert!(deleted);
    assert!(t.store.find_grant(gone.id).await.expect("store").is_none());
    assert!(t.store.find_grant(kept.id).await.expect("store").is_some());
    assert_eq!(t.store.codes().len(), 1);
    assert_eq!(t.store.consents().len(), 1);
    assert!(
        matches!(refused, Err(StoreError::Backend(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn revoking_a_grant_reports_only_the_first_time() {
    let t = core().await;
    client("app").seed(&t).await;
    let user = seed_user(&t, EMAIL).await;
    let g = grant(&t, "app", user.id);
    seed_code(&t, &g).await;
    let now = t.clock.now();

    let first = t.store.revoke_grant(g.id, now).await.expect("store");
    let second = t.store.revoke_grant(g.id, now).await.expect("store");
    let unknown = t
        .store
        .revoke_grant(uuid::Uuid::new_v4(), now)
        .await
        .expect("store");

    assert!(first);
    assert!(!second);
    assert!(!unknown);
}
