//! Per-RPC request counts and latency for Prometheus, as a tower layer on the gRPC server.
//! The label is the RPC's method name, for a method we serve (read from the services'
//! descriptors, so a new RPC is counted by construction) or "other", so that a caller cannot
//! mint label values.
//!
//! Each RPC's counter and histogram are registered with the recorder on its first call and
//! kept: an RPC does not look its series up in the registry every time. The recorder must be
//! installed before the layer sees its first call (the binary installs it before any port
//! opens); without one, the handles record nothing.

use metrics::{Counter, Histogram};
use prost::Message;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};

/// One label value's series, registered on first use.
struct Series {
    rpc: String,
    handles: OnceLock<(Counter, Histogram)>,
}

impl Series {
    fn new(rpc: String) -> Self {
        Self {
            rpc,
            handles: OnceLock::new(),
        }
    }

    fn record(&self, started: Instant) {
        let (count, duration) = self.handles.get_or_init(|| {
            (
                metrics::counter!("latchkey_grpc_requests_total", "rpc" => self.rpc.clone()),
                metrics::histogram!("latchkey_grpc_request_duration_seconds", "rpc" => self.rpc.clone()),
            )
        });
        count.increment(1);
        duration.record(started.elapsed().as_secs_f64());
    }
}

/// Every RPC path the server answers (`/package.Service/Method`), with its series.
struct Table {
    by_path: HashMap<String, Arc<Series>>,
    other: Arc<Series>,
}

impl Table {
    /// The methods of every service in the encoded descriptor `sets`.
    fn from_descriptors(sets: &[&[u8]]) -> Self {
        let mut by_name: HashMap<String, Arc<Series>> = HashMap::new();
        let mut by_path = HashMap::new();
        for set in sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
                tracing::error!(
                    "a compiled-in descriptor set does not decode: its RPCs count as other"
                );
                continue;
            };
            for file in &set.file {
                for service in &file.service {
                    for method in &service.method {
                        let series = by_name
                            .entry(method.name().to_owned())
                            .or_insert_with(|| Arc::new(Series::new(method.name().to_owned())))
                            .clone();
                        let path =
                            format!("/{}.{}/{}", file.package(), service.name(), method.name());
                        by_path.insert(path, series);
                    }
                }
            }
        }
        Self {
            by_path,
            other: Arc::new(Series::new("other".to_owned())),
        }
    }

    fn series(&self, path: &str) -> Arc<Series> {
        self.by_path.get(path).unwrap_or(&self.other).clone()
    }
}

/// The RPCs of Latchkey's services, of gRPC health and of reflection (served when enabled).
#[derive(Clone)]
pub struct GrpcMetricsLayer(Arc<Table>);

impl Default for GrpcMetricsLayer {
    fn default() -> Self {
        Self(Arc::new(Table::from_descriptors(&[
            latchkey_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ])))
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            table: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    table: Arc<Table>,
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
        let series = self.table.series(req.uri().path());
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            series.record(started);
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_rpc_has_its_own_label_and_anything_else_is_other() {
        let table = GrpcMetricsLayer::default().0;
        let fds = prost_types::FileDescriptorSet::decode(latchkey_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptors");
        let mut served = 0;
        for file in &fds.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    assert_eq!(table.series(&path).rpc, method.name(), "{path}");
                    served += 1;
                }
            }
        }
        assert!(served > 30, "every RPC of the three services: {served}");
        for (path, rpc) in [
            (
                "/latchkey.v1.VerificationService/VerifyToken",
                "VerifyToken",
            ),
            ("/latchkey.v1.AuthService/ExchangeToken", "ExchangeToken"),
            ("/latchkey.v1.AdminService/ListUserGrants", "ListUserGrants"),
            ("/grpc.health.v1.Health/Check", "Check"),
            ("/grpc.health.v1.Health/Watch", "Watch"),
            (
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                "ServerReflectionInfo",
            ),
            (
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                "ServerReflectionInfo",
            ),
        ] {
            assert_eq!(table.series(path).rpc, rpc, "{path}");
        }
        for path in [
            "/latchkey.v1.VerificationService/NoSuchRpc",
            "/elsewhere.Service/VerifyToken",
            "/VerifyToken",
            "",
            "//latchkey.v1.VerificationService/VerifyToken",
            "/latchkey.v1.VerificationService/VerifyToken/",
            "/latchkey.v1.VerificationService//VerifyToken",
            "/latchkey.v1.verificationservice/VerifyToken",
            "/latchkey.v1.VerificationService/verifytoken",
            "/latchkey.v1.VerificationService/Verify%54oken",
        ] {
            assert_eq!(table.series(path).rpc, "other", "{path}");
        }
    }
}
