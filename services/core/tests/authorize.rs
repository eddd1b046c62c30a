//! The authorization endpoint: start_authorization, submit_login, submit_consent.
//!
//! Before the client and redirect URI are known good, errors are shown and never redirected;
//! after, they go back to the client at once if its redirect URIs are the operator's, and
//! through a notice the user must click through otherwise (RFC 9700 §4.11.2).

mod common;

use common::*;
use latchkey_core::AuthError;
use latchkey_core::authorize::{AuthorizationRequest, StartOutcome};
use latchkey_core::error::Reason;
use latchkey_core::lockout::Backoff;
use latchkey_core::model::GrantType;
use latchkey_core::store::UserStore;

#[tokio::test]
async fn a_full_authorization_redirects_with_code_state_and_issuer_and_records_consent() {
    let t = core().await;
    client("app").seed(&t).await;
    let user = seed_user(&t, EMAIL).await;

    let prompt = start(&t, authorization_request("app")).await;
    assert!(!prompt.authenticated);
    assert_eq!(prompt.client_name, "app app");
    assert_eq!(prompt.redirect_host, "app.example.com");
    assert_eq!(prompt.scopes, ["mcp:prompts", "mcp:resources", "mcp:tools"]);
    assert_eq!(
        prompt.resource, ISSUER,
        "an open server binds to the issuer"
    );
    let prompt = login(&t, &prompt, EMAIL).await;
    assert!(prompt.authenticated);
    assert_eq!(prompt.user_email.as_deref(), Some(EMAIL));
    let redirect = t
        .core
        .submit_consent(&prompt.session_id, &prompt.csrf_token, true)
        .await
        .expect("consent");

    assert!(redirect.starts_with(REDIRECT), "{redirect}");
    assert!(query(&redirect, "code").is_some());
    assert_eq!(query(&redirect, "state").as_deref(), Some(STATE));
    assert_eq!(query(&redirect, "iss").as_deref(), Some(ISSUER));
    let consents = t.store.consents();
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0].user_id, user.id);
    assert_eq!(consents[0].client_id, "app");
    assert_eq!(consents[0].scope, ALL_SCOPES);
    let codes = t.store.codes();
    assert_eq!(codes.len(), 1);
    assert_eq!(codes[0].redirect_uri.as_deref(), Some(REDIRECT));
}

#[tokio::test]
async fn problems_with_the_client_or_redirect_uri_are_shown_and_never_redirected() {
    let t = core().await;
    client("app").seed(&t).await;
    client("two")
        .redirects(&[REDIRECT, "https://app.example.com/other"])
        .seed(&t)
        .await;
    // A client whose id no request can name: proves such an id is not even looked up.
    client("bad\nid").seed(&t).await;

    let with = |f: fn(&mut AuthorizationRequest)| {
        let mut r = authorization_request("app");
        f(&mut r);
        r
    };
    let cases: Vec<(AuthorizationRequest, &str, &str)> = vec![
        (
            with(|r| r.client_id = None),
            "invalid_request",
            "no client_id",
        ),
        (
            with(|r| r.client_id = Some("nobody".into())),
            "invalid_client",
            "an unknown client",
        ),
        (
            with(|r| r.client_id = Some("bad\nid".into())),
            "invalid_client",
            "a control character in client_id",
        ),
        (
            with(|r| r.repeated = vec!["client_id".into()]),
            "invalid_request",
            "client_id twice",
        ),
        (
            with(|r| r.repeated = vec!["redirect_uri".into()]),
            "invalid_request",
            "redirect_uri twice",
        ),
        (
            with(|r| r.redirect_uri = Some("https://evil.example.com/callback".into())),
            "invalid_request",
            "an unregistered redirect URI",
        ),
        (
            with(|r| r.redirect_uri = Some(format!("{REDIRECT}/"))),
            "invalid_request",
            "a redirect URI that differs by a trailing slash",
        ),
        (
            with(|r| {
                r.client_id = Some("two".into());
                r.redirect_uri = None;
            }),
            "invalid_request",
            "no redirect_uri with two registered",
        ),
    ];
    for (req, code, why) in cases {
        let got = t.core.start_authorization(req).await;
        assert_eq!(err_code(got, why), code, "{why}");
    }
}

