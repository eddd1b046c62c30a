//! Introspection (RFC 7662) and verification for resource servers (RFC 6750, RFC 9068 §4).
//!
//! A caller learns about a token only if it is for a resource the caller owns or was issued
//! to the caller (RFC 7662 §4); anything else, and any dead token, is `{"active": false}`,
//! which is an answer and not an error.

mod common;

use common::*;
use latchkey_core::AuthError;
use latchkey_core::error::{Reason, TokenFault};
use latchkey_core::grant::TokenResponse;
use latchkey_core::introspection::{Caller, Introspection};
use latchkey_core::model::AuthMethod;
use latchkey_core::store::{ResourceStore, UserStore};

/// A core with a confidential client `app` holding tokens of one grant for [`RESOURCE`], a
/// resource server `rs` that owns [`RESOURCE`], another `rs2` that owns [`OTHER_RESOURCE`],
/// and a public client `pub`.
async fn setup() -> (TestCore, TokenResponse) {
    let t = core().await;
    seed_resource(&t, RESOURCE, None, true).await;
    seed_resource(&t, OTHER_RESOURCE, None, false).await;
    client("app")
        .confidential(AuthMethod::ClientSecretBasic)
        .seed(&t)
        .await;
    client("rs")
        .confidential(AuthMethod::ClientSecretBasic)
        .grants(&[])
        .owns(&[RESOURCE])
        .operator(&[])
        .seed(&t)
        .await;
    client("rs2")
        .confidential(AuthMethod::ClientSecretBasic)
        .grants(&[])
        .owns(&[OTHER_RESOURCE])
        .operator(&[])
        .seed(&t)
        .await;
    client("pub").seed(&t).await;
    let user = seed_user(&t, EMAIL).await;
    let mut g = grant(&t, "app", user.id);
    g.resource = RESOURCE.into();
    let issued = tokens(&t, basic("app"), &g).await;
    (t, issued)
}

async fn introspect(t: &TestCore, caller: &str, token: &str) -> Introspection {
    t.core
        .introspect(token, None, &basic(caller), &[])
        .await
        .expect("introspection answers")
}

#[tokio::test]
async fn the_resource_server_of_the_audience_sees_an_active_access_token() {
    let (t, issued) = setup().await;

    let seen = introspect(&t, "rs", &issued.access_token).await;

    assert!(seen.active);
    assert_eq!(seen.aud.as_deref(), Some(RESOURCE));
    assert_eq!(seen.client_id.as_deref(), Some("app"));
    assert_eq!(seen.scope.as_deref(), Some(ALL_SCOPES));
    assert_eq!(seen.iss.as_deref(), Some(ISSUER));
    assert_eq!(seen.token_type.as_deref(), Some("Bearer"));
}

#[tokio::test]
async fn the_client_a_token_was_issued_to_sees_it_and_its_refresh_token() {
    let (t, issued) = setup().await;
    let refresh = issued.refresh_token.as_deref().expect("a refresh token");

    let access = introspect(&t, "app", &issued.access_token).await;
    let by_hint = t
        .core
        .introspect(refresh, Some("refresh_token"), &basic("app"), &[])
        .await
        .expect("answers");
    let without_hint = introspect(&t, "app", refresh).await;

    assert!(access.active);
    assert!(by_hint.active);
    assert_eq!(
        by_hint.token_type, None,
        "a refresh token has no RFC 6749 §7.1 type"
    );
    assert_eq!(by_hint.aud.as_deref(), Some(RESOURCE));
    assert_eq!(by_hint, without_hint, "the hint only orders the lookups");
}

#[tokio::test]
async fn a_token_for_someone_else_or_a_dead_one_is_inactive_and_says_nothing_more() {
    let (t, issued) = setup().await;
    let refresh = issued.refresh_token.clone().expect("a refresh token");
    let rotated = t
        .core
        .exchange_token(refresh_request(basic("app"), &refresh))
        .await
        .expect("rotated");
    let mut tampered = rotated.access_token.clone();
    tampered.pop();
    tampered.push(if rotated.access_token.ends_with('A') {
        'B'
    } else {
        'A'
    });

    // (caller, token, why)
    let cases = [
        (
            "rs2",
            rotated.access_token.as_str(),
            "another resource server's token",
        ),
        ("rs", refresh.as_str(), "a rotated (consumed) refresh token"),
        ("rs", tampered.as_str(), "a tampered signature"),
        ("rs", "not-a-token", "garbage"),
        ("rs", "a.b.c", "three dots of garbage"),
    ];
    for (caller, token, why) in cases {
        let seen = introspect(&t, caller, token).await;
        assert_eq!(seen, Introspection::default(), "{why}");
    }
}

#[tokio::test]
async fn tokens_become_inactive_when_they_expire_or_their_user_is_disabled() {
    let (t, issued) = setup().await;
    let refresh = issued.refresh_token.clone().expect("a refresh token");
    let ttl = t.core.settings().access_token_ttl.num_seconds();
    let leeway = t.core.settings().leeway_secs as i64;

    advance(&t, ttl + leeway);
    let expired = introspect(&t, "rs", &issued.access_token).await;
    let refresh_still = introspect(&t, "rs", &refresh).await;
    t.store
        .set_user_disabled(EMAIL, true)
        .await
        .expect("disabled");
    let refresh_disabled = introspect(&t, "rs", &refresh).await;

    assert!(!expired.active, "past exp and the leeway");
    assert!(refresh_still.active, "the refresh token lives longer");
    assert!(!refresh_disabled.active, "the user is disabled");
}

