//! Bounds on what callers can make the server hold: the parameters of an authorization
//! request, the authorizations in progress per network and in all, registration metadata,
//! the number of self-registered clients, and the revocations one client can add.

mod common;

use chrono::Duration;
use common::*;
use latchkey_core::authorize::{AuthorizationRequest, StartOutcome};
use latchkey_core::clock::Clock;
use latchkey_core::denylist::RevokedKind;
use latchkey_core::model::{AuthMethod, ClientTier, GrantType};
use latchkey_core::session::{
    Admission, AuthorizationSession, MemorySessionStore, SessionStore, WIDER_NETWORK_SHARE,
};
use latchkey_core::store::{ClientStore, MaintenanceStore};
use latchkey_core::{AuthError, Reason};
use serde_json::json;

fn from(address: &str, req: AuthorizationRequest) -> AuthorizationRequest {
    AuthorizationRequest {
        client_address: Some(address.into()),
        ..req
    }
}

#[tokio::test]
async fn oversized_authorization_parameters_are_refused_before_anything_is_stored() {
    let t = core().await;
    client("app").seed(&t).await;
    let long = |n: usize| "a".repeat(n);
    let base = || authorization_request("app");
    let cases: Vec<(AuthorizationRequest, Reason, &str)> = vec![
        (
            AuthorizationRequest {
                state: Some(long(64 * 1024)),
                ..base()
            },
            Reason::TooLong("state", 2048),
            "a 64 KB state",
        ),
        (
            AuthorizationRequest {
                state: Some(long(2049)),
                ..base()
            },
            Reason::TooLong("state", 2048),
            "a state one byte past the bound",
        ),
        (
            AuthorizationRequest {
                redirect_uri: Some(format!("{REDIRECT}?{}", long(2000))),
                ..base()
            },
            Reason::TooLong("redirect_uri", 2000),
            "redirect_uri",
        ),
        (
            AuthorizationRequest {
                scope: Some(format!("mcp:tools {}", long(2048))),
                ..base()
            },
            Reason::TooLong("scope", 2048),
            "scope",
        ),
        (
            AuthorizationRequest {
                code_challenge: Some(long(129)),
                ..base()
            },
            Reason::TooLong("code_challenge", 128),
            "code_challenge",
        ),
        (
            AuthorizationRequest {
                code_challenge_method: Some(long(65)),
                ..base()
            },
            Reason::TooLong("code_challenge_method", 64),
            "code_challenge_method",
        ),
        (
            AuthorizationRequest {
                response_type: Some(long(65)),
                ..base()
            },
            Reason::TooLong("response_type", 64),
            "response_type",
        ),
        (
            AuthorizationRequest {
                response_mode: Some(long(65)),
                ..base()
            },
            Reason::TooLong("response_mode", 64),
            "response_mode",
        ),
        (
            AuthorizationRequest {
                client_id: Some(long(2049)),
                ..base()
            },
            Reason::TooLong("client_id", 2048),
            "client_id",
        ),
        (
            AuthorizationRequest {
                resource: vec![RESOURCE.to_owned(); 9],
                ..base()
            },
            Reason::TooMany("resource", 8),
            "nine resources",
        ),
        (
            AuthorizationRequest {
                resource: vec![format!("{RESOURCE}/{}", long(2000))],
                ..base()
            },
            Reason::TooLong("resource", 2000),
            "a long resource",
        ),
    ];
    for (req, reason, case) in cases {
        match t.core.start_authorization(req).await {
            Err(AuthError::InvalidRequest(r)) => assert_eq!(r, reason, "{case}"),
            other => panic!("{case}: expected invalid_request shown, got {other:?}"),
        }
    }
    assert!(t.sessions.is_empty(), "no session was opened");

    // At the bound, a request is an ordinary one.
    let at_bound = AuthorizationRequest {
        state: Some(long(2048)),
        ..base()
    };
    start(&t, at_bound).await;
    assert_eq!(t.sessions.len(), 1);
}

#[tokio::test]
async fn an_oversized_state_is_not_echoed_even_for_a_trusted_client() {
    // An operator's client gets other errors redirected at once; a bound is shown instead,
    // so that no redirect carries the oversized value.
    let t = core().await;
    client("op").operator(&[]).seed(&t).await;
    let req = AuthorizationRequest {
        state: Some("s".repeat(5000)),
        response_type: Some("token".into()),
        ..authorization_request("op")
    };
    let e = t.core.start_authorization(req).await.expect_err("refused");
    assert_eq!(e.code(), "invalid_request");
    assert!(e.description().contains("state"), "{}", e.description());
}

