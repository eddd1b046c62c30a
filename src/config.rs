//! The one typed configuration: defaults, then an optional TOML file, then `LATCHKEY_*`
//! environment variables. Everything is validated, and every problem reported at once,
//! before a port opens. `latchkey check-config` prints the same report.

use chrono::Duration;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use latchkey_core::CoreSettings;
use latchkey_core::lockout::Backoff;
use latchkey_core::metadata_document::{DocumentPolicy, HostPattern};
use latchkey_core::registration::RegistrationPolicy;
use latchkey_core::resource::{ProtectedResource, Resource};
use latchkey_core::scope::{ScopePolicy, ScopeSet, UnknownScopes};
use latchkey_core::scope_hierarchy::ScopeHierarchy;
use latchkey_core::secret::MIN_SHARED_SECRET_BYTES;
use latchkey_gateway::HttpLimits;
pub use latchkey_gateway::forwarded::{ForwardedHeader, TrustedProxies};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Development,
    Production,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people at a terminal.
    Pretty,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// What a command is about to run, and so which settings must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `serve`: the gRPC services and the gateway in one process.
    All,
    /// `serve auth`: the gRPC services alone.
    Auth,
    /// `serve gateway`: no database, no keys.
    Gateway,
    /// Commands that open the database (`migrate`, `user`, `client`, …): no listener, so
    /// none of the listener's settings (TLS, limits) are checked.
    Database,
}

/// `LATCHKEY_REGISTRATION`, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationSetting {
    Open,
    InitialAccessToken,
    Off,
}

impl From<RegistrationSetting> for RegistrationPolicy {
    fn from(s: RegistrationSetting) -> Self {
        match s {
            RegistrationSetting::Open => Self::Open,
            RegistrationSetting::InitialAccessToken => Self::InitialAccessToken,
            RegistrationSetting::Off => Self::Off,
        }
    }
}

/// `LATCHKEY_UNKNOWN_SCOPES`, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownScopesSetting {
    Ignore,
    Reject,
}

impl From<UnknownScopesSetting> for UnknownScopes {
    fn from(s: UnknownScopesSetting) -> Self {
        match s {
            UnknownScopesSetting::Ignore => Self::Ignore,
            UnknownScopesSetting::Reject => Self::Reject,
        }
    }
}

