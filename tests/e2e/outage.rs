//! Outages and a hostile shared store.
//!
//! - The database cut off: a TCP proxy this test owns stands between Latchkey and PostgreSQL,
//!   and the test cuts it (every open connection closed, new ones held unanswered, as a
//!   partition holds them) and restores it. Requests that need the database answer 503
//!   `temporarily_unavailable` with `Retry-After` at once, readiness answers 503 within a
//!   second, everything that needs no database keeps working, and recovery loses nothing.
//!   Needs `LATCHKEY_TEST_DATABASE_URL` (PostgreSQL); SQLite has no such outage.
//! - Someone who can write to Redis: a session or revocation written by hand, moved, or
//!   altered does nothing. Needs `LATCHKEY_TEST_REDIS_URL`.
//!
//! Every request here is bounded by a client timeout, so a request that waits as it used to
//! (the pool's 10 s) fails the test instead of slowing it; nothing asserts a measured time.

use crate::common::*;
use deadpool_redis::redis;
use latchkey_core::denylist::{RevocationEvent, RevokedKind};
use latchkey_core::keys::Kek;
use latchkey_core::sealing::{Purpose, Sealer};
use latchkey_core::session::AuthorizationSession;
use latchkey_proto::v1 as pb;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Longer than the acquire timeout (2 s) plus a slow machine's overhead, far shorter than the
/// 10 s every request used to wait.
const DB_REQUEST_BUDGET: Duration = Duration::from_secs(5);
/// Readiness must answer within a second.
const READY_BUDGET: Duration = Duration::from_secs(1);