/// The step-2 problems: each goes back to the client as an error redirect.
fn step_two_cases() -> Vec<(AuthorizationRequest, &'static str, &'static str)> {
    let with = |f: fn(&mut AuthorizationRequest)| {
        let mut r = authorization_request("app");
        f(&mut r);
        r
    };
    vec![
        (
            with(|r| r.response_type = None),
            "invalid_request",
            "no response_type",
        ),
        (
            with(|r| r.response_type = Some("token".into())),
            "unsupported_response_type",
            "the implicit grant",
        ),
        (
            with(|r| r.code_challenge = None),
            "invalid_request",
            "no PKCE challenge",
        ),
        (
            with(|r| r.code_challenge_method = None),
            "invalid_request",
            "no method means plain, which is refused",
        ),
        (
            with(|r| r.code_challenge_method = Some("plain".into())),
            "invalid_request",
            "PKCE plain",
        ),
        (
            with(|r| r.code_challenge_method = Some("S512".into())),
            "invalid_request",
            "an unknown PKCE method",
        ),
        (
            with(|r| r.code_challenge = Some("too-short".into())),
            "invalid_request",
            "a malformed challenge",
        ),
        (
            with(|r| r.scope = Some("admin".into())),
            "invalid_scope",
            "an unknown scope, when the operator refuses them",
        ),
        (
            with(|r| r.scope = Some("mcp:tools\"".into())),
            "invalid_scope",
            "a scope with a forbidden character",
        ),
        (
            with(|r| r.repeated = vec!["scope".into()]),
            "invalid_request",
            "scope twice",
        ),
        (
            with(|r| r.response_mode = Some("fragment".into())),
            "invalid_request",
            "a response mode other than query",
        ),
        (
            with(|r| r.resource = vec!["https://mcp.example.com/mcp#frag".into()]),
            "invalid_target",
            "a resource with a fragment",
        ),
        (
            with(|r| r.resource = vec!["http://mcp.example.com/mcp".into()]),
            "invalid_target",
            "a plain http resource that is not loopback",
        ),
        (
            with(|r| {
                r.resource = vec![RESOURCE.into(), OTHER_RESOURCE.into()];
                r.repeated = vec!["resource".into()];
            }),
            "invalid_target",
            "two resources",
        ),
    ]
}

#[tokio::test]
async fn request_errors_redirect_at_once_to_a_client_whose_redirect_uris_the_operator_set() {
    let t = core_with(refusing_unknown_scopes).await;
    client("app").trusted_redirects(true).seed(&t).await;

    for (req, code, why) in step_two_cases() {
        let redirect = match t.core.start_authorization(req).await {
            Ok(StartOutcome::ErrorRedirect(r)) => r,
            other => panic!("{why}: expected an error redirect, got {other:?}"),
        };
        assert!(redirect.starts_with(REDIRECT), "{why}: {redirect}");
        assert_eq!(query(&redirect, "error").as_deref(), Some(code), "{why}");
        assert_eq!(query(&redirect, "state").as_deref(), Some(STATE), "{why}");
        assert_eq!(query(&redirect, "iss").as_deref(), Some(ISSUER), "{why}");
    }
}

#[tokio::test]
async fn request_errors_for_a_client_that_chose_its_own_redirect_uris_become_a_notice() {
    let t = core_with(refusing_unknown_scopes).await;
    client("app").seed(&t).await;

    for (req, code, why) in step_two_cases() {
        let notice = match t.core.start_authorization(req).await {
            Ok(StartOutcome::ErrorNotice(n)) => n,
            other => panic!("{why}: expected an error notice, got {other:?}"),
        };
        assert_eq!(notice.error, code, "{why}");
        assert_eq!(notice.client_name, "app app", "{why}");
        assert_eq!(notice.redirect_host, "app.example.com", "{why}");
        assert_eq!(
            query(&notice.redirect, "error").as_deref(),
            Some(code),
            "{why}"
        );
        assert_eq!(
            query(&notice.redirect, "state").as_deref(),
            Some(STATE),
            "{why}"
        );
        assert_eq!(
            query(&notice.redirect, "iss").as_deref(),
            Some(ISSUER),
            "{why}"
        );
    }
}

#[tokio::test]
async fn a_client_without_the_authorization_code_grant_gets_unauthorized_client() {
    let t = core().await;
    client("app")
        .grants(&[GrantType::ClientCredentials])
        .trusted_redirects(true)
        .seed(&t)
        .await;

    let out = t
        .core
        .start_authorization(authorization_request("app"))
        .await;

    match out {
        Ok(StartOutcome::ErrorRedirect(r)) => {
            assert_eq!(query(&r, "error").as_deref(), Some("unauthorized_client"));
        }
        other => panic!("expected an error redirect, got {other:?}"),
    }
}