/// A protected resource declared in configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceConfig {
    pub url: String,
    #[serde(default)]
    pub scopes: Option<String>,
    #[serde(default)]
    pub default: bool,
    /// Its scope hierarchy (MCP 2026-07-28): each scope and the space-separated scopes it
    /// implies, `implies = { "files:write" = "files:read", admin = "files:write" }`.
    #[serde(default)]
    pub implies: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `development` or `production`; production refuses insecure setups.
    pub env: Environment,
    /// The issuer identifier (RFC 8414 §2); endpoint URLs derive from it.
    pub issuer: String,
    /// Where the HTTP gateway listens.
    pub http_addr: SocketAddr,
    /// Where the gRPC AuthService listens. Loopback unless configured otherwise.
    pub grpc_addr: SocketAddr,
    /// `sqlite://latchkey.db?mode=rwc` (default) or `postgres://…`.
    pub database_url: String,
    /// Shared state for several replicas. Production needs a password in it (Redis AUTH) or
    /// `rediss://`; sessions kept in it are sealed, which needs the key-encryption key.
    pub redis_url: Option<String>,
    /// PostgreSQL: how long a request waits for a connection, opening one included, before
    /// the database counts as unreachable (milliseconds).
    pub database_acquire_timeout_ms: u64,
    /// PostgreSQL: once the database is found unreachable, how long requests that need it
    /// are answered 503 at once before one is let through to try again (milliseconds).
    pub database_fail_fast_ms: u64,
    /// How often each replica reads new revocations from the database (milliseconds).
    pub revocation_poll_ms: u64,
    /// The gateway's credential for the AuthService. `latchkey serve` generates one
    /// in-process when unset; separate processes must share it.
    pub gateway_secret: Option<SecretString>,
    /// Where `serve gateway` finds the AuthService.
    pub auth_url: String,
    /// The operators' credential for the gRPC AdminService; unset refuses every caller.
    pub admin_secret: Option<SecretString>,
    /// The gRPC listener's certificate chain and private key (PEM files): both, or neither
    /// for plaintext. Production refuses plaintext on any address but loopback.
    pub grpc_tls_cert: Option<PathBuf>,
    pub grpc_tls_key: Option<PathBuf>,
    /// A CA bundle (PEM): when set, every gRPC caller must present a certificate it signed,
    /// in addition to its credentials (the bearer secret or the client's Basic credentials).
    pub grpc_tls_client_ca: Option<PathBuf>,
    /// The gRPC listener's limits (see `latchkey_auth::server::Limits`).
    pub grpc_max_receive_message_bytes: usize,
    pub grpc_max_send_message_bytes: usize,
    pub grpc_concurrency_per_connection: usize,
    pub grpc_max_concurrent_streams: u32,
    pub grpc_keepalive_interval_secs: u64,
    pub grpc_keepalive_timeout_secs: u64,
    /// The CA (PEM) that signed the AuthService's certificate, for the clients of an
    /// `https://` AuthService: `serve gateway`, and `--remote`.
    pub auth_ca_file: Option<PathBuf>,
    /// The client certificate and key (PEM) those clients present when the AuthService
    /// requires one: both or neither.
    pub auth_client_cert: Option<PathBuf>,
    pub auth_client_key: Option<PathBuf>,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub code_ttl_secs: i64,
    pub session_ttl_secs: i64,
    pub leeway_secs: u64,
    /// Supported scopes, space-separated (`offline_access` is always added).
    pub scopes: String,
    /// Requested scopes this server does not support: ignored (the token response's `scope`
    /// says what was granted), or refused with `invalid_scope` (RFC 6749 §3.3 allows either).
    pub unknown_scopes: UnknownScopesSetting,
    /// Scopes granted when a request names none.
    pub default_scopes: String,
    pub resources: Vec<ResourceConfig>,
    /// Who may register clients at `/register`: `open`, `initial_access_token` (only with
    /// an operator's initial access token) or `off`.
    pub registration: RegistrationSetting,
    /// Origins allowed by CORS on the public endpoints, space-separated, or `*`.
    pub cors_origins: String,
    /// ForwardAuth (`GET /verify`): the audience and scopes to require when the proxy's
    /// query does not name them.
    pub forward_auth_audience: Option<String>,
    pub forward_auth_scopes: Option<String>,
    /// Largest request body the gateway reads.
    pub max_body_bytes: usize,
    /// `pretty` or `json`; JSON by default in production.
    pub log_format: Option<LogFormat>,
    /// Sign-in lockout per account and client network (an IPv4 address, an IPv6 /64):
    /// failures before the first lock, its length, and the cap. 0 failures: no lock.
    pub lockout_threshold: u32,
    pub lockout_base_secs: i64,
    pub lockout_max_secs: i64,
    /// Sign-in delay per account across every network: failures before each further
    /// attempt must wait, the first wait, and the cap. 0 failures: no delay.
    pub lockout_account_threshold: u32,
    pub lockout_account_base_secs: i64,
    pub lockout_account_max_secs: i64,
    /// Requests per minute per client IP, by endpoint group; 0 turns a limit off.
    pub rate_limit_token_per_min: u32,
    pub rate_limit_authorize_per_min: u32,
    pub rate_limit_login_per_min: u32,
    pub rate_limit_register_per_min: u32,
    /// ForwardAuth requests per minute per client; 0 turns the limit off.
    pub rate_limit_forward_auth_per_min: u32,
    /// The proxies in front of the gateway, as CIDRs or addresses, separated by commas or
    /// spaces. Their forwarding headers name the client, its host and its scheme; nobody
    /// else's are believed. Empty: the peer is the client.
    pub trusted_proxies: TrustedProxies,
    /// Which header those proxies write: `x-forwarded-for` (with `X-Forwarded-Host` and
    /// `X-Forwarded-Proto`) or RFC 7239 `forwarded`.
    pub forwarded_header: ForwardedHeader,
    /// Removed: it believed the left-most `X-Forwarded-For` value, which the client writes.
    /// `true` is refused at start, naming `trusted_proxies`; `false` changes nothing.
    pub trust_forwarded_for: Option<bool>,
    /// ForwardAuth (`GET /verify`) listens here, never on the public port; unset turns it
    /// off. Loopback by default: a proxy in the same pod or host, or the cluster through a
    /// ClusterIP Service when set to 0.0.0.0.
    pub forward_auth_addr: Option<SocketAddr>,
    /// Serve gRPC reflection (lists every service to anyone who connects).
    pub grpc_reflection: bool,
    /// The gateway's public readiness answer names the database, Redis and what is degraded.
    pub public_health_details: bool,
    /// Every HTTP listener (gateway, ForwardAuth, metrics): the time to send a complete
    /// request head, counted from the connection's opening or the head's first byte.
    pub http_header_timeout_ms: u64,
    /// A connection with nothing in flight is closed after this long. Keep it longer than
    /// the idle timeout of the proxy in front (nginx 60 s, AWS ALB 60 s, Traefik 90 s).
    pub http_idle_timeout_ms: u64,
    /// The time to answer a request, reading its body included (408 after it).
    pub http_request_timeout_ms: u64,
    /// The time to receive a request body.
    pub http_body_timeout_ms: u64,
    /// Connections served at once, per listener; more wait in the backlog.
    pub http_max_connections: u32,
    /// Connections served at once from one client network (an IPv4 address, an IPv6 /64),
    /// per listener, while it is more than half full; more are refused. Trusted proxies have
    /// no share; 0 turns it off. Unset: an eighth of `http_max_connections`.
    pub http_max_connections_per_network: Option<u32>,
    /// HTTP/2 streams at once, per connection.
    pub http2_max_concurrent_streams: u32,
    /// Prometheus metrics and health on a separate admin port; unset turns it off.
    pub metrics_addr: Option<SocketAddr>,
    /// base64 of 32 random bytes; encrypts signing keys at rest. Required in production.
    pub key_encryption_key: Option<SecretString>,
    /// Rotate the signing key this often (0: only `latchkey keys rotate`).
    pub key_rotation_days: u32,
    /// How long a new key is published in the JWKS before it signs (publish-before-use).
    pub key_publish_secs: i64,
    /// How often each replica reloads the key ring from the database.
    pub key_reload_secs: u64,
    /// Self-registered (`dynamic`) clients kept at most; past it, `/register` answers 503
    /// `temporarily_unavailable`.
    pub max_dynamic_clients: u64,
    /// Authorizations in progress per client network (an IPv4 address, an IPv6 /64).
    pub max_sessions_per_address: u32,
    /// Authorizations in progress the in-memory session store holds (without Redis); when
    /// full, the one closest to expiry gives way.
    pub session_capacity: usize,
    /// Access-token revocations in force per client; past it, a revoked token's grant is
    /// revoked instead.
    pub max_token_revocations_per_client: u64,
    /// A `dynamic` client unused this many days, with no live refresh token, is deleted
    /// (0: never).
    pub dynamic_client_idle_days: u32,
    /// A `dynamic` client never used this many hours after it registered, with nothing
    /// pending, is deleted (0: only the idle rule applies).
    pub dynamic_client_unused_hours: u32,
    /// Days a `dynamic` confidential client's secret stays valid (0: it does not expire).
    pub dynamic_client_secret_days: u32,
    /// Absolute maximum age of a refresh grant in days, RFC 9700 §4.14.2 (0: none).
    pub refresh_max_age_days: u32,
    /// Client ID Metadata Documents: an https `client_id` is fetched and read as the
    /// client's metadata. On by default.
    pub cimd: bool,
    /// Only documents on these hosts are used (`example.com`, or `*.example.com` for the
    /// names below it), separated by commas or spaces. Empty: any host.
    pub cimd_allowed_hosts: String,
    /// Documents on these hosts are never used (same form).
    pub cimd_denied_hosts: String,
    /// Hosts whose clients the consent page shows as verified, with their logo (same form).
    pub cimd_trusted_hosts: String,
    /// Extra CA certificates (PEM) trusted by every outbound fetch, besides the public roots:
    /// internal CAs, and tests.
    pub outbound_ca_file: Option<PathBuf>,
    /// Development only: let outbound fetches reach loopback addresses, to serve documents
    /// from this machine. Production refuses it.
    pub outbound_allow_loopback: bool,
}

/// The longest a period in days may be: past it, instants overflow the calendar.
const MAX_DAYS: u32 = 36_500;

