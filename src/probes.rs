//! What readiness means for the AuthService, and the gauges that go with it.

use latchkey_auth::readiness::Readiness;
use latchkey_proto::v1 as pb;
use latchkey_redis::Redis;
use latchkey_store::SeaStore;

/// The dependencies a readiness probe checks.
#[derive(Clone)]
pub struct Probes {
    pub store: SeaStore,
    pub redis: Option<Redis>,
}

#[tonic::async_trait]
impl Readiness for Probes {
    /// Checks the database and Redis. Redis down degrades logins (sessions, lockout) and
    /// slows revocation fan-out to the database poll, but tokens, refresh, introspection and
    /// verification keep working, so it is reported and not fatal.
    async fn check(&self) -> pb::Readiness {
        let database = self.store.ping().await;
        let redis = match &self.redis {
            Some(r) => Some(r.ping().await),
            None => None,
        };
        metrics::gauge!("latchkey_database_up").set(if database { 1.0 } else { 0.0 });
        let mut degraded = Vec::new();
        if !database {
            degraded.push("database unreachable: nothing can be served".to_owned());
        }
        if let Some(up) = redis {
            metrics::gauge!("latchkey_redis_up").set(if up { 1.0 } else { 0.0 });
            if !up {
                degraded.push("redis unreachable: logins (sessions, lockout) fail; revocations travel by the database poll".to_owned());
            }
        }
        pb::Readiness {
            database,
            redis,
            degraded,
        }
    }
}
