//! Starting the whole system in-process, and driving it as an MCP client would.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey::{Running, Settings};
use latchkey_core::clock::OffsetClock;
use latchkey_proto::v1::admin_service_client::AdminServiceClient;
use latchkey_proto::v1::auth_service_client::AuthServiceClient;
use latchkey_proto::v1::verification_service_client::VerificationServiceClient;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Form or query parameters.
pub type Form<'a> = Vec<(&'a str, &'a str)>;

pub const GATEWAY_SECRET: &str = "test-gateway-secret-0123456789abcdef";
pub const ADMIN_SECRET: &str = "test-admin-secret-0123456789abcdef0123";
pub const PASSWORD: &str = "correct horse battery";
pub const RESOURCE: &str = "https://mcp.example.com/mcp";
/// The key-encryption key of every app that uses Redis (base64 of the bytes 0 to 31).
pub const TEST_KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// One isolated system: its own database, its own ports.
pub struct TestApp {
    /// Whether dropping this app drops its database (a peer shares another's).
    owns_database: bool,
    /// The core's clock: move it forward to let something expire.
    pub clock: Arc<OffsetClock>,
    pub settings: Settings,
    pub base: String,
    pub grpc_url: String,
    /// ForwardAuth's own listener (`GET /verify`), never the public one.
    pub forward_auth: String,
    pub running: Option<Running>,
    pub database_url: String,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stopper().send(true);
        }
        if self.owns_database {
            drop_database(&self.database_url);
        }
    }
}

/// Drops the database when the test ends.
pub struct DbGuard(pub String);

impl Drop for DbGuard {
    fn drop(&mut self) {
        drop_database(&self.0);
    }
}

/// Removes a test database: the SQLite files, or the PostgreSQL database (forcibly, since the
/// stopped server's pool may still hold connections). Best effort: a leftover is harmless.
pub fn drop_database(database_url: &str) {
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
        return;
    }
    let (Ok(admin_url), Ok(url)) = (
        std::env::var("LATCHKEY_TEST_DATABASE_URL"),
        url::Url::parse(database_url),
    ) else {
        return;
    };
    let name = url.path().trim_start_matches('/').to_owned();
    if !name.starts_with("lk_") {
        return;
    }
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let admin = sea_orm::Database::connect(&admin_url).await.ok()?;
            latchkey_store::execute_unprepared(
                &admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await
            .ok()?;
            admin.close().await.ok()
        })
    })
    .join();
}

/// A fresh database: a new PostgreSQL database when `LATCHKEY_TEST_DATABASE_URL` is set,
/// otherwise a new SQLite file.
pub async fn fresh_database() -> String {
    let name = format!("lk_{}", uuid::Uuid::new_v4().simple());
    match std::env::var("LATCHKEY_TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let admin = sea_orm::Database::connect(&admin_url)
                .await
                .expect("connect to the test PostgreSQL");
            latchkey_store::execute_unprepared(&admin, &format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
            admin.close().await.ok();
            let mut url = url::Url::parse(&admin_url).expect("LATCHKEY_TEST_DATABASE_URL is a URL");
            url.set_path(&format!("/{name}"));
            url.to_string()
        }
        _ => {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            format!("sqlite://{}?mode=rwc", path.display())
        }
    }
}

/// Presents `Bearer <secret>` on every call.
#[derive(Clone, Copy)]
pub struct Bearer(pub &'static str);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if !req.metadata().contains_key("authorization") {
            req.metadata_mut().insert(
                "authorization",
                format!("Bearer {}", self.0).parse().expect("ascii"),
            );
        }
        Ok(req)
    }
}