#[tokio::test]
async fn the_authorizations_in_progress_per_network_are_bounded() {
    let t = core_with(|s| s.max_sessions_per_network = 3).await;
    client("app").seed(&t).await;
    seed_user(&t, EMAIL).await;
    let req = || authorization_request("app");

    let mut prompts = Vec::new();
    for _ in 0..3 {
        prompts.push(start(&t, from("192.0.2.1", req())).await);
    }
    let refused = t.core.start_authorization(from("192.0.2.1", req())).await;
    match refused {
        Err(AuthError::TemporarilyUnavailable(Reason::TooManyPendingAuthorizations)) => {}
        other => panic!("the fourth from one address is refused, got {other:?}"),
    }
    // Another address, and a caller that names none, are not affected.
    start(&t, from("192.0.2.2", req())).await;
    start(&t, req()).await;

    // IPv6 counts by /64: a host cannot spread over its own prefix.
    for host in ["2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1:ffff::9"] {
        start(&t, from(host, req())).await;
    }
    assert_eq!(
        err_code(
            t.core
                .start_authorization(from("2001:db8:0:1:abcd::1", req()))
                .await,
            "a fourth address in one /64"
        ),
        "temporarily_unavailable"
    );
    start(&t, from("2001:db8:0:2::1", req())).await;

    // Signing in moves a session to a new handle: it still counts once.
    let signed_in = login(&t, &prompts[0], EMAIL).await;
    assert_eq!(
        err_code(
            t.core.start_authorization(from("192.0.2.1", req())).await,
            "still three in progress after a sign-in"
        ),
        "temporarily_unavailable"
    );
    // Deciding ends a session, and frees its place.
    t.core
        .submit_consent(&signed_in.session_id, &signed_in.csrf_token, true)
        .await
        .expect("consent");
    start(&t, from("192.0.2.1", req())).await;

    // Sessions that expire free their places too.
    advance(&t, t.core.settings().session_ttl.num_seconds());
    for _ in 0..3 {
        start(&t, from("192.0.2.1", req())).await;
    }
}

#[tokio::test]
async fn a_client_address_that_is_no_ip_address_is_refused() {
    let t = core().await;
    client("app").seed(&t).await;
    for bad in ["", "not-an-address", "192.0.2.1:443", "10.0.0.0/8"] {
        match t
            .core
            .start_authorization(from(bad, authorization_request("app")))
            .await
        {
            Err(AuthError::InvalidRequest(Reason::Malformed("client_address"))) => {}
            other => panic!("{bad:?}: expected invalid_request, got {other:?}"),
        }
    }
    assert!(t.sessions.is_empty());
}

