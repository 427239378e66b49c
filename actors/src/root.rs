//! The root supervisor: starts the children this process runs, restarts a failed
//! child with exponential backoff, and stops them in order on shutdown.
//! No actor is registered under a global name, so many engines can share a process.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};

use crate::{
    accounts::Accounts,
    deps::Deps,
    exports::ExportHandler,
    handle::Slots,
    jobs::worker::{JobHandler, JobWorker},
    mailer::MailHandler,
    metrics as m,
    processing::{OcrHandler, OcrImageHandler, TranscriptionHandler},
    project_actor::{ProjectRegistry, Projects},
    rate_limiter::{RateLimiter, RateLimiterArgs},
    review::digest::ReviewMonitor,
    sweeper::Sweeper,
    webhooks::DeliveryHandler,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Child {
    Accounts,
    RateLimiter,
    /// The job workers, one per kind.
    MailWorker,
    OcrWorker,
    TranscriptionWorker,
    Projects,
    /// The OCR lane (images, scans), apart from the text lane (`OcrWorker`).
    OcrImageWorker,
    Sweeper,
    /// Changes-requested digests and review gauges.
    ReviewMonitor,
    /// Dataset exports.
    ExportWorker,
    /// Webhook deliveries.
    WebhookWorker,
}

impl Child {
    fn name(self) -> &'static str {
        match self {
            Self::Accounts => "accounts",
            Self::RateLimiter => "rate_limiter",
            Self::MailWorker => "mail_worker",
            Self::OcrWorker => "ocr_worker",
            Self::TranscriptionWorker => "transcription_worker",
            Self::Projects => "projects",
            Self::Sweeper => "sweeper",
            Self::ReviewMonitor => "review_monitor",
            Self::OcrImageWorker => "ocr_image_worker",
            Self::ExportWorker => "export_worker",
            Self::WebhookWorker => "webhook_worker",
        }
    }
}

pub enum RootMsg {
    /// Start `child` again (sent after a backoff).
    Restart(Child),
    /// Stop every child and wait for them.
    Shutdown(RpcReplyPort<()>),
}

pub struct Root;

pub struct RootArgs {
    pub deps: Arc<Deps>,
    pub slots: Slots,
    pub roles: EngineRoles,
}

pub struct RootState {
    deps: Arc<Deps>,
    slots: Slots,
    children: HashMap<ActorId, (Child, ActorCell)>,
    /// Recent restart times per child, for the backoff.
    restarts: HashMap<Child, Vec<Instant>>,
    stopping: bool,
    /// PostgreSQL LISTEN for jobs committed by other nodes (workers only).
    job_listener: Option<tokio::task::JoinHandle<()>>,
    /// The job queue's gauges, kept on a node without workers ([`watch_queue`]).
    queue_watch: Option<tokio::task::JoinHandle<()>>,
}

/// Which parts of the tree this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineRoles {
    /// Account transitions and rate limiting (needed to serve the API).
    pub api: bool,
    /// Job workers (mail now; OCR and transcription later).
    pub workers: bool,
}

impl EngineRoles {
    pub const SERVE: Self = Self {
        api: true,
        workers: true,
    };
    /// `alta serve` with `SERVE_WORKERS=false`: jobs run on `alta worker` processes.
    pub const API: Self = Self {
        api: true,
        workers: false,
    };
    pub const WORKER: Self = Self {
        api: false,
        workers: true,
    };
    /// The CLI's one-off commands: transitions, no workers.
    pub const ADMIN: Self = Self::API;
}

/// How often a node without workers reads the job queue's depth and age (as each
/// worker does for its kind).
const QUEUE_WATCH_EVERY: Duration = Duration::from_secs(15);

/// On a node without workers (`alta serve` with `SERVE_WORKERS=false`), the job queue's
/// gauges by kind, every [`QUEUE_WATCH_EVERY`]: only workers kept them, so when every
/// worker process was down, nothing said the queue was growing old and the
/// queue-stalled alert had no series to fire on.
fn watch_queue(deps: Arc<Deps>) -> tokio::task::JoinHandle<()> {
    const KINDS: [&str; 6] = [
        MailHandler::KIND,
        OcrHandler::KIND,
        TranscriptionHandler::KIND,
        OcrImageHandler::KIND,
        ExportHandler::KIND,
        DeliveryHandler::KIND,
    ];
    tokio::spawn(async move {
        let start = tokio::time::Instant::now() + QUEUE_WATCH_EVERY;
        let mut every = tokio::time::interval_at(start, QUEUE_WATCH_EVERY);
        loop {
            every.tick().await;
            crate::jobs::refresh_gauges(&deps, &KINDS).await;
        }
    })
}

