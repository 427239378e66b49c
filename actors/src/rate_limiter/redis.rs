//! GCRA in Redis: one Lua script, atomic per key, using Redis' own clock so every
//! node agrees on time.

use std::time::Duration;

use fred::{
    prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy},
    types::scripts::Script,
};

use super::{Decision, gcra::emission_interval};
use crate::config::Rate;

/// KEYS[1] = key; ARGV[1] = emission interval (µs); ARGV[2] = tolerance (µs).
/// Returns {allowed (0|1), retry_after (µs)}.
const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
"#;

#[derive(Clone)]
pub struct RedisGcra {
    client: Client,
    script: Script,
    prefix: String,
}

impl RedisGcra {
    /// Connect (bounded wait). An unreachable Redis at startup is an error the caller
    /// reports against `REDIS_URL`; later outages fall back to the in-process limiter.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, String> {
        let config = Config::from_url(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
        let client = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
            })
            .with_performance_config(|p| {
                p.default_command_timeout = Duration::from_millis(500);
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build()
            .map_err(|e| format!("cannot build Redis client: {e}"))?;
        let _connection = client
            .init()
            .await
            .map_err(|e| format!("cannot connect to Redis: {e}"))?;
        let script = Script::from_lua(GCRA_LUA);
        script
            .load(&client)
            .await
            .map_err(|e| format!("cannot load the rate limit script: {e}"))?;
        Ok(Self {
            client,
            script,
            prefix: prefix.to_owned(),
        })
    }

    pub async fn check(&self, key: &str, rate: Rate) -> Result<Decision, fred::error::Error> {
        let interval = emission_interval(rate);
        let tolerance = interval * rate.burst;
        let key = format!("{}rl:{key}", self.prefix);
        let (allowed, retry_after_us): (i64, i64) = self
            .script
            .evalsha_with_reload(
                &self.client,
                key,
                vec![interval.as_micros() as i64, tolerance.as_micros() as i64],
            )
            .await?;
        Ok(if allowed == 1 {
            Decision::Allowed
        } else {
            Decision::Limited {
                retry_after: Duration::from_micros(retry_after_us.max(0) as u64),
            }
        })
    }

    /// For readiness checks.
    pub async fn ping(&self) -> Result<(), fred::error::Error> {
        self.client.ping::<()>(None).await
    }

    pub async fn quit(&self) {
        let _ = self.client.quit().await;
    }
}
