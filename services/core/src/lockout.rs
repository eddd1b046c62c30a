//! Sign-in throttling (RFC 6749 §10.10, RFC 9700 §4.16): how many passwords anyone may try
//! against one account, and how fast.
//!
//! Two counters stand behind every attempt, both keyed by the SHA-256 of the normalized email
//! whether or not the account exists, so that neither says anything about existence:
//!
//! - **per account and network** (an IPv4 address, or an IPv6 /64: see [`ClientNetwork`];
//!   attempts without an address share one network, [`UNKNOWN_NETWORK`]): after
//!   `network.threshold` failures the pair is locked for `network.base_secs`, doubling with
//!   each further failure up to `network.max_secs`. This is the hard lock. It is keyed on the
//!   network so that an attacker who knows an email cannot lock its owner out from everywhere:
//!   the owner, on another network, still signs in.
//! - **per account, across networks**: after `account.threshold` failures from anywhere, each
//!   further attempt must wait `account.base_secs`, doubling up to `account.max_secs`. This is
//!   the soft delay. It caps a guesser who spreads over many networks to one guess per
//!   `account.max_secs`, while the owner, whoever else is guessing, waits at most that long.
//!
//! An attempt is counted *before* its password is checked, in one atomic step that also
//! judges the locks ([`LockoutStore::admit`]): of any number of concurrent attempts, at most
//! `network.threshold` get their password checked before the lock is in force, and an
//! attempt that is refused checks nothing. A right password then releases both counters
//! ([`LockoutStore::release`]). Counting after the check instead (as this module once did)
//! let a burst of concurrent attempts all pass the lock before any failure was recorded.
//!
//! A refused attempt is not counted: it checked nothing, and counting it would let anyone
//! keep a lock in force forever by knocking on it.

use crate::client_network::ClientNetwork;
use crate::store::StoreResult;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// A progressive backoff: nothing before `threshold` failures, then `base_secs`, doubling
/// with each further failure, up to `max_secs`. A threshold of 0 turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub threshold: u32,
    pub base_secs: i64,
    pub max_secs: i64,
}

impl Backoff {
    /// How long to wait after the `failures`-th failure, if at all.
    pub fn after(&self, failures: u32) -> Option<i64> {
        if self.threshold == 0 || failures < self.threshold {
            return None;
        }
        let doublings = (failures - self.threshold).min(30);
        Some(
            self.base_secs
                .saturating_mul(1i64 << doublings)
                .min(self.max_secs),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// The hard lock, per account and network.
    pub network: Backoff,
    /// The soft delay, per account across every network.
    pub account: Backoff,
    /// Failures are forgotten after this long without a new one.
    pub window_secs: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            network: Backoff {
                threshold: 5,
                base_secs: 60,
                max_secs: 3600,
            },
            account: Backoff {
                threshold: 20,
                base_secs: 1,
                max_secs: 60,
            },
            window_secs: 3600,
        }
    }
}

/// The network counted for an attempt whose address the caller did not give: every such
/// attempt shares it, which fails closed.
pub const UNKNOWN_NETWORK: &str = "unknown";

/// The name an attempt's network is counted under.
pub fn network_name(network: Option<&ClientNetwork>) -> &str {
    network.map_or(UNKNOWN_NETWORK, ClientNetwork::as_str)
}

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The hard lock on this account from this network.
    Network,
    /// The soft delay on this account from anywhere.
    Account,
    /// The in-memory table is full and cannot count the attempt (see [`MemoryLockout`]).
    Capacity,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Network => "network",
            Limit::Account => "account",
            Limit::Capacity => "capacity",
        }
    }
}

/// The answer to a sign-in attempt, before its password is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Counted as a failure until [`LockoutStore::release`] says otherwise: check the
    /// password. `locks` says whether this attempt put a lock or a delay in force (so the
    /// attempts after it are refused unless this one turns out right).
    Check { locks: bool },
    /// Not counted, and the password must not be checked: a lock or delay is in force for
    /// `wait_secs` more seconds.
    Refused { limit: Limit, wait_secs: i64 },
}

