use crate::common::*;
use latchkey_proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

/// A request carrying a resource server's `Basic` credentials.
pub fn as_client<T>(msg: T, (id, secret): &(String, String)) -> tonic::Request<T> {
    use base64::Engine;
    let mut req = tonic::Request::new(msg);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    req.metadata_mut().insert(
        "authorization",
        format!("Basic {basic}").parse().expect("ascii"),
    );
    req
}

pub fn with_secret<T>(msg: T, secret: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(s) = secret {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {s}").parse().expect("ascii"),
        );
    }
    req
}

/// Calls `path` with an empty message (the guard answers before anything is decoded) and
/// returns whether a guard refused the caller, with what the call ended with.
async fn call_raw(
    channel: tonic::transport::Channel,
    path: &str,
    server_streaming: bool,
    authorization: Option<&str>,
) -> (bool, String) {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut req = tonic::Request::new(());
    if let Some(a) = authorization {
        req.metadata_mut()
            .insert("authorization", a.parse().expect("ascii"));
    }
    let path = http::uri::PathAndQuery::try_from(path.to_owned()).expect("path");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let result = if server_streaming {
        grpc.server_streaming(req, path, codec).await.map(|_| ())
    } else {
        grpc.unary(req, path, codec).await.map(|_| ())
    };
    match result {
        Ok(()) => (false, "ok".into()),
        Err(status) => {
            // A guard's refusal, as opposed to the RPC's own answer to an empty request
            // (an RPC may well say `invalid_client` to a gateway that sent no client).
            let reason = status
                .get_details_error_info()
                .map(|i| i.reason)
                .unwrap_or_default();
            let refused = matches!(
                (status.code(), reason.as_str()),
                (Code::Unauthenticated, "unauthenticated")
                    | (Code::PermissionDenied, "access_denied")
            );
            (refused, format!("{:?} {reason}", status.code()))
        }
    }
}

/// Each kind of caller with its `authorization`: nobody (none), the gateway, an operator, a
/// resource server (owning `RESOURCE`) and a self-registered confidential client.
async fn callers(app: &TestApp) -> Vec<(&'static str, Option<String>)> {
    let rs = app.resource_server(&[RESOURCE]).await;
    let (dynamic_id, dynamic_secret) = app
        .confidential_client(serde_json::json!({"redirect_uris": ["https://app.example.com/cb"]}))
        .await;
    let basic = |id: &str, secret: &str| latchkey_proto::credentials::encode_basic(id, secret);
    vec![
        ("nobody", None),
        ("the gateway", Some(format!("Bearer {GATEWAY_SECRET}"))),
        ("an operator", Some(format!("Bearer {ADMIN_SECRET}"))),
        ("a resource server", Some(basic(&rs.0, &rs.1))),
        (
            "a self-registered client",
            Some(basic(&dynamic_id, &dynamic_secret)),
        ),
    ]
}

