//! Building the engine from settings, and serving it over gRPC on a bound listener.

use crate::config::Settings;
use crate::service::AuthGrpc;
use latchkey_core::AuthCore;
use latchkey_core::clock::SystemClock;
use latchkey_core::session::MemorySessionStore;
use latchkey_core::store::Stores;
use latchkey_proto::v1::auth_service_server::AuthServiceServer;
use latchkey_redis::{Redis, RedisLockout, RedisSessionStore};
use latchkey_store::SeaStore;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How far back each poll looks again. An event's `revoked_at` comes from the publishing
/// replica's clock and is set before its insert commits, so a publisher whose clock is
/// behind, or a slow commit, can land an event behind the last poll; events already applied
/// are skipped by id, so the overlap costs only a re-read of the last minute's events.
const POLL_OVERLAP_SECS: i64 = 60;

/// The engine and what it runs on.
pub struct Engine {
    pub core: Arc<AuthCore>,
    pub store: SeaStore,
    pub redis: Option<Redis>,
    /// How often this replica reads new revocations from the database. Redis pub/sub
    /// delivers them sooner; the poll bounds the delay when Redis is absent or loses one.
    pub revocation_poll: Duration,
    /// How often this replica reloads signing keys and checks for a due rotation.
    pub key_reload: Duration,
}

impl Engine {
    pub fn probes(&self) -> crate::probes::Probes {
        crate::probes::Probes {
            store: self.store.clone(),
            redis: self.redis.clone(),
        }
    }
}

/// The AuthService as a tower service, with its metrics, for callers in the same process
/// (the all-in-one `serve` gateway): the same gRPC service and messages, without a socket.
pub fn in_process_service(
    engine: &Engine,
    gateway_secret: Option<&str>,
) -> crate::grpc_metrics::GrpcMetrics<AuthServiceServer<AuthGrpc>> {
    use tower::Layer;
    crate::grpc_metrics::GrpcMetricsLayer.layer(AuthServiceServer::new(AuthGrpc::new(
        engine.core.clone(),
        engine.probes(),
        gateway_secret,
    )))
}

/// A startup failure, with its real cause: the operator reads this, not a client.
fn startup(e: latchkey_core::AuthError) -> anyhow::Error {
    match e {
        latchkey_core::AuthError::Internal(source) => anyhow::anyhow!("{source}"),
        e => anyhow::anyhow!("{}", e.description()),
    }
}

/// Opens (and migrates) the database, connects Redis when configured, builds the engine
/// (creating the first signing key on a fresh database), and replays the revocations in force.
pub async fn build_core(settings: &Settings) -> anyhow::Result<Engine> {
    let core_settings = settings
        .core_settings()
        .map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    let store = SeaStore::connect(&settings.database_url).await?;
    store.migrate().await?;
    let clock = Arc::new(SystemClock);
    let keys = AuthCore::load_or_create_keys(&store, clock.as_ref(), &core_settings)
        .await
        .map_err(startup)?;
    let mut core = AuthCore::new(
        core_settings,
        Stores::from_backend(Arc::new(store.clone())),
        Arc::new(MemorySessionStore::default()),
        Arc::new(keys),
        clock,
    );
    let redis = match &settings.redis_url {
        Some(url) => {
            let redis = Redis::connect(url).map_err(anyhow::Error::msg)?;
            core = core
                .with_revocation_bus(Arc::new(redis.clone()))
                .with_session_store(Arc::new(RedisSessionStore::new(redis.clone())))
                .with_lockout_store(Arc::new(RedisLockout::new(redis.clone())));
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
    core.sync_revocations(0)
        .await
        .map_err(|e| anyhow::anyhow!("loading revocations: {}", e.description()))?;
    Ok(Engine {
        core: Arc::new(core),
        store,
        redis,
        revocation_poll: Duration::from_millis(settings.revocation_poll_ms.max(50)),
        key_reload: Duration::from_secs(settings.key_reload_secs.max(1)),
    })
}

/// Keeps this replica's denylist current until `stop`: Redis pub/sub when configured, and
/// a database poll every `revocation_poll` in any case.
pub fn spawn_revocation_sync(
    engine: &Engine,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some(redis) = engine.redis.clone() {
        let denylist = engine.core.denylist().clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            redis.subscribe_revocations(denylist, stop).await
        }));
    }
    let keys_core = engine.core.clone();
    let reload = engine.key_reload;
    let mut keys_stop = stop.clone();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(reload);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = keys_stop.changed() => return,
            }
            maintain_keys(&keys_core).await;
        }
    }));
    let core = engine.core.clone();
    let poll = engine.revocation_poll;
    let mut stop = stop;
    tasks.push(tokio::spawn(async move {
        let mut since = chrono::Utc::now().timestamp() - POLL_OVERLAP_SECS;
        let mut tick = tokio::time::interval(poll);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let started = chrono::Utc::now().timestamp();
            match core.sync_revocations(since).await {
                Ok(_) => since = started - POLL_OVERLAP_SECS,
                Err(e) => tracing::warn!(error = %e.description(), "revocation poll failed"),
            }
        }
    }));
    tasks
}

/// Publishes the next key when rotation is due, picks up keys other replicas published,
/// retires expired ones, and reports the signing key's age.
async fn maintain_keys(core: &AuthCore) {
    match core.rotate_if_due().await {
        Ok(Some(kid)) => tracing::info!(%kid, "scheduled key rotation: next key published"),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e.description(), "scheduled key rotation failed"),
    }
    match core.prune_revocations().await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(pruned = n, "expired revocation events deleted"),
        Err(e) => tracing::warn!(error = %e.description(), "pruning revocation events failed"),
    }
    if let Err(e) = core.reload_keys().await {
        tracing::warn!(error = %e.description(), "reloading signing keys failed");
    }
    let now = chrono::Utc::now().timestamp();
    if let Some(since) = core.keys().active_since(now) {
        metrics::gauge!("latchkey_signing_key_age_seconds").set((now - since) as f64);
    }
}

/// Serves the AuthService, gRPC health and reflection on `listener` until `shutdown`.
pub async fn serve(
    engine: &Engine,
    gateway_secret: Option<&str>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<AuthServiceServer<AuthGrpc>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(latchkey_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(latchkey_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let (stop_sync, stop_rx) = watch::channel(false);
    let sync = spawn_revocation_sync(engine, stop_rx);
    tracing::info!(addr = %listener.local_addr()?, "gRPC AuthService listening");
    let result = tonic::transport::Server::builder()
        .trace_fn(crate::telemetry::grpc_span)
        .layer(crate::grpc_metrics::GrpcMetricsLayer)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(AuthServiceServer::new(AuthGrpc::new(
            engine.core.clone(),
            engine.probes(),
            gateway_secret,
        )))
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs hold small
            // responses for ~40 ms: unary RPCs would crawl.
            tonic::transport::server::TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .with_keepalive(Some(Duration::from_secs(60))),
            shutdown,
        )
        .await;
    let _ = stop_sync.send(true);
    for t in sync {
        let _ = t.await;
    }
    Ok(result?)
}
