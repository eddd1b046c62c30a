//! Client ID Metadata Documents end to end: a local HTTPS document server with a CA made here
//! (given to Latchkey through `LATCHKEY_OUTBOUND_CA_FILE`, loopback allowed by the
//! development switch), clients shaped like Claude Code and VS Code going through the whole
//! code flow, and hostile documents, each of which must give a clear error page: never a
//! redirect, never a 5xx.

use crate::common::*;
use latchkey_outbound::{Limits, Rate};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the document server answers on one path.
#[derive(Clone)]
pub(crate) struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
    headers: Vec<(&'static str, String)>,
    delay: Duration,
}

impl Answer {
    pub(crate) fn json(doc: &Value) -> Self {
        Self {
            status: 200,
            content_type: "application/json",
            body: doc.to_string(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }
}

/// An HTTPS server on 127.0.0.1 with a certificate for `localhost` and 127.0.0.1 from its own
/// CA, answering each path as told. HTTP/1.1, one request per connection.
pub(crate) struct DocumentServer {
    pub(crate) port: u16,
    ca_file: tempfile_path::TempPath,
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    /// Requests served, by path.
    hits: Arc<Mutex<HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DocumentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A file removed when dropped (the CA certificate, for `LATCHKEY_OUTBOUND_CA_FILE`).
mod tempfile_path {
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl DocumentServer {
    pub(crate) async fn start() -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "cimd test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);

        let leaf_key = KeyPair::generate().expect("leaf key");
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        leaf.subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf");
        let key = PrivateKeyDer::from_pem_slice(leaf_key.serialize_pem().as_bytes()).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], key)
            .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let ca_path =
            std::env::temp_dir().join(format!("lk_cimd_ca_{}.pem", uuid::Uuid::new_v4().simple()));
        std::fs::write(&ca_path, ca_cert.pem()).expect("write CA file");

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let answers: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let table = answers.clone();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let counted = hits.clone();
        // Accepts until the test drops the server.
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let table = table.clone();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    // The request head, bounded; the path is all that matters.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    *counted
                        .lock()
                        .expect("lock")
                        .entry(path.clone())
                        .or_default() += 1;
                    let answer = table.lock().expect("lock").get(&path).cloned();
                    let answer = answer.unwrap_or(Answer {
                        status: 404,
                        content_type: "text/plain",
                        body: "not found".into(),
                        headers: Vec::new(),
                        delay: Duration::ZERO,
                    });
                    tokio::time::sleep(answer.delay).await;
                    let mut res = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n",
                        answer.status,
                        answer.content_type,
                        answer.body.len()
                    );
                    for (name, value) in &answer.headers {
                        res.push_str(&format!("{name}: {value}\r\n"));
                    }
                    res.push_str("\r\n");
                    res.push_str(&answer.body);
                    let _ = tls.write_all(res.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            port,
            ca_file: tempfile_path::TempPath(ca_path),
            answers,
            hits,
            task,
        }
    }

    /// How many requests for `path` were served.
    pub(crate) fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// The document URL for `path`, on 127.0.0.1.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn answer(&self, path: &str, answer: Answer) {
        self.answers
            .lock()
            .expect("lock")
            .insert(path.to_owned(), answer);
    }

    /// Serves `doc` with its `client_id` set to the URL it is served at.
    pub(crate) fn serve(&self, path: &str, mut doc: Value) -> String {
        let url = self.url(path);
        doc["client_id"] = json!(url);
        self.answer(path, Answer::json(&doc));
        url
    }
}

/// Limits loose enough for a test that fetches several documents from one host at once.
fn loose_limits() -> Limits {
    let rate = Rate {
        burst: 1000,
        every: Duration::from_millis(1),
    };
    Limits {
        global_rate: rate,
        host_rate: rate,
        host_concurrency: 16,
        max_in_flight: 64,
        max_hosts: 64,
    }
}

/// An app in development mode that trusts the server's CA and may fetch from loopback.
pub(crate) async fn app_for(
    server: &DocumentServer,
    configure: impl FnOnce(&mut latchkey::Settings),
) -> TestApp {
    let ca = server.ca_file.0.clone();
    spawn_app_with_deps(
        |s| {
            s.outbound_ca_file = Some(ca);
            s.outbound_allow_loopback = true;
            configure(s);
        },
        |d| {
            d.outbound_limits = Some(loose_limits());
            d.document_timeout = Some(Duration::from_millis(700));
        },
    )
    .await
}

fn claude_code() -> Value {
    json!({
        "client_name": "Claude Code",
        "client_uri": "https://claude.ai",
        "logo_uri": "https://claude.ai/logo.png",
        "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none"
    })
}

fn vs_code() -> Value {
    json!({
        "client_name": "Visual Studio Code",
        "logo_uri": "https://code.visualstudio.com/logo.png",
        "redirect_uris": ["http://127.0.0.1/", "https://vscode.dev/redirect"],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none"
    })
}

