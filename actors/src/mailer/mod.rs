//! The mailer worker: claims `mail` jobs from the durable queue and sends them, over
//! SMTP (lettre) when configured, else into the outbox folder as `.eml` files.
//! A failed send is retried with backoff and parked as `failed` after `max_attempts`.

mod transport;

use std::{sync::Arc, time::Instant};

use futures::future::join_all;
use ractor::{Actor, ActorProcessingErr, ActorRef};

pub use self::transport::MailTransportImpl;
use crate::{
    engine::Deps,
    jobs::{self, KIND_MAIL, MailJob},
    metrics as m,
    store::{self, jobs::JobRow},
};

pub enum MailerMsg {
    /// Look for due mail jobs now.
    Poll,
    /// Refresh the queue gauges.
    Stats,
}

pub struct Mailer;

pub struct MailerState {
    deps: Arc<Deps>,
    transport: MailTransportImpl,
}

impl Actor for Mailer {
    type Msg = MailerMsg;
    type State = MailerState;
    type Arguments = Arc<Deps>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        deps: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let transport = MailTransportImpl::new(&deps.config.mail).await?;
        myself.send_interval(deps.config.jobs.poll_interval, || MailerMsg::Poll);
        myself.send_interval(std::time::Duration::from_secs(15), || MailerMsg::Stats);
        // A job written on this node wakes the worker at once instead of at the next poll.
        let waker = deps.job_waker.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            loop {
                waker.notified().await;
                if me.cast(MailerMsg::Poll).is_err() {
                    break;
                }
            }
        });
        let _ = myself.cast(MailerMsg::Stats);
        Ok(MailerState { deps, transport })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MailerMsg::Poll => {
                let batch = state.deps.config.jobs.mail_concurrency.max(1);
                match run_batch(state, batch).await {
                    // A full batch means more may be waiting.
                    Ok(claimed) if claimed == batch => {
                        let _ = myself.cast(MailerMsg::Poll);
                    }
                    Ok(_) => {}
                    Err(err) => tracing::error!(error = %err, "mail worker could not claim jobs"),
                }
            }
            MailerMsg::Stats => refresh_gauges(&state.deps).await,
        }
        Ok(())
    }
}

/// Claim up to `limit` mail jobs, send them concurrently, record each outcome.
async fn run_batch(state: &MailerState, limit: usize) -> Result<usize, store::StoreError> {
    let deps = &state.deps;
    let now = deps.clock.now();
    let lease =
        chrono::Duration::from_std(deps.config.jobs.lease).unwrap_or(chrono::Duration::seconds(60));
    let claimed = store::jobs::claim(
        &deps.db,
        KIND_MAIL,
        &deps.worker_id,
        now,
        now + lease,
        limit as i64,
    )
    .await?;
    let count = claimed.len();
    let sends = claimed.into_iter().map(|job| async move {
        let started = Instant::now();
        let result = send_one(&state.transport, &deps.config.mail.from, &job).await;
        (job, result, started.elapsed())
    });
    for (job, result, took) in join_all(sends).await {
        metrics::histogram!(m::JOB_DURATION_SECONDS, "kind" => KIND_MAIL)
            .record(took.as_secs_f64());
        finish(deps, &job, result, state.transport.name()).await;
    }
    Ok(count)
}

async fn send_one(transport: &MailTransportImpl, from: &str, job: &JobRow) -> Result<(), String> {
    let mail: MailJob = serde_json::from_value(job.payload.0.clone())
        .map_err(|e| format!("malformed mail job payload: {e}"))?;
    transport.send(from, &mail).await
}

async fn finish(deps: &Deps, job: &JobRow, result: Result<(), String>, transport: &'static str) {
    let now = deps.clock.now();
    let outcome = match result {
        Ok(()) => match store::jobs::complete(&deps.db, job.id, &deps.worker_id, now, true).await {
            Ok(_) => {
                metrics::counter!(m::MAIL_SENT_TOTAL, "transport" => transport, "outcome" => "sent").increment(1);
                "done"
            }
            Err(err) => {
                // Sent but not recorded: the lease will expire and the mail may go twice.
                tracing::error!(job_id = %job.id, error = %err, "could not mark mail job done");
                "done"
            }
        },
        Err(error) => {
            metrics::counter!(m::MAIL_SENT_TOTAL, "transport" => transport, "outcome" => "failed")
                .increment(1);
            let give_up = job.attempts >= job.max_attempts;
            let recorded = if give_up {
                tracing::error!(job_id = %job.id, attempts = job.attempts, %error, "mail job failed for good");
                store::jobs::park_failed(&deps.db, job.id, &deps.worker_id, &error, now).await
            } else {
                tracing::warn!(job_id = %job.id, attempts = job.attempts, %error, "mail job failed; will retry");
                let at = jobs::retry_at(&deps.config.jobs, job.attempts, now);
                store::jobs::retry_later(&deps.db, job.id, &deps.worker_id, &error, at, now).await
            };
            if let Err(err) = recorded {
                tracing::error!(job_id = %job.id, error = %err, "could not record mail job failure");
            }
            if give_up { "failed" } else { "retry" }
        }
    };
    metrics::counter!(m::JOBS_FINISHED_TOTAL, "kind" => KIND_MAIL, "outcome" => outcome)
        .increment(1);
}

async fn refresh_gauges(deps: &Deps) {
    let (idle, in_use) = deps.db.pool_usage();
    metrics::gauge!(m::DB_POOL_CONNECTIONS, "state" => "idle").set(idle as f64);
    metrics::gauge!(m::DB_POOL_CONNECTIONS, "state" => "in_use").set(in_use as f64);
    match store::jobs::queue_stats(&deps.db).await {
        Ok(stats) => {
            let now = deps.clock.now();
            // Kinds with nothing queued report zero rather than a stale value.
            metrics::gauge!(m::JOBS_QUEUE_DEPTH, "kind" => KIND_MAIL).set(0.0);
            metrics::gauge!(m::JOBS_OLDEST_QUEUED_AGE_SECONDS, "kind" => KIND_MAIL).set(0.0);
            for s in stats {
                let age = s
                    .oldest_run_at
                    .map(|at| (now - at).num_milliseconds().max(0) as f64 / 1000.0)
                    .unwrap_or(0.0);
                metrics::gauge!(m::JOBS_QUEUE_DEPTH, "kind" => s.kind.clone()).set(s.queued as f64);
                metrics::gauge!(m::JOBS_OLDEST_QUEUED_AGE_SECONDS, "kind" => s.kind).set(age);
            }
        }
        Err(err) => tracing::warn!(error = %err, "could not read job queue stats"),
    }
}
