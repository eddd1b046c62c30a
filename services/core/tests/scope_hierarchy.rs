//! Scope hierarchies (MCP 2026-07-28): an operator declares, on a resource, that one scope
//! implies others; tokens for it are minted with the implied scopes, and every check reads
//! the token's `scope`. Declarations a hierarchy cannot have are refused.

mod common;

use common::*;
use latchkey_core::grant::{TokenRequest, TokenResponse};
use latchkey_core::introspection::Caller;
use latchkey_core::model::{AuthMethod, GrantType};
use latchkey_core::scope::{ScopePolicy, ScopeSet};
use latchkey_core::settings::CoreSettings;
use latchkey_core::store::GrantStore;

const FILES: &str = "https://files.example.com/mcp";
const FILE_SCOPES: &str = "admin files:read files:write";

fn files_scopes(s: &mut CoreSettings) {
    s.scopes = ScopePolicy::new(
        ScopeSet::parse("admin files:read files:write audit").expect("valid"),
        ScopeSet::parse("files:read").expect("valid"),
    )
    .expect("a valid policy");
}

fn pairs(declared: &[(&str, &str)]) -> Vec<(String, String)> {
    declared
        .iter()
        .map(|(s, i)| ((*s).to_owned(), (*i).to_owned()))
        .collect()
}

/// `files:write` implies `files:read`, and `admin` implies `files:write`.
fn files_hierarchy() -> Vec<(String, String)> {
    pairs(&[("files:write", "files:read"), ("admin", "files:write")])
}

/// A core with [`FILES`] registered with [`files_hierarchy`], an operator client `svc` that
/// may get tokens for it without a user, a public client `app`, and a resource server `rs`.
async fn setup() -> TestCore {
    let t = core_with(files_scopes).await;
    t.core
        .add_resource_with_hierarchy(FILES, Some(FILE_SCOPES), true, &files_hierarchy())
        .await
        .expect("the resource is added");
    client("svc")
        .confidential(AuthMethod::ClientSecretBasic)
        .grants(&[GrantType::ClientCredentials])
        .operator(&[FILES])
        .seed(&t)
        .await;
    client("app").seed(&t).await;
    client("rs")
        .confidential(AuthMethod::ClientSecretBasic)
        .grants(&[])
        .owns(&[FILES])
        .operator(&[])
        .seed(&t)
        .await;
    t
}

async fn service_token(t: &TestCore, scope: &str) -> TokenResponse {
    t.core
        .exchange_token(TokenRequest {
            scope: Some(scope.into()),
            ..client_credentials_request(basic("svc"))
        })
        .await
        .expect("issued")
}

/// Tokens of a user's grant of `scope` at [`FILES`] to `app`.
async fn user_tokens(t: &TestCore, scope: &str) -> TokenResponse {
    let user = seed_user(t, &format!("{}@example.com", uuid::Uuid::new_v4().simple())).await;
    let mut g = grant(t, "app", user.id);
    g.resource = FILES.into();
    g.scope = ScopeSet::parse(scope).expect("valid");
    tokens(t, public("app"), &g).await
}

async fn passes(t: &TestCore, token: &str, required: &str) -> bool {
    let required: Vec<String> = required.split(' ').map(str::to_owned).collect();
    match t
        .core
        .verify_token(&Caller::Gateway, token, FILES, &required)
        .await
    {
        Ok(_) => true,
        Err(e) => {
            assert_eq!(e.code(), "insufficient_scope", "{required:?}: {e}");
            false
        }
    }
}

#[tokio::test]
async fn a_token_passes_a_requirement_its_scope_implies_and_never_one_it_does_not() {
    let t = setup().await;
    // (granted, required, passes)
    let cases = [
        ("files:write", "files:read", true),
        ("files:write", "files:write", true),
        ("files:read", "files:write", false),
        ("files:read", "admin", false),
        ("admin", "files:read", true),
        ("admin", "files:write files:read", true),
        ("files:write", "admin", false),
        ("files:write", "files:read admin", false),
    ];
    for (granted, required, want) in cases {
        let token = service_token(&t, granted).await.access_token;
        assert_eq!(
            passes(&t, &token, required).await,
            want,
            "a token of {granted} against {required}"
        );
    }
}

#[tokio::test]
async fn the_token_response_the_claim_and_introspection_name_the_implied_scopes_alike() {
    let t = setup().await;
    for issued in [
        service_token(&t, "admin").await,
        user_tokens(&t, "admin").await,
    ] {
        assert_eq!(issued.scope, "admin files:read files:write");
        let claims = t
            .core
            .check_access_token(&issued.access_token)
            .await
            .expect("live");
        assert_eq!(
            claims.scope, issued.scope,
            "RFC 6749 §5.1 and RFC 9068 agree"
        );
        let seen = t
            .core
            .introspect(&issued.access_token, None, &basic("rs"), &[])
            .await
            .expect("answered");
        assert_eq!(seen.scope.as_deref(), Some(issued.scope.as_str()));
        if let Some(rt) = issued.refresh_token.as_deref() {
            let seen = t
                .core
                .introspect(rt, Some("refresh_token"), &basic("rs"), &[])
                .await
                .expect("answered");
            assert_eq!(
                seen.scope.as_deref(),
                Some(issued.scope.as_str()),
                "a refresh token's scope is what its refresh would grant"
            );
        }
    }
}

