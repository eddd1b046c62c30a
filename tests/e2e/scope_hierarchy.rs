//! Scope hierarchies (MCP 2026-07-28), end to end: an operator declares on a resource that
//! `files:write` implies `files:read` and `admin` implies `files:write`, and every verifier
//! (VerifyToken, Introspect over gRPC and HTTP, ForwardAuth, and `latchkey-resource-server`
//! in its remote and local modes) honours that one hierarchy the same way.

use crate::common::*;
use crate::grpc::as_client;
use latchkey_proto::v1 as pb;
use latchkey_resource_server::{Bearer, Config, Mode, Verifier};
use serde_json::{Value, json};
use std::process::{Command, Stdio};

const FILES: &str = "https://files.example.com/mcp";
const FILE_SCOPES: &str = "files:read files:write admin";
const REDIRECT: &str = "http://127.0.0.1:7777/callback";

fn implication(scope: &str, implied: &str) -> pb::ScopeImplication {
    pb::ScopeImplication {
        scope: scope.into(),
        implied: implied.into(),
    }
}

/// A server that supports the file scopes, with [`FILES`] added through the AdminService
/// with its hierarchy, as `latchkey resource add --implies` does, and ForwardAuth guarding it.
async fn files_app() -> TestApp {
    let app = spawn_app_with(|s| {
        s.scopes = FILE_SCOPES.into();
        s.default_scopes = "files:read".into();
        s.forward_auth_audience = Some(FILES.into());
    })
    .await;
    let added = app
        .admin_grpc()
        .await
        .add_resource(pb::AddResourceRequest {
            url: FILES.into(),
            scopes: Some(FILE_SCOPES.into()),
            default: true,
            owners: vec![],
            implies: vec![
                implication("files:write", "files:read"),
                implication("admin", "files:write"),
            ],
        })
        .await
        .expect("the resource is added")
        .into_inner();
    assert_eq!(
        added.implies,
        vec![
            implication("admin", "files:write"),
            implication("files:write", "files:read"),
        ],
        "the hierarchy as declared, in scope order"
    );
    app
}

/// A `client_credentials` token for [`FILES`] with `scope`; returns the token response.
async fn service_token(app: &TestApp, svc: &(String, String), scope: &str) -> Value {
    let (status, body) = app
        .token_with(
            http()
                .post(app.url("/token"))
                .basic_auth(&svc.0, Some(&svc.1))
                .form(&[("grant_type", "client_credentials"), ("scope", scope)]),
        )
        .await;
    assert_eq!(status, 200, "{scope}: {body}");
    body
}

/// A user's tokens for [`FILES`] with `scope`, through the browser flow, for a new public
/// client.
async fn user_token(app: &TestApp, scope: &str) -> Value {
    let client_id = app.public_client(REDIRECT).await;
    user_token_for(app, &client_id, scope).await
}

