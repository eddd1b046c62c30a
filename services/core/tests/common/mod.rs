//! Fixtures shared by the core's flow tests: a core over the memory store with a manual
//! clock, clients, users, resources and codes seeded straight into the store, and the steps
//! of the authorization flow a browser would take.
//!
//! Fixtures go into the store directly, not through the core, so that a test of one flow does
//! not depend on another flow working.

// Each test binary compiles this module and uses its own part of it.
#![allow(dead_code)]

use chrono::Duration;
use latchkey_core::authorize::{AuthorizationRequest, Prompt, StartOutcome};
use latchkey_core::client_auth::PresentedCredentials;
use latchkey_core::grant::{TokenRequest, TokenResponse};
use latchkey_core::model::{
    AuthMethod, AuthorizationCode, Client, ClientTier, Grant, GrantType, User,
};
use latchkey_core::resource::{ProtectedResource, Resource};
use latchkey_core::scope::ScopeSet;
use latchkey_core::settings::CoreSettings;
use latchkey_core::store::{ClientStore, GrantStore, ResourceStore, UserStore};
use latchkey_core::{AuthError, AuthResult, clock::Clock, secret};
use std::sync::OnceLock;
use uuid::Uuid;

pub use latchkey_core::testing::{ISSUER, TestCore};

pub const REDIRECT: &str = "https://app.example.com/callback";
pub const EMAIL: &str = "alice@example.com";
pub const PASSWORD: &str = "correct horse battery staple";
pub const SECRET: &str = "a-client-secret-only-the-tests-know";
pub const RESOURCE: &str = "https://mcp.example.com/mcp";
pub const OTHER_RESOURCE: &str = "https://other.example.com/mcp";
pub const STATE: &str = "state-123";
/// A valid PKCE verifier (RFC 7636 §4.1: 43 to 128 unreserved characters).
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// What a request without `scope` gets: the defaults, in canonical (sorted) order.
pub const ALL_SCOPES: &str = "mcp:prompts mcp:resources mcp:tools";

/// The S256 challenge of `verifier`.
pub fn challenge(verifier: &str) -> String {
    secret::sha256_b64(verifier.as_bytes())
}

/// A core with the test settings.
pub async fn core() -> TestCore {
    core_with(|_| {}).await
}

/// Settings under which requested scopes this server does not know are refused, not ignored.
pub fn refusing_unknown_scopes(s: &mut CoreSettings) {
    s.scopes = s
        .scopes
        .clone()
        .with_unknown(latchkey_core::scope::UnknownScopes::Reject);
}

/// A core with adjusted settings.
pub async fn core_with(adjust: impl FnOnce(&mut CoreSettings)) -> TestCore {
    TestCore::builder()
        .settings(adjust)
        .build()
        .await
        .expect("a test core builds")
}

