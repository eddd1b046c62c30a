//! Redirects: refused when the policy follows none, and each hop checked as the first URL
//! was when it follows some.

use crate::server::*;
use crate::*;

#[tokio::test]
async fn redirects_are_refused_when_the_policy_follows_none() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let result = fetch(
        &dev_fetcher(&ca),
        &server.https_url("docs.example.test", "/to-doc"),
        &FetchPolicy::document(),
    )
    .await;
    assert!(
        matches!(
            result,
            Err(FetchError::Redirect(RedirectProblem::NotFollowed(302)))
        ),
        "{result:?}"
    );
    assert_eq!(server.requests().len(), 1, "the target was not requested");
}

#[tokio::test]
async fn each_redirect_hop_is_checked_again() {
    let ca = Ca::new("outbound test CA");
    let server = Server::https(&ca).await;
    let fetcher = dev_fetcher(&ca);
    let follow = |n| FetchPolicy {
        max_redirects: n,
        ..FetchPolicy::document()
    };
    let url = |path| server.https_url("docs.example.test", path);

    let followed = fetch(&fetcher, &url("/to-doc"), &follow(1))
        .await
        .expect("followed");
    assert_eq!(followed.url, url("/doc.json"));
    assert_eq!(followed.body.as_ref(), DOCUMENT.as_bytes());

    let metadata = fetch(&fetcher, &url("/to-metadata"), &follow(1)).await;
    assert_eq!(
        refused_as(&metadata),
        Some((ip("169.254.169.254"), AddressClass::CloudMetadata)),
        "{metadata:?}"
    );
    let downgrade = fetch(&fetcher, &url("/to-http"), &follow(1)).await;
    assert!(
        matches!(downgrade, Err(FetchError::NotHttps)),
        "{downgrade:?}"
    );
    let endless = fetch(&fetcher, &url("/loop"), &follow(2)).await;
    assert!(
        matches!(
            endless,
            Err(FetchError::Redirect(RedirectProblem::TooMany(2)))
        ),
        "{endless:?}"
    );
    let nowhere = fetch(&fetcher, &url("/to-nowhere"), &follow(1)).await;
    assert!(
        matches!(
            nowhere,
            Err(FetchError::Redirect(RedirectProblem::BadLocation))
        ),
        "{nowhere:?}"
    );
    let loops = server
        .requests()
        .iter()
        .filter(|s| s.path == "/loop")
        .count();
    assert_eq!(loops, 3, "the first request and two redirects, no more");
}
