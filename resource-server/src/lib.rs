//! latchkey-resource-server: protect an axum or tower service with Latchkey access tokens.
//!
//! - [`Verifier`] checks a bearer token for this resource, either locally against the JWKS
//!   (kept current by the AuthService's `WatchKeys`, refetched on an unknown `kid`, with
//!   revocations from `WatchRevocationUpdates`) or remotely with the `VerifyToken` RPC.
//! - [`Verifier::require`] is a tower layer that rejects requests without a good token with
//!   RFC 6750 challenges that point at the RFC 9728 metadata, and hands the claims on.
//! - [`Bearer`] is the axum extractor for those claims.
//! - [`Verifier::metadata_router`] serves RFC 9728 protected resource metadata at the
//!   path-aware well-known URI.
//!
//! The token is read only from the `Authorization` header (RFC 6750 §2.1; MCP forbids the
//! query string).
//!
//! Scope hierarchies (a resource's `files:write` implying `files:read`) need nothing here:
//! Latchkey mints every token with the scopes its resource's hierarchy implies, so both modes
//! check required scopes against the token's `scope` alone, with the core's one rule
//! (`latchkey_core::token::check_for_resource`), and agree with `VerifyToken`.
//!
//! An `https://` AuthService is reached over TLS with the CA given in [`Tls`], and this
//! resource server's own certificate when the AuthService requires client certificates
//! (they add to the client credentials, never replace them).

mod layer;
mod local;

use latchkey_core::resource::Resource;
use latchkey_proto::v1 as pb;
use latchkey_proto::v1::verification_service_client::VerificationServiceClient;
use std::sync::Arc;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub use layer::{Bearer, RequireBearer, RequireBearerLayer};

/// How tokens are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Signature, expiry, audience and scopes checked in this process against the JWKS;
    /// revocations streamed from the AuthService.
    Local,
    /// Every check is a `VerifyToken` call to the AuthService.
    Remote,
}

/// Where the resource server stands and how it reaches Latchkey.
#[derive(Debug, Clone)]
pub struct Config {
    /// This resource's canonical URI, the `aud` of its tokens (`https://mcp.example.com/mcp`).
    pub resource: String,
    /// The authorization server's issuer, as in its metadata.
    pub issuer: String,
    /// The AuthService's gRPC address (`http://latchkey:50051`).
    pub auth_url: String,
    /// This resource server's confidential client credentials; the client must own
    /// `resource` (`latchkey client add --resource …`).
    pub client_id: String,
    pub client_secret: String,
    pub mode: Mode,
    /// Scopes advertised in the protected resource metadata.
    pub scopes_supported: Vec<String>,
    /// Clock skew allowed on `exp` in local mode.
    pub leeway_secs: u64,
    /// Local mode: how long tokens are still accepted after the revocation stream drops
    /// (it reconnects within 2 s); after that, requests get 503 until it is back.
    pub revocation_staleness: std::time::Duration,
    /// Local mode: how long [`Verifier::connect`] waits for the revocations in force.
    pub startup_wait: std::time::Duration,
    /// TLS to the AuthService; required for an `https://` `auth_url`, refused for `http://`.
    pub tls: Option<Tls>,
    /// Browser origins that may call this resource and read its answers (CORS): `["*"]`,
    /// the default, for any; an empty list turns CORS off. The metadata and the guarded
    /// routes answer preflights, allow the MCP request headers and expose
    /// `WWW-Authenticate` and `Mcp-Session-Id`. Bearer tokens are never sent by a browser
    /// on its own, so allowing any origin gives a page nothing it does not already hold.
    pub cors_origins: Vec<String>,
}

/// How a resource server trusts the AuthService over TLS: the CA (PEM) that signed the
/// AuthService's certificate, and this resource server's certificate and key (PEM) when the
/// AuthService requires client certificates (`LATCHKEY_GRPC_TLS_CLIENT_CA`).
#[derive(Clone)]
pub struct Tls {
    ca_pem: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Tls {
    // The private key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

impl Tls {
    /// Trust the AuthService certificates signed by the CA in `ca_pem`.
    pub fn new(ca_pem: impl Into<Vec<u8>>) -> Self {
        Self {
            ca_pem: ca_pem.into(),
            identity: None,
        }
    }

    /// Present this certificate chain and private key (both PEM) to the AuthService.
    pub fn client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// The same, read from files: the CA, and optionally the client certificate and key.
    pub fn from_files(
        ca: &std::path::Path,
        client: Option<(&std::path::Path, &std::path::Path)>,
    ) -> std::io::Result<Self> {
        let tls = Self::new(std::fs::read(ca)?);
        Ok(match client {
            Some((cert, key)) => tls.client_certificate(std::fs::read(cert)?, std::fs::read(key)?),
            None => tls,
        })
    }

    fn client_config(&self) -> ClientTlsConfig {
        let config =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(self.ca_pem.clone()));
        match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        }
    }
}