/// The code a failed call answered with, or a panic naming the case.
pub fn err_code<T: std::fmt::Debug>(result: AuthResult<T>, why: &str) -> &'static str {
    match result {
        Ok(v) => panic!("{why}: expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}

/// A client to seed. Starts as a public, dynamic client for the authorization code and
/// refresh token grants, with one redirect URI.
#[derive(Debug, Clone)]
pub struct ClientSpec(pub Client);

pub fn client(id: &str) -> ClientSpec {
    ClientSpec(Client {
        id: id.to_owned(),
        secret_hash: None,
        name: Some(format!("{id} app")),
        redirect_uris: vec![REDIRECT.to_owned()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        auth_method: AuthMethod::None,
        scope: None,
        metadata: serde_json::json!({}),
        resources: Vec::new(),
        tier: ClientTier::Dynamic,
        audiences: Vec::new(),
        trusted_redirects: false,
        created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        updated_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        secret_expires_at: None,
        registration_token_hash: None,
        keys: None,
    })
}

impl ClientSpec {
    /// With [`SECRET`], presented by `method`.
    pub fn confidential(mut self, method: AuthMethod) -> Self {
        self.0.secret_hash = Some(secret::hash(SECRET));
        self.0.auth_method = method;
        self
    }

    /// A `private_key_jwt` client with `keys`.
    pub fn private_key_jwt(mut self, keys: latchkey_core::model::ClientKeys) -> Self {
        self.0.secret_hash = None;
        self.0.auth_method = AuthMethod::PrivateKeyJwt;
        self.0.keys = Some(keys);
        self
    }

    /// An operator's client: trusted redirects, and tokens without a user for `audiences`.
    pub fn operator(mut self, audiences: &[&str]) -> Self {
        self.0.tier = ClientTier::Operator;
        self.0.trusted_redirects = true;
        self.0.audiences = audiences.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    pub fn tier(mut self, tier: ClientTier) -> Self {
        self.0.tier = tier;
        self
    }

    pub fn trusted_redirects(mut self, trusted: bool) -> Self {
        self.0.trusted_redirects = trusted;
        self
    }

    pub fn grants(mut self, grants: &[GrantType]) -> Self {
        self.0.grant_types = grants.to_vec();
        self
    }

    pub fn redirects(mut self, uris: &[&str]) -> Self {
        self.0.redirect_uris = uris.iter().map(|u| (*u).to_owned()).collect();
        self
    }

    pub fn scope(mut self, scope: &str) -> Self {
        self.0.scope = Some(ScopeSet::parse(scope).expect("valid scopes"));
        self
    }

    /// Created (and last changed) at `at`.
    pub fn created_at(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
        self.0.created_at = at;
        self.0.updated_at = at;
        self
    }

    /// The protected resources it serves (a resource server).
    pub fn owns(mut self, resources: &[&str]) -> Self {
        self.0.resources = resources.iter().map(|r| (*r).to_owned()).collect();
        self
    }

    pub async fn seed(self, t: &TestCore) -> Client {
        t.store
            .insert_client(&self.0)
            .await
            .expect("the client is seeded");
        self.0
    }
}

/// argon2 is slow on purpose: hash the fixture password once per test binary.
fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| latchkey_core::password::hash(PASSWORD).expect("the password hashes"))
        .clone()
}

/// A user with [`PASSWORD`].
pub async fn seed_user(t: &TestCore, email: &str) -> User {
    let user = User {
        id: Uuid::new_v4(),
        email: email.to_owned(),
        password_hash: password_hash(),
        disabled: false,
        created_at: t.clock.now(),
    };
    t.store
        .insert_user(&user)
        .await
        .expect("the user is seeded");
    user
}

/// A registered protected resource.
pub async fn seed_resource(t: &TestCore, url: &str, scopes: Option<&str>, is_default: bool) {
    t.store
        .insert_resource(&ProtectedResource {
            resource: Resource::parse(url).expect("a valid resource"),
            scopes: scopes.map(|s| ScopeSet::parse(s).expect("valid scopes")),
            is_default,
            implies: Default::default(),
        })
        .await
        .expect("the resource is seeded");
    // The core holds resources in memory; it reads the store's changes as the maintenance
    // task would.
    t.core.sync_directory(0).await.expect("the core reads it");
}

/// A grant of every default scope at the issuer (the audience an open server gives a request
/// without `resource`).
pub fn grant(t: &TestCore, client_id: &str, user_id: Uuid) -> Grant {
    Grant {
        id: Uuid::new_v4(),
        client_id: client_id.to_owned(),
        user_id,
        scope: ScopeSet::parse(ALL_SCOPES).expect("valid scopes"),
        resource: ISSUER.to_owned(),
        install: Some(REDIRECT.to_owned()),
        created_at: t.clock.now(),
        revoked_at: None,
    }
}

/// Stores `grant` with a code bound to [`REDIRECT`] and [`VERIFIER`], as consent would; returns
/// the code.
pub async fn seed_code(t: &TestCore, grant: &Grant) -> String {
    let code = secret::generate();
    let record = AuthorizationCode {
        code_hash: secret::hash(&code),
        grant_id: grant.id,
        client_id: grant.client_id.clone(),
        redirect_uri: Some(REDIRECT.to_owned()),
        code_challenge: challenge(VERIFIER),
        expires_at: t.clock.now() + t.core.settings().code_ttl,
        consumed_at: None,
    };
    t.store
        .insert_grant_with_code(grant, &record)
        .await
        .expect("the code is seeded");
    code
}

/// A valid authorization request from `client_id`, with [`STATE`] and [`VERIFIER`]'s challenge.
pub fn authorization_request(client_id: &str) -> AuthorizationRequest {
    AuthorizationRequest {
        response_type: Some("code".into()),
        client_id: Some(client_id.into()),
        redirect_uri: Some(REDIRECT.into()),
        state: Some(STATE.into()),
        code_challenge: Some(challenge(VERIFIER)),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    }
}

/// Starts an authorization that must reach the login prompt.
pub async fn start(t: &TestCore, req: AuthorizationRequest) -> Prompt {
    match t.core.start_authorization(req).await {
        Ok(StartOutcome::Prompt(p)) => p,
        other => panic!("expected the login prompt, got {other:?}"),
    }
}

/// Signs in as `email` with [`PASSWORD`]; the login must succeed.
pub async fn login(t: &TestCore, prompt: &Prompt, email: &str) -> Prompt {
    let out = t
        .core
        .submit_login(
            &prompt.session_id,
            &prompt.csrf_token,
            email,
            PASSWORD,
            None,
        )
        .await
        .expect("the login is answered");
    assert_eq!(out.error, None, "the login succeeds");
    out.prompt
}

/// The value of query parameter `name` in `url`.
pub fn query(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .expect("an absolute URL")
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The whole browser part: start, sign in as `email`, approve. Returns the code.
pub async fn authorize(t: &TestCore, req: AuthorizationRequest, email: &str) -> String {
    let prompt = start(t, req).await;
    let prompt = login(t, &prompt, email).await;
    let redirect = t
        .core
        .submit_consent(&prompt.session_id, &prompt.csrf_token, true)
        .await
        .expect("consent is recorded");
    query(&redirect, "code").expect("the redirect carries a code")
}

/// A public client's credentials: its id alone.
pub fn public(id: &str) -> PresentedCredentials {
    PresentedCredentials {
        client_id: Some(id.into()),
        ..Default::default()
    }
}

/// HTTP Basic with [`SECRET`].
pub fn basic(id: &str) -> PresentedCredentials {
    PresentedCredentials {
        basic: Some((id.into(), SECRET.into())),
        ..Default::default()
    }
}

/// `client_id` and `client_secret` in the body, with [`SECRET`].
pub fn post(id: &str) -> PresentedCredentials {
    PresentedCredentials {
        client_id: Some(id.into()),
        client_secret: Some(SECRET.into()),
        ..Default::default()
    }
}

/// An authorization code token request with [`REDIRECT`] and [`VERIFIER`].
pub fn code_request(client: PresentedCredentials, code: &str) -> TokenRequest {
    TokenRequest {
        grant_type: "authorization_code".into(),
        code: Some(code.into()),
        redirect_uri: Some(REDIRECT.into()),
        code_verifier: Some(VERIFIER.into()),
        client,
        ..Default::default()
    }
}

pub fn refresh_request(client: PresentedCredentials, refresh_token: &str) -> TokenRequest {
    TokenRequest {
        grant_type: "refresh_token".into(),
        refresh_token: Some(refresh_token.into()),
        client,
        ..Default::default()
    }
}

pub fn client_credentials_request(client: PresentedCredentials) -> TokenRequest {
    TokenRequest {
        grant_type: "client_credentials".into(),
        client,
        ..Default::default()
    }
}

/// Tokens for a seeded grant of `client_id` to `user_id` (a code seeded and redeemed).
pub async fn tokens(t: &TestCore, creds: PresentedCredentials, grant: &Grant) -> TokenResponse {
    let code = seed_code(t, grant).await;
    t.core
        .exchange_token(code_request(creds, &code))
        .await
        .expect("the code is exchanged")
}

/// Moves the core's clock on.
pub fn advance(t: &TestCore, secs: i64) {
    t.clock.advance(Duration::seconds(secs));
}

/// Whether the access token still passes the core's checks.
pub async fn is_live(t: &TestCore, access_token: &str) -> bool {
    match t.core.check_access_token(access_token).await {
        Ok(_) => true,
        Err(AuthError::InvalidToken(_)) => false,
        Err(e) => panic!("checking a token failed: {e}"),
    }
}
