//! The job worker: one actor per job kind, generic over what the kind does
//! ([`JobHandler`]). The actor is the one writer of the jobs it holds: it claims due
//! jobs with a lease (never more than its concurrency at once), runs each in a task of
//! its own, renews the leases of all it holds in one statement (a third of the lease at
//! a time, so only a crashed worker's job is taken again), and records each run's
//! outcome when the run ends: done (the jobs that ended together in one statement),
//! retried later with backoff and jitter, or parked as `failed` with the last error.
//! It wakes on the poll timer, on a local commit that queued a job of its kind
//! (`job_waker`), and on PostgreSQL `NOTIFY` of its kind from other nodes. On a graceful stop it lets running jobs finish for a
//! while, recording each, then gives the rest back to the queue so another worker takes
//! them at once.

use std::{
    collections::HashMap,
    future::Future,
    marker::PhantomData,
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::FutureExt as _;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::{self, JoinSet};
use uuid::Uuid;

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
    /// A job's run has ended: record the outcomes of every finished run.
    Reap,
    /// Push out the leases of the jobs this worker runs.
    RenewLeases,
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
    concurrency: usize,
    /// The runs of the jobs this worker holds; each ends with its job and result, which
    /// the actor records ([`WorkerMsg::Reap`]).
    running: JoinSet<Finished>,
    /// `Reap`s received less runs joined. A run sends its `Reap` just before it ends, so
    /// the actor may see the message before the run can be joined: what is owed is then
    /// joined by waiting (a moment); a run joined early is paid for by its `Reap` later.
    reaps_owed: isize,
    /// The jobs this worker holds (claimed, not yet recorded), by the task that runs
    /// each: their leases are renewed.
    held: HashMap<task::Id, Uuid>,
    /// What follows a job's giving up (its item says so), run beside the actor.
    follow_ups: JoinSet<()>,
}

