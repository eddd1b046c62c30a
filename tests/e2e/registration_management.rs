//! RFC 7592 over real HTTP: a self-registered client reads (`GET`), replaces (`PUT`) and
//! deletes (`DELETE`) its registration at `registration_client_uri` with its registration
//! access token, and nobody else can.

use crate::common::*;
use crate::grpc::as_client;
use latchkey_core::model::ClientTier;
use latchkey_core::secret;
use latchkey_core::store::ClientStore;
use latchkey_proto::v1 as pb;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

const REDIRECT: &str = "http://127.0.0.1:7777/callback";

/// An app whose registration allowance does not run out in a test that sends many requests
/// from one address (one test below proves the allowance applies).
async fn app() -> TestApp {
    spawn_app_with(|s| s.rate_limit_register_per_min = 0).await
}

/// What a registration answered.
struct Registered {
    id: String,
    token: String,
    uri: String,
    secret: Option<String>,
    body: Value,
}

async fn registered(app: &TestApp, metadata: Value) -> Registered {
    let res = app.register(metadata).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    Registered {
        id: body["client_id"].as_str().expect("client_id").to_owned(),
        token: body["registration_access_token"]
            .as_str()
            .expect("registration_access_token")
            .to_owned(),
        uri: body["registration_client_uri"]
            .as_str()
            .expect("registration_client_uri")
            .to_owned(),
        secret: body["client_secret"].as_str().map(str::to_owned),
        body,
    }
}

fn public_app() -> Value {
    json!({
        "client_name": "Test MCP Client",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
    })
}

/// A request to a client configuration endpoint, with `token` as a bearer token if given.
fn at(method: Method, uri: &str, token: Option<&str>) -> RequestBuilder {
    let req = http().request(method, uri);
    match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

async fn send(req: RequestBuilder) -> Response {
    req.send().await.expect("the request is answered")
}

/// `metadata` as the body of a `PUT`.
fn put(uri: &str, token: &str, metadata: &Value) -> RequestBuilder {
    at(Method::PUT, uri, Some(token)).json(metadata)
}

/// Asserts an RFC 6750 refusal: 401, `invalid_token`, and a Bearer challenge.
async fn assert_invalid_token(res: Response, why: &str) {
    assert_eq!(res.status(), 401, "{why}");
    assert_eq!(
        res.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer error=\"invalid_token\""),
        "{why}"
    );
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "invalid_token", "{why}");
}

#[tokio::test]
async fn a_request_with_no_credential_gets_a_bare_bearer_challenge_without_an_error_code() {
    // RFC 6750 §3.1: no authentication information, no error code in the challenge.
    let app = app().await;
    let reg = registered(&app, public_app()).await;
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let res = send(at(method.clone(), &reg.uri, None)).await;
        assert_eq!(res.status(), 401, "{method}");
        assert_eq!(
            res.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "{method}"
        );
    }
    // A credential that was sent and refused still says invalid_token.
    assert_invalid_token(
        send(at(Method::GET, &reg.uri, Some("not-a-token"))).await,
        "a wrong token",
    )
    .await;
}

async fn error_of(res: Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.expect("json");
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_client_reads_its_registration_with_its_token_and_only_the_tokens_hash_is_stored() {
    let app = app().await;
    let reg = registered(
        &app,
        json!({"client_name": "Web", "redirect_uris": ["https://app.example.com/cb"]}),
    )
    .await;
    assert_eq!(reg.uri, app.url(&format!("/register/{}", reg.id)));
    assert!(reg.secret.is_some());

    let res = send(at(Method::GET, &reg.uri, Some(&reg.token))).await;

    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["content-type"], "application/json");
    let read: Value = res.json().await.expect("json");
    let mut expected = reg.body.clone();
    expected
        .as_object_mut()
        .expect("object")
        .remove("client_secret");
    assert_eq!(read, expected, "the registration response, less the secret");
    let row = app
        .store()
        .await
        .find_client(&reg.id)
        .await
        .expect("db")
        .expect("client");
    assert_eq!(row.registration_token_hash, Some(secret::hash(&reg.token)));
    assert!(!row.metadata.to_string().contains(&reg.token));
}

