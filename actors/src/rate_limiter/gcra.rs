//! In-process GCRA. Per key we keep only the "theoretical arrival time" (TAT).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use super::Decision;
use crate::config::Rate;

#[derive(Default)]
pub struct MemoryGcra {
    tats: HashMap<String, Instant>,
}

impl MemoryGcra {
    pub fn check(&mut self, key: &str, rate: Rate, now: Instant) -> Decision {
        let interval = emission_interval(rate);
        let tolerance = interval * rate.burst;
        let tat = self.tats.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + interval;
        // The request fits when the new TAT is at most `tolerance` ahead of now.
        let allow_at = new_tat.checked_sub(tolerance).unwrap_or(now);
        if allow_at > now {
            return Decision::Limited {
                retry_after: allow_at - now,
            };
        }
        self.tats.insert(key.to_owned(), new_tat);
        Decision::Allowed
    }

    /// Drop keys whose TAT has passed: their budget is full, same as an absent key.
    pub fn prune(&mut self, now: Instant) {
        self.tats.retain(|_, tat| *tat > now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.tats.len()
    }
}

/// Time between two requests at the sustained rate.
pub fn emission_interval(rate: Rate) -> Duration {
    rate.period / rate.burst.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_limits_then_refills() {
        let mut gcra = MemoryGcra::default();
        let rate = Rate {
            burst: 3,
            period: Duration::from_secs(60),
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(gcra.check("k", rate, t0), Decision::Allowed);
        }
        let Decision::Limited { retry_after } = gcra.check("k", rate, t0) else {
            panic!("fourth request must be limited");
        };
        assert_eq!(retry_after, Duration::from_secs(20));
        // Other keys are independent.
        assert_eq!(gcra.check("other", rate, t0), Decision::Allowed);
        // After one interval, one more request fits.
        assert_eq!(
            gcra.check("k", rate, t0 + Duration::from_secs(20)),
            Decision::Allowed
        );
        assert!(matches!(
            gcra.check("k", rate, t0 + Duration::from_secs(20)),
            Decision::Limited { .. }
        ));
        gcra.prune(t0 + Duration::from_secs(3600));
        assert_eq!(gcra.len(), 0);
    }
}
