//! The authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.6, RFC 9700 §4.5).

mod common;

use common::*;
use latchkey_core::AuthError;
use latchkey_core::clock::Clock;
use latchkey_core::error::Reason;
use latchkey_core::grant::TokenRequest;
use latchkey_core::model::{AuthMethod, GrantType, User};
use latchkey_core::store::{GrantStore, ResourceStore, UserStore};

/// A core with a public client `app` (code and refresh grants), a confidential client `other`
/// for the same redirect URI, and a user.
async fn setup() -> (TestCore, User) {
    let t = core().await;
    client("app").seed(&t).await;
    client("other")
        .confidential(AuthMethod::ClientSecretBasic)
        .seed(&t)
        .await;
    let user = seed_user(&t, EMAIL).await;
    (t, user)
}

#[tokio::test]
async fn a_code_from_the_full_flow_is_exchanged_for_an_access_token_and_a_refresh_token() {
    let (t, user) = setup().await;
    let code = authorize(&t, authorization_request("app"), EMAIL).await;

    let tokens = t
        .core
        .exchange_token(code_request(public("app"), &code))
        .await
        .expect("exchanged");

    assert!(tokens.refresh_token.is_some());
    assert_eq!(tokens.scope, ALL_SCOPES);
    assert_eq!(tokens.expires_in, 3600);
    let claims = t
        .core
        .check_access_token(&tokens.access_token)
        .await
        .expect("a live token");
    assert_eq!(claims.sub, user.id.to_string());
    assert_eq!(claims.client_id, "app");
    assert_eq!(claims.aud, ISSUER);
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.iat, t.clock.now().timestamp());
}

#[tokio::test]
async fn a_confidential_client_authenticates_to_redeem_its_code() {
    let (t, user) = setup().await;
    let code = seed_code(&t, &grant(&t, "other", user.id)).await;

    let without_secret = t
        .core
        .exchange_token(code_request(public("other"), &code))
        .await;
    let with_secret = t
        .core
        .exchange_token(code_request(basic("other"), &code))
        .await;

    assert_eq!(err_code(without_secret, "no secret"), "invalid_client");
    assert!(with_secret.is_ok(), "{with_secret:?}");
}

#[tokio::test]
async fn a_client_without_the_refresh_grant_gets_no_refresh_token() {
    let (t, user) = setup().await;
    client("once")
        .grants(&[GrantType::AuthorizationCode])
        .seed(&t)
        .await;

    let tokens = tokens(&t, public("once"), &grant(&t, "once", user.id)).await;

    assert_eq!(tokens.refresh_token, None);
    assert!(t.store.refresh_tokens().is_empty());
}

#[tokio::test]
async fn bad_token_requests_are_refused_and_leave_the_code_usable() {
    let (t, user) = setup().await;
    let code = seed_code(&t, &grant(&t, "app", user.id)).await;
    let with = |f: &dyn Fn(&mut TokenRequest)| {
        let mut r = code_request(public("app"), &code);
        f(&mut r);
        r
    };

    // (request, error code, why)
    let cases: Vec<(TokenRequest, &str, &str)> = vec![
        (with(&|r| r.code = None), "invalid_request", "no code"),
        (
            with(&|r| r.code = Some("not-a-code".into())),
            "invalid_grant",
            "an unknown code",
        ),
        (
            with(&|r| r.code_verifier = None),
            "invalid_request",
            "no verifier",
        ),
        (
            with(&|r| r.code_verifier = Some(VERIFIER.replace('d', "e"))),
            "invalid_grant",
            "the wrong verifier",
        ),
        (
            with(&|r| r.code_verifier = Some("short".into())),
            "invalid_grant",
            "a malformed verifier",
        ),
        (
            with(&|r| r.code_verifier = Some(challenge(VERIFIER))),
            "invalid_grant",
            "the challenge itself as verifier",
        ),
        (
            with(&|r| r.redirect_uri = None),
            "invalid_grant",
            "no redirect_uri when the authorization request had one",
        ),
        (
            with(&|r| r.redirect_uri = Some(format!("{REDIRECT}?x=1"))),
            "invalid_grant",
            "a different redirect_uri",
        ),
        (
            with(&|r| r.resource = vec![RESOURCE.into()]),
            "invalid_target",
            "a resource the grant is not bound to",
        ),
        (
            with(&|r| r.resource = vec![ISSUER.into(), RESOURCE.into()]),
            "invalid_target",
            "two resources",
        ),
        (
            with(&|r| r.repeated = vec!["code".into()]),
            "invalid_request",
            "code twice",
        ),
    ];
    for (req, code, why) in cases {
        let got = t.core.exchange_token(req).await;
        assert_eq!(err_code(got, why), code, "{why}");
    }

    let ok = t
        .core
        .exchange_token(code_request(public("app"), &code))
        .await;
    assert!(
        ok.is_ok(),
        "the code still works after the refusals: {ok:?}"
    );
}