#[tokio::test]
async fn a_replacement_replaces_the_metadata_and_is_checked_as_a_registration() {
    let app = app().await;
    let reg = registered(
        &app,
        json!({
            "client_name": "Web",
            "logo_uri": "https://app.example.com/logo.png",
            "redirect_uris": ["https://app.example.com/cb"],
        }),
    )
    .await;
    let other = registered(&app, public_app()).await;

    let res = send(put(
        &reg.uri,
        &reg.token,
        &json!({
            "client_id": reg.id,
            "client_name": "Web, renamed",
            "redirect_uris": ["https://app.example.com/cb2"],
        }),
    ))
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let replaced: Value = res.json().await.expect("json");
    assert_eq!(replaced["client_name"], "Web, renamed");
    assert_eq!(
        replaced["redirect_uris"],
        json!(["https://app.example.com/cb2"])
    );
    assert!(replaced.get("logo_uri").is_none(), "replace, not merge");
    assert!(
        replaced.get("client_secret").is_none(),
        "the secret is kept"
    );
    let read: Value = send(at(Method::GET, &reg.uri, Some(&reg.token)))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(read, replaced);

    let bad = |f: &dyn Fn(&mut Value)| {
        let mut m = json!({"client_id": reg.id, "redirect_uris": ["https://app.example.com/cb"]});
        f(&mut m);
        m
    };
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            bad(&|m| m["redirect_uris"] = json!(["http://app.example.com/cb"])),
            400,
            "invalid_redirect_uri",
            "a redirect URI a registration may not have",
        ),
        (
            bad(&|m| m["client_id"] = json!(other.id)),
            400,
            "invalid_client_metadata",
            "another client's id in the body",
        ),
        (
            bad(&|m| {
                m.as_object_mut().expect("object").remove("client_id");
            }),
            400,
            "invalid_client_metadata",
            "no client_id in the body",
        ),
        (
            bad(&|m| m["client_secret"] = json!("chosen by the client")),
            400,
            "invalid_client_metadata",
            "a client_secret that is not the current one",
        ),
        (
            bad(&|m| m["registration_access_token"] = json!(reg.token)),
            400,
            "invalid_client_metadata",
            "a field only the server sets",
        ),
    ];
    for (body, status, error, why) in cases {
        let got = error_of(send(put(&reg.uri, &reg.token, &body)).await).await;
        assert_eq!(got, (status, error.to_owned()), "{why}");
    }
    let unchanged: Value = send(at(Method::GET, &reg.uri, Some(&reg.token)))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(unchanged, replaced, "a refused replacement changes nothing");
    let not_json = send(
        at(Method::PUT, &reg.uri, Some(&reg.token))
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await;
    assert_eq!(
        error_of(not_json).await,
        (400, "invalid_request".to_owned())
    );
}

#[tokio::test]
async fn a_replacement_cannot_escalate_the_tier_or_win_grants_without_a_user() {
    let app = app().await;
    app.core()
        .add_resource(RESOURCE, None, true)
        .await
        .expect("resource");
    let reg = registered(
        &app,
        json!({"client_name": "Web", "redirect_uris": ["https://app.example.com/cb"]}),
    )
    .await;
    let secret = reg.secret.clone().expect("confidential");

    let res = send(put(
        &reg.uri,
        &reg.token,
        &json!({
            "client_id": reg.id,
            "client_secret": secret,
            "redirect_uris": ["https://app.example.com/cb"],
            "grant_types": ["authorization_code", "client_credentials"],
            "tier": "operator",
            "audiences": [RESOURCE],
            "resources": [RESOURCE],
            "trusted_redirects": true,
        }),
    ))
    .await;

    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["grant_types"], json!(["authorization_code"]));
    let row = app
        .store()
        .await
        .find_client(&reg.id)
        .await
        .expect("db")
        .expect("client");
    assert_eq!(row.tier, ClientTier::Dynamic);
    assert!(row.audiences.is_empty());
    assert!(row.resources.is_empty());
    assert!(!row.trusted_redirects);
    let (status, token) = app
        .token_with(
            http()
                .post(app.url("/token"))
                .basic_auth(&reg.id, Some(&secret))
                .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)]),
        )
        .await;
    assert_eq!(status, 400, "{token}");
    assert_eq!(token["error"], "unauthorized_client");
}

