//! Failing fast while PostgreSQL is unreachable.
//!
//! Without this, every request during an outage waited for a connection until the pool's
//! acquire timeout and then failed as an internal error. Now:
//! - a request waits at most the (short) acquire timeout for a connection;
//! - a failure that means "the database cannot be reached" (no connection in time, a
//!   connection refused or cut, the server shutting down) opens the [`Breaker`]: for the
//!   next `fail_fast` period every request that needs the database is refused at once;
//! - after that period one request is let through as a probe. If it reaches the database the
//!   breaker closes and everything flows again; if not, it opens for another period.
//!
//! Every refusal is [`StoreError::DatabaseUnavailable`], which the core answers as
//! `temporarily_unavailable` (HTTP 503 with `Retry-After`, gRPC `UNAVAILABLE`), and never as
//! an internal error. A query the database answered with an error (a constraint, a bad
//! statement) says nothing about reachability and leaves the breaker alone.
//!
//! SQLite is a file in the process's own filesystem: it has no outage of this kind, so it gets
//! no breaker and keeps a long acquire timeout for writers waiting on the file lock.

use latchkey_core::store::StoreError;
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How the pool behaves towards PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// The longest a request waits for a connection, opening one included.
    pub acquire_timeout: Duration,
    /// After the database is found unreachable, how long requests are refused at once before
    /// one is let through to try again.
    pub fail_fast: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            acquire_timeout: Duration::from_millis(2000),
            fail_fast: Duration::from_millis(1000),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// The database answers: everything goes through.
    Closed,
    /// The database was unreachable: refuse until `until`.
    Open { until: Instant },
    /// One request is finding out whether the database is back; the rest are refused.
    Probing,
}

/// The circuit breaker in front of one PostgreSQL pool, shared by every clone of the store.
#[derive(Debug)]
pub(crate) struct Breaker {
    fail_fast: Duration,
    acquire_timeout: Duration,
    state: Mutex<State>,
    /// When an operation last reached the database.
    last_answer: Mutex<Option<Instant>>,
}

/// Leave to run one operation. A probe that ends without a verdict (its request was
/// cancelled) hands the probe on to the next caller.
#[must_use]
pub(crate) struct Ticket<'a> {
    breaker: &'a Breaker,
    probe: bool,
    settled: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.breaker.set(State::Open {
                until: Instant::now(),
            });
        }
    }
}

impl Ticket<'_> {
    /// The operation reached the database.
    pub(crate) fn reachable(mut self) {
        self.settled = true;
        self.breaker.close();
    }

    /// The operation could not reach the database, for `cause` (for the operator's log).
    pub(crate) fn unreachable(mut self, cause: &dyn std::fmt::Display) {
        self.settled = true;
        self.breaker.open(cause);
    }
}

/// Whole seconds until `until`, at least one: the `Retry-After` of a refusal.
fn secs_until(until: Instant) -> u64 {
    let left = until.saturating_duration_since(Instant::now());
    (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1)
}

impl Breaker {
    pub(crate) fn new(pool: PoolSettings) -> Self {
        Self {
            fail_fast: pool.fail_fast,
            acquire_timeout: pool.acquire_timeout,
            state: Mutex::new(State::Closed),
            last_answer: Mutex::new(None),
        }
    }

    /// Whether the database answered some operation within the last acquire timeout. A
    /// request that found no connection in time meanwhile met a busy pool, not a dead
    /// database: under load every connection is in use (and the pool's size says nothing,
    /// since connections being opened count in it too), but others' queries still complete.
    pub(crate) fn answered_lately(&self) -> bool {
        self.last_answer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < self.acquire_timeout)
    }

    fn set(&self, state: State) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    /// The refusal every caller gets while the breaker is open.
    pub(crate) fn refusal(&self) -> StoreError {
        StoreError::DatabaseUnavailable {
            retry_after_secs: secs_until(Instant::now() + self.fail_fast),
        }
    }

    /// Leave to run an operation, or the refusal to answer with at once.
    pub(crate) fn admit(&self) -> Result<Ticket<'_>, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let probe = match *state {
            State::Closed => false,
            State::Open { until } if Instant::now() < until => {
                return Err(StoreError::DatabaseUnavailable {
                    retry_after_secs: secs_until(until),
                });
            }
            State::Open { .. } => {
                *state = State::Probing;
                true
            }
            State::Probing => return Err(self.refusal()),
        };
        Ok(Ticket {
            breaker: self,
            probe,
            settled: false,
        })
    }

    fn open(&self, cause: &dyn std::fmt::Display) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, State::Closed) {
            // Once per outage, not once per request.
            tracing::warn!(
                error = %cause,
                fail_fast_ms = u64::try_from(self.fail_fast.as_millis()).unwrap_or(u64::MAX),
                "the database is unreachable: requests that need it are refused at once, and one is let through each period to try again"
            );
        }
        *state = State::Open {
            until: Instant::now() + self.fail_fast,
        };
    }

    fn close(&self) {
        *self.last_answer.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*state, State::Closed) {
            tracing::info!("the database answers again");
        }
        *state = State::Closed;
    }
}

