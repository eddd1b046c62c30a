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

/// The RPC name from `/package.Service/Method`, limited to our own services so that a
/// client cannot mint label values.
fn rpc_name(path: &str) -> String {
    match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((svc, method)) if svc.starts_with("latchkey.") || svc.starts_with("grpc.") => {
            method.to_owned()
        }
        _ => "other".to_owned(),
    }
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
            metrics::counter!("latchkey_grpc_requests_total", "rpc" => rpc.clone()).increment(1);
            metrics::histogram!("latchkey_grpc_request_duration_seconds", "rpc" => rpc)
                .record(start.elapsed().as_secs_f64());
            res
        })
    }
}
