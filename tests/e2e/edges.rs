//! The edges a client on the internet, or a neighbour on the cluster network, can push on:
//! who the client is behind proxies, ForwardAuth off the public port, slow and oversized
//! requests, and what the public surfaces give away. Network timeouts here are real time,
//! set short in each test, and every wait is bounded.

use crate::common::*;
use latchkey::config::{ForwardedHeader, TrustedProxies};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn proxies(list: &str) -> TrustedProxies {
    TrustedProxies::parse(list).expect("ranges")
}

/// A random address in 10.0.0.0/8, so runs sharing Redis do not share counters.
fn random_v4() -> String {
    let n = uuid::Uuid::new_v4().as_u128();
    format!(
        "10.{}.{}.{}",
        n % 250 + 1,
        (n >> 8) % 250 + 1,
        (n >> 16) % 250 + 1
    )
}

/// The rate-limit window (minute) now: a run that crosses one is repeated, not judged.
fn window() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 60)
        .unwrap_or(0)
}

async fn register(app: &TestApp, headers: &[(&str, String)]) -> u16 {
    let mut req = http().post(app.url("/register")).json(&json!({
        "redirect_uris": ["http://127.0.0.1:7777/cb"],
        "token_endpoint_auth_method": "none",
    }));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.expect("POST /register").status().as_u16()
}

/// Sends `count` registrations, each with the headers `headers(i)` gives; returns how many
/// were created and how many refused with 429, or `None` if a window boundary fell inside.
async fn registrations(
    app: &TestApp,
    count: usize,
    headers: impl Fn(usize) -> Vec<(&'static str, String)>,
) -> Option<(usize, usize)> {
    let start = window();
    let (mut created, mut limited) = (0, 0);
    for i in 0..count {
        match register(app, &headers(i)).await {
            201 => created += 1,
            429 => limited += 1,
            other => panic!("registration {i}: unexpected {other}"),
        }
    }
    (window() == start).then_some((created, limited))
}

#[tokio::test]
async fn a_spoofed_left_most_forwarded_for_cannot_escape_the_registration_limit() {
    let app = spawn_app_with(|s| {
        // The limiter is shared through Redis when the suite has one.
        s.redis_url = test_redis_url();
        s.rate_limit_register_per_min = 20;
        // The test client stands for the proxy: it appends the client it saw.
        s.trusted_proxies = proxies("127.0.0.1/32");
    })
    .await;
    for _ in 0..2 {
        let client = random_v4();
        let spoofed = |i: usize| {
            vec![(
                "x-forwarded-for",
                format!("203.0.113.{}, {client}", i % 250 + 1),
            )]
        };
        if let Some((created, limited)) = registrations(&app, 25, spoofed).await {
            assert_eq!(
                (created, limited),
                (20, 5),
                "the client is the proxy's entry, not what it wrote to the left"
            );
            return;
        }
    }
    panic!("two runs crossed a minute boundary");
}

#[tokio::test]
async fn forwarding_headers_from_a_peer_that_is_not_a_trusted_proxy_are_ignored() {
    for _ in 0..2 {
        // In memory, and a fresh app per run: the peer (127.0.0.1) is the same for every run
        // and every test, so neither Redis nor a window that a run crossed may carry counts.
        let app = spawn_app_with(|s| {
            s.rate_limit_register_per_min = 20;
            s.trusted_proxies = proxies("10.0.0.0/8");
        })
        .await;
        let forged = |_: usize| vec![("x-forwarded-for", random_v4())];
        if let Some(counts) = registrations(&app, 25, forged).await {
            assert_eq!(counts, (20, 5), "the peer is the client");
            return;
        }
    }
    panic!("two runs crossed a minute boundary");
}

#[tokio::test]
async fn ipv6_clients_share_one_limit_per_64() {
    let app = spawn_app_with(|s| {
        s.rate_limit_register_per_min = 3;
        s.trusted_proxies = proxies("127.0.0.1");
    })
    .await;
    for _ in 0..2 {
        let prefix = format!("2001:db8:{:x}:1", uuid::Uuid::new_v4().as_u128() as u16);
        let same_64 = |i: usize| {
            vec![(
                "x-forwarded-for",
                format!("{prefix}:{:x}::{:x}", i + 1, i + 7),
            )]
        };
        let Some(counts) = registrations(&app, 5, same_64).await else {
            continue;
        };
        assert_eq!(counts, (3, 2), "one /64, one count");
        let next_64 = format!("{prefix}1::1");
        assert_eq!(
            register(&app, &[("x-forwarded-for", next_64)]).await,
            201,
            "another /64 counts apart"
        );
        return;
    }
    panic!("two runs crossed a minute boundary");
}

#[tokio::test]
async fn rfc_7239_forwarded_names_the_client_when_the_proxies_write_it() {
    let app = spawn_app_with(|s| {
        s.rate_limit_register_per_min = 3;
        s.trusted_proxies = proxies("127.0.0.1");
        s.forwarded_header = ForwardedHeader::Forwarded;
    })
    .await;
    for _ in 0..2 {
        let client = random_v4();
        let headers = |i: usize| {
            vec![
                // What the client wrote: a different address each time, in both headers.
                ("x-forwarded-for", random_v4()),
                (
                    "forwarded",
                    format!(
                        "for=198.51.100.{};proto=https, for=\"{client}:4711\"",
                        i + 1
                    ),
                ),
            ]
        };
        if let Some(counts) = registrations(&app, 5, headers).await {
            assert_eq!(
                counts,
                (3, 2),
                "the right-most untrusted `for` is the client"
            );
            return;
        }
    }
    panic!("two runs crossed a minute boundary");
}

#[tokio::test]
async fn forward_auth_is_served_only_on_its_own_listener_and_is_rate_limited() {
    // A fresh app per run: the count is the peer's, and a run that crossed a window leaves
    // some of it in the next.
    for _ in 0..2 {
        let app = spawn_app_with(|s| {
            s.forward_auth_audience = Some(RESOURCE.into());
            s.rate_limit_forward_auth_per_min = 3;
        })
        .await;
        let (id, secret) = app.operator_client(&[RESOURCE], None).await;
        let token = app.client_credentials_token((&id, &secret)).await;
        let verify = |url: String| {
            http()
                .get(url)
                .header("authorization", format!("Bearer {token}"))
                .send()
        };
        let start = window();
        let public = verify(app.url("/verify")).await.expect("get");
        assert_eq!(public.status(), 404, "no token oracle on the public port");
        assert_ne!(app.forward_auth, app.base, "a listener of its own");
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let res = verify(app.forward_auth_url("/verify")).await.expect("get");
            if res.status() == 200 {
                assert_eq!(res.headers()["x-auth-client-id"], id.as_str());
            }
            if res.status() == 429 {
                assert!(res.headers().contains_key("retry-after"));
            }
            statuses.push(res.status().as_u16());
        }
        if window() != start {
            continue;
        }
        // The public port's 404 had no route, so it counted for nothing: three pass, the
        // fourth trips.
        assert_eq!(statuses, [200, 200, 200, 429]);
        return;
    }
    panic!("two runs crossed a minute boundary");
}