impl Config {
    pub fn new(
        resource: &str,
        issuer: &str,
        auth_url: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Self {
        Self {
            resource: resource.to_owned(),
            issuer: issuer.trim_end_matches('/').to_owned(),
            auth_url: auth_url.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            mode: Mode::Remote,
            scopes_supported: Vec::new(),
            leeway_secs: 5,
            revocation_staleness: std::time::Duration::from_secs(10),
            startup_wait: std::time::Duration::from_secs(10),
            tls: None,
            cors_origins: vec!["*".to_owned()],
        }
    }

    /// The browser origins allowed to call this resource ([`Config::cors_origins`]).
    pub fn cors_origins(mut self, origins: &[&str]) -> Self {
        self.cors_origins = origins.iter().map(|o| o.to_string()).collect();
        self
    }

    /// Reach the AuthService over TLS (an `https://` `auth_url`).
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    pub fn scopes_supported(mut self, scopes: &[&str]) -> Self {
        self.scopes_supported = scopes.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// The verified identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub aud: String,
    pub exp: i64,
    pub jti: String,
    /// Whether a user stands behind the token.
    pub subject: Subject,
}

/// Who a token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A user signed in and consented; `sub` is the user's id.
    User,
    /// No user: an operator's client for itself (`client_credentials`); `sub` is the
    /// `client_id` (RFC 9068 §2.2).
    Client,
}

impl Subject {
    /// The rule for any verifier: `sub` equals `client_id` exactly when no user is involved.
    /// Latchkey never gives a user an id that a client could have.
    pub fn of(sub: &str, client_id: &str) -> Self {
        if sub == client_id {
            Self::Client
        } else {
            Self::User
        }
    }
}

/// Why a request was turned away; see [`Rejection::status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No bearer token (RFC 6750 §3.1: no error code in the challenge).
    #[error("no bearer token")]
    Missing,
    /// RFC 6750 `invalid_token`.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// RFC 6750 `insufficient_scope`.
    #[error("insufficient scope")]
    InsufficientScope,
    /// The route acts for a user, and no user stands behind the token (403
    /// `insufficient_scope`); see [`RequireBearerLayer::users_only`].
    #[error("the token has no user")]
    UserRequired,
    /// RFC 6750 `invalid_request`: a malformed request, such as two `Authorization` headers.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The authorization server could not be asked.
    #[error("authorization server unavailable: {0}")]
    Unavailable(String),
}

/// Errors setting up a [`Verifier`].
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot reach the AuthService: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("the AuthService refused: {0}")]
    Refused(#[from] tonic::Status),
}

pub(crate) type Client =
    VerificationServiceClient<tonic::service::interceptor::InterceptedService<Channel, BasicAuth>>;

/// Presents the resource server's client credentials on every call.
#[derive(Clone)]
pub(crate) struct BasicAuth(MetadataValue<Ascii>);

impl tonic::service::Interceptor for BasicAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

pub(crate) struct Inner {
    pub config: Config,
    pub client: Client,
    pub local: Option<local::LocalState>,
    pub metadata_path: String,
    pub metadata_url: String,
}

/// Checks bearer tokens for one protected resource. Cheap to clone.
#[derive(Clone)]
pub struct Verifier(pub(crate) Arc<Inner>);

