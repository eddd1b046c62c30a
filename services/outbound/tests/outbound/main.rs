//! The fetcher against a real HTTPS server on 127.0.0.1, with its CA given to the fetcher
//! and test names (`docs.example.test`) answered by an injected resolver. Refusals are shown
//! to happen before any connection: the server counts the connections it accepts.
//!
//! No test connects anywhere but 127.0.0.1: addresses that must be refused (the cloud
//! metadata address, private ones) are refused before a socket is opened, and the rebinding
//! test's second answer is a form of 127.0.0.1.

mod addresses;
mod limits;
mod redirects;
mod server;

use latchkey_outbound::{
    Accept, AddressClass, BuildError, FetchError, FetchPolicy, Fetcher, Freshness, Limit, Limits,
    Rate, RedirectProblem, Resolve, Targets, UrlProblem,
};
use server::{Ca, DOCUMENT, Names, Server};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use url::Url;

/// Limits no test reaches unless it means to.
fn roomy_limits() -> Limits {
    let roomy = Rate {
        burst: 1000,
        every: Duration::from_millis(1),
    };
    Limits {
        global_rate: roomy,
        host_rate: roomy,
        host_concurrency: 10,
        max_in_flight: 100,
        max_hosts: 100,
    }
}

fn fetcher_with(
    ca: &Ca,
    resolver: Arc<dyn Resolve>,
    allow_loopback: bool,
    limits: Limits,
) -> Fetcher {
    Fetcher::builder()
        .extra_roots_pem(ca.pem.as_bytes())
        .expect("test CA")
        .resolver(resolver)
        .allow_loopback(allow_loopback)
        .limits(limits)
        .build()
        .expect("fetcher")
}

/// A fetcher that trusts `ca`, resolves the test names to 127.0.0.1 and lets loopback
/// through, as local development would.
fn dev_fetcher(ca: &Ca) -> Fetcher {
    fetcher_with(ca, Arc::new(Names::local()), true, roomy_limits())
}

/// A fetch bounded in time whatever the policy says, so a broken fetcher fails the test
/// instead of hanging it.
async fn fetch(
    fetcher: &Fetcher,
    url: &Url,
    policy: &FetchPolicy,
) -> Result<latchkey_outbound::Fetched, FetchError> {
    tokio::time::timeout(Duration::from_secs(20), fetcher.fetch(url, policy))
        .await
        .expect("the fetch ended within 20 s")
}

fn refused_as(
    result: &Result<latchkey_outbound::Fetched, FetchError>,
) -> Option<(IpAddr, AddressClass)> {
    match result {
        Err(FetchError::RefusedAddress { address, refusal }) => Some((*address, refusal.class)),
        _ => None,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

#[tokio::test]
async fn a_json_document_is_fetched_over_https_with_its_caching_headers() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let url = server.https_url("docs.example.test", "/doc.json?v=1");

    let fetched = fetch(&dev_fetcher(&ca), &url, &FetchPolicy::document())
        .await
        .expect("document fetched");

    assert_eq!(fetched.body.as_ref(), DOCUMENT.as_bytes());
    assert_eq!(fetched.content_type, "application/json");
    assert_eq!(fetched.url, url);
    assert_eq!(fetched.cache.etag.as_deref(), Some("\"v1\""));
    assert_eq!(
        fetched.freshness(SystemTime::now()),
        Freshness::Fresh(Duration::from_secs(600))
    );
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].host, format!("docs.example.test:{}", server.port));
    assert_eq!(seen[0].accept, "application/json");
}