/// A job's run, ended.
pub struct Finished {
    job: JobRow,
    result: Result<JobEnd, JobFailure>,
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
        let waker = deps.job_waker.of(H::KIND);
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
        // A third of the lease at a time, so a running job's lease never runs out while
        // its worker lives; only a dead worker's does.
        let renew_every = (deps.config.jobs.lease / 3).max(Duration::from_millis(100));
        myself.send_interval(renew_every, || WorkerMsg::RenewLeases);
        let _ = myself.cast(WorkerMsg::Poll);
        let _ = myself.cast(WorkerMsg::Stats);
        Ok(WorkerState {
            deps,
            handler: Arc::new(handler),
            concurrency,
            running: JoinSet::new(),
            reaps_owed: 0,
            held: HashMap::new(),
            follow_ups: JoinSet::new(),
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
            WorkerMsg::RenewLeases => renew_leases::<H>(state).await,
            WorkerMsg::Reap => {
                state.reaps_owed += 1;
                let mut finished = Vec::new();
                // Every run that ended, together (their jobs are marked done at once),
                // and the one that sent this `Reap`, waited for if it is still returning.
                loop {
                    let joined = match state.running.try_join_next_with_id() {
                        Some(joined) => Some(joined),
                        None if state.reaps_owed > 0 => state.running.join_next_with_id().await,
                        None => break,
                    };
                    let Some(joined) = joined else {
                        state.reaps_owed = 0; // nothing runs: nothing is owed
                        break;
                    };
                    state.reaps_owed -= 1;
                    finished.extend(ended(state, joined));
                }
                record::<H>(state, finished).await;
                // Follow-ups that ended are dropped, so the set does not grow.
                while state.follow_ups.try_join_next().is_some() {}
                // Slots are free: there may be more waiting.
                claim_and_run(&myself, state).await;
            }
            WorkerMsg::Poll => claim_and_run(&myself, state).await,
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Running jobs get a while to finish; each outcome is recorded as it comes.
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        while !state.running.is_empty() {
            match tokio::time::timeout_at(deadline, state.running.join_next_with_id()).await {
                Ok(Some(joined)) => {
                    let finished: Vec<Finished> = ended(state, joined).into_iter().collect();
                    record::<H>(state, finished).await;
                }
                Ok(None) => break,
                Err(_) => break,
            }
        }
        if !state.running.is_empty() {
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
        let _ = tokio::time::timeout_at(deadline, async {
            while state.follow_ups.join_next().await.is_some() {}
        })
        .await;
        Ok(())
    }
}

/// A joined run, no longer held: its job and result, or nothing when the run was
/// aborted (its lease is no longer renewed, so the job runs again once it runs out).
fn ended<H>(
    state: &mut WorkerState<H>,
    joined: Result<(task::Id, Finished), task::JoinError>,
) -> Option<Finished> {
    match joined {
        Ok((task, finished)) => {
            state.held.remove(&task);
            Some(finished)
        }
        Err(err) => {
            let job = state.held.remove(&err.id());
            tracing::error!(job_id = ?job, error = %err, "a job's run ended without an outcome; it will run again");
            None
        }
    }
}

/// Claim due jobs for the free slots and run each in a task of its own.
async fn claim_and_run<H: JobHandler>(myself: &ActorRef<WorkerMsg>, state: &mut WorkerState<H>) {
    let free = state.concurrency.saturating_sub(state.running.len());
    if free == 0 {
        return;
    }
    let claimed = match state.handler.per_project_limit(&state.deps) {
        Some(per_project) => claim_fair::<H>(&state.deps, free, per_project).await,
        None => claim::<H>(&state.deps, free).await,
    };
    let jobs = match claimed {
        Ok(jobs) => jobs,
        Err(err) => {
            tracing::error!(kind = H::KIND, error = %err, "job worker could not claim jobs");
            return;
        }
    };
    for job in jobs {
        let (id, deps, handler, me) = (
            job.id,
            state.deps.clone(),
            state.handler.clone(),
            myself.clone(),
        );
        let run = state.running.spawn(async move {
            let started = Instant::now();
            // A run that panics is a failed attempt, and still sends its `Reap`.
            let result = AssertUnwindSafe(handler.run(&deps, &job))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    Err(JobFailure(format!(
                        "the run panicked: {}",
                        panic_message(&panic)
                    )))
                });
            metrics::histogram!(m::JOB_DURATION_SECONDS, "kind" => H::KIND)
                .record(started.elapsed().as_secs_f64());
            // The actor records the outcome (a stopping actor records it as it joins).
            let _ = me.cast(WorkerMsg::Reap);
            Finished { job, result }
        });
        state.held.insert(run.id(), id);
    }
}

/// Renew the leases of every job this worker holds, in one statement.
async fn renew_leases<H: JobHandler>(state: &WorkerState<H>) {
    if state.held.is_empty() {
        return;
    }
    let deps = &state.deps;
    let ids: Vec<Uuid> = state.held.values().copied().collect();
    let now = deps.clock.now();
    let until = now + lease(deps);
    match store::jobs::extend_leases(&deps.db, &ids, &deps.worker_id, until, now).await {
        Ok(renewed) => {
            for id in ids.iter().filter(|id| !renewed.contains(id)) {
                tracing::warn!(kind = H::KIND, job_id = %id, "lease lost while running");
            }
        }
        Err(err) => {
            tracing::warn!(kind = H::KIND, error = %err, "could not renew the leases")
        }
    }
}

/// What a panic said, when it said it with a string.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

fn lease(deps: &Deps) -> chrono::Duration {
    chrono::Duration::from_std(deps.config.jobs.lease).unwrap_or(chrono::Duration::seconds(60))
}

