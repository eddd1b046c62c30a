//! The gRPC server: the three services, each behind its guard, with health, reflection,
//! metrics and trace propagation, on a listener the caller bound, until the caller's shutdown
//! future completes. The caller also hands in how the socket is served ([`Transport`]): TLS
//! (and client certificates) when configured, and the limits every connection is held to.
//! The in-process path of `latchkey serve` has no socket, so none of that applies to it.

use crate::admin_api::AdminApi;
use crate::gateway_api::GatewayApi;
use crate::guard::{Guard, GuardLayer, Guarded, GuardedFuture};
use crate::readiness::Readiness;
use crate::verification_api::VerificationApi;
use futures_util::future::Either;
use latchkey_core::AuthCore;
use latchkey_proto::v1::admin_service_server::AdminServiceServer;
use latchkey_proto::v1::auth_service_server::AuthServiceServer;
use latchkey_proto::v1::verification_service_server::VerificationServiceServer;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;
use tower::{Layer, Service};

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
    /// Traces are exported (OTLP): each RPC's span is at INFO rather than DEBUG
    /// ([`crate::trace::grpc_span`]).
    pub traces_exported: bool,
}

/// What every connection to the gRPC listener is held to. Requests wait for a slot beyond
/// `concurrency_per_connection` (one caller cannot take every worker), and a message larger
/// than its limit is refused with `RESOURCE_EXHAUSTED` before it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest message a caller may send. The gateway forwards HTTP bodies of up to its
    /// `max_body_bytes` inside its requests, so this stays well above that.
    pub max_receive_message_bytes: usize,
    /// The largest message sent back: tonic clients refuse more than 4 MiB by default.
    pub max_send_message_bytes: usize,
    /// RPCs one connection may have running at once; the rest wait.
    pub concurrency_per_connection: usize,
    /// HTTP/2 streams one connection may have open at once (the revocation and key watches
    /// each hold one for as long as they follow).
    pub max_concurrent_streams: u32,
    /// How often an idle connection is pinged, and how long the answer may take before the
    /// connection is closed: a peer that vanished without closing does not hold it forever.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_receive_message_bytes: 1024 * 1024,
            max_send_message_bytes: 4 * 1024 * 1024,
            concurrency_per_connection: 128,
            max_concurrent_streams: 256,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
        }
    }
}

/// How the gRPC listener is served.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    /// TLS (with the client CA when callers must present a certificate); `None` is plaintext.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
    pub limits: Limits,
}

/// A generated server with the message limits applied. The
/// gateway of `latchkey serve` does not go through a generated server at all ([`in_process`]):
/// its HTTP listener's body limit bounds what it passes on.
macro_rules! limited {
    ($server:expr, $limits:expr) => {{
        let limits: &Limits = $limits;
        $server
            .max_decoding_message_size(limits.max_receive_message_bytes)
            .max_encoding_message_size(limits.max_send_message_bytes)
    }};
}

impl Services {
    /// The three services, each behind its guard, with `rest` (health, reflection) for every
    /// other path.
    fn dispatch(&self, limits: &Limits, rest: Routes) -> Dispatch {
        Dispatch {
            auth: GuardLayer::new(Guard::bearer(self.gateway_secret.as_deref())).layer(limited!(
                AuthServiceServer::new(GatewayApi::new(self.core.clone(), self.readiness.clone())),
                limits
            )),
            verification: GuardLayer::new(Guard::verification(
                self.core.clone(),
                self.gateway_secret.as_deref(),
            ))
            .layer(limited!(
                VerificationServiceServer::new(VerificationApi::new(self.core.clone())),
                limits
            )),
            admin: GuardLayer::new(Guard::bearer(self.admin_secret.as_deref())).layer(limited!(
                AdminServiceServer::new(AdminApi::new(self.core.clone())),
                limits
            )),
            rest,
        }
    }
}