/// A user's tokens for [`FILES`] with `scope`, through the browser flow, for `client_id`.
async fn user_token_for(app: &TestApp, client_id: &str, scope: &str) -> Value {
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.add_user(&email).await;
    let pkce = pkce();
    let mut params = auth_params(client_id, REDIRECT, &pkce);
    params.retain(|(k, _)| *k != "resource");
    params.push(("resource", FILES));
    params.push(("scope", scope));
    let code = code_flow(app, &params, &email)
        .await
        .remove("code")
        .expect("code");
    let (status, body) = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &pkce.verifier),
            ("client_id", client_id),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn access_token(body: &Value) -> String {
    body["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// A resource server behind `latchkey-resource-server` in `mode`: `/read`, `/write` and
/// `/admin` each require that one scope, and answer with the scopes the layer saw.
async fn guarded(app: &TestApp, rs: &(String, String), mode: Mode) -> (String, Verifier) {
    let verifier =
        Verifier::connect(Config::new(FILES, &app.base, &app.grpc_url, &rs.0, &rs.1).mode(mode))
            .await
            .expect("verifier");
    let mut router = axum::Router::new();
    for (path, scope) in [
        ("/read", "files:read"),
        ("/write", "files:write"),
        ("/admin", "admin"),
    ] {
        router = router.merge(
            axum::Router::new()
                .route(
                    path,
                    axum::routing::get(|Bearer(c): Bearer| async move { c.scopes.join(" ") }),
                )
                .layer(verifier.require(&[scope])),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, verifier)
}

/// What each verifier said about one token and one required scope.
#[derive(Debug, PartialEq, Eq)]
struct Verdicts {
    verify_token: bool,
    introspect_grpc: bool,
    introspect_http: bool,
    forward_auth: bool,
    layer_remote: bool,
    layer_local: bool,
}

#[tokio::test]
async fn every_verifier_honours_one_hierarchy_the_same_way() {
    let app = files_app().await;
    let rs = app.resource_server(&[FILES]).await;
    let svc = app.operator_client(&[FILES], None).await;
    let (remote, _remote_verifier) = guarded(&app, &rs, Mode::Remote).await;
    let (local, _local_verifier) = guarded(&app, &rs, Mode::Local).await;
    let mut grpc = app.grpc().await;

    let tokens = [
        ("files:read", service_token(&app, &svc, "files:read").await),
        (
            "files:write",
            service_token(&app, &svc, "files:write").await,
        ),
        ("admin", service_token(&app, &svc, "admin").await),
        (
            "files:write (a user's)",
            user_token(&app, "files:write").await,
        ),
    ];
    // (token, the scope it carries, with what its scope implies)
    let carried = [
        "files:read",
        "files:read files:write",
        "admin files:read files:write",
        "files:read files:write",
    ];
    // (granted, required, passes)
    let expected = [
        ("files:read", "files:read", true),
        ("files:read", "files:write", false),
        ("files:read", "admin", false),
        ("files:write", "files:read", true),
        ("files:write", "files:write", true),
        ("files:write", "admin", false),
        ("admin", "files:read", true),
        ("admin", "files:write", true),
        ("admin", "admin", true),
        ("files:write (a user's)", "files:read", true),
        ("files:write (a user's)", "files:write", true),
        ("files:write (a user's)", "admin", false),
    ];

    for ((granted, body), carries) in tokens.iter().zip(carried) {
        let token = access_token(body);
        // RFC 6749 §5.1: the token response names the scope the token carries.
        assert_eq!(body["scope"], carries, "{granted}: the token response");
        assert_eq!(
            jwt_parts(&token).1["scope"],
            carries,
            "{granted}: the token's scope claim"
        );
        let introspected = app.introspect(&rs, &token).await;
        assert_eq!(introspected["active"], true, "{granted}");
        assert_eq!(introspected["scope"], carries, "{granted}: introspection");

        for (_, required, want) in expected.iter().filter(|(g, _, _)| g == granted) {
            let verify_token = grpc
                .verify_token(as_client(
                    pb::VerifyTokenRequest {
                        token: token.clone(),
                        audience: FILES.into(),
                        required_scopes: vec![(*required).to_owned()],
                    },
                    &rs,
                ))
                .await
                .expect("VerifyToken answers")
                .into_inner();
            if !verify_token.valid {
                assert_eq!(
                    verify_token.error_code(),
                    pb::OauthErrorCode::InsufficientScope,
                    "{granted} against {required}"
                );
            }
            let introspect_grpc = grpc
                .introspect(as_client(
                    pb::IntrospectRequest {
                        token: token.clone(),
                        ..Default::default()
                    },
                    &rs,
                ))
                .await
                .expect("Introspect answers")
                .into_inner();
            let forward_auth = http()
                .get(app.forward_auth_url("/verify"))
                .query(&[("scope", *required)])
                .bearer_auth(&token)
                .send()
                .await
                .expect("ForwardAuth answers");
            if forward_auth.status() == 200 {
                assert_eq!(
                    forward_auth.headers()["x-auth-scope"],
                    carries,
                    "{granted}: the scope ForwardAuth hands the backend"
                );
            } else {
                assert_eq!(forward_auth.status(), 403, "{granted} against {required}");
                let www = forward_auth.headers()["www-authenticate"]
                    .to_str()
                    .expect("ascii");
                assert!(
                    www.contains("insufficient_scope")
                        && www.contains(&format!("scope=\"{required}\"")),
                    "{www}"
                );
            }
            let mut layer = Vec::new();
            for base in [&remote, &local] {
                let path = match *required {
                    "files:read" => "/read",
                    "files:write" => "/write",
                    _ => "/admin",
                };
                let res = http()
                    .get(format!("{base}{path}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("the guarded route answers");
                let ok = res.status() == 200;
                if ok {
                    assert_eq!(res.text().await.expect("body"), carries, "{granted}");
                } else {
                    assert_eq!(res.status(), 403, "{granted} against {required}");
                }
                layer.push(ok);
            }
            let holds = |scope: &Option<String>| {
                scope
                    .as_deref()
                    .is_some_and(|s| s.split(' ').any(|x| x == *required))
            };
            let got = Verdicts {
                verify_token: verify_token.valid,
                introspect_grpc: introspect_grpc.active && holds(&introspect_grpc.scope),
                introspect_http: introspected["scope"]
                    .as_str()
                    .is_some_and(|s| s.split(' ').any(|x| x == *required)),
                forward_auth: forward_auth.status() == 200,
                layer_remote: layer[0],
                layer_local: layer[1],
            };
            let all = |v: bool| Verdicts {
                verify_token: v,
                introspect_grpc: v,
                introspect_http: v,
                forward_auth: v,
                layer_remote: v,
                layer_local: v,
            };
            assert_eq!(got, all(*want), "a token of {granted} against {required}");
        }
    }
}

/// A refresh token request of the public client `client_id`, narrowed to `scope` if given.
async fn refresh(app: &TestApp, client_id: &str, rt: String, scope: Option<&str>) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", rt),
        ("client_id", client_id.to_owned()),
    ];
    if let Some(s) = scope {
        form.push(("scope", s.to_owned()));
    }
    app.token_with(http().post(app.url("/token")).form(&form))
        .await
}

#[tokio::test]
async fn a_refresh_applies_the_hierarchy_and_may_narrow_to_an_implied_scope() {
    let app = files_app().await;
    let rs = app.resource_server(&[FILES]).await;
    let first = user_token(&app, "admin").await;
    assert_eq!(first["scope"], "admin files:read files:write");
    let client_id = jwt_parts(&access_token(&first)).1["client_id"]
        .as_str()
        .expect("client_id")
        .to_owned();
    let rt = |body: &Value| body["refresh_token"].as_str().expect("rt").to_owned();

    let (status, again) = refresh(&app, &client_id, rt(&first), None).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["scope"], "admin files:read files:write");

    // RFC 6749 §6: files:read was granted, through the hierarchy, so a refresh may ask for
    // it alone.
    let (status, narrowed) = refresh(&app, &client_id, rt(&again), Some("files:read")).await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(narrowed["scope"], "files:read");
    let i = app.introspect(&rs, &access_token(&narrowed)).await;
    assert_eq!(i["scope"], "files:read");
}

#[tokio::test]
async fn resource_metadata_lists_every_scope_and_never_offline_access() {
    let app = files_app().await;
    // A second resource with no scopes of its own: it accepts every scope the server
    // supports, offline_access among them, and its hierarchy names two of them.
    const ALL: &str = "https://all.example.com/mcp";
    app.admin_grpc()
        .await
        .add_resource(pb::AddResourceRequest {
            url: ALL.into(),
            implies: vec![implication("admin", "files:read")],
            ..Default::default()
        })
        .await
        .expect("added");
    for (resource, listed) in [
        (FILES, json!(["admin", "files:read", "files:write"])),
        (ALL, json!(["admin", "files:read", "files:write"])),
    ] {
        let doc = app
            .gateway_grpc()
            .await
            .get_resource_metadata(pb::GetResourceMetadataRequest {
                resource: resource.into(),
            })
            .await
            .expect("metadata")
            .into_inner();
        let doc: Value = serde_json::from_str(&doc.json).expect("json");
        assert_eq!(
            doc["scopes_supported"], listed,
            "{resource}: implied scopes can be asked for by themselves, so all are listed, \
             and offline_access never is"
        );
    }
}

#[tokio::test]
async fn a_client_cannot_declare_a_hierarchy_at_registration() {
    let app = files_app().await;
    let svc = app.operator_client(&[FILES], None).await;
    // A self-registered client sends hierarchy-looking metadata; it is not a field of RFC
    // 7591 and changes nothing: its tokens carry only what the operator's hierarchy implies.
    let res = app
        .register(json!({
            "client_name": "sly",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "scope": "files:read",
            "scope_implications": {"files:read": "admin"},
            "implies": {"files:read": ["files:write", "admin"]},
        }))
        .await;
    assert_eq!(res.status(), 201);
    let registered: Value = res.json().await.expect("json");
    let sly = registered["client_id"].as_str().expect("client_id");
    let body = user_token_for(&app, sly, "files:read").await;
    assert_eq!(body["scope"], "files:read");
    let by_operator = service_token(&app, &svc, "files:read").await;
    assert_eq!(by_operator["scope"], "files:read");
    let resources = app
        .admin_grpc()
        .await
        .list_resources(pb::ListResourcesRequest {})
        .await
        .expect("list")
        .into_inner()
        .resources;
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0].implies.len(), 2, "only the operator's two");
}

