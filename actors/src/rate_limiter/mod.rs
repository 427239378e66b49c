//! The rate limiter actor: GCRA (generic cell rate algorithm) keyed by a string such
//! as `login:ip:203.0.113.7`. Backed by Redis when `REDIS_URL` is set, so every node
//! shares one budget; in-process otherwise.
//!
//! When Redis fails, the check falls back to the in-process limiter (counted in
//! `rate_limiter_backend_errors_total`): auth endpoints stay protected (never "fail
//! open"), and nothing returns a 5xx because Redis is down. A circuit breaker
//! (`breaker.rs`) stops asking a Redis that keeps failing: after a few errors in a row
//! checks stay in-process for a while (no command timeout per request), then one probe
//! finds out whether Redis is back.

mod breaker;
mod gcra;
mod redis;

use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

pub use self::breaker::{Breaker, BreakerState, Route, Transition};
use self::gcra::MemoryGcra;
pub use self::redis::RedisGcra;
use crate::{config::Rate, metrics as m};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { retry_after: Duration },
}

pub enum RateLimiterMsg {
    /// Take one unit from `key`'s budget.
    Check {
        key: String,
        rate: Rate,
        reply: RpcReplyPort<Decision>,
    },
    /// Same, in-process only (Redis failed for this check).
    CheckLocally {
        key: String,
        rate: Rate,
        reply: RpcReplyPort<Decision>,
    },
    /// A Redis check sent on `route` answered (`ok`) or failed: feeds the breaker.
    RedisAnswered { route: Route, ok: bool },
    /// Forget keys whose budget is full again, so memory stays bounded.
    Prune,
}

pub struct RateLimiter;

pub struct RateLimiterArgs {
    pub redis: Option<RedisGcra>,
}

pub struct RateLimiterState {
    memory: MemoryGcra,
    redis: Option<RedisGcra>,
    breaker: Breaker,
}

const PRUNE_EVERY: Duration = Duration::from_secs(30);
/// Consecutive Redis failures that open the breaker.
const BREAKER_THRESHOLD: u32 = 3;
/// How long it stays open before the first probe; doubled after each failed probe.
const BREAKER_COOLDOWN: Duration = Duration::from_secs(5);
const BREAKER_MAX_COOLDOWN: Duration = Duration::from_secs(60);

fn report_breaker(breaker: &Breaker, transition: Transition) {
    let to = match transition {
        Transition::None => None,
        Transition::Opened => Some("open"),
        Transition::Closed => Some("closed"),
    };
    if let Some(to) = to {
        match transition {
            Transition::Opened => {
                tracing::warn!("redis rate limiter circuit open: checks stay in-process for now")
            }
            _ => tracing::info!("redis rate limiter circuit closed: Redis answers again"),
        }
        metrics::counter!(m::RATE_LIMITER_BREAKER_TRANSITIONS_TOTAL, "to" => to).increment(1);
    }
    let open = if breaker.state() == BreakerState::Closed {
        0.0
    } else {
        1.0
    };
    metrics::gauge!(m::RATE_LIMITER_BREAKER_OPEN).set(open);
}

impl Actor for RateLimiter {
    type Msg = RateLimiterMsg;
    type State = RateLimiterState;
    type Arguments = RateLimiterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(PRUNE_EVERY, || RateLimiterMsg::Prune);
        Ok(RateLimiterState {
            memory: MemoryGcra::default(),
            redis: args.redis,
            breaker: Breaker::new(BREAKER_THRESHOLD, BREAKER_COOLDOWN, BREAKER_MAX_COOLDOWN),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RateLimiterMsg::Check { key, rate, reply } => match &state.redis {
                Some(redis) => {
                    let route = state.breaker.route(Instant::now());
                    if route == Route::Local {
                        metrics::counter!(m::RATE_LIMITER_SHORT_CIRCUITS_TOTAL).increment(1);
                        let _ = reply.send(state.memory.check(&key, rate, Instant::now()));
                        return Ok(());
                    }
                    if route == Route::Probe {
                        metrics::counter!(m::RATE_LIMITER_BREAKER_TRANSITIONS_TOTAL, "to" => "half_open")
                            .increment(1);
                    }
                    // The Redis round trip runs in its own task: the actor never waits on I/O.
                    let redis = redis.clone();
                    tokio::spawn(async move {
                        match redis.check(&key, rate).await {
                            Ok(decision) => {
                                let _ = reply.send(decision);
                                let _ =
                                    myself.cast(RateLimiterMsg::RedisAnswered { route, ok: true });
                            }
                            Err(err) => {
                                tracing::warn!(error = %err, "redis rate limiter failed; using the in-process limiter");
                                metrics::counter!(m::RATE_LIMITER_BACKEND_ERRORS_TOTAL)
                                    .increment(1);
                                let _ =
                                    myself.cast(RateLimiterMsg::RedisAnswered { route, ok: false });
                                let _ =
                                    myself.cast(RateLimiterMsg::CheckLocally { key, rate, reply });
                            }
                        }
                    });
                }
                None => {
                    let _ = reply.send(state.memory.check(&key, rate, Instant::now()));
                }
            },
            RateLimiterMsg::RedisAnswered { route, ok } => {
                let transition = if ok {
                    state.breaker.on_success(route)
                } else {
                    state.breaker.on_failure(route, Instant::now())
                };
                report_breaker(&state.breaker, transition);
            }
            RateLimiterMsg::CheckLocally { key, rate, reply } => {
                let _ = reply.send(state.memory.check(&key, rate, Instant::now()));
            }
            RateLimiterMsg::Prune => state.memory.prune(Instant::now()),
        }
        Ok(())
    }
}
