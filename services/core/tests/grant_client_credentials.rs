//! The client credentials grant (RFC 6749 §4.4): tokens without a user, for operator clients
//! only, and only for the resources and scopes the operator listed on them.

mod common;

use common::*;
use latchkey_core::grant::TokenRequest;
use latchkey_core::model::{AuthMethod, ClientTier, GrantType};
use latchkey_core::settings::CoreSettings;
use latchkey_core::store::ResourceStore;

const CC: &[GrantType] = &[GrantType::ClientCredentials];

/// A core with [`RESOURCE`] (tools and resources only, the default) and [`OTHER_RESOURCE`]
/// registered, and an operator client `svc` that may get tokens for [`RESOURCE`].
async fn setup() -> TestCore {
    setup_with(|_| {}).await
}

async fn setup_with(adjust: impl FnOnce(&mut CoreSettings)) -> TestCore {
    let t = core_with(adjust).await;
    seed_resource(&t, RESOURCE, Some("mcp:tools mcp:resources"), true).await;
    seed_resource(&t, OTHER_RESOURCE, None, false).await;
    client("svc")
        .confidential(AuthMethod::ClientSecretBasic)
        .grants(CC)
        .operator(&[RESOURCE])
        .seed(&t)
        .await;
    t
}

#[tokio::test]
async fn an_operator_client_gets_a_token_for_its_listed_resource_with_itself_as_subject() {
    let t = setup().await;

    let issued = t
        .core
        .exchange_token(client_credentials_request(basic("svc")))
        .await
        .expect("issued");

    assert_eq!(issued.refresh_token, None);
    assert_eq!(
        issued.scope, "mcp:resources mcp:tools",
        "defaults, narrowed by the resource"
    );
    assert_eq!(issued.client_tier, ClientTier::Operator);
    let claims = t
        .core
        .check_access_token(&issued.access_token)
        .await
        .expect("live");
    assert_eq!(
        claims.sub, "svc",
        "RFC 9068 §2.2: the client is the subject"
    );
    assert!(!claims.has_user());
    assert_eq!(claims.aud, RESOURCE);
    assert_eq!(claims.sid, None, "no grant stands behind it");
    assert!(t.store.grants().is_empty(), "nothing is written");
}

#[tokio::test]
async fn only_a_confidential_operator_client_with_the_grant_and_an_audience_may_use_it() {
    let t = setup().await;
    // (client, why)
    let cases = [
        (
            client("dynamic")
                .confidential(AuthMethod::ClientSecretBasic)
                .grants(CC),
            "a self-registered client",
        ),
        (
            client("document")
                .confidential(AuthMethod::ClientSecretBasic)
                .grants(CC)
                .tier(ClientTier::MetadataDocument),
            "a metadata-document client",
        ),
        (
            client("public").grants(CC).operator(&[RESOURCE]),
            "a public operator client",
        ),
        (
            client("no-grant")
                .confidential(AuthMethod::ClientSecretBasic)
                .operator(&[RESOURCE]),
            "an operator client without the grant type",
        ),
        (
            client("no-audience")
                .confidential(AuthMethod::ClientSecretBasic)
                .grants(CC)
                .operator(&[]),
            "an operator client with no audience",
        ),
    ];
    for (spec, why) in cases {
        let c = spec.seed(&t).await;
        let creds = if c.is_confidential() {
            basic(&c.id)
        } else {
            public(&c.id)
        };
        let got = t
            .core
            .exchange_token(client_credentials_request(creds))
            .await;
        assert_eq!(err_code(got, why), "unauthorized_client", "{why}");
    }
}