const RESTART_WINDOW: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Actor for Root {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = RootState {
            deps: args.deps,
            slots: args.slots,
            children: HashMap::new(),
            restarts: HashMap::new(),
            stopping: false,
            job_listener: None,
            queue_watch: None,
        };
        if args.roles.api {
            spawn_child(&myself, &mut state, Child::RateLimiter).await?;
            spawn_child(&myself, &mut state, Child::Accounts).await?;
        }
        // Project actors apply the API's transitions and the workers' processing outcomes.
        spawn_child(&myself, &mut state, Child::Projects).await?;
        if args.roles.workers {
            spawn_child(&myself, &mut state, Child::MailWorker).await?;
            spawn_child(&myself, &mut state, Child::OcrWorker).await?;
            spawn_child(&myself, &mut state, Child::TranscriptionWorker).await?;
            spawn_child(&myself, &mut state, Child::OcrImageWorker).await?;
            spawn_child(&myself, &mut state, Child::ExportWorker).await?;
            spawn_child(&myself, &mut state, Child::WebhookWorker).await?;
            spawn_child(&myself, &mut state, Child::Sweeper).await?;
            spawn_child(&myself, &mut state, Child::ReviewMonitor).await?;
            state.job_listener = crate::jobs::wake::listen(Arc::clone(&state.deps));
        } else if args.roles.api {
            state.queue_watch = Some(watch_queue(Arc::clone(&state.deps)));
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RootMsg::Restart(child) if !state.stopping => {
                if let Err(err) = spawn_child(&myself, state, child).await {
                    tracing::error!(actor = child.name(), error = %err, "restart failed; trying again");
                    schedule_restart(&myself, state, child);
                }
            }
            RootMsg::Restart(_) => {}
            RootMsg::Shutdown(reply) => {
                state.stopping = true;
                if let Some(listener) = state.job_listener.take() {
                    listener.abort();
                }
                if let Some(watch) = state.queue_watch.take() {
                    watch.abort();
                }
                // Workers first, so no job is claimed after the API side is gone.
                let mut children: Vec<(Child, ActorCell)> =
                    state.children.drain().map(|(_, c)| c).collect();
                children.sort_by_key(|(child, _)| match child {
                    Child::MailWorker
                    | Child::OcrWorker
                    | Child::TranscriptionWorker
                    | Child::OcrImageWorker
                    | Child::ExportWorker
                    | Child::WebhookWorker
                    | Child::Sweeper
                    | Child::ReviewMonitor => 0,
                    Child::Projects => 1,
                    Child::Accounts => 2,
                    Child::RateLimiter => 3,
                });
                for (child, cell) in children {
                    clear_slot(state, child);
                    let _ = cell
                        .stop_and_wait(None, Some(Duration::from_secs(20)))
                        .await;
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, format!("stopped: {}", reason.unwrap_or_default()))
            }
            _ => return Ok(()),
        };
        let Some((child, _)) = state.children.remove(&cell.get_id()) else {
            return Ok(());
        };
        clear_slot(state, child);
        if state.stopping {
            return Ok(());
        }
        tracing::error!(actor = child.name(), reason = %why, "actor exited; restarting");
        metrics::counter!(m::ACTOR_RESTARTS_TOTAL, "actor" => child.name()).increment(1);
        schedule_restart(&myself, state, child);
        Ok(())
    }
}

