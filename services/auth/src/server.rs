//! The gRPC server around the service: health, reflection, metrics and trace propagation,
//! on a listener the caller bound, until the caller's shutdown future completes.

use crate::readiness::Readiness;
use crate::service::AuthGrpc;
use latchkey_core::AuthCore;
use latchkey_proto::v1::auth_service_server::AuthServiceServer;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The AuthService as a tower service, with its metrics, for callers in the same process
/// (the all-in-one `serve` gateway): the same gRPC service and messages, without a socket.
pub fn in_process_service(
    core: Arc<AuthCore>,
    readiness: Arc<dyn Readiness>,
    gateway_secret: Option<&str>,
) -> crate::grpc_metrics::GrpcMetrics<AuthServiceServer<AuthGrpc>> {
    use tower::Layer;
    crate::grpc_metrics::GrpcMetricsLayer.layer(AuthServiceServer::new(AuthGrpc::new(
        core,
        readiness,
        gateway_secret,
    )))
}

/// Serves the AuthService, gRPC health and reflection on `listener` until `shutdown`.
pub async fn serve(
    core: Arc<AuthCore>,
    readiness: Arc<dyn Readiness>,
    gateway_secret: Option<&str>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<AuthServiceServer<AuthGrpc>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(latchkey_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // grpcurl 1.8 speaks only v1alpha reflection.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(latchkey_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    tracing::info!(addr = %listener.local_addr()?, "gRPC AuthService listening");
    tonic::transport::Server::builder()
        .trace_fn(crate::trace::grpc_span)
        .layer(crate::grpc_metrics::GrpcMetricsLayer)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(AuthServiceServer::new(AuthGrpc::new(
            core,
            readiness,
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
        .await?;
    Ok(())
}