/// The system's dependencies in a test: the test's clock, which the test moves forward
/// instead of sleeping, shared by every replica of one app.
fn deps(clock: &Arc<OffsetClock>) -> latchkey::Deps {
    latchkey::Deps {
        clock: clock.clone(),
        stores: None,
        ..latchkey::Deps::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_deps(configure, |_| {}).await
}

/// As [`spawn_app_with`], and `adjust` changes the dependencies too (the outbound client's
/// limits, a document fetch's timeout).
pub async fn spawn_app_with_deps(
    configure: impl FnOnce(&mut Settings),
    adjust: impl FnOnce(&mut latchkey::Deps),
) -> TestApp {
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
    let base = format!(
        "http://127.0.0.1:{}",
        http.local_addr().expect("addr").port()
    );
    let database_url = fresh_database().await;
    let mut settings = Settings {
        metrics_addr: None,
        forward_auth_addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        issuer: base.clone(),
        database_url: database_url.clone(),
        gateway_secret: Some(GATEWAY_SECRET.to_owned().into()),
        admin_secret: Some(ADMIN_SECRET.to_owned().into()),
        ..Settings::default()
    };
    configure(&mut settings);
    // Sessions and revocation messages in Redis are sealed under a key derived from the
    // key-encryption key, so Redis needs one (as production does anyway).
    if settings.redis_url.is_some() && settings.key_encryption_key.is_none() {
        settings.key_encryption_key = Some(TEST_KEK.to_owned().into());
    }
    let clock = Arc::new(OffsetClock::default());
    let mut deps = deps(&clock);
    adjust(&mut deps);
    let running = latchkey::start_all_with(&settings, deps, http, grpc)
        .await
        .expect("start the system");
    let grpc_url = format!("http://{}", running.grpc_addr.expect("grpc addr"));
    TestApp {
        owns_database: true,
        clock,
        settings,
        base,
        grpc_url,
        forward_auth: forward_auth_base(&running),
        running: Some(running),
        database_url,
    }
}

/// The base URL of ForwardAuth's listener; empty when it is off.
fn forward_auth_base(running: &Running) -> String {
    running
        .forward_auth_addr
        .map(|a| format!("http://{a}"))
        .unwrap_or_default()
}

/// Redis for the suites that share state, when `LATCHKEY_TEST_REDIS_URL` is set.
pub fn test_redis_url() -> Option<String> {
    std::env::var("LATCHKEY_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Another AuthService replica on the same database (and Redis, if the app uses it).
pub struct Replica {
    pub running: Running,
    pub grpc_url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.running.stopper().send(true);
    }
}

impl Replica {
    pub async fn grpc(&self) -> VerificationServiceClient<Channel> {
        VerificationServiceClient::connect(self.grpc_url.clone())
            .await
            .expect("connect replica")
    }
}

impl TestApp {
    /// The app's database, read directly as the test's own fixture and witness (the core
    /// keeps its stores to itself).
    pub async fn store(&self) -> latchkey_store::SeaStore {
        latchkey_store::SeaStore::connect(&self.settings.database_url)
            .await
            .expect("connect to the app's database")
    }

    /// Lets `secs` seconds pass for the system, without waiting for them.
    pub fn advance(&self, secs: i64) {
        self.clock.advance(chrono::Duration::seconds(secs));
    }

    /// A second whole system (gateway and AuthService) on the same database, Redis and
    /// issuer, as another pair of replicas behind one load balancer would be.
    pub async fn peer(&self) -> TestApp {
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        let base = format!(
            "http://127.0.0.1:{}",
            http.local_addr().expect("addr").port()
        );
        let running = latchkey::start_all_with(&self.settings, deps(&self.clock), http, grpc)
            .await
            .expect("start the peer");
        let grpc_url = format!("http://{}", running.grpc_addr.expect("grpc addr"));
        TestApp {
            owns_database: false,
            clock: self.clock.clone(),
            settings: self.settings.clone(),
            base,
            grpc_url,
            forward_auth: forward_auth_base(&running),
            running: Some(running),
            database_url: self.database_url.clone(),
        }
    }

    pub async fn replica(&self) -> Replica {
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        let running = latchkey::start_auth_with(&self.settings, deps(&self.clock), grpc)
            .await
            .expect("start replica");
        let grpc_url = format!("http://{}", running.grpc_addr.expect("grpc addr"));
        Replica { running, grpc_url }
    }

    pub fn core(&self) -> &latchkey_core::AuthCore {
        self.running
            .as_ref()
            .and_then(|r| r.core.as_deref())
            .expect("core")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A URL on ForwardAuth's listener.
    pub fn forward_auth_url(&self, path: &str) -> String {
        format!("{}{}", self.forward_auth, path)
    }

    /// The resource servers' service.
    pub async fn grpc(&self) -> VerificationServiceClient<Channel> {
        VerificationServiceClient::connect(self.grpc_url.clone())
            .await
            .expect("connect gRPC")
    }

    async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(self.grpc_url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect gRPC")
    }

    /// The gateway's service, presenting the gateway's credential.
    pub async fn gateway_grpc(&self) -> AuthServiceClient<InterceptedService<Channel, Bearer>> {
        AuthServiceClient::with_interceptor(self.channel().await, Bearer(GATEWAY_SECRET))
    }

    /// The operators' service, presenting the admin credential.
    pub async fn admin_grpc(&self) -> AdminServiceClient<InterceptedService<Channel, Bearer>> {
        AdminServiceClient::with_interceptor(self.channel().await, Bearer(ADMIN_SECRET))
    }

    pub async fn add_user(&self, email: &str) -> String {
        self.core()
            .create_user(email, PASSWORD)
            .await
            .expect("create user")
            .id
            .to_string()
    }

    pub async fn register(&self, metadata: Value) -> reqwest::Response {
        http()
            .post(self.url("/register"))
            .json(&metadata)
            .send()
            .await
            .expect("POST /register")
    }

    /// Registers a public client for the code flow; returns its id.
    pub async fn public_client(&self, redirect_uri: &str) -> String {
        let res = self
            .register(json!({
                "client_name": "Test MCP Client",
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
            }))
            .await;
        assert_eq!(res.status(), 201);
        res.json::<Value>().await.expect("json")["client_id"]
            .as_str()
            .expect("client_id")
            .to_owned()
    }

    /// Registers a confidential client; returns (id, secret).
    pub async fn confidential_client(&self, metadata: Value) -> (String, String) {
        let res = self.register(metadata).await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.expect("json");
        (
            body["client_id"].as_str().expect("id").to_owned(),
            body["client_secret"].as_str().expect("secret").to_owned(),
        )
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        self.token_with(http().post(self.url("/token")).form(form))
            .await
    }

    pub async fn token_with(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let res = req.send().await.expect("POST /token");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// A `client_credentials` access token for [`RESOURCE`], by `client` with Basic auth.
    pub async fn client_credentials_token(&self, (id, secret): (&str, &str)) -> String {
        let (status, body) = self
            .token_with(
                http()
                    .post(self.url("/token"))
                    .basic_auth(id, Some(secret))
                    .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)]),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().expect("token").to_owned()
    }

    pub async fn introspect(&self, client: &(String, String), token: &str) -> Value {
        let res = http()
            .post(self.url("/introspect"))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[("token", token)])
            .send()
            .await
            .expect("POST /introspect");
        assert_eq!(res.status(), 200);
        res.json().await.expect("json")
    }

    /// A resource server: a confidential client that owns [`RESOURCE`], so it may introspect
    /// and verify tokens for it.
    pub async fn introspector(&self) -> (String, String) {
        self.resource_server(&[RESOURCE]).await
    }

    /// A confidential client that owns `resources`, made by the operator as
    /// `latchkey client add --resource` makes one; it may also get `client_credentials`
    /// tokens for them.
    pub async fn resource_server(&self, resources: &[&str]) -> (String, String) {
        // One that owns nothing can have no client_credentials (it would have no audience).
        let metadata = resources.is_empty().then(
            || json!({ "client_name": "rs", "redirect_uris": ["https://rs.example.com/cb"] }),
        );
        let owned: Vec<String> = resources.iter().map(|r| r.to_string()).collect();
        let audiences = owned.clone();
        let metadata = metadata.unwrap_or_else(|| {
            json!({ "client_name": "rs", "grant_types": ["client_credentials"], "response_types": [] })
        });
        let reg = self
            .core()
            .register_operator_client(&metadata.to_string(), &audiences, &owned)
            .await
            .expect("resource server");
        (reg.client.id, reg.client_secret.expect("confidential"))
    }

    /// An operator's confidential client for `client_credentials` at `audiences`, as
    /// `latchkey client add --grant-type client_credentials --audience …` makes one.
    pub async fn operator_client(
        &self,
        audiences: &[&str],
        metadata: Option<Value>,
    ) -> (String, String) {
        let metadata = metadata.unwrap_or_else(|| {
            json!({ "client_name": "operator", "grant_types": ["client_credentials"], "response_types": [] })
        });
        let audiences: Vec<String> = audiences.iter().map(|r| r.to_string()).collect();
        let reg = self
            .core()
            .register_operator_client(&metadata.to_string(), &audiences, &[])
            .await
            .expect("operator client");
        (reg.client.id, reg.client_secret.expect("confidential"))
    }
}

/// A plain HTTP client that does not follow redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// A browser: keeps cookies, does not follow redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .build()
        .expect("client")
}

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// The hidden anti-CSRF token in a rendered form.
pub fn csrf(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    let end = html[start..].find('"').expect("end quote") + start;
    html[start..end].to_owned()
}

