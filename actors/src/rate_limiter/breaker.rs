//! A circuit breaker in front of Redis. After `threshold` consecutive failures it
//! opens: checks go straight to the in-process limiter (no Redis round trip, so no
//! 500 ms command timeout per request) for `cooldown`. Then one check is let through
//! as a probe (half-open): its success closes the breaker, its failure opens it again
//! for twice as long (capped at `max_cooldown`).
//!
//! The clock is the caller's (`now` on every call), so tests drive it by hand.

use std::time::{Duration, Instant};

/// Where one check goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To Redis, breaker closed.
    Redis,
    /// To Redis as the one probe of a half-open breaker.
    Probe,
    /// To the in-process limiter: the breaker is open (or a probe is in flight).
    Local,
}

/// The breaker's state, for metrics and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    base_cooldown: Duration,
    max_cooldown: Duration,
    /// Consecutive failures while closed.
    failures: u32,
    /// The next open period.
    cooldown: Duration,
    /// Open until then (`Some` = open, or half-open once it has passed and a probe left).
    open_until: Option<Instant>,
    probing: bool,
}

/// What a report changed, so the caller can count transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Opened,
    Closed,
}

impl Breaker {
    pub fn new(threshold: u32, base_cooldown: Duration, max_cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            base_cooldown,
            max_cooldown: max_cooldown.max(base_cooldown),
            failures: 0,
            cooldown: base_cooldown,
            open_until: None,
            probing: false,
        }
    }

    pub fn state(&self) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(_) if self.probing => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    /// Where the next check goes.
    pub fn route(&mut self, now: Instant) -> Route {
        match self.open_until {
            None => Route::Redis,
            Some(_) if self.probing => Route::Local,
            Some(until) if now >= until => {
                self.probing = true;
                Route::Probe
            }
            Some(_) => Route::Local,
        }
    }

    /// A Redis check (of `route`) answered.
    pub fn on_success(&mut self, route: Route) -> Transition {
        match route {
            Route::Probe => {
                self.failures = 0;
                self.cooldown = self.base_cooldown;
                self.open_until = None;
                self.probing = false;
                Transition::Closed
            }
            // A late answer sent before the breaker opened does not close it.
            Route::Redis if self.open_until.is_none() => {
                self.failures = 0;
                Transition::None
            }
            _ => Transition::None,
        }
    }

    /// A Redis check (of `route`) failed.
    pub fn on_failure(&mut self, route: Route, now: Instant) -> Transition {
        match route {
            Route::Probe => {
                self.probing = false;
                self.cooldown = (self.cooldown * 2).min(self.max_cooldown);
                self.open_until = Some(now + self.cooldown);
                Transition::Opened
            }
            Route::Redis if self.open_until.is_none() => {
                self.failures += 1;
                if self.failures >= self.threshold {
                    self.failures = 0;
                    self.cooldown = self.base_cooldown;
                    self.open_until = Some(now + self.cooldown);
                    Transition::Opened
                } else {
                    Transition::None
                }
            }
            _ => Transition::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn breaker() -> Breaker {
        Breaker::new(3, 5 * S, 20 * S)
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let t0 = Instant::now();
        let mut b = breaker();
        assert_eq!(b.route(t0), Route::Redis);
        assert_eq!(b.on_failure(Route::Redis, t0), Transition::None);
        assert_eq!(b.on_failure(Route::Redis, t0), Transition::None);
        // A success in between starts the count again.
        assert_eq!(b.on_success(Route::Redis), Transition::None);
        assert_eq!(b.on_failure(Route::Redis, t0), Transition::None);
        assert_eq!(b.on_failure(Route::Redis, t0), Transition::None);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.on_failure(Route::Redis, t0), Transition::Opened);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.route(t0), Route::Local);
        assert_eq!(b.route(t0 + 4 * S), Route::Local);
    }

    #[test]
    fn one_probe_after_the_cooldown_and_success_closes() {
        let t0 = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            b.on_failure(Route::Redis, t0);
        }
        let t1 = t0 + 5 * S;
        assert_eq!(b.route(t1), Route::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // While the probe is out, everyone else stays local.
        assert_eq!(b.route(t1), Route::Local);
        assert_eq!(b.route(t1 + 60 * S), Route::Local);
        assert_eq!(b.on_success(Route::Probe), Transition::Closed);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.route(t1), Route::Redis);
    }

    #[test]
    fn a_failed_probe_doubles_the_cooldown_up_to_the_cap() {
        let t0 = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            b.on_failure(Route::Redis, t0);
        }
        // 5 s, then 10, 20, 20 (capped).
        let mut now = t0 + 5 * S;
        for expected in [10, 20, 20] {
            assert_eq!(b.route(now), Route::Probe);
            assert_eq!(b.on_failure(Route::Probe, now), Transition::Opened);
            assert_eq!(b.route(now + (expected - 1) * S), Route::Local);
            now += expected * S;
        }
        assert_eq!(b.route(now), Route::Probe);
        assert_eq!(b.on_success(Route::Probe), Transition::Closed);
        // Closed again: the next opening starts from the base cooldown.
        for _ in 0..3 {
            b.on_failure(Route::Redis, now);
        }
        assert_eq!(b.route(now + 5 * S), Route::Probe);
    }

    #[test]
    fn late_answers_of_checks_sent_before_opening_change_nothing() {
        let t0 = Instant::now();
        let mut b = breaker();
        for _ in 0..3 {
            b.on_failure(Route::Redis, t0);
        }
        assert_eq!(b.on_success(Route::Redis), Transition::None);
        assert_eq!(b.on_failure(Route::Redis, t0), Transition::None);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.route(t0 + 5 * S), Route::Probe);
    }
}