#[tokio::test]
async fn content_types_other_than_json_and_encoded_bodies_are_refused() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let fetcher = dev_fetcher(&ca);
    let jwk_set_only = FetchPolicy {
        accept: Accept::OneOf(&["application/jwk-set+json"]),
        ..FetchPolicy::key_set()
    };
    let cases: &[(&str, &FetchPolicy, Option<Option<&str>>, &str)] = &[
        (
            "/doc.json",
            &FetchPolicy::document(),
            None,
            "application/json",
        ),
        ("/jwks", &FetchPolicy::key_set(), None, "a +json type"),
        ("/jwks", &jwk_set_only, None, "the one listed type"),
        (
            "/doc.json",
            &jwk_set_only,
            Some(Some("application/json")),
            "not listed",
        ),
        (
            "/html",
            &FetchPolicy::document(),
            Some(Some("text/html; charset=utf-8")),
            "HTML",
        ),
        (
            "/no-type",
            &FetchPolicy::document(),
            Some(None),
            "no content type",
        ),
    ];
    for (path, policy, refused, what) in cases {
        let result = fetch(
            &fetcher,
            &server.https_url("docs.example.test", path),
            policy,
        )
        .await;
        match refused {
            None => assert!(result.is_ok(), "{what}: {result:?}"),
            Some(want) => match result {
                Err(FetchError::ContentType { received }) => {
                    assert_eq!(received.as_deref(), *want, "{what}")
                }
                other => panic!("{what}: expected a content type refusal, got {other:?}"),
            },
        }
    }
    let gzip = fetch(
        &fetcher,
        &server.https_url("docs.example.test", "/gzip"),
        &FetchPolicy::document(),
    )
    .await;
    assert!(matches!(gzip, Err(FetchError::ContentEncoding)), "{gzip:?}");
}

#[tokio::test]
async fn an_oversized_body_is_refused_by_its_content_length_before_it_is_read() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let fetcher = dev_fetcher(&ca);
    // /announced-big sends a Content-Length of 10,000 and never a byte: waiting for the
    // body would end in the timeout instead.
    for path in ["/big", "/announced-big"] {
        let result = fetch(
            &fetcher,
            &server.https_url("docs.example.test", path),
            &FetchPolicy::document(),
        )
        .await;
        assert!(
            matches!(result, Err(FetchError::TooLarge { limit: 5120 })),
            "{path}: {result:?}"
        );
    }
}

#[tokio::test]
async fn a_chunked_body_that_keeps_going_is_stopped_at_the_limit() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let result = fetch(
        &dev_fetcher(&ca),
        &server.https_url("docs.example.test", "/endless"),
        &FetchPolicy::key_set(),
    )
    .await;
    // The body is 10 GB; only stopping at 64 KiB ends the fetch within its 5 s.
    assert!(
        matches!(result, Err(FetchError::TooLarge { limit: 65536 })),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_slow_server_hits_the_total_timeout() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let policy = FetchPolicy {
        total_timeout: Duration::from_millis(300),
        ..FetchPolicy::document()
    };
    let started = Instant::now();
    let result = fetch(
        &dev_fetcher(&ca),
        &server.https_url("docs.example.test", "/slow"),
        &policy,
    )
    .await;
    assert!(
        matches!(result, Err(FetchError::Timeout(t)) if t == Duration::from_millis(300)),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the timeout ended the fetch, not the test's own bound"
    );
}

#[tokio::test]
async fn a_status_other_than_200_is_refused_with_the_status() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let fetcher = dev_fetcher(&ca);
    for (path, status) in [
        ("/missing", 404),
        ("/error", 500),
        ("/empty", 204),
        ("/not-modified", 304),
    ] {
        let result = fetch(
            &fetcher,
            &server.https_url("docs.example.test", path),
            &FetchPolicy::document(),
        )
        .await;
        assert!(
            matches!(result, Err(FetchError::Status(s)) if s == status),
            "{path}: {result:?}"
        );
    }
}

