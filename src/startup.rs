//! Building the application from validated settings and its dependencies, in the manner of
//! zero-to-production's `Application::build`: the database (opened and migrated), Redis when
//! configured, the signing keys, and the core over them, on the clock it is given.
//!
//! Tests hand in a clock they control, and may hand in stores of their own.

use crate::config::Settings;
use crate::probes::Probes;
use latchkey_auth::readiness::{AlwaysReady, Readiness};
use latchkey_core::AuthCore;
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::session::MemorySessionStore;
use latchkey_core::store::Stores;
use latchkey_outbound::{FetchPolicy, Fetcher};
use latchkey_redis::{Redis, RedisLockout, RedisSessionStore};
use latchkey_store::SeaStore;
use std::sync::Arc;
use std::time::Duration;

/// What the application runs on, beyond its settings.
pub struct Deps {
    /// The core's clock: the only clock, for the core and for maintenance.
    pub clock: Arc<dyn Clock>,
    /// Stores to use instead of opening `database_url` (tests).
    pub stores: Option<Stores>,
    /// The outbound client's rate and concurrency limits, instead of
    /// [`latchkey_outbound::Limits::default`] (tests that fetch many documents at once).
    pub outbound_limits: Option<latchkey_outbound::Limits>,
    /// A shorter total timeout for fetching a metadata document than the policy's 5 s
    /// (tests of a slow server).
    pub document_timeout: Option<Duration>,
}

impl Default for Deps {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            stores: None,
            outbound_limits: None,
            document_timeout: None,
        }
    }
}

/// The outbound client for URLs that clients supply, from the settings: the extra CA roots
/// and the development switch for loopback targets.
fn outbound_fetcher(
    settings: &Settings,
    limits: Option<&latchkey_outbound::Limits>,
) -> anyhow::Result<Fetcher> {
    let mut builder = Fetcher::builder().allow_loopback(settings.outbound_allow_loopback);
    if let Some(limits) = limits {
        builder = builder.limits(limits.clone());
    }
    if let Some(path) = &settings.outbound_ca_file {
        builder = builder.extra_roots_file(path)?;
    }
    Ok(builder.build()?)
}

/// The AuthService side, built: the core and what it runs on.
pub struct Application {
    pub core: Arc<AuthCore>,
    pub readiness: Arc<dyn Readiness>,
    pub redis: Option<Redis>,
    /// How often this replica reads new revocations from the database. Redis pub/sub
    /// delivers them sooner; the poll bounds the delay when Redis is absent or loses one.
    pub revocation_poll: Duration,
    /// How often this replica reloads signing keys and checks for a due rotation.
    pub key_reload: Duration,
}

/// A startup failure, with its real cause: the operator reads this, not a client.
fn startup(e: latchkey_core::AuthError) -> anyhow::Error {
    match e {
        latchkey_core::AuthError::Internal(source) => anyhow::anyhow!("{source}"),
        e => anyhow::anyhow!("{}", e.description()),
    }
}

impl Application {
    /// Opens (and migrates) the database unless `deps` brings stores, connects Redis when
    /// configured, builds the core (creating the first signing key on a fresh database), and
    /// replays the revocations in force.
    pub async fn build(settings: &Settings, deps: Deps) -> anyhow::Result<Self> {
        let core_settings = settings
            .validate(crate::config::Mode::Database)
            .map_err(|p| anyhow::anyhow!(p.join("; ")))?
            .ok_or_else(|| anyhow::anyhow!("no core settings"))?;
        let (stores, store) = match deps.stores {
            Some(stores) => (stores, None),
            None => {
                let store =
                    SeaStore::connect_with(&settings.database_url, settings.pool_settings())
                        .await?;
                store.migrate().await?;
                (Stores::from_backend(Arc::new(store.clone())), Some(store))
            }
        };
        // Sessions and revocation messages in Redis are sealed under keys derived from it;
        // validation refuses Redis without it.
        let kek = core_settings.key_encryption_key.clone();
        // Documents and key sets that clients publish; made whether or not documents are
        // read as clients, since any client may use private_key_jwt with a jwks_uri.
        let documents = {
            let mut policy = FetchPolicy::document();
            let mut key_set_policy = FetchPolicy::key_set();
            if let Some(t) = deps.document_timeout {
                policy.total_timeout = t.min(policy.total_timeout);
                key_set_policy.total_timeout = t.min(key_set_policy.total_timeout);
            }
            Arc::new(crate::client_documents::OutboundDocuments::new(
                outbound_fetcher(settings, deps.outbound_limits.as_ref())?,
                policy,
                key_set_policy,
                deps.clock.clone(),
            ))
        };
        let keys = AuthCore::load_or_create_keys(
            stores.keys.as_ref(),
            deps.clock.as_ref(),
            &core_settings,
        )
        .await
        .map_err(startup)?;
        let mut core = AuthCore::new(
            core_settings,
            stores,
            Arc::new(MemorySessionStore::new(settings.session_capacity)),
            Arc::new(keys),
            deps.clock,
        )
        .with_client_documents(documents);
        let redis = match &settings.redis_url {
            Some(url) => {
                let kek = kek.as_ref().ok_or_else(|| {
                    anyhow::anyhow!("LATCHKEY_REDIS_URL needs LATCHKEY_KEY_ENCRYPTION_KEY")
                })?;
                let redis = Redis::connect(url, kek).map_err(anyhow::Error::msg)?;
                core = core
                    .with_revocation_bus(Arc::new(redis.clone()))
                    .with_session_store(Arc::new(RedisSessionStore::new(
                        redis.clone(),
                        kek,
                        &settings.issuer,
                    )))
                    .with_lockout_store(Arc::new(RedisLockout::new(
                        redis.clone(),
                        &settings.issuer,
                    )));
                if !redis.ping().await {
                    // Keep starting: revocations still flow through the database, and logins
                    // resume when Redis is back. Readiness reports it.
                    tracing::warn!(
                        "Redis is unreachable: logins fail until it is back; revocations fall back to the database poll"
                    );
                }
                Some(redis)
            }
            None => None,
        };
        core.sync_revocations(0).await.map_err(startup)?;
        core.sync_directory(0).await.map_err(startup)?;
        let readiness: Arc<dyn Readiness> = match store {
            Some(store) => Arc::new(Probes {
                store,
                redis: redis.clone(),
            }),
            None => Arc::new(AlwaysReady),
        };
        Ok(Self {
            core: Arc::new(core),
            readiness,
            redis,
            revocation_poll: Duration::from_millis(settings.revocation_poll_ms),
            key_reload: Duration::from_secs(settings.key_reload_secs),
        })
    }
}
