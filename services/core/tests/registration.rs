//! Client registration (RFC 7591): the dynamic path, the operator's path, initial access
//! tokens, the registration policy, and metadata validation.

mod common;

use common::*;
use latchkey_core::AuthError;
use latchkey_core::error::Reason;
use latchkey_core::model::{ClientTier, GrantType};
use latchkey_core::registration::RegistrationPolicy;
use latchkey_core::store::ClientStore;
use serde_json::json;

fn metadata(v: serde_json::Value) -> String {
    v.to_string()
}

/// A web app asking for the code and refresh grants.
fn web_app() -> serde_json::Value {
    json!({
        "client_name": "Web App",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
    })
}

#[tokio::test]
async fn open_registration_makes_a_dynamic_client_and_drops_grants_without_a_user() {
    let t = core().await;
    let mut asked = web_app();
    asked["grant_types"] = json!(["authorization_code", "refresh_token", "client_credentials"]);

    let reg = t
        .core
        .register_client(&metadata(asked), None)
        .await
        .expect("registered");

    assert_eq!(reg.client.tier, ClientTier::Dynamic);
    assert!(!reg.client.trusted_redirects);
    assert_eq!(
        reg.client.grant_types,
        [GrantType::AuthorizationCode, GrantType::RefreshToken]
    );
    assert!(reg.client.audiences.is_empty());
    let body = reg.to_json();
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"]),
        "the response says what was granted"
    );
    let secret = reg.client_secret.clone().expect("confidential by default");
    assert_eq!(body["client_secret"], json!(secret));
    let stored = t
        .store
        .find_client(&reg.client.id)
        .await
        .expect("store")
        .expect("stored");
    assert_eq!(stored.tier, ClientTier::Dynamic);
    let authenticated = t
        .core
        .authenticate_client(&latchkey_core::client_auth::PresentedCredentials {
            basic: Some((reg.client.id.clone(), secret)),
            ..Default::default()
        })
        .await;
    assert!(authenticated.is_ok(), "the secret works: {authenticated:?}");
}

#[tokio::test]
async fn a_public_client_gets_no_secret() {
    let t = core().await;
    let mut asked = web_app();
    asked["token_endpoint_auth_method"] = json!("none");
    asked["redirect_uris"] = json!(["com.example.app:/callback", "http://127.0.0.1/cb"]);

    let reg = t
        .core
        .register_client(&metadata(asked), None)
        .await
        .expect("registered");

    assert_eq!(reg.client_secret, None);
    assert!(!reg.client.is_confidential());
    assert!(reg.to_json().get("client_secret").is_none());
}

#[tokio::test]
async fn a_self_registered_client_cannot_ask_for_client_credentials_alone() {
    let t = core().await;

    let got = t
        .core
        .register_client(
            &metadata(json!({"grant_types": ["client_credentials"]})),
            None,
        )
        .await;

    assert_eq!(err_code(got, "cc alone"), "invalid_client_metadata");
    assert!(t.store.list_clients().await.expect("store").is_empty());
}