#[tokio::test]
async fn the_resource_the_grant_is_bound_to_may_be_named_again() {
    let (t, user) = setup().await;
    let code = seed_code(&t, &grant(&t, "app", user.id)).await;
    let mut req = code_request(public("app"), &code);
    req.resource = vec![ISSUER.into()];

    let tokens = t.core.exchange_token(req).await;

    assert!(tokens.is_ok(), "{tokens:?}");
}

#[tokio::test]
async fn a_code_expires_after_the_code_ttl() {
    let (t, user) = setup().await;
    let ttl = t.core.settings().code_ttl.num_seconds();
    let early = seed_code(&t, &grant(&t, "app", user.id)).await;
    let late = seed_code(&t, &grant(&t, "app", user.id)).await;

    advance(&t, ttl - 1);
    let before = t
        .core
        .exchange_token(code_request(public("app"), &early))
        .await;
    advance(&t, 1);
    let at_expiry = t
        .core
        .exchange_token(code_request(public("app"), &late))
        .await;

    assert!(before.is_ok(), "a second left: {before:?}");
    assert!(matches!(
        at_expiry,
        Err(AuthError::InvalidGrant(Reason::CodeUnusable))
    ));
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_its_first_use_issued() {
    let (t, user) = setup().await;
    let grant = grant(&t, "app", user.id);
    let code = seed_code(&t, &grant).await;
    let first = t
        .core
        .exchange_token(code_request(public("app"), &code))
        .await
        .expect("first use");

    let replay = t
        .core
        .exchange_token(code_request(public("app"), &code))
        .await;

    assert!(matches!(
        replay,
        Err(AuthError::InvalidGrant(Reason::CodeReplayed))
    ));
    assert!(
        !is_live(&t, &first.access_token).await,
        "access token revoked"
    );
    let refresh = first.refresh_token.expect("a refresh token");
    let refreshed = t
        .core
        .exchange_token(refresh_request(public("app"), &refresh))
        .await;
    assert_eq!(err_code(refreshed, "refresh after replay"), "invalid_grant");
    let stored = t.store.find_grant(grant.id).await.expect("store");
    assert!(stored.expect("the grant").revoked_at.is_some());
}

#[tokio::test]
async fn another_clients_code_is_refused_without_revoking_the_rightful_grant() {
    let (t, user) = setup().await;
    let grant = grant(&t, "app", user.id);
    let unused = seed_code(&t, &grant).await;
    let used_grant = common::grant(&t, "app", user.id);
    let used = seed_code(&t, &used_grant).await;
    let issued = t
        .core
        .exchange_token(code_request(public("app"), &used))
        .await
        .expect("the rightful client redeems it");

    // (code, why): both presented by `other`, which authenticates correctly.
    for (code, why) in [(&unused, "an unused code"), (&used, "an already used code")] {
        let stolen = t
            .core
            .exchange_token(code_request(basic("other"), code))
            .await;
        assert!(
            matches!(stolen, Err(AuthError::InvalidGrant(Reason::ClientMismatch))),
            "{why}: {stolen:?}"
        );
    }

    assert!(
        is_live(&t, &issued.access_token).await,
        "nothing was revoked"
    );
    let still = t
        .core
        .exchange_token(code_request(public("app"), &unused))
        .await;
    assert!(still.is_ok(), "the unused code still works: {still:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_redemptions_of_one_code_exactly_one_wins() {
    let (t, user) = setup().await;
    let code = seed_code(&t, &grant(&t, "app", user.id)).await;
    let redeem = || {
        let core = t.core.clone();
        let req = code_request(public("app"), &code);
        tokio::spawn(async move { core.exchange_token(req).await })
    };

    let (a, b) = (redeem(), redeem());
    let (a, b) = (a.await.expect("joined"), b.await.expect("joined"));

    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} / {b:?}"
    );
    assert_eq!(
        t.store.refresh_tokens().len(),
        1,
        "the loser stored nothing"
    );
}