/// Which service a request is for, by its path's `/package.Service/` prefix. Latchkey's three
/// services are told apart with a string comparison each; tonic's `Routes` (an axum router,
/// which boxes and clones the matched service on every call) serves only what is left: health,
/// reflection, and the `UNIMPLEMENTED` answer to any other path.
#[derive(Clone)]
struct Dispatch {
    auth: Guarded<AuthServiceServer<GatewayApi>>,
    verification: Guarded<VerificationServiceServer<VerificationApi>>,
    admin: Guarded<AdminServiceServer<AdminApi>>,
    rest: Routes,
}

/// Whether `path` is `/{service}/` followed by a method name.
fn is_for<S: NamedService>(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.strip_prefix(S::NAME))
        .and_then(|p| p.strip_prefix('/'))
        .is_some_and(|method| !method.is_empty())
}

impl Service<http::Request<Body>> for Dispatch {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future =
        Either<GuardedFuture<Infallible>, <Routes as Service<http::Request<Body>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each is always ready (generated servers and axum's router are); asking them all
        // keeps to tower's contract should one ever not be.
        type Req = http::Request<Body>;
        ready!(Service::<Req>::poll_ready(&mut self.auth, cx))?;
        ready!(Service::<Req>::poll_ready(&mut self.verification, cx))?;
        ready!(Service::<Req>::poll_ready(&mut self.admin, cx))?;
        Service::<Req>::poll_ready(&mut self.rest, cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let path = req.uri().path();
        if is_for::<VerificationServiceServer<VerificationApi>>(path) {
            Either::Left(self.verification.call(req))
        } else if is_for::<AuthServiceServer<GatewayApi>>(path) {
            Either::Left(self.auth.call(req))
        } else if is_for::<AdminServiceServer<AdminApi>>(path) {
            Either::Left(self.admin.call(req))
        } else {
            Either::Right(self.rest.call(req))
        }
    }
}

/// The gateway's two services as a gateway in the same process calls them: their
/// implementations, the same ones the gRPC listener serves, without encoding messages or a
/// socket. There is no guard to cross in process; `admitted` is what the VerificationService's
/// guard leaves on a request it admits from the gateway.
pub struct InProcess {
    pub auth: Arc<GatewayApi>,
    pub verification: Arc<VerificationApi>,
    pub admitted: tonic::Extensions,
}

pub fn in_process(core: Arc<AuthCore>, readiness: Arc<dyn Readiness>) -> InProcess {
    let mut admitted = tonic::Extensions::new();
    admitted.insert(latchkey_core::introspection::Caller::Gateway);
    InProcess {
        auth: Arc::new(GatewayApi::new(core.clone(), readiness)),
        verification: Arc::new(VerificationApi::new(core)),
        admitted,
    }
}

/// How long a TLS handshake may take before the connection is dropped, so that a peer that
/// opens connections and never finishes a handshake holds nothing for long.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the three services, gRPC health, and reflection when enabled, on `listener` until
/// `shutdown`, over `transport`.
pub async fn serve(
    services: Services,
    listener: TcpListener,
    transport: Transport,
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
    let limits = transport.limits;
    let traces_exported = services.traces_exported;
    tracing::info!(
        addr = %listener.local_addr()?,
        tls = transport.tls.is_some(),
        "gRPC services listening"
    );
    let mut rest = Routes::new(health);
    if services.reflection {
        rest = rest
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
    }
    let dispatch = services.dispatch(&limits, rest.prepare());
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = transport.tls {
        server = server.tls_config(tls.timeout(TLS_HANDSHAKE_TIMEOUT))?;
    }
    server
        .concurrency_limit_per_connection(limits.concurrency_per_connection)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .trace_fn(move |req| crate::trace::grpc_span(req, traces_exported))
        .layer(crate::grpc_metrics::GrpcMetricsLayer::default())
        .serve_with_incoming_shutdown(
            dispatch,
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
