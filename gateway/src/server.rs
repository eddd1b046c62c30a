//! The HTTP server under every listener: the public gateway, ForwardAuth and the metrics port.
//! `axum::serve` exposes none of the limits a server facing slow or hostile clients needs, so
//! connections are served here with hyper directly, one function for every listener.
//!
//! What a connection may do:
//! - send a complete request head within `header_timeout` of opening, and, for every later
//!   request on it, within `header_timeout` of its first byte. Otherwise it is closed without
//!   an answer (slowloris);
//! - stay open with nothing in flight for `idle_timeout`, then it is closed gracefully (HTTP/2:
//!   GOAWAY). This is kept apart from the header timeout on purpose: hyper's own HTTP/1 header
//!   timer also counts the idle time before a request, so using it as the header timeout would
//!   close keep-alive connections that a proxy in front still believes open, and the proxy's
//!   next POST on one of them would fail with a 502;
//! - have a request answered within `request_timeout` (408 after it), and its body read
//!   within `body_timeout`;
//! - HTTP/2: at most `h2_max_streams` streams at once, bounded header lists, keep-alive pings.
//!
//! At most `max_connections` are served at once. When every slot is taken, the idle
//! keep-alive connection of the network holding the most is closed to make room (an idle
//! connection costs its holder nothing, so holding slots takes requests in flight, each bounded
//! by the timeouts); with none idle, new connections wait in the kernel's backlog until one
//! closes. While more than half the slots are taken, one client network
//! ([`latchkey_network`]: an IPv4 address, an IPv6 /64) holds at most
//! `max_connections_per_network` of them; a connection past its network's share is answered
//! 503 with `Retry-After` and closed. Below half, the share does not apply, so that many users
//! behind one NAT are not refused on a quiet server. Trusted proxies carry many clients'
//! connections and have no share: their own per-client limits come first.
//!
//! A partial request head that arrives in the same read as the end of the previous request
//! is waited for up to the idle timeout, not the header timeout (what hyper has buffered is
//! not visible here). It holds a connection no longer than an idle keep-alive connection
//! may, and both count against the network's share.
//!
//! A response sent before its request body was read (the body was too large) is followed by
//! a lingering close: the write side is shut, and what the client still sends is read and
//! discarded, up to a bound, so that the client reads the answer instead of a reset.

use crate::forwarded::TrustedProxies;
use axum::Router;
use axum::extract::ConnectInfo;
use http::StatusCode;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use latchkey_network::Network;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceBuilder;
use tower::ServiceExt;
use tower_http::timeout::{RequestBodyDeadline, RequestBodyDeadlineLayer, Timeout, TimeoutLayer};

/// The router with the request's and its body's deadlines.
type Timed = Timeout<RequestBodyDeadline<Router>>;

