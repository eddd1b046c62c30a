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
//!
//! Whoever can write to Redis must not be able to sign anyone in or revoke anyone's tokens:
//! sessions and revocation messages are sealed (`latchkey_core::sealing`) under keys derived
//! from the key-encryption key, a session bound to the Redis key it is stored under. A value
//! that does not open is treated as absent. What a Redis writer can still do is in
//! SECURITY.md.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_redis::redis;
use futures::StreamExt;
use latchkey_core::client_network::ClientNetwork;
use latchkey_core::denylist::{Denylist, RevocationBus, RevocationEvent};
use latchkey_core::keys::Kek;
use latchkey_core::lockout::{Limit, LockoutPolicy, LockoutStore, Verdict, network_name};
use latchkey_core::sealing::{Purpose, Sealer};
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
    /// Seals revocation messages, bound to the channel.
    revocations: Sealer,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").finish_non_exhaustive()
    }
}

impl Redis {
    /// A pool for `url`; revocation messages are sealed under a key derived from `kek`.
    pub fn connect(url: &str, kek: &Kek) -> Result<Self, String> {
        let pool = deadpool_redis::Config::from_url(url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|e| format!("redis pool: {e}"))?;
        Ok(Self {
            pool,
            url: url.to_owned(),
            revocations: Sealer::new(kek, Purpose::RevocationMessage),
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
                    // Only a message another replica sealed is applied: anyone who can publish
                    // on Redis could otherwise revoke any user's or client's tokens.
                    let opened = self
                        .revocations
                        .open(REVOCATION_CHANNEL.as_bytes(), msg.get_payload_bytes());
                    match opened.map(|plain| serde_json::from_slice::<RevocationEvent>(&plain)) {
                        Ok(Ok(ev)) => { denylist.apply(&ev); }
                        Ok(Err(e)) => tracing::warn!(error = %e, "ignoring a malformed revocation message"),
                        Err(_) => tracing::warn!("ignoring a revocation message that is not sealed by this deployment"),
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
        let plain = serde_json::to_vec(ev).map_err(|e| e.to_string())?;
        let payload = self
            .revocations
            .seal(REVOCATION_CHANNEL.as_bytes(), &plain)
            .map_err(|e| e.to_string())?;
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
/// Each is sealed, with its Redis key as associated data: a session written by hand, altered,
/// or copied from another key does not open, and is treated as no session. (A session holds
/// who signed in; in plain JSON, a Redis writer could have signed in as anyone.)
///
/// The sessions in progress per client network are a sorted set per network (member: the
/// session's key, score: its expiry), read and written by one script, so that replicas
/// opening sessions for one network at once cannot pass its bound together.
pub struct RedisSessionStore {
    redis: Redis,
    sealer: Sealer,
    /// Separates the per-network sets of deployments (issuers) that share one Redis.
    namespace: String,
}

impl RedisSessionStore {
    /// Sessions in `redis`, sealed under a key derived from `kek`; `namespace` names the
    /// deployment, e.g. its issuer.
    pub fn new(redis: Redis, kek: &Kek, namespace: &str) -> Self {
        Self {
            redis,
            sealer: Sealer::new(kek, Purpose::AuthorizationSession),
            namespace: namespace.to_owned(),
        }
    }

    fn network_key(&self, network: &str) -> String {
        format!("latchkey:authz-net:{}:{network}", self.namespace)
    }

    /// `session`, sealed for the Redis key `redis_key`.
    fn seal(&self, redis_key: &str, session: &AuthorizationSession) -> StoreResult<Vec<u8>> {
        let plain = serde_json::to_vec(session).map_err(store_err)?;
        self.sealer
            .seal(redis_key.as_bytes(), &plain)
            .map_err(|e| StoreError::Backend(Box::new(e)))
    }

    /// The session in `raw`, read from `redis_key`, unless it is absent, expired at `now`,
    /// or does not open. One that does not open is logged, without its content.
    fn decode(
        &self,
        redis_key: &str,
        raw: Option<Vec<u8>>,
        now: DateTime<Utc>,
    ) -> Option<AuthorizationSession> {
        let raw = raw?;
        let Ok(plain) = self.sealer.open(redis_key.as_bytes(), &raw) else {
            tracing::warn!(
                "an authorization session in Redis did not open (written by hand, altered, moved from another session, or sealed under another key-encryption key); treated as no session"
            );
            return None;
        };
        match serde_json::from_slice::<AuthorizationSession>(&plain) {
            Ok(session) => (session.expires_at > now).then_some(session),
            Err(e) => {
                tracing::warn!(error = %e, "an authorization session in Redis has a shape this version does not read; treated as no session");
                None
            }
        }
    }
}

/// The Redis key of the session stored under `key` (the SHA-256 of its handle).
pub fn session_key(key: &str) -> String {
    format!("latchkey:authz:{key}")
}

/// The session's sign-in attempt counter, beside the session rather than in it, so that
/// counting is one `INCR` and never a read-modify-write of the session's value.
fn attempts_key(key: &str) -> String {
    format!("latchkey:authz:{key}:attempts")
}

/// Counts an attempt on a live session: KEYS[1] is the session, KEYS[2] its counter, which
/// lives exactly as long as the session. Returns the count, or nil when there is no session.
const COUNT_ATTEMPT_SCRIPT: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return false end
local n = redis.call('INCR', KEYS[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) else redis.call('EXPIRE', KEYS[2], 3600) end
return n
";

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
        let redis_key = session_key(key);
        let value = self.seal(&redis_key, session)?;
        let mut conn = self.redis.pool.get().await.map_err(store_err)?;
        let opened: i64 = redis::cmd("EVAL")
            .arg(OPEN_SCRIPT)
            .arg(2)
            .arg(self.network_key(network))
            .arg(&redis_key)
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
        let redis_key = session_key(key);
        let value = self.seal(&redis_key, session)?;
        let mut conn = self.redis.pool.get().await.map_err(store_err)?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&redis_key)
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
        let redis_key = session_key(key);
        let mut conn = self.redis.pool.get().await.map_err(store_err)?;
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&redis_key)
            .query_async(&mut conn)
            .await
            .map_err(store_err)?;
        Ok(self.decode(&redis_key, raw, now))
    }

    async fn take(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<AuthorizationSession>> {
        let redis_key = session_key(key);
        let mut conn = self.redis.pool.get().await.map_err(store_err)?;
        // GETDEL is atomic: of two concurrent takes, one gets the session.
        let raw: Option<Vec<u8>> = redis::cmd("GETDEL")
            .arg(&redis_key)
            .query_async(&mut conn)
            .await
            .map_err(store_err)?;
        let session = self.decode(&redis_key, raw, now);
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

    async fn count_login_attempt(
        &self,
        key: &str,
        _now: DateTime<Utc>,
    ) -> StoreResult<Option<u32>> {
        // The session's own expiry was judged on the core's clock when it was read; here
        // Redis's TTL, which ends with it, says whether it is still there.
        let mut conn = self.redis.pool.get().await.map_err(store_err)?;
        redis::cmd("EVAL")
            .arg(COUNT_ATTEMPT_SCRIPT)
            .arg(2)
            .arg(session_key(key))
            .arg(attempts_key(key))
            .query_async::<Option<u32>>(&mut conn)
            .await
            .map_err(store_err)
    }
}

/// Sign-in lockout counters in Redis, shared by every replica (see
/// [`latchkey_core::lockout`]). Each counter is a hash (`failures`, `last`, `until`), judged
/// and counted by one Lua script, so that concurrent attempts on any replica are counted one
/// after another. Instants are on the core's clock; a counter's Redis TTL only collects it
/// once it no longer matters. Both of an account's counters carry the account in a hash tag,
/// so that they would share one slot (as a script's keys must) should this ever run on a
/// Redis Cluster; today it talks to one node.
pub struct RedisLockout {
    redis: Redis,
    /// Separates the counters of deployments (issuers) that share one Redis: an account of
    /// one is not locked by failures on another's.
    namespace: String,
}

impl RedisLockout {
    /// Counters in `redis`; `namespace` names the deployment, e.g. its issuer.
    pub fn new(redis: Redis, namespace: &str) -> Self {
        Self {
            redis,
            namespace: namespace.to_owned(),
        }
    }

    fn keys(&self, account: &str, network: Option<&ClientNetwork>) -> [String; 2] {
        let ns = &self.namespace;
        [
            format!(
                "latchkey:lockout:{{{account}}}:{ns}:net:{}",
                network_name(network)
            ),
            format!("latchkey:lockout:{{{account}}}:{ns}:all"),
        ]
    }
}

/// How long a counter outlives the point where it stops mattering, so that replicas whose
/// clocks differ a little still read it.
const LOCK_KEY_SLACK_SECS: i64 = 60;

/// Judges and counts one attempt: KEYS[1] is the account-and-network counter, KEYS[2] the
/// account's; ARGV: now, window, slack, then threshold, base and max for each. Returns
/// `{0, which, wait}` when refused (1: network, 2: account) and `{1, locks}` when counted.
/// The arithmetic is `Counter` and `Backoff` in `latchkey_core::lockout`.
const ADMIT_SCRIPT: &str = r"
local now, window, slack = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local counters = {}
for i = 1, 2 do
  local v = redis.call('HMGET', KEYS[i], 'failures', 'last', 'until')
  counters[i] = {failures = tonumber(v[1]) or 0, last = tonumber(v[2]) or 0, untl = tonumber(v[3]) or 0}
end
for i = 1, 2 do
  if counters[i].untl > now then
    return {0, i, counters[i].untl - now}
  end
end
local locks = 0
for i = 1, 2 do
  local c = counters[i]
  local threshold = tonumber(ARGV[1 + 3 * i])
  local base, max = tonumber(ARGV[2 + 3 * i]), tonumber(ARGV[3 + 3 * i])
  if now - c.last >= window then c.failures = 0 end
  c.failures = c.failures + 1
  c.last = now
  if threshold > 0 and c.failures >= threshold then
    local wait = math.min(base * 2 ^ math.min(c.failures - threshold, 30), max)
    c.untl = now + wait
    locks = 1
  end
  redis.call('HSET', KEYS[i], 'failures', c.failures, 'last', c.last, 'until', string.format('%d', c.untl))
  redis.call('EXPIRE', KEYS[i], math.max(window, c.untl - now) + slack)
end
return {1, locks}
";

#[async_trait]
impl LockoutStore for RedisLockout {
    async fn admit(
        &self,
        account: &str,
        network: Option<&ClientNetwork>,
        now: i64,
        policy: &LockoutPolicy,
    ) -> StoreResult<Verdict> {
        let mut conn = self.redis.pool.get().await.map_err(store_err)?;
        let [net_key, acct_key] = self.keys(account, network);
        let mut eval = redis::cmd("EVAL");
        eval.arg(ADMIT_SCRIPT)
            .arg(2)
            .arg(net_key)
            .arg(acct_key)
            .arg(now)
            .arg(policy.window_secs.max(1))
            .arg(LOCK_KEY_SLACK_SECS);
        for b in [policy.network, policy.account] {
            eval.arg(b.threshold).arg(b.base_secs).arg(b.max_secs);
        }
        let answer: Vec<i64> = eval.query_async(&mut conn).await.map_err(store_err)?;
        match answer.as_slice() {
            [1, locks] => Ok(Verdict::Check { locks: *locks == 1 }),
            [0, which, wait] => Ok(Verdict::Refused {
                limit: if *which == 1 {
                    Limit::Network
                } else {
                    Limit::Account
                },
                wait_secs: *wait,
            }),
            other => Err(store_err(format!(
                "unexpected lockout script answer {other:?}"
            ))),
        }
    }

    async fn release(&self, account: &str, network: Option<&ClientNetwork>) -> StoreResult<()> {
        let mut conn = self.redis.pool.get().await.map_err(store_err)?;
        let [net_key, acct_key] = self.keys(account, network);
        redis::cmd("DEL")
            .arg(net_key)
            .arg(acct_key)
            .query_async::<()>(&mut conn)
            .await
            .map_err(store_err)
    }
}
