//! What the AuthService asks when a caller wants to know if it is ready. The composition root
//! answers it (the database, Redis); this crate only carries the answer over gRPC.

use latchkey_proto::v1 as pb;

/// Checks the dependencies the AuthService runs on.
#[tonic::async_trait]
pub trait Readiness: Send + Sync {
    async fn check(&self) -> pb::Readiness;
}

/// Ready as long as the process runs: for a core over in-memory stores.
pub struct AlwaysReady;

#[tonic::async_trait]
impl Readiness for AlwaysReady {
    async fn check(&self) -> pb::Readiness {
        pb::Readiness {
            database: true,
            redis: None,
            degraded: Vec::new(),
        }
    }
}
