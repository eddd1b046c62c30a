//! The gRPC server: the three services, each behind its guard, with health, reflection,
//! metrics and trace propagation, on a listener the caller bound, until the caller's shutdown
//! future completes.

use crate::admin_api::AdminApi;
use crate::gateway_api::GatewayApi;
use crate::guard::{Guard, GuardLayer};
use crate::readiness::Readiness;
use crate::verification_api::VerificationApi;
use latchkey_core::AuthCore;
use latchkey_proto::v1::admin_service_server::AdminServiceServer;
use latchkey_proto::v1::auth_service_server::AuthServiceServer;
use latchkey_proto::v1::verification_service_server::VerificationServiceServer;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tower::Layer;

/// What the services are built from.
#[derive(Clone)]
pub struct Services {
    pub core: Arc<AuthCore>,
    pub readiness: Arc<dyn Readiness>,
    /// The gateway's credential; `None` refuses every caller of the AuthService.
    pub gateway_secret: Option<String>,
    /// The operators' credential; `None` refuses every caller of the AdminService.
    pub admin_secret: Option<String>,
    /// Serve gRPC reflection: it lists every service and message to anyone who connects, so
    /// it is for development and operators who opt in.
    pub reflection: bool,
}

impl Services {
    /// The gateway's and the resource servers' services, each behind its guard.
    fn add_public(&self, routes: Routes) -> Routes {
        let gateway = GuardLayer::new(Guard::bearer(self.gateway_secret.as_deref())).layer(
            AuthServiceServer::new(GatewayApi::new(self.core.clone(), self.readiness.clone())),
        );
        let verification = GuardLayer::new(Guard::verification(
            self.core.clone(),
            self.gateway_secret.as_deref(),
        ))
        .layer(VerificationServiceServer::new(VerificationApi::new(
            self.core.clone(),
        )));
        routes.add_service(gateway).add_service(verification)
    }

    fn admin(&self) -> crate::guard::Guarded<AdminServiceServer<AdminApi>> {
        GuardLayer::new(Guard::bearer(self.admin_secret.as_deref()))
            .layer(AdminServiceServer::new(AdminApi::new(self.core.clone())))
    }
}

/// The gateway's two services as one tower service, with their metrics, for a gateway in the
/// same process: the same gRPC services, guards and messages, without a socket.
pub fn in_process_service(services: &Services) -> crate::grpc_metrics::GrpcMetrics<Routes> {
    let routes = services.add_public(Routes::default());
    crate::grpc_metrics::GrpcMetricsLayer.layer(routes)
}

/// Serves the three services, gRPC health, and reflection when enabled, on `listener` until
/// `shutdown`.
pub async fn serve(
    services: Services,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<AuthServiceServer<GatewayApi>>()
        .await;
    reporter
        .set_serving::<VerificationServiceServer<VerificationApi>>()
        .await;
    reporter.set_serving::<AdminServiceServer<AdminApi>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(latchkey_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    // grpcurl 1.8 speaks only v1alpha reflection.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(latchkey_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    tracing::info!(addr = %listener.local_addr()?, "gRPC services listening");
    let mut routes = services
        .add_public(Routes::new(health))
        .add_service(services.admin());
    if services.reflection {
        routes = routes
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
    }
    tonic::transport::Server::builder()
        .trace_fn(crate::trace::grpc_span)
        .layer(crate::grpc_metrics::GrpcMetricsLayer)
        .add_routes(routes)
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
