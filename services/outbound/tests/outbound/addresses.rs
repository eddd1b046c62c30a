//! Which addresses a fetch reaches: IP literals, resolved names, answers that mix allowed
//! and refused addresses, and DNS rebinding. Every refusal is shown to come before any
//! connection.

use crate::server::*;
use crate::*;

#[tokio::test]
async fn ip_literals_are_checked_like_resolved_addresses() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let port = server.port;
    let strict = fetcher_with(&ca, Arc::new(Names::local()), false, roomy_limits());
    let dev = dev_fetcher(&ca);
    let any = FetchPolicy {
        targets: Targets::Any,
        ..FetchPolicy::document()
    };
    let public = FetchPolicy::document();
    // None of these is connected to: each is refused before a socket is opened.
    let cases: Vec<(String, &Fetcher, &FetchPolicy, &str, AddressClass)> = vec![
        (
            format!("https://127.0.0.1:{port}/doc.json"),
            &strict,
            &public,
            "127.0.0.1",
            AddressClass::Loopback,
        ),
        (
            format!("https://2130706433:{port}/doc.json"),
            &strict,
            &public,
            "127.0.0.1",
            AddressClass::Loopback,
        ),
        (
            format!("https://0x7f.1:{port}/doc.json"),
            &strict,
            &public,
            "127.0.0.1",
            AddressClass::Loopback,
        ),
        (
            format!("https://[::1]:{port}/doc.json"),
            &strict,
            &public,
            "::1",
            AddressClass::Loopback,
        ),
        (
            format!("https://[::ffff:127.0.0.1]:{port}/doc.json"),
            &dev,
            &public,
            "::ffff:127.0.0.1",
            AddressClass::Ipv4Mapped,
        ),
        (
            format!("https://0.0.0.0:{port}/doc.json"),
            &dev,
            &public,
            "0.0.0.0",
            AddressClass::Unspecified,
        ),
        (
            format!("https://0.0.0.0:{port}/doc.json"),
            &dev,
            &any,
            "0.0.0.0",
            AddressClass::Unspecified,
        ),
        (
            "https://169.254.169.254/latest/meta-data/".to_owned(),
            &dev,
            &public,
            "169.254.169.254",
            AddressClass::CloudMetadata,
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            &dev,
            &any,
            "169.254.169.254",
            AddressClass::CloudMetadata,
        ),
        (
            "https://[fd00:ec2::254]/".to_owned(),
            &dev,
            &public,
            "fd00:ec2::254",
            AddressClass::CloudMetadata,
        ),
        (
            "https://[64:ff9b::a9fe:a9fe]/".to_owned(),
            &dev,
            &public,
            "64:ff9b::a9fe:a9fe",
            AddressClass::CloudMetadata,
        ),
        (
            "https://10.1.2.3/".to_owned(),
            &dev,
            &public,
            "10.1.2.3",
            AddressClass::Private,
        ),
        (
            "https://100.100.100.200/".to_owned(),
            &dev,
            &public,
            "100.100.100.200",
            AddressClass::SharedAddressSpace,
        ),
        (
            "https://[fe80::1]/".to_owned(),
            &dev,
            &public,
            "fe80::1",
            AddressClass::LinkLocal,
        ),
    ];
    for (url, fetcher, policy, address, class) in cases {
        let result = fetch(fetcher, &Url::parse(&url).expect("test URL"), policy).await;
        assert_eq!(
            refused_as(&result),
            Some((ip(address), class)),
            "{url}: {result:?}"
        );
    }
    assert_eq!(
        server.connections(),
        0,
        "no refused address was connected to"
    );

    let allowed = fetch(&dev, &server.https_url("127.0.0.1", "/doc.json"), &public).await;
    assert!(
        allowed.is_ok(),
        "127.0.0.1 with the development switch: {allowed:?}"
    );
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_without_the_development_switch() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let names = Arc::new(Names::local());
    let fetcher = fetcher_with(&ca, names.clone(), false, roomy_limits());

    let result = fetch(
        &fetcher,
        &server.https_url("docs.example.test", "/doc.json"),
        &FetchPolicy::document(),
    )
    .await;

    assert_eq!(
        refused_as(&result),
        Some((LOCALHOST, AddressClass::Loopback)),
        "{result:?}"
    );
    assert_eq!(names.calls.load(Ordering::SeqCst), 1);
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn an_answer_with_one_refused_address_is_refused_whole() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    // 127.0.0.1 is allowed here and is the live server; 10.0.0.1 spoils the answer.
    let names = Names::new([("mixed.example.test", vec![LOCALHOST, ip("10.0.0.1")])]);
    let fetcher = fetcher_with(&ca, Arc::new(names), true, roomy_limits());

    let result = fetch(
        &fetcher,
        &server.https_url("mixed.example.test", "/doc.json"),
        &FetchPolicy::document(),
    )
    .await;

    assert_eq!(
        refused_as(&result),
        Some((ip("10.0.0.1"), AddressClass::Private))
    );
    assert_eq!(
        server.connections(),
        0,
        "not even the allowed address was tried"
    );
}

/// The name first answers with an address this fetcher may reach, then with one it may
/// not. Each connection resolves once and is judged by that answer, so the second fetch
/// is refused and nothing connects. The second answer is `::ffff:127.0.0.1`, which reaches
/// the same server (shown first on a bare listener), so a fetcher that connected would be
/// seen by the server's count.
#[tokio::test]
async fn dns_rebinding_to_a_refused_address_is_never_connected_to() {
    let mapped = ip("::ffff:127.0.0.1");
    let bare = tokio::net::TcpListener::bind((LOCALHOST, 0))
        .await
        .expect("bind");
    let bare_port = bare.local_addr().expect("address").port();
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((mapped, bare_port)),
    )
    .await
    .expect("connect within 5 s")
    .expect("::ffff:127.0.0.1 reaches a listener on 127.0.0.1");

    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let resolver = Arc::new(Sequence::new([vec![LOCALHOST], vec![mapped]]));
    let fetcher = fetcher_with(&ca, resolver.clone(), true, roomy_limits());
    let url = server.https_url("docs.example.test", "/doc.json");

    let first = fetch(&fetcher, &url, &FetchPolicy::document()).await;
    assert!(first.is_ok(), "the first answer is allowed: {first:?}");
    assert_eq!(server.connections(), 1);

    let second = fetch(&fetcher, &url, &FetchPolicy::document()).await;
    assert_eq!(
        refused_as(&second),
        Some((mapped, AddressClass::Ipv4Mapped)),
        "{second:?}"
    );
    assert_eq!(
        resolver.calls.load(Ordering::SeqCst),
        2,
        "one resolution per fetch"
    );
    assert_eq!(
        server.connections(),
        1,
        "the rebound answer was never connected to"
    );
}