#[tokio::test]
async fn a_claude_code_document_client_completes_the_code_flow_and_consent_shows_its_host_unverified()
 {
    let server = DocumentServer::start().await;
    let client_id = server.serve("/oauth/claude-code.json", claude_code());
    let app = app_for(&server, |_| {}).await;
    let meta: Value = http()
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert_eq!(meta["client_id_metadata_document_supported"], true);
    assert!(
        meta["token_endpoint_auth_methods_supported"]
            .as_array()
            .expect("list")
            .contains(&json!("none"))
    );

    let email = "cimd-user@example.com";
    app.add_user(email).await;
    // The flow listens on a port of its own; the document's callbacks have none.
    let redirect = "http://127.0.0.1:43111/callback";
    let p = pkce();
    let params = auth_params(&client_id, redirect, &p);
    let b = browser();
    let page = authorize(&app, &b, &params).await;
    assert_eq!(page.status(), 200, "login page");
    let consent = login(&app, &b, page, email, PASSWORD).await;
    assert_eq!(consent.status(), 200);
    let html = consent.text().await.expect("html");
    let host = format!("127.0.0.1:{}", server.port);
    assert!(html.contains(&host), "the document's host is shown: {html}");
    assert!(
        html.contains("unverified"),
        "not on the trusted list: {html}"
    );
    assert!(
        html.contains("Warning"),
        "every redirect URI is loopback: {html}"
    );
    assert!(
        !html.contains("<img"),
        "no logo for an unverified client: {html}"
    );
    assert!(html.contains("Claude Code"));
    let done = b
        .post(app.url("/authorize/consent"))
        .form(&[("csrf_token", csrf(&html).as_str()), ("decision", "allow")])
        .send()
        .await
        .expect("POST consent");
    assert_eq!(done.status(), 303);
    let (loc, q) = location_params(&done);
    assert!(loc.starts_with(redirect), "{loc}");

    let (status, tokens) = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", p.verifier.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .await;
    assert_eq!(status, 200, "{tokens}");
    let (_, claims) = jwt_parts(tokens["access_token"].as_str().expect("access token"));
    assert_eq!(claims["client_id"], client_id.as_str());
    let rt = tokens["refresh_token"].as_str().expect("a refresh token");
    let (status, refreshed) = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", client_id.as_str()),
        ])
        .await;
    assert_eq!(status, 200, "{refreshed}");
}

#[tokio::test]
async fn a_vs_code_document_client_may_use_any_loopback_port_and_its_web_redirect() {
    let server = DocumentServer::start().await;
    let client_id = server.serve("/vscode/client.json", vs_code());
    let app = app_for(&server, |s| s.cimd_trusted_hosts = "127.0.0.1".into()).await;
    let email = "vscode-user@example.com";
    app.add_user(email).await;
    let p = pkce();
    for redirect in [
        "http://127.0.0.1:33418/",
        "http://127.0.0.1:61000/",
        "https://vscode.dev/redirect",
    ] {
        let params = auth_params(&client_id, redirect, &p);
        let page = authorize(&app, &browser(), &params).await;
        assert_eq!(page.status(), 200, "{redirect}");
    }
    let b = browser();
    let page = authorize(
        &app,
        &b,
        &auth_params(&client_id, "http://127.0.0.1:33418/", &p),
    )
    .await;
    let consent = login(&app, &b, page, email, PASSWORD).await;
    let html = consent.text().await.expect("html");
    assert!(html.contains("(verified)"), "a trusted host: {html}");
    assert!(
        !html.contains("Warning"),
        "vscode.dev is not loopback: {html}"
    );
    assert!(
        html.contains("<img") && html.contains("code.visualstudio.com"),
        "a verified client's logo: {html}"
    );

    let res = authorize(
        &app,
        &browser(),
        &auth_params(&client_id, "https://vscode.dev/elsewhere", &p),
    )
    .await;
    assert_eq!(res.status(), 400, "a redirect URI not in the document");
    assert!(res.headers().get("location").is_none());
}

/// GET /authorize for a document that must be refused: a 400 page that names the reason.
async fn assert_refused(app: &TestApp, client_id: &str, expected: &str, why: &str) {
    let p = pkce();
    let res = authorize(
        app,
        &browser(),
        &auth_params(client_id, "http://127.0.0.1:5555/callback", &p),
    )
    .await;
    let status = res.status();
    assert!(
        res.headers().get("location").is_none(),
        "{why}: never a redirect"
    );
    let html = res.text().await.expect("html");
    assert_eq!(status, 400, "{why}: a clear error page, not a 5xx: {html}");
    assert!(html.contains(expected), "{why}: {expected:?} in {html}");
}