#[tokio::test]
async fn the_grant_keeps_the_consented_scope_and_each_refresh_applies_the_hierarchy_of_the_day() {
    let t = setup().await;
    let issued = user_tokens(&t, "admin").await;
    let grants = t.store.grants();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        t.store
            .find_grant(grants[0].id)
            .await
            .expect("store")
            .expect("grant")
            .scope
            .to_string(),
        "admin",
        "the grant holds what the user consented to, not its expansion"
    );

    // The operator narrows the hierarchy: `admin` no longer implies `files:write`.
    assert!(t.core.delete_resource(FILES).await.expect("deleted"));
    t.core
        .add_resource_with_hierarchy(
            FILES,
            Some(FILE_SCOPES),
            true,
            &pairs(&[("files:write", "files:read")]),
        )
        .await
        .expect("added again");

    let refreshed = t
        .core
        .exchange_token(refresh_request(
            public("app"),
            issued.refresh_token.as_deref().expect("refresh token"),
        ))
        .await
        .expect("refreshed");
    assert_eq!(refreshed.scope, "admin");
    assert!(!passes(&t, &refreshed.access_token, "files:read").await);
    assert!(
        passes(&t, &issued.access_token, "files:read").await,
        "a token already issued keeps what its scope says until it expires"
    );
}

#[tokio::test]
async fn a_refresh_may_narrow_to_an_implied_scope_and_never_widen() {
    let t = setup().await;
    let issued = user_tokens(&t, "files:write").await;
    let rt = issued.refresh_token.clone().expect("refresh token");

    let narrowed = t
        .core
        .exchange_token(TokenRequest {
            scope: Some("files:read".into()),
            ..refresh_request(public("app"), &rt)
        })
        .await
        .expect("narrowed to an implied scope");
    assert_eq!(narrowed.scope, "files:read");
    assert!(!passes(&t, &narrowed.access_token, "files:write").await);

    let err = t
        .core
        .exchange_token(TokenRequest {
            scope: Some("admin".into()),
            ..refresh_request(
                public("app"),
                narrowed.refresh_token.as_deref().expect("rotated"),
            )
        })
        .await
        .expect_err("admin was never granted");
    assert_eq!(err.code(), "invalid_scope");
}

#[tokio::test]
async fn a_client_allowed_a_scope_may_ask_for_what_it_implies_alone() {
    let t = setup().await;
    client("narrow")
        .confidential(AuthMethod::ClientSecretBasic)
        .grants(&[GrantType::ClientCredentials])
        .operator(&[FILES])
        .scope("files:write")
        .seed(&t)
        .await;
    let ask = |scope: &str| TokenRequest {
        scope: Some(scope.into()),
        ..client_credentials_request(basic("narrow"))
    };
    let read = t
        .core
        .exchange_token(ask("files:read"))
        .await
        .expect("implied");
    assert_eq!(read.scope, "files:read");
    let write = t
        .core
        .exchange_token(ask("files:write"))
        .await
        .expect("own");
    assert_eq!(write.scope, "files:read files:write");
    let err = t
        .core
        .exchange_token(ask("admin"))
        .await
        .expect_err("admin implies files:write, not the other way round");
    assert_eq!(err.code(), "invalid_scope");
}

#[tokio::test]
async fn a_hierarchy_the_operator_cannot_declare_is_refused_and_nothing_is_added() {
    let t = core_with(files_scopes).await;
    // (scopes of the resource, declarations, words the refusal must contain)
    type Case<'a> = (Option<&'a str>, Vec<(String, String)>, &'a str);
    let cases: [Case; 6] = [
        (
            Some(FILE_SCOPES),
            pairs(&[("files:write", "files:read"), ("files:read", "files:write")]),
            "cycle: files:read -> files:write -> files:read",
        ),
        (
            Some(FILE_SCOPES),
            pairs(&[
                ("admin", "files:write"),
                ("files:write", "files:read"),
                ("files:read", "admin"),
            ]),
            "cycle: admin -> files:write -> files:read -> admin",
        ),
        (
            Some(FILE_SCOPES),
            pairs(&[("files:write", "files:delete")]),
            "does not accept: files:delete",
        ),
        (
            Some("files:read files:write"),
            pairs(&[("admin", "files:write")]),
            "does not accept: admin",
        ),
        (
            None,
            pairs(&[("admin", "mcp:tools")]),
            "does not accept: mcp:tools",
        ),
        (
            Some(FILE_SCOPES),
            pairs(&[("admin", "offline_access")]),
            "offline_access",
        ),
    ];
    for (scopes, declared, words) in cases {
        let err = t
            .core
            .add_resource_with_hierarchy(FILES, scopes, true, &declared)
            .await
            .expect_err(words);
        assert_eq!(err.code(), "invalid_scope", "{words}");
        assert!(err.description().contains(words), "{words}: {err}");
    }
    assert!(
        t.core.protected_resource_list().is_empty(),
        "a refused declaration adds no resource"
    );
    // Without scopes of its own, the resource accepts every scope the server supports.
    let added = t
        .core
        .add_resource_with_hierarchy(FILES, None, true, &pairs(&[("admin", "audit")]))
        .await
        .expect("the server's scopes");
    assert_eq!(added.implies.declared()["admin"].len(), 1);
}

#[tokio::test]
async fn the_consent_prompt_names_every_scope_the_token_will_carry_implied_ones_included() {
    // The user is shown what the token grants, not only what the client asked for: consenting
    // to `admin` hands out `files:write` and `files:read` too.
    let t = setup().await;
    let mut req = authorization_request("app");
    req.resource = vec![FILES.into()];
    req.scope = Some("admin".into());
    let prompt = start(&t, req).await;
    let mut shown = prompt.scopes.clone();
    shown.sort();
    assert_eq!(shown, ["admin", "files:read", "files:write"]);
}
