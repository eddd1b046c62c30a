//! Client authentication (RFC 6749 §2.3): HTTP Basic, a secret in the body for clients
//! registered for it, an id alone for public clients, and never two methods at once.

mod common;

use common::*;
use latchkey_core::AuthError;
use latchkey_core::client_auth::PresentedCredentials;
use latchkey_core::error::Reason;
use latchkey_core::model::AuthMethod;

/// A public client `pub`, a `client_secret_basic` client `basic`, and a `client_secret_post`
/// client `post`.
async fn setup() -> TestCore {
    let t = core().await;
    client("pub").seed(&t).await;
    client("basic")
        .confidential(AuthMethod::ClientSecretBasic)
        .seed(&t)
        .await;
    client("post")
        .confidential(AuthMethod::ClientSecretPost)
        .seed(&t)
        .await;
    t
}

fn creds(
    basic: Option<(&str, &str)>,
    id: Option<&str>,
    secret: Option<&str>,
) -> PresentedCredentials {
    PresentedCredentials {
        basic: basic.map(|(i, s)| (i.to_owned(), s.to_owned())),
        client_id: id.map(str::to_owned),
        client_secret: secret.map(str::to_owned),
        ..Default::default()
    }
}

#[tokio::test]
async fn each_client_authenticates_the_way_it_may() {
    let t = setup().await;

    // (credentials, the client they authenticate, why)
    let cases = [
        (basic("basic"), "basic", "Basic for a basic client"),
        (
            basic("post"),
            "post",
            "Basic for a post client: RFC 6749 §2.3.1 always allows it",
        ),
        (post("post"), "post", "the body for a post client"),
        (public("pub"), "pub", "a public client names itself"),
        (
            creds(Some(("basic", SECRET)), Some("basic"), None),
            "basic",
            "Basic with the same client_id in the body",
        ),
    ];
    for (presented, want, why) in cases {
        let client = t
            .core
            .authenticate_client(&presented)
            .await
            .unwrap_or_else(|e| panic!("{why}: {e}"));
        assert_eq!(client.id, want, "{why}");
    }
}

#[tokio::test]
async fn wrong_missing_or_doubled_credentials_are_refused() {
    let t = setup().await;

    // (credentials, error code, why)
    let cases = [
        (
            creds(Some(("basic", "wrong")), None, None),
            "invalid_client",
            "a wrong secret by Basic",
        ),
        (
            creds(None, Some("post"), Some("wrong")),
            "invalid_client",
            "a wrong secret in the body",
        ),
        (
            creds(Some(("basic", "")), None, None),
            "invalid_client",
            "an empty secret",
        ),
        (
            post("basic"),
            "invalid_client",
            "the body for a client registered for Basic",
        ),
        (
            public("basic"),
            "invalid_client",
            "a confidential client without its secret",
        ),
        (
            post("pub"),
            "invalid_client",
            "a public client presenting a secret in the body",
        ),
        (
            basic("pub"),
            "invalid_client",
            "a public client presenting a secret by Basic",
        ),
        (
            basic("nobody"),
            "invalid_client",
            "an unknown client by Basic",
        ),
        (
            public("nobody"),
            "invalid_client",
            "an unknown public client",
        ),
        (
            creds(None, None, None),
            "invalid_client",
            "no credentials at all",
        ),
        (
            creds(Some(("post", SECRET)), Some("post"), Some(SECRET)),
            "invalid_request",
            "two methods at once",
        ),
        (
            creds(Some(("basic", SECRET)), Some("post"), None),
            "invalid_request",
            "a body client_id that differs from Basic",
        ),
    ];
    for (presented, code, why) in cases {
        let got = t.core.authenticate_client(&presented).await;
        assert_eq!(err_code(got, why), code, "{why}");
    }
}

#[tokio::test]
async fn an_identifier_no_client_can_have_is_refused_without_a_lookup() {
    let t = core().await;
    // Seeded straight into the store: if the core looked these up, they would authenticate.
    let ids = ["nul\0id", "new\nline", "tab\tid", "caf\u{e9}", "del\u{7f}"];
    for id in ids {
        client(id)
            .confidential(AuthMethod::ClientSecretBasic)
            .seed(&t)
            .await;
    }
    client("public\nid").seed(&t).await;
    let too_long = "a".repeat(2049);
    client(&too_long).seed(&t).await;

    for id in ids {
        let got = t.core.authenticate_client(&basic(id)).await;
        assert_eq!(err_code(got, id), "invalid_client", "{id:?}");
    }
    for id in ["public\nid", too_long.as_str()] {
        let got = t.core.authenticate_client(&public(id)).await;
        assert_eq!(err_code(got, id), "invalid_client", "{id:?}");
    }
}

#[tokio::test]
async fn a_confidential_only_endpoint_refuses_a_public_client() {
    let t = setup().await;

    let public_client = t
        .core
        .authenticate_confidential_client(&public("pub"))
        .await;
    let confidential = t
        .core
        .authenticate_confidential_client(&basic("basic"))
        .await;

    assert!(matches!(
        public_client,
        Err(AuthError::InvalidClient(Reason::PublicClientNotAllowed))
    ));
    assert!(confidential.is_ok(), "{confidential:?}");
}

#[tokio::test]
async fn the_token_endpoint_authenticates_the_client_before_any_grant_rule() {
    let t = setup().await;
    let user = seed_user(&t, EMAIL).await;
    let code = seed_code(&t, &grant(&t, "post", user.id)).await;

    let wrong = t
        .core
        .exchange_token(code_request(
            creds(None, Some("post"), Some("wrong")),
            &code,
        ))
        .await;
    let right = t
        .core
        .exchange_token(code_request(post("post"), &code))
        .await;

    assert_eq!(err_code(wrong, "wrong secret"), "invalid_client");
    assert!(
        right.is_ok(),
        "the refused attempt spent nothing: {right:?}"
    );
}
