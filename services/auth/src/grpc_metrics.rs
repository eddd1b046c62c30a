//! Per-RPC request counts and latency for Prometheus, as a tower layer on the gRPC server.
//! The label is the RPC's method path, which names a method we serve or "other".

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};

#[derive(Clone, Default)]
pub struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

/// Label values: the RPCs we serve; anything else is "other", so a client cannot mint
/// label values.
const RPCS: &[&str] = &[
    "VerifyToken",
    "Introspect",
    "ExchangeToken",
    "RevokeToken",
    "StartAuthorization",
    "SubmitLogin",
    "SubmitConsent",
    "RegisterClient",
    "GetClientRegistration",
    "ReplaceClientRegistration",
    "DeleteClientRegistration",
    "GetServerMetadata",
    "GetJwks",
    "GetResourceMetadata",
    "CheckReadiness",
    "WatchRevocations",
    "WatchRevocationUpdates",
    "WatchKeys",
    "CreateUser",
    "ListUsers",
    "DisableUser",
    "AddClient",
    "ListClients",
    "DeleteClient",
    "IssueInitialAccessToken",
    "AddResource",
    "ListResources",
    "DeleteResource",
    "ListKeys",
    "RotateKeys",
    "GetStats",
    "PurgeExpired",
    "Check",
    "Watch",
];

fn rpc_name(path: &str) -> &'static str {
    let method = path.rsplit('/').next().unwrap_or("");
    RPCS.iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

impl<S, B> Service<http::Request<B>> for GrpcMetrics<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let rpc = rpc_name(req.uri().path());
        let start = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            metrics::counter!("latchkey_grpc_requests_total", "rpc" => rpc).increment(1);
            metrics::histogram!("latchkey_grpc_request_duration_seconds", "rpc" => rpc)
                .record(start.elapsed().as_secs_f64());
            res
        })
    }
}