fn session(
    network: Option<&str>,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> AuthorizationSession {
    AuthorizationSession {
        client_id: "app".into(),
        client_name: "app".into(),
        redirect_uri: REDIRECT.into(),
        redirect_uri_given: true,
        state: None,
        code_challenge: challenge(VERIFIER),
        scope: ALL_SCOPES.into(),
        resource: RESOURCE.into(),
        csrf_hash: "h".into(),
        user_id: None,
        user_email: None,
        expires_at,
        network: network.map(str::to_owned),
        document: None,
    }
}

#[tokio::test]
async fn an_ipv6_48_holds_a_bounded_share_of_the_in_memory_store_whatever_its_64s() {
    let store = MemorySessionStore::new(10_000);
    let now = chrono::Utc::now();
    let expires = now + Duration::seconds(600);
    let per_network = 3;
    let mut opened = 0;
    // 200 /64s of one /48, each within its own bound.
    for n in 0..200u32 {
        let network = format!("2001:db8:1:{n:x}::/64");
        for i in 0..per_network {
            let admission = store
                .open(
                    &format!("a{n}-{i}"),
                    &session(Some(&network), expires),
                    now,
                    per_network,
                )
                .await
                .expect("open");
            opened += u32::from(admission == Admission::Opened);
        }
    }
    assert_eq!(opened, per_network * WIDER_NETWORK_SHARE);
    // Another /48 and IPv4 networks keep their own bounds.
    for (key, network) in [
        ("b", "2001:db8:2:0::/64"),
        ("c", "192.0.2.1"),
        ("d", "192.0.2.2"),
    ] {
        assert_eq!(
            store
                .open(key, &session(Some(network), expires), now, per_network)
                .await
                .expect("open"),
            Admission::Opened,
            "{network}"
        );
    }
    // Taking a session frees its place in its /48 too.
    assert!(store.take("a0-0", now).await.expect("take").is_some());
    assert_eq!(
        store
            .open(
                "e",
                &session(Some("2001:db8:1:ffff::/64"), expires),
                now,
                per_network
            )
            .await
            .expect("open"),
        Admission::Opened
    );
    assert_eq!(
        store
            .open(
                "f",
                &session(Some("2001:db8:1:fffe::/64"), expires),
                now,
                per_network
            )
            .await
            .expect("open"),
        Admission::NetworkFull
    );
}

#[tokio::test]
async fn a_full_memory_store_gives_way_to_new_sessions_closest_to_expiry_first() {
    let store = MemorySessionStore::new(3);
    let now = chrono::Utc::now();
    for (key, secs) in [("b", 20), ("a", 10), ("c", 30)] {
        let admitted = store
            .open(key, &session(None, now + Duration::seconds(secs)), now, 10)
            .await
            .expect("open");
        assert_eq!(admitted, Admission::Opened);
    }
    assert_eq!(
        store
            .open("d", &session(None, now + Duration::seconds(40)), now, 10)
            .await
            .expect("open"),
        Admission::Opened,
        "a full store still opens new sessions"
    );
    assert_eq!(store.len(), 3, "never more than the capacity");
    assert_eq!(store.evicted(), 1);
    assert!(
        store.get("a", now).await.expect("get").is_none(),
        "the one closest to expiry gave way"
    );
    for key in ["b", "c", "d"] {
        assert!(store.get(key, now).await.expect("get").is_some(), "{key}");
    }
}

#[tokio::test]
async fn through_the_core_a_full_store_costs_the_oldest_pending_sign_in_its_session() {
    let t = TestCore::builder()
        .session_capacity(2)
        .build()
        .await
        .expect("core");
    client("app").seed(&t).await;
    seed_user(&t, EMAIL).await;
    let first = start(&t, from("192.0.2.1", authorization_request("app"))).await;
    advance(&t, 1);
    start(&t, from("192.0.2.2", authorization_request("app"))).await;
    advance(&t, 1);
    let third = start(&t, from("192.0.2.3", authorization_request("app"))).await;
    match t
        .core
        .submit_login(&first.session_id, &first.csrf_token, EMAIL, PASSWORD, None)
        .await
    {
        Err(AuthError::InvalidRequest(Reason::SessionExpired)) => {}
        other => panic!("the oldest session gave way, got {other:?}"),
    }
    login(&t, &third, EMAIL).await;
    assert_eq!(t.sessions.evicted(), 1);
}

#[tokio::test]
async fn expired_sessions_leave_from_the_front_of_the_queue_and_free_their_network() {
    let store = MemorySessionStore::new(100);
    let now = chrono::Utc::now();
    for i in 0..10 {
        store
            .open(
                &format!("s{i}"),
                &session(Some("192.0.2.1"), now + Duration::seconds(10 * (i + 1))),
                now,
                10,
            )
            .await
            .expect("open");
    }
    assert_eq!(
        store
            .open(
                "full",
                &session(Some("192.0.2.1"), now + Duration::seconds(60)),
                now,
                10
            )
            .await
            .expect("open"),
        Admission::NetworkFull
    );
    let later = now + Duration::seconds(35);
    assert_eq!(store.purge_expired(later, true).await.expect("count"), 3);
    assert_eq!(store.len(), 10, "a dry run forgets nothing");
    assert_eq!(store.purge_expired(later, false).await.expect("purge"), 3);
    assert_eq!(store.len(), 7);
    assert!(store.get("s2", later).await.expect("get").is_none());
    assert!(store.get("s3", later).await.expect("get").is_some());
    assert_eq!(
        store
            .open(
                "again",
                &session(Some("192.0.2.1"), later + Duration::seconds(60)),
                later,
                10
            )
            .await
            .expect("open"),
        Admission::Opened,
        "the expired ones no longer count against their network"
    );
    // Opening also forgets what expired, without waiting for maintenance.
    let much_later = now + Duration::seconds(1000);
    store
        .open(
            "x",
            &session(None, much_later + Duration::seconds(1)),
            much_later,
            10,
        )
        .await
        .expect("open");
    assert_eq!(store.len(), 1, "every expired session left on the way");
}

fn metadata_cases() -> Vec<(serde_json::Value, &'static str, &'static str)> {
    let long = |n: usize| "a".repeat(n);
    let ok = || {
        json!({
            "client_name": "ok",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
        })
    };
    let with = |k: &str, v: serde_json::Value| {
        let mut m = ok();
        m[k] = v;
        m
    };
    vec![
        (
            with("client_name", json!(long(64 * 1024))),
            "invalid_client_metadata",
            "a 64 KB name",
        ),
        (
            with("client_name", json!(long(501))),
            "invalid_client_metadata",
            "client_name",
        ),
        (
            with("software_id", json!(long(501))),
            "invalid_client_metadata",
            "software_id",
        ),
        (
            with(
                "logo_uri",
                json!(format!("https://example.com/{}", long(2000))),
            ),
            "invalid_client_metadata",
            "logo_uri",
        ),
        (
            with("contacts", json!(vec!["a@example.com"; 11])),
            "invalid_client_metadata",
            "eleven contacts",
        ),
        (
            with("contacts", json!([format!("{}@example.com", long(320))])),
            "invalid_client_metadata",
            "a long contact",
        ),
        (
            with("grant_types", json!(vec!["authorization_code"; 9])),
            "invalid_client_metadata",
            "nine grant types",
        ),
        (
            with("response_types", json!([long(65)])),
            "invalid_client_metadata",
            "a long response type",
        ),
        (
            with("scope", json!(format!("mcp:tools {}", long(2048)))),
            "invalid_client_metadata",
            "scope",
        ),
        (
            with(
                "redirect_uris",
                json!(
                    (0..21)
                        .map(|i| format!("http://127.0.0.1/cb{i}"))
                        .collect::<Vec<_>>()
                ),
            ),
            "invalid_redirect_uri",
            "twenty-one redirect URIs",
        ),
        (
            with(
                "redirect_uris",
                json!([format!("{REDIRECT}?{}", long(2000))]),
            ),
            "invalid_redirect_uri",
            "a long redirect URI",
        ),
    ]
}

#[tokio::test]
async fn registration_metadata_past_its_bounds_is_refused_and_nothing_is_stored() {
    let t = core().await;
    for (metadata, code, case) in metadata_cases() {
        assert_eq!(
            err_code(
                t.core.register_client(&metadata.to_string(), None).await,
                case
            ),
            code,
            "{case}"
        );
    }
    assert_eq!(
        t.store
            .count_clients(ClientTier::Dynamic)
            .await
            .expect("count"),
        0
    );
    // Just inside every bound, a registration passes.
    let inside = json!({
        "client_name": "a".repeat(500),
        "redirect_uris": (0..20).map(|i| format!("http://127.0.0.1/cb{i}")).collect::<Vec<_>>(),
        "contacts": vec!["a@example.com"; 10],
        "token_endpoint_auth_method": "none",
    });
    t.core
        .register_client(&inside.to_string(), None)
        .await
        .expect("inside the bounds");
}

fn dynamic_metadata() -> String {
    json!({
        "client_name": "mcp",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
    })
    .to_string()
}

#[tokio::test]
async fn registration_stops_at_the_bound_on_dynamic_clients_and_resumes_when_one_goes() {
    let t = core_with(|s| s.max_dynamic_clients = 2).await;
    let first = t
        .core
        .register_client(&dynamic_metadata(), None)
        .await
        .expect("first");
    t.core
        .register_client(&dynamic_metadata(), None)
        .await
        .expect("second");
    match t.core.register_client(&dynamic_metadata(), None).await {
        Err(AuthError::TemporarilyUnavailable(Reason::DynamicClientLimit)) => {}
        other => panic!("the third is refused, got {other:?}"),
    }
    // The operator's clients are not counted against it, nor refused by it.
    t.core
        .register_operator_client(&dynamic_metadata(), &[], &[])
        .await
        .expect("an operator's client");
    assert!(
        t.core
            .delete_client(&first.client.id)
            .await
            .expect("delete")
    );
    t.core
        .register_client(&dynamic_metadata(), None)
        .await
        .expect("room again");
    assert_eq!(
        t.store
            .count_clients(ClientTier::Dynamic)
            .await
            .expect("count"),
        2
    );
}

/// Records that each of `clients` was issued a token now, as the usage batches would.
async fn used_now(t: &TestCore, clients: &[&str]) {
    let now = t.clock.now().timestamp();
    let batch: Vec<_> = clients
        .iter()
        .map(|id| latchkey_core::store::ClientUsage {
            client_id: (*id).to_owned(),
            tokens_issued: 1,
            last_used_at: now,
        })
        .collect();
    t.store.record_usage(&batch).await.expect("usage");
}

#[tokio::test]
async fn at_the_bound_the_oldest_registration_never_used_gives_way_once_an_hour_old() {
    let t = core_with(|s| s.max_dynamic_clients = 2).await;
    let metadata = dynamic_metadata();
    let register = || t.core.register_client(&metadata, None);
    let first = register().await.expect("first").client.id;
    let second = register().await.expect("second").client.id;
    let refused = register().await;
    assert!(
        matches!(
            refused,
            Err(AuthError::TemporarilyUnavailable(
                Reason::DynamicClientLimit
            ))
        ),
        "both younger than an hour: {refused:?}"
    );

    advance(&t, 3601);
    let third = register()
        .await
        .expect("the oldest unused gives way")
        .client
        .id;
    assert!(
        t.store.find_client(&first).await.expect("find").is_none(),
        "first gave way"
    );
    assert!(t.store.find_client(&second).await.expect("find").is_some());

    // A client whose user is signing in is in use, however old, and never gives way.
    start(&t, authorization_request(&second)).await;
    advance(&t, 3601);
    let fourth = register().await.expect("third gives way").client.id;
    assert!(
        t.store.find_client(&second).await.expect("find").is_some(),
        "in use"
    );
    assert!(t.store.find_client(&third).await.expect("find").is_none());
    let third = fourth;

    // Clients that were used never give way.
    used_now(&t, &[&second, &third]).await;
    advance(&t, 3601);
    assert!(matches!(
        register().await,
        Err(AuthError::TemporarilyUnavailable(
            Reason::DynamicClientLimit
        ))
    ));
    assert_eq!(
        AuthError::TemporarilyUnavailable(Reason::DynamicClientLimit).retry_after_secs(),
        Some(3600)
    );
}

#[tokio::test]
async fn maintenance_deletes_registrations_never_used_within_a_day() {
    let t = core().await;
    let unused = t
        .core
        .register_client(&dynamic_metadata(), None)
        .await
        .expect("unused")
        .client
        .id;
    let used = t
        .core
        .register_client(&dynamic_metadata(), None)
        .await
        .expect("used")
        .client
        .id;
    used_now(&t, &[&used]).await;
    advance(&t, 23 * 3600);
    assert_eq!(
        t.core
            .purge_expired(false)
            .await
            .expect("purge")
            .idle_clients,
        0,
        "not a day yet"
    );
    advance(&t, 3600 + 1);
    assert_eq!(
        t.core
            .purge_expired(false)
            .await
            .expect("purge")
            .idle_clients,
        1
    );
    assert!(t.store.find_client(&unused).await.expect("find").is_none());
    assert!(
        t.store.find_client(&used).await.expect("find").is_some(),
        "used within 90 days"
    );
}

/// Refreshes `refresh` once; returns (access token, next refresh token).
async fn refresh(t: &TestCore, client_id: &str, refresh: &str) -> (String, String) {
    let r = t
        .core
        .exchange_token(refresh_request(public(client_id), refresh))
        .await
        .expect("refresh");
    (r.access_token, r.refresh_token.expect("rotated"))
}

fn events_of(t: &TestCore, kind: RevokedKind, client_id: &str) -> usize {
    t.store
        .revocation_events()
        .iter()
        .filter(|e| e.kind == kind && e.client_id.as_deref() == Some(client_id))
        .count()
}

#[tokio::test]
async fn past_its_bound_a_clients_access_token_revocations_revoke_the_whole_grant() {
    let t = core_with(|s| s.max_token_revocations_per_client = 2).await;
    client("app").seed(&t).await;
    client("other").seed(&t).await;
    let user = seed_user(&t, EMAIL).await;
    let g = grant(&t, "app", user.id);
    let first = tokens(&t, public("app"), &g).await;
    let mut access = vec![first.access_token];
    let mut rt = first.refresh_token.expect("refresh token");
    for _ in 0..3 {
        let (at, next) = refresh(&t, "app", &rt).await;
        access.push(at);
        rt = next;
    }
    for at in &access[..2] {
        t.core
            .revoke(at, None, &public("app"), &[])
            .await
            .expect("revoked");
    }
    assert_eq!(events_of(&t, RevokedKind::Token, "app"), 2);
    assert!(is_live(&t, &access[2]).await);

    // The third: no third token event, but the token is revoked all the same, with its grant.
    t.core
        .revoke(&access[2], None, &public("app"), &[])
        .await
        .expect("revoked past the bound");
    assert_eq!(
        events_of(&t, RevokedKind::Token, "app"),
        2,
        "no more token events"
    );
    assert_eq!(events_of(&t, RevokedKind::Grant, "app"), 1);
    for at in &access {
        assert!(
            !is_live(&t, at).await,
            "every token of the grant is revoked"
        );
    }
    assert_eq!(
        err_code(
            t.core
                .exchange_token(refresh_request(public("app"), &rt))
                .await,
            "the grant's refresh token"
        ),
        "invalid_grant"
    );
    // Revoking what is already revoked adds nothing.
    t.core
        .revoke(&access[3], None, &public("app"), &[])
        .await
        .expect("already revoked");
    assert_eq!(t.store.revocation_events().len(), 3);

    // Another client's bound is its own.
    let other = tokens(&t, public("other"), &grant(&t, "other", user.id)).await;
    t.core
        .revoke(&other.access_token, None, &public("other"), &[])
        .await
        .expect("revoked");
    assert_eq!(events_of(&t, RevokedKind::Token, "other"), 1);

    // Events leave the count when the tokens they cover have expired.
    advance(&t, t.core.settings().access_token_ttl.num_seconds() + 60);
    let user2 = seed_user(&t, "bob@example.com").await;
    let fresh = tokens(&t, public("app"), &grant(&t, "app", user2.id)).await;
    t.core
        .revoke(&fresh.access_token, None, &public("app"), &[])
        .await
        .expect("revoked");
    assert_eq!(
        events_of(&t, RevokedKind::Token, "app"),
        3,
        "a token event again"
    );
}

#[tokio::test]
async fn past_its_bound_a_token_without_a_grant_is_answered_temporarily_unavailable() {
    let t = core_with(|s| s.max_token_revocations_per_client = 1).await;
    client("svc")
        .confidential(AuthMethod::ClientSecretBasic)
        .operator(&[RESOURCE])
        .grants(&[GrantType::ClientCredentials])
        .seed(&t)
        .await;
    seed_resource(&t, RESOURCE, None, true).await;
    let mint = || async {
        t.core
            .exchange_token(client_credentials_request(basic("svc")))
            .await
            .expect("client_credentials")
            .access_token
    };
    let (a, b) = (mint().await, mint().await);
    t.core
        .revoke(&a, None, &basic("svc"), &[])
        .await
        .expect("first");
    match t.core.revoke(&b, None, &basic("svc"), &[]).await {
        Err(AuthError::TemporarilyUnavailable(Reason::TooManyRevocations)) => {}
        other => panic!("expected temporarily_unavailable, got {other:?}"),
    }
    assert_eq!(t.store.revocation_events().len(), 1);
}

#[tokio::test]
async fn a_start_outcome_still_redirects_errors_inside_the_bounds() {
    // The bounds change nothing for an ordinary bad request: it still goes back to the client.
    let t = core().await;
    client("op").operator(&[]).seed(&t).await;
    let req = AuthorizationRequest {
        response_type: Some("token".into()),
        ..authorization_request("op")
    };
    match t.core.start_authorization(req).await {
        Ok(StartOutcome::ErrorRedirect(uri)) => {
            assert_eq!(query(&uri, "state").as_deref(), Some(STATE));
        }
        other => panic!("expected a redirect, got {other:?}"),
    }
}