/// Opens a connection, writes `sent`, and reads until the server closes it; returns how
/// long that took, or `None` if it was still open after `bound`.
async fn closed_after(addr: SocketAddr, sent: &'static [u8], bound: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    if !sent.is_empty() {
        stream.write_all(sent).await.expect("write");
    }
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                // HTTP/2 answers the preface with its settings before closing.
                Ok(n) if n > 0 => continue,
                _ => return,
            }
        }
    })
    .await;
    closed.ok().map(|()| start.elapsed())
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .expect("host:port")
}

#[tokio::test]
async fn half_sent_requests_are_closed_within_the_header_timeout_on_every_listener() {
    let app = spawn_app_with(|s| {
        s.http_header_timeout_ms = 1000;
        s.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let running = app.running.as_ref().expect("running");
    let listeners = [
        ("gateway", addr_of(&app.base)),
        ("forward auth", addr_of(&app.forward_auth)),
        ("metrics", running.metrics_addr.expect("metrics port")),
    ];
    let sends: [(&[u8], &str); 5] = [
        (b"", "nothing sent"),
        (b"P", "one byte: not yet HTTP/1 or HTTP/2"),
        (
            b"POST /token HTTP/1.1\r\nHost: x\r\n",
            "a head without its end",
        ),
        (
            b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ",
            "a header cut short",
        ),
        (
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "an HTTP/2 preface and no request",
        ),
    ];
    let mut checks = Vec::new();
    for (listener, addr) in listeners {
        for (sent, what) in sends {
            checks.push(async move {
                (
                    listener,
                    what,
                    closed_after(addr, sent, Duration::from_secs(5)).await,
                )
            });
        }
    }
    for (listener, what, closed) in futures::future::join_all(checks).await {
        let took = closed.unwrap_or_else(|| panic!("{listener}, {what}: still open after 5 s"));
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
            "{listener}, {what}: closed after {took:?}, not at the 1 s header timeout"
        );
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body from `stream`.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before a whole response");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().expect("length"))
                    })
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    return;
                }
            }
        }
    })
    .await
    .expect("a response within 5 s");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_slow_but_timely_request_is_served_and_keep_alive_outlasts_the_header_timeout() {
    let app = spawn_app_with(|s| s.http_header_timeout_ms = 1000).await;
    let mut stream = TcpStream::connect(addr_of(&app.base))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // Within the header timeout: pacing, not waiting for anything to expire.
    tokio::time::sleep(Duration::from_millis(400)).await;
    stream.write_all(b"\r\n").await.expect("write");
    let first = read_response(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Idle, with nothing in flight, for longer than the header timeout: a proxy's pooled
    // connection must still be usable (the idle timeout is another, longer one).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let second = read_response(&mut stream).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let app = spawn_app_with(|s| {
        s.http_header_timeout_ms = 1000;
        s.http_max_connections = 2;
        s.http_max_connections_per_network = Some(0);
    })
    .await;
    let addr = addr_of(&app.base);
    // Two connections that send nothing hold both slots until the header timeout.
    let _a = TcpStream::connect(addr).await.expect("connect");
    let _b = TcpStream::connect(addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let mut third = TcpStream::connect(addr)
        .await
        .expect("connect: the backlog takes it");
    third
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let res = read_response(&mut third).await;
    let took = start.elapsed();
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(
        took >= Duration::from_millis(700),
        "served after {took:?}: the cap of 2 did not hold it back"
    );
}

