//! A document server for the tests: HTTPS on 127.0.0.1 with a certificate from a CA made
//! here by rcgen (or plain HTTP), hyper behind tokio-rustls, with one route per behaviour a
//! test needs. It counts the TCP connections it accepts, so a test can show that a refused
//! fetch never reached it. Resolvers that answer for test names live here too.

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use latchkey_outbound::{Resolve, Resolving};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use url::Url;

/// The names the server's certificate holds, besides 127.0.0.1.
pub const NAMES: [&str; 4] = [
    "docs.example.test",
    "keys.example.test",
    "other.example.test",
    "mixed.example.test",
];

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A test certificate authority.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
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

    /// A TLS server configuration with a certificate for [`NAMES`] and 127.0.0.1.
    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = KeyPair::generate().expect("leaf key");
        let names = NAMES.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.subject_alt_names.push(SanType::IpAddress(LOCALHOST));
        params
            .distinguished_name
            .push(DnType::CommonName, "outbound test server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// The head of a request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub host: String,
    pub accept: String,
}

#[derive(Default)]
struct State {
    port: AtomicUsize,
    connections: AtomicUsize,
    requests: Mutex<Vec<Seen>>,
    /// Told when `/hold` has a request; `/hold` answers once `release` is told.
    held: Notify,
    release: Notify,
}

/// A running test server, stopped when dropped.
pub struct Server {
    pub port: u16,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn https(ca: &Ca) -> Self {
        Self::start(Some(tokio_rustls::TlsAcceptor::from(ca.server_config()))).await
    }

    pub async fn plain() -> Self {
        Self::start(None).await
    }

    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let state = Arc::new(State::default());
        state.port.store(usize::from(port), Ordering::SeqCst);
        let accept_state = Arc::clone(&state);
        // Accepts until the test drops the server.
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                accept_state.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&accept_state);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, Arc::clone(&state)));
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(tcp).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Self { port, state, task }
    }

    /// `scheme://host:port/path` on this server.
    pub fn url(&self, scheme: &str, host: &str, path: &str) -> Url {
        Url::parse(&format!("{scheme}://{host}:{}{path}", self.port)).expect("test URL")
    }

    /// `https://host:port/path`.
    pub fn https_url(&self, host: &str, path: &str) -> Url {
        self.url("https", host, path)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.requests.lock().expect("requests").clone()
    }

    /// Waits, at most 5 s, until `/hold` has a request.
    pub async fn held(&self) {
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            self.state.held.notified(),
        )
        .await
        .expect("/hold was requested within 5 s");
    }

    /// Lets the request held at `/hold` be answered.
    pub fn release(&self) {
        self.state.release.notify_one();
    }
}

type Body_ = BoxBody<Bytes, Infallible>;

fn full(body: impl Into<Bytes>) -> Body_ {
    http_body_util::Full::new(body.into()).boxed()
}

fn respond(status: StatusCode, headers: &[(&str, &str)], body: Body_) -> Response<Body_> {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response.body(body).expect("test response")
}

