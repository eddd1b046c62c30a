//! latchkey-redis: state shared between replicas through Redis.
//!
//! - Authorization sessions ([`RedisSessionStore`]), so any replica continues any login.
//! - Sign-in lockout counters ([`RedisLockout`]).
//! - Revocations, published on one pub/sub channel; every replica subscribes and applies
//!   them to its in-memory denylist.
//!
//! Redis only makes propagation fast: each event is also in
//! the database, which every replica polls, so a lost message or a Redis outage delays a
//! revocation by at most the poll interval and never loses it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_redis::redis;
use futures::StreamExt;
use latchkey_core::denylist::{Denylist, RevocationBus, RevocationEvent};
use latchkey_core::lockout::{LockoutPolicy, LockoutStore};
use latchkey_core::session::{Admission, AuthorizationSession, SessionStore};
use latchkey_core::store::{StoreError, StoreResult};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The pub/sub channel revocation events travel on.
pub const REVOCATION_CHANNEL: &str = "latchkey:revocations";

/// A pooled Redis connection set.
#[derive(Clone)]
pub struct Redis {
    pub(crate) pool: deadpool_redis::Pool,
    url: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").finish_non_exhaustive()
    }
}

impl Redis {
    pub fn connect(url: &str) -> Result<Self, String> {
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|e| format!("redis pool: {e}"))?;
        Ok(Self {
            pool,
            url: url.to_owned(),
        })
    }

    /// Whether Redis answers PING.
    pub async fn ping(&self) -> bool {
        match self.pool.get().await {
            Ok(mut c) => redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Applies every revocation published by any replica to `denylist` until `stop` turns
    /// true, reconnecting (with a bounded backoff) whenever the subscription drops.
    pub async fn subscribe_revocations(
        &self,
        denylist: Arc<Denylist>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(200);
        while !*stop.borrow() {
            match self.listen(&denylist, &mut stop).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "revocation subscription lost; the database poll covers the gap");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn listen(
        &self,
        denylist: &Denylist,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let client = redis::Client::open(self.url.as_str()).map_err(|e| e.to_string())?;
        let mut pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
        pubsub
            .subscribe(REVOCATION_CHANNEL)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!("subscribed to revocations on Redis");
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else { return Err("subscription closed".into()) };
                    let payload: Vec<u8> = msg.get_payload_bytes().to_vec();
                    match serde_json::from_slice::<RevocationEvent>(&payload) {
                        Ok(ev) => { denylist.apply(&ev); }
                        Err(e) => tracing::warn!(error = %e, "ignoring a malformed revocation message"),
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }
}

#[async_trait]
impl RevocationBus for Redis {
    async fn publish(&self, ev: &RevocationEvent) -> Result<(), String> {
        let payload = serde_json::to_string(ev).map_err(|e| e.to_string())?;
        let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
        redis::cmd("PUBLISH")
            .arg(REVOCATION_CHANNEL)
            .arg(payload)
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Authorization sessions in Redis, so that any replica can continue a login another one
/// started. Each session expires with its own TTL; Redis's `maxmemory` bounds them all.
///
/// The sessions in progress per client network are a sorted set per network (member: the
/// session's key, score: its expiry), read and written by one script, so that replicas
/// opening sessions for one network at once cannot pass its bound together.
pub struct RedisSessionStore {
    redis: Redis,
    /// Separates the per-network sets of deployments (issuers) that share one Redis.
    namespace: String,
}

impl RedisSessionStore {
    /// `namespace` names the deployment, e.g. its issuer.
    pub fn new(redis: Redis, namespace: &str) -> Self {
        Self {
            redis,
            namespace: namespace.to_owned(),
        }
    }

    fn network_key(&self, network: &str) -> String {
        format!("latchkey:authz-net:{}:{network}", self.namespace)
    }
}

fn session_key(key: &str) -> String {
    format!("latchkey:authz:{key}")
}

fn store_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

/// The seconds a session has left at `now`, at least one (Redis refuses a zero TTL).
fn ttl(session: &AuthorizationSession, now: DateTime<Utc>) -> i64 {
    (session.expires_at - now).num_seconds().max(1)
}

/// Opens a session unless its network holds the bound already. KEYS: the network's set, the
/// session. ARGV: now, the bound, the session's expiry, its TTL, the session, its key.
/// The set lives as long as its newest member.
const OPEN_SCRIPT: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[4])
return 1
";

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn open(
        &self,
        key: &str,
        session: &AuthorizationSession,
        now: DateTime<Utc>,
        per_network: u32,
    ) -> StoreResult<Admission> {
        let Some(network) = &session.network else {
            self.put(key, session, now).await?;
            return Ok(Admission::Opened);
        };
        let value = serde_json::to_string(session).map_err(store_err)?;
        let mut conn = self.redis.pool.get().await.map_err(store_err)?;
        let opened: i64 = redis::cmd("EVAL")
            .arg(OPEN_SCRIPT)
            .arg(2)
            .arg(self.network_key(network))
            .arg(session_key(key))
            .arg(now.timestamp())
            .arg(per_network)
            .arg(session.expires_at.timestamp())
            .arg(ttl(session, now))
            .arg(value)
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(store_err)?;
        Ok(if opened == 1 {
            Admission::Opened
        } else {
            Admission::NetworkFull
        })
    }

    async fn put(
        &self,
        key: &str,
        session: &AuthorizationSession,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let ttl = ttl(session, now);
        let value = serde_json::to_string(session).map_err(store_err)?;
        let mut conn = self.redis.pool.get().await.map_err(store_err)?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(session_key(key))
            .arg(value)
            .arg("EX")
            .arg(ttl)
            .ignore();
        // A continued session (a new handle after sign-in) keeps its place in its network.
        if let Some(network) = &session.network {
            let set = self.network_key(network);
            pipe.cmd("ZADD")
                .arg(&set)
                .arg(session.expires_at.timestamp())
                .arg(key)
                .ignore()
                // The set lives as long as its longest-lived member: set a TTL if it has
                // none (NX), lengthen it if this member outlives it (GT).
                .cmd("EXPIRE")
                .arg(&set)
                .arg(ttl)
                .arg("NX")
                .ignore()
                .cmd("EXPIRE")
                .arg(&set)
                .arg(ttl)
                .arg("GT")
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.map_err(store_err)
    }

    async fn get(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<AuthorizationSession>> {
        let mut conn = self.redis.pool.get().await.map_err(store_err)?;
        let raw: Option<String> = redis::cmd("GET")
            .arg(session_key(key))
            .query_async(&mut conn)
            .await
            .map_err(store_err)?;
        decode(raw, now)
    }

    async fn take(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<AuthorizationSession>> {
        let mut conn = self.redis.pool.get().await.map_err(store_err)?;
        // GETDEL is atomic: of two concurrent takes, one gets the session.
        let raw: Option<String> = redis::cmd("GETDEL")
            .arg(session_key(key))
            .query_async(&mut conn)
            .await
            .map_err(store_err)?;
        let session = decode(raw, now)?;
        // Its place in its network is free again.
        if let Some(network) = session.as_ref().and_then(|s| s.network.as_ref()) {
            redis::cmd("ZREM")
                .arg(self.network_key(network))
                .arg(key)
                .query_async::<i64>(&mut conn)
                .await
                .map_err(store_err)?;
        }
        Ok(session)
    }
}

fn decode(raw: Option<String>, now: DateTime<Utc>) -> StoreResult<Option<AuthorizationSession>> {
    match raw {
        None => Ok(None),
        Some(s) => {
            let session: AuthorizationSession = serde_json::from_str(&s).map_err(store_err)?;
            Ok((session.expires_at > now).then_some(session))
        }
    }
}

/// Sign-in lockout counters in Redis, shared by every replica. The lock is a key holding the
/// instant it ends, judged on the core's clock; its Redis TTL only collects it afterwards.
pub struct RedisLockout {
    redis: Redis,
}

impl RedisLockout {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

/// How long a lock key outlives its end, so that replicas whose clocks differ a little still
/// read it.
const LOCK_KEY_SLACK_SECS: i64 = 60;

#[async_trait]
impl LockoutStore for RedisLockout {
    async fn locked_for(&self, account: &str, now: i64) -> StoreResult<Option<i64>> {
        let mut conn = self.redis.pool.get().await.map_err(store_err)?;
        let until: Option<i64> = redis::cmd("GET")
            .arg(format!("latchkey:lockout:{account}:until"))
            .query_async(&mut conn)
            .await
            .map_err(store_err)?;
        Ok(until.map(|u| u - now).filter(|left| *left > 0))
    }

    async fn record_failure(
        &self,
        account: &str,
        now: i64,
        policy: &LockoutPolicy,
    ) -> StoreResult<Option<i64>> {
        let mut conn = self.redis.pool.get().await.map_err(store_err)?;
        let count_key = format!("latchkey:lockout:{account}:failures");
        let (failures, _): (u32, i64) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(&count_key)
            .cmd("EXPIRE")
            .arg(&count_key)
            .arg(policy.window_secs.max(1))
            .query_async(&mut conn)
            .await
            .map_err(store_err)?;
        let lock = policy.lock_secs(failures);
        if let Some(secs) = lock {
            redis::cmd("SET")
                .arg(format!("latchkey:lockout:{account}:until"))
                .arg(now + secs)
                .arg("EX")
                .arg(secs.max(1) + LOCK_KEY_SLACK_SECS)
                .query_async::<()>(&mut conn)
                .await
                .map_err(store_err)?;
        }
        Ok(lock)
    }

    async fn reset(&self, account: &str) -> StoreResult<()> {
        let mut conn = self.redis.pool.get().await.map_err(store_err)?;
        redis::cmd("DEL")
            .arg(format!("latchkey:lockout:{account}:failures"))
            .arg(format!("latchkey:lockout:{account}:until"))
            .query_async::<()>(&mut conn)
            .await
            .map_err(store_err)
    }
}
