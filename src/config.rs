//! The one typed configuration: defaults, then an optional TOML file, then `LATCHKEY_*`
//! environment variables. Everything is validated, and every problem reported at once,
//! before a port opens. `latchkey check-config` prints the same report.

use chrono::Duration;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use latchkey_core::CoreSettings;
use latchkey_core::registration::RegistrationPolicy;
use latchkey_core::resource::{ProtectedResource, Resource};
use latchkey_core::scope::{ScopePolicy, ScopeSet};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

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
    /// `serve auth`, and commands that open the database.
    Auth,
    /// `serve gateway`: no database, no keys.
    Gateway,
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

/// A protected resource declared in configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceConfig {
    pub url: String,
    #[serde(default)]
    pub scopes: Option<String>,
    #[serde(default)]
    pub default: bool,
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
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub code_ttl_secs: i64,
    pub session_ttl_secs: i64,
    pub leeway_secs: u64,
    /// Supported scopes, space-separated (`offline_access` is always added).
    pub scopes: String,
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
    /// Sign-in lockout: failures before the first lock, its length, and the cap.
    pub lockout_threshold: u32,
    pub lockout_base_secs: i64,
    pub lockout_max_secs: i64,
    /// Requests per minute per client IP, by endpoint group; 0 turns a limit off.
    pub rate_limit_token_per_min: u32,
    pub rate_limit_authorize_per_min: u32,
    pub rate_limit_login_per_min: u32,
    pub rate_limit_register_per_min: u32,
    /// Take the client IP from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
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
}

impl Default for Settings {
    fn default() -> Self {
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
            access_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            code_ttl_secs: 300,
            session_ttl_secs: 600,
            leeway_secs: 5,
            scopes: "mcp:tools mcp:resources mcp:prompts".into(),
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
            rate_limit_token_per_min: 600,
            rate_limit_authorize_per_min: 120,
            rate_limit_login_per_min: 30,
            rate_limit_register_per_min: 20,
            trust_forwarded_for: false,
            // 9464, not 9090: a developer's own Prometheus often holds 9090.
            metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            key_encryption_key: None,
            key_rotation_days: 30,
            key_publish_secs: 900,
            key_reload_secs: 10,
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

    /// The checks that apply to a gateway running alone: issuer, CORS, its credential.
    pub fn gateway_problems(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
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
        if self.gateway_secret.is_none() {
            problems
                .push("the gateway needs LATCHKEY_GATEWAY_SECRET to call the AuthService".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Every check that applies to `mode`, with every problem reported at once. `serve`, each
    /// split mode, the commands and `check-config` all call it.
    pub fn validate(&self, mode: Mode) -> Result<Option<CoreSettings>, Vec<String>> {
        match mode {
            Mode::Gateway => self.gateway_problems().map(|()| None),
            Mode::Auth => self.core_settings().map(Some),
            Mode::All => {
                let core = self.core_settings();
                // The in-process gateway needs no secret of its own: `serve` makes one.
                let gateway = if self.gateway_secret.is_none() {
                    Ok(())
                } else {
                    self.gateway_problems()
                };
                match (core, gateway) {
                    (Ok(core), Ok(())) => Ok(Some(core)),
                    (Err(mut a), Err(b)) => {
                        for p in b {
                            if !a.contains(&p) {
                                a.push(p);
                            }
                        }
                        Err(a)
                    }
                    (Err(p), _) | (_, Err(p)) => Err(p),
                }
            }
        }
    }

    /// Parses the settings into the core's types, reporting every problem at once.
    pub fn core_settings(&self) -> Result<CoreSettings, Vec<String>> {
        let mut problems = Vec::new();
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
            && secret.expose_secret().len() < 32
        {
            problems
                .push("admin_secret must be at least 32 bytes (openssl rand -base64 32)".into());
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
            (Ok(s), Ok(d)) => ScopePolicy::new(s, d).map_err(|e| problems.push(e)).ok(),
            _ => {
                problems
                    .push("scopes and default_scopes must be space-separated scope tokens".into());
                None
            }
        };
        let mut resources = Vec::new();
        for r in &self.resources {
            let scopes = match r.scopes.as_deref().map(ScopeSet::parse).transpose() {
                Ok(s) => s,
                Err(e) => {
                    problems.push(format!("resource {:?} scopes: {}", r.url, e.description()));
                    None
                }
            };
            match Resource::parse(&r.url) {
                Ok(resource) => resources.push(ProtectedResource {
                    resource,
                    scopes,
                    is_default: r.default,
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
                    threshold: self.lockout_threshold,
                    base_secs: self.lockout_base_secs,
                    max_secs: self.lockout_max_secs,
                    // Failures are forgotten after an hour, or after the longest lock.
                    window_secs: self.lockout_max_secs.max(3600),
                },
                scopes,
                resources,
                open_resources: self.env != Environment::Production,
                registration,
            }),
            _ => Err(problems),
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
            gateway_secret: Some("s".to_owned().into()),
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
            admin_secret: Some("short".to_owned().into()),
            ..Settings::default()
        };
        let problems = s.validate(Mode::Auth).expect_err("out of range");
        for needle in [
            "revocation_poll_ms",
            "key_reload_secs",
            "lockout_base_secs",
            "admin_secret",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:?}"
            );
        }
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
    fn production_refuses_insecure_setups_all_at_once() {
        let s = Settings {
            env: Environment::Production,
            ..Settings::default()
        };
        let problems = s.core_settings().expect_err("insecure");
        assert_eq!(problems.len(), 4, "{problems:?}");
    }
}
