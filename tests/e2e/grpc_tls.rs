//! The gRPC plane over TLS: the listener with its certificate, client certificates when a
//! client CA is set (in addition to the credentials, never instead of them), the clients that
//! connect with a CA file (the resource-server crate, a gateway running alone), production's
//! refusal of plaintext off loopback, and the listener's message size limit. Certificates are
//! made here, with rcgen, for each test.

use crate::common::*;
use latchkey_proto::v1 as pb;
use latchkey_proto::v1::auth_service_client::AuthServiceClient;
use latchkey_proto::v1::verification_service_client::VerificationServiceClient;
use latchkey_resource_server::{Config, Mode, SetupError, Tls, Verifier};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::path::PathBuf;
use std::time::Duration;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A certificate and its key, as PEM.
#[derive(Clone)]
struct Pem {
    cert: String,
    key: String,
}

/// A test certificate authority.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for the server at 127.0.0.1 and localhost.
    fn server(&self) -> Pem {
        self.leaf(ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate.
    fn client(&self) -> Pem {
        self.leaf(ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, usage: ExtendedKeyUsagePurpose) -> Pem {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params
            .distinguished_name
            .push(DnType::CommonName, "latchkey test");
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Files for the settings, removed when the test ends.
struct Files(PathBuf);

impl Files {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("lk_tls_{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write PEM");
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A system whose gRPC listener serves TLS with a certificate from `ca`, requiring client
/// certificates from `client_ca` when given.
async fn spawn_tls_app(files: &Files, ca: &Ca, client_ca: Option<&Ca>) -> TestApp {
    let server = ca.server();
    let cert = files.write("server.crt", &server.cert);
    let key = files.write("server.key", &server.key);
    let client_ca = client_ca.map(|c| files.write("client-ca.crt", &c.pem));
    spawn_app_with(|s| {
        s.grpc_tls_cert = Some(cert);
        s.grpc_tls_key = Some(key);
        s.grpc_tls_client_ca = client_ca;
    })
    .await
}

/// The app's gRPC address as an `https://` URL.
fn https_url(app: &TestApp) -> String {
    app.grpc_url.replacen("http://", "https://", 1)
}

/// A channel to `url` trusting `ca`, presenting `identity` when given. Bounded in time, so
/// that a refused handshake fails the call rather than hanging the test.
async fn channel(url: &str, ca: Option<&Ca>, identity: Option<&Pem>) -> Result<Channel, String> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .expect("url")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    if let Some(ca) = ca {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem));
        if let Some(id) = identity {
            tls = tls.identity(Identity::from_pem(&id.cert, &id.key));
        }
        endpoint = endpoint.tls_config(tls).expect("tls config");
    }
    endpoint.connect().await.map_err(|e| format!("{e:?}"))
}

/// Asks the gateway's service for the server metadata, presenting `bearer`; the status code,
/// or `Ok` when it answered.
async fn metadata_call(
    channel: Result<Channel, String>,
    bearer: Option<&str>,
) -> Result<(), String> {
    let channel = channel?;
    let mut client = AuthServiceClient::new(channel);
    let mut req = tonic::Request::new(pb::GetServerMetadataRequest::default());
    if let Some(b) = bearer {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {b}").parse().expect("ascii"),
        );
    }
    client
        .get_server_metadata(req)
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

#[tokio::test]
async fn a_tls_listener_answers_clients_that_trust_its_ca_and_nobody_in_clear() {
    let files = Files::new();
    let ca = Ca::new("latchkey test CA");
    let app = spawn_tls_app(&files, &ca, None).await;
    let https = https_url(&app);

    metadata_call(channel(&https, Some(&ca), None).await, Some(GATEWAY_SECRET))
        .await
        .expect("a client with the CA is answered");

    let other = Ca::new("another CA");
    let refused = [
        (
            "plaintext to the TLS port",
            metadata_call(
                channel(&app.grpc_url, None, None).await,
                Some(GATEWAY_SECRET),
            )
            .await,
        ),
        (
            "TLS trusting another CA",
            metadata_call(
                channel(&https, Some(&other), None).await,
                Some(GATEWAY_SECRET),
            )
            .await,
        ),
    ];
    for (what, result) in refused {
        assert!(result.is_err(), "{what} was answered");
    }

    // The in-process gateway of `latchkey serve` has no socket: the HTTP side works as before.
    let res = http()
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("metadata");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn with_a_client_ca_a_caller_needs_a_certificate_it_signed_and_its_credential_too() {
    let files = Files::new();
    let ca = Ca::new("latchkey server CA");
    let client_ca = Ca::new("latchkey client CA");
    let app = spawn_tls_app(&files, &ca, Some(&client_ca)).await;
    let https = https_url(&app);
    let good = client_ca.client();

    metadata_call(
        channel(&https, Some(&ca), Some(&good)).await,
        Some(GATEWAY_SECRET),
    )
    .await
    .expect("a certificate from the client CA and the gateway's credential");

    let stranger = Ca::new("a stranger's CA").client();
    let cases = [
        ("no client certificate", None, Some(GATEWAY_SECRET)),
        (
            "a certificate from another CA",
            Some(&stranger),
            Some(GATEWAY_SECRET),
        ),
    ];
    for (what, identity, bearer) in cases {
        let result = metadata_call(channel(&https, Some(&ca), identity).await, bearer).await;
        assert!(result.is_err(), "{what} was answered");
        assert!(
            !result
                .as_ref()
                .is_err_and(|e| e.starts_with("Unauthenticated")),
            "{what} reached the guard instead of being refused by TLS: {result:?}"
        );
    }

    // The certificate adds to the credential; it does not replace it.
    let without_credential =
        metadata_call(channel(&https, Some(&ca), Some(&good)).await, None).await;
    assert!(
        without_credential
            .as_ref()
            .is_err_and(|e| e.starts_with("Unauthenticated")),
        "{without_credential:?}"
    );
}

#[tokio::test]
async fn the_resource_server_crate_verifies_a_token_over_tls_with_a_client_certificate() {
    let files = Files::new();
    let ca = Ca::new("latchkey server CA");
    let client_ca = Ca::new("latchkey client CA");
    let app = spawn_tls_app(&files, &ca, Some(&client_ca)).await;
    let https = https_url(&app);
    let (id, secret) = app.resource_server(&[RESOURCE]).await;
    let (status, body) = app
        .token_with(
            http()
                .post(app.url("/token"))
                .basic_auth(&id, Some(&secret))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("resource", RESOURCE),
                    ("scope", "mcp:tools"),
                ]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("access token");
    let identity = client_ca.client();
    let tls = Tls::new(ca.pem.clone()).client_certificate(identity.cert, identity.key);

    for mode in [Mode::Remote, Mode::Local] {
        let verifier = Verifier::connect(
            Config::new(RESOURCE, &app.base, &https, &id, &secret)
                .mode(mode)
                .tls(tls.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("{mode:?}: connect over TLS: {e}"));
        let claims = verifier
            .verify(token, &["mcp:tools".to_owned()])
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: verify over TLS: {e}"));
        assert_eq!(claims.aud, RESOURCE, "{mode:?}");
        assert_eq!(claims.client_id, id, "{mode:?}");
    }

    // An https:// address without a CA, or TLS toward http://, is a setup error, never a
    // silent downgrade.
    let no_ca = Verifier::connect(Config::new(RESOURCE, &app.base, &https, &id, &secret)).await;
    assert!(matches!(no_ca, Err(SetupError::Config(_))));
    let tls_to_http = Verifier::connect(
        Config::new(RESOURCE, &app.base, &app.grpc_url, &id, &secret).tls(Tls::new(ca.pem.clone())),
    )
    .await;
    assert!(matches!(tls_to_http, Err(SetupError::Config(_))));
    // Without its certificate, the resource server is refused by TLS.
    let no_cert = Verifier::connect(
        Config::new(RESOURCE, &app.base, &https, &id, &secret).tls(Tls::new(ca.pem.clone())),
    )
    .await;
    match no_cert {
        Err(_) => {}
        Ok(v) => assert!(
            v.verify(token, &[]).await.is_err(),
            "verified without a client certificate"
        ),
    }
}

#[tokio::test]
async fn a_gateway_alone_reaches_the_auth_service_over_tls_with_its_ca_file() {
    let files = Files::new();
    let ca = Ca::new("latchkey server CA");
    let client_ca = Ca::new("latchkey client CA");
    let app = spawn_tls_app(&files, &ca, Some(&client_ca)).await;
    let auth = app.replica().await;
    let auth_url = auth.grpc_url.replacen("http://", "https://", 1);
    let identity = client_ca.client();
    let gateway_settings = latchkey::Settings {
        auth_url: auth_url.clone(),
        auth_ca_file: Some(files.write("ca.crt", &ca.pem)),
        auth_client_cert: Some(files.write("gateway.crt", &identity.cert)),
        auth_client_key: Some(files.write("gateway.key", &identity.key)),
        ..app.settings.clone()
    };
    gateway_settings
        .validate(latchkey::config::Mode::Gateway)
        .expect("the gateway's settings are valid");
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gateway = latchkey::start_gateway(&gateway_settings, &auth_url, http_listener)
        .await
        .expect("start the gateway");
    let base = format!("http://{}", gateway.http_addr.expect("http addr"));
    // The metadata document comes from the AuthService, over the TLS channel.
    let res = http()
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("metadata");
    assert_eq!(res.status(), 200);
    let _ = gateway.stopper().send(true);

    // Without its CA file, an https:// AuthService is a configuration error.
    let no_ca = latchkey::Settings {
        auth_ca_file: None,
        ..gateway_settings
    };
    let problems = no_ca
        .validate(latchkey::config::Mode::Gateway)
        .expect_err("no CA");
    assert!(
        problems.iter().any(|p| p.contains("LATCHKEY_AUTH_CA_FILE")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn production_refuses_plaintext_grpc_on_a_non_loopback_address() {
    let files = Files::new();
    let server = Ca::new("latchkey server CA").server();
    let cert = files.write("server.crt", &server.cert);
    let key = files.write("server.key", &server.key);
    // A production configuration that is valid in every other respect. It is only
    // validated: nothing here opens the database.
    let production = |grpc_addr: &str, tls: bool| latchkey::Settings {
        env: latchkey::config::Environment::Production,
        issuer: "https://auth.example.com".into(),
        cors_origins: "https://app.example.com".into(),
        database_url: "postgres://latchkey@127.0.0.1:1/latchkey".into(),
        key_encryption_key: Some(
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
                .to_owned()
                .into(),
        ),
        grpc_addr: grpc_addr.parse().expect("addr"),
        grpc_tls_cert: tls.then(|| cert.clone()),
        grpc_tls_key: tls.then(|| key.clone()),
        ..latchkey::Settings::default()
    };
    use latchkey::config::Mode;
    for (addr, tls, accepted) in [
        ("0.0.0.0:50051", false, false),
        ("[::]:50051", false, false),
        ("10.1.2.3:50051", false, false),
        ("127.0.0.1:50051", false, true),
        ("[::1]:50051", false, true),
        ("0.0.0.0:50051", true, true),
    ] {
        for mode in [Mode::All, Mode::Auth] {
            let result = production(addr, tls).validate(mode);
            assert_eq!(
                result.is_ok(),
                accepted,
                "{addr} tls={tls} {mode:?}: {result:?}"
            );
            if !accepted {
                let problems = result.err().unwrap_or_default();
                assert!(
                    problems.iter().all(|p| p.contains("plaintext gRPC")),
                    "{addr}: {problems:?}"
                );
            }
        }
    }
    // Starting checks the address actually bound, before anything else: a listener on every
    // interface is refused at once (nothing connects to it, and it closes with the refusal).
    let everywhere = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let refused = latchkey::start_auth(&production("127.0.0.1:50051", false), everywhere)
        .await
        .err()
        .expect("plaintext on every interface is refused")
        .to_string();
    assert!(refused.contains("plaintext gRPC"), "{refused}");
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused() {
    let limit = 64 * 1024;
    let app = spawn_app_with(|s| {
        s.max_body_bytes = 1024;
        s.grpc_max_receive_message_bytes = limit;
    })
    .await;
    let rs = app.resource_server(&[RESOURCE]).await;
    let mut client =
        VerificationServiceClient::new(channel(&app.grpc_url, None, None).await.expect("connect"));
    let verify = |size: usize| {
        crate::grpc::as_client(
            pb::VerifyTokenRequest {
                token: "a".repeat(size),
                audience: RESOURCE.into(),
                required_scopes: vec![],
            },
            &rs,
        )
    };
    // Under the limit: an answer (the token is garbage, so not valid), not a refusal.
    let under = client
        .verify_token(verify(limit - 1024))
        .await
        .expect("a message under the limit is decoded");
    assert!(!under.into_inner().valid);
    let over = client
        .verify_token(verify(limit + 1))
        .await
        .expect_err("a message over the limit");
    assert!(
        matches!(over.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{over:?}"
    );
}