/// A connection to `addr` from the loopback address `from`.
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(from.parse().expect("an address"), 0))
        .expect("bind");
    socket.connect(addr).await.expect("connect")
}

/// What a connection from `from` gets for one request: the status line, or `None` when the
/// server closed it without an answer.
async fn status_from(from: &str, addr: SocketAddr) -> Option<String> {
    let mut stream = connect_from(from, addr).await;
    let _ = stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while !got.windows(2).any(|w| w == b"\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got);
    text.lines().next().map(str::to_owned)
}

#[tokio::test]
async fn on_a_busy_listener_one_network_holds_only_its_share_and_trusted_proxies_have_none() {
    let app = spawn_app_with(|s| {
        s.http_header_timeout_ms = 3000;
        s.http_max_connections = 6;
        s.http_max_connections_per_network = Some(2);
        s.trusted_proxies = proxies("127.0.0.3");
    })
    .await;
    let addr = addr_of(&app.base);
    // A quiet listener: the share does not apply yet.
    let quiet = [
        connect_from("127.0.0.2", addr).await,
        connect_from("127.0.0.2", addr).await,
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third_when_quiet = status_from("127.0.0.2", addr).await;
    drop(quiet);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Two idle connections from one host and two from the proxy: more than half taken.
    let held = [
        connect_from("127.0.0.2", addr).await,
        connect_from("127.0.0.2", addr).await,
    ];
    let proxy = [
        connect_from("127.0.0.3", addr).await,
        connect_from("127.0.0.3", addr).await,
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let past_share = status_from("127.0.0.2", addr).await;
    let third_from_proxy = status_from("127.0.0.3", addr).await;
    let other_host = status_from("127.0.0.1", addr).await;
    // A connection that closes gives its place back.
    drop(held);
    let mut again = None;
    for _ in 0..50 {
        again = status_from("127.0.0.2", addr).await;
        if again.as_deref() == Some("HTTP/1.1 200 OK") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(proxy);

    assert_eq!(
        third_when_quiet.as_deref(),
        Some("HTTP/1.1 200 OK"),
        "a quiet listener"
    );
    assert_eq!(
        past_share.as_deref(),
        Some("HTTP/1.1 503 Service Unavailable"),
        "past the share, an answer the client can read"
    );
    assert_eq!(
        other_host.as_deref(),
        Some("HTTP/1.1 200 OK"),
        "another network"
    );
    assert_eq!(
        third_from_proxy.as_deref(),
        Some("HTTP/1.1 200 OK"),
        "a trusted proxy has no share"
    );
    assert_eq!(again.as_deref(), Some("HTTP/1.1 200 OK"), "a place freed");
}

/// A keep-alive connection from `from` that has been answered one request and is now idle.
async fn idle_keep_alive(from: &str, addr: SocketAddr) -> TcpStream {
    let mut c = connect_from(from, addr).await;
    c.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let res = read_response(&mut c).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    c
}

/// How many of `connections` the server has closed, each given `wait` to show it.
async fn closed_by_server(connections: &mut [TcpStream], wait: Duration) -> usize {
    let mut closed = 0;
    for c in connections {
        let mut buf = [0u8; 64];
        if let Ok(Ok(0)) = tokio::time::timeout(wait, c.read(&mut buf)).await {
            closed += 1;
        }
    }
    closed
}

#[tokio::test]
async fn a_connection_past_its_share_costs_nobody_else_their_idle_connection() {
    let app = spawn_app_with(|s| {
        s.http_max_connections = 4;
        s.http_max_connections_per_network = Some(2);
    })
    .await;
    let addr = addr_of(&app.base);
    let mut idle = Vec::new();
    for from in ["127.0.0.2", "127.0.0.2", "127.0.0.4", "127.0.0.4"] {
        idle.push(idle_keep_alive(from, addr).await);
    }
    let refused = status_from("127.0.0.2", addr).await;
    let closed = closed_by_server(&mut idle, Duration::from_millis(300)).await;

    assert_eq!(refused.as_deref(), Some("HTTP/1.1 503 Service Unavailable"));
    assert_eq!(
        closed, 0,
        "no idle connection was closed for a connection that was refused"
    );
}

#[tokio::test]
async fn a_full_listener_closes_an_idle_keep_alive_connection_to_make_room() {
    let app = spawn_app_with(|s| {
        s.http_max_connections = 3;
        s.http_max_connections_per_network = Some(0);
    })
    .await;
    let addr = addr_of(&app.base);
    // Three keep-alive connections, each idle after one request.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(idle_keep_alive("127.0.0.2", addr).await);
    }
    let start = Instant::now();
    let newcomer = status_from("127.0.0.1", addr).await;
    let took = start.elapsed();
    let closed = closed_by_server(&mut idle, Duration::from_millis(500)).await;

    assert_eq!(newcomer.as_deref(), Some("HTTP/1.1 200 OK"));
    assert!(
        took < Duration::from_secs(3),
        "served after {took:?}, not after an idle timeout"
    );
    assert_eq!(closed, 1, "one idle connection made room");
}

#[tokio::test]
async fn oversized_bodies_get_an_answer_the_client_can_read_while_it_is_still_writing() {
    let app = spawn_app().await;
    let addr = addr_of(&app.base);
    const BODY: usize = 1024 * 1024;
    for path in ["/token", "/revoke"] {
        for chunked in [false, true] {
            for attempt in 0..4 {
                let what = format!("{path}, chunked {chunked}, attempt {attempt}");
                let stream = TcpStream::connect(addr).await.expect("connect");
                let (mut rx, mut tx) = stream.into_split();
                let framing = if chunked {
                    "transfer-encoding: chunked".to_owned()
                } else {
                    format!("content-length: {BODY}")
                };
                let head = format!(
                    "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\n{framing}\r\n\r\n"
                );
                // The client keeps writing its whole body, whatever the server says first.
                let writer = tokio::spawn(async move {
                    tx.write_all(head.as_bytes()).await?;
                    let piece = vec![b'a'; 16 * 1024];
                    for _ in 0..BODY / piece.len() {
                        if chunked {
                            tx.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                                .await?;
                            tx.write_all(&piece).await?;
                            tx.write_all(b"\r\n").await?;
                        } else {
                            tx.write_all(&piece).await?;
                        }
                    }
                    if chunked {
                        tx.write_all(b"0\r\n\r\n").await?;
                    }
                    Ok::<_, std::io::Error>(tx)
                });
                let mut answer = Vec::new();
                let read =
                    tokio::time::timeout(Duration::from_secs(10), rx.read_to_end(&mut answer))
                        .await
                        .unwrap_or_else(|_| panic!("{what}: no end of the answer within 10 s"));
                let answer = String::from_utf8_lossy(&answer).into_owned();
                assert!(
                    read.is_ok(),
                    "{what}: the connection was reset ({read:?}) after {answer:?}"
                );
                assert!(
                    answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.1 413"),
                    "{what}: {answer}"
                );
                let body = &answer[answer.find("\r\n\r\n").expect("a head") + 4..];
                let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
                assert_eq!(body["error"], "invalid_request", "{what}: {answer}");
                let written = tokio::time::timeout(Duration::from_secs(10), writer)
                    .await
                    .expect("the writer finishes")
                    .expect("join");
                assert!(
                    written.is_ok(),
                    "{what}: the client could not finish writing: {:?}",
                    written.err()
                );
            }
        }
    }
}

#[tokio::test]
async fn an_https_issuer_gets_hsts_and_a_host_prefixed_session_cookie() {
    let plain = spawn_app().await;
    let res = http()
        .get(plain.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("get");
    assert!(
        res.headers().get("strict-transport-security").is_none(),
        "no HSTS over plain http"
    );

    let app = spawn_app_with(|s| s.issuer = "https://auth.example.com".into()).await;
    let res = http()
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("get");
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let email = "host-prefix@example.com";
    app.add_user(email).await;
    let redirect = "http://127.0.0.1:7777/callback";
    let client_id = app.public_client(redirect).await;
    let p = pkce();
    // A browser would keep a Secure cookie only over https: the test carries it by hand.
    let page = http()
        .get(app.url("/authorize"))
        .query(&auth_params(&client_id, redirect, &p))
        .send()
        .await
        .expect("authorize");
    assert_eq!(page.status(), 200);
    assert!(page.headers().contains_key("strict-transport-security"));
    let set_cookie = page.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        set_cookie.starts_with("__Host-latchkey_authz="),
        "{set_cookie}"
    );
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(
            set_cookie.split("; ").any(|a| a == attribute),
            "{attribute}: {set_cookie}"
        );
    }
    assert!(!set_cookie.contains("Domain"), "{set_cookie}");
    let cookie = |set_cookie: &str| set_cookie.split(';').next().expect("pair").to_owned();
    let html = page.text().await.expect("html");
    let consent = http()
        .post(app.url("/authorize/login"))
        .header("cookie", cookie(&set_cookie))
        .form(&[
            ("csrf_token", csrf(&html).as_str()),
            ("email", email),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(consent.status(), 200, "the prefixed cookie is read back");
    let set_cookie = consent.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let html = consent.text().await.expect("html");
    let done = http()
        .post(app.url("/authorize/consent"))
        .header("cookie", cookie(&set_cookie))
        .form(&[("csrf_token", csrf(&html).as_str()), ("decision", "allow")])
        .send()
        .await
        .expect("consent");
    assert_eq!(done.status(), 303);
    let removal = done.headers()["set-cookie"].to_str().expect("ascii");
    assert!(
        removal.starts_with("__Host-latchkey_authz=;") && removal.contains("Secure"),
        "a removal the browser accepts for a __Host- cookie: {removal}"
    );
}

#[tokio::test]
async fn grpc_reflection_is_served_only_when_enabled() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    async fn list_services(app: &TestApp) -> Result<Vec<String>, tonic::Code> {
        let channel = tonic::transport::Endpoint::from_shared(app.grpc_url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let mut client = ServerReflectionClient::new(channel);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = client
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .map_err(|s| s.code())?
            .into_inner();
        match answers.message().await.map_err(|s| s.code())? {
            Some(r) => match r.message_response {
                Some(MessageResponse::ListServicesResponse(l)) => {
                    Ok(l.service.into_iter().map(|s| s.name).collect())
                }
                other => panic!("unexpected answer {other:?}"),
            },
            None => Ok(Vec::new()),
        }
    }

    let app = spawn_app().await;
    assert_eq!(
        list_services(&app).await,
        Err(tonic::Code::Unimplemented),
        "off by default"
    );
    let app = spawn_app_with(|s| s.grpc_reflection = true).await;
    let services = list_services(&app).await.expect("reflection");
    assert!(
        services.iter().any(|s| s == "latchkey.v1.AuthService"),
        "{services:?}"
    );
}

#[tokio::test]
async fn public_readiness_names_what_is_down_only_when_the_operator_opts_in() {
    let ready = |app: &TestApp| {
        let url = app.url("/health/ready");
        async move {
            let res = http().get(url).send().await.expect("get");
            (
                res.status().as_u16(),
                res.json::<Value>().await.expect("json"),
            )
        }
    };
    let app = spawn_app().await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "status": "ok" }), "no detail by default");
    let app = spawn_app_with(|s| s.public_health_details = true).await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200);
    assert_eq!(body["database"], "up", "{body}");
    assert_eq!(body["redis"], "not configured", "{body}");
}

