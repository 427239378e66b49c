//! The rate limiter actor: GCRA (generic cell rate algorithm) keyed by a string such
//! as `login:ip:203.0.113.7`. Backed by Redis when `REDIS_URL` is set, so every node
//! shares one budget; in-process otherwise.
//!
//! When Redis fails, the check falls back to the in-process limiter (counted in
//! `rate_limiter_backend_errors_total`): auth endpoints stay protected (never "fail
//! open"), and nothing returns a 5xx because Redis is down.

mod gcra;
mod redis;

use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

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
}

const PRUNE_EVERY: Duration = Duration::from_secs(30);

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
                // The Redis round trip runs in its own task: the actor never waits on I/O.
                Some(redis) => {
                    let redis = redis.clone();
                    tokio::spawn(async move {
                        match redis.check(&key, rate).await {
                            Ok(decision) => {
                                let _ = reply.send(decision);
                            }
                            Err(err) => {
                                tracing::warn!(error = %err, "redis rate limiter failed; using the in-process limiter");
                                metrics::counter!(m::RATE_LIMITER_BACKEND_ERRORS_TOTAL)
                                    .increment(1);
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
            RateLimiterMsg::CheckLocally { key, rate, reply } => {
                let _ = reply.send(state.memory.check(&key, rate, Instant::now()));
            }
            RateLimiterMsg::Prune => state.memory.prune(Instant::now()),
        }
        Ok(())
    }
}
