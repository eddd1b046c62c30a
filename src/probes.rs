//! What readiness means for the AuthService, and the gauges that go with it.

use latchkey_auth::readiness::Readiness;
use latchkey_proto::v1 as pb;
use latchkey_redis::Redis;
use latchkey_store::SeaStore;

/// How long readiness waits for Redis to answer PING.
const REDIS_PING_BUDGET: std::time::Duration = std::time::Duration::from_millis(500);

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
    ///
    /// Both checks run at once and each is bounded (the database's by the store, at half a
    /// second; Redis's here), so the answer comes within a second even when a dependency
    /// does not answer at all.
    async fn check(&self) -> pb::Readiness {
        let redis = async {
            match &self.redis {
                Some(r) => Some(
                    tokio::time::timeout(REDIS_PING_BUDGET, r.ping())
                        .await
                        .unwrap_or(false),
                ),
                None => None,
            }
        };
        let (database, redis) = tokio::join!(self.store.ping(), redis);
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
