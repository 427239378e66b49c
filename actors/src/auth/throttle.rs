//! How long a failed-login history makes the next attempt wait (OWASP ASVS V2.2.1: a
//! growing delay rather than a lockout an attacker could impose on the owner).

use chrono::{DateTime, Duration, Utc};

use crate::store::login_throttle::ThrottleRow;

/// Failures in a row that cost nothing (typos).
pub const FREE_FAILURES: i32 = 3;
/// The longest delay between two attempts.
pub const MAX_DELAY_SECS: i64 = 30;
/// Failures evaluated per address per hour; past that, attempts wait for the hour.
pub const MAX_FAILURES_PER_HOUR: i32 = 100;

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
    let hour_ends = row.window_start + Duration::hours(1);
    if row.window_count >= MAX_FAILURES_PER_HOUR && hour_ends > now {
        return Some(hour_ends - now);
    }
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
    fn the_hourly_cap_holds_until_the_hour_ends() {
        let now = Utc::now();
        let capped = row(100, MAX_FAILURES_PER_HOUR, now);
        assert_eq!(
            wait(&capped, now + Duration::minutes(5)),
            Some(Duration::minutes(45))
        );
        assert_eq!(wait(&capped, now + Duration::minutes(50)), None);
    }
}