/// Sends a request head and part of its body, then stalls; returns the status line the
/// server answers with and how long it took, or `None` if nothing came within `bound`.
async fn stalled_body_answer(
    addr: SocketAddr,
    path: &str,
    bound: Duration,
) -> Option<(String, Duration)> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\ngrant_type"
    );
    let start = Instant::now();
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(bound, async {
        while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
    })
    .await
    .ok()?;
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    Some((status, start.elapsed()))
}

/// The request and body deadlines wrap the whole router (not each route), and still answer:
/// a request not answered within the request timeout gets 408, and a body not received within
/// the body timeout is refused as unreadable, each at its own deadline, on every endpoint that
/// reads a body.
#[tokio::test]
async fn a_stalled_body_gets_408_at_the_request_timeout_or_400_at_the_body_timeout() {
    // (request timeout, body timeout, the status line expected, why)
    let cases = [
        (
            600,
            20_000,
            "HTTP/1.1 408",
            "the request timeout comes first",
        ),
        (20_000, 600, "HTTP/1.1 400", "the body timeout comes first"),
    ];
    for (request_ms, body_ms, want, why) in cases {
        let app = spawn_app_with(|s| {
            s.http_request_timeout_ms = request_ms;
            s.http_body_timeout_ms = body_ms;
        })
        .await;
        let addr = addr_of(&app.base);
        for path in [
            "/token",
            "/revoke",
            "/introspect",
            "/register",
            "/authorize/login",
        ] {
            let (status, took) = stalled_body_answer(addr, path, Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("{why}, {path}: no answer within 5 s"));
            assert!(status.starts_with(want), "{why}, {path}: {status}");
            assert!(
                took >= Duration::from_millis(500) && took < Duration::from_millis(3000),
                "{why}, {path}: answered after {took:?}, not at the 600 ms deadline"
            );
        }
    }
}

