//! Client ID Metadata Documents: the URL rules, the document rules and their negotiation, the
//! host policy, the cache (on the manual clock), the consent page's view, and the whole code
//! flow for a client that is known only by its document.

mod common;

use chrono::Duration;
use common::*;
use latchkey_core::authorize::{AuthorizationRequest, StartOutcome};
use latchkey_core::client_assertion::KeySetFault;
use latchkey_core::error::Reason;
use latchkey_core::metadata_document::{
    ClientDocuments, DocumentFault, DocumentFreshness, DocumentPolicy, DocumentView, FetchFailure,
    FetchedDocument, HostPattern, parse_document_url, validate_document,
};
use latchkey_core::model::{AuthMethod, ClientTier, GrantType};
use latchkey_core::redirect_uri::RedirectUriFault;
use latchkey_core::store::ClientStore;
use latchkey_core::testing::TestCore;
use latchkey_core::testing_keys::{TestKey, jwks};
use latchkey_core::{AuthError, CoreSettings};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const CLAUDE: &str = "https://claude.example/oauth/client-metadata.json";
const CLAUDE_CALLBACK: &str = "http://localhost:53682/callback";

/// A Claude-Code-shaped document: portless loopback callbacks, public.
fn claude() -> Value {
    json!({
        "client_id": CLAUDE,
        "client_name": "Claude Code",
        "client_uri": "https://claude.example",
        "logo_uri": "https://claude.example/logo.png",
        "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "software_statement_thing": {"ignored": true}
    })
}

/// Documents served from memory, counting fetches.
#[derive(Default)]
struct Documents {
    answers: Mutex<HashMap<String, Result<FetchedDocument, FetchFailure>>>,
    fetches: AtomicUsize,
}

impl Documents {
    fn serve(&self, url: &str, doc: &Value, freshness: DocumentFreshness) {
        self.answers.lock().expect("lock").insert(
            url.to_owned(),
            Ok(FetchedDocument {
                body: doc.to_string().into_bytes(),
                freshness,
            }),
        );
    }

