//! The admin port: Prometheus metrics and health, with labels that never carry a credential.

use crate::common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_errors_without_credentials() {
    let port = free_port();
    let app = spawn_app_with(|s| {
        s.metrics_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    })
    .await;
    let admin = format!("http://127.0.0.1:{port}");
    let (id, secret) = app.introspector().await;
    let token = app.client_credentials_token((&id, &secret)).await;
    let (s, _) = app
        .token_with(
            http()
                .post(app.url("/token"))
                .basic_auth(&id, Some("wrong"))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(s, 401);
    app.introspect(&(id.clone(), secret.clone()), &token).await;
    // The gRPC figures count what arrives on the gRPC listener: a resource server's calls.
    // The gateway in the same process calls the implementation and is counted in the HTTP
    // figures.
    let r = app
        .grpc()
        .await
        .introspect(crate::grpc::as_client(
            latchkey_proto::v1::IntrospectRequest {
                token: token.clone(),
                ..Default::default()
            },
            &(id.clone(), secret.clone()),
        ))
        .await
        .expect("introspect over gRPC")
        .into_inner();
    assert!(r.active);

    let metrics = http()
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    for needle in [
        "latchkey_tokens_issued_total{grant_type=\"client_credentials\",client_tier=\"operator\"}",
        "latchkey_oauth_errors_total{error=\"invalid_client\"}",
        "latchkey_http_requests_total{endpoint=\"/token\"",
        "latchkey_http_request_duration_seconds_bucket{endpoint=\"/token\"",
        "latchkey_grpc_requests_total{rpc=\"Introspect\"}",
        "latchkey_grpc_request_duration_seconds_bucket{rpc=\"Introspect\"",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
    assert!(
        !metrics.contains(&secret) && !metrics.contains(&token),
        "no credential in metrics"
    );
    for path in ["/health/live", "/health/ready"] {
        let res = http()
            .get(format!("{admin}{path}"))
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), 200, "{path}");
    }
}

/// A path nobody serves is counted under one `unmatched` label: the path a client sent (which
/// could carry a code or a token, and is unbounded) never becomes a label.
#[tokio::test]
async fn unrouted_requests_are_counted_as_unmatched_never_by_their_path() {
    let port = free_port();
    let app = spawn_app_with(|s| {
        s.metrics_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    })
    .await;
    for path in [
        "/nothing-here-c0de?code=c0de-secret",
        "/token/extra",
        "/register/a/b",
    ] {
        let res = http().get(app.url(path)).send().await.expect("get");
        assert_eq!(res.status(), 404, "{path}");
    }
    let metrics = http()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    // The recorder is the process's, shared with the other tests: at least these three.
    let unmatched = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "latchkey_http_requests_total{endpoint=\"unmatched\",method=\"GET\",status=\"404\"} ",
            )
        })
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(unmatched.is_some_and(|n| n >= 3), "{metrics}");
    for sent in ["nothing-here", "c0de", "/token/extra", "/register/a/b"] {
        assert!(!metrics.contains(sent), "{sent} became a label: {metrics}");
    }
}
