//! The gateway's gRPC clients: the AuthService, and the VerificationService for ForwardAuth.
//! Both present the gateway's credential on every call.

use latchkey_proto::v1::auth_service_client::AuthServiceClient;
use latchkey_proto::v1::verification_service_client::VerificationServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Adds `authorization: Bearer <gateway secret>` to each request, and the current trace
/// context as `traceparent`, so the AuthService's spans join the gateway's trace.
#[derive(Clone)]
pub struct GatewayCredential(MetadataValue<Ascii>);

impl GatewayCredential {
    #[cfg(test)]
    pub(crate) fn for_tests(value: &str) -> Self {
        Self(value.parse().expect("ascii"))
    }
}

/// Writes propagation headers into gRPC metadata.
pub struct MetadataInjector<'a>(pub &'a mut tonic::metadata::MetadataMap);

impl opentelemetry::propagation::Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(k, v);
        }
    }
}

impl Interceptor for GatewayCredential {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        req.metadata_mut().insert("authorization", self.0.clone());
        use opentelemetry::trace::TraceContextExt;
        let cx = tracing::Span::current().context();
        // Without a trace (no exporter, or none sampled) there is nothing to propagate.
        if cx.span().span_context().is_valid() {
            opentelemetry::global::get_text_map_propagator(|p| {
                p.inject_context(&cx, &mut MetadataInjector(req.metadata_mut()))
            });
        }
        Ok(req)
    }
}

/// What carries the gRPC calls: a network channel, or the AuthService itself when both run
/// in one process (the same gRPC service and messages, without a loopback socket).
pub type Transport = tower::util::BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    TransportError,
>;

/// A transport failure. A concrete type rather than `Box<dyn Error>`, which trips the
/// compiler's higher-ranked lifetime inference in the generated client's futures.
#[derive(Debug)]
pub struct TransportError(tonic::codegen::StdError);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

type Channel_ = InterceptedService<Transport, GatewayCredential>;

/// The gateway's clients over one transport.
#[derive(Clone)]
pub struct AuthClient {
    pub auth: AuthServiceClient<Channel_>,
    pub verification: VerificationServiceClient<Channel_>,
}

impl AuthClient {
    fn over(transport: Transport, credential: GatewayCredential) -> Self {
        Self {
            auth: AuthServiceClient::with_interceptor(transport.clone(), credential.clone()),
            verification: VerificationServiceClient::with_interceptor(transport, credential),
        }
    }
}

fn credential(gateway_secret: &str) -> Result<GatewayCredential, String> {
    format!("Bearer {gateway_secret}")
        .parse::<MetadataValue<Ascii>>()
        .map(GatewayCredential)
        .map_err(|_| "the gateway secret must be printable ASCII".to_owned())
}

/// A lazily connecting client for the AuthService at `endpoint` (with its TLS, when the
/// binary configured some).
pub fn connect(endpoint: Endpoint, gateway_secret: &str) -> Result<AuthClient, String> {
    use tower::ServiceExt;
    let channel: Channel = endpoint.connect_lazy();
    let transport = Transport::new(channel.map_err(|e| TransportError(e.into())));
    Ok(AuthClient::over(transport, credential(gateway_secret)?))
}

/// Clients that call `service` (the gRPC services themselves) directly, in process.
pub fn in_process<S>(service: S, gateway_secret: &str) -> Result<AuthClient, String>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Error: Into<tonic::codegen::StdError>,
    S::Future: Send + 'static,
{
    use tower::ServiceExt;
    let transport = Transport::new(service.map_err(|e| TransportError(e.into())));
    Ok(AuthClient::over(transport, credential(gateway_secret)?))
}
