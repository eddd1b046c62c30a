//! The refresh token grant (RFC 6749 §6): rotation, reuse detection that revokes the family
//! (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2), narrowing, expiry.

mod common;

use common::*;
use latchkey_core::AuthError;
use latchkey_core::clock::Clock;
use latchkey_core::error::Reason;
use latchkey_core::grant::{TokenRequest, TokenResponse};
use latchkey_core::model::{AuthMethod, Grant, GrantType};
use latchkey_core::scope::ScopeSet;
use latchkey_core::settings::CoreSettings;
use latchkey_core::store::{GrantStore, UserStore};

/// A core with a public client `app`, a confidential client `other`, a user, and the tokens
/// of one grant to `app`.
async fn setup() -> (TestCore, Grant, TokenResponse) {
    setup_with(|_| {}).await
}

async fn setup_with(adjust: impl FnOnce(&mut CoreSettings)) -> (TestCore, Grant, TokenResponse) {
    let t = core_with(adjust).await;
    client("app").seed(&t).await;
    client("other")
        .confidential(AuthMethod::ClientSecretBasic)
        .seed(&t)
        .await;
    let user = seed_user(&t, EMAIL).await;
    let grant = grant(&t, "app", user.id);
    let issued = tokens(&t, public("app"), &grant).await;
    (t, grant, issued)
}

fn refresh_token(issued: &TokenResponse) -> &str {
    issued.refresh_token.as_deref().expect("a refresh token")
}