#[tokio::test]
async fn the_resource_and_scope_must_be_within_what_the_operator_listed() {
    let t = setup_with(refusing_unknown_scopes).await;
    client("narrow")
        .confidential(AuthMethod::ClientSecretBasic)
        .grants(CC)
        .operator(&[RESOURCE, OTHER_RESOURCE])
        .scope("mcp:tools")
        .seed(&t)
        .await;
    let asking = |id: &str, resource: &[&str], scope: Option<&str>| TokenRequest {
        resource: resource.iter().map(|r| (*r).to_owned()).collect(),
        scope: scope.map(str::to_owned),
        ..client_credentials_request(basic(id))
    };

    // (request, error code, why)
    let refused = [
        (
            asking("svc", &[OTHER_RESOURCE], None),
            "invalid_target",
            "a registered resource that is not listed",
        ),
        (
            asking("svc", &["https://unknown.example.com/mcp"], None),
            "invalid_target",
            "an unknown resource",
        ),
        (
            asking("narrow", &[RESOURCE, OTHER_RESOURCE], None),
            "invalid_target",
            "two resources at once",
        ),
        (
            asking("svc", &[], Some("mcp:prompts")),
            "invalid_scope",
            "a scope the resource does not accept",
        ),
        (
            asking("narrow", &[OTHER_RESOURCE], Some("mcp:resources")),
            "invalid_scope",
            "a scope the client is not registered for",
        ),
        (
            asking("svc", &[], Some("mcp:tools offline_access")),
            "invalid_scope",
            "offline_access, which means nothing without a user",
        ),
        (
            asking("svc", &[], Some("admin")),
            "invalid_scope",
            "an unknown scope, when the operator refuses them",
        ),
    ];
    for (req, code, why) in refused {
        let got = t.core.exchange_token(req).await;
        assert_eq!(err_code(got, why), code, "{why}");
    }

    // (request, audience, scope, why)
    let granted = [
        (
            asking("narrow", &[], None),
            RESOURCE,
            "mcp:tools",
            "none named: the listed default",
        ),
        (
            asking("narrow", &[OTHER_RESOURCE], None),
            OTHER_RESOURCE,
            "mcp:tools",
            "a listed resource, the client's scope",
        ),
        (
            asking("svc", &["HTTPS://MCP.EXAMPLE.COM/mcp"], Some("mcp:tools")),
            RESOURCE,
            "mcp:tools",
            "named after normalization, a narrower scope",
        ),
    ];
    for (req, aud, scope, why) in granted {
        let issued = t
            .core
            .exchange_token(req)
            .await
            .unwrap_or_else(|e| panic!("{why}: {e}"));
        let claims = t
            .core
            .check_access_token(&issued.access_token)
            .await
            .expect("live");
        assert_eq!(claims.aud, aud, "{why}");
        assert_eq!(claims.scope, scope, "{why}");
    }
}

#[tokio::test]
async fn a_listed_resource_that_was_deleted_gives_no_more_tokens() {
    let t = setup().await;
    t.store.delete_resource(RESOURCE).await.expect("deleted");
    t.core.sync_directory(0).await.expect("the core reads it");

    let got = t
        .core
        .exchange_token(client_credentials_request(basic("svc")))
        .await;

    assert_eq!(err_code(got, "deleted resource"), "invalid_target");
}

#[tokio::test]
async fn a_production_server_without_resources_gives_no_token_even_for_a_listed_one() {
    let t = core_with(|s| s.open_resources = false).await;
    client("svc")
        .confidential(AuthMethod::ClientSecretBasic)
        .grants(CC)
        .operator(&[RESOURCE])
        .seed(&t)
        .await;

    let got = t
        .core
        .exchange_token(client_credentials_request(basic("svc")))
        .await;

    assert_eq!(err_code(got, "closed"), "invalid_target");
}

#[tokio::test]
async fn a_development_server_without_resources_gives_a_token_for_a_listed_one() {
    let t = core().await;
    client("svc")
        .confidential(AuthMethod::ClientSecretBasic)
        .grants(CC)
        .operator(&[RESOURCE])
        .seed(&t)
        .await;

    let issued = t
        .core
        .exchange_token(client_credentials_request(basic("svc")))
        .await
        .expect("issued");

    let claims = t
        .core
        .check_access_token(&issued.access_token)
        .await
        .expect("live");
    assert_eq!(claims.aud, RESOURCE);
    assert_eq!(issued.scope, ALL_SCOPES);
}

#[tokio::test]
async fn unknown_scopes_are_ignored_by_default_and_the_answer_says_what_was_granted() {
    let t = setup().await;
    for (asked, granted) in [
        ("mcp:tools admin", "mcp:tools"),
        ("openid email profile", "mcp:resources mcp:tools"),
    ] {
        let r = t
            .core
            .exchange_token(TokenRequest {
                scope: Some(asked.into()),
                ..client_credentials_request(basic("svc"))
            })
            .await
            .expect(asked);
        assert_eq!(r.scope, granted, "{asked}");
    }
}