/// The rate limiter, metrics and CORS are layered over the routers as one: a path no route
/// serves is a 404 that spends no endpoint's allowance (even one that looks like a limited
/// endpoint's), and CORS headers go only to the endpoints browser-based clients call, never
/// to the login form, introspection, health, ForwardAuth or a path nobody serves. CORS sits
/// outside the rate limit: preflights spend no allowance and a 429 carries CORS headers.
#[tokio::test]
async fn unrouted_paths_spend_no_allowance_and_cors_is_only_on_the_public_endpoints() {
    for _ in 0..2 {
        let app = spawn_app_with(|s| s.rate_limit_register_per_min = 2).await;
        let start = window();
        for path in [
            "/register/a/b",
            "/register/",
            "/register/x/y/z",
            "/registerx",
        ] {
            let res = http()
                .post(app.url(path))
                .json(&json!({}))
                .send()
                .await
                .expect("send");
            assert_eq!(res.status(), 404, "{path}");
        }
        let counted = registrations(&app, 3, |_| Vec::new()).await;
        if window() != start {
            continue;
        }
        assert_eq!(
            counted,
            Some((2, 1)),
            "the 404s counted for nothing: two registrations pass, the third trips"
        );

        let origin = "http://localhost:6274";
        let cors =
            |res: &reqwest::Response| res.headers().get("access-control-allow-origin").is_some();
        // Over the limit, a browser-based client can still read why and when to come back.
        let over = http()
            .post(app.url("/register"))
            .header("Origin", origin)
            .json(&json!({"redirect_uris": ["http://127.0.0.1:7777/cb"]}))
            .send()
            .await
            .expect("register");
        assert_eq!(over.status(), 429);
        assert!(cors(&over), "a 429 the browser's client can read");
        assert!(over.headers().contains_key("retry-after"));
        // Preflights (below, after the allowance is spent) are answered, and spend nothing.
        for (base, path, allowed) in [
            (&app.base, "/token", true),
            (&app.base, "/register", true),
            (&app.base, "/.well-known/oauth-authorization-server", true),
            (&app.base, "/authorize/login", false),
            (&app.base, "/authorize/consent", false),
            (&app.base, "/introspect", false),
            (&app.base, "/health/ready", false),
            (&app.base, "/no-such-endpoint", false),
            (&app.forward_auth, "/verify", false),
        ] {
            let preflight = http()
                .request(reqwest::Method::OPTIONS, format!("{base}{path}"))
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "POST")
                .send()
                .await
                .expect("preflight");
            assert_eq!(
                cors(&preflight),
                allowed,
                "preflight {path}: {}",
                preflight.status()
            );
            assert_ne!(preflight.status(), 429, "preflight {path}");
            let get = http()
                .get(format!("{base}{path}"))
                .header("Origin", origin)
                .send()
                .await
                .expect("get");
            assert_eq!(cors(&get), allowed, "GET {path}: {}", get.status());
        }
        return;
    }
    panic!("two runs crossed a minute boundary");
}
