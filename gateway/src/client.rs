//! The gateway's gRPC client for the AuthService, which presents the gateway's credential
//! on every call.

use latchkey_proto::v1::auth_service_client::AuthServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Adds `authorization: Bearer <gateway secret>` to each request.
#[derive(Clone)]
pub struct GatewayCredential(MetadataValue<Ascii>);

impl Interceptor for GatewayCredential {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
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