#[tokio::test]
async fn a_repeated_state_is_not_echoed_in_the_error_redirect() {
    let t = core().await;
    client("app").trusted_redirects(true).seed(&t).await;
    let mut req = authorization_request("app");
    req.repeated = vec!["state".into()];

    let out = t.core.start_authorization(req).await;

    match out {
        Ok(StartOutcome::ErrorRedirect(r)) => {
            assert_eq!(query(&r, "error").as_deref(), Some("invalid_request"));
            assert_eq!(query(&r, "state"), None, "{r}");
        }
        other => panic!("expected an error redirect, got {other:?}"),
    }
}

#[tokio::test]
async fn redirect_uri_may_be_omitted_only_with_one_registered_and_loopback_ports_may_differ() {
    let t = core().await;
    client("app").seed(&t).await;
    client("native")
        .redirects(&["http://127.0.0.1/callback"])
        .seed(&t)
        .await;
    let mut omitted = authorization_request("app");
    omitted.redirect_uri = None;
    let mut other_port = authorization_request("native");
    other_port.redirect_uri = Some("http://127.0.0.1:49152/callback".into());

    let a = start(&t, omitted).await;
    let b = start(&t, other_port).await;

    assert_eq!(a.redirect_host, "app.example.com");
    assert_eq!(b.redirect_host, "127.0.0.1");
}