/// The query parameters of a redirect's Location.
pub fn location_params(res: &reqwest::Response) -> (String, HashMap<String, String>) {
    let loc = res
        .headers()
        .get("location")
        .expect("Location")
        .to_str()
        .expect("ascii")
        .to_owned();
    let url = url::Url::parse(&loc).expect("absolute Location");
    let params = url.query_pairs().into_owned().collect();
    (loc, params)
}

/// The error an authorization request from a client that is not an operator's sends back:
/// a 400 page (never a redirect) whose "Continue" link carries the error to the client.
/// Returns the link and its query parameters.
pub async fn notice_params(res: reqwest::Response) -> (String, HashMap<String, String>) {
    assert_eq!(res.status(), 400, "an error notice page");
    assert!(
        res.headers().get("location").is_none(),
        "no redirect before the user chooses"
    );
    let html = res.text().await.expect("html");
    let start = html.find("<a href=\"").expect("a Continue link") + "<a href=\"".len();
    let end = start + html[start..].find('"').expect("end of href");
    // Askama writes every escaped character as a decimal entity (`&#38;`).
    let mut link = String::new();
    let mut rest = &html[start..end];
    while let Some(i) = rest.find("&#") {
        link.push_str(&rest[..i]);
        let semi = rest[i..].find(';').expect("entity end") + i;
        let n: u32 = rest[i + 2..semi].parse().expect("decimal entity");
        link.push(char::from_u32(n).expect("char"));
        rest = &rest[semi + 1..];
    }
    link.push_str(rest);
    let url = url::Url::parse(&link).expect("absolute link");
    let params = url.query_pairs().into_owned().collect();
    (link, params)
}