/// Runs the `latchkey` binary against `db` with the file scopes configured.
fn latchkey(db: &str, args: &[&str]) -> (bool, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .env("LATCHKEY_DATABASE_URL", db)
        .env("LATCHKEY_SCOPES", FILE_SCOPES)
        .env("LATCHKEY_DEFAULT_SCOPES", "files:read")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run latchkey");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn the_cli_declares_a_hierarchy_lists_it_and_refuses_a_cycle_or_an_unknown_scope() {
    let db = fresh_database().await;
    let _guard = DbGuard(db.clone());
    let add = |extra: &[&str]| {
        let mut args = vec!["resource", "add", FILES, "--scopes", FILE_SCOPES];
        args.extend_from_slice(extra);
        latchkey(&db, &args)
    };
    // (extra arguments, words the refusal must contain)
    let refused: [(&[&str], &str); 4] = [
        (
            &[
                "--implies",
                "files:write=files:read",
                "--implies",
                "files:read=admin",
                "--implies",
                "admin=files:write",
            ],
            "cycle: admin -> files:write -> files:read -> admin",
        ),
        (
            &["--implies", "files:write=files:delete"],
            "does not accept: files:delete",
        ),
        (&["--implies", "files:write"], "expected SCOPE=IMPLIED"),
        (&["--implies", "admin=offline_access"], "offline_access"),
    ];
    for (extra, words) in refused {
        let (ok, out) = add(extra);
        assert!(!ok && out.contains(words), "{words}: {out}");
    }
    let (ok, out) = latchkey(&db, &["resource", "list"]);
    assert!(ok && !out.contains(FILES), "nothing was added: {out}");

    let (ok, out) = add(&[
        "--implies",
        "files:write=files:read",
        "--implies",
        "admin=files:write",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("implies: admin=files:write; files:write=files:read"),
        "{out}"
    );
    let (ok, out) = latchkey(&db, &["resource", "list"]);
    assert!(
        ok && out.contains("implies: admin=files:write; files:write=files:read"),
        "{out}"
    );
}
