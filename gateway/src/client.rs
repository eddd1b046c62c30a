//! The gateway's gRPC client for the AuthService, which presents the gateway's credential
//! on every call.

use latchkey_proto::v1::auth_service_client::AuthServiceClient;
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
        let cx = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut MetadataInjector(req.metadata_mut()))
        });
        Ok(req)
    }
}

pub type AuthClient = AuthServiceClient<InterceptedService<Channel, GatewayCredential>>;

/// A lazily connecting client for `auth_url`.
pub fn connect(auth_url: &str, gateway_secret: &str) -> Result<AuthClient, String> {
    let endpoint = Endpoint::from_shared(auth_url.to_owned())
        .map_err(|e| format!("bad auth_url {auth_url:?}: {e}"))?;
    let value = format!("Bearer {gateway_secret}")
        .parse::<MetadataValue<Ascii>>()
        .map_err(|_| "the gateway secret must be printable ASCII".to_owned())?;
    Ok(AuthServiceClient::with_interceptor(
        endpoint.connect_lazy(),
        GatewayCredential(value),
    ))
}