impl Verifier {
    /// Connects to the AuthService; in local mode, fetches the JWKS and starts following
    /// key changes and revocations.
    pub async fn connect(mut config: Config) -> Result<Self, SetupError> {
        let resource =
            Resource::parse(&config.resource).map_err(|e| SetupError::Config(e.description()))?;
        config.resource = resource.as_str().to_owned();
        let (metadata_path, metadata_url) = resource.metadata_location();
        let value: MetadataValue<Ascii> =
            latchkey_proto::credentials::encode_basic(&config.client_id, &config.client_secret)
                .parse()
                .map_err(|_| SetupError::Config("credentials must be ASCII".into()))?;
        // HTTP/2 pings find a connection that died without closing (a NAT or load balancer
        // dropping it) within a few seconds, so the revocation stream is known lost and local
        // mode can fail closed instead of waiting on it forever.
        let endpoint = Endpoint::from_shared(config.auth_url.clone())
            .map_err(|e| SetupError::Config(e.to_string()))?;
        let https = endpoint.uri().scheme_str() == Some("https");
        let endpoint = match (&config.tls, https) {
            (Some(tls), true) => endpoint.tls_config(tls.client_config())?,
            (None, false) => endpoint,
            (None, true) => {
                return Err(SetupError::Config(
                    "an https:// auth_url needs Config::tls: the CA that signed the AuthService's certificate".into(),
                ));
            }
            // Never send credentials in clear when TLS was asked for.
            (Some(_), false) => {
                return Err(SetupError::Config(
                    "Config::tls needs an https:// auth_url".into(),
                ));
            }
        };
        let channel = endpoint
            .http2_keep_alive_interval(std::time::Duration::from_secs(3))
            .keep_alive_timeout(std::time::Duration::from_secs(3))
            .keep_alive_while_idle(true)
            .connect()
            .await?;
        let client = VerificationServiceClient::with_interceptor(channel, BasicAuth(value));
        let local = match config.mode {
            Mode::Local => {
                Some(local::LocalState::start(client.clone(), config.startup_wait).await?)
            }
            Mode::Remote => None,
        };
        Ok(Self(Arc::new(Inner {
            config,
            client,
            local,
            metadata_path,
            metadata_url,
        })))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// Where the RFC 9728 metadata is served (`/.well-known/oauth-protected-resource/mcp`).
    pub fn metadata_path(&self) -> &str {
        &self.0.metadata_path
    }

    /// The absolute URL of the metadata, as given in `WWW-Authenticate`.
    pub fn metadata_url(&self) -> &str {
        &self.0.metadata_url
    }

    /// The RFC 9728 protected resource metadata document.
    pub fn metadata(&self) -> serde_json::Value {
        let c = &self.0.config;
        let scopes: Vec<&str> = c.scopes_supported.iter().map(String::as_str).collect();
        Resource::from_stored(c.resource.clone()).metadata_document(&c.issuer, &scopes)
    }

    /// Serves the metadata at [`Self::metadata_path`], readable from the allowed origins.
    pub fn metadata_router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let doc = self.metadata();
        axum::Router::new()
            .route(
                self.metadata_path(),
                axum::routing::get(move || {
                    let doc = doc.clone();
                    async move { axum::Json(doc) }
                }),
            )
            .layer(self.cors())
    }

    /// CORS for this resource's answers ([`Config::cors_origins`]).
    pub(crate) fn cors(&self) -> tower_http::cors::CorsLayer {
        layer::cors(&self.0.config.cors_origins)
    }

    /// A tower layer that requires a bearer token for this resource with every one of
    /// `scopes`.
    pub fn require(&self, scopes: &[&str]) -> RequireBearerLayer {
        RequireBearerLayer::new(self.clone(), scopes.iter().map(|s| s.to_string()).collect())
    }

    /// Checks `token` for this resource and `required_scopes`.
    pub async fn verify(
        &self,
        token: &str,
        required_scopes: &[String],
    ) -> Result<Claims, Rejection> {
        match &self.0.local {
            Some(local) => local.verify(&self.0.config, token, required_scopes).await,
            None => self.verify_remote(token, required_scopes).await,
        }
    }

    async fn verify_remote(
        &self,
        token: &str,
        required_scopes: &[String],
    ) -> Result<Claims, Rejection> {
        let req = pb::VerifyTokenRequest {
            token: token.to_owned(),
            audience: self.0.config.resource.clone(),
            required_scopes: required_scopes.to_vec(),
        };
        let r = self
            .0
            .client
            .clone()
            .verify_token(req)
            .await
            .map_err(|s| Rejection::Unavailable(s.message().to_owned()))?
            .into_inner();
        let refusal = r.refusal_code();
        match (r.valid, r.claims) {
            (true, Some(c)) => Ok(Claims {
                subject: match pb::TokenSubject::try_from(c.subject) {
                    Ok(pb::TokenSubject::User) => Subject::User,
                    Ok(pb::TokenSubject::Client) => Subject::Client,
                    // An older server: the same rule it follows.
                    _ => Subject::of(&c.sub, &c.client_id),
                },
                sub: c.sub,
                client_id: c.client_id,
                scopes: c.scopes,
                aud: c.aud,
                exp: c.exp,
                jti: c.jti,
            }),
            // RFC 6750 §3.1: every other refusal is an invalid token.
            _ if refusal == pb::OauthErrorCode::InsufficientScope => {
                Err(Rejection::InsufficientScope)
            }
            _ => Err(Rejection::InvalidToken(r.error_description)),
        }
    }
}