/// Where the counters live: memory for one process, Redis for many.
#[async_trait]
pub trait LockoutStore: Send + Sync {
    /// Judges and counts one attempt on `account` from `network` at `now`, in one atomic
    /// step: if a lock or delay is in force on either counter, refuses it and counts nothing;
    /// otherwise counts it on both counters (as a failure, and starts whatever lock or delay
    /// that count earns) and admits it. Of concurrent calls, each sees the counts of the
    /// ones before it.
    async fn admit(
        &self,
        account: &str,
        network: Option<&ClientNetwork>,
        now: i64,
        policy: &LockoutPolicy,
    ) -> StoreResult<Verdict>;

    /// The password was right: forgets the account's failures from `network`, and its
    /// failures across networks. Failures from other networks keep their own locks.
    async fn release(&self, account: &str, network: Option<&ClientNetwork>) -> StoreResult<()>;
}

/// One counter: failures within the window, the last one, and when the lock or delay it
/// earned ends. The Redis store runs the same arithmetic in a script.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counter {
    failures: u32,
    last_failure: i64,
    until: i64,
}

impl Counter {
    /// Seconds left of the lock or delay in force at `now`, if any.
    fn wait(&self, now: i64) -> Option<i64> {
        Some(self.until - now).filter(|s| *s > 0)
    }

    /// Counts a failure at `now`; returns whether it starts a lock or delay.
    fn count(&mut self, now: i64, backoff: &Backoff, window_secs: i64) -> bool {
        if now - self.last_failure >= window_secs {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        self.last_failure = now;
        match backoff.after(self.failures) {
            Some(secs) => {
                self.until = now + secs;
                true
            }
            None => false,
        }
    }

    /// Whether forgetting this counter changes nothing: no lock in force, and its failures
    /// would be reset by the next count anyway.
    fn is_spent(&self, now: i64, window_secs: i64) -> bool {
        self.until <= now && now - self.last_failure >= window_secs
    }
}

/// How many counters the in-memory store holds at most. Each attempt needs two (its account
/// and network, and its account), of about 150 bytes each: some 15 MB when full.
pub const MEMORY_CAPACITY: usize = 100_000;

/// A network may own at most this fraction of the in-memory table (see [`MemoryLockout`]).
pub const QUOTA_DIVISOR: usize = 100;

/// The counters in process memory, for a single replica.
///
/// The table is bounded, and a flood of new keys must not be able to push a lock out of it:
/// evicting a counter to make room would let anyone unlock an account (or reset its
/// failures just short of the lock) by signing in as enough strangers. So nothing is ever
/// evicted. When the table is full, counters that no longer matter (no lock in force, last
/// failure older than the window) are swept, at most once a second; if that frees no room,
/// an attempt that would need a new counter is refused, as if locked, and the refusal is
/// logged. This fails closed: a locked account stays locked, and nobody guesses uncounted.
/// The cost is that, while full, accounts with no counter yet cannot sign in.
///
/// So that a few networks cannot fill it (each attempt on a new account makes two counters,
/// and a counter lasts the window, an hour), every counter belongs to the network whose attempt
/// made it, and once the table is half full a network may own at most a [`QUOTA_DIVISOR`]th
/// of it: past that, its attempts that need a new counter are refused, and nobody else's. For the quota a network is
/// an IPv4 address or an IPv6 /48 (a holder of one has 65,536 /64s). Filling the table then
/// takes a hundred such networks, each paying an argon2 check per attempt and the per-address
/// rate limit. With Redis configured, this store is not used at all.
#[derive(Debug)]
pub struct MemoryLockout {
    table: Mutex<Table>,
    capacity: usize,
    quota: usize,
}

#[derive(Debug, Default)]
struct Table {
    /// Each counter, with the network that made it.
    counters: HashMap<String, (Counter, String)>,
    /// How many counters each network made.
    owned: HashMap<String, usize>,
    /// When the spent counters were last swept (so a full table or quota is swept once a
    /// second, not once an attempt).
    last_sweep: Option<i64>,
}

impl Table {
    fn counter(&self, key: &str) -> Counter {
        self.counters.get(key).map(|(c, _)| *c).unwrap_or_default()
    }