#[tokio::test]
async fn unacceptable_urls_are_refused_before_any_connection() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let fetcher = dev_fetcher(&ca);
    let port = server.port;
    let any = FetchPolicy {
        targets: Targets::Any,
        ..FetchPolicy::document()
    };
    let public = FetchPolicy::document();
    // (URL, policy, the error expected, what the case shows)
    type Case<'a> = (String, &'a FetchPolicy, fn(&FetchError) -> bool, &'a str);
    let cases: Vec<Case> = vec![
        (
            format!("http://docs.example.test:{port}/doc.json"),
            &public,
            |e| matches!(e, FetchError::NotHttps),
            "http for public targets",
        ),
        (
            "file:///etc/passwd".to_owned(),
            &public,
            |e| matches!(e, FetchError::NotHttps),
            "file for public targets",
        ),
        (
            "ftp://docs.example.test/doc.json".to_owned(),
            &any,
            |e| matches!(e, FetchError::UnsupportedScheme),
            "ftp for any targets",
        ),
        (
            format!("https://user:secret@docs.example.test:{port}/doc.json"),
            &public,
            |e| matches!(e, FetchError::InvalidUrl(UrlProblem::Userinfo)),
            "userinfo",
        ),
        (
            format!("https://user@docs.example.test:{port}/doc.json"),
            &public,
            |e| matches!(e, FetchError::InvalidUrl(UrlProblem::Userinfo)),
            "a user name alone",
        ),
        (
            format!("https://docs.example.test:{port}/doc.json#key"),
            &public,
            |e| matches!(e, FetchError::InvalidUrl(UrlProblem::Fragment)),
            "a fragment",
        ),
        (
            format!("https://docs.example.test:{port}/doc.json#"),
            &public,
            |e| matches!(e, FetchError::InvalidUrl(UrlProblem::Fragment)),
            "an empty fragment",
        ),
    ];
    for (url, policy, expected, what) in cases {
        let url = Url::parse(&url).expect("test URL");
        let result = fetch(&fetcher, &url, policy).await;
        match &result {
            Err(e) if expected(e) => {}
            other => panic!("{what}: unexpected {other:?}"),
        }
    }
    assert_eq!(server.connections(), 0, "no refused URL was connected to");
}

#[tokio::test]
async fn any_targets_fetch_plain_http_inside_the_network() {
    let server = Server::plain().await;
    let ca = Ca::new("unused CA");
    // No development switch: loopback stands here for an address inside the cluster.
    let fetcher = fetcher_with(&ca, Arc::new(Names::local()), false, roomy_limits());
    let url = server.url("http", "docs.example.test", "/doc.json");
    let policy = FetchPolicy {
        targets: Targets::Any,
        ..FetchPolicy::document()
    };
    let fetched = fetch(&fetcher, &url, &policy)
        .await
        .expect("fetched over http");
    assert_eq!(fetched.body.as_ref(), DOCUMENT.as_bytes());
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_fails_the_handshake() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let stranger = Ca::new("another CA");
    let fetcher = fetcher_with(&stranger, Arc::new(Names::local()), true, roomy_limits());
    let result = fetch(
        &fetcher,
        &server.https_url("docs.example.test", "/doc.json"),
        &FetchPolicy::document(),
    )
    .await;
    assert!(
        matches!(
            result,
            Err(FetchError::Tls(rustls::Error::InvalidCertificate(_)))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn extra_roots_are_read_from_a_pem_file_and_bad_files_are_reported() {
    let dir = std::env::temp_dir().join(format!(
        "latchkey-outbound-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).expect("write CA");
    let empty_file = dir.join("empty.pem");
    std::fs::write(&empty_file, "no certificate here\n").expect("write");

    let fetcher = Fetcher::builder()
        .extra_roots_file(&ca_file)
        .expect("CA file")
        .resolver(Arc::new(Names::local()))
        .allow_loopback(true)
        .build()
        .expect("fetcher");
    let result = fetch(
        &fetcher,
        &server.https_url("docs.example.test", "/doc.json"),
        &FetchPolicy::document(),
    )
    .await;
    let missing = Fetcher::builder().extra_roots_file(dir.join("missing.pem"));
    let empty = Fetcher::builder().extra_roots_file(&empty_file);
    let _ = std::fs::remove_dir_all(&dir);

    assert!(result.is_ok(), "{result:?}");
    assert!(matches!(missing, Err(BuildError::CaFile { .. })));
    assert!(matches!(empty, Err(BuildError::NoCertificate)));
}
