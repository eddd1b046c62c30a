//! The per-host concurrency bound and the global and per-host rates, refusing before any
//! connection.

use crate::server::*;
use crate::*;

#[tokio::test]
async fn a_second_fetch_to_a_host_with_one_in_flight_is_refused() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let limits = Limits {
        host_concurrency: 1,
        ..roomy_limits()
    };
    let fetcher = fetcher_with(&ca, Arc::new(Names::local()), true, limits);
    let held_url = server.https_url("docs.example.test", "/hold");
    let in_flight = {
        let fetcher = fetcher.clone();
        tokio::spawn(async move { fetch(&fetcher, &held_url, &FetchPolicy::document()).await })
    };
    server.held().await;

    let same_host = fetch(
        &fetcher,
        &server.https_url("docs.example.test", "/doc.json"),
        &FetchPolicy::document(),
    )
    .await;
    let other_host = fetch(
        &fetcher,
        &server.https_url("other.example.test", "/doc.json"),
        &FetchPolicy::document(),
    )
    .await;
    server.release();
    let first = in_flight.await.expect("task");

    assert!(
        matches!(
            same_host,
            Err(FetchError::TooManyRequests(Limit::HostConcurrency))
        ),
        "{same_host:?}"
    );
    assert!(
        other_host.is_ok(),
        "another host is not held back: {other_host:?}"
    );
    assert!(first.is_ok(), "the held fetch completes: {first:?}");
    assert_eq!(server.connections(), 2, "the refused fetch never connected");
}

#[tokio::test]
async fn the_host_and_global_rates_refuse_past_their_bursts() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let hour = Duration::from_secs(3600);
    let limits = Limits {
        global_rate: Rate {
            burst: 3,
            every: hour,
        },
        host_rate: Rate {
            burst: 2,
            every: hour,
        },
        ..roomy_limits()
    };
    let fetcher = fetcher_with(&ca, Arc::new(Names::local()), true, limits);
    let policy = FetchPolicy::document();
    let get = async |host: &str| {
        let url = server.https_url(host, "/doc.json");
        fetch(&fetcher, &url, &policy).await
    };

    assert!(get("docs.example.test").await.is_ok());
    assert!(get("docs.example.test").await.is_ok());
    let third = get("docs.example.test").await;
    assert!(
        matches!(third, Err(FetchError::TooManyRequests(Limit::HostRate))),
        "{third:?}"
    );
    assert!(
        get("other.example.test").await.is_ok(),
        "another host, within the global burst"
    );
    let fourth = get("keys.example.test").await;
    assert!(
        matches!(fourth, Err(FetchError::TooManyRequests(Limit::GlobalRate))),
        "{fourth:?}"
    );
    assert_eq!(server.connections(), 3, "refused fetches never connected");

    // Operator-configured targets are counted apart.
    let any = FetchPolicy {
        targets: Targets::Any,
        ..FetchPolicy::document()
    };
    let operator = fetch(
        &fetcher,
        &server.https_url("keys.example.test", "/doc.json"),
        &any,
    )
    .await;
    assert!(operator.is_ok(), "{operator:?}");
}
