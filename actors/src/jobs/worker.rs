//! The job worker: one actor per job kind, generic over what the kind does
//! ([`JobHandler`]). It claims due jobs with a lease (never more than its concurrency
//! at once), runs each in its own task, and records the outcome: done, retried later
//! with backoff and jitter, or parked as `failed` with the last error. It wakes on the
//! poll timer, on a local commit (`job_waker`), and on PostgreSQL `NOTIFY` from other
//! nodes. A running job's lease is renewed (a third of the lease at a time), so only a
//! crashed worker's job is taken again. On a graceful stop it lets running jobs finish for a while, then gives the
//! rest back to the queue so another worker takes them at once.

use std::{
    future::Future,
    marker::PhantomData,
    sync::Arc,
    time::{Duration, Instant},
};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    deps::Deps,
    jobs, metrics as m,
    store::{self, jobs::JobRow},
};

/// How a job's run ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    /// The worker marks the job done.
    Ran,
    /// The handler marked the job done itself, in the transaction that recorded its
    /// outcome (one commit for both).
    Recorded,
    /// The handler gave the job to another lane (queued again under another kind).
    HandedOver,
    /// The job's lease ran out and another worker holds it: that run decides.
    LeaseLost,
    /// The job cannot run yet (it waits for another): the handler queued it again
    /// (`store::webhooks::postpone_behind`), without using up an attempt.
    Postponed,
}

/// A failed attempt: retried with backoff until the job's attempts run out.
#[derive(Debug, Clone)]
pub struct JobFailure(pub String);

impl<E: std::fmt::Display> From<E> for JobFailure {
    fn from(err: E) -> Self {
        Self(err.to_string())
    }
}

