//! The fetcher: one GET, from URL to bytes, under a [`FetchPolicy`].
//!
//! Each hop (the URL, then each redirect that the policy follows) goes through the same
//! steps, in this order:
//! 1. the URL: scheme, no userinfo, no fragment, and an IP literal checked as an address;
//! 2. the limits of [`Limits`], before anything touches the network;
//! 3. the name resolved once, and every address checked ([`crate::address::check`]);
//! 4. a TCP connection opened here, to one of those checked addresses and nothing else;
//! 5. TLS with the crate's roots, then HTTP/1.1 over hyper's client connection;
//! 6. the status, the content type and the size, the body read up to the limit.
//!
//! There is no connection pool and no proxy: each hop makes its own connection, so every
//! connection follows a check. The policy's total timeout covers all of it.

use crate::address;
use crate::error::{BuildError, FetchError, RedirectProblem, UrlProblem, sanitize};
use crate::freshness::{CacheHeaders, Freshness};
use crate::limits::{Limiter, Limits};
use crate::policy::{FetchPolicy, Targets, essence};
use crate::resolve::{Resolve, SystemResolver};
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use url::{Host, Position, Url};

/// Addresses of one name tried in turn before giving up.
const MAX_CONNECT_ATTEMPTS: usize = 3;
/// One connection attempt; the total timeout still bounds them all.
const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// hyper's read buffer, which bounds the status line and headers of a response.
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// A fetched document.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL the body came from: the one asked for, or the last redirect's.
    pub url: Url,
    /// The media type, lower case, without parameters.
    pub content_type: String,
    pub body: Bytes,
    pub cache: CacheHeaders,
}

impl Fetched {
    /// How long the document stays fresh, received at `now` (see [`CacheHeaders::freshness`]).
    pub fn freshness(&self, now: SystemTime) -> Freshness {
        self.cache.freshness(now)
    }
}

/// The one HTTP client for URLs on the internet. Cheap to clone; clones share limits.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