/// What a failed operation says about the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// It cannot be reached: open the breaker.
    Unreachable,
    /// Every connection of the pool is busy: the database answers, but not in time for this
    /// request. Refuse this one; the breaker stays as it is.
    Busy,
    /// It answered, with an error that is not about reachability.
    Answered,
}

/// Classifies a storage error; `answered_lately` tells a busy pool from a dead database when
/// a connection could not be had in time.
pub(crate) fn classify(e: &StoreError, answered_lately: impl Fn() -> bool) -> Failure {
    let StoreError::Backend(source) = e else {
        return Failure::Answered;
    };
    let Some(db) = source.downcast_ref::<DbErr>() else {
        return Failure::Answered;
    };
    match db {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) if answered_lately() => Failure::Busy,
        DbErr::ConnectionAcquire(_) => Failure::Unreachable,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            if sqlx_unreachable(e) {
                Failure::Unreachable
            } else {
                Failure::Answered
            }
        }
        _ => Failure::Answered,
    }
}

/// Whether a driver error means the server cannot be reached, rather than that it refused a
/// statement.
fn sqlx_unreachable(e: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception); 57P01-57P03 (the server is shutting down
        // or starting up); 53300 (too many connections).
        E::Database(d) => d.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn unreachable() -> StoreError {
        StoreError::Backend(Box::new(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)))
    }

    #[test]
    fn errors_are_classified_by_what_they_say_about_the_database() {
        let refused = || {
            StoreError::Backend(Box::new(DbErr::Query(RuntimeErr::SqlxError(Arc::new(
                sea_orm::sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()),
            )))))
        };
        let cases = [
            (
                "no connection in time",
                unreachable(),
                false,
                Failure::Unreachable,
            ),
            (
                "no connection in time, while others' queries complete",
                unreachable(),
                true,
                Failure::Busy,
            ),
            (
                "a connection cut mid-query",
                refused(),
                false,
                Failure::Unreachable,
            ),
            (
                "a statement the database refused",
                StoreError::Backend(Box::new(DbErr::Query(RuntimeErr::SqlxError(Arc::new(
                    sea_orm::sqlx::Error::RowNotFound,
                ))))),
                false,
                Failure::Answered,
            ),
            (
                "a duplicate",
                StoreError::Duplicate("client"),
                false,
                Failure::Answered,
            ),
            (
                "a corrupt row",
                StoreError::Backend("corrupt client row".into()),
                false,
                Failure::Answered,
            ),
        ];
        for (case, e, answered_lately, want) in cases {
            assert_eq!(classify(&e, || answered_lately), want, "{case}");
        }
    }

    fn breaker(fail_fast: Duration) -> Breaker {
        Breaker::new(PoolSettings {
            acquire_timeout: Duration::from_secs(30),
            fail_fast,
        })
    }

    #[test]
    fn only_an_answer_within_the_acquire_timeout_counts_as_lately() {
        let b = breaker(Duration::ZERO);
        assert!(!b.answered_lately(), "no answer yet");
        b.admit().expect("closed").reachable();
        assert!(b.answered_lately());
        let quick = Breaker::new(PoolSettings {
            acquire_timeout: Duration::ZERO,
            fail_fast: Duration::ZERO,
        });
        quick.admit().expect("closed").reachable();
        assert!(
            !quick.answered_lately(),
            "longer ago than the acquire timeout"
        );
    }

    #[test]
    fn an_open_breaker_refuses_at_once_then_lets_exactly_one_probe_through() {
        let b = breaker(Duration::ZERO);
        b.admit().expect("closed").unreachable(&"refused");
        // The period is zero: the next caller probes, and everyone else is refused meanwhile.
        let probe = b.admit().expect("one probe");
        assert!(probe.probe);
        assert!(matches!(
            b.admit().map(|_| ()),
            Err(StoreError::DatabaseUnavailable { retry_after_secs }) if retry_after_secs >= 1
        ));
        probe.reachable();
        assert!(!b.admit().expect("closed again").probe);
    }

    #[test]
    fn a_probe_that_is_cancelled_hands_the_probe_on() {
        let b = breaker(Duration::ZERO);
        b.admit().expect("closed").unreachable(&"refused");
        drop(b.admit().expect("a probe"));
        let next = b.admit().expect("the next caller probes");
        assert!(next.probe);
        next.unreachable(&"refused");
    }

    #[test]
    fn while_open_every_caller_is_refused_with_a_retry_hint() {
        let b = breaker(Duration::from_secs(30));
        b.admit().expect("closed").unreachable(&"refused");
        for _ in 0..3 {
            match b.admit().map(|_| ()) {
                Err(StoreError::DatabaseUnavailable { retry_after_secs }) => {
                    assert!((1..=30).contains(&retry_after_secs), "{retry_after_secs}");
                }
                other => panic!("refused at once, got {other:?}"),
            }
        }
    }
}