/// Restart after 100 ms, doubling with each restart in the last minute, up to 10 s.
fn schedule_restart(myself: &ActorRef<RootMsg>, state: &mut RootState, child: Child) {
    let now = Instant::now();
    let recent = state.restarts.entry(child).or_default();
    recent.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
    recent.push(now);
    let exp = u32::try_from(recent.len().saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(10);
    let backoff = Duration::from_millis(100)
        .saturating_mul(2u32.pow(exp))
        .min(MAX_BACKOFF);
    myself.send_after(backoff, move || RootMsg::Restart(child));
}

async fn spawn_child(
    myself: &ActorRef<RootMsg>,
    state: &mut RootState,
    child: Child,
) -> Result<(), ActorProcessingErr> {
    let supervisor = myself.get_cell();
    let deps = Arc::clone(&state.deps);
    let cell = match child {
        Child::Accounts => {
            let (actor, _) = Actor::spawn_linked(None, Accounts, deps, supervisor).await?;
            state.slots.accounts.set(Some(actor.clone()));
            actor.get_cell()
        }
        Child::RateLimiter => {
            let args = RateLimiterArgs {
                redis: deps.redis.clone(),
            };
            let (actor, _) = Actor::spawn_linked(None, RateLimiter, args, supervisor).await?;
            state.slots.limiter.set(Some(actor.clone()));
            actor.get_cell()
        }
        Child::MailWorker => {
            let handler = MailHandler::new(&deps).await?;
            let worker = JobWorker::<MailHandler>::default();
            let (actor, _) = Actor::spawn_linked(None, worker, (deps, handler), supervisor).await?;
            actor.get_cell()
        }
        Child::OcrWorker => {
            let handler = OcrHandler::new(&deps, projects(state)).await?;
            let worker = JobWorker::<OcrHandler>::default();
            let (actor, _) = Actor::spawn_linked(None, worker, (deps, handler), supervisor).await?;
            actor.get_cell()
        }
        Child::TranscriptionWorker => {
            let handler = TranscriptionHandler::new(&deps, projects(state)).await?;
            let worker = JobWorker::<TranscriptionHandler>::default();
            let args = (deps, handler);
            let (actor, _) = Actor::spawn_linked(None, worker, args, supervisor).await?;
            actor.get_cell()
        }
        Child::OcrImageWorker => {
            let handler = OcrImageHandler::new(&deps, projects(state)).await?;
            let worker = JobWorker::<OcrImageHandler>::default();
            let (actor, _) = Actor::spawn_linked(None, worker, (deps, handler), supervisor).await?;
            actor.get_cell()
        }
        Child::ExportWorker => {
            let handler = ExportHandler::new(projects(state));
            let worker = JobWorker::<ExportHandler>::default();
            let (actor, _) = Actor::spawn_linked(None, worker, (deps, handler), supervisor).await?;
            actor.get_cell()
        }
        Child::WebhookWorker => {
            let handler = DeliveryHandler::new(projects(state), &deps.config.webhooks)?;
            let worker = JobWorker::<DeliveryHandler>::default();
            let (actor, _) = Actor::spawn_linked(None, worker, (deps, handler), supervisor).await?;
            actor.get_cell()
        }
        Child::Sweeper => {
            let (actor, _) = Actor::spawn_linked(None, Sweeper, deps, supervisor).await?;
            actor.get_cell()
        }
        Child::ReviewMonitor => {
            let (actor, _) = Actor::spawn_linked(None, ReviewMonitor, deps, supervisor).await?;
            actor.get_cell()
        }
        Child::Projects => {
            let (actor, _) = Actor::spawn_linked(None, ProjectRegistry, deps, supervisor).await?;
            state.slots.projects.set(Some(actor.clone()));
            actor.get_cell()
        }
    };
    state.children.insert(cell.get_id(), (child, cell));
    Ok(())
}

/// The way to project actors, for the workers that record processing outcomes. A
/// worker waits for a busy actor as long as a job lease (renewed while it waits), not
/// the API's call timeout: giving up would cost the job an attempt.
fn projects(state: &RootState) -> Projects {
    let wait = state
        .deps
        .config
        .jobs
        .lease
        .max(state.deps.config.call_timeout);
    Projects::new(state.slots.projects.clone(), wait)
}

fn clear_slot(state: &RootState, child: Child) {
    match child {
        Child::Accounts => state.slots.accounts.set(None),
        Child::RateLimiter => state.slots.limiter.set(None),
        Child::Projects => state.slots.projects.set(None),
        Child::Sweeper
        | Child::ReviewMonitor
        | Child::MailWorker
        | Child::OcrWorker
        | Child::OcrImageWorker
        | Child::ExportWorker
        | Child::WebhookWorker
        | Child::TranscriptionWorker => {}
    }
}
