//! Authorization sessions: the state between `/authorize`, the login form and the consent
//! form. They are short-lived and keyed by the SHA-256 of an unguessable handle that the
//! gateway keeps in an `HttpOnly` cookie.
//!
//! What bounds them:
//! - each request's parameters (`limits`), so one session is a few KB at most;
//! - the sessions in progress per client network (an IPv4 address, an IPv6 /64), checked
//!   when a session opens: the first line of defence, so that one network cannot fill the
//!   store;
//! - for the in-memory store, the sessions in progress per IPv6 /48 as well (a holder of one
//!   has 65,536 /64s), and a capacity: when it is full, the session closest to its expiry
//!   gives way to the new one (see [`MemorySessionStore`]). Redis is bounded by its own
//!   `maxmemory`, and expires sessions by their TTL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use uuid::Uuid;

use crate::store::StoreResult;
use latchkey_network::Network;

/// A validated authorization request waiting for the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationSession {
    pub client_id: String,
    pub client_name: String,
    /// The redirect URI to answer on (validated against the client).
    pub redirect_uri: String,
    /// Whether the request carried `redirect_uri` (OAuth 2.1 §4.1.3).
    pub redirect_uri_given: bool,
    pub state: Option<String>,
    pub code_challenge: String,
    pub scope: String,
    pub resource: String,
    /// SHA-256 of the anti-CSRF token embedded in the forms.
    pub csrf_hash: String,
    /// Set once the user has logged in.
    pub user_id: Option<Uuid>,
    pub user_email: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// The network the authorization started from ([`crate::client_network::ClientNetwork`]),
    /// which its place in the per-network bound belongs to. `None` when the caller passed no
    /// address.
    #[serde(default)]
    pub network: Option<String>,
    /// What the consent page shows about a metadata document's client.
    #[serde(default)]
    pub document: Option<crate::metadata_document::DocumentView>,
}

/// Whether a new session was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Opened,
    /// Its network already holds as many live sessions as it may; nothing was stored.
    NetworkFull,
}

