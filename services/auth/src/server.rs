//! Building the engine from settings, and serving it over gRPC on a bound listener.

use crate::config::Settings;
use crate::service::AuthGrpc;
use latchkey_core::AuthCore;
use latchkey_core::clock::SystemClock;
use latchkey_core::session::MemorySessionStore;
use latchkey_core::store::Stores;
use latchkey_proto::v1::auth_service_server::AuthServiceServer;
use latchkey_store::SeaStore;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Opens (and migrates) the database and builds the engine, creating the first signing key
/// on a fresh database.
pub async fn build_core(settings: &Settings) -> anyhow::Result<(Arc<AuthCore>, SeaStore)> {
    let core_settings = settings
        .core_settings()
        .map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    let store = SeaStore::connect(&settings.database_url).await?;
    store.migrate().await?;
    let clock = Arc::new(SystemClock);
    let keys = AuthCore::load_or_create_keys(&store, clock.as_ref()).await?;
    let core = AuthCore::new(
        core_settings,
        Stores::from_backend(Arc::new(store.clone())),
        Arc::new(MemorySessionStore::default()),
        Arc::new(keys),
        clock,
    );
    Ok((Arc::new(core), store))
}

/// Serves the AuthService, gRPC health and reflection on `listener` until `shutdown`.
pub async fn serve(
    core: Arc<AuthCore>,
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
    tracing::info!(addr = %listener.local_addr()?, "gRPC AuthService listening");
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(AuthServiceServer::new(AuthGrpc::new(core, gateway_secret)))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await?;
    Ok(())
}