    fn owned_by(&self, owner: &str) -> usize {
        self.owned.get(owner).copied().unwrap_or(0)
    }

    fn put(&mut self, key: String, counter: Counter, owner: &str) {
        match self.counters.get_mut(&key) {
            Some((c, _)) => *c = counter,
            None => {
                *self.owned.entry(owner.to_owned()).or_default() += 1;
                self.counters.insert(key, (counter, owner.to_owned()));
            }
        }
    }

    fn disown(owned: &mut HashMap<String, usize>, owner: &str) {
        if let Some(n) = owned.get_mut(owner) {
            *n -= 1;
            if *n == 0 {
                owned.remove(owner);
            }
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some((_, owner)) = self.counters.remove(key) {
            Self::disown(&mut self.owned, &owner);
        }
    }

    /// Forgets the counters that no longer matter, at most once a second.
    fn sweep(&mut self, now: i64, window_secs: i64) {
        if self.last_sweep == Some(now) {
            return;
        }
        self.last_sweep = Some(now);
        let owned = &mut self.owned;
        self.counters.retain(|_, (c, owner)| {
            let keep = !c.is_spent(now, window_secs);
            if !keep {
                Self::disown(owned, owner);
            }
            keep
        });
    }
}

/// The network a counter is charged to: an IPv4 address, or an IPv6 /48.
fn owner(network: Option<&ClientNetwork>) -> String {
    match network.and_then(|n| n.network().counted_wider()) {
        Some(wider) => wider.to_string(),
        None => network_name(network).to_owned(),
    }
}

impl Default for MemoryLockout {
    fn default() -> Self {
        Self::with_capacity(MEMORY_CAPACITY)
    }
}

impl MemoryLockout {
    /// A store that holds at most `capacity` counters, at most a [`QUOTA_DIVISOR`]th of them
    /// (and at least two) made by one network.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            table: Mutex::default(),
            capacity,
            quota: (capacity / QUOTA_DIVISOR).max(2),
        }
    }

    /// At most `quota` counters made by one network (at least two: one attempt's worth).
    pub fn with_quota(self, quota: usize) -> Self {
        Self {
            quota: quota.max(2),
            ..self
        }
    }