#[tokio::test]
async fn scopes_are_narrowed_by_the_client_and_the_resource() {
    let t = core().await;
    seed_resource(&t, RESOURCE, Some("mcp:tools mcp:resources"), true).await;
    client("app").seed(&t).await;
    client("tools-only").scope("mcp:tools").seed(&t).await;
    let for_client = |id: &str, scope: Option<&str>| {
        let mut r = authorization_request(id);
        r.scope = scope.map(str::to_owned);
        r
    };

    // (request, the scopes granted, why)
    let granted: Vec<(AuthorizationRequest, Vec<&str>, &str)> = vec![
        (
            for_client("app", None),
            vec!["mcp:resources", "mcp:tools"],
            "the defaults, narrowed by the resource",
        ),
        (
            for_client("tools-only", None),
            vec!["mcp:tools"],
            "the defaults, narrowed by the client and the resource",
        ),
        (
            for_client("app", Some("mcp:tools offline_access")),
            vec!["mcp:tools", "offline_access"],
            "offline_access is always allowed",
        ),
    ];
    for (req, want, why) in granted {
        let prompt = start(&t, req).await;
        assert_eq!(prompt.scopes, want, "{why}");
        assert_eq!(prompt.resource, RESOURCE, "{why}: the default resource");
    }
    // (request, why) for requests that must fail with invalid_scope
    let refused = [
        (
            for_client("app", Some("mcp:prompts")),
            "a supported scope the resource does not accept",
        ),
        (
            for_client("tools-only", Some("mcp:resources")),
            "a scope the client did not register for",
        ),
    ];
    for (req, why) in refused {
        match t.core.start_authorization(req).await {
            Ok(StartOutcome::ErrorNotice(n)) => assert_eq!(n.error, "invalid_scope", "{why}"),
            other => panic!("{why}: expected an error notice, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn registered_resources_decide_the_audience() {
    let t = core().await;
    seed_resource(&t, RESOURCE, None, false).await;
    seed_resource(&t, OTHER_RESOURCE, None, true).await;
    client("app").seed(&t).await;
    let asking = |resource: &[&str]| {
        let mut r = authorization_request("app");
        r.resource = resource.iter().map(|s| (*s).to_owned()).collect();
        r
    };

    let default = start(&t, asking(&[])).await;
    let named = start(&t, asking(&["HTTPS://MCP.example.com/mcp"])).await;
    let unknown = t
        .core
        .start_authorization(asking(&["https://unknown.example.com/mcp"]))
        .await;

    assert_eq!(default.resource, OTHER_RESOURCE, "none asked: the default");
    assert_eq!(named.resource, RESOURCE, "named, after normalization");
    match unknown {
        Ok(StartOutcome::ErrorNotice(n)) => assert_eq!(n.error, "invalid_target"),
        other => panic!("expected an error notice, got {other:?}"),
    }
}

#[tokio::test]
async fn a_production_server_without_resources_has_no_audience_to_give() {
    let t = core_with(|s| s.open_resources = false).await;
    client("app").seed(&t).await;

    let out = t
        .core
        .start_authorization(authorization_request("app"))
        .await;

    match out {
        Ok(StartOutcome::ErrorNotice(n)) => assert_eq!(n.error, "invalid_target"),
        other => panic!("expected an error notice, got {other:?}"),
    }
}

#[tokio::test]
async fn login_and_consent_refuse_a_wrong_csrf_token_or_an_unknown_session() {
    let t = core().await;
    client("app").seed(&t).await;
    seed_user(&t, EMAIL).await;
    let prompt = start(&t, authorization_request("app")).await;
    let signed_in = login(&t, &start(&t, authorization_request("app")).await, EMAIL).await;

    // (session, csrf token, why)
    let cases = [
        (prompt.session_id.as_str(), "forged", "a wrong CSRF token"),
        (prompt.session_id.as_str(), "", "an empty CSRF token"),
        (
            "no-such-session",
            prompt.csrf_token.as_str(),
            "an unknown session",
        ),
    ];
    for (session, csrf, why) in cases {
        let login = t
            .core
            .submit_login(session, csrf, EMAIL, PASSWORD, None)
            .await;
        assert_eq!(err_code(login, why), "invalid_request", "{why}: login");
    }
    let consent = t
        .core
        .submit_consent(&signed_in.session_id, "forged", true)
        .await;
    assert_eq!(err_code(consent, "consent"), "invalid_request");
    assert!(t.store.codes().is_empty(), "no code was issued");
}

#[tokio::test]
async fn the_session_handle_changes_at_login_so_the_old_one_is_worthless() {
    let t = core().await;
    client("app").seed(&t).await;
    seed_user(&t, EMAIL).await;
    let before = start(&t, authorization_request("app")).await;

    let after = login(&t, &before, EMAIL).await;
    let reuse = t
        .core
        .submit_consent(&before.session_id, &before.csrf_token, true)
        .await;

    assert_ne!(after.session_id, before.session_id);
    assert_ne!(after.csrf_token, before.csrf_token);
    assert!(matches!(
        reuse,
        Err(AuthError::InvalidRequest(Reason::SessionExpired))
    ));
}

#[tokio::test]
async fn a_session_expires_after_the_session_ttl() {
    let t = core().await;
    client("app").seed(&t).await;
    seed_user(&t, EMAIL).await;
    let ttl = t.core.settings().session_ttl.num_seconds();
    let unsigned = start(&t, authorization_request("app")).await;
    let signed_in = login(&t, &start(&t, authorization_request("app")).await, EMAIL).await;

    advance(&t, ttl);
    let login = t
        .core
        .submit_login(
            &unsigned.session_id,
            &unsigned.csrf_token,
            EMAIL,
            PASSWORD,
            None,
        )
        .await;
    let consent = t
        .core
        .submit_consent(&signed_in.session_id, &signed_in.csrf_token, true)
        .await;

    assert!(matches!(
        login,
        Err(AuthError::InvalidRequest(Reason::SessionExpired))
    ));
    assert!(matches!(
        consent,
        Err(AuthError::InvalidRequest(Reason::SessionExpired))
    ));
}

#[tokio::test]
async fn consent_needs_a_signed_in_user_and_is_single_use() {
    let t = core().await;
    client("app").seed(&t).await;
    seed_user(&t, EMAIL).await;
    let unsigned = start(&t, authorization_request("app")).await;
    let signed_in = login(&t, &start(&t, authorization_request("app")).await, EMAIL).await;

    let early = t
        .core
        .submit_consent(&unsigned.session_id, &unsigned.csrf_token, true)
        .await;
    let first = t
        .core
        .submit_consent(&signed_in.session_id, &signed_in.csrf_token, true)
        .await;
    let second = t
        .core
        .submit_consent(&signed_in.session_id, &signed_in.csrf_token, true)
        .await;

    assert_eq!(err_code(early, "before login"), "invalid_request");
    assert!(first.is_ok(), "{first:?}");
    assert!(matches!(
        second,
        Err(AuthError::InvalidRequest(Reason::SessionExpired))
    ));
    assert_eq!(t.store.codes().len(), 1, "one decision, one code");
}

#[tokio::test]
async fn denying_consent_redirects_with_access_denied_and_issues_nothing() {
    let t = core().await;
    client("app").seed(&t).await;
    seed_user(&t, EMAIL).await;
    let prompt = login(&t, &start(&t, authorization_request("app")).await, EMAIL).await;

    let redirect = t
        .core
        .submit_consent(&prompt.session_id, &prompt.csrf_token, false)
        .await
        .expect("a denial is answered with a redirect");

    assert_eq!(query(&redirect, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&redirect, "state").as_deref(), Some(STATE));
    assert_eq!(query(&redirect, "iss").as_deref(), Some(ISSUER));
    assert_eq!(query(&redirect, "code"), None);
    assert!(t.store.grants().is_empty());
    assert!(t.store.consents().is_empty());
}

#[tokio::test]
async fn a_failed_login_says_the_same_for_an_unknown_account_a_disabled_one_and_a_wrong_password() {
    let t = core().await;
    client("app").seed(&t).await;
    seed_user(&t, EMAIL).await;
    seed_user(&t, "disabled@example.com").await;
    t.store
        .set_user_disabled("disabled@example.com", true)
        .await
        .expect("disabled");

    // (email, password, why)
    let cases = [
        (EMAIL, "wrong password!", "a wrong password"),
        ("nobody@example.com", PASSWORD, "an unknown account"),
        ("disabled@example.com", PASSWORD, "a disabled account"),
        ("not an email", PASSWORD, "a malformed address"),
        ("nul\0@example.com", PASSWORD, "a NUL in the address"),
    ];
    let mut messages = Vec::new();
    for (email, password, why) in cases {
        let prompt = start(&t, authorization_request("app")).await;
        let out = t
            .core
            .submit_login(
                &prompt.session_id,
                &prompt.csrf_token,
                email,
                password,
                None,
            )
            .await
            .expect("a failed login is answered");
        assert!(!out.prompt.authenticated, "{why}");
        messages.push(out.error.unwrap_or_else(|| panic!("{why}: no error")));
    }
    assert!(
        messages.windows(2).all(|w| w[0] == w[1]),
        "one message for every failure: {messages:?}"
    );
}

#[tokio::test]
async fn the_email_is_matched_after_trimming_and_lower_casing() {
    let t = core().await;
    client("app").seed(&t).await;
    seed_user(&t, EMAIL).await;
    let prompt = start(&t, authorization_request("app")).await;

    let signed_in = login(&t, &prompt, "  Alice@Example.COM ").await;

    assert_eq!(signed_in.user_email.as_deref(), Some(EMAIL));
}

#[tokio::test]
async fn five_failed_logins_end_the_authorization() {
    // The account lockout is set out of reach, so that the per-session limit is what acts.
    let t = core_with(|s| s.lockout.network.threshold = 100).await;
    client("app").seed(&t).await;
    seed_user(&t, EMAIL).await;
    let prompt = start(&t, authorization_request("app")).await;

    for attempt in 1..=4 {
        let out = t
            .core
            .submit_login(
                &prompt.session_id,
                &prompt.csrf_token,
                EMAIL,
                "wrong password!",
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
        assert!(out.error.is_some(), "attempt {attempt}");
    }
    let fifth = t
        .core
        .submit_login(
            &prompt.session_id,
            &prompt.csrf_token,
            EMAIL,
            "wrong password!",
            None,
        )
        .await;
    let then_right = t
        .core
        .submit_login(
            &prompt.session_id,
            &prompt.csrf_token,
            EMAIL,
            PASSWORD,
            None,
        )
        .await;

    assert_eq!(err_code(fifth, "the fifth failure"), "access_denied");
    assert!(matches!(
        then_right,
        Err(AuthError::InvalidRequest(Reason::SessionExpired))
    ));
}

#[tokio::test]
async fn an_account_locked_after_repeated_failures_opens_again_when_the_lock_expires() {
    let t = core_with(|s| {
        s.lockout.network = Backoff {
            threshold: 2,
            base_secs: 60,
            max_secs: 600,
        }
    })
    .await;
    client("app").seed(&t).await;
    seed_user(&t, EMAIL).await;
    // Separate authorizations, as an attacker would use to get past the per-session limit.
    for _ in 0..2 {
        let prompt = start(&t, authorization_request("app")).await;
        t.core
            .submit_login(
                &prompt.session_id,
                &prompt.csrf_token,
                EMAIL,
                "wrong password!",
                None,
            )
            .await
            .expect("answered");
    }

    let prompt = start(&t, authorization_request("app")).await;
    let locked = t
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
    advance(&t, 60);
    let unlocked = t
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

    assert!(
        !locked.prompt.authenticated,
        "the right password is refused while locked"
    );
    assert!(locked.error.is_some());
    assert_ne!(
        locked.error,
        Some("Invalid email or password."),
        "says it is a lock"
    );
    assert_eq!(unlocked.error, None);
    assert!(unlocked.prompt.authenticated);
}
