//! How the gateway calls the AuthService, and the VerificationService for ForwardAuth: over
//! gRPC with the gateway's credential on every call, or on the implementations themselves
//! when both run in one process.

use latchkey_proto::v1 as pb;
use latchkey_proto::v1::auth_service_client::AuthServiceClient;
use latchkey_proto::v1::auth_service_server::AuthService;
use latchkey_proto::v1::verification_service_client::VerificationServiceClient;
use latchkey_proto::v1::verification_service_server::VerificationService;
use std::sync::Arc;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

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

/// The AuthService and ForwardAuth's one verification call, as the gateway makes them: over a
/// network channel to `latchkey serve auth`, or, in `latchkey serve`, on the services' own
/// implementations in the same process. Either way the gateway sends the same messages to the
/// same implementation and reads the same answers and `Status` codes; in process they are
/// not encoded, and there is no socket to cross.
#[derive(Clone)]
pub struct AuthClient {
    pub auth: Arc<dyn AuthService>,
    pub verification: Arc<dyn VerifyToken>,
}

/// ForwardAuth's call on the VerificationService.
#[tonic::async_trait]
pub trait VerifyToken: Send + Sync + 'static {
    async fn verify_token(
        &self,
        req: Request<pb::VerifyTokenRequest>,
    ) -> Result<Response<pb::VerifyTokenResponse>, Status>;
}

type Remote = InterceptedService<Channel, GatewayCredential>;

/// The AuthService over the network: each call is the generated client's.
struct RemoteAuth(AuthServiceClient<Remote>);

macro_rules! remote_calls {
    ($($rpc:ident($req:ident) -> $res:ident;)*) => {
        #[tonic::async_trait]
        impl AuthService for RemoteAuth {
            $(
                async fn $rpc(&self, req: Request<pb::$req>) -> Result<Response<pb::$res>, Status> {
                    self.0.clone().$rpc(req).await
                }
            )*
        }
    };
}

remote_calls! {
    get_server_metadata(GetServerMetadataRequest) -> JsonDocument;
    get_jwks(GetJwksRequest) -> JsonDocument;
    get_resource_metadata(GetResourceMetadataRequest) -> JsonDocument;
    check_readiness(CheckReadinessRequest) -> Readiness;
    register_client(RegisterClientRequest) -> JsonDocument;
    get_client_registration(GetClientRegistrationRequest) -> JsonDocument;
    replace_client_registration(ReplaceClientRegistrationRequest) -> JsonDocument;
    delete_client_registration(DeleteClientRegistrationRequest) -> DeleteClientRegistrationResponse;
    start_authorization(StartAuthorizationRequest) -> StartAuthorizationResponse;
    submit_login(SubmitLoginRequest) -> SubmitLoginResponse;
    submit_consent(SubmitConsentRequest) -> SubmitConsentResponse;
    exchange_token(ExchangeTokenRequest) -> TokenResponse;
    revoke_token(RevokeTokenRequest) -> RevokeTokenResponse;
    introspect(IntrospectRequest) -> IntrospectResponse;
}

struct RemoteVerification(VerificationServiceClient<Remote>);

#[tonic::async_trait]
impl VerifyToken for RemoteVerification {
    async fn verify_token(
        &self,
        req: Request<pb::VerifyTokenRequest>,
    ) -> Result<Response<pb::VerifyTokenResponse>, Status> {
        self.0.clone().verify_token(req).await
    }
}

/// The VerificationService in process. Its guard is not crossed, so each request carries what
/// the guard leaves on a request it admits from the gateway.
struct LocalVerification<V> {
    service: Arc<V>,
    admitted: tonic::Extensions,
}

#[tonic::async_trait]
impl<V: VerificationService> VerifyToken for LocalVerification<V> {
    async fn verify_token(
        &self,
        mut req: Request<pb::VerifyTokenRequest>,
    ) -> Result<Response<pb::VerifyTokenResponse>, Status> {
        *req.extensions_mut() = self.admitted.clone();
        self.service.verify_token(req).await
    }
}

fn credential(gateway_secret: &str) -> Result<GatewayCredential, String> {
    format!("Bearer {gateway_secret}")
        .parse::<MetadataValue<Ascii>>()
        .map(GatewayCredential)
        .map_err(|_| "the gateway secret must be printable ASCII".to_owned())
}

/// A lazily connecting client for the AuthService at `endpoint` (with its TLS, when the
/// binary configured some), presenting the gateway's credential on every call.
pub fn connect(endpoint: Endpoint, gateway_secret: &str) -> Result<AuthClient, String> {
    let channel: Channel = endpoint.connect_lazy();
    let credential = credential(gateway_secret)?;
    Ok(AuthClient {
        auth: Arc::new(RemoteAuth(AuthServiceClient::with_interceptor(
            channel.clone(),
            credential.clone(),
        ))),
        verification: Arc::new(RemoteVerification(
            VerificationServiceClient::with_interceptor(channel, credential),
        )),
    })
}

/// Calls on the services' implementations in this process. `admitted` is what the
/// VerificationService's guard leaves on a request from the gateway (its caller).
pub fn in_process<V: VerificationService>(
    auth: Arc<dyn AuthService>,
    verification: Arc<V>,
    admitted: tonic::Extensions,
) -> AuthClient {
    AuthClient {
        auth,
        verification: Arc::new(LocalVerification {
            service: verification,
            admitted,
        }),
    }
}
