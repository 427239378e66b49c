//! How long a failed-login history makes the next attempt wait (OWASP ASVS V2.2.1: a
//! growing delay rather than a lockout an attacker could impose on the owner). There is
//! no hourly cap: anyone can fail logins for an address, so a cap keyed on the address
//! would let them lock its owner out; the delay alone bounds guessing to one attempt
//! per `MAX_DELAY_SECS` (120 an hour), and the per-IP rate limit bounds each source.

use chrono::{DateTime, Duration, Utc};

use crate::store::login_throttle::ThrottleRow;

/// Failures in a row that cost nothing (typos).
pub const FREE_FAILURES: i32 = 3;
/// The longest delay between two attempts.
pub const MAX_DELAY_SECS: i64 = 30;

/// The delay after `failures` consecutive failures: none for the first few, then 1 s,
/// 2 s, 4 s… up to [`MAX_DELAY_SECS`].
pub fn delay_after(failures: i32) -> Duration {
    if failures < FREE_FAILURES {
        return Duration::zero();
    }
    let exp = u32::try_from(failures - FREE_FAILURES).unwrap_or(0).min(10);
    Duration::seconds((1_i64 << exp).min(MAX_DELAY_SECS))
}

/// How long the next attempt must wait at `now`, if at all.
pub fn wait(row: &ThrottleRow, now: DateTime<Utc>) -> Option<Duration> {
    let until = row.last_failure_at + delay_after(row.failures);
    (until > now).then(|| until - now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(failures: i32, window_count: i32, now: DateTime<Utc>) -> ThrottleRow {
        ThrottleRow {
            failures,
            last_failure_at: now,
            window_start: now - Duration::minutes(10),
            window_count,
        }
    }

    #[test]
    fn delays_grow_then_cap() {
        let delays: Vec<i64> = (0..12).map(|n| delay_after(n).num_seconds()).collect();
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 8, 16, 30, 30, 30, 30]);
    }

    #[test]
    fn waits_for_the_delay_then_not() {
        let now = Utc::now();
        assert_eq!(wait(&row(2, 2, now), now), None, "typos are free");
        assert_eq!(wait(&row(5, 5, now), now), Some(Duration::seconds(4)));
        assert_eq!(wait(&row(5, 5, now), now + Duration::seconds(4)), None);
    }

    #[test]
    fn many_failures_in_an_hour_still_wait_only_the_delay() {
        let now = Utc::now();
        let many = row(500, 500, now);
        assert_eq!(
            wait(&many, now + Duration::seconds(5)),
            Some(Duration::seconds(MAX_DELAY_SECS - 5))
        );
        assert_eq!(wait(&many, now + Duration::seconds(MAX_DELAY_SECS)), None);
    }
}
