//! Time as a dependency, so flows can be tested at any instant.

use chrono::{DateTime, Utc};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Where the core reads the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Mutex::new(at))
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The wall clock plus an offset that only grows when told to; for end-to-end tests, where
/// the whole system runs and time must pass, but no test may sleep to wait for an expiry.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_clock_moves_forward_when_told() {
        let clock = OffsetClock::default();
        let before = clock.now();
        clock.advance(chrono::Duration::hours(2));
        let after = clock.now();
        assert!(after - before >= chrono::Duration::hours(2));
        assert!(after - before < chrono::Duration::hours(2) + chrono::Duration::seconds(5));
    }

    #[test]
    fn a_manual_clock_stands_still_until_advanced() {
        let at = Utc::now();
        let clock = ManualClock::new(at);
        assert_eq!(clock.now(), at);
        clock.advance(chrono::Duration::seconds(30));
        assert_eq!(clock.now(), at + chrono::Duration::seconds(30));
    }
}