/// The standard authorization request parameters.
pub fn auth_params<'a>(
    client_id: &'a str,
    redirect_uri: &'a str,
    pkce: &'a Pkce,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "xyz-state"),
        ("resource", RESOURCE),
    ]
}

/// GET /authorize in `browser`.
pub async fn authorize(
    app: &TestApp,
    browser: &reqwest::Client,
    params: &[(&str, &str)],
) -> reqwest::Response {
    browser
        .get(app.url("/authorize"))
        .query(params)
        .send()
        .await
        .expect("GET /authorize")
}

/// Logs in on the page `res` and returns the consent page's HTML.
pub async fn login(
    app: &TestApp,
    browser: &reqwest::Client,
    login_page: reqwest::Response,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let html = login_page.text().await.expect("html");
    browser
        .post(app.url("/authorize/login"))
        .form(&[
            ("csrf_token", csrf(&html).as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .expect("POST login")
}

/// Clicks Allow or Deny on a consent page.
pub async fn decide(
    app: &TestApp,
    browser: &reqwest::Client,
    consent_page: reqwest::Response,
    decision: &str,
) -> reqwest::Response {
    let html = consent_page.text().await.expect("html");
    browser
        .post(app.url("/authorize/consent"))
        .form(&[("csrf_token", csrf(&html).as_str()), ("decision", decision)])
        .send()
        .await
        .expect("POST consent")
}

/// Runs the browser part of the flow for `email` and returns the authorization response.
pub async fn code_flow(
    app: &TestApp,
    params: &[(&str, &str)],
    email: &str,
) -> HashMap<String, String> {
    let b = browser();
    let page = authorize(app, &b, params).await;
    assert_eq!(page.status(), 200, "login page");
    let consent = login(app, &b, page, email, PASSWORD).await;
    assert_eq!(consent.status(), 200, "consent page");
    let done = decide(app, &b, consent, "allow").await;
    assert_eq!(done.status(), 303);
    location_params(&done).1
}

/// A user, a public client and a code: the start of most token tests.
pub struct Flow {
    pub client_id: String,
    pub redirect_uri: String,
    pub pkce: Pkce,
    pub code: String,
    pub email: String,
}

pub async fn flow(app: &TestApp) -> Flow {
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.add_user(&email).await;
    let redirect_uri = "http://127.0.0.1:7777/callback".to_owned();
    let client_id = app.public_client(&redirect_uri).await;
    let pkce = pkce();
    let params = auth_params(&client_id, &redirect_uri, &pkce);
    let code = code_flow(app, &params, &email)
        .await
        .remove("code")
        .expect("code");
    Flow {
        client_id,
        redirect_uri,
        pkce,
        code,
        email,
    }
}

impl Flow {
    pub fn exchange_form(&self) -> Vec<(&str, &str)> {
        vec![
            ("grant_type", "authorization_code"),
            ("code", self.code.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", self.pkce.verifier.as_str()),
            ("client_id", self.client_id.as_str()),
        ]
    }

    /// Exchanges the code; returns the token response.
    pub async fn exchange(&self, app: &TestApp) -> Value {
        let (status, body) = app.token(&self.exchange_form()).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// Decodes a JWT's header and claims without checking them.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let decode = |p: Option<&str>| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p.expect("part")).expect("base64url"))
            .expect("json")
    };
    (decode(parts.next()), decode(parts.next()))
}