    fn fail(&self, url: &str, failure: FetchFailure) {
        self.answers
            .lock()
            .expect("lock")
            .insert(url.to_owned(), Err(failure));
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl ClientDocuments for Documents {
    async fn fetch(&self, url: &url::Url) -> Result<FetchedDocument, FetchFailure> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.answers
            .lock()
            .expect("lock")
            .get(url.as_str())
            .cloned()
            .unwrap_or(Err(FetchFailure::Status(404)))
    }

    async fn fetch_key_set(&self, url: &url::Url) -> Result<FetchedDocument, FetchFailure> {
        self.fetch(url).await
    }
}

async fn core_reading(docs: &Arc<Documents>, adjust: impl FnOnce(&mut CoreSettings)) -> TestCore {
    TestCore::builder()
        .settings(adjust)
        .client_documents(docs.clone())
        .build()
        .await
        .expect("a test core builds")
}

fn request(client_id: &str, redirect: &str) -> AuthorizationRequest {
    AuthorizationRequest {
        redirect_uri: Some(redirect.into()),
        ..authorization_request(client_id)
    }
}

fn fault_of<T: std::fmt::Debug>(r: Result<T, AuthError>) -> DocumentFault {
    match r {
        Err(AuthError::InvalidClientMetadata(Reason::MetadataDocument(f)))
        | Err(AuthError::InvalidClient(Reason::MetadataDocument(f)))
        | Err(AuthError::TemporarilyUnavailable(Reason::MetadataDocument(f))) => f,
        other => panic!("expected a document fault, got {other:?}"),
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::UNIX_EPOCH + Duration::seconds(1_767_225_600)
}

#[test]
fn a_claude_code_shaped_document_describes_a_public_client_of_the_metadata_document_tier() {
    let client = validate_document(CLAUDE, claude().to_string().as_bytes(), now())
        .expect("the document is valid");
    assert_eq!(client.id, CLAUDE);
    assert_eq!(client.tier, ClientTier::MetadataDocument);
    assert_eq!(client.auth_method, AuthMethod::None);
    assert!(client.secret_hash.is_none());
    assert_eq!(
        client.grant_types,
        [GrantType::AuthorizationCode, GrantType::RefreshToken]
    );
    assert_eq!(client.name.as_deref(), Some("Claude Code"));
    assert_eq!(client.redirect_uris.len(), 2);
    assert!(!client.trusted_redirects);
    assert!(
        client.metadata.get("software_statement_thing").is_none(),
        "unknown fields are ignored, not kept"
    );
}

#[test]
fn what_a_document_offers_is_negotiated() {
    let mut doc = claude();
    // RP Metadata Choices: none is picked next to private_key_jwt.
    doc["token_endpoint_auth_method"] = json!("private_key_jwt");
    doc["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt", "none"]);
    doc["jwks_uri"] = json!("https://claude.example/jwks.json");
    // Grants without a user, and grants this server does not know, are dropped.
    doc["grant_types"] = json!([
        "authorization_code",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code"
    ]);
    doc["response_types"] = json!(["code", "id_token"]);
    let client = validate_document(CLAUDE, doc.to_string().as_bytes(), now()).expect("valid");
    assert_eq!(client.auth_method, AuthMethod::None);
    assert!(
        client.keys.is_some(),
        "public, and it keeps its keys: it may sign as well"
    );
    assert_eq!(client.grant_types, [GrantType::AuthorizationCode]);

    let mut absent = claude();
    let m = absent.as_object_mut().expect("object");
    m.remove("token_endpoint_auth_method");
    m.remove("grant_types");
    m.remove("response_types");
    let client = validate_document(CLAUDE, absent.to_string().as_bytes(), now()).expect("valid");
    assert_eq!(client.auth_method, AuthMethod::None, "absent means none");
    assert_eq!(client.grant_types, [GrantType::AuthorizationCode]);
}

#[test]
fn documents_that_break_a_rule_are_refused_with_the_rule() {
    let with = |f: &dyn Fn(&mut Value)| {
        let mut d = claude();
        f(&mut d);
        d.to_string().into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>, DocumentFault)> = vec![
        (
            "client_id differs from the URL",
            with(&|d| d["client_id"] = json!("https://claude.example/other.json")),
            DocumentFault::ClientIdMismatch,
        ),
        (
            "client_id differs by a trailing slash",
            with(&|d| d["client_id"] = json!(format!("{CLAUDE}/"))),
            DocumentFault::ClientIdMismatch,
        ),
        (
            "client_id missing",
            with(&|d| {
                d.as_object_mut().expect("object").remove("client_id");
            }),
            DocumentFault::ClientIdMismatch,
        ),
        (
            "a client_secret inside",
            with(&|d| d["client_secret"] = json!("s3cret")),
            DocumentFault::ClientSecretPresent,
        ),
        (
            "no redirect_uris",
            with(&|d| {
                d.as_object_mut().expect("object").remove("redirect_uris");
            }),
            DocumentFault::RedirectUrisMissing,
        ),
        (
            "empty redirect_uris",
            with(&|d| d["redirect_uris"] = json!([])),
            DocumentFault::RedirectUrisMissing,
        ),
        (
            "plain http to another host",
            with(&|d| d["redirect_uris"] = json!(["http://evil.example/cb"])),
            DocumentFault::RedirectUri(RedirectUriFault::HttpNotLoopback),
        ),
        (
            "a javascript: redirect URI",
            with(&|d| d["redirect_uris"] = json!(["javascript:alert(1)"])),
            DocumentFault::RedirectUri(RedirectUriFault::SchemeNotAllowed),
        ),
        (
            "a shared-secret auth method",
            with(&|d| d["token_endpoint_auth_method"] = json!("client_secret_basic")),
            DocumentFault::AuthMethodUnsupported,
        ),
        (
            "private_key_jwt without keys",
            with(&|d| d["token_endpoint_auth_method"] = json!("private_key_jwt")),
            DocumentFault::KeySet(KeySetFault::NoKeys),
        ),
        (
            "private_key_jwt with both jwks and jwks_uri",
            with(&|d| {
                d["token_endpoint_auth_method"] = json!("private_key_jwt");
                d["jwks_uri"] = json!("https://claude.example/jwks.json");
                d["jwks"] = jwks(&[&TestKey::es256()]);
            }),
            DocumentFault::KeySet(KeySetFault::BothJwksAndJwksUri),
        ),
        (
            "private_key_jwt with a jwks_uri over plain http",
            with(&|d| {
                d["token_endpoint_auth_method"] = json!("private_key_jwt");
                d["jwks_uri"] = json!("http://claude.example/jwks.json");
            }),
            DocumentFault::KeySet(KeySetFault::KeySetUriNotHttps),
        ),
        (
            "private_key_jwt with a private key in jwks",
            with(&|d| {
                let mut set = jwks(&[&TestKey::es256()]);
                set["keys"][0]["d"] = json!("c2VjcmV0");
                d["token_endpoint_auth_method"] = json!("private_key_jwt");
                d["jwks"] = set;
            }),
            DocumentFault::KeySet(KeySetFault::PrivateOrSymmetricKey),
        ),
        (
            "no authorization_code grant",
            with(&|d| d["grant_types"] = json!(["refresh_token"])),
            DocumentFault::NoAuthorizationCode,
        ),
        (
            "no code response type",
            with(&|d| d["response_types"] = json!(["token"])),
            DocumentFault::NoCodeResponseType,
        ),
        (
            "a name with a bidirectional override",
            with(&|d| d["client_name"] = json!("Claude\u{202e}edoC")),
            DocumentFault::UnsafeCharacters,
        ),
        (
            "a logo that is not a web URL",
            with(&|d| d["logo_uri"] = json!("javascript:alert(1)")),
            DocumentFault::Malformed("logo_uri"),
        ),
        (
            "invalid JSON",
            b"{\"client_id\": ".to_vec(),
            DocumentFault::NotJson,
        ),
        ("a JSON array", b"[]".to_vec(), DocumentFault::NotObject),
    ];
    for (why, body, want) in cases {
        let got = validate_document(CLAUDE, &body, now()).map(|_| ());
        assert_eq!(got, Err(want), "{why}");
    }
}

#[test]
fn only_https_urls_with_a_path_and_nothing_hidden_name_a_document() {
    let cases: &[(&str, Option<DocumentFault>)] = &[
        ("https://app.example/client.json", None),
        ("https://app.example:8443/oauth/client?v=1", None),
        (
            "http://app.example/client.json",
            Some(DocumentFault::UrlNotHttps),
        ),
        ("https://app.example", Some(DocumentFault::UrlNoPath)),
        ("https://app.example/", Some(DocumentFault::UrlNoPath)),
        (
            "https://app.example/client.json#x",
            Some(DocumentFault::UrlFragment),
        ),
        (
            "https://app.example/a/../client.json",
            Some(DocumentFault::UrlDotSegments),
        ),
        (
            "https://app.example/./client.json",
            Some(DocumentFault::UrlDotSegments),
        ),
        (
            "https://app.example/a/%2E%2e/client.json",
            Some(DocumentFault::UrlDotSegments),
        ),
        (
            "https://user:pw@app.example/client.json",
            Some(DocumentFault::UrlUserinfo),
        ),
        (
            "https://user@app.example/client.json",
            Some(DocumentFault::UrlUserinfo),
        ),
    ];
    for (url, want) in cases {
        assert_eq!(parse_document_url(url).err(), *want, "{url}");
    }
}

#[test]
fn host_patterns_match_a_name_or_the_names_below_a_wildcard() {
    let exact = HostPattern::parse("Claude.Example").expect("valid");
    assert!(exact.matches("claude.example"));
    assert!(!exact.matches("x.claude.example"));
    let wild = HostPattern::parse("*.example.com").expect("valid");
    assert!(wild.matches("a.example.com"));
    assert!(wild.matches("a.b.example.com"));
    assert!(!wild.matches("example.com"));
    assert!(!wild.matches("badexample.com"));
    for bad in ["", "*.", "exa mple.com", "https://example.com", "a..b"] {
        assert!(HostPattern::parse(bad).is_none(), "{bad:?}");
    }
}

#[tokio::test]
async fn a_document_is_fetched_once_while_fresh_and_again_when_stale() {
    let docs = Arc::new(Documents::default());
    docs.serve(
        CLAUDE,
        &claude(),
        DocumentFreshness::Fresh(std::time::Duration::from_secs(600)),
    );
    let t = core_reading(&docs, |_| {}).await;
    for _ in 0..3 {
        start(&t, request(CLAUDE, CLAUDE_CALLBACK)).await;
    }
    assert_eq!(docs.fetches(), 1, "fresh for 10 minutes: fetched once");
    advance(&t, 601);
    start(&t, request(CLAUDE, CLAUDE_CALLBACK)).await;
    assert_eq!(docs.fetches(), 2, "stale after 10 minutes: fetched again");
}

#[tokio::test]
async fn cache_lifetimes_are_bounded_to_five_minutes_and_a_day() {
    let cases = [
        ("no-store", DocumentFreshness::NoStore, 5 * 60),
        (
            "stale at once",
            DocumentFreshness::Fresh(std::time::Duration::ZERO),
            5 * 60,
        ),
        ("unspecified", DocumentFreshness::Unspecified, 3600),
        (
            "a week",
            DocumentFreshness::Fresh(std::time::Duration::from_secs(7 * 86_400)),
            86_400,
        ),
    ];
    for (why, freshness, kept_secs) in cases {
        let docs = Arc::new(Documents::default());
        docs.serve(CLAUDE, &claude(), freshness);
        let t = core_reading(&docs, |_| {}).await;
        start(&t, request(CLAUDE, CLAUDE_CALLBACK)).await;
        advance(&t, kept_secs - 1);
        start(&t, request(CLAUDE, CLAUDE_CALLBACK)).await;
        assert_eq!(
            docs.fetches(),
            1,
            "{why}: still cached just before {kept_secs} s"
        );
        advance(&t, 1);
        start(&t, request(CLAUDE, CLAUDE_CALLBACK)).await;
        assert_eq!(docs.fetches(), 2, "{why}: fetched again at {kept_secs} s");
    }
}

#[tokio::test]
async fn a_failure_is_remembered_for_a_minute_and_a_rate_limit_not_at_all() {
    let docs = Arc::new(Documents::default());
    docs.fail(CLAUDE, FetchFailure::Timeout);
    let t = core_reading(&docs, |_| {}).await;
    for _ in 0..2 {
        let f = fault_of(
            t.core
                .start_authorization(request(CLAUDE, CLAUDE_CALLBACK))
                .await,
        );
        assert_eq!(f, DocumentFault::Fetch(FetchFailure::Timeout));
    }
    assert_eq!(docs.fetches(), 1);
    docs.serve(CLAUDE, &claude(), DocumentFreshness::Unspecified);
    advance(&t, 59);
    assert!(
        t.core
            .start_authorization(request(CLAUDE, CLAUDE_CALLBACK))
            .await
            .is_err()
    );
    advance(&t, 1);
    start(&t, request(CLAUDE, CLAUDE_CALLBACK)).await;
    assert_eq!(docs.fetches(), 2, "tried again after a minute");

    let limited = "https://busy.example/client.json";
    docs.fail(limited, FetchFailure::RateLimited);
    for _ in 0..2 {
        let r = t
            .core
            .start_authorization(request(limited, CLAUDE_CALLBACK))
            .await;
        assert!(
            matches!(r, Err(AuthError::TemporarilyUnavailable(_))),
            "{r:?}"
        );
    }
    assert_eq!(
        docs.fetches(),
        4,
        "a rate limit says nothing about the document"
    );
}

#[tokio::test]
async fn a_cached_document_without_the_requested_redirect_uri_is_fetched_again_once() {
    let docs = Arc::new(Documents::default());
    docs.serve(CLAUDE, &claude(), DocumentFreshness::Unspecified);
    let t = core_reading(&docs, |_| {}).await;
    start(&t, request(CLAUDE, CLAUDE_CALLBACK)).await;
    let new_uri = "https://claude.example/new-callback";
    let mut updated = claude();
    updated["redirect_uris"]
        .as_array_mut()
        .expect("array")
        .push(json!(new_uri));
    docs.serve(CLAUDE, &updated, DocumentFreshness::Unspecified);

    // Just fetched: not again, however often it is asked.
    for _ in 0..3 {
        let r = t.core.start_authorization(request(CLAUDE, new_uri)).await;
        assert!(
            matches!(
                r,
                Err(AuthError::InvalidRequest(Reason::RedirectUriMismatch))
            ),
            "{r:?}"
        );
    }
    assert_eq!(docs.fetches(), 1);
    advance(&t, 31);
    start(&t, request(CLAUDE, new_uri)).await;
    assert_eq!(
        docs.fetches(),
        2,
        "fetched again once, and the new URI is found"
    );
    let r = t
        .core
        .start_authorization(request(CLAUDE, "https://claude.example/never"))
        .await;
    assert!(matches!(
        r,
        Err(AuthError::InvalidRequest(Reason::RedirectUriMismatch))
    ));
    assert_eq!(docs.fetches(), 2, "and not again right after");
}

#[tokio::test]
async fn the_policy_switches_documents_off_and_limits_their_hosts() {
    let docs = Arc::new(Documents::default());
    docs.serve(CLAUDE, &claude(), DocumentFreshness::Unspecified);

    let off = core_reading(&docs, |s| s.client_documents.enabled = false).await;
    let r = off
        .core
        .start_authorization(request(CLAUDE, CLAUDE_CALLBACK))
        .await;
    assert!(
        matches!(r, Err(AuthError::InvalidClient(Reason::UnknownClient))),
        "{r:?}"
    );
    assert!(
        off.core
            .metadata()
            .get("client_id_metadata_document_supported")
            .is_none(),
        "not advertised when off"
    );

    let denied = core_reading(&docs, |s| {
        s.client_documents.denied_hosts = vec![HostPattern::parse("*.example").expect("valid")];
    })
    .await;
    let f = fault_of(
        denied
            .core
            .start_authorization(request(CLAUDE, CLAUDE_CALLBACK))
            .await,
    );
    assert_eq!(f, DocumentFault::HostDenied);

    let allowed = core_reading(&docs, |s| {
        s.client_documents.allowed_hosts = vec![HostPattern::parse("other.example").expect("ok")];
    })
    .await;
    let f = fault_of(
        allowed
            .core
            .start_authorization(request(CLAUDE, CLAUDE_CALLBACK))
            .await,
    );
    assert_eq!(f, DocumentFault::HostNotAllowed);
    assert_eq!(docs.fetches(), 0, "nothing was fetched for a refused host");

    let on = core_reading(&docs, |_| {}).await;
    assert_eq!(
        on.core.metadata()["client_id_metadata_document_supported"],
        json!(true)
    );
}

#[tokio::test]
async fn a_document_client_completes_the_code_flow_and_consent_shows_its_host_unverified() {
    let docs = Arc::new(Documents::default());
    docs.serve(CLAUDE, &claude(), DocumentFreshness::Unspecified);
    let t = core_reading(&docs, |_| {}).await;
    seed_user(&t, EMAIL).await;

    let prompt = start(&t, request(CLAUDE, CLAUDE_CALLBACK)).await;
    assert_eq!(prompt.client_name, "Claude Code");
    assert_eq!(
        prompt.document,
        Some(DocumentView {
            host: "claude.example".into(),
            verified: false,
            localhost_only: true,
            logo_uri: None,
        })
    );
    let prompt = login(&t, &prompt, EMAIL).await;
    assert!(prompt.document.is_some(), "the view survives the login");
    let redirect = t
        .core
        .submit_consent(&prompt.session_id, &prompt.csrf_token, true)
        .await
        .expect("consent");
    assert!(redirect.starts_with(CLAUDE_CALLBACK), "{redirect}");
    let code = query(&redirect, "code").expect("a code");
    let anchored = t
        .store
        .find_client(CLAUDE)
        .await
        .expect("store")
        .expect("the client has a row for its grants");
    assert_eq!(anchored.tier, ClientTier::MetadataDocument);

    let tokens = t
        .core
        .exchange_token(latchkey_core::grant::TokenRequest {
            redirect_uri: Some(CLAUDE_CALLBACK.into()),
            ..code_request(public(CLAUDE), &code)
        })
        .await
        .expect("the code is exchanged");
    assert_eq!(tokens.client_tier, ClientTier::MetadataDocument);
    assert!(tokens.refresh_token.is_some());
}

#[tokio::test]
async fn a_trusted_host_is_verified_with_its_logo() {
    let docs = Arc::new(Documents::default());
    let vscode = "https://vscode.example/oauth/client.json";
    docs.serve(
        vscode,
        &json!({
            "client_id": vscode,
            "client_name": "VS Code",
            "logo_uri": "https://vscode.example/logo.png",
            "redirect_uris": ["http://127.0.0.1/", "https://vscode.dev/redirect"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none"
        }),
        DocumentFreshness::Unspecified,
    );
    let t = core_reading(&docs, |s| {
        s.client_documents = DocumentPolicy {
            trusted_hosts: vec![HostPattern::parse("vscode.example").expect("valid")],
            ..DocumentPolicy::default()
        };
    })
    .await;
    let prompt = start(&t, request(vscode, "http://127.0.0.1:33418/")).await;
    assert_eq!(
        prompt.document,
        Some(DocumentView {
            host: "vscode.example".into(),
            verified: true,
            localhost_only: false,
            logo_uri: Some("https://vscode.example/logo.png".into()),
        })
    );
    start(&t, request(vscode, "https://vscode.dev/redirect")).await;
    let r = t
        .core
        .start_authorization(request(vscode, "https://vscode.dev/other"))
        .await;
    assert!(
        matches!(
            r,
            Err(AuthError::InvalidRequest(Reason::RedirectUriMismatch))
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_refused_document_is_an_error_shown_to_the_user_never_a_redirect() {
    let docs = Arc::new(Documents::default());
    let mut doc = claude();
    doc["client_secret"] = json!("s3cret");
    docs.serve(CLAUDE, &doc, DocumentFreshness::Unspecified);
    let t = core_reading(&docs, |_| {}).await;
    let r = t
        .core
        .start_authorization(request(CLAUDE, CLAUDE_CALLBACK))
        .await;
    assert!(!matches!(
        r,
        Ok(StartOutcome::ErrorRedirect(_)) | Ok(StartOutcome::ErrorNotice(_))
    ));
    let e = r.expect_err("refused");
    assert_eq!(e.code(), "invalid_client_metadata");
    assert!(
        e.description().contains("client_secret"),
        "{}",
        e.description()
    );
    // At the token endpoint the same document fails client authentication.
    let r = t.core.authenticate_client(&public(CLAUDE)).await;
    assert_eq!(r.err().map(|e| e.code()), Some("invalid_client"));
}

#[tokio::test]
async fn two_replicas_over_one_store_fetch_a_document_once_per_freshness_period() {
    use latchkey_core::clock::Clock;
    let docs = Arc::new(Documents::default());
    docs.serve(
        CLAUDE,
        &claude(),
        DocumentFreshness::Fresh(std::time::Duration::from_secs(600)),
    );
    let first = core_reading(&docs, |_| {}).await;
    let second = TestCore::builder()
        .store(first.store.clone())
        .starting_at(first.clock.now())
        .client_documents(docs.clone())
        .build()
        .await
        .expect("a second replica");
    start(&first, request(CLAUDE, CLAUDE_CALLBACK)).await;
    start(&second, request(CLAUDE, CLAUDE_CALLBACK)).await;
    assert_eq!(
        docs.fetches(),
        1,
        "the second replica reads the first one's fetch"
    );

    // Past its freshness the shared copy is not used: one replica fetches, the other follows.
    advance(&first, 601);
    advance(&second, 601);
    start(&second, request(CLAUDE, CLAUDE_CALLBACK)).await;
    start(&first, request(CLAUDE, CLAUDE_CALLBACK)).await;
    assert_eq!(docs.fetches(), 2);

    // A shared copy that no longer validates is fetched again, not trusted.
    let third = TestCore::builder()
        .store(first.store.clone())
        .starting_at(first.clock.now())
        .client_documents(docs.clone())
        .build()
        .await
        .expect("a third replica");
    use latchkey_core::store::DocumentStore;
    let mut stored = first
        .store
        .find_document(CLAUDE)
        .await
        .expect("store")
        .expect("shared");
    stored.body = b"{\"client_id\": \"tampered\"}".to_vec();
    first.store.put_document(&stored).await.expect("store");
    start(&third, request(CLAUDE, CLAUDE_CALLBACK)).await;
    assert_eq!(docs.fetches(), 3);
}

#[tokio::test]
async fn a_document_offering_only_private_key_jwt_describes_a_client_that_signs() {
    let mut doc = claude();
    doc["token_endpoint_auth_method"] = json!("private_key_jwt");
    doc["jwks_uri"] = json!("https://claude.example/jwks.json");
    let client = validate_document(CLAUDE, doc.to_string().as_bytes(), now()).expect("valid");
    assert_eq!(client.auth_method, AuthMethod::PrivateKeyJwt);
    assert!(client.is_confidential());
    assert_eq!(
        client.keys,
        Some(latchkey_core::model::ClientKeys::JwksUri(
            "https://claude.example/jwks.json".into()
        ))
    );
    assert_eq!(
        client.metadata["token_endpoint_auth_method"],
        "private_key_jwt"
    );
}

#[tokio::test]
async fn a_document_found_gone_on_a_refetch_is_not_brought_back_by_the_shared_copy() {
    use latchkey_core::clock::Clock;
    let docs = Arc::new(Documents::default());
    docs.serve(CLAUDE, &claude(), DocumentFreshness::Unspecified);
    let first = core_reading(&docs, |_| {}).await;
    start(&first, request(CLAUDE, CLAUDE_CALLBACK)).await;
    assert_eq!(docs.fetches(), 1);

    // The owner takes the document down. A request for a redirect URI the cached copy lacks
    // fetches it again, and finds it gone.
    docs.fail(CLAUDE, FetchFailure::Status(404));
    advance(&first, 31);
    let r = first
        .core
        .start_authorization(request(CLAUDE, "https://claude.example/elsewhere"))
        .await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(docs.fetches(), 2);

    // Once the failure is forgotten, the shared copy (still within its freshness) must not
    // bring the client back: it is fetched again, and refused.
    advance(&first, 61);
    let r = first
        .core
        .start_authorization(request(CLAUDE, CLAUDE_CALLBACK))
        .await;
    assert!(r.is_err(), "the document is gone: {r:?}");
    assert_eq!(docs.fetches(), 3);
    // And another replica does not take it from the shared copy either.
    let second = TestCore::builder()
        .store(first.store.clone())
        .starting_at(first.clock.now())
        .client_documents(docs.clone())
        .build()
        .await
        .expect("a second replica");
    let r = second
        .core
        .start_authorization(request(CLAUDE, CLAUDE_CALLBACK))
        .await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(docs.fetches(), 4);
}

#[tokio::test]
async fn a_document_unreachable_on_a_refetch_keeps_its_shared_copy() {
    let docs = Arc::new(Documents::default());
    docs.serve(CLAUDE, &claude(), DocumentFreshness::Unspecified);
    let t = core_reading(&docs, |_| {}).await;
    start(&t, request(CLAUDE, CLAUDE_CALLBACK)).await;
    docs.fail(CLAUDE, FetchFailure::Unreachable);
    advance(&t, 31);
    let r = t
        .core
        .start_authorization(request(CLAUDE, "https://claude.example/elsewhere"))
        .await;
    assert!(r.is_err(), "{r:?}");
    // A failure to reach it says nothing about the document: within its freshness, the
    // shared copy serves once the failure is forgotten.
    advance(&t, 61);
    start(&t, request(CLAUDE, CLAUDE_CALLBACK)).await;
    assert_eq!(docs.fetches(), 2);
}