impl Default for Settings {
    fn default() -> Self {
        let limits = latchkey_auth::server::Limits::default();
        Self {
            env: Environment::Development,
            issuer: "http://localhost:8080".into(),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            database_url: "sqlite://latchkey.db?mode=rwc".into(),
            redis_url: None,
            database_acquire_timeout_ms: 2000,
            database_fail_fast_ms: 1000,
            revocation_poll_ms: 1000,
            gateway_secret: None,
            auth_url: "http://127.0.0.1:50051".into(),
            admin_secret: None,
            grpc_tls_cert: None,
            grpc_tls_key: None,
            grpc_tls_client_ca: None,
            grpc_max_receive_message_bytes: limits.max_receive_message_bytes,
            grpc_max_send_message_bytes: limits.max_send_message_bytes,
            grpc_concurrency_per_connection: limits.concurrency_per_connection,
            grpc_max_concurrent_streams: limits.max_concurrent_streams,
            grpc_keepalive_interval_secs: limits.keepalive_interval.as_secs(),
            grpc_keepalive_timeout_secs: limits.keepalive_timeout.as_secs(),
            auth_ca_file: None,
            auth_client_cert: None,
            auth_client_key: None,
            access_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            code_ttl_secs: 300,
            session_ttl_secs: 600,
            leeway_secs: 5,
            scopes: "mcp:tools mcp:resources mcp:prompts".into(),
            unknown_scopes: UnknownScopesSetting::Ignore,
            default_scopes: "mcp:tools mcp:resources mcp:prompts".into(),
            resources: Vec::new(),
            registration: RegistrationSetting::Open,
            cors_origins: "*".into(),
            forward_auth_audience: None,
            forward_auth_scopes: None,
            max_body_bytes: 64 * 1024,
            log_format: None,
            lockout_threshold: 5,
            lockout_base_secs: 60,
            lockout_max_secs: 3600,
            lockout_account_threshold: 20,
            lockout_account_base_secs: 1,
            lockout_account_max_secs: 60,
            rate_limit_token_per_min: 600,
            rate_limit_authorize_per_min: 120,
            rate_limit_login_per_min: 30,
            rate_limit_register_per_min: 20,
            rate_limit_forward_auth_per_min: 6000,
            trusted_proxies: TrustedProxies::default(),
            forwarded_header: ForwardedHeader::XForwardedFor,
            trust_forwarded_for: None,
            forward_auth_addr: Some(SocketAddr::from(([127, 0, 0, 1], 8081))),
            grpc_reflection: false,
            public_health_details: false,
            http_header_timeout_ms: 10_000,
            http_idle_timeout_ms: 120_000,
            http_request_timeout_ms: 30_000,
            http_body_timeout_ms: 10_000,
            http_max_connections: 1024,
            http_max_connections_per_network: None,
            http2_max_concurrent_streams: 100,
            // 9464, not 9090: a developer's own Prometheus often holds 9090.
            metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            key_encryption_key: None,
            key_rotation_days: 30,
            key_publish_secs: 900,
            key_reload_secs: 10,
            max_dynamic_clients: 50_000,
            max_sessions_per_address: 100,
            session_capacity: latchkey_core::session::DEFAULT_CAPACITY,
            max_token_revocations_per_client: 1000,
            dynamic_client_idle_days: 90,
            dynamic_client_unused_hours: 24,
            dynamic_client_secret_days: 0,
            refresh_max_age_days: 90,
            cimd: true,
            cimd_allowed_hosts: String::new(),
            cimd_denied_hosts: String::new(),
            cimd_trusted_hosts: String::new(),
            outbound_ca_file: None,
            outbound_allow_loopback: false,
        }
    }
}

/// Whether trusting `net` as proxies would trust clients on the open internet: wider than
/// /8 for IPv4 (10.0.0.0/8 is the widest private range), or than /32 for IPv6 outside the
/// unique-local fc00::/7. `0.0.0.0/1` plus `128.0.0.0/1` trusts as much as `0.0.0.0/0`.
fn trusts_the_internet(net: &ipnet::IpNet) -> bool {
    match net {
        ipnet::IpNet::V4(n) => n.prefix_len() < 8,
        ipnet::IpNet::V6(n) => {
            let ula: ipnet::Ipv6Net = "fc00::/7".parse().expect("a valid literal range");
            n.prefix_len() < 32 && !ula.contains(n)
        }
    }
}