#[tokio::test]
async fn deleting_a_registration_ends_the_client_and_every_token_it_was_issued() {
    let app = app().await;
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.add_user(&email).await;
    let reg = registered(&app, public_app()).await;
    let p = pkce();
    let code = code_flow(&app, &auth_params(&reg.id, REDIRECT, &p), &email)
        .await
        .remove("code")
        .expect("code");
    let (status, tokens) = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
            ("client_id", &reg.id),
        ])
        .await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().expect("at").to_owned();
    let refresh = tokens["refresh_token"].as_str().expect("rt").to_owned();
    let rs = app.introspector().await;
    let mut grpc = app.grpc().await;
    let verify = |token: &str| {
        as_client(
            pb::VerifyTokenRequest {
                token: token.to_owned(),
                audience: RESOURCE.to_owned(),
                required_scopes: Vec::new(),
            },
            &rs,
        )
    };
    let before = grpc
        .verify_token(verify(&access))
        .await
        .expect("rpc")
        .into_inner();
    assert!(before.valid, "{}", before.error_description);

    let res = send(at(Method::DELETE, &reg.uri, Some(&reg.token))).await;

    assert_eq!(res.status(), 204);
    let (status, body) = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &reg.id),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let after = grpc
        .verify_token(verify(&access))
        .await
        .expect("rpc")
        .into_inner();
    assert!(!after.valid, "an access token issued before the delete");
    assert_eq!(after.error, "invalid_token");
    assert_eq!(app.introspect(&rs, &access).await["active"], false);
    assert_eq!(app.introspect(&rs, &refresh).await["active"], false);
    assert!(
        app.store()
            .await
            .find_client(&reg.id)
            .await
            .expect("db")
            .is_none()
    );
    assert_invalid_token(
        send(at(Method::GET, &reg.uri, Some(&reg.token))).await,
        "the token after the delete",
    )
    .await;
}

