//! Grants are per install: the same client on one user's two devices holds two installs, and
//! revoking one leaves the other signed in; a native app's runs on new loopback ports are one
//! install.

mod common;

use common::*;
use latchkey_core::authorize::AuthorizationRequest;
use latchkey_core::redirect_uri::install_key;
use latchkey_core::testing::TestCore;

const LOOPBACK: &str = "http://127.0.0.1/callback";
const WEB: &str = "https://vscode.example/redirect";

fn from(redirect: &str) -> AuthorizationRequest {
    AuthorizationRequest {
        redirect_uri: Some(redirect.into()),
        ..authorization_request("editor")
    }
}

/// The code flow from `redirect`, returning the refresh token.
async fn signed_in(t: &TestCore, redirect: &str) -> String {
    let code = authorize(t, from(redirect), EMAIL).await;
    let mut req = code_request(public("editor"), &code);
    req.redirect_uri = Some(redirect.into());
    t.core
        .exchange_token(req)
        .await
        .expect("the code is exchanged")
        .refresh_token
        .expect("a refresh token")
}

async fn refreshes(t: &TestCore, rt: &str) -> Result<String, &'static str> {
    t.core
        .exchange_token(refresh_request(public("editor"), rt))
        .await
        .map(|r| r.refresh_token.expect("rotated"))
        .map_err(|e| e.code())
}

#[test]
fn a_loopback_port_is_not_part_of_the_install() {
    assert_eq!(
        install_key("http://127.0.0.1:53682/callback"),
        install_key("http://127.0.0.1:1234/callback")
    );
    assert_eq!(install_key("http://127.0.0.1:53682/callback"), LOOPBACK);
    assert_eq!(
        install_key("http://localhost:8080/cb"),
        "http://localhost/cb"
    );
    assert_ne!(
        install_key("http://localhost/a"),
        install_key("http://localhost/b")
    );
    // Only loopback http drops its port: anything else is the URI as used.
    assert_eq!(
        install_key("https://app.example:8443/cb"),
        "https://app.example:8443/cb"
    );
    assert_eq!(install_key("com.example.app:/cb"), "com.example.app:/cb");
}

#[tokio::test]
async fn revoking_one_install_leaves_the_users_other_install_signed_in() {
    let t = core().await;
    client("editor").redirects(&[LOOPBACK, WEB]).seed(&t).await;
    seed_user(&t, EMAIL).await;
    // Two runs of the desktop app on new ports, and the web app.
    let desktop_1 = signed_in(&t, "http://127.0.0.1:40001/callback").await;
    let desktop_2 = signed_in(&t, "http://127.0.0.1:40002/callback").await;
    let web = signed_in(&t, WEB).await;

    let installs = t.core.user_installs(EMAIL).await.expect("installs");
    assert_eq!(installs.len(), 2, "{installs:?}");
    let desktop = installs
        .iter()
        .find(|i| i.install.as_deref() == Some(LOOPBACK))
        .expect("the desktop install");
    assert_eq!(desktop.grants, 2, "two runs, one install");
    assert!(t.store.consents().iter().all(|c| !c.install.is_empty()));

    let revoked = t
        .core
        .revoke_user_grants(EMAIL, "editor", Some("http://127.0.0.1:9/callback"))
        .await
        .expect("revoke");
    assert_eq!(revoked, 2);
    assert_eq!(refreshes(&t, &desktop_1).await, Err("invalid_grant"));
    assert_eq!(refreshes(&t, &desktop_2).await, Err("invalid_grant"));
    let web = refreshes(&t, &web)
        .await
        .expect("the web install is still signed in");

    let installs = t.core.user_installs(EMAIL).await.expect("installs");
    assert_eq!(installs.len(), 1);
    assert_eq!(installs[0].install.as_deref(), Some(WEB));

    // Without an install, every grant of the client goes.
    assert_eq!(
        t.core
            .revoke_user_grants(EMAIL, "editor", None)
            .await
            .expect("revoke all"),
        1
    );
    assert_eq!(refreshes(&t, &web).await, Err("invalid_grant"));
}

#[tokio::test]
async fn revoking_names_a_user_that_exists_and_touches_only_that_client() {
    let t = core().await;
    client("editor").redirects(&[LOOPBACK]).seed(&t).await;
    seed_user(&t, EMAIL).await;
    let rt = signed_in(&t, LOOPBACK).await;
    assert_eq!(
        err_code(
            t.core
                .revoke_user_grants("nobody@example.com", "editor", None)
                .await,
            "an unknown user"
        ),
        "not_found"
    );
    assert_eq!(
        t.core
            .revoke_user_grants(EMAIL, "another-client", None)
            .await
            .expect("revoke"),
        0
    );
    refreshes(&t, &rt).await.expect("still signed in");
}

/// Fetches nothing, counting the attempts.
#[derive(Default)]
struct CountingDocuments(std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl latchkey_core::metadata_document::ClientDocuments for CountingDocuments {
    async fn fetch(
        &self,
        _: &url::Url,
    ) -> Result<
        latchkey_core::metadata_document::FetchedDocument,
        latchkey_core::metadata_document::FetchFailure,
    > {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(latchkey_core::metadata_document::FetchFailure::Unreachable)
    }

    async fn fetch_key_set(
        &self,
        url: &url::Url,
    ) -> Result<
        latchkey_core::metadata_document::FetchedDocument,
        latchkey_core::metadata_document::FetchFailure,
    > {
        self.fetch(url).await
    }
}

#[tokio::test]
async fn listing_installs_names_a_document_client_without_fetching_its_document() {
    let documents = std::sync::Arc::new(CountingDocuments::default());
    let t = TestCore::builder()
        .client_documents(documents.clone())
        .build()
        .await
        .expect("core");
    let id = "https://editor.example/oauth/client.json";
    // The row a document client gets when a user first approves it.
    let mut anchor = client(id)
        .tier(latchkey_core::model::ClientTier::MetadataDocument)
        .redirects(&[REDIRECT]);
    anchor.0.name = Some("Editor".into());
    anchor.seed(&t).await;
    let user = seed_user(&t, EMAIL).await;
    seed_code(&t, &grant(&t, id, user.id)).await;

    let installs = t.core.user_installs(EMAIL).await.expect("installs");
    assert_eq!(installs.len(), 1);
    assert_eq!(installs[0].client_name.as_deref(), Some("Editor"));
    assert_eq!(
        documents.0.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "an operator's listing fetches nothing over the network"
    );
}
