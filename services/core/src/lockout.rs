//! Per-account sign-in lockout with progressive backoff (RFC 6749 §10.10, RFC 9700 §4.16).
//!
//! Accounts are keyed by the SHA-256 of the normalized email, whether or not the account
//! exists, so a lockout says nothing about existence. After `threshold` failures the account
//! is locked for `base`, doubling with each further failure up to `max`; a success clears it.

use crate::store::StoreResult;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures before the first lock.
    pub threshold: u32,
    pub base_secs: i64,
    pub max_secs: i64,
    /// Failures are forgotten after this long without a new one.
    pub window_secs: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            base_secs: 60,
            max_secs: 3600,
            window_secs: 3600,
        }
    }
}

impl LockoutPolicy {
    /// How long to lock after the `failures`-th failure, if at all.
    pub fn lock_secs(&self, failures: u32) -> Option<i64> {
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

/// Where failure counts and locks live: memory for one process, Redis for many.
#[async_trait]
pub trait LockoutStore: Send + Sync {
    /// Seconds the account stays locked, if it is locked at `now`.
    async fn locked_for(&self, account: &str, now: i64) -> StoreResult<Option<i64>>;
    /// Counts a failure at `now`; returns the lock now in force, if any.
    async fn record_failure(
        &self,
        account: &str,
        now: i64,
        policy: &LockoutPolicy,
    ) -> StoreResult<Option<i64>>;
    async fn reset(&self, account: &str) -> StoreResult<()>;
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: i64,
    locked_until: i64,
}

/// Lockout state in process memory, bounded in size.
#[derive(Debug, Default)]
pub struct MemoryLockout(Mutex<HashMap<String, Entry>>);

const MAX_ACCOUNTS: usize = 100_000;

#[async_trait]
impl LockoutStore for MemoryLockout {
    async fn locked_for(&self, account: &str, now: i64) -> StoreResult<Option<i64>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Ok(map
            .get(account)
            .map(|e| e.locked_until - now)
            .filter(|s| *s > 0))
    }

    async fn record_failure(
        &self,
        account: &str,
        now: i64,
        policy: &LockoutPolicy,
    ) -> StoreResult<Option<i64>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ACCOUNTS && !map.contains_key(account) {
            map.retain(|_, e| now - e.last_failure < policy.window_secs || e.locked_until > now);
        }
        let e = map.entry(account.to_owned()).or_insert(Entry {
            failures: 0,
            last_failure: now,
            locked_until: 0,
        });
        if now - e.last_failure >= policy.window_secs {
            e.failures = 0;
        }
        e.failures += 1;
        e.last_failure = now;
        let lock = policy.lock_secs(e.failures);
        if let Some(secs) = lock {
            e.locked_until = now + secs;
        }
        Ok(lock)
    }

    async fn reset(&self, account: &str) -> StoreResult<()> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(account);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_threshold_up_to_the_cap() {
        let p = LockoutPolicy {
            threshold: 3,
            base_secs: 10,
            max_secs: 35,
            window_secs: 100,
        };
        let locks: Vec<Option<i64>> = (1..=6).map(|n| p.lock_secs(n)).collect();
        assert_eq!(
            locks,
            vec![None, None, Some(10), Some(20), Some(35), Some(35)]
        );
    }

    #[tokio::test]
    async fn memory_store_locks_and_expires() {
        let s = MemoryLockout::default();
        let p = LockoutPolicy {
            threshold: 2,
            base_secs: 5,
            max_secs: 60,
            window_secs: 100,
        };
        assert_eq!(s.record_failure("a", 0, &p).await.expect("ok"), None);
        assert_eq!(s.record_failure("a", 1, &p).await.expect("ok"), Some(5));
        assert_eq!(s.locked_for("a", 2).await.expect("ok"), Some(4));
        assert_eq!(s.locked_for("a", 6).await.expect("ok"), None, "expired");
        s.reset("a").await.expect("ok");
        assert_eq!(
            s.record_failure("a", 7, &p).await.expect("ok"),
            None,
            "reset clears the count"
        );
    }
}