impl Settings {
    /// Loads defaults, then `file` (if given), then `LATCHKEY_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, Vec<String>> {
        let mut fig = Figment::new();
        if let Some(f) = file {
            if !f.exists() {
                return Err(vec![format!("config file {} does not exist", f.display())]);
            }
            fig = fig.merge(Toml::file(f));
        }
        fig.merge(
            Env::prefixed("LATCHKEY_")
                .ignore(&["test_database_url", "test_redis_url"])
                // The metrics port was called the admin port before the AdminService existed;
                // the old name still sets it.
                .map(|k| {
                    if k == "admin_addr" {
                        "metrics_addr".into()
                    } else {
                        k.into()
                    }
                }),
        )
        .extract()
        .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
    }

    /// The limits of every HTTP listener.
    pub fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            header_timeout: StdDuration::from_millis(self.http_header_timeout_ms),
            idle_timeout: StdDuration::from_millis(self.http_idle_timeout_ms),
            request_timeout: StdDuration::from_millis(self.http_request_timeout_ms),
            body_timeout: StdDuration::from_millis(self.http_body_timeout_ms),
            max_connections: self.http_max_connections,
            max_connections_per_network: self
                .http_max_connections_per_network
                .unwrap_or(self.http_max_connections / 8),
            h2_max_streams: self.http2_max_concurrent_streams,
        }
    }

    /// The checks of what faces clients over HTTP, for every mode: each runs an HTTP listener.
    fn edge_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.trust_forwarded_for == Some(true) {
            problems.push(
                "LATCHKEY_TRUST_FORWARDED_FOR was removed: it believed the left-most X-Forwarded-For value, which the client writes. Set LATCHKEY_TRUSTED_PROXIES to your proxies' addresses instead (e.g. 10.0.0.0/8), and unset LATCHKEY_TRUST_FORWARDED_FOR".into(),
            );
        }
        for net in self.trusted_proxies.ranges() {
            if trusts_the_internet(net) {
                problems.push(format!(
                    "trusted_proxies: {net} is wider than any proxy network (at most /8 for IPv4, /32 for IPv6 outside fc00::/7), so clients on the internet could name their own address; list your proxies' ranges"
                ));
            }
        }
        for (name, ms, min) in [
            ("http_header_timeout_ms", self.http_header_timeout_ms, 100),
            ("http_idle_timeout_ms", self.http_idle_timeout_ms, 1000),
            ("http_request_timeout_ms", self.http_request_timeout_ms, 100),
            ("http_body_timeout_ms", self.http_body_timeout_ms, 100),
        ] {
            if !(min..=3_600_000).contains(&ms) {
                problems.push(format!(
                    "{name} must be between {min} and 3600000 (one hour)"
                ));
            }
        }
        if !(1..=1_000_000).contains(&self.http_max_connections) {
            problems.push("http_max_connections must be between 1 and 1000000".into());
        }
        if let Some(share) = self.http_max_connections_per_network
            && share > self.http_max_connections
        {
            problems.push(format!(
                "http_max_connections_per_network ({share}) must be at most http_max_connections ({}); 0 turns it off",
                self.http_max_connections
            ));
        }
        if !(1..=10_000).contains(&self.http2_max_concurrent_streams) {
            problems.push("http2_max_concurrent_streams must be between 1 and 10000".into());
        }
        if let Some(fa) = self.forward_auth_addr
            && fa.port() != 0
            && [Some(self.http_addr), self.metrics_addr]
                .into_iter()
                .flatten()
                .any(|other| {
                    other.port() == fa.port()
                        && (other.ip() == fa.ip()
                            || other.ip().is_unspecified()
                            || fa.ip().is_unspecified())
                })
        {
            problems.push(format!(
                "forward_auth_addr {fa} must be a port of its own, apart from http_addr and metrics_addr"
            ));
        }
        problems
    }

    /// How the database pool behaves (PostgreSQL), from the validated settings.
    pub fn pool_settings(&self) -> latchkey_store::PoolSettings {
        latchkey_store::PoolSettings {
            acquire_timeout: std::time::Duration::from_millis(self.database_acquire_timeout_ms),
            fail_fast: std::time::Duration::from_millis(self.database_fail_fast_ms),
        }
    }

    /// The Redis URL's problems, for every component that connects to Redis: it must parse,
    /// and in production it must authenticate (a password: Redis AUTH) or run over TLS
    /// (`rediss://`), since whoever reaches an open Redis can read and write shared state.
    fn redis_problems(&self, problems: &mut Vec<String>) {
        let Some(raw) = &self.redis_url else {
            return;
        };
        // The URL carries the password: it is never echoed in a problem.
        let url = match url::Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix") => u,
            _ => {
                problems
                    .push("redis_url must be a redis://, rediss:// or redis+unix:// URL".into());
                return;
            }
        };
        let password = url.password().is_some_and(|p| !p.is_empty())
            || url.query_pairs().any(|(k, v)| k == "pass" && !v.is_empty());
        if self.env == Environment::Production && url.scheme() != "rediss" && !password {
            problems.push("production needs Redis AUTH or TLS: put the password in LATCHKEY_REDIS_URL (redis://:PASSWORD@host:6379) or use rediss://".into());
        }
    }

    /// The checks that apply to a gateway running alone: issuer, CORS, its credential. How it
    /// reaches the AuthService is checked by [`Self::validate`].
    pub fn gateway_problems(&self) -> Result<(), Vec<String>> {
        let mut problems = self.edge_problems();
        self.redis_problems(&mut problems);
        match url::Url::parse(self.issuer.trim_end_matches('/')) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.path() == "/"
                    && u.query().is_none() =>
            {
                if self.env == Environment::Production && u.scheme() != "https" {
                    problems.push("issuer must be https in production".into());
                }
            }
            _ => problems.push(format!(
                "issuer {:?} must be an http(s) origin, with no path, query or fragment",
                self.issuer
            )),
        }
        if self.env == Environment::Production && self.cors_origins.trim() == "*" {
            problems.push(
                "production must list CORS origins explicitly (LATCHKEY_CORS_ORIGINS)".into(),
            );
        }
        problems.extend(self.gateway_secret_problem(true));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// `LATCHKEY_GATEWAY_SECRET`, where a mode uses it: shorter than 32 bytes (empty
    /// included) is refused; unset is refused when `required` (the gateway alone), and
    /// allowed otherwise (`serve` makes one in process; `serve auth` then refuses every
    /// gateway call).
    fn gateway_secret_problem(&self, required: bool) -> Option<String> {
        match &self.gateway_secret {
            Some(s) if s.expose_secret().len() < MIN_SHARED_SECRET_BYTES => Some(format!(
                "gateway_secret (LATCHKEY_GATEWAY_SECRET) must be at least {MIN_SHARED_SECRET_BYTES} bytes (openssl rand -base64 32)"
            )),
            None if required => {
                Some("the gateway needs LATCHKEY_GATEWAY_SECRET to call the AuthService".into())
            }
            _ => None,
        }
    }

    /// Every check that applies to `mode`, with every problem reported at once. `serve`, each
    /// split mode, the commands and `check-config` all call it.
    pub fn validate(&self, mode: Mode) -> Result<Option<CoreSettings>, Vec<String>> {
        let mut problems = Vec::new();
        let core = match mode {
            Mode::Gateway => None,
            Mode::All | Mode::Auth | Mode::Database => match self.core_settings() {
                Ok(core) => Some(core),
                Err(p) => {
                    merge(&mut problems, p);
                    None
                }
            },
        };
        match mode {
            Mode::Gateway => {
                merge(
                    &mut problems,
                    self.gateway_problems().err().unwrap_or_default(),
                );
                merge(&mut problems, crate::grpc_transport::client_problems(self));
            }
            Mode::All | Mode::Auth => {
                merge(&mut problems, self.gateway_secret_problem(false));
                merge(&mut problems, crate::grpc_transport::server_problems(self));
            }
            Mode::Database => {}
        }
        if problems.is_empty() {
            Ok(core)
        } else {
            Err(problems)
        }
    }

    /// Parses the settings into the core's types, reporting every problem at once.
    pub fn core_settings(&self) -> Result<CoreSettings, Vec<String>> {
        let mut problems = self.edge_problems();
        let issuer = self.issuer.trim_end_matches('/').to_owned();
        match url::Url::parse(&issuer) {
            // A path in the issuer would move the well-known URI (RFC 8414 §3.1) and every
            // endpoint; Latchkey serves at the root, so the issuer is an origin.
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && u.path() == "/" =>
            {
                if self.env == Environment::Production && u.scheme() != "https" {
                    problems.push("issuer must be https in production".into());
                }
            }
            _ => problems.push(format!(
                "issuer {:?} must be an http(s) origin, with no path, query or fragment",
                self.issuer
            )),
        }
        if let Some(secret) = &self.admin_secret
            && secret.expose_secret().len() < MIN_SHARED_SECRET_BYTES
        {
            problems.push(format!(
                "admin_secret (LATCHKEY_ADMIN_SECRET) must be at least {MIN_SHARED_SECRET_BYTES} bytes (openssl rand -base64 32)"
            ));
        }
        if self.env == Environment::Production && self.database_url.starts_with("sqlite:") {
            problems
                .push("production needs PostgreSQL: set LATCHKEY_DATABASE_URL=postgres://…".into());
        }
        for (name, ms) in [
            (
                "database_acquire_timeout_ms",
                self.database_acquire_timeout_ms,
            ),
            ("database_fail_fast_ms", self.database_fail_fast_ms),
        ] {
            if !(100..=60_000).contains(&ms) {
                problems.push(format!("{name} must be between 100 and 60000"));
            }
        }
        self.redis_problems(&mut problems);
        // Production asks for the key-encryption key in any case (below).
        if self.redis_url.is_some()
            && self.key_encryption_key.is_none()
            && self.env != Environment::Production
        {
            problems.push("LATCHKEY_REDIS_URL needs LATCHKEY_KEY_ENCRYPTION_KEY: sessions and revocation messages in Redis are sealed under a key derived from it (openssl rand -base64 32)".into());
        }
        let kek = match &self.key_encryption_key {
            Some(k) => match latchkey_core::keys::Kek::from_base64(k.expose_secret()) {
                Ok(kek) => Some(kek),
                Err(e) => {
                    problems.push(e);
                    None
                }
            },
            None => {
                if self.env == Environment::Production {
                    problems.push("production needs a key-encryption key for signing keys at rest: set LATCHKEY_KEY_ENCRYPTION_KEY (openssl rand -base64 32)".into());
                }
                None
            }
        };
        if self.key_publish_secs < 0
            || (self.key_rotation_days > 0
                && self.key_publish_secs >= i64::from(self.key_rotation_days) * 86_400)
        {
            problems.push(
                "key_publish_secs must be non-negative and shorter than the rotation period".into(),
            );
        }
        if self.env == Environment::Production && self.cors_origins.trim() == "*" {
            problems.push(
                "production must list CORS origins explicitly (LATCHKEY_CORS_ORIGINS)".into(),
            );
        }
        for (name, v) in [
            ("access_token_ttl_secs", self.access_token_ttl_secs),
            ("refresh_token_ttl_secs", self.refresh_token_ttl_secs),
            ("code_ttl_secs", self.code_ttl_secs),
            ("session_ttl_secs", self.session_ttl_secs),
        ] {
            if v <= 0 {
                problems.push(format!("{name} must be positive"));
            }
        }
        if self.code_ttl_secs > 600 {
            problems.push("code_ttl_secs must be at most 600 (RFC 6749 §4.1.2)".into());
        }
        if self.max_body_bytes < 1024 {
            problems.push("max_body_bytes must be at least 1024".into());
        }
        let scopes = match (
            ScopeSet::parse(&self.scopes),
            ScopeSet::parse(&self.default_scopes),
        ) {
            (Ok(s), Ok(d)) => ScopePolicy::new(s, d)
                .map(|p| p.with_unknown(self.unknown_scopes.into()))
                .map_err(|e| problems.push(e))
                .ok(),
            _ => {
                problems
                    .push("scopes and default_scopes must be space-separated scope tokens".into());
                None
            }
        };
        let server_scopes = scopes.as_ref().map(|p| p.supported().clone());
        let mut resources = Vec::new();
        for r in &self.resources {
            let scopes = match r.scopes.as_deref().map(ScopeSet::parse).transpose() {
                Ok(s) => s,
                Err(e) => {
                    problems.push(format!("resource {:?} scopes: {}", r.url, e.description()));
                    None
                }
            };
            // Implied scopes must be the resource's, or the server's when it lists none; with
            // neither known (both malformed, reported above), the hierarchy waits for a fix.
            let accepted = scopes.as_ref().or(server_scopes.as_ref());
            let implies = match accepted {
                Some(accepted) => ScopeHierarchy::declare(
                    r.implies.iter().map(|(s, i)| (s.as_str(), i.as_str())),
                    accepted,
                )
                .unwrap_or_else(|e| {
                    problems.push(format!("resource {:?} implies: {}", r.url, e.description()));
                    ScopeHierarchy::default()
                }),
                None => ScopeHierarchy::default(),
            };
            match Resource::parse(&r.url) {
                Ok(resource) => resources.push(ProtectedResource {
                    resource,
                    scopes,
                    is_default: r.default,
                    implies,
                }),
                Err(e) => problems.push(format!("resource {:?}: {}", r.url, e.description())),
            }
        }
        if resources.iter().filter(|r| r.is_default).count() > 1 {
            problems.push("at most one configured resource can be the default".into());
        }
        let registration = RegistrationPolicy::from(self.registration);
        if self.revocation_poll_ms < 50 {
            problems.push("revocation_poll_ms must be at least 50".into());
        }
        if self.key_reload_secs == 0 {
            problems.push("key_reload_secs must be at least 1".into());
        }
        if self.lockout_base_secs < 1 || self.lockout_max_secs < self.lockout_base_secs {
            problems.push(
                "lockout_base_secs must be at least 1, and lockout_max_secs at least lockout_base_secs"
                    .into(),
            );
        }
        if self.lockout_account_base_secs < 1
            || self.lockout_account_max_secs < self.lockout_account_base_secs
        {
            problems.push(
                "lockout_account_base_secs must be at least 1, and lockout_account_max_secs at least lockout_account_base_secs"
                    .into(),
            );
        }
        // The account-wide delay is the one anybody can impose on the owner from any
        // network: a day-long one would be a lock in all but name.
        if self.lockout_account_max_secs > 3600 {
            problems.push("lockout_account_max_secs must be at most 3600".into());
        }
        problems.extend(self.bound_problems());
        let client_documents = self.document_policy(&mut problems);
        match scopes {
            Some(scopes) if problems.is_empty() => Ok(CoreSettings {
                issuer,
                access_token_ttl: Duration::seconds(self.access_token_ttl_secs),
                refresh_token_ttl: Duration::seconds(self.refresh_token_ttl_secs),
                code_ttl: Duration::seconds(self.code_ttl_secs),
                session_ttl: Duration::seconds(self.session_ttl_secs),
                leeway_secs: self.leeway_secs,
                key_encryption_key: kek,
                key_publish_secs: self.key_publish_secs,
                key_rotation_secs: i64::from(self.key_rotation_days) * 86_400,
                lockout: latchkey_core::lockout::LockoutPolicy {
                    network: Backoff {
                        threshold: self.lockout_threshold,
                        base_secs: self.lockout_base_secs,
                        max_secs: self.lockout_max_secs,
                    },
                    account: Backoff {
                        threshold: self.lockout_account_threshold,
                        base_secs: self.lockout_account_base_secs,
                        max_secs: self.lockout_account_max_secs,
                    },
                    // Failures are forgotten after an hour, or after the longest lock.
                    window_secs: self.lockout_max_secs.max(3600),
                },
                scopes,
                resources,
                open_resources: self.env != Environment::Production,
                registration,
                max_dynamic_clients: self.max_dynamic_clients,
                max_sessions_per_network: self.max_sessions_per_address,
                max_token_revocations_per_client: self.max_token_revocations_per_client,
                dynamic_client_idle: days(self.dynamic_client_idle_days),
                dynamic_client_unused: (self.dynamic_client_unused_hours > 0)
                    .then(|| Duration::hours(i64::from(self.dynamic_client_unused_hours))),
                dynamic_client_secret_ttl: days(self.dynamic_client_secret_days),
                refresh_max_age: days(self.refresh_max_age_days),
                client_documents,
            }),
            _ => Err(problems),
        }
    }

    /// The Client ID Metadata Document policy and the outbound client's settings.
    fn document_policy(&self, problems: &mut Vec<String>) -> DocumentPolicy {
        let mut hosts = |name: &str, list: &str| -> Vec<HostPattern> {
            list.split([',', ' '])
                .filter(|s| !s.trim().is_empty())
                .filter_map(|s| {
                    let p = HostPattern::parse(s);
                    if p.is_none() {
                        problems.push(format!(
                            "{name}: {s:?} is not a host name (example.com) or a wildcard (*.example.com)"
                        ));
                    }
                    p
                })
                .collect()
        };
        let policy = DocumentPolicy {
            enabled: self.cimd,
            allowed_hosts: hosts("cimd_allowed_hosts", &self.cimd_allowed_hosts),
            denied_hosts: hosts("cimd_denied_hosts", &self.cimd_denied_hosts),
            trusted_hosts: hosts("cimd_trusted_hosts", &self.cimd_trusted_hosts),
        };
        if self.outbound_allow_loopback && self.env == Environment::Production {
            problems.push(
                "outbound_allow_loopback (LATCHKEY_OUTBOUND_ALLOW_LOOPBACK) is for development only; production refuses it".into(),
            );
        }
        if let Some(path) = &self.outbound_ca_file
            && std::fs::metadata(path).is_err()
        {
            problems.push(format!(
                "outbound_ca_file (LATCHKEY_OUTBOUND_CA_FILE) {} cannot be read",
                path.display()
            ));
        }
        policy
    }

    /// The bounds on what callers can make the server hold, and the retention periods.
    fn bound_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, v) in [
            ("max_dynamic_clients", self.max_dynamic_clients),
            (
                "max_sessions_per_address",
                u64::from(self.max_sessions_per_address),
            ),
            (
                "max_token_revocations_per_client",
                self.max_token_revocations_per_client,
            ),
        ] {
            if v == 0 {
                problems.push(format!("{name} must be at least 1"));
            }
        }
        // One network must not be able to fill the store on its own.
        if (self.session_capacity as u64) < u64::from(self.max_sessions_per_address) {
            problems.push("session_capacity must be at least max_sessions_per_address".into());
        }
        if self.dynamic_client_unused_hours > MAX_DAYS {
            problems.push(format!(
                "dynamic_client_unused_hours must be at most {MAX_DAYS}"
            ));
        }
        for (name, v) in [
            ("dynamic_client_idle_days", self.dynamic_client_idle_days),
            (
                "dynamic_client_secret_days",
                self.dynamic_client_secret_days,
            ),
            ("refresh_max_age_days", self.refresh_max_age_days),
        ] {
            if v > MAX_DAYS {
                problems.push(format!(
                    "{name} must be at most {MAX_DAYS} (0 turns it off)"
                ));
            }
        }
        problems
    }
}