#[tokio::test]
async fn every_request_without_the_clients_own_token_is_refused_with_a_bearer_challenge() {
    let app = app().await;
    let reg = registered(&app, public_app()).await;
    let other = registered(&app, public_app()).await;
    let deleted = registered(&app, public_app()).await;
    let res = send(at(Method::DELETE, &deleted.uri, Some(&deleted.token))).await;
    assert_eq!(res.status(), 204);
    let body = json!({"client_id": reg.id, "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});

    let with_headers = |method: Method, uri: &str, values: &[&str]| {
        let mut req = http().request(method, uri);
        for v in values {
            req = req.header("authorization", *v);
        }
        req
    };
    let unknown = app.url("/register/no-such-client");
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let cases: Vec<(RequestBuilder, &str)> = vec![
            (
                with_headers(method.clone(), &reg.uri, &[&format!("Basic {}", reg.token)]),
                "the token under another scheme",
            ),
            (
                with_headers(method.clone(), &reg.uri, &["Bearer "]),
                "an empty bearer token",
            ),
            (
                with_headers(
                    method.clone(),
                    &reg.uri,
                    &[
                        &format!("Bearer {}", reg.token),
                        &format!("Bearer {}", reg.token),
                    ],
                ),
                "two Authorization fields",
            ),
            (
                at(method.clone(), &reg.uri, Some("not-a-token")),
                "a malformed token",
            ),
            (
                at(method.clone(), &reg.uri, Some(&other.token)),
                "another client's token",
            ),
            (
                at(method.clone(), &deleted.uri, Some(&deleted.token)),
                "a token after its client was deleted",
            ),
            (
                at(method.clone(), &unknown, Some(&reg.token)),
                "a client that does not exist",
            ),
        ];
        for (req, why) in cases {
            let req = if method == Method::PUT {
                req.json(&body)
            } else {
                req
            };
            assert_invalid_token(send(req).await, &format!("{method} with {why}")).await;
        }
    }
    let row = app
        .store()
        .await
        .find_client(&reg.id)
        .await
        .expect("db")
        .expect("still there");
    assert_eq!(row.updated_at, row.created_at, "nothing changed it");
}

#[tokio::test]
async fn an_operators_client_is_not_managed_at_the_client_configuration_endpoint() {
    let app = app().await;
    let iat = app
        .core()
        .issue_initial_access_token(&[RESOURCE.to_owned()], None, 3600)
        .await
        .expect("initial access token")
        .token;
    let res = http()
        .post(app.url("/register"))
        .bearer_auth(&iat)
        .json(&json!({"redirect_uris": ["https://app.example.com/cb"]}))
        .send()
        .await
        .expect("POST /register");
    assert_eq!(res.status(), 201);
    let by_iat: Value = res.json().await.expect("json");
    assert!(by_iat.get("registration_access_token").is_none());
    assert!(by_iat.get("registration_client_uri").is_none());
    let (by_cli, _) = app.operator_client(&[RESOURCE], None).await;
    let dynamic = registered(&app, public_app()).await;

    for id in [by_iat["client_id"].as_str().expect("id"), by_cli.as_str()] {
        let uri = app.url(&format!("/register/{id}"));
        for token in [iat.as_str(), dynamic.token.as_str()] {
            for method in [Method::GET, Method::PUT, Method::DELETE] {
                let req = at(method.clone(), &uri, Some(token));
                let req = if method == Method::PUT {
                    req.json(&json!({"client_id": id, "redirect_uris": [REDIRECT]}))
                } else {
                    req
                };
                assert_invalid_token(send(req).await, &format!("{method} {id}")).await;
            }
        }
        assert!(
            app.store()
                .await
                .find_client(id)
                .await
                .expect("db")
                .is_some(),
            "not deleted: {id}"
        );
    }
}

#[tokio::test]
async fn managing_a_registration_spends_the_registration_rate_limit() {
    let app = spawn_app_with(|s| s.rate_limit_register_per_min = 3).await;
    let reg = registered(&app, public_app()).await;

    let first = send(at(Method::GET, &reg.uri, Some(&reg.token))).await;
    let second = send(at(Method::GET, &reg.uri, Some("guess"))).await;
    let third = send(at(Method::DELETE, &reg.uri, Some("guess"))).await;

    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 401);
    assert_eq!(
        third.status(),
        429,
        "one registration and two management requests"
    );
    assert!(third.headers().get("retry-after").is_some());
}

#[tokio::test]
async fn the_sql_store_writes_a_replacement_only_while_the_tier_and_token_are_as_read() {
    let app = app().await;
    let reg = registered(&app, public_app()).await;
    let store = app.store().await;
    let mut next = store
        .find_client(&reg.id)
        .await
        .expect("db")
        .expect("client");
    let hash = next.registration_token_hash.clone().expect("hash");
    next.name = Some("Renamed".into());

    let wrong_token = store
        .replace_client_metadata(&next, &secret::hash("another token"))
        .await
        .expect("db");
    store
        .set_client_tier(&reg.id, ClientTier::Operator, chrono::Utc::now())
        .await
        .expect("db");
    let after_tier_change = store
        .replace_client_metadata(&next, &hash)
        .await
        .expect("db");
    store
        .set_client_tier(&reg.id, ClientTier::Dynamic, chrono::Utc::now())
        .await
        .expect("db");
    let as_read = store
        .replace_client_metadata(&next, &hash)
        .await
        .expect("db");

    assert!(!wrong_token);
    assert!(!after_tier_change);
    assert!(as_read);
    let row = store
        .find_client(&reg.id)
        .await
        .expect("db")
        .expect("client");
    assert_eq!(row.name.as_deref(), Some("Renamed"));
    assert_eq!(row.metadata, next.metadata);
    assert_eq!(row.registration_token_hash, Some(hash));
}