struct Inner {
    resolver: Arc<dyn Resolve>,
    tls: tokio_rustls::TlsConnector,
    allow_loopback: bool,
    user_agent: HeaderValue,
    public: Limiter,
    any: Limiter,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("allow_loopback", &self.inner.allow_loopback)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Fetcher`]. Defaults: the system resolver, the webpki roots, loopback refused,
/// [`Limits::default`].
pub struct FetcherBuilder {
    resolver: Arc<dyn Resolve>,
    extra_roots: Vec<CertificateDer<'static>>,
    allow_loopback: bool,
    limits: Limits,
    user_agent: String,
}

impl FetcherBuilder {
    /// Resolve names with `resolver` (tests answer for names with their own).
    pub fn resolver(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.resolver = resolver;
        self
    }

    /// The development switch: let 127.0.0.0/8 and `::1` through for public targets, for
    /// local testing. Production must refuse to set it.
    pub fn allow_loopback(mut self, allow: bool) -> Self {
        self.allow_loopback = allow;
        self
    }

    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Trust the certificates of `pem` as roots, in addition to the webpki roots (internal
    /// CAs, tests).
    pub fn extra_roots_pem(mut self, pem: &[u8]) -> Result<Self, BuildError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(BuildError::CaPem)?;
        if certs.is_empty() {
            return Err(BuildError::NoCertificate);
        }
        self.extra_roots.extend(certs);
        Ok(self)
    }

    /// [`FetcherBuilder::extra_roots_pem`] from a file (`LATCHKEY_OUTBOUND_CA_FILE`).
    pub fn extra_roots_file(self, path: impl AsRef<Path>) -> Result<Self, BuildError> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|source| BuildError::CaFile {
            path: path.to_owned(),
            source,
        })?;
        self.extra_roots_pem(&pem)
    }

    pub fn build(self) -> Result<Fetcher, BuildError> {
        self.limits.validate().map_err(BuildError::Limits)?;
        let user_agent =
            HeaderValue::from_str(&self.user_agent).map_err(|_| BuildError::UserAgent)?;
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in self.extra_roots {
            roots.add(cert).map_err(BuildError::CaRoot)?;
        }
        // ring, passed here rather than taken from a process default: the workspace's rustls
        // is built with ring only (STACK.md, "TLS backends"), and nothing needs installing.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(BuildError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let now = Instant::now();
        Ok(Fetcher {
            inner: Arc::new(Inner {
                resolver: self.resolver,
                tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
                allow_loopback: self.allow_loopback,
                user_agent,
                public: Limiter::new(self.limits.clone(), now),
                any: Limiter::new(self.limits, now),
            }),
        })
    }
}

/// Aborts the task that drives a connection when the fetch is done or dropped.
struct ConnectionTask(JoinHandle<()>);

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Fetcher {
    pub fn builder() -> FetcherBuilder {
        FetcherBuilder {
            resolver: Arc::new(SystemResolver),
            extra_roots: Vec::new(),
            allow_loopback: false,
            limits: Limits::default(),
            user_agent: concat!("latchkey/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// Whether the development switch is on.
    pub fn allows_loopback(&self) -> bool {
        self.inner.allow_loopback
    }

    /// GET `url` under `policy`: a 200 response of an accepted content type, its body within
    /// `policy.max_bytes`, all within `policy.total_timeout`.
    pub async fn fetch(&self, url: &Url, policy: &FetchPolicy) -> Result<Fetched, FetchError> {
        policy.validate()?;
        tokio::time::timeout(policy.total_timeout, self.follow(url, policy))
            .await
            .unwrap_or(Err(FetchError::Timeout(policy.total_timeout)))
    }

    async fn follow(&self, url: &Url, policy: &FetchPolicy) -> Result<Fetched, FetchError> {
        let mut url = url.clone();
        let mut redirects = 0u8;
        loop {
            self.check_url(&url, policy.targets)?;
            let limiter = match policy.targets {
                Targets::Public => &self.inner.public,
                Targets::Any => &self.inner.any,
            };
            let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
            let _permit = limiter
                .acquire(&host, Instant::now())
                .map_err(FetchError::TooManyRequests)?;
            let (response, _connection) = self.exchange(&url, policy).await?;
            let status = response.status();
            if status == StatusCode::OK {
                return read(url, response, policy).await;
            }
            if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
                return Err(FetchError::Status(status.as_u16()));
            }
            if policy.max_redirects == 0 {
                return Err(FetchError::Redirect(RedirectProblem::NotFollowed(
                    status.as_u16(),
                )));
            }
            if redirects >= policy.max_redirects {
                return Err(FetchError::Redirect(RedirectProblem::TooMany(
                    policy.max_redirects,
                )));
            }
            // The next hop is checked from the start, as the first URL was.
            url = response
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok())
                .ok_or(FetchError::Redirect(RedirectProblem::BadLocation))?;
            redirects += 1;
        }
    }

    fn check_url(&self, url: &Url, targets: Targets) -> Result<(), FetchError> {
        match (url.scheme(), targets) {
            ("https", _) | ("http", Targets::Any) => {}
            (_, Targets::Public) => return Err(FetchError::NotHttps),
            (_, Targets::Any) => return Err(FetchError::UnsupportedScheme),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::InvalidUrl(UrlProblem::Userinfo));
        }
        if url.fragment().is_some() {
            return Err(FetchError::InvalidUrl(UrlProblem::Fragment));
        }
        match url.host() {
            None => Err(FetchError::InvalidUrl(UrlProblem::NoHost)),
            Some(Host::Domain(_)) => Ok(()),
            Some(Host::Ipv4(a)) => self.check_address(a.into(), targets),
            Some(Host::Ipv6(a)) => self.check_address(a.into(), targets),
        }
    }

    fn check_address(&self, address: IpAddr, targets: Targets) -> Result<(), FetchError> {
        address::check(address, targets, self.inner.allow_loopback)
            .map_err(|refusal| FetchError::RefusedAddress { address, refusal })
    }

    /// One request and its response head, over a new connection to a checked address.
    async fn exchange(
        &self,
        url: &Url,
        policy: &FetchPolicy,
    ) -> Result<(Response<Incoming>, ConnectionTask), FetchError> {
        let no_host = || FetchError::InvalidUrl(UrlProblem::NoHost);
        let port = url.port_or_known_default().ok_or_else(no_host)?;
        let (addresses, server_name) = match url.host().ok_or_else(no_host)? {
            Host::Domain(name) => {
                let server_name = ServerName::try_from(name.to_owned())
                    .map_err(|_| FetchError::InvalidUrl(UrlProblem::ServerName))?;
                (self.resolve(name, policy.targets).await?, server_name)
            }
            Host::Ipv4(a) => (vec![a.into()], ServerName::IpAddress(a.into())),
            Host::Ipv6(a) => (vec![a.into()], ServerName::IpAddress(a.into())),
        };
        // Belt and braces: the addresses were checked where they were produced; this is the
        // last line before a socket is opened.
        for address in &addresses {
            self.check_address(*address, policy.targets)?;
        }
        let request = self.request(url, policy)?;
        let tcp = connect(&addresses, port).await?;
        if url.scheme() == "https" {
            let tls = self
                .inner
                .tls
                .connect(server_name, tcp)
                .await
                .map_err(tls_error)?;
            send(tls, request).await
        } else {
            send(tcp, request).await
        }
    }

    /// The addresses of `name`, every one of them checked. One refused address refuses the
    /// whole answer: a name that mixes public and private addresses is not one to trust
    /// with any of them.
    async fn resolve(&self, name: &str, targets: Targets) -> Result<Vec<IpAddr>, FetchError> {
        let addresses = self
            .inner
            .resolver
            .resolve(name)
            .await
            .map_err(FetchError::Resolve)?;
        if addresses.is_empty() {
            return Err(FetchError::NoAddress);
        }
        for address in &addresses {
            self.check_address(*address, targets)?;
        }
        Ok(addresses)
    }

    fn request(
        &self,
        url: &Url,
        policy: &FetchPolicy,
    ) -> Result<Request<Empty<Bytes>>, FetchError> {
        let accept = HeaderValue::from_str(&policy.accept.header_value())
            .map_err(|e| FetchError::Http(e.into()))?;
        Request::get(&url[Position::BeforePath..Position::AfterQuery])
            .header(
                header::HOST,
                &url[Position::BeforeHost..Position::AfterPort],
            )
            .header(header::ACCEPT, accept)
            .header(header::USER_AGENT, self.inner.user_agent.clone())
            .body(Empty::new())
            .map_err(|e| FetchError::Http(e.into()))
    }
}

/// A TCP connection to the first of `addresses` that answers.
async fn connect(addresses: &[IpAddr], port: u16) -> Result<TcpStream, FetchError> {
    let mut last = None;
    for address in addresses.iter().take(MAX_CONNECT_ATTEMPTS) {
        let attempt = TcpStream::connect(SocketAddr::new(*address, port));
        match tokio::time::timeout(CONNECT_ATTEMPT_TIMEOUT, attempt).await {
            Ok(Ok(stream)) => {
                // Only a latency hint; a failure to set it changes nothing that matters.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(io::Error::from(io::ErrorKind::TimedOut)),
        }
    }
    Err(FetchError::Connect(last.unwrap_or_else(|| {
        io::Error::from(io::ErrorKind::AddrNotAvailable)
    })))
}

/// tokio-rustls reports handshake failures as I/O errors that wrap a `rustls::Error`.
fn tls_error(e: io::Error) -> FetchError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => FetchError::Tls(tls.clone()),
        None => FetchError::Connect(e),
    }
}

async fn send<S>(
    io: S,
    request: Request<Empty<Bytes>>,
) -> Result<(Response<Incoming>, ConnectionTask), FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD_BYTES)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| FetchError::Http(e.into()))?;
    let task = ConnectionTask(tokio::spawn(async move {
        // Its errors surface through the request and the body.
        let _ = connection.await;
    }));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| FetchError::Http(e.into()))?;
    Ok((response, task))
}

/// Checks the head of a 200 response and reads its body within the limit.
async fn read(
    url: Url,
    response: Response<Incoming>,
    policy: &FetchPolicy,
) -> Result<Fetched, FetchError> {
    let (parts, mut body) = response.into_parts();
    let headers = &parts.headers;
    let received = headers.get(header::CONTENT_TYPE);
    let Some(content_type) = received
        .and_then(|v| v.to_str().ok())
        .filter(|ct| policy.accept.accepts(ct))
    else {
        return Err(FetchError::ContentType {
            received: received.map(|v| sanitize(v.as_bytes())),
        });
    };
    if headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        return Err(FetchError::ContentEncoding);
    }
    let too_large = FetchError::TooLarge {
        limit: policy.max_bytes,
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > policy.max_bytes as u64) {
        return Err(too_large);
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FetchError::Http(e.into()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > policy.max_bytes {
                return Err(too_large);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Fetched {
        url,
        content_type: essence(content_type),
        body: buf.freeze(),
        cache: cache_headers(headers),
    })
}

fn cache_headers(headers: &HeaderMap) -> CacheHeaders {
    let one = |name: HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let cache_control: Vec<&str> = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    CacheHeaders {
        cache_control: (!cache_control.is_empty()).then(|| cache_control.join(", ")),
        expires: one(header::EXPIRES),
        age: one(header::AGE),
        date: one(header::DATE),
        etag: one(header::ETAG),
        last_modified: one(header::LAST_MODIFIED),
    }
}