#[tokio::test]
async fn a_code_without_a_redirect_uri_accepts_none_or_the_one_registered() {
    let (t, _user) = setup().await;
    let mut req = authorization_request("app");
    req.redirect_uri = None;
    let first = authorize(&t, req.clone(), EMAIL).await;
    let second = authorize(&t, req.clone(), EMAIL).await;
    let third = authorize(&t, req, EMAIL).await;

    let mut omitted = code_request(public("app"), &first);
    omitted.redirect_uri = None;
    let named = code_request(public("app"), &second);
    let mut other = code_request(public("app"), &third);
    other.redirect_uri = Some("https://app.example.com/elsewhere".into());

    assert!(t.core.exchange_token(omitted).await.is_ok(), "omitted");
    assert!(
        t.core.exchange_token(named).await.is_ok(),
        "the registered one"
    );
    assert_eq!(
        err_code(t.core.exchange_token(other).await, "another URI"),
        "invalid_grant"
    );
}

#[tokio::test]
async fn a_code_stops_working_when_its_user_is_disabled_or_its_resource_is_deleted() {
    let (t, user) = setup().await;
    seed_resource(&t, RESOURCE, None, true).await;
    seed_resource(&t, OTHER_RESOURCE, None, false).await;
    let mut for_user = grant(&t, "app", user.id);
    for_user.resource = RESOURCE.into();
    let user_code = seed_code(&t, &for_user).await;
    let mut for_resource = grant(&t, "app", seed_user(&t, "bob@example.com").await.id);
    for_resource.resource = OTHER_RESOURCE.into();
    let resource_code = seed_code(&t, &for_resource).await;

    t.store
        .set_user_disabled(EMAIL, true)
        .await
        .expect("disabled");
    t.store
        .delete_resource(OTHER_RESOURCE)
        .await
        .expect("deleted");
    t.core.sync_directory(0).await.expect("the core reads it");

    // (code, why)
    for (code, why) in [
        (&user_code, "the user is disabled"),
        (&resource_code, "the resource was deleted"),
    ] {
        let got = t
            .core
            .exchange_token(code_request(public("app"), code))
            .await;
        assert_eq!(err_code(got, why), "invalid_grant", "{why}");
    }
}

#[tokio::test]
async fn a_client_that_lost_the_authorization_code_grant_cannot_redeem() {
    let (t, user) = setup().await;
    client("no-code")
        .grants(&[GrantType::ClientCredentials])
        .seed(&t)
        .await;
    let code = seed_code(&t, &grant(&t, "no-code", user.id)).await;

    let got = t
        .core
        .exchange_token(code_request(public("no-code"), &code))
        .await;

    assert_eq!(err_code(got, "no code grant"), "unauthorized_client");
}

#[tokio::test]
async fn the_token_endpoint_refuses_unknown_and_missing_grant_types_before_client_auth() {
    let t = core().await;

    // (grant_type, error code, why): no client exists, so reaching client auth would say
    // invalid_client.
    let cases = [
        ("", "invalid_request", "no grant_type"),
        ("password", "unsupported_grant_type", "the password grant"),
        (
            "implicit",
            "unsupported_grant_type",
            "not a grant type at all",
        ),
    ];
    for (grant_type, code, why) in cases {
        let req = TokenRequest {
            grant_type: grant_type.into(),
            client: public("nobody"),
            ..Default::default()
        };
        assert_eq!(
            err_code(t.core.exchange_token(req).await, why),
            code,
            "{why}"
        );
    }
}