#[tokio::test]
async fn every_rpc_of_every_service_refuses_every_other_kind_of_caller() {
    use prost::Message;
    let app = spawn_app().await;
    let mut callers = callers(&app).await;
    callers.insert(
        1,
        (
            "a wrong bearer",
            Some("Bearer not-a-secret-of-this-deployment-0123456789".to_owned()),
        ),
    );
    // Who each service admits.
    let admits = |service: &str, caller: &str| match service {
        "AuthService" => caller == "the gateway",
        "VerificationService" => matches!(caller, "the gateway" | "a resource server"),
        "AdminService" => caller == "an operator",
        other => panic!("a service nobody decided who may call: {other}"),
    };
    let channel = tonic::transport::Endpoint::from_shared(app.grpc_url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let fds = prost_types::FileDescriptorSet::decode(latchkey_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptors");
    let mut tried = std::collections::BTreeMap::<&str, usize>::new();
    for file in &fds.file {
        let package = file.package();
        for service in &file.service {
            for method in &service.method {
                *tried.entry(service.name()).or_default() += 1;
                let path = format!("/{package}.{}/{}", service.name(), method.name());
                for (caller, authorization) in &callers {
                    let (refused, ended) = call_raw(
                        channel.clone(),
                        &path,
                        method.server_streaming(),
                        authorization.as_deref(),
                    )
                    .await;
                    if admits(service.name(), caller) {
                        assert!(!refused, "{path} refused {caller}: {ended}");
                    } else {
                        assert!(refused, "{path} let {caller} in: {ended}");
                    }
                }
            }
        }
    }
    assert_eq!(
        tried.keys().copied().collect::<Vec<_>>(),
        ["AdminService", "AuthService", "VerificationService"],
        "the three services, every RPC: {tried:?}"
    );
}

/// The three services are told apart by their path's `/package.Service/` prefix. A path that
/// only resembles an RPC (no method, doubled or trailing slashes, `..`, another case,
/// percent-encoding, a service name with a suffix, one service's name inside another's path)
/// reaches no RPC, and never one of a service whose guard the caller does not pass: every
/// caller gets its guard's refusal or `UNIMPLEMENTED`. A query string does not change which
/// RPC a path names, nor its guard.
#[tokio::test]
async fn paths_that_only_resemble_an_rpc_reach_none_and_no_service_past_its_guard() {
    let app = spawn_app().await;
    let callers = callers(&app).await;
    // One unary RPC of each service, and who may call it.
    let services: [(&str, &str, &[&str]); 3] = [
        (
            "latchkey.v1.AuthService",
            "GetServerMetadata",
            &["the gateway"],
        ),
        (
            "latchkey.v1.VerificationService",
            "GetJwks",
            &["the gateway", "a resource server"],
        ),
        ("latchkey.v1.AdminService", "ListUsers", &["an operator"]),
    ];
    let channel = tonic::transport::Endpoint::from_shared(app.grpc_url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut tried = 0;
    for (service, method, admitted) in services {
        let mut lower = method.to_owned();
        lower[..1].make_ascii_lowercase();
        let mut paths = vec![
            format!("/{service}"),
            format!("/{service}/"),
            format!("/{service}{method}"),
            format!("//{service}/{method}"),
            format!("/{service}//{method}"),
            format!("/{service}/{method}/"),
            format!("/{service}/{method}/x"),
            format!("/{service}/{method}//"),
            format!("/{service}X/{method}"),
            format!("/{service}.v2/{method}"),
            format!("/{}/{method}", service.to_uppercase()),
            format!("/{}/{method}", service.to_lowercase()),
            format!("/{service}/{lower}"),
            format!("/{service}/{}", method.to_uppercase()),
            format!("/{}/{method}", service.replace('.', "%2E")),
            format!("/{service}%2F{method}"),
            format!("/{service}/%{:02X}{}", method.as_bytes()[0], &method[1..]),
            format!("/./{service}/{method}"),
            format!("/{service}/./{method}"),
            format!("/{service}/{method};x"),
            format!("/{service}/{method}%00"),
            format!("/{service}/{method}\u{85}"),
            format!("/grpc.health.v1.Health/../../{service}/{method}"),
            format!("/grpc.health.v1.Health/{service}/{method}"),
        ];
        for (other, other_method, _) in services {
            if other != service {
                paths.push(format!("/{other}/../{service}/{method}"));
                paths.push(format!("/{other}/{service}/{method}"));
                paths.push(format!("/{other}/{other_method}/../../{service}/{method}"));
                paths.push(format!("/{service}/{other}/{method}"));
            }
        }
        for path in &paths {
            for (caller, authorization) in &callers {
                let (refused, ended) =
                    call_raw(channel.clone(), path, false, authorization.as_deref()).await;
                assert!(
                    refused || ended.starts_with("Unimplemented"),
                    "{path} reached an RPC for {caller}: {ended}"
                );
                tried += 1;
            }
        }
        let path = format!("/{service}/{method}?x=1");
        for (caller, authorization) in &callers {
            let (refused, ended) =
                call_raw(channel.clone(), &path, false, authorization.as_deref()).await;
            if admitted.contains(caller) {
                assert!(
                    !refused && !ended.starts_with("Unimplemented"),
                    "{path} for {caller}: {ended}"
                );
            } else {
                assert!(refused, "{path} let {caller} in: {ended}");
            }
        }
    }
    assert!(tried > 400, "{tried} calls");
}

/// The gRPC port speaks HTTP/2 only: an HTTP/1.1 request, in origin or absolute form, gets no
/// HTTP answer at all, let alone an RPC's.
#[tokio::test]
async fn an_http1_request_reaches_no_rpc_in_origin_or_absolute_form() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let addr = app.grpc_url.trim_start_matches("http://").to_owned();
    for target in [
        "/latchkey.v1.AdminService/ListUsers".to_owned(),
        format!("http://{addr}/latchkey.v1.AdminService/ListUsers"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let request = format!(
            "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/grpc\r\n\
             TE: trailers\r\nAuthorization: Bearer {ADMIN_SECRET}\r\nContent-Length: 5\r\n\r\n\
             \0\0\0\0\0"
        );
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut answer),
        )
        .await;
        assert!(read.is_ok(), "{target}: the connection is closed");
        assert!(
            !answer.starts_with(b"HTTP/"),
            "{target}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
}

#[tokio::test]
async fn errors_carry_the_oauth_code_in_the_status_details() {
    let app = spawn_app().await;
    let mut c = app.gateway_grpc().await;
    let err = c
        .exchange_token(with_secret(
            pb::ExchangeTokenRequest {
                grant_type: "password".into(),
                ..Default::default()
            },
            Some(GATEWAY_SECRET),
        ))
        .await
        .expect_err("unsupported grant");
    let info = err.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "unsupported_grant_type");
    assert_eq!(info.domain, "oauth2");
    assert!(info.metadata.contains_key("error_description"));
    // The same code, typed, for callers that use the proto.
    let status = <tonic_types::pb::Status as prost::Message>::decode(err.details())
        .expect("google.rpc.Status");
    let typed = pb::OauthErrorDetail::find(&status.details).map(|d| d.code());
    assert_eq!(typed, Some(pb::OauthErrorCode::UnsupportedGrantType));
}

#[tokio::test]
async fn admin_rpcs_manage_users() {
    let app = spawn_app().await;
    let mut c = app.admin_grpc().await;
    let u = c
        .create_user(with_secret(
            pb::CreateUserRequest {
                email: "Grpc@Example.com".into(),
                password: PASSWORD.into(),
            },
            Some(ADMIN_SECRET),
        ))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(u.email, "grpc@example.com");
    let dup = c
        .create_user(with_secret(
            pb::CreateUserRequest {
                email: "grpc@example.com".into(),
                password: PASSWORD.into(),
            },
            Some(ADMIN_SECRET),
        ))
        .await
        .expect_err("duplicate");
    assert_eq!(dup.code(), Code::AlreadyExists);
    let disabled = c
        .disable_user(with_secret(
            pb::DisableUserRequest {
                email: "grpc@example.com".into(),
            },
            Some(ADMIN_SECRET),
        ))
        .await
        .expect("disable")
        .into_inner();
    assert!(disabled.disabled);
}

#[tokio::test]
async fn verify_token_checks_audience_and_scopes() {
    let app = spawn_app().await;
    let f = flow(&app).await;
    let t = f.exchange(&app).await;
    let at = t["access_token"].as_str().expect("at").to_owned();
    let rs = app
        .resource_server(&[RESOURCE, "https://other.example.com/mcp"])
        .await;
    let mut c = app.grpc().await;
    let verify = |audience: &str, scopes: &[&str], token: &str| {
        as_client(
            pb::VerifyTokenRequest {
                token: token.to_owned(),
                audience: audience.to_owned(),
                required_scopes: scopes.iter().map(|s| s.to_string()).collect(),
            },
            &rs,
        )
    };
    let ok = c
        .verify_token(verify(RESOURCE, &["mcp:tools"], &at))
        .await
        .expect("rpc")
        .into_inner();
    assert!(ok.valid, "{}", ok.error_description);
    let claims = ok.claims.expect("claims");
    assert_eq!(claims.aud, RESOURCE);
    assert_eq!(claims.client_id, f.client_id);
    for (req, error, why) in [
        (
            verify("https://other.example.com/mcp", &[], &at),
            "invalid_token",
            "wrong audience",
        ),
        (
            verify(RESOURCE, &["mcp:tools", "admin"], &at),
            "insufficient_scope",
            "missing scope",
        ),
        (
            verify(RESOURCE, &[], "garbage"),
            "invalid_token",
            "malformed",
        ),
        (
            verify(RESOURCE, &[], &format!("{}x", &at[..at.len() - 1])),
            "invalid_token",
            "bad signature",
        ),
    ] {
        let r = c.verify_token(req).await.expect("rpc").into_inner();
        assert!(!r.valid, "{why}");
        assert_eq!(r.error, error, "{why}");
    }
    let err = c
        .verify_token(verify("", &[], &at))
        .await
        .expect_err("no audience");
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "an unset audience is never 'any audience'"
    );
}

#[tokio::test]
async fn introspect_and_revoke_work_over_the_gateways_grpc() {
    let app = spawn_app().await;
    let (id, secret) = app.introspector().await;
    let f = flow(&app).await;
    let t = f.exchange(&app).await;
    let at = t["access_token"].as_str().expect("at").to_owned();
    let creds = Some(pb::ClientAuthentication {
        basic: Some(pb::BasicCredentials {
            client_id: id,
            client_secret: secret,
        }),
        ..Default::default()
    });
    let mut c = app.gateway_grpc().await;
    let i = c
        .introspect(pb::IntrospectRequest {
            repeated_parameters: vec![],
            token: at.clone(),
            token_type_hint: None,
            client: creds.clone(),
        })
        .await
        .expect("rpc")
        .into_inner();
    assert!(i.active);
    assert_eq!(i.aud.as_deref(), Some(RESOURCE));
    c.revoke_token(pb::RevokeTokenRequest {
        repeated_parameters: vec![],
        token: at.clone(),
        token_type_hint: Some("access_token".into()),
        client: Some(pb::ClientAuthentication {
            client_id: Some(f.client_id.clone()),
            ..Default::default()
        }),
    })
    .await
    .expect("revoke");
    let i = c
        .introspect(pb::IntrospectRequest {
            repeated_parameters: vec![],
            token: at,
            token_type_hint: None,
            client: creds,
        })
        .await
        .expect("rpc")
        .into_inner();
    assert!(!i.active);
    let err = c
        .introspect(pb::IntrospectRequest {
            repeated_parameters: vec![],
            token: "x".into(),
            token_type_hint: None,
            client: None,
        })
        .await
        .expect_err("no client");
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn grpc_health_reports_serving() {
    let app = spawn_app().await;
    let channel = tonic::transport::Endpoint::from_shared(app.grpc_url.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "latchkey.v1.AuthService".into(),
        })
        .await
        .expect("check")
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

/// Defence in depth behind the configuration's refusal: services built with empty shared
/// secrets still refuse an empty bearer, on each of the three services.
#[tokio::test]
async fn an_empty_bearer_opens_no_service_even_when_the_secrets_are_empty() {
    let app = spawn_app().await;
    let services = latchkey_auth::server::Services {
        core: app
            .running
            .as_ref()
            .and_then(|r| r.core.clone())
            .expect("core"),
        readiness: std::sync::Arc::new(latchkey_auth::readiness::AlwaysReady),
        gateway_secret: Some(String::new()),
        admin_secret: Some(String::new()),
        reflection: false,
        traces_exported: false,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(latchkey_auth::server::serve(
        services,
        listener,
        latchkey_auth::server::Transport::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    for (path, streaming) in [
        ("/latchkey.v1.AuthService/GetServerMetadata", false),
        ("/latchkey.v1.VerificationService/GetJwks", false),
        ("/latchkey.v1.AdminService/ListUsers", false),
    ] {
        for authorization in ["Bearer ", "Bearer"] {
            let (refused, how) =
                call_raw(channel.clone(), path, streaming, Some(authorization)).await;
            assert!(refused, "{path} with {authorization:?}: {how}");
        }
    }
    let _ = stop.send(());
    let _ = server.await;
}