/// What one kind of job does. Handlers are idempotent: a job whose lease expired is run
/// again, and its second run must leave one result.
pub trait JobHandler: Send + Sync + 'static {
    const KIND: &'static str;
    /// Empty the payload once done (it held something that must not outlive the job).
    const SCRUB_WHEN_DONE: bool = false;

    /// How many jobs of this kind one worker runs at once.
    fn concurrency(&self, deps: &Deps) -> usize;

    /// At most this many jobs of one project (the payload's `project_id`) run at once,
    /// on all nodes; `None`: no such limit.
    fn per_project_limit(&self, _deps: &Deps) -> Option<usize> {
        None
    }

    /// Run one job. An outcome the engine cannot change by retrying (an unreadable
    /// file) is a success of the job that records it, not a failure.
    fn run(
        &self,
        deps: &Arc<Deps>,
        job: &JobRow,
    ) -> impl Future<Output = Result<JobEnd, JobFailure>> + Send;

    /// When to try again after the `attempt`-th failure (the queue's backoff unless the
    /// kind has its own schedule).
    fn retry_at(
        &self,
        deps: &Deps,
        attempt: i32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        jobs::retry_at(&deps.config.jobs, attempt, now)
    }

    /// The last attempt failed and the job is parked.
    fn gave_up(
        &self,
        _deps: &Arc<Deps>,
        _job: &JobRow,
        _error: &str,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

pub enum WorkerMsg {
    /// Look for due jobs now.
    Poll,
    /// Refresh this kind's queue gauges.
    Stats,
}

pub struct JobWorker<H>(PhantomData<fn() -> H>);

impl<H> Default for JobWorker<H> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

pub struct WorkerState<H> {
    deps: Arc<Deps>,
    handler: Arc<H>,
    permits: Arc<Semaphore>,
    concurrency: usize,
    running: JoinSet<()>,
}

/// How long a stopping worker waits for running jobs before giving them back.
const STOP_GRACE: Duration = Duration::from_secs(15);

impl<H: JobHandler> Actor for JobWorker<H> {
    type Msg = WorkerMsg;
    type State = WorkerState<H>;
    type Arguments = (Arc<Deps>, H);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (deps, handler): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let concurrency = handler.concurrency(&deps).max(1);
        myself.send_interval(deps.config.jobs.poll_interval, || WorkerMsg::Poll);
        let waker = deps.job_waker.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            loop {
                waker.notified().await;
                if me.cast(WorkerMsg::Poll).is_err() {
                    break;
                }
            }
        });
        myself.send_interval(Duration::from_secs(15), || WorkerMsg::Stats);
        let _ = myself.cast(WorkerMsg::Poll);
        let _ = myself.cast(WorkerMsg::Stats);
        Ok(WorkerState {
            deps,
            handler: Arc::new(handler),
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            running: JoinSet::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WorkerMsg::Stats => jobs::refresh_gauges(&state.deps, &[H::KIND]).await,
            WorkerMsg::Poll => {
                // Reap finished tasks so the set does not grow.
                while state.running.try_join_next().is_some() {}
                let free = state.permits.available_permits();
                if free == 0 {
                    return Ok(());
                }
                let claimed = match state.handler.per_project_limit(&state.deps) {
                    Some(per_project) => claim_fair::<H>(&state.deps, free, per_project).await,
                    None => claim::<H>(&state.deps, free).await,
                };
                match claimed {
                    Ok(jobs) => {
                        for job in jobs {
                            let Ok(permit) = state.permits.clone().try_acquire_owned() else {
                                break;
                            };
                            let (deps, handler, me) =
                                (state.deps.clone(), state.handler.clone(), myself.clone());
                            state.running.spawn(async move {
                                run_one(&deps, &*handler, job).await;
                                drop(permit);
                                // A slot is free: there may be more waiting.
                                let _ = me.cast(WorkerMsg::Poll);
                            });
                        }
                    }
                    Err(err) => {
                        tracing::error!(kind = H::KIND, error = %err, "job worker could not claim jobs")
                    }
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let all = u32::try_from(state.concurrency).unwrap_or(u32::MAX);
        let finished = tokio::time::timeout(STOP_GRACE, state.permits.acquire_many(all)).await;
        if finished.is_err() {
            state.running.abort_all();
            let now = state.deps.clock.now();
            match store::jobs::release_held(&state.deps.db, H::KIND, &state.deps.worker_id, now)
                .await
            {
                Ok(n) => tracing::info!(kind = H::KIND, released = n, "gave running jobs back"),
                Err(err) => {
                    tracing::warn!(kind = H::KIND, error = %err, "could not give jobs back; their leases will expire")
                }
            }
        }
        Ok(())
    }
}

async fn claim<H: JobHandler>(deps: &Deps, limit: usize) -> Result<Vec<JobRow>, store::StoreError> {
    let now = deps.clock.now();
    let lease =
        chrono::Duration::from_std(deps.config.jobs.lease).unwrap_or(chrono::Duration::seconds(60));
    store::jobs::claim(
        &deps.db,
        H::KIND,
        &deps.worker_id,
        now,
        now + lease,
        i64::try_from(limit).unwrap_or(1),
    )
    .await
}

/// Claims up to `limit` jobs one at a time, so each claim counts the ones before it
/// against the project's limit.
async fn claim_fair<H: JobHandler>(
    deps: &Deps,
    limit: usize,
    per_project: usize,
) -> Result<Vec<JobRow>, store::StoreError> {
    let lease =
        chrono::Duration::from_std(deps.config.jobs.lease).unwrap_or(chrono::Duration::seconds(60));
    let per_project = i64::try_from(per_project).unwrap_or(i64::MAX);
    let mut jobs = Vec::new();
    while jobs.len() < limit {
        let now = deps.clock.now();
        match store::jobs::claim_fair(
            &deps.db,
            H::KIND,
            &deps.worker_id,
            now,
            now + lease,
            per_project,
        )
        .await?
        {
            Some(job) => jobs.push(job),
            None => break,
        }
    }
    Ok(jobs)
}

async fn run_one<H: JobHandler>(deps: &Arc<Deps>, handler: &H, job: JobRow) {
    let started = Instant::now();
    // The lease is renewed while the job runs, so a long job is not taken again by
    // another worker; only a dead worker's lease runs out.
    let result = {
        let run = handler.run(deps, &job);
        tokio::pin!(run);
        let every = (deps.config.jobs.lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                result = &mut run => break result,
                () = tokio::time::sleep(every) => {
                    let now = deps.clock.now();
                    let lease = chrono::Duration::from_std(deps.config.jobs.lease)
                        .unwrap_or(chrono::Duration::seconds(60));
                    match store::jobs::extend_lease(&deps.db, job.id, &deps.worker_id, now + lease, now).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(kind = H::KIND, job_id = %job.id, "lease lost while running"),
                        Err(err) => tracing::warn!(kind = H::KIND, job_id = %job.id, error = %err, "could not renew the lease"),
                    }
                }
            }
        }
    };
    metrics::histogram!(m::JOB_DURATION_SECONDS, "kind" => H::KIND)
        .record(started.elapsed().as_secs_f64());
    let now = deps.clock.now();
    let outcome = match result {
        Ok(JobEnd::Recorded) => "done",
        Ok(JobEnd::HandedOver) => "handed_over",
        Ok(JobEnd::LeaseLost) => {
            tracing::warn!(kind = H::KIND, job_id = %job.id, "job finished after its lease was lost");
            "lease_lost"
        }
        Ok(JobEnd::Postponed) => "postponed",
        Ok(JobEnd::Ran) => {
            match store::jobs::complete_as(
                &deps.db,
                job.id,
                &deps.worker_id,
                H::KIND,
                now,
                H::SCRUB_WHEN_DONE,
            )
            .await
            {
                Ok(true) => "done",
                Ok(false) => {
                    // The lease ran out and another worker has it: its run decides.
                    tracing::warn!(kind = H::KIND, job_id = %job.id, "job finished after its lease was lost");
                    "lease_lost"
                }
                Err(err) => {
                    tracing::error!(kind = H::KIND, job_id = %job.id, error = %err, "could not mark job done; it will run again");
                    "unrecorded"
                }
            }
        }
        Err(JobFailure(error)) => {
            let give_up = job.attempts >= job.max_attempts;
            let recorded = if give_up {
                tracing::error!(kind = H::KIND, job_id = %job.id, attempts = job.attempts, %error, "job failed for good");
                store::jobs::park_failed(&deps.db, job.id, &deps.worker_id, &error, now).await
            } else {
                tracing::warn!(kind = H::KIND, job_id = %job.id, attempts = job.attempts, %error, "job failed; will retry");
                let at = handler.retry_at(deps, job.attempts, now);
                store::jobs::retry_later(&deps.db, job.id, &deps.worker_id, &error, at, now).await
            };
            match recorded {
                Ok(true) if give_up => {
                    handler.gave_up(deps, &job, &error).await;
                    "failed"
                }
                Ok(_) => "retry",
                Err(err) => {
                    tracing::error!(kind = H::KIND, job_id = %job.id, error = %err, "could not record job failure");
                    "unrecorded"
                }
            }
        }
    };
    metrics::counter!(m::JOBS_FINISHED_TOTAL, "kind" => H::KIND, "outcome" => outcome).increment(1);
}
