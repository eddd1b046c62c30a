//! How many fetches may run, and how often: a global rate, a rate per host, a number in
//! flight per host and in all. An anonymous `/authorize` can make Latchkey fetch any https
//! URL, so these bound what an attacker can make Latchkey do to a third party, and to itself.
//!
//! Every bound refuses at once ([`crate::FetchError::TooManyRequests`]); nothing queues. The
//! per-host table holds at most [`Limits::max_hosts`] hosts. A host whose rate bucket has
//! refilled and which has nothing in flight carries no information and is dropped when room
//! is needed; when every entry still counts, a new host is refused.
//!
//! The rates are GCRA (a token bucket kept as one instant): a bucket allows `burst` fetches
//! at once and regains one every `every`. Time comes in as an argument, so the tests drive
//! it without sleeping.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A rate: `burst` fetches at once, then one more every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub every: Duration,
}

/// The bounds of a fetcher. Fetches to [`crate::Targets::Public`] and to
/// [`crate::Targets::Any`] are counted apart, so clients that exhaust the public budget do
/// not stop the fetches of operator-configured URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub global_rate: Rate,
    pub host_rate: Rate,
    /// Fetches in flight to one host.
    pub host_concurrency: usize,
    /// Fetches in flight in all.
    pub max_in_flight: usize,
    /// Hosts tracked at once.
    pub max_hosts: usize,
}

impl Default for Limits {
    /// 20 at once and 10 a second in all; 5 at once and one every 6 s per host (documents
    /// are cached for minutes, so a host is rarely fetched twice a minute); 2 in flight per
    /// host and 64 in all; 4096 hosts.
    fn default() -> Self {
        Self {
            global_rate: Rate {
                burst: 20,
                every: Duration::from_millis(100),
            },
            host_rate: Rate {
                burst: 5,
                every: Duration::from_secs(6),
            },
            host_concurrency: 2,
            max_in_flight: 64,
            max_hosts: 4096,
        }
    }
}

impl Limits {
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        for rate in [self.global_rate, self.host_rate] {
            if rate.burst == 0 || rate.every.is_zero() {
                return Err("a rate needs a burst of at least 1 and a non-zero interval");
            }
        }
        if self.host_concurrency == 0 || self.max_in_flight == 0 || self.max_hosts == 0 {
            return Err("host_concurrency, max_in_flight and max_hosts must be at least 1");
        }
        Ok(())
    }
}

/// Which bound refused a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    GlobalRate,
    HostRate,
    HostConcurrency,
    InFlight,
    HostTable,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::GlobalRate => "the global fetch rate is exceeded",
            Self::HostRate => "the fetch rate for this host is exceeded",
            Self::HostConcurrency => "too many fetches to this host are in flight",
            Self::InFlight => "too many fetches are in flight",
            Self::HostTable => "too many hosts are being fetched from",
        })
    }
}

/// A GCRA bucket: the instant at which it is full again.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    full_at: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Self { full_at: now }
    }

    /// The new `full_at` if one more fetch fits at `now`.
    fn admit(&self, rate: Rate, now: Instant) -> Option<Instant> {
        let tolerance = rate.every.saturating_mul(rate.burst.saturating_sub(1));
        let start = self.full_at.max(now);
        (start.saturating_duration_since(now) <= tolerance).then(|| start + rate.every)
    }

    fn is_full(&self, now: Instant) -> bool {
        self.full_at <= now
    }
}

struct HostEntry {
    bucket: Bucket,
    in_flight: usize,
}

struct State {
    global: Bucket,
    in_flight: usize,
    hosts: HashMap<String, HostEntry>,
}

/// The counters of one class of targets.
pub(crate) struct Limiter {
    limits: Limits,
    state: Arc<Mutex<State>>,
}

/// A fetch in flight; dropping it frees its place.
pub(crate) struct Permit {
    state: Arc<Mutex<State>>,
    host: String,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state is a set of counters, each updated in one statement: a panic elsewhere while
    // the lock was held cannot have left it half-written.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Limiter {
    pub(crate) fn new(limits: Limits, now: Instant) -> Self {
        Self {
            limits,
            state: Arc::new(Mutex::new(State {
                global: Bucket::new(now),
                in_flight: 0,
                hosts: HashMap::new(),
            })),
        }
    }