/// A TCP proxy between Latchkey and PostgreSQL, owned by the test. Cut, it closes every
/// open connection and holds new ones without a byte of answer; restored, it closes the held
/// ones and forwards new ones again.
struct CutProxy {
    port: u16,
    cut: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (cut, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    if *rx.borrow_and_update() {
                        // Held unanswered until restored, then closed.
                        let _ = rx.wait_for(|cut| !*cut).await;
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { port, cut, task }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut.send_replace(true);
        self.task.abort();
    }
}

/// A client whose every request gives up after `budget`.
fn bounded(budget: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(budget)
        .build()
        .expect("client")
}

/// Asserts that `res` is a 503 `temporarily_unavailable` with a whole-seconds `Retry-After`.
async fn assert_unavailable(res: reqwest::Response, what: &str) {
    let status = res.status();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let headers = format!("{:?}", res.headers());
    let body = res.text().await.expect("body");
    assert_eq!(status, 503, "{what}: {body} {headers}");
    assert!(
        retry.is_some_and(|s| (1..=60).contains(&s)),
        "{what}: Retry-After {retry:?}: {body} {headers}"
    );
    assert!(body.contains("temporarily_unavailable"), "{what}: {body}");
}

async fn verify(app: &TestApp, rs: &(String, String), token: &str) -> bool {
    use base64::Engine;
    let mut req = tonic::Request::new(pb::VerifyTokenRequest {
        token: token.to_owned(),
        audience: RESOURCE.to_owned(),
        required_scopes: Vec::new(),
    });
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", rs.0, rs.1));
    req.metadata_mut().insert(
        "authorization",
        format!("Basic {basic}").parse().expect("ascii"),
    );
    let mut c = app.grpc().await;
    tokio::time::timeout(Duration::from_secs(2), c.verify_token(req))
        .await
        .expect("VerifyToken answers at once")
        .expect("VerifyToken")
        .into_inner()
        .valid
}

#[tokio::test]
async fn a_database_outage_is_answered_at_once_and_recovery_loses_nothing() {
    let Ok(admin_url) = std::env::var("LATCHKEY_TEST_DATABASE_URL") else {
        eprintln!(
            "LATCHKEY_TEST_DATABASE_URL is unset: the database outage suite runs on PostgreSQL in CI"
        );
        return;
    };
    if admin_url.is_empty() {
        eprintln!(
            "LATCHKEY_TEST_DATABASE_URL is empty: the database outage suite runs on PostgreSQL in CI"
        );
        return;
    }
    let admin = url::Url::parse(&admin_url).expect("a URL");
    let upstream = tokio::net::lookup_host((
        admin.host_str().expect("a host"),
        admin.port().unwrap_or(5432),
    ))
    .await
    .expect("resolve PostgreSQL")
    .next()
    .expect("an address");
    let proxy = CutProxy::start(upstream).await;
    let port = proxy.port;
    let app = spawn_app_with(|s| {
        let mut url = url::Url::parse(&s.database_url).expect("database URL");
        url.set_port(Some(port)).expect("a port");
        s.database_url = url.to_string();
        // The readiness answer below names what is down.
        s.public_health_details = true;
    })
    .await;

    // Before: a user's tokens, a resource server, an operator's client.
    let f = flow(&app).await;
    let tokens = f.exchange(&app).await;
    let access = tokens["access_token"].as_str().expect("at").to_owned();
    let refresh = tokens["refresh_token"].as_str().expect("rt").to_owned();
    let rs = app.introspector().await;
    let (svc, svc_secret) = app.operator_client(&[RESOURCE], None).await;
    let http = bounded(DB_REQUEST_BUDGET);
    let refresh_form = |rt: &str| {
        vec![
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("refresh_token".to_owned(), rt.to_owned()),
            ("client_id".to_owned(), f.client_id.clone()),
        ]
    };
    let registration = json!({
        "client_name": "during the outage",
        "redirect_uris": ["http://127.0.0.1:7777/callback"],
        "token_endpoint_auth_method": "none",
    });

    let mut admin = app.admin_grpc().await;
    proxy.cut();
    // Spread over a few seconds, so that refusals while the breaker is open, and the probes
    // it lets through, are all seen.
    for round in 0..6 {
        let what = |w: &str| format!("{w}, round {round}");
        let res = http
            .post(app.url("/register"))
            .json(&registration)
            .send()
            .await
            .expect("registration answers without waiting out the old timeout");
        assert_unavailable(res, &what("registration")).await;
        let res = http
            .post(app.url("/token"))
            .form(&refresh_form(&refresh))
            .send()
            .await
            .expect("refresh answers without waiting out the old timeout");
        assert_unavailable(res, &what("refresh")).await;

        // The login page needs no database; the sign-in itself does, and gets a 503 page.
        let page = http
            .get(app.url("/authorize"))
            .query(&auth_params(&f.client_id, &f.redirect_uri, &f.pkce))
            .send()
            .await
            .expect("authorize");
        assert_eq!(page.status(), 200, "{}", what("the login page"));
        let (cookie, _) = session_cookie(&page);
        let html = page.text().await.expect("html");
        let res = http
            .post(app.url("/authorize/login"))
            .header("cookie", cookie)
            .form(&[
                ("csrf_token", csrf(&html).as_str()),
                ("email", f.email.as_str()),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .expect("sign-in answers without waiting out the old timeout");
        assert_eq!(res.status(), 503, "{}", what("sign-in"));
        assert!(
            res.headers().contains_key("retry-after"),
            "{}",
            what("sign-in")
        );

        // gRPC: UNAVAILABLE, with the same code in its details.
        let status =
            tokio::time::timeout(DB_REQUEST_BUDGET, admin.list_users(pb::ListUsersRequest {}))
                .await
                .expect("ListUsers answers without waiting out the old timeout")
                .expect_err("the database is unreachable");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{}", what("gRPC"));

        let ready = bounded(READY_BUDGET)
            .get(app.url("/health/ready"))
            .send()
            .await
            .expect("readiness answers within a second");
        assert_eq!(ready.status(), 503, "{}", what("readiness"));
        let body: Value = ready.json().await.expect("json");
        assert_eq!(body["database"], "down", "{}", what("readiness"));

        // What needs no database keeps working.
        assert!(verify(&app, &rs, &access).await, "{}", what("VerifyToken"));
        let (s, body) = app
            .token_with(
                http.post(app.url("/token"))
                    .basic_auth(&svc, Some(&svc_secret))
                    .form(&[("grant_type", "client_credentials")]),
            )
            .await;
        assert_eq!(s, 200, "{}: {body}", what("client_credentials"));
        for path in ["/jwks.json", "/.well-known/oauth-authorization-server"] {
            let res = http.get(app.url(path)).send().await.expect(path);
            assert_eq!(res.status(), 200, "{}", what(path));
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    proxy.restore();
    // Recovery: the breaker lets a probe through within a second, and it succeeds.
    let mut recovered = false;
    for _ in 0..100 {
        let res = http
            .post(app.url("/register"))
            .json(&registration)
            .send()
            .await
            .expect("registration");
        if res.status() == 201 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "registration works again once the database is back"
    );
    let ready = bounded(READY_BUDGET)
        .get(app.url("/health/ready"))
        .send()
        .await
        .expect("readiness");
    assert_eq!(ready.status(), 200);
    // Nothing was lost: the refresh token refused during the outage still works, once.
    let (s, body) = app
        .token_with(http.post(app.url("/token")).form(&refresh_form(&refresh)))
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(
        verify(&app, &rs, &access).await,
        "the token issued before still verifies"
    );
    let again = code_flow(
        &app,
        &auth_params(&f.client_id, &f.redirect_uri, &f.pkce),
        &f.email,
    )
    .await;
    assert!(again.contains_key("code"), "sign-in works again");
}

/// The app's Redis, written directly as an attacker with write access would.
async fn redis_conn(url: &str) -> deadpool_redis::Connection {
    deadpool_redis::Config::from_url(url)
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .expect("pool")
        .get()
        .await
        .expect("connect to Redis")
}

/// The authorization session cookie in `res`, as `name=value`, and its value.
fn session_cookie(res: &reqwest::Response) -> (String, String) {
    let pair = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| {
            pair.split('=')
                .next()
                .is_some_and(|n| n.ends_with("latchkey_authz"))
        })
        .expect("the session cookie")
        .to_owned();
    let value = pair
        .split_once('=')
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    (pair, value)
}

/// Where the session behind the cookie `value` is in Redis.
fn redis_key(handle: &str) -> String {
    latchkey_redis::session_key(&latchkey_core::secret::hash(handle))
}

/// A browser without a cookie jar: the test carries the session cookie by hand, so that it
/// can see (and an attacker can pick) which session a request names.
struct Visit {
    cookie: String,
    handle: String,
    csrf: String,
}

async fn open_authorization(app: &TestApp, params: &[(&str, &str)]) -> Visit {
    let res = http()
        .get(app.url("/authorize"))
        .query(params)
        .send()
        .await
        .expect("authorize");
    assert_eq!(res.status(), 200, "the login page");
    let (cookie, handle) = session_cookie(&res);
    let html = res.text().await.expect("html");
    Visit {
        cookie,
        handle,
        csrf: csrf(&html),
    }
}

/// Signs in on `visit`; returns the visit as the consent page left it (a new handle).
async fn sign_in(app: &TestApp, visit: &Visit, email: &str) -> Visit {
    let res = http()
        .post(app.url("/authorize/login"))
        .header("cookie", &visit.cookie)
        .form(&[
            ("csrf_token", visit.csrf.as_str()),
            ("email", email),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 200, "the consent page");
    let (cookie, handle) = session_cookie(&res);
    let html = res.text().await.expect("html");
    Visit {
        cookie,
        handle,
        csrf: csrf(&html),
    }
}

/// Allows on `visit` with `csrf`: the status, and the code if one came back.
async fn allow(app: &TestApp, visit: &Visit, csrf: &str) -> (u16, Option<String>) {
    let res = http()
        .post(app.url("/authorize/consent"))
        .header("cookie", &visit.cookie)
        .form(&[("csrf_token", csrf), ("decision", "allow")])
        .send()
        .await
        .expect("consent");
    let code = res
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .and_then(|l| url::Url::parse(l).ok())
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
        });
    (res.status().as_u16(), code)
}

#[tokio::test]
async fn a_session_written_to_redis_by_hand_signs_nobody_in() {
    let Some(redis_url) = test_redis_url() else {
        eprintln!("LATCHKEY_TEST_REDIS_URL is unset: the Redis writer suite runs in CI");
        return;
    };
    let app = spawn_app_with(|s| {
        s.redis_url = Some(redis_url.clone());
        // Rate limits in Redis are per address, and every test runs on 127.0.0.1.
        s.rate_limit_authorize_per_min = 0;
        s.rate_limit_login_per_min = 0;
        s.rate_limit_register_per_min = 0;
    })
    .await;
    let mut redis = redis_conn(&redis_url).await;
    let victim = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    let victim_id: uuid::Uuid = app.add_user(&victim).await.parse().expect("uuid");
    let redirect_uri = "http://127.0.0.1:7777/callback";
    let client_id = app.public_client(redirect_uri).await;
    let p = pkce();
    let params = auth_params(&client_id, redirect_uri, &p);

    // 1. A signed-in session written by hand, in the plain JSON sessions used to be stored as.
    let attacker = open_authorization(&app, &params).await;
    let forged = AuthorizationSession {
        client_id: client_id.clone(),
        client_name: "Test MCP Client".into(),
        redirect_uri: redirect_uri.into(),
        redirect_uri_given: true,
        state: Some("xyz-state".into()),
        code_challenge: p.challenge.clone(),
        scope: "mcp:tools".into(),
        resource: RESOURCE.into(),
        csrf_hash: latchkey_core::secret::hash(&attacker.csrf),
        user_id: Some(victim_id),
        user_email: Some(victim.clone()),
        expires_at: app.core().now() + chrono::Duration::minutes(10),
        network: None,
        document: None,
    };
    let () = redis::cmd("SET")
        .arg(redis_key(&attacker.handle))
        .arg(serde_json::to_vec(&forged).expect("json"))
        .arg("EX")
        .arg(600)
        .query_async(&mut redis)
        .await
        .expect("SET");
    let (status, code) = allow(&app, &attacker, &attacker.csrf).await;
    assert_eq!(
        (status, code),
        (400, None),
        "a session in plain JSON is no session"
    );

    // 2. A victim's real session, sealed by the server, moved under the attacker's key.
    let victim_visit = sign_in(&app, &open_authorization(&app, &params).await, &victim).await;
    let sealed: Vec<u8> = redis::cmd("GET")
        .arg(redis_key(&victim_visit.handle))
        .query_async(&mut redis)
        .await
        .expect("GET the victim's session");
    assert!(
        !String::from_utf8_lossy(&sealed).contains(&victim),
        "the session is not readable in Redis"
    );
    let attacker = open_authorization(&app, &params).await;
    let () = redis::cmd("SET")
        .arg(redis_key(&attacker.handle))
        .arg(&sealed)
        .arg("EX")
        .arg(600)
        .query_async(&mut redis)
        .await
        .expect("SET");
    let (status, code) = allow(&app, &attacker, &victim_visit.csrf).await;
    assert_eq!(
        (status, code),
        (400, None),
        "a sealed session does not open under another session's key"
    );
    // The victim's own session is untouched and still works: the seal is what refused the
    // attacker, not a broken flow.
    let (status, code) = allow(&app, &victim_visit, &victim_visit.csrf).await;
    assert_eq!(status, 303);
    assert!(code.is_some(), "the victim's own consent gives a code");

    // 3. A sealed session altered in place.
    let victim_visit = sign_in(&app, &open_authorization(&app, &params).await, &victim).await;
    let mut sealed: Vec<u8> = redis::cmd("GET")
        .arg(redis_key(&victim_visit.handle))
        .query_async(&mut redis)
        .await
        .expect("GET");
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    let () = redis::cmd("SET")
        .arg(redis_key(&victim_visit.handle))
        .arg(&sealed)
        .arg("EX")
        .arg(600)
        .query_async(&mut redis)
        .await
        .expect("SET");
    let (status, code) = allow(&app, &victim_visit, &victim_visit.csrf).await;
    assert_eq!(
        (status, code),
        (400, None),
        "an altered session is no session"
    );
}

#[tokio::test]
async fn a_revocation_published_on_redis_by_hand_revokes_nothing() {
    let Some(redis_url) = test_redis_url() else {
        eprintln!("LATCHKEY_TEST_REDIS_URL is unset: the Redis writer suite runs in CI");
        return;
    };
    let app = spawn_app_with(|s| {
        s.redis_url = Some(redis_url.clone());
        // Rate limits in Redis are per address, and every test runs on 127.0.0.1.
        s.rate_limit_token_per_min = 0;
    })
    .await;
    let mut redis = redis_conn(&redis_url).await;
    let rs = app.introspector().await;
    // Three tokens, each revocable alone by its `jti`.
    let (svc, svc_secret) = app.operator_client(&[RESOURCE], None).await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let (s, body) = app
            .token_with(
                http()
                    .post(app.url("/token"))
                    .basic_auth(&svc, Some(&svc_secret))
                    .form(&[("grant_type", "client_credentials")]),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        tokens.push(body["access_token"].as_str().expect("at").to_owned());
    }
    let jti = |t: &str| jwt_parts(t).1["jti"].as_str().expect("jti").to_owned();
    let now = app.core().now().timestamp();
    let event = |t: &str| RevocationEvent {
        id: uuid::Uuid::new_v4().to_string(),
        kind: RevokedKind::Token,
        subject: jti(t),
        revoked_at: now,
        expires_at: now + 3600,
        client_id: None,
    };
    // Messages sealed as another replica seals them: what the app must apply.
    let genuine = Sealer::new(
        &Kek::from_base64(TEST_KEK).expect("the harness's key"),
        Purpose::RevocationMessage,
    );
    let sealed = |ev: &RevocationEvent| {
        genuine
            .seal(
                latchkey_redis::REVOCATION_CHANNEL.as_bytes(),
                &serde_json::to_vec(ev).expect("json"),
            )
            .expect("seal")
    };
    let publish = async |redis: &mut deadpool_redis::Connection, payload: Vec<u8>| {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(latchkey_redis::REVOCATION_CHANNEL)
            .arg(payload)
            .query_async(redis)
            .await
            .expect("PUBLISH");
    };
    // Forgeries of the first token's revocation: in plain JSON, and sealed but altered.
    let forgeries = || {
        let mut altered = sealed(&event(&tokens[0]));
        altered[10] ^= 1;
        vec![
            serde_json::to_vec(&event(&tokens[0])).expect("json"),
            altered,
        ]
    };

    // Until the app's subscription is up, a genuine revocation of the second token goes
    // unheard; publish the forgeries before each try.
    let mut heard = false;
    for _ in 0..50 {
        for forged in forgeries() {
            publish(&mut redis, forged).await;
        }
        publish(&mut redis, sealed(&event(&tokens[1]))).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !verify(&app, &rs, &tokens[1]).await {
            heard = true;
            break;
        }
    }
    assert!(heard, "a sealed revocation on the channel is applied");
    // The subscription is up: forgeries, then a genuine revocation of the third token.
    // Messages on one subscription arrive in order, so once the third is revoked the
    // forgeries before it have been read too.
    for forged in forgeries() {
        publish(&mut redis, forged).await;
    }
    publish(&mut redis, sealed(&event(&tokens[2]))).await;
    let mut third = false;
    for _ in 0..50 {
        if !verify(&app, &rs, &tokens[2]).await {
            third = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        third,
        "the genuine revocation after the forgeries is applied"
    );
    assert!(
        verify(&app, &rs, &tokens[0]).await,
        "forged revocation messages revoke nothing"
    );
}