/// A period of `n` days; 0 means none.
fn days(n: u32) -> Option<Duration> {
    (n > 0).then(|| Duration::days(i64::from(n)))
}

/// Adds the problems not already reported (two checks may find the same one).
fn merge(into: &mut Vec<String>, more: impl IntoIterator<Item = String>) {
    for p in more {
        if !into.contains(&p) {
            into.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_must_be_an_origin() {
        for (issuer, ok) in [
            ("https://auth.example.com", true),
            ("https://auth.example.com/", true),
            ("https://auth.example.com/tenant", false),
            ("https://auth.example.com?x=1", false),
            ("ftp://auth.example.com", false),
        ] {
            let s = Settings {
                issuer: issuer.into(),
                ..Settings::default()
            };
            assert_eq!(s.core_settings().is_ok(), ok, "{issuer}");
        }
    }

    #[test]
    fn a_gateway_alone_needs_no_database_or_keys() {
        let s = Settings {
            env: Environment::Production,
            issuer: "https://auth.example.com".into(),
            cors_origins: "https://app.example.com".into(),
            gateway_secret: Some("a-gateway-secret-of-at-least-32-bytes".to_owned().into()),
            ..Settings::default()
        };
        assert!(s.gateway_problems().is_ok());
        assert!(
            s.core_settings().is_err(),
            "the AuthService would refuse SQLite and no KEK"
        );
        let bare = Settings {
            env: Environment::Production,
            ..Settings::default()
        };
        assert_eq!(bare.gateway_problems().expect_err("insecure").len(), 3);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's (large) error type
    fn unknown_words_and_out_of_range_values_are_reported_never_clamped() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LATCHKEY_REGISTRATION", "sometimes");
            let problems = Settings::load(None).expect_err("unknown policy");
            assert!(
                problems.iter().any(|p| p.contains("sometimes")),
                "{problems:?}"
            );
            jail.set_env("LATCHKEY_REGISTRATION", "off");
            jail.set_env("LATCHKEY_LOG_FORMAT", "xml");
            let problems = Settings::load(None).expect_err("unknown log format");
            assert!(problems.iter().any(|p| p.contains("xml")), "{problems:?}");
            Ok(())
        });
        let s = Settings {
            revocation_poll_ms: 5,
            key_reload_secs: 0,
            lockout_base_secs: 0,
            lockout_account_base_secs: 10,
            lockout_account_max_secs: 5,
            admin_secret: Some("short".to_owned().into()),
            ..Settings::default()
        };
        let problems = s.validate(Mode::Auth).expect_err("out of range");
        for needle in [
            "revocation_poll_ms",
            "key_reload_secs",
            "lockout_base_secs",
            "lockout_account_max_secs at least",
            "admin_secret",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:?}"
            );
        }
    }

    #[test]
    fn bounds_and_retention_periods_out_of_range_are_reported_never_clamped() {
        let s = Settings {
            max_dynamic_clients: 0,
            max_sessions_per_address: 500,
            session_capacity: 100,
            max_token_revocations_per_client: 0,
            dynamic_client_idle_days: MAX_DAYS + 1,
            refresh_max_age_days: u32::MAX,
            ..Settings::default()
        };
        let problems = s.validate(Mode::Auth).expect_err("out of range");
        for needle in [
            "max_dynamic_clients",
            "session_capacity",
            "max_token_revocations_per_client",
            "dynamic_client_idle_days",
            "refresh_max_age_days",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:?}"
            );
        }
        let zero_sessions = Settings {
            max_sessions_per_address: 0,
            ..Settings::default()
        };
        let problems = zero_sessions.validate(Mode::Auth).expect_err("zero");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("max_sessions_per_address")),
            "{problems:?}"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's (large) error type
    fn bounds_and_retention_come_from_the_environment_and_zero_days_turn_a_period_off() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LATCHKEY_MAX_DYNAMIC_CLIENTS", "7");
            jail.set_env("LATCHKEY_MAX_SESSIONS_PER_ADDRESS", "3");
            jail.set_env("LATCHKEY_MAX_TOKEN_REVOCATIONS_PER_CLIENT", "11");
            jail.set_env("LATCHKEY_DYNAMIC_CLIENT_IDLE_DAYS", "0");
            jail.set_env("LATCHKEY_DYNAMIC_CLIENT_SECRET_DAYS", "30");
            jail.set_env("LATCHKEY_REFRESH_MAX_AGE_DAYS", "14");
            let core = Settings::load(None)
                .expect("load")
                .core_settings()
                .expect("valid");
            assert_eq!(core.max_dynamic_clients, 7);
            assert_eq!(core.max_sessions_per_network, 3);
            assert_eq!(core.max_token_revocations_per_client, 11);
            assert_eq!(core.dynamic_client_idle, None, "0 days: never");
            assert_eq!(core.dynamic_client_secret_ttl, Some(Duration::days(30)));
            assert_eq!(core.refresh_max_age, Some(Duration::days(14)));
            Ok(())
        });
        let defaults = Settings::default().core_settings().expect("valid");
        assert_eq!(defaults.dynamic_client_idle, Some(Duration::days(90)));
        assert_eq!(
            defaults.dynamic_client_secret_ttl, None,
            "secrets do not expire unless the operator says so"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's (large) error type
    fn the_account_wide_sign_in_delay_comes_from_the_environment_and_is_bounded() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LATCHKEY_LOCKOUT_ACCOUNT_THRESHOLD", "12");
            jail.set_env("LATCHKEY_LOCKOUT_ACCOUNT_BASE_SECS", "2");
            jail.set_env("LATCHKEY_LOCKOUT_ACCOUNT_MAX_SECS", "120");
            let core = Settings::load(None)
                .expect("load")
                .core_settings()
                .expect("valid");
            assert_eq!(
                core.lockout.account,
                Backoff {
                    threshold: 12,
                    base_secs: 2,
                    max_secs: 120
                }
            );
            assert_eq!(core.lockout.network.threshold, 5, "the per-network default");
            jail.set_env("LATCHKEY_LOCKOUT_ACCOUNT_MAX_SECS", "86400");
            let problems = Settings::load(None)
                .expect("load")
                .core_settings()
                .expect_err("a day-long delay is a lock");
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains("lockout_account_max_secs must be at most 3600")),
                "{problems:?}"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's (large) error type
    fn the_metrics_port_is_still_set_by_its_old_name() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LATCHKEY_ADMIN_ADDR", "127.0.0.1:9999");
            let s = Settings::load(None).expect("load");
            assert_eq!(
                s.metrics_addr,
                Some(SocketAddr::from(([127, 0, 0, 1], 9999)))
            );
            Ok(())
        });
    }

    #[test]
    // figment's Jail fixes the closure's error type; it is large, and only a test builds it.
    #[allow(clippy::result_large_err)]
    fn resources_and_the_registration_policy_come_from_the_environment_too() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "LATCHKEY_RESOURCES",
                r#"[{url="https://a.example.com/mcp",default=true},{url="https://b.example.com/mcp",scopes="mcp:tools"}]"#,
            );
            jail.set_env("LATCHKEY_REGISTRATION", "initial_access_token");
            let s = Settings::load(None).expect("load");
            let core = s.core_settings().expect("valid");
            assert_eq!(core.resources.len(), 2);
            assert!(core.resources[0].is_default);
            assert_eq!(
                core.resources[1]
                    .scopes
                    .as_ref()
                    .map(ToString::to_string)
                    .as_deref(),
                Some("mcp:tools")
            );
            assert_eq!(core.registration, RegistrationPolicy::InitialAccessToken);
            Ok(())
        });
    }

    #[test]
    // figment's Jail fixes the closure's error type; it is large, and only a test builds it.
    #[allow(clippy::result_large_err)]
    fn a_configured_scope_hierarchy_is_checked_like_one_added_by_the_cli() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LATCHKEY_SCOPES", "files:read files:write admin");
            jail.set_env("LATCHKEY_DEFAULT_SCOPES", "files:read");
            jail.set_env(
                "LATCHKEY_RESOURCES",
                r#"[{url="https://files.example.com/mcp",default=true,implies={"files:write"="files:read",admin="files:write"}}]"#,
            );
            let core = Settings::load(None)
                .expect("load")
                .core_settings()
                .expect("valid");
            let implies = &core.resources[0].implies;
            let admin = ScopeSet::parse("admin").expect("valid");
            assert_eq!(
                implies.expand(&admin, core.scopes.supported()).to_string(),
                "admin files:read files:write"
            );
            Ok(())
        });
        let refused = |scopes: Option<&str>, implies: &[(&str, &str)]| {
            let s = Settings {
                scopes: "files:read files:write admin".into(),
                default_scopes: "files:read".into(),
                resources: vec![ResourceConfig {
                    url: "https://files.example.com/mcp".into(),
                    scopes: scopes.map(str::to_owned),
                    default: true,
                    implies: implies
                        .iter()
                        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                        .collect(),
                }],
                ..Settings::default()
            };
            s.core_settings().expect_err("refused").join("\n")
        };
        for (scopes, implies, words) in [
            (
                None,
                &[("files:write", "files:read"), ("files:read", "files:write")][..],
                "cycle: files:read -> files:write -> files:read",
            ),
            (
                Some("files:read files:write"),
                &[("admin", "files:read")][..],
                "does not accept: admin",
            ),
            (
                None,
                &[("admin", "mcp:tools")][..],
                "does not accept: mcp:tools",
            ),
            (None, &[("admin", "offline_access")][..], "offline_access"),
        ] {
            let problems = refused(scopes, implies);
            assert!(
                problems.contains("resource \"https://files.example.com/mcp\" implies")
                    && problems.contains(words),
                "{words}: {problems}"
            );
        }
    }

    const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn production_with_redis(url: &str) -> Settings {
        Settings {
            env: Environment::Production,
            issuer: "https://auth.example.com".into(),
            cors_origins: "https://app.example.com".into(),
            database_url: "postgres://latchkey@db.example.com/latchkey".into(),
            key_encryption_key: Some(KEK.to_owned().into()),
            gateway_secret: Some("g".repeat(32).into()),
            redis_url: Some(url.into()),
            ..Settings::default()
        }
    }

    #[test]
    fn production_refuses_a_redis_url_without_auth_or_tls() {
        for (url, ok, case) in [
            (
                "redis://redis.example.com:6379",
                false,
                "neither password nor TLS",
            ),
            (
                "redis://latchkey@redis.example.com:6379",
                false,
                "a user with no password",
            ),
            (
                "redis://:@redis.example.com:6379",
                false,
                "an empty password",
            ),
            (
                "redis://:s3cret@redis.example.com:6379",
                true,
                "a password (AUTH)",
            ),
            (
                "redis://latchkey:s3cret@redis.example.com:6379/2",
                true,
                "an ACL user and password",
            ),
            ("rediss://redis.example.com:6380", true, "TLS"),
            (
                "redis+unix:///run/redis.sock?pass=s3cret",
                true,
                "a socket with a password",
            ),
        ] {
            let s = production_with_redis(url);
            for mode in [Mode::Auth, Mode::Gateway, Mode::All] {
                let problems = s.validate(mode).err().unwrap_or_default();
                let refused = problems.iter().any(|p| p.contains("Redis AUTH or TLS"));
                assert_eq!(!refused, ok, "{case} in {mode:?}: {problems:?}");
                if !ok {
                    assert!(
                        problems.iter().all(|p| !p.contains("redis.example.com")),
                        "the URL, which may hold a password, is not echoed: {problems:?}"
                    );
                }
            }
        }
        let dev = Settings {
            redis_url: Some("redis://127.0.0.1:6379".into()),
            key_encryption_key: Some(KEK.to_owned().into()),
            ..Settings::default()
        };
        assert!(
            dev.validate(Mode::All).is_ok(),
            "development may use an open local Redis"
        );
    }

    #[test]
    fn redis_needs_the_key_encryption_key_and_a_redis_url() {
        let s = Settings {
            redis_url: Some("redis://127.0.0.1:6379".into()),
            ..Settings::default()
        };
        let problems = s.validate(Mode::Auth).expect_err("no KEK");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("LATCHKEY_KEY_ENCRYPTION_KEY")),
            "{problems:?}"
        );
        let gateway = Settings {
            gateway_secret: Some("g".repeat(32).into()),
            ..s.clone()
        };
        assert!(
            gateway.validate(Mode::Gateway).is_ok(),
            "the gateway keeps no sessions, so it needs no key-encryption key"
        );
        let bad = Settings {
            redis_url: Some("http://127.0.0.1:6379".into()),
            key_encryption_key: Some(KEK.to_owned().into()),
            ..Settings::default()
        };
        let problems = bad.validate(Mode::Auth).expect_err("not a Redis URL");
        assert!(
            problems.iter().any(|p| p.contains("redis_url")),
            "{problems:?}"
        );
    }

    #[test]
    fn database_timeouts_out_of_range_are_reported() {
        for (acquire, fail_fast, ok) in [
            (2000, 1000, true),
            (100, 60_000, true),
            (0, 1000, false),
            (2000, 99, false),
            (60_001, 1000, false),
        ] {
            let s = Settings {
                database_acquire_timeout_ms: acquire,
                database_fail_fast_ms: fail_fast,
                ..Settings::default()
            };
            assert_eq!(
                s.validate(Mode::Auth).is_ok(),
                ok,
                "acquire {acquire} ms, fail fast {fail_fast} ms"
            );
        }
        let s = Settings::default();
        assert_eq!(
            s.pool_settings(),
            latchkey_store::PoolSettings::default(),
            "the documented defaults are the store's"
        );
    }

    #[test]
    fn a_shared_secret_shorter_than_32_bytes_is_refused_in_every_mode_that_uses_it() {
        let long = "a-shared-secret-of-exactly-32-by";
        assert_eq!(long.len(), MIN_SHARED_SECRET_BYTES);
        for secret in ["", "short", &long[1..]] {
            for mode in [Mode::Gateway, Mode::Auth, Mode::All] {
                let s = Settings {
                    gateway_secret: Some(secret.to_owned().into()),
                    ..Settings::default()
                };
                let problems = s.validate(mode).expect_err("a short gateway secret");
                assert!(
                    problems.iter().any(|p| p.contains("gateway_secret")),
                    "{mode:?} with {} bytes: {problems:?}",
                    secret.len()
                );
            }
            let s = Settings {
                admin_secret: Some(secret.to_owned().into()),
                ..Settings::default()
            };
            for mode in [Mode::Auth, Mode::All, Mode::Database] {
                let problems = s.validate(mode).expect_err("a short admin secret");
                assert!(
                    problems.iter().any(|p| p.contains("admin_secret")),
                    "{mode:?} with {} bytes: {problems:?}",
                    secret.len()
                );
            }
        }
        for mode in [Mode::Gateway, Mode::Auth, Mode::All] {
            let s = Settings {
                gateway_secret: Some(long.to_owned().into()),
                admin_secret: Some(long.to_owned().into()),
                ..Settings::default()
            };
            assert!(s.validate(mode).is_ok(), "{mode:?} with 32 bytes");
        }
        // Commands that open the database never use the gateway's secret.
        let s = Settings {
            gateway_secret: Some(String::new().into()),
            ..Settings::default()
        };
        assert!(s.validate(Mode::Database).is_ok());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail fixes the closure's (large) error type
    fn trusted_proxies_replace_the_forwarded_for_switch_which_true_no_longer_starts() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "LATCHKEY_TRUSTED_PROXIES",
                "10.0.0.0/8, fd00::/8 192.168.1.1",
            );
            jail.set_env("LATCHKEY_FORWARDED_HEADER", "forwarded");
            let s = Settings::load(None).expect("load");
            assert_eq!(s.trusted_proxies.ranges().len(), 3);
            assert_eq!(s.forwarded_header, ForwardedHeader::Forwarded);
            assert!(s.validate(Mode::All).is_ok());
            jail.create_file(
                "latchkey.toml",
                r#"trusted_proxies = ["10.1.0.0/16", "::1"]"#,
            )?;
            jail.set_env("LATCHKEY_TRUSTED_PROXIES", "");
            let s = Settings::load(Some(Path::new("latchkey.toml"))).expect("load");
            assert!(
                s.trusted_proxies.is_empty(),
                "the variable overrides the file"
            );
            jail.clear_env();
            let s = Settings::load(Some(Path::new("latchkey.toml"))).expect("load");
            assert_eq!(s.trusted_proxies.ranges().len(), 2, "a list in the file");
            jail.set_env("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/33");
            let problems = Settings::load(None).expect_err("not a range");
            assert!(
                problems.iter().any(|p| p.contains("10.0.0.0/33")),
                "{problems:?}"
            );
            jail.set_env("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/8");
            jail.set_env("LATCHKEY_TRUST_FORWARDED_FOR", "false");
            let s = Settings::load(None).expect("load");
            assert!(s.validate(Mode::All).is_ok(), "false changes nothing");
            jail.set_env("LATCHKEY_TRUST_FORWARDED_FOR", "true");
            let s = Settings::load(None).expect("load");
            for mode in [Mode::All, Mode::Auth] {
                let problems = s.validate(mode).expect_err("the old switch is refused");
                assert!(
                    problems
                        .iter()
                        .any(|p| p.contains("LATCHKEY_TRUSTED_PROXIES")),
                    "{problems:?}"
                );
            }
            Ok(())
        });
    }

    #[test]
    fn edge_settings_out_of_range_are_reported_never_clamped() {
        let s = Settings {
            trusted_proxies: TrustedProxies::parse(
                "10.0.0.0/8 fc00::/7 fd12::/16 0.0.0.0/0 ::/0 128.0.0.0/1 8000::/1 2001::/16",
            )
            .expect("parse"),
            http_header_timeout_ms: 0,
            http_idle_timeout_ms: 10,
            http_request_timeout_ms: 4_000_000,
            http_body_timeout_ms: 50,
            http_max_connections: 0,
            http_max_connections_per_network: Some(128),
            http2_max_concurrent_streams: 0,
            forward_auth_addr: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            gateway_secret: Some("s".repeat(32).into()),
            ..Settings::default()
        };
        let problems = s.validate(Mode::Gateway).expect_err("out of range");
        for needle in [
            "0.0.0.0/0",
            "::/0",
            "128.0.0.0/1",
            "8000::/1",
            "2001::/16",
            "http_header_timeout_ms",
            "http_idle_timeout_ms",
            "http_request_timeout_ms",
            "http_body_timeout_ms",
            "http_max_connections must",
            "http_max_connections_per_network (128) must be at most http_max_connections (0)",
            "http2_max_concurrent_streams",
            "forward_auth_addr",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:?}"
            );
        }
        assert_eq!(problems.len(), 13, "{problems:?}");
        let limits = Settings::default().http_limits();
        assert_eq!(limits.header_timeout, StdDuration::from_secs(10));
        assert_eq!(limits.max_connections, 1024);
        assert_eq!(limits.max_connections_per_network, 128);
    }

    #[test]
    fn production_refuses_insecure_setups_all_at_once() {
        let s = Settings {
            env: Environment::Production,
            ..Settings::default()
        };
        let problems = s.core_settings().expect_err("insecure");
        assert_eq!(problems.len(), 4, "{problems:?}");
    }
}