#[tokio::test]
async fn a_refresh_token_is_rotated_and_its_successor_works() {
    let (t, _, issued) = setup().await;

    let second = t
        .core
        .exchange_token(refresh_request(public("app"), refresh_token(&issued)))
        .await
        .expect("first rotation");
    let third = t
        .core
        .exchange_token(refresh_request(public("app"), refresh_token(&second)))
        .await
        .expect("second rotation");

    assert_ne!(refresh_token(&second), refresh_token(&issued));
    assert_ne!(refresh_token(&third), refresh_token(&second));
    assert_eq!(third.scope, ALL_SCOPES);
    assert!(is_live(&t, &third.access_token).await);
    let consumed = t
        .store
        .refresh_tokens()
        .iter()
        .filter(|r| r.consumed_at.is_some())
        .count();
    assert_eq!(consumed, 2, "each rotated token is spent");
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_family() {
    let (t, grant, issued) = setup().await;
    let rotated = t
        .core
        .exchange_token(refresh_request(public("app"), refresh_token(&issued)))
        .await
        .expect("rotation");

    let reuse = t
        .core
        .exchange_token(refresh_request(public("app"), refresh_token(&issued)))
        .await;
    let successor = t
        .core
        .exchange_token(refresh_request(public("app"), refresh_token(&rotated)))
        .await;

    assert!(matches!(
        reuse,
        Err(AuthError::InvalidGrant(Reason::RefreshTokenReused))
    ));
    assert!(
        matches!(
            successor,
            Err(AuthError::InvalidGrant(Reason::RefreshTokenUnusable))
        ),
        "the attacker's or the client's newer token dies too: {successor:?}"
    );
    assert!(!is_live(&t, &issued.access_token).await);
    assert!(!is_live(&t, &rotated.access_token).await);
    let stored = t.store.find_grant(grant.id).await.expect("store");
    assert!(stored.expect("the grant").revoked_at.is_some());
}

#[tokio::test]
async fn a_narrower_scope_is_granted_for_one_token_and_a_broader_one_is_refused() {
    let t = core().await;
    client("app").seed(&t).await;
    let user = seed_user(&t, EMAIL).await;
    let mut tools_and_prompts = grant(&t, "app", user.id);
    tools_and_prompts.scope = ScopeSet::parse("mcp:prompts mcp:tools").expect("valid");
    let issued = tokens(&t, public("app"), &tools_and_prompts).await;
    let asking = |token: &str, scope: &str| {
        let mut r = refresh_request(public("app"), token);
        r.scope = Some(scope.into());
        r
    };

    let narrow = t
        .core
        .exchange_token(asking(refresh_token(&issued), "mcp:tools"))
        .await
        .expect("narrowed");
    let broad = t
        .core
        .exchange_token(asking(refresh_token(&narrow), "mcp:tools mcp:resources"))
        .await;
    let whole = t
        .core
        .exchange_token(refresh_request(public("app"), refresh_token(&narrow)))
        .await
        .expect("the refused request spent nothing");

    assert_eq!(narrow.scope, "mcp:tools");
    let claims = t
        .core
        .check_access_token(&narrow.access_token)
        .await
        .expect("live");
    assert_eq!(claims.scope, "mcp:tools");
    assert!(matches!(
        broad,
        Err(AuthError::InvalidScope(Reason::ScopeBroadened(ref s))) if s == "mcp:resources"
    ));
    assert_eq!(
        whole.scope, "mcp:prompts mcp:tools",
        "the grant keeps its scope"
    );
}

#[tokio::test]
async fn a_refresh_token_expires_after_the_refresh_ttl() {
    let (t, _, issued) = setup().await;
    let ttl = t.core.settings().refresh_token_ttl.num_seconds();

    advance(&t, ttl);
    let expired = t
        .core
        .exchange_token(refresh_request(public("app"), refresh_token(&issued)))
        .await;

    assert!(matches!(
        expired,
        Err(AuthError::InvalidGrant(Reason::RefreshTokenUnusable))
    ));
}

#[tokio::test]
async fn another_clients_refresh_token_is_refused_without_revoking_the_family() {
    let (t, _, issued) = setup().await;

    let stolen = t
        .core
        .exchange_token(refresh_request(basic("other"), refresh_token(&issued)))
        .await;
    let rightful = t
        .core
        .exchange_token(refresh_request(public("app"), refresh_token(&issued)))
        .await;

    assert!(matches!(
        stolen,
        Err(AuthError::InvalidGrant(Reason::ClientMismatch))
    ));
    assert!(rightful.is_ok(), "{rightful:?}");
    assert!(is_live(&t, &issued.access_token).await);
}

#[tokio::test]
async fn bad_refresh_requests_are_refused_and_leave_the_token_usable() {
    let (t, _, issued) = setup_with(refusing_unknown_scopes).await;
    let token = refresh_token(&issued).to_owned();
    let with = |f: &dyn Fn(&mut TokenRequest)| {
        let mut r = refresh_request(public("app"), &token);
        f(&mut r);
        r
    };

    // (request, error code, why)
    let cases: Vec<(TokenRequest, &str, &str)> = vec![
        (
            with(&|r| r.refresh_token = None),
            "invalid_request",
            "no refresh_token",
        ),
        (
            with(&|r| r.refresh_token = Some("unknown".into())),
            "invalid_grant",
            "an unknown refresh token",
        ),
        (
            with(&|r| r.scope = Some("admin".into())),
            "invalid_scope",
            "a scope that was never granted",
        ),
        (
            with(&|r| r.resource = vec![RESOURCE.into()]),
            "invalid_target",
            "a resource the grant is not bound to",
        ),
        (
            with(&|r| r.resource = vec!["not a uri".into()]),
            "invalid_target",
            "a malformed resource",
        ),
        (
            with(&|r| r.repeated = vec!["refresh_token".into()]),
            "invalid_request",
            "refresh_token twice",
        ),
        (
            with(&|r| r.client = public("nobody")),
            "invalid_client",
            "an unknown client",
        ),
    ];
    for (req, code, why) in cases {
        let got = t.core.exchange_token(req).await;
        assert_eq!(err_code(got, why), code, "{why}");
    }

    let ok = t
        .core
        .exchange_token(refresh_request(public("app"), &token))
        .await;
    assert!(
        ok.is_ok(),
        "the token still works after the refusals: {ok:?}"
    );
}

#[tokio::test]
async fn a_refresh_token_stops_working_when_its_grant_is_revoked_or_its_user_disabled() {
    let (t, grant, issued) = setup().await;
    let bob = seed_user(&t, "bob@example.com").await;
    let bobs = tokens(&t, public("app"), &common::grant(&t, "app", bob.id)).await;

    t.store
        .revoke_grant(grant.id, t.clock.now())
        .await
        .expect("revoked");
    t.store
        .set_user_disabled("bob@example.com", true)
        .await
        .expect("disabled");

    // (token, why)
    for (token, why) in [
        (refresh_token(&issued), "the grant is revoked"),
        (refresh_token(&bobs), "the user is disabled"),
    ] {
        let got = t
            .core
            .exchange_token(refresh_request(public("app"), token))
            .await;
        assert_eq!(err_code(got, why), "invalid_grant", "{why}");
    }
}

#[tokio::test]
async fn a_client_without_the_refresh_grant_may_not_refresh() {
    let (t, _, issued) = setup().await;
    // A token presented by a client that never had the grant type: refused for that first.
    client("code-only")
        .grants(&[GrantType::AuthorizationCode])
        .seed(&t)
        .await;

    let got = t
        .core
        .exchange_token(refresh_request(public("code-only"), refresh_token(&issued)))
        .await;

    assert_eq!(err_code(got, "no refresh grant"), "unauthorized_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_rotations_of_one_token_exactly_one_wins() {
    let (t, _, issued) = setup().await;
    let rotate = || {
        let core = t.core.clone();
        let req = refresh_request(public("app"), refresh_token(&issued));
        tokio::spawn(async move { core.exchange_token(req).await })
    };

    let (a, b) = (rotate(), rotate());
    let (a, b) = (a.await.expect("joined"), b.await.expect("joined"));

    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} / {b:?}"
    );
    assert_eq!(
        t.store.refresh_tokens().len(),
        2,
        "the first token and the winner's successor, nothing from the loser"
    );
}

#[tokio::test]
async fn unknown_scopes_in_a_refresh_are_ignored_by_default() {
    let (t, grant, issued) = setup().await;
    let r = t
        .core
        .exchange_token(TokenRequest {
            scope: Some("admin openid".into()),
            ..refresh_request(public("app"), refresh_token(&issued))
        })
        .await
        .expect("only ignored scopes: as if none were named");
    assert_eq!(r.scope, grant.scope.to_string());
}