#[tokio::test]
async fn metadata_that_breaks_a_rule_is_refused() {
    let t = core_with(refusing_unknown_scopes).await;
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut m = web_app();
        f(&mut m);
        metadata(m)
    };
    let too_many: Vec<String> = (0..21)
        .map(|i| format!("https://app.example.com/cb{i}"))
        .collect();

    // (metadata, error code, why)
    let cases: Vec<(String, &str, &str)> = vec![
        ("not json".into(), "invalid_client_metadata", "not JSON"),
        ("[]".into(), "invalid_client_metadata", "a JSON array"),
        (
            with(&|m| m["token_endpoint_auth_method"] = json!("private_key_jwt")),
            "invalid_client_metadata",
            "an unsupported auth method",
        ),
        (
            with(&|m| m["token_endpoint_auth_method"] = json!(7)),
            "invalid_client_metadata",
            "an auth method that is not a string",
        ),
        (
            with(&|m| m["grant_types"] = json!(["password"])),
            "invalid_client_metadata",
            "an unsupported grant type",
        ),
        (
            with(&|m| m["grant_types"] = json!("authorization_code")),
            "invalid_client_metadata",
            "grant_types not an array",
        ),
        (
            with(&|m| m["grant_types"] = json!([])),
            "invalid_client_metadata",
            "no grant at all",
        ),
        (
            with(&|m| m["grant_types"] = json!(["refresh_token"])),
            "invalid_client_metadata",
            "refresh_token alone",
        ),
        (
            with(&|m| m["response_types"] = json!(["token"])),
            "invalid_client_metadata",
            "the implicit response type",
        ),
        (
            with(&|m| m["response_types"] = json!([])),
            "invalid_client_metadata",
            "response_types that disagree with grant_types",
        ),
        (
            with(&|m| {
                m["token_endpoint_auth_method"] = json!("none");
                m["grant_types"] = json!(["authorization_code", "client_credentials"]);
            }),
            "invalid_client_metadata",
            "client_credentials for a public client",
        ),
        (
            with(&|m| m["redirect_uris"] = json!([])),
            "invalid_redirect_uri",
            "the code grant without a redirect URI",
        ),
        (
            with(&|m| m["redirect_uris"] = json!(too_many)),
            "invalid_redirect_uri",
            "more than 20 redirect URIs",
        ),
        (
            with(&|m| m["redirect_uris"] = json!(["http://app.example.com/cb"])),
            "invalid_redirect_uri",
            "plain http off loopback",
        ),
        (
            with(&|m| m["redirect_uris"] = json!(["https://app.example.com/cb#x"])),
            "invalid_redirect_uri",
            "a fragment",
        ),
        (
            with(&|m| m["redirect_uris"] = json!(["javascript:alert(1)"])),
            "invalid_redirect_uri",
            "a javascript: URI",
        ),
        (
            with(&|m| m["redirect_uris"] = json!(["com.example.app:/cb"])),
            "invalid_redirect_uri",
            "a private-use scheme for a confidential client",
        ),
        (
            with(&|m| m["redirect_uris"] = json!(["https://app.example.com/a b"])),
            "invalid_redirect_uri",
            "a space in a redirect URI",
        ),
        (
            with(&|m| m["scope"] = json!("mcp:tools admin")),
            "invalid_client_metadata",
            "an unknown scope, when the operator refuses them",
        ),
        (
            with(&|m| m["scope"] = json!(["mcp:tools"])),
            "invalid_client_metadata",
            "scope not a string",
        ),
        (
            with(&|m| m["client_uri"] = json!("javascript:alert(1)")),
            "invalid_client_metadata",
            "a client_uri that is not a web URL",
        ),
        (
            with(&|m| m["logo_uri"] = json!("http://evil.example.com/logo.png")),
            "invalid_client_metadata",
            "a plain http logo off loopback",
        ),
        (
            with(&|m| m["client_name"] = json!("x".repeat(501))),
            "invalid_client_metadata",
            "a name longer than 500 bytes",
        ),
        (
            with(&|m| m["client_name"] = json!("Good\u{0}Name")),
            "invalid_client_metadata",
            "a NUL in the name",
        ),
        (
            with(&|m| m["client_name"] = json!("Safe App\u{202e}ppa live")),
            "invalid_client_metadata",
            "a bidirectional override in the name",
        ),
        (
            with(&|m| m["client_name"] = json!("\u{200b}")),
            "invalid_client_metadata",
            "a name of one zero-width space",
        ),
        (
            with(&|m| m["contacts"] = json!(["ops@example.com\n"])),
            "invalid_client_metadata",
            "a control character in a contact",
        ),
        (
            with(&|m| m["jwks_uri"] = json!("https://app.example.com/jwks")),
            "invalid_client_metadata",
            "jwks_uri (no private_key_jwt)",
        ),
    ];
    for (body, code, why) in cases {
        let got = t.core.register_client(&body, None).await;
        assert_eq!(err_code(got, why), code, "{why}");
    }
    assert!(
        t.store.list_clients().await.expect("store").is_empty(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn the_registration_policy_decides_who_may_register() {
    // (policy, with an initial access token, the outcome: a tier or an error code, why)
    let cases = [
        (
            RegistrationPolicy::Open,
            false,
            Ok(ClientTier::Dynamic),
            "open, anonymous",
        ),
        (
            RegistrationPolicy::Open,
            true,
            Ok(ClientTier::Operator),
            "open, with a token",
        ),
        (
            RegistrationPolicy::InitialAccessToken,
            false,
            Err("invalid_token"),
            "tokens only, anonymous",
        ),
        (
            RegistrationPolicy::InitialAccessToken,
            true,
            Ok(ClientTier::Operator),
            "tokens only, with a token",
        ),
        (
            RegistrationPolicy::Off,
            false,
            Err("access_denied"),
            "off, anonymous",
        ),
        (
            RegistrationPolicy::Off,
            true,
            Err("access_denied"),
            "off, even with a token",
        ),
    ];
    for (policy, with_token, want, why) in cases {
        let t = core_with(|s| s.registration = policy).await;
        let token = t
            .core
            .issue_initial_access_token(&[RESOURCE.into()], None, 3600)
            .await
            .expect("issued");
        let presented = with_token.then_some(token.token.as_str());

        let got = t
            .core
            .register_client(&metadata(web_app()), presented)
            .await;

        match (got, want) {
            (Ok(reg), Ok(tier)) => assert_eq!(reg.client.tier, tier, "{why}"),
            (Err(e), Err(code)) => assert_eq!(e.code(), code, "{why}"),
            (got, _) => panic!("{why}: {got:?}"),
        }
    }
}

#[tokio::test]
async fn an_initial_access_token_makes_one_operator_client_with_its_audiences() {
    let t = core().await;
    let token = t
        .core
        .issue_initial_access_token(&["HTTPS://MCP.example.com/mcp".into()], None, 3600)
        .await
        .expect("issued");
    let mut asked = web_app();
    asked["grant_types"] = json!(["client_credentials"]);
    asked["response_types"] = json!([]);
    asked["redirect_uris"] = json!([]);

    let first = t
        .core
        .register_client(&metadata(asked.clone()), Some(&token.token))
        .await
        .expect("registered");
    let second = t
        .core
        .register_client(&metadata(asked), Some(&token.token))
        .await;

    assert_eq!(first.client.tier, ClientTier::Operator);
    assert_eq!(first.client.audiences, [RESOURCE]);
    assert_eq!(first.client.grant_types, [GrantType::ClientCredentials]);
    assert!(
        !first.client.trusted_redirects,
        "it chose its own redirect URIs"
    );
    assert!(
        matches!(second, Err(AuthError::InvalidToken(_))),
        "{second:?}"
    );
    assert_eq!(t.store.list_clients().await.expect("store").len(), 1);
}

#[tokio::test]
async fn an_initial_access_token_expires_and_an_unknown_one_is_refused() {
    let t = core().await;
    let token = t
        .core
        .issue_initial_access_token(&[RESOURCE.into()], None, 60)
        .await
        .expect("issued");

    advance(&t, 60);
    let expired = t
        .core
        .register_client(&metadata(web_app()), Some(&token.token))
        .await;
    let unknown = t
        .core
        .register_client(&metadata(web_app()), Some("made-up"))
        .await;

    assert_eq!(err_code(expired, "expired"), "invalid_token");
    assert_eq!(err_code(unknown, "unknown"), "invalid_token");
    assert!(t.store.list_clients().await.expect("store").is_empty());
}

#[tokio::test]
async fn a_registration_may_not_broaden_the_scope_of_its_initial_access_token() {
    let t = core().await;
    let token = t
        .core
        .issue_initial_access_token(&[RESOURCE.into()], Some("mcp:tools"), 3600)
        .await
        .expect("issued");
    let mut broad = web_app();
    broad["scope"] = json!("mcp:tools mcp:prompts");

    let refused = t
        .core
        .register_client(&metadata(broad), Some(&token.token))
        .await;
    let inherited = t
        .core
        .register_client(&metadata(web_app()), Some(&token.token))
        .await
        .expect("the refusal did not spend the token");

    assert!(matches!(
        refused,
        Err(AuthError::InvalidClientMetadata(Reason::ScopeBroadened(ref s))) if s == "mcp:prompts"
    ));
    assert_eq!(
        inherited.client.scope.map(|s| s.to_string()).as_deref(),
        Some("mcp:tools")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_registrations_with_one_initial_access_token_exactly_one_succeeds() {
    let t = core().await;
    let token = t
        .core
        .issue_initial_access_token(&[RESOURCE.into()], None, 3600)
        .await
        .expect("issued");
    let register = || {
        let core = t.core.clone();
        let token = token.token.clone();
        tokio::spawn(async move {
            core.register_client(&metadata(web_app()), Some(&token))
                .await
        })
    };

    let (a, b) = (register(), register());
    let (a, b) = (a.await.expect("joined"), b.await.expect("joined"));

    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} / {b:?}"
    );
    assert_eq!(t.store.list_clients().await.expect("store").len(), 1);
}

#[tokio::test]
async fn issuing_an_initial_access_token_checks_audiences_lifetime_and_scope() {
    let t = core().await;
    seed_resource(&t, RESOURCE, None, true).await;

    // (audiences, scope, ttl seconds, error code, why)
    let cases = [
        (vec![], None, 3600, "invalid_request", "no audience"),
        (
            vec![RESOURCE],
            None,
            0,
            "invalid_request",
            "a zero lifetime",
        ),
        (
            vec![RESOURCE],
            None,
            30 * 24 * 3600 + 1,
            "invalid_request",
            "longer than 30 days",
        ),
        (
            vec![RESOURCE],
            Some("admin"),
            3600,
            "invalid_scope",
            "an unknown scope",
        ),
        (
            vec![OTHER_RESOURCE],
            None,
            3600,
            "invalid_target",
            "a resource that is not registered",
        ),
        (
            vec!["not a url"],
            None,
            3600,
            "invalid_target",
            "a malformed resource",
        ),
    ];
    for (audiences, scope, ttl, code, why) in cases {
        let audiences: Vec<String> = audiences.into_iter().map(str::to_owned).collect();
        let got = t
            .core
            .issue_initial_access_token(&audiences, scope, ttl)
            .await;
        assert_eq!(err_code(got, why), code, "{why}");
    }
    assert!(t.store.initial_access_tokens().is_empty());
}

#[tokio::test]
async fn the_operator_path_makes_a_trusted_operator_client_for_known_audiences() {
    let t = core().await;
    seed_resource(&t, RESOURCE, None, true).await;
    let service = metadata(json!({"grant_types": ["client_credentials"]}));

    let made = t
        .core
        .register_operator_client(&service, &[RESOURCE.into()], &[])
        .await
        .expect("registered");
    let no_audience = t.core.register_operator_client(&service, &[], &[]).await;
    let unknown = t
        .core
        .register_operator_client(&service, &[OTHER_RESOURCE.into()], &[])
        .await;
    let verifier_only = t
        .core
        .register_operator_client(&metadata(json!({"grant_types": []})), &[], &[])
        .await;

    assert_eq!(made.client.tier, ClientTier::Operator);
    assert!(made.client.trusted_redirects);
    assert_eq!(made.client.audiences, [RESOURCE]);
    assert_eq!(
        err_code(no_audience, "no audience"),
        "invalid_client_metadata"
    );
    assert_eq!(err_code(unknown, "unknown audience"), "invalid_target");
    assert!(
        verifier_only.is_ok(),
        "an operator's resource server needs no grant: {verifier_only:?}"
    );
}

#[tokio::test]
async fn assigning_resources_needs_a_confidential_client_and_makes_it_the_operators() {
    let t = core().await;
    let confidential = t
        .core
        .register_client(&metadata(web_app()), None)
        .await
        .expect("registered");
    let mut public_meta = web_app();
    public_meta["token_endpoint_auth_method"] = json!("none");
    let public_client = t
        .core
        .register_client(&metadata(public_meta), None)
        .await
        .expect("registered");

    let owned = t
        .core
        .set_client_resources(
            &confidential.client.id,
            &["HTTPS://MCP.example.com/mcp".into()],
        )
        .await
        .expect("assigned");
    let refused = t
        .core
        .set_client_resources(&public_client.client.id, &[RESOURCE.into()])
        .await;
    let missing = t.core.set_client_resources("nobody", &[]).await;

    assert_eq!(owned, [RESOURCE]);
    let stored = t
        .store
        .find_client(&confidential.client.id)
        .await
        .expect("store")
        .expect("stored");
    assert_eq!(stored.resources, [RESOURCE]);
    assert_eq!(stored.tier, ClientTier::Operator);
    assert_eq!(err_code(refused, "public"), "invalid_request");
    assert_eq!(err_code(missing, "unknown"), "not_found");
}

#[tokio::test]
async fn unknown_scopes_in_metadata_are_dropped_by_default() {
    let t = core().await;
    for (asked, kept) in [
        ("mcp:tools admin", Some("mcp:tools")),
        ("openid profile", None),
    ] {
        let mut m = web_app();
        m["scope"] = json!(asked);
        let reg = t
            .core
            .register_client(&metadata(m), None)
            .await
            .expect(asked);
        assert_eq!(
            reg.client.scope.map(|s| s.to_string()).as_deref(),
            kept,
            "{asked}"
        );
    }
}