const JSON: (&str, &str) = ("content-type", "application/json");
pub const DOCUMENT: &str = r#"{"client_id":"https://docs.example.test/doc.json"}"#;

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Result<Response<Body_>, Infallible> {
    let text = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let path = req.uri().path().to_owned();
    state.requests.lock().expect("requests").push(Seen {
        path: path.clone(),
        host: text(header::HOST),
        accept: text(header::ACCEPT),
    });
    let port = state.port.load(Ordering::SeqCst);
    let redirect = |to: &str| respond(StatusCode::FOUND, &[("location", to)], full(""));
    let ok = |headers: &[(&str, &str)], body: Body_| respond(StatusCode::OK, headers, body);
    Ok(match path.as_str() {
        "/doc.json" => ok(
            &[
                JSON,
                ("cache-control", "public, max-age=600"),
                ("etag", "\"v1\""),
            ],
            full(DOCUMENT),
        ),
        "/jwks" => ok(
            &[("content-type", "application/jwk-set+json")],
            full(r#"{"keys":[]}"#),
        ),
        "/html" => ok(&[("content-type", "text/html; charset=utf-8")], full("<p>")),
        "/no-type" => ok(&[], full("{}")),
        "/gzip" => ok(&[JSON, ("content-encoding", "gzip")], full("{}")),
        "/big" => ok(&[JSON], full(vec![b' '; 10_000])),
        "/announced-big" => ok(&[JSON], Announced.boxed()),
        "/endless" => ok(&[JSON], Endless { chunks: 10_000_000 }.boxed()),
        "/slow" => {
            // Never answers; the client's timeout ends the exchange.
            std::future::pending::<()>().await;
            ok(&[JSON], full("{}"))
        }
        "/hold" => {
            state.held.notify_one();
            state.release.notified().await;
            ok(&[JSON], full(DOCUMENT))
        }
        "/empty" => respond(StatusCode::NO_CONTENT, &[], full("")),
        "/not-modified" => respond(StatusCode::NOT_MODIFIED, &[], full("")),
        "/error" => respond(StatusCode::INTERNAL_SERVER_ERROR, &[JSON], full("{}")),
        "/to-doc" => redirect("/doc.json"),
        "/to-metadata" => redirect("https://169.254.169.254/latest/meta-data/"),
        "/to-http" => redirect(&format!("http://docs.example.test:{port}/doc.json")),
        "/to-nowhere" => respond(StatusCode::FOUND, &[], full("")),
        "/loop" => redirect("/loop"),
        _ => respond(StatusCode::NOT_FOUND, &[JSON], full("{}")),
    })
}

/// A body of 1 KiB chunks made as they are read: 10 GB in all, more than any test could
/// read within its timeout, so a client that stops at its limit is the only way to finish.
struct Endless {
    chunks: usize,
}

static CHUNK: [u8; 1024] = [b' '; 1024];

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.chunks == 0 {
            return Poll::Ready(None);
        }
        self.chunks -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK)))))
    }
}

/// A body that announces 10,000 bytes and never sends one: only a client that refuses the
/// Content-Length before reading finishes before its timeout.
struct Announced;

impl Body for Announced {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(10_000)
    }
}

/// A resolver with a fixed answer per name, counting its calls.
pub struct Names {
    answers: HashMap<String, Vec<IpAddr>>,
    pub calls: AtomicUsize,
}

impl Names {
    /// Every name of [`NAMES`] at 127.0.0.1.
    pub fn local() -> Self {
        Self::new(NAMES.iter().map(|n| (*n, vec![LOCALHOST])))
    }

    pub fn new<'a>(answers: impl IntoIterator<Item = (&'a str, Vec<IpAddr>)>) -> Self {
        Self {
            answers: answers
                .into_iter()
                .map(|(n, a)| (n.to_owned(), a))
                .collect(),
            calls: AtomicUsize::new(0),
        }
    }
}

impl Resolve for Names {
    fn resolve<'a>(&'a self, host: &'a str) -> Resolving<'a> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = self
            .answers
            .get(host)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such test name"));
        Box::pin(async move { answer })
    }
}

/// A resolver that gives its answers in turn, whatever the name: DNS rebinding.
pub struct Sequence {
    answers: Mutex<VecDeque<Vec<IpAddr>>>,
    pub calls: AtomicUsize,
}

impl Sequence {
    pub fn new(answers: impl IntoIterator<Item = Vec<IpAddr>>) -> Self {
        Self {
            answers: Mutex::new(answers.into_iter().collect()),
            calls: AtomicUsize::new(0),
        }
    }
}

impl Resolve for Sequence {
    fn resolve<'a>(&'a self, _host: &'a str) -> Resolving<'a> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = self
            .answers
            .lock()
            .expect("answers")
            .pop_front()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no answer left"));
        Box::pin(async move { answer })
    }
}