/// The largest request head, on HTTP/1 (hyper's read buffer) and HTTP/2 (header list).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// HTTP/2 keep-alive pings: a peer that does not answer within this is gone.
const H2_KEEPALIVE: Duration = Duration::from_secs(20);
/// At most this much of an unread body is read and discarded in a lingering close.
const LINGER_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// The limits of one HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// To send a complete request head.
    pub header_timeout: Duration,
    /// With nothing in flight, before the connection is closed.
    pub idle_timeout: Duration,
    /// To answer a request, reading its body included (408 after it).
    pub request_timeout: Duration,
    /// To receive a request body.
    pub body_timeout: Duration,
    /// Connections served at once.
    pub max_connections: u32,
    /// Connections served at once from one client network, unless it is a trusted proxy,
    /// while more than half of `max_connections` are taken; 0 for no share.
    pub max_connections_per_network: u32,
    /// HTTP/2 streams at once, per connection.
    pub h2_max_streams: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_network: 128,
            h2_max_streams: 100,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown`, then stops accepting,
/// lets in-flight requests finish (each within its request timeout), and returns once every
/// connection is closed. Handlers see the peer as `ConnectInfo<SocketAddr>`. Peers in
/// `proxies` have no per-network share.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    limits: HttpLimits,
    proxies: TrustedProxies,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Around the router rather than through `Router::layer`, which would box both around
    // every route and clone the boxes for every request.
    let router = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(RequestBodyDeadlineLayer::new(limits.body_timeout))
        .service(router);
    let builder = Arc::new(builder(&limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let shares = Arc::new(Shares {
        per_network: limits.max_connections_per_network,
        proxies,
        held: Mutex::default(),
    });
    let registry = Arc::new(Registry::default());
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_AT_ONCE));
    let half = limits.max_connections as usize / 2;
    tokio::pin!(shutdown);
    loop {
        // The connection first, then its slot: when every slot is taken, an idle connection
        // is asked to make room for it; with none idle, it waits for a slot (and those after
        // it wait in the kernel's backlog) rather than being left unserved.
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Its network's share first: a connection that will be refused must not cost
        // another client its idle connection. Busy: this one would take a slot past half.
        let busy = slots.available_permits() <= half;
        let Ok(share) = shares.take(peer.ip(), busy) else {
            refuse(stream, &refusals);
            continue;
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                registry.evict_one_idle();
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        // Small responses go out at once, not after a delayed ACK.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let activity = Arc::new(Activity::new());
        let registered = registry.add(Network::of(peer.ip()), activity.clone());
        let connection = Connection {
            builder: builder.clone(),
            router: router.clone(),
            limits,
            activity,
        };
        tokio::spawn(async move {
            connection.run(stream, peer).await;
            drop(registered);
            drop(share);
            drop(slot);
        });
    }
    drop(listener);
    registry.stop_all();
    // Every connection holds a slot until it has closed.
    let _ = slots.acquire_many(limits.max_connections).await;
    Ok(())
}

fn builder(limits: &HttpLimits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // A backstop only: hyper's timer runs from the end of the previous response, idle
        // time included, so the header timeout proper is the connection's watchdog (below).
        .header_read_timeout(limits.idle_timeout + limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .max_pending_accept_reset_streams(Some(20))
        .keep_alive_interval(Some(H2_KEEPALIVE))
        .keep_alive_timeout(H2_KEEPALIVE);
    builder
}

/// Connections past their network's share answered at once (the rest are only closed), so
/// that a flood of them holds few sockets.
const MAX_REFUSALS_AT_ONCE: usize = 64;
/// How long a refused connection is given to read its answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// What a connection past its network's share reads before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: 62\r\n\r\ntoo many connections from your network; retry in a few seconds";

/// Answers a connection past its network's share with a 503, and closes it lingering (as
/// [`Io::poll_shutdown`] does), so that the client reads why instead of a reset. At most
/// [`MAX_REFUSALS_AT_ONCE`] at once, each for [`REFUSAL_LINGER`] at most; past that, the
/// connection is only closed. Counted, and logged at most once a minute.
fn refuse(mut stream: TcpStream, refusals: &Arc<Semaphore>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    metrics::counter!("latchkey_http_connections_refused_total", "reason" => "network_share")
        .increment(1);
    static LAST_WARNED: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST_WARNED.swap(now, Ordering::Relaxed) + 60 <= now {
        tracing::warn!(
            "a client network holds its share of connections (LATCHKEY_HTTP_MAX_CONNECTIONS_PER_NETWORK) while the listener is busy: its new connections are refused; see latchkey_http_connections_refused_total"
        );
    }
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            stream.write_all(REFUSAL).await?;
            stream.shutdown().await?;
            let mut scratch = [0u8; 4096];
            let mut drained = 0usize;
            while drained < 64 * 1024 {
                match stream.read(&mut scratch).await? {
                    0 => break,
                    n => drained += n,
                }
            }
            io::Result::Ok(())
        })
        .await;
        drop(permit);
    });
}

/// Every connection being served, so that an idle one can be closed to make room.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    live: Mutex<HashMap<u64, (Network, Arc<Activity>)>>,
}

/// A connection's place in the [`Registry`]; given back when dropped.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Registry {
    fn add(self: &Arc<Self>, network: Network, activity: Arc<Activity>) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, (network, activity));
        Registered {
            registry: self.clone(),
            id,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Network, Arc<Activity>)>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks one idle keep-alive connection to close: one of the network holding the most
    /// connections, the longest idle of those. Connections that have not finished a request
    /// yet are never chosen: they are due within the header timeout, and may be a client
    /// whose first request is on its way.
    fn evict_one_idle(&self) {
        let live = self.lock();
        let mut per_network: HashMap<Network, usize> = HashMap::new();
        for (network, _) in live.values() {
            *per_network.entry(*network).or_default() += 1;
        }
        let victim = live
            .values()
            .filter(|(_, a)| a.is_idle())
            .max_by_key(|(network, a)| {
                (
                    per_network.get(network).copied().unwrap_or(0),
                    std::cmp::Reverse(a.last_done.load(Ordering::Relaxed)),
                )
            });
        if let Some((_, activity)) = victim {
            activity.evicting.store(true, Ordering::Relaxed);
            activity.attention.notify_one();
            metrics::counter!("latchkey_http_connections_evicted_total").increment(1);
        }
    }
}

impl Registry {
    /// Asks every connection to close gracefully: the server stops.
    fn stop_all(&self) {
        for (_, activity) in self.lock().values() {
            activity.attention.notify_one();
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// The connections each client network holds.
struct Shares {
    per_network: u32,
    proxies: TrustedProxies,
    /// Only networks holding a connection are here, so it holds at most `max_connections`.
    held: Mutex<HashMap<Network, u32>>,
}

/// A connection's place in its network's share; given back when dropped.
struct Share {
    shares: Arc<Shares>,
    network: Network,
}

impl Shares {
    /// A place for a connection from `ip`: `Ok(None)` when it has no share to count against
    /// (no share is set, or the peer is a trusted proxy), `Err` when its network's is full
    /// and the listener is `busy`.
    fn take(self: &Arc<Self>, ip: IpAddr, busy: bool) -> Result<Option<Share>, ()> {
        if self.per_network == 0 || self.proxies.contains(ip) {
            return Ok(None);
        }
        let network = Network::of(ip);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(network).or_default();
        if busy && *n >= self.per_network {
            if *n == 0 {
                held.remove(&network);
            }
            return Err(());
        }
        *n += 1;
        Ok(Some(Share {
            shares: self.clone(),
            network,
        }))
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.shares.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.network) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.network);
            }
        }
    }
}

/// As hyper's server did: a connection error is the client's and is skipped; anything else
/// (most often out of file descriptors) is logged, and accepting pauses for a second.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One connection's share of the server.
struct Connection {
    builder: Arc<Builder<TokioExecutor>>,
    router: Timed,
    limits: HttpLimits,
    activity: Arc<Activity>,
}

/// What the watchdog decides on waking.
enum Verdict {
    /// Look again after this long.
    Wait(Duration),
    /// A request head is late: close without an answer.
    Abort,
    /// Idle for too long: close gracefully.
    Close,
}

/// What a connection has been doing, shared by its requests, its socket and its watchdog.
/// Times are milliseconds since the connection opened.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// When the first byte of a request head arrived with nothing in flight; [`NONE`] when
    /// no head is being received.
    head_started: AtomicU64,
    /// When the last request in flight finished.
    last_done: AtomicU64,
    /// An HTTP/2 connection: bytes with no request in flight are pings and settings, not the
    /// start of a request head.
    h2: AtomicBool,
    /// Asks the connection to close gracefully: the server stops, or (with `evicting`) room
    /// is needed for a new connection.
    attention: Notify,
    /// Already asked: not chosen again.
    evicting: AtomicBool,
    /// Closed while idle (to make room, or after the idle timeout): no request body can be
    /// unread, so the close does not linger.
    idle_close: AtomicBool,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            last_done: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            attention: Notify::new(),
            evicting: AtomicBool::new(false),
            idle_close: AtomicBool::new(false),
        }
    }

    /// Idle between requests: at least one finished, none in flight, no head arriving.
    fn is_idle(&self) -> bool {
        self.requests.load(Ordering::Relaxed) > 0
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == NONE
            && !self.evicting.load(Ordering::Relaxed)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    /// Bytes arrived from the client.
    fn on_bytes(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && !self.h2.load(Ordering::Relaxed)
            && self.head_started.load(Ordering::Relaxed) == NONE
        {
            self.head_started.store(self.now(), Ordering::Relaxed);
        }
    }

    /// A request head is complete: the request goes to the router.
    fn on_request(self: &Arc<Self>, version: http::Version) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(NONE, Ordering::Relaxed);
        if version == http::Version::HTTP_2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        InFlight(self.clone())
    }

    fn verdict(&self, limits: &HttpLimits) -> Verdict {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NONE - 1);
        let now = self.now();
        let due = |at: u64, on_time: Verdict| {
            if now >= at {
                on_time
            } else {
                Verdict::Wait(Duration::from_millis(at - now))
            }
        };
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            // The request timeout bounds what is in flight.
            return Verdict::Wait(limits.header_timeout);
        }
        // The first request's head is due a header timeout after the connection opened,
        // whenever its first byte came: waiting before sending is no better than sending slowly.
        if self.requests.load(Ordering::Relaxed) == 0 {
            return due(ms(limits.header_timeout), Verdict::Abort);
        }
        let started = self.head_started.load(Ordering::Relaxed);
        if started != NONE {
            return due(
                started.saturating_add(ms(limits.header_timeout)),
                Verdict::Abort,
            );
        }
        // Idle: closed at the idle timeout, and looked at again at least every header
        // timeout, so that a head starting meanwhile is found in time without waking the
        // watchdog on every request.
        let last = self.last_done.load(Ordering::Relaxed);
        match due(last.saturating_add(ms(limits.idle_timeout)), Verdict::Close) {
            Verdict::Wait(d) => Verdict::Wait(d.min(limits.header_timeout)),
            close => close,
        }
    }
}

/// A request in flight; its end is recorded when it is dropped, answered or abandoned.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.last_done.store(self.0.now(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection {
    async fn run(self, stream: TcpStream, peer: SocketAddr) {
        let Connection {
            builder,
            router,
            limits,
            activity,
        } = self;
        let io = TokioIo::new(Io {
            stream,
            activity: activity.clone(),
            linger: None,
            linger_for: limits.body_timeout,
        });
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            let in_flight = requests.on_request(req.version());
            req.extensions_mut().insert(ConnectInfo(peer));
            let answer = router.clone().oneshot(req);
            async move {
                let res = answer.await;
                drop(in_flight);
                res
            }
        });
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let watchdog = tokio::time::sleep(limits.header_timeout);
        tokio::pin!(watchdog);
        // Made once, not on every wake of this task: registering a waiter takes a lock.
        let attention = activity.attention.notified();
        tokio::pin!(attention);
        let mut closing = false;
        loop {
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = watchdog.as_mut() => {
                    if closing {
                        // A graceful close that outlived a request's allowance and a
                        // lingering close's.
                        return;
                    }
                    match activity.verdict(&limits) {
                        Verdict::Wait(d) => watchdog.as_mut().reset(Instant::now() + d),
                        Verdict::Abort => {
                            tracing::debug!(%peer, "request head not received in time; closing");
                            return;
                        }
                        Verdict::Close => {
                            activity.idle_close.store(true, Ordering::Relaxed);
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                            watchdog
                                .as_mut()
                                .reset(Instant::now() + limits.request_timeout + limits.body_timeout);
                        }
                    }
                }
                // The server stops, or room is needed for a new connection and this one
                // is idle.
                () = attention.as_mut(), if !closing => {
                    if activity.evicting.load(Ordering::Relaxed) {
                        activity.idle_close.store(true, Ordering::Relaxed);
                    }
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    watchdog
                        .as_mut()
                        .reset(Instant::now() + limits.request_timeout + limits.body_timeout);
                }
            }
        }
    }
}

/// The connection's socket: it tells [`Activity`] when bytes arrive, and closes lingering.
struct Io {
    stream: TcpStream,
    activity: Arc<Activity>,
    /// Set once the write side is shut: the bound on draining what the client still sends.
    linger: Option<Linger>,
    linger_for: Duration,
}

struct Linger {
    until: Pin<Box<Sleep>>,
    drained: u64,
}

impl AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.on_bytes();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    /// A lingering close. Closing a socket with unread data in it makes the kernel send a
    /// reset, and a reset can destroy the answer before the client has read it: a client
    /// still sending a body the server refused would see EPIPE, not the 413. So the write
    /// side is shut first (the client reads the answer, then end of file), and what the client
    /// still sends is read and discarded until it closes, or the bounds are reached.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.activity.idle_close.load(Ordering::Relaxed) {
            return Pin::new(&mut this.stream).poll_shutdown(cx);
        }
        if this.linger.is_none() {
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            this.linger = Some(Linger {
                until: Box::pin(tokio::time::sleep(this.linger_for)),
                drained: 0,
            });
        }
        let Some(linger) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8192];
        loop {
            if linger.drained >= LINGER_MAX_BYTES || linger.until.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => linger.drained += buf.filled().len() as u64,
                // The client is gone: nothing left to protect.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