    /// How many counters it holds.
    pub fn len(&self) -> usize {
        self.lock().counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn network_key(account: &str, network: Option<&ClientNetwork>) -> String {
    format!("{account}|{}", network_name(network))
}

#[async_trait]
impl LockoutStore for MemoryLockout {
    async fn admit(
        &self,
        account: &str,
        network: Option<&ClientNetwork>,
        now: i64,
        policy: &LockoutPolicy,
    ) -> StoreResult<Verdict> {
        let (net_key, acct_key) = (network_key(account, network), account.to_owned());
        let owner = owner(network);
        let mut table = self.lock();
        let mut net = table.counter(&net_key);
        let mut acct = table.counter(&acct_key);
        if let Some(wait_secs) = net.wait(now) {
            return Ok(Verdict::Refused {
                limit: Limit::Network,
                wait_secs,
            });
        }
        if let Some(wait_secs) = acct.wait(now) {
            return Ok(Verdict::Refused {
                limit: Limit::Account,
                wait_secs,
            });
        }
        let new = [&net_key, &acct_key]
            .iter()
            .filter(|k| !table.counters.contains_key(k.as_str()))
            .count();
        // The quota bites only once the table is half full, so that on a quiet server one
        // address (a carrier's NAT, a campus /48) does not spend its neighbours' share.
        let full = |t: &Table| {
            new > 0
                && (t.counters.len() + new > self.capacity
                    || (t.counters.len() * 2 >= self.capacity
                        && t.owned_by(&owner) + new > self.quota))
        };
        if full(&table) {
            table.sweep(now, policy.window_secs);
            if full(&table) {
                let table_full = table.counters.len() + new > self.capacity;
                tracing::warn!(
                    capacity = self.capacity,
                    quota = self.quota,
                    network = %owner,
                    table_full,
                    "the sign-in lockout table cannot count this attempt: sign-ins that need a new counter are refused (from this network only, unless the whole table is full) until counters expire"
                );
                return Ok(Verdict::Refused {
                    limit: Limit::Capacity,
                    wait_secs: 1,
                });
            }
        }
        let locks_net = net.count(now, &policy.network, policy.window_secs);
        let locks_acct = acct.count(now, &policy.account, policy.window_secs);
        table.put(net_key, net, &owner);
        table.put(acct_key, acct, &owner);
        Ok(Verdict::Check {
            locks: locks_net || locks_acct,
        })
    }

    async fn release(&self, account: &str, network: Option<&ClientNetwork>) -> StoreResult<()> {
        let mut table = self.lock();
        table.remove(&network_key(account, network));
        table.remove(account);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_threshold_up_to_the_cap() {
        let b = Backoff {
            threshold: 3,
            base_secs: 10,
            max_secs: 35,
        };
        let waits: Vec<Option<i64>> = (1..=6).map(|n| b.after(n)).collect();
        assert_eq!(
            waits,
            vec![None, None, Some(10), Some(20), Some(35), Some(35)]
        );
        let off = Backoff { threshold: 0, ..b };
        assert_eq!(off.after(1000), None, "a threshold of 0 turns it off");
    }

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            network: Backoff {
                threshold: 2,
                base_secs: 5,
                max_secs: 60,
            },
            account: Backoff {
                threshold: 0,
                base_secs: 1,
                max_secs: 1,
            },
            window_secs: 100,
        }
    }

    #[tokio::test]
    async fn the_attempt_that_reaches_the_threshold_is_checked_and_locks_the_ones_after_it() {
        let s = MemoryLockout::default();
        let (p, n) = (policy(), ClientNetwork::parse("192.0.2.1"));
        assert_eq!(
            s.admit("a", n.as_ref(), 0, &p).await.expect("ok"),
            Verdict::Check { locks: false }
        );
        assert_eq!(
            s.admit("a", n.as_ref(), 1, &p).await.expect("ok"),
            Verdict::Check { locks: true }
        );
        assert_eq!(
            s.admit("a", n.as_ref(), 2, &p).await.expect("ok"),
            Verdict::Refused {
                limit: Limit::Network,
                wait_secs: 4
            }
        );
        // After the lock, one attempt is let through, and its failure doubles the lock.
        assert_eq!(
            s.admit("a", n.as_ref(), 6, &p).await.expect("ok"),
            Verdict::Check { locks: true }
        );
        assert_eq!(
            s.admit("a", n.as_ref(), 7, &p).await.expect("ok"),
            Verdict::Refused {
                limit: Limit::Network,
                wait_secs: 9
            }
        );
        s.release("a", n.as_ref()).await.expect("ok");
        assert_eq!(
            s.admit("a", n.as_ref(), 7, &p).await.expect("ok"),
            Verdict::Check { locks: false },
            "a release forgets the failures and the lock"
        );
    }

    #[tokio::test]
    async fn failures_older_than_the_window_are_forgotten() {
        let s = MemoryLockout::default();
        let (p, n) = (policy(), ClientNetwork::parse("192.0.2.1"));
        s.admit("a", n.as_ref(), 0, &p).await.expect("ok");
        assert_eq!(
            s.admit("a", n.as_ref(), 100, &p).await.expect("ok"),
            Verdict::Check { locks: false },
            "the first failure has been forgotten"
        );
    }
}