/// Record how the runs in `finished` ended: the jobs that ran are marked done together
/// (one statement), a failure is retried later or parked, and the rest were recorded by
/// their handlers. The worker is the one writer of the jobs it holds.
async fn record<H: JobHandler>(state: &mut WorkerState<H>, finished: Vec<Finished>) {
    if finished.is_empty() {
        return;
    }
    let deps = state.deps.clone();
    let now = deps.clock.now();
    let ran: Vec<Uuid> = finished
        .iter()
        .filter(|f| matches!(f.result, Ok(JobEnd::Ran)))
        .map(|f| f.job.id)
        .collect();
    // `None`: the statement failed and the jobs will run again.
    let completed = match store::jobs::complete_held(
        &deps.db,
        &ran,
        &deps.worker_id,
        H::KIND,
        now,
        H::SCRUB_WHEN_DONE,
    )
    .await
    {
        Ok(done) => Some(done),
        Err(err) => {
            tracing::error!(kind = H::KIND, jobs = ran.len(), error = %err, "could not mark jobs done; they will run again");
            None
        }
    };
    for Finished { job, result } in finished {
        let outcome = match result {
            Ok(JobEnd::Recorded) => "done",
            Ok(JobEnd::HandedOver) => "handed_over",
            Ok(JobEnd::LeaseLost) => {
                tracing::warn!(kind = H::KIND, job_id = %job.id, "job finished after its lease was lost");
                "lease_lost"
            }
            Ok(JobEnd::Postponed) => "postponed",
            Ok(JobEnd::Ran) => match &completed {
                Some(done) if done.contains(&job.id) => "done",
                Some(_) => {
                    // The lease ran out and another worker has it: its run decides.
                    tracing::warn!(kind = H::KIND, job_id = %job.id, "job finished after its lease was lost");
                    "lease_lost"
                }
                None => "unrecorded",
            },
            Err(JobFailure(error)) => failed(state, &job, error, now).await,
        };
        metrics::counter!(m::JOBS_FINISHED_TOTAL, "kind" => H::KIND, "outcome" => outcome)
            .increment(1);
    }
}

/// A failed attempt: the job is tried again later, or parked when its attempts are
/// spent (and then its handler's follow-up runs beside the actor).
async fn failed<H: JobHandler>(
    state: &mut WorkerState<H>,
    job: &JobRow,
    error: String,
    now: chrono::DateTime<chrono::Utc>,
) -> &'static str {
    let deps = &state.deps;
    let give_up = job.attempts >= job.max_attempts;
    let recorded = if give_up {
        tracing::error!(kind = H::KIND, job_id = %job.id, attempts = job.attempts, %error, "job failed for good");
        store::jobs::park_failed(&deps.db, job.id, &deps.worker_id, &error, now).await
    } else {
        tracing::warn!(kind = H::KIND, job_id = %job.id, attempts = job.attempts, %error, "job failed; will retry");
        let at = state.handler.retry_at(deps, job.attempts, now);
        store::jobs::retry_later(&deps.db, job.id, &deps.worker_id, &error, at, now).await
    };
    match recorded {
        Ok(true) if give_up => {
            let (deps, handler, job) = (deps.clone(), state.handler.clone(), job.clone());
            state.follow_ups.spawn(async move {
                handler.gave_up(&deps, &job, &error).await;
            });
            "failed"
        }
        Ok(_) => "retry",
        Err(err) => {
            tracing::error!(kind = H::KIND, job_id = %job.id, error = %err, "could not record job failure");
            "unrecorded"
        }
    }
}

async fn claim<H: JobHandler>(deps: &Deps, limit: usize) -> Result<Vec<JobRow>, store::StoreError> {
    let now = deps.clock.now();
    store::jobs::claim(
        &deps.db,
        H::KIND,
        &deps.worker_id,
        now,
        now + lease(deps),
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
    let per_project = i64::try_from(per_project).unwrap_or(i64::MAX);
    let mut jobs = Vec::new();
    while jobs.len() < limit {
        let now = deps.clock.now();
        match store::jobs::claim_fair(
            &deps.db,
            H::KIND,
            &deps.worker_id,
            now,
            now + lease(deps),
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