    /// A place for one fetch to `host` at `now`, or the bound that refuses it. A refused
    /// fetch uses up nothing.
    pub(crate) fn acquire(&self, host: &str, now: Instant) -> Result<Permit, Limit> {
        let limits = &self.limits;
        let mut state = lock(&self.state);
        if state.in_flight >= limits.max_in_flight {
            return Err(Limit::InFlight);
        }
        if !state.hosts.contains_key(host) && state.hosts.len() >= limits.max_hosts {
            state
                .hosts
                .retain(|_, e| e.in_flight > 0 || !e.bucket.is_full(now));
            if state.hosts.len() >= limits.max_hosts {
                return Err(Limit::HostTable);
            }
        }
        let (host_bucket, host_in_flight) = state
            .hosts
            .get(host)
            .map_or((Bucket::new(now), 0), |e| (e.bucket, e.in_flight));
        if host_in_flight >= limits.host_concurrency {
            return Err(Limit::HostConcurrency);
        }
        let global_full_at = state
            .global
            .admit(limits.global_rate, now)
            .ok_or(Limit::GlobalRate)?;
        let host_full_at = host_bucket
            .admit(limits.host_rate, now)
            .ok_or(Limit::HostRate)?;

        state.global.full_at = global_full_at;
        state.in_flight += 1;
        let entry = state.hosts.entry(host.to_owned()).or_insert(HostEntry {
            bucket: host_bucket,
            in_flight: 0,
        });
        entry.bucket.full_at = host_full_at;
        entry.in_flight += 1;
        Ok(Permit {
            state: Arc::clone(&self.state),
            host: host.to_owned(),
        })
    }

    #[cfg(test)]
    fn hosts(&self) -> usize {
        lock(&self.state).hosts.len()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        state.in_flight = state.in_flight.saturating_sub(1);
        if let Some(entry) = state.hosts.get_mut(&self.host) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            global_rate: Rate {
                burst: 100,
                every: Duration::from_millis(10),
            },
            host_rate: Rate {
                burst: 2,
                every: Duration::from_secs(10),
            },
            host_concurrency: 1,
            max_in_flight: 3,
            max_hosts: 2,
        }
    }

    #[test]
    fn a_host_rate_refuses_past_its_burst_and_refills_with_time() {
        let t0 = Instant::now();
        let limiter = Limiter::new(limits(), t0);
        drop(limiter.acquire("a.example", t0).expect("first"));
        drop(
            limiter
                .acquire("a.example", t0)
                .expect("second, within the burst"),
        );
        assert_eq!(
            limiter.acquire("a.example", t0).err(),
            Some(Limit::HostRate)
        );
        assert!(
            limiter.acquire("b.example", t0).is_ok(),
            "another host has its own bucket"
        );
        let later = t0 + Duration::from_secs(10);
        drop(
            limiter
                .acquire("a.example", later)
                .expect("one regained after 10 s"),
        );
        assert_eq!(
            limiter.acquire("a.example", later).err(),
            Some(Limit::HostRate)
        );
    }

    #[test]
    fn the_global_rate_counts_every_host() {
        let t0 = Instant::now();
        let mut l = limits();
        l.global_rate = Rate {
            burst: 3,
            every: Duration::from_secs(1),
        };
        l.max_hosts = 10;
        let limiter = Limiter::new(l, t0);
        for host in ["a", "b", "c"] {
            drop(limiter.acquire(host, t0).expect(host));
        }
        assert_eq!(limiter.acquire("d", t0).err(), Some(Limit::GlobalRate));
        assert!(limiter.acquire("d", t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn concurrency_is_bounded_per_host_and_in_all_and_freed_on_drop() {
        let t0 = Instant::now();
        let mut l = limits();
        l.max_hosts = 10;
        let limiter = Limiter::new(l, t0);
        let a = limiter.acquire("a", t0).expect("a");
        assert_eq!(
            limiter.acquire("a", t0).err(),
            Some(Limit::HostConcurrency),
            "one in flight per host"
        );
        let b = limiter.acquire("b", t0).expect("b");
        let _c = limiter.acquire("c", t0).expect("c");
        assert_eq!(limiter.acquire("d", t0).err(), Some(Limit::InFlight));
        drop(a);
        drop(b);
        assert!(limiter.acquire("a", t0).is_ok(), "a's place is free again");
    }

    #[test]
    fn the_host_table_is_bounded_and_forgets_only_idle_refilled_hosts() {
        let t0 = Instant::now();
        let limiter = Limiter::new(limits(), t0);
        let held = limiter.acquire("a", t0).expect("a");
        drop(limiter.acquire("b", t0).expect("b"));
        assert_eq!(limiter.hosts(), 2);
        assert_eq!(
            limiter.acquire("c", t0).err(),
            Some(Limit::HostTable),
            "b's bucket has not refilled, a is in flight"
        );
        let later = t0 + Duration::from_secs(10);
        assert!(
            limiter.acquire("c", later).is_ok(),
            "b refilled and idle: dropped"
        );
        assert_eq!(limiter.hosts(), 2, "a (in flight) and c");
        drop(held);
        assert!(
            limiter.acquire("a", later).is_ok(),
            "a is still tracked and, no longer in flight, may fetch again"
        );
    }
}