/// Where authorization sessions live. The in-memory store serves one process; a shared store
/// (Redis) lets any replica continue a login another one started.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Opens a new session, unless its network already holds `per_network` sessions that are
    /// live at `now`. A session without a network is bounded by the store alone.
    async fn open(
        &self,
        key: &str,
        session: &AuthorizationSession,
        now: DateTime<Utc>,
        per_network: u32,
    ) -> StoreResult<Admission>;
    /// Stores a session that continues one already open (a failed attempt counted, a new
    /// handle after sign-in); never refused for its network.
    async fn put(
        &self,
        key: &str,
        session: &AuthorizationSession,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The session, unless it is unknown or expired at `now`.
    async fn get(&self, key: &str, now: DateTime<Utc>)
    -> StoreResult<Option<AuthorizationSession>>;
    /// Removes and returns the session, atomically: of two concurrent calls one gets it.
    async fn take(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<AuthorizationSession>>;
    /// Counts one sign-in attempt on the session and returns how many there have been,
    /// this one included; `None` if the session is unknown or expired at `now`. Atomic: of
    /// concurrent calls on one session, each gets a different count, so concurrent posts of
    /// the login form cannot share one attempt. A `put` under the same key keeps the count.
    async fn count_login_attempt(&self, key: &str, now: DateTime<Utc>) -> StoreResult<Option<u32>>;
    /// Forgets the sessions expired at `now` (with `dry_run`, only counts them); returns how
    /// many. A store whose entries expire on their own (Redis) has nothing to do.
    async fn purge_expired(&self, _now: DateTime<Utc>, _dry_run: bool) -> StoreResult<u64> {
        Ok(0)
    }
}

/// The in-memory store's capacity unless configured otherwise.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// An IPv6 /48 may hold this many times the sessions one network may. A /48 is what one site
/// is usually given; without this bound, its holder could fill the in-memory store from its
/// 65,536 /64s. IPv4 has no such bound: IPv4 addresses are scarce, and a bound on a /24 would
/// fall on the users of a shared NAT pool.
pub const WIDER_NETWORK_SHARE: u32 = 4;

/// Expired sessions forgotten per call on the request path, so that no request pays for a
/// large backlog; maintenance forgets the rest.
const EXPIRE_PER_CALL: usize = 64;
/// Expired sessions forgotten per hold of the lock during maintenance.
const EXPIRE_PER_BATCH: usize = 4096;

/// Sessions in process memory, bounded in number.
///
/// Expiry follows a queue ordered by expiry, so forgetting expired sessions costs a few
/// entries at a time, never a sweep of the whole map under the lock.
///
/// When the store holds `capacity` sessions, a new one takes the place of the session closest
/// to its expiry. So a flood that gets past the per-network bound (it needs capacity divided
/// by that bound networks) costs the oldest pending sign-ins their session, but never stops
/// new ones from starting, as refusing every new session until the flood expired would. The
/// first eviction of each episode is logged, and every one counted ([`Self::evicted`]).
#[derive(Debug)]
pub struct MemorySessionStore {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<String, Entry>,
    /// (expires_at, sequence) -> key: the order sessions expire in.
    queue: BTreeMap<(DateTime<Utc>, u64), String>,
    /// Live sessions per network, and per IPv6 /48 ([`places`]).
    networks: HashMap<String, u32>,
    next: u64,
    evicted: u64,
    /// Whether the store has been full since it last had room to spare; one log line per
    /// episode.
    full: bool,
}

#[derive(Debug)]
struct Entry {
    session: AuthorizationSession,
    seq: u64,
    /// Sign-in attempts counted on it ([`SessionStore::count_login_attempt`]).
    login_attempts: u32,
}

/// Where a session of `network` counts: its network, and for IPv6 its /48 too.
fn places(network: &str) -> impl Iterator<Item = String> {
    let wider = network
        .parse::<Network>()
        .ok()
        .and_then(Network::counted_wider)
        .map(|n| n.to_string());
    std::iter::once(network.to_owned()).chain(wider)
}

impl Inner {
    fn remove(&mut self, key: &str) -> Option<AuthorizationSession> {
        let entry = self.sessions.remove(key)?;
        self.queue.remove(&(entry.session.expires_at, entry.seq));
        if let Some(net) = &entry.session.network {
            for place in places(net) {
                if let Some(n) = self.networks.get_mut(&place) {
                    *n -= 1;
                    if *n == 0 {
                        self.networks.remove(&place);
                    }
                }
            }
        }
        Some(entry.session)
    }

    fn insert(&mut self, key: &str, session: &AuthorizationSession, capacity: usize) {
        let login_attempts = self.sessions.get(key).map_or(0, |e| e.login_attempts);
        self.remove(key);
        if self.sessions.len() >= capacity {
            self.evict_one();
        }
        let seq = self.next;
        self.next += 1;
        self.queue.insert((session.expires_at, seq), key.to_owned());
        if let Some(net) = &session.network {
            for place in places(net) {
                *self.networks.entry(place).or_default() += 1;
            }
        }
        self.sessions.insert(
            key.to_owned(),
            Entry {
                session: session.clone(),
                seq,
                login_attempts,
            },
        );
    }

    /// Makes room: the session closest to its expiry goes.
    fn evict_one(&mut self) {
        let Some((_, key)) = self.queue.first_key_value().map(|(k, v)| (*k, v.clone())) else {
            return;
        };
        self.remove(&key);
        self.evicted += 1;
        if !self.full {
            self.full = true;
            tracing::warn!(
                "the in-memory session store is full: the authorizations closest to expiry give way to new ones (raise LATCHKEY_SESSION_CAPACITY, or use Redis)"
            );
        }
    }

    /// Forgets up to `max` sessions expired at `now`; returns how many.
    fn expire(&mut self, now: DateTime<Utc>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            match self.queue.first_key_value() {
                Some(((at, _), key)) if *at <= now => {
                    let key = key.clone();
                    self.remove(&key);
                    n += 1;
                }
                _ => break,
            }
        }
        n
    }

    /// Whether `network`, or its /48, holds as many live sessions as it may.
    fn is_full(&self, network: &str, per_network: u32) -> bool {
        places(network).enumerate().any(|(i, place)| {
            let bound = if i == 0 {
                per_network
            } else {
                per_network.saturating_mul(WIDER_NETWORK_SHARE)
            };
            self.networks.get(&place).copied().unwrap_or(0) >= bound
        })
    }
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl MemorySessionStore {
    /// A store that holds at most `capacity` sessions (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sessions held, expired ones not yet forgotten included.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions that gave way to newer ones because the store was full, since it started.
    pub fn evicted(&self) -> u64 {
        self.lock().evicted
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn open(
        &self,
        key: &str,
        session: &AuthorizationSession,
        now: DateTime<Utc>,
        per_network: u32,
    ) -> StoreResult<Admission> {
        let mut inner = self.lock();
        inner.expire(now, EXPIRE_PER_CALL);
        if let Some(net) = &session.network {
            // Expired sessions of this network may still be counted: forget expired sessions
            // (a batch at most: the lock is held) before refusing, so that the refusal is
            // about live ones.
            if inner.is_full(net, per_network) {
                inner.expire(now, EXPIRE_PER_BATCH);
                if inner.is_full(net, per_network) {
                    return Ok(Admission::NetworkFull);
                }
            }
        }
        inner.insert(key, session, self.capacity);
        Ok(Admission::Opened)
    }

    async fn put(
        &self,
        key: &str,
        session: &AuthorizationSession,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut inner = self.lock();
        inner.expire(now, EXPIRE_PER_CALL);
        inner.insert(key, session, self.capacity);
        Ok(())
    }

    async fn get(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<AuthorizationSession>> {
        Ok(self
            .lock()
            .sessions
            .get(key)
            .map(|e| &e.session)
            .filter(|s| s.expires_at > now)
            .cloned())
    }

    async fn take(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<AuthorizationSession>> {
        Ok(self.lock().remove(key).filter(|s| s.expires_at > now))
    }

    async fn count_login_attempt(&self, key: &str, now: DateTime<Utc>) -> StoreResult<Option<u32>> {
        Ok(self
            .lock()
            .sessions
            .get_mut(key)
            .filter(|e| e.session.expires_at > now)
            .map(|e| {
                e.login_attempts = e.login_attempts.saturating_add(1);
                e.login_attempts
            }))
    }

    async fn purge_expired(&self, now: DateTime<Utc>, dry_run: bool) -> StoreResult<u64> {
        if dry_run {
            let inner = self.lock();
            let expired = inner.queue.range(..=(now, u64::MAX)).count();
            return Ok(expired as u64);
        }
        let mut total = 0u64;
        // In batches, releasing the lock between them, so that requests interleave.
        loop {
            let mut inner = self.lock();
            let n = inner.expire(now, EXPIRE_PER_BATCH);
            total += n as u64;
            if n < EXPIRE_PER_BATCH {
                // Room to spare again: the next time it fills up is a new episode.
                if inner.sessions.len() < self.capacity - self.capacity / 10 {
                    inner.full = false;
                }
                return Ok(total);
            }
        }
    }
}
