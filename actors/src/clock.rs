//! Time, injected: production reads the system clock; tests move a manual one to
//! check expiry without sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, SubsecRound, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        // Microsecond precision: what both databases store, so a value read back compares equal.
        let now = Utc::now();
        now - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos() % 1_000))
    }
}

/// A clock that stands still until told to move; for tests.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    pub fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
            .lock()
            .map(|now| *now)
            .unwrap_or_else(|poisoned| *poisoned.into_inner())
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// `now` as both databases keep it (microseconds), so an answer shows what a read will.
pub fn stored_time(now: DateTime<Utc>) -> DateTime<Utc> {
    now.trunc_subsecs(6)
}