#[tokio::test]
async fn introspection_needs_an_authenticated_confidential_caller_and_a_token() {
    let (t, issued) = setup().await;
    let token = issued.access_token.as_str();

    // (token, credentials, repeated parameters, error code, why)
    let cases = [
        (
            token,
            public("pub"),
            vec![],
            "invalid_client",
            "a public client",
        ),
        (
            token,
            public("rs"),
            vec![],
            "invalid_client",
            "a confidential client without its secret",
        ),
        (
            token,
            basic("nobody"),
            vec![],
            "invalid_client",
            "an unknown client",
        ),
        ("", basic("rs"), vec![], "invalid_request", "no token"),
        (
            token,
            basic("rs"),
            vec!["token".to_owned()],
            "invalid_request",
            "token twice",
        ),
    ];
    for (token, creds, repeated, code, why) in cases {
        let got = t.core.introspect(token, None, &creds, &repeated).await;
        assert_eq!(err_code(got, why), code, "{why}");
    }
}

#[tokio::test]
async fn a_resource_server_verifies_only_tokens_for_an_audience_it_owns() {
    let (t, issued) = setup().await;
    let rs = t
        .core
        .authenticate_resource_server("rs", SECRET)
        .await
        .expect("a resource server");
    let as_rs = Caller::ResourceServer(rs);
    let token = issued.access_token.as_str();
    let tools = ["mcp:tools".to_owned()];

    let implied = t.core.verify_token(&as_rs, token, "", &tools).await;
    let named = t.core.verify_token(&as_rs, token, RESOURCE, &tools).await;
    let gateway = t
        .core
        .verify_token(&Caller::Gateway, token, "HTTPS://mcp.example.com/mcp", &[])
        .await;

    assert!(implied.is_ok(), "its only audience is implied: {implied:?}");
    assert!(named.is_ok(), "{named:?}");
    assert!(
        gateway.is_ok(),
        "the gateway names any audience: {gateway:?}"
    );

    // (verifier, audience, required scopes, error code, why)
    let refused = [
        (
            &as_rs,
            OTHER_RESOURCE,
            vec![],
            "access_denied",
            "an audience it does not own",
        ),
        (
            &Caller::Gateway,
            OTHER_RESOURCE,
            vec![],
            "invalid_token",
            "a token for another audience",
        ),
        (
            &Caller::Gateway,
            "",
            vec![],
            "invalid_request",
            "the gateway must name the audience",
        ),
        (
            &as_rs,
            RESOURCE,
            vec!["mcp:tools".to_owned(), "admin".to_owned()],
            "insufficient_scope",
            "a scope the token lacks",
        ),
    ];
    for (verifier, audience, scopes, code, why) in refused {
        let got = t
            .core
            .verify_token(verifier, token, audience, &scopes)
            .await;
        assert_eq!(err_code(got, why), code, "{why}");
    }
}

#[tokio::test]
async fn only_a_confidential_client_that_owns_a_resource_is_a_resource_server() {
    let (t, _) = setup().await;

    // (client id, secret, error code, why)
    let cases = [
        (
            "app",
            SECRET,
            "access_denied",
            "a client that owns no resource",
        ),
        ("rs", "wrong", "invalid_client", "a wrong secret"),
        ("pub", "", "invalid_client", "a public client"),
    ];
    for (id, secret, code, why) in cases {
        let got = t.core.authenticate_resource_server(id, secret).await;
        assert_eq!(err_code(got, why), code, "{why}");
    }
}

#[tokio::test]
async fn a_revoked_access_token_fails_verification() {
    let (t, issued) = setup().await;
    t.core
        .revoke(&issued.access_token, None, &basic("app"), &[])
        .await
        .expect("revoked");

    let got = t
        .core
        .verify_token(&Caller::Gateway, &issued.access_token, RESOURCE, &[])
        .await;

    assert!(matches!(
        got,
        Err(AuthError::InvalidToken(Reason::Token(TokenFault::Revoked)))
    ));
}

#[tokio::test]
async fn a_refresh_token_for_a_deleted_resource_is_inactive_like_it_is_unusable() {
    let (t, issued) = setup().await;
    let refresh = issued.refresh_token.clone().expect("a refresh token");
    t.store.delete_resource(RESOURCE).await.expect("deleted");
    t.core.sync_directory(0).await.expect("the core reads it");

    let seen = introspect(&t, "app", &refresh).await;
    let used = t
        .core
        .exchange_token(refresh_request(basic("app"), &refresh))
        .await;

    assert_eq!(
        err_code(used, "refresh"),
        "invalid_grant",
        "the grant issues no more tokens"
    );
    assert_eq!(
        seen,
        Introspection::default(),
        "RFC 7662 §2.2: active means the token may be used"
    );
}
