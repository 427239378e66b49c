//! Durable jobs: kinds, payloads and the retry policy shared by every worker.
//! (The queue's SQL is in `store::jobs`.)

pub mod wake;
pub mod worker;

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use crate::{config::JobsConfig, deps::Deps, metrics as m, store};

pub use crate::domain::{KIND_MAIL, MailJob};

/// The item a job's payload names (processing jobs carry `item_id`).
pub fn item_of(payload: &serde_json::Value) -> Option<uuid::Uuid> {
    payload
        .get("item_id")
        .and_then(serde_json::Value::as_str)
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
}

/// When to try a job again after its `attempt`-th failure: exponential backoff with
/// "equal jitter" (half fixed, half random), capped.
pub fn retry_at(cfg: &JobsConfig, attempt: i32, now: DateTime<Utc>) -> DateTime<Utc> {
    let exp = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let full = cfg
        .base_backoff
        .saturating_mul(2u32.saturating_pow(exp))
        .min(cfg.max_backoff);
    let half = full / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
    let delay = half + Duration::from_millis(jitter);
    now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60))
}

/// This process's worker identity, written into leases so only the holder finishes a job.
pub fn worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Refresh the queue gauges of `kinds` (zero when nothing is queued, rather than a
/// stale value) from one read of the queue and, with the mail kind (once per process),
/// the pool gauges.
pub(crate) async fn refresh_gauges(deps: &Deps, kinds: &[&'static str]) {
    if kinds.contains(&KIND_MAIL) {
        let (idle, in_use) = deps.db.pool_usage();
        metrics::gauge!(m::DB_POOL_CONNECTIONS, "state" => "idle").set(idle as f64);
        metrics::gauge!(m::DB_POOL_CONNECTIONS, "state" => "in_use").set(in_use as f64);
    }
    match store::jobs::queue_stats(&deps.db).await {
        Ok(stats) => {
            let now = deps.clock.now();
            for &kind in kinds {
                let (depth, age) = stats
                    .iter()
                    .find(|s| s.kind == kind)
                    .map(|s| {
                        let age = s
                            .oldest_run_at
                            .map(|at| (now - at).num_milliseconds().max(0) as f64 / 1000.0)
                            .unwrap_or(0.0);
                        (s.queued as f64, age)
                    })
                    .unwrap_or((0.0, 0.0));
                metrics::gauge!(m::JOBS_QUEUE_DEPTH, "kind" => kind).set(depth);
                metrics::gauge!(m::JOBS_OLDEST_QUEUED_AGE_SECONDS, "kind" => kind).set(age);
            }
        }
        Err(err) => tracing::warn!(error = %err, "could not read job queue stats"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cfg = JobsConfig::default();
        let now = Utc::now();
        let first = retry_at(&cfg, 1, now) - now;
        assert!(
            first >= chrono::Duration::milliseconds(2500) && first <= chrono::Duration::seconds(5)
        );
        let fourth = retry_at(&cfg, 4, now) - now;
        assert!(fourth >= chrono::Duration::seconds(20) && fourth <= chrono::Duration::seconds(40));
        let late = retry_at(&cfg, 30, now) - now;
        assert!(late <= chrono::Duration::seconds(3600));
    }
}