#[tokio::test]
async fn hostile_documents_each_give_a_clear_error_page() {
    let server = DocumentServer::start().await;
    let app = app_for(&server, |_| {}).await;
    let mut doc_mismatch = claude_code();
    doc_mismatch["client_id"] = json!("https://attacker.example/claude.json");
    server.answer("/mismatch.json", Answer::json(&doc_mismatch));
    let mut secret = claude_code();
    secret["client_secret"] = json!("s3cret");
    server.serve("/secret.json", secret);
    server.answer(
        "/invalid.json",
        Answer {
            body: "{\"client_id\": ".into(),
            ..Answer::json(&json!({}))
        },
    );
    let html_doc = server.url("/html.json");
    let mut as_html = claude_code();
    as_html["client_id"] = json!(html_doc);
    server.answer(
        "/html.json",
        Answer {
            content_type: "text/html",
            ..Answer::json(&as_html)
        },
    );
    let mut big = claude_code();
    big["padding"] = json!("x".repeat(6 * 1024));
    server.serve("/big.json", big);
    let slow_url = server.url("/slow.json");
    let mut slow = claude_code();
    slow["client_id"] = json!(slow_url);
    server.answer(
        "/slow.json",
        Answer {
            delay: Duration::from_secs(3),
            ..Answer::json(&slow)
        },
    );
    server.answer(
        "/metadata.json",
        Answer {
            status: 302,
            headers: vec![(
                "location",
                "https://169.254.169.254/latest/meta-data/".to_owned(),
            )],
            body: String::new(),
            ..Answer::json(&json!({}))
        },
    );
    let mut only_jwt = claude_code();
    only_jwt["token_endpoint_auth_method"] = json!("private_key_jwt");
    only_jwt["jwks_uri"] = json!("http://claude.ai/jwks.json");
    server.serve("/jwt.json", only_jwt);

    let cases = [
        (
            "/mismatch.json",
            "does not equal the URL",
            "client_id mismatch",
        ),
        (
            "/secret.json",
            "must not contain a client_secret",
            "client_secret inside",
        ),
        ("/invalid.json", "not valid JSON", "invalid JSON"),
        ("/html.json", "JSON content type", "wrong content type"),
        ("/big.json", "too large", "oversized"),
        ("/slow.json", "took too long", "slow"),
        (
            "/metadata.json",
            "redirects are not followed",
            "redirect to 169.254.169.254",
        ),
        (
            "/jwt.json",
            "jwks_uri must be an https URL",
            "private_key_jwt with keys over plain http",
        ),
        ("/missing.json", "HTTP 404", "not found"),
    ];
    for (path, expected, why) in cases {
        assert_refused(&app, &server.url(path), expected, why).await;
    }
    assert_refused(
        &app,
        &format!("https://127.0.0.1:{}/", server.port),
        "must have a path",
        "no path",
    )
    .await;
    assert_refused(
        &app,
        &format!("https://127.0.0.1:{}/a/../claude.json", server.port),
        "segments",
        "dot segments",
    )
    .await;
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_without_the_development_switch() {
    let server = DocumentServer::start().await;
    server.serve("/claude.json", claude_code());
    let ca = server.ca_file.0.clone();
    let app = spawn_app_with(|s| s.outbound_ca_file = Some(ca)).await;
    // `localhost` resolves to 127.0.0.1: the address is checked, and refused.
    let url = format!("https://localhost:{}/claude.json", server.port);
    assert_refused(&app, &url, "private or reserved network", "localhost").await;
    let url = server.url("/claude.json");
    assert_refused(&app, &url, "private or reserved network", "127.0.0.1").await;
}

#[tokio::test]
async fn with_documents_switched_off_a_document_url_is_an_unknown_client() {
    let server = DocumentServer::start().await;
    let client_id = server.serve("/claude.json", claude_code());
    let app = app_for(&server, |s| s.cimd = false).await;
    let meta: Value = http()
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert!(meta.get("client_id_metadata_document_supported").is_none());
    let p = pkce();
    let res = authorize(
        &app,
        &browser(),
        &auth_params(&client_id, "http://127.0.0.1:5555/callback", &p),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("location").is_none());
    let html = res.text().await.expect("html");
    assert!(html.contains("must register again"), "{html}");
}

#[tokio::test]
async fn production_refuses_the_loopback_switch_and_bad_host_patterns() {
    let settings = latchkey::Settings {
        outbound_allow_loopback: true,
        cimd_allowed_hosts: "good.example, https://bad.example/".into(),
        ..latchkey::Settings::default()
    };
    let problems = settings
        .core_settings()
        .expect_err("a bad pattern is reported");
    assert!(
        problems.iter().any(|p| p.contains("cimd_allowed_hosts")),
        "{problems:?}"
    );
    assert!(
        !problems
            .iter()
            .any(|p| p.contains("outbound_allow_loopback")),
        "development may allow loopback"
    );
    let production = latchkey::Settings {
        env: latchkey::config::Environment::Production,
        ..settings
    };
    let problems = production.core_settings().expect_err("refused");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("outbound_allow_loopback")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn two_replicas_on_one_database_fetch_a_document_once() {
    let server = DocumentServer::start().await;
    let path = "/oauth/shared.json";
    let client_id = server.serve(path, claude_code());
    let app = app_for(&server, |_| {}).await;
    let peer = app.peer().await;
    let p = pkce();
    let params = auth_params(&client_id, "http://127.0.0.1:43111/callback", &p);
    for replica in [&app, &peer, &app, &peer] {
        let page = authorize(replica, &browser(), &params).await;
        assert_eq!(page.status(), 200, "login page");
    }
    assert_eq!(
        server.hits(path),
        1,
        "the second replica used the first one's fetch, through the database"
    );
}
