//! A project's transitions as types. Each transition is one type implementing
//! [`Transition`]: the right it needs ([`Transition::action`]) and what it writes
//! ([`Transition::apply`]). The project's actor runs every one of them the same way:
//! inside the group's change, under the project's lock, after checking the caller's
//! role once, in a savepoint of its own ([`super::group`]). Adding a transition means
//! writing its type and sending it with [`super::Projects::apply`]; no message variant,
//! no match arm, no hand-written begin/commit.

use std::{future::Future, pin::Pin};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{actor::Opened, messages::Reply};
use crate::{
    authz::{self, ProjectAction},
    change::Change,
    context::{Principal, RequestContext},
    deps::Deps,
    domain::{MailJob, ProjectRole},
    error::EngineError,
    idempotency::{self, Claim},
    metrics as m,
    store::{
        self, Tx, audit::AuditEntry, items::ItemRow, projects::ProjectRow, reviews::RoundTally,
    },
};

/// One transition of a project.
pub trait Transition: Send + Sized + 'static {
    /// What the caller gets once the transition has committed.
    type Out: Send + 'static;

    /// Who checks the project and the caller before `apply`.
    fn check(&self, principal: &Principal) -> Check;

    /// Write the transition through `at` (its change is the only way to write).
    fn apply(
        self,
        at: &mut InProject<'_>,
    ) -> impl Future<Output = Result<Self::Out, EngineError>> + Send;

    /// Whether [`Transition::replica`] gives a copy (declared, so the group can ask
    /// without making one).
    const REPLAYABLE: bool = false;

    /// A copy to run in a group without a savepoint of its own, keeping `self` to run
    /// again should the group have to start over ([`super::group`]'s fast path). A
    /// transition on a hot path declares itself with [`crate::replayable!`]; the
    /// default, `None`, always runs in a savepoint.
    fn replica(&self) -> Option<Self> {
        None
    }

    /// Which of the project's items the transition may change, said before it runs: a
    /// group reads ahead, in one statement, the items that only one of its transitions
    /// touches ([`Touches`]). The default claims them all.
    fn touches(&self) -> Touches {
        Touches::AnyItem
    }
}

/// The project's existing items a transition may change (their rows, texts, decisions
/// and labels). Reading others is fine: only the one that touches an item takes what
/// was read ahead for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touches {
    /// Any of them: what the group read ahead is forgotten before the transition runs.
    AnyItem,
    /// None that existed before it (an upload writes only the item it adds).
    NoExistingItem,
    /// This one only. With `read_ahead`, the group may read it ahead for the
    /// transition (with the caller's votes in its current round: see
    /// [`InProject::item_with_tally`]).
    Item { id: Uuid, read_ahead: bool },
}

/// What the actor checks before a transition runs.
pub enum Check {
    /// The project is live and the caller may do this there (checked once, inside the
    /// change, against the permission matrix). A transition that also depends on the
    /// object (its own item or someone else's) asks for the least here and checks the
    /// rest with [`InProject::authorize`].
    Member(ProjectAction),
    /// The transition checks the project and its caller itself: creating a project (there
    /// is none yet), restoring one (it is deleted), joining one (the caller is not a
    /// member yet).
    Itself,
}

/// What a transition sees and writes through: the change it belongs to, the project
/// (locked), and who asks.
pub struct InProject<'a> {
    pub change: &'a mut Change,
    opened: &'a mut Opened,
    pub deps: &'a Deps,
    pub principal: &'a Principal,
    pub ctx: &'a RequestContext,
    /// The caller's role in the project (`None` for a super admin who is not a member).
    pub role: Option<ProjectRole>,
    /// When the transition happens (one clock reading for all its rows).
    pub now: DateTime<Utc>,
}

impl InProject<'_> {
    pub fn id(&self) -> Uuid {
        self.opened.id
    }

    /// The project, live or deleted; 404 when there is none (yet).
    pub fn project(&self) -> Result<&ProjectRow, EngineError> {
        self.opened
            .project
            .as_ref()
            .ok_or(EngineError::NotFound { what: "project" })
    }

    /// The transaction, for the store's functions.
    pub fn tx(&mut self) -> &mut Tx {
        self.change
    }

    /// A second check, once the object is known (for example "any item" rather than
    /// "my item").
    pub fn authorize(&self, action: ProjectAction) -> Result<(), EngineError> {
        authz::authorize_project(self.principal, self.role, action)
    }

    /// The audit row of this transition: who, what, on which object, with `details`
    /// (written with the change).
    pub fn audit(&mut self, action: &str, target: (&str, String), details: serde_json::Value) {
        let entry = AuditEntry {
            actor_id: Some(self.principal.user_id),
            action,
            target_type: target.0,
            target_id: Some(target.1),
            project_id: Some(self.id()),
            details,
        };
        self.change.audit(entry, self.ctx, self.now);
    }

    /// Queue a job in the change; the workers are woken once it has committed.
    pub fn enqueue(&mut self, kind: &'static str, payload: serde_json::Value) -> Uuid {
        let attempts = self.deps.config.jobs.max_attempts;
        let id = self.change.enqueue(kind, payload, attempts, self.now);
        self.wake_workers(kind);
        id
    }

    /// Queue a mail in the change (sent once it has committed).
    pub fn enqueue_mail(&mut self, mail: MailJob) -> Result<(), EngineError> {
        crate::change::enqueue_mail(self.deps, self.change, mail)?;
        self.wake_workers(crate::domain::KIND_MAIL);
        Ok(())
    }

    /// Add `delta` to the project's stored bytes (written with the change).
    pub fn add_storage_bytes(&mut self, delta: i64) {
        let id = self.id();
        self.change.add_storage_bytes(id, delta);
    }

    /// Wake the worker of `kind` once the change has committed.
    pub fn wake_workers(&mut self, kind: &str) {
        self.change.wake_workers(&self.deps.job_waker, kind);
    }

    /// Keep `response` as the answer to the request's idempotency key, if it has one.
    pub async fn record_idempotent(
        &mut self,
        claim: &Option<Claim>,
        status: i32,
        response: &impl serde::Serialize,
    ) -> Result<(), EngineError> {
        idempotency::record(self.change, claim, status, response).await
    }

    /// The live item `item_id` (of any project: the caller checks), read ahead by the
    /// group when the transition said it touches only this item, else read now.
    pub async fn live_item(&mut self, item_id: Uuid) -> Result<Option<ItemRow>, EngineError> {
        if let Some(ahead) = self.opened.ahead.remove(&item_id) {
            return Ok(ahead.map(|a| a.item));
        }
        Ok(store::items::find_live_tx(self.change, item_id).await?)
    }

    /// The live item `item_id` and the votes of its current round, counted for the
    /// caller (see [`InProject::live_item`]).
    pub async fn item_with_tally(
        &mut self,
        item_id: Uuid,
    ) -> Result<Option<(ItemRow, RoundTally)>, EngineError> {
        let me = self.principal.user_id;
        match self.opened.ahead.remove(&item_id) {
            Some(None) => return Ok(None),
            Some(Some(ahead)) if ahead.reader == me => return Ok(Some((ahead.item, ahead.tally))),
            _ => {}
        }
        Ok(store::reviews::item_with_tally(self.change, item_id, me).await?)
    }

    /// The transition changed the project's row, its members or its webhooks: the
    /// commands after it in the group read them again.
    pub fn project_changed(&mut self) {
        self.opened.stale = true;
    }

    /// The webhooks that take `event` (active ones; read once per group).
    pub async fn subscribers(
        &mut self,
        event: crate::domain::webhook::WebhookEvent,
    ) -> Result<Vec<Uuid>, EngineError> {
        if self.opened.subscribers.is_none() {
            let rows = store::webhooks::subscribers(self.change, self.opened.id).await?;
            self.opened.subscribers = Some(rows.into_iter().map(|(id, e)| (id, e.0)).collect());
        }
        Ok(self
            .opened
            .subscribers
            .iter()
            .flatten()
            .filter(|(_, events)| events.contains(&event))
            .map(|(id, _)| *id)
            .collect())
    }
}

/// `Transition::replica` for a transition that is cheap to copy: it takes the group's
/// fast path (see [`super::group`]).
#[macro_export]
macro_rules! replayable {
    () => {
        const REPLAYABLE: bool = true;

        fn replica(&self) -> Option<Self> {
            Some(self.clone())
        }
    };
}

/// A transition with its caller, waiting in the actor's group.
pub(super) struct Envelope<T: Transition> {
    pub command: T,
    pub principal: Principal,
    pub ctx: RequestContext,
    pub reply: Reply<T::Out>,
    /// What a replica of the command gave on the group's fast path.
    pub kept: Option<Result<T::Out, EngineError>>,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Any [`Envelope`], as the group holds it.
pub trait Pending: Send {
    fn run<'a>(
        self: Box<Self>,
        change: &'a mut Change,
        opened: &'a mut Opened,
        deps: &'a Deps,
    ) -> Boxed<'a, Box<dyn Held>>;

    /// Answer without running (the group could not begin).
    fn refuse(self: Box<Self>, err: EngineError);

    /// Whether a replica of the command can run first, without a savepoint.
    fn replayable(&self) -> bool;

    /// Run a replica of the command and keep its outcome; whether it succeeded.
    fn run_replica<'a>(
        &'a mut self,
        change: &'a mut Change,
        opened: &'a mut Opened,
        deps: &'a Deps,
    ) -> Boxed<'a, bool>;

    /// The kept outcome, to be answered once the group's commit says whether it stands.
    fn into_kept(self: Box<Self>) -> Box<dyn Held>;

    /// Who asks.
    fn caller(&self) -> Uuid;

    /// The items the command touches ([`Transition::touches`]).
    fn touches(&self) -> Touches;
}

/// A transition's outcome, held until the group's commit says whether it stands.
pub trait Held: Send {
    fn succeeded(&self) -> bool;
    /// Answer the caller: a success stands only if the group committed.
    fn answer(self: Box<Self>, committed: &Result<(), EngineError>);
}

struct Outcome<T: Send> {
    reply: Reply<T>,
    result: Result<T, EngineError>,
}

impl<T: Send + 'static> Held for Outcome<T> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn answer(self: Box<Self>, committed: &Result<(), EngineError>) {
        let result = match (self.result, committed) {
            (Ok(_), Err(err)) => Err(copy(err)),
            (result, _) => result,
        };
        let _ = self.reply.send(result);
    }
}

impl<T: Transition> Pending for Envelope<T> {
    fn run<'a>(
        self: Box<Self>,
        change: &'a mut Change,
        opened: &'a mut Opened,
        deps: &'a Deps,
    ) -> Boxed<'a, Box<dyn Held>> {
        Box::pin(async move {
            let Envelope {
                command,
                principal,
                ctx,
                reply,
                kept: _,
            } = *self;
            let result = execute(command, &principal, &ctx, change, opened, deps).await;
            Box::new(Outcome { reply, result }) as Box<dyn Held>
        })
    }

    fn refuse(self: Box<Self>, err: EngineError) {
        let _ = self.reply.send(Err(err));
    }

    fn replayable(&self) -> bool {
        T::REPLAYABLE
    }

    fn run_replica<'a>(
        &'a mut self,
        change: &'a mut Change,
        opened: &'a mut Opened,
        deps: &'a Deps,
    ) -> Boxed<'a, bool> {
        Box::pin(async move {
            let Some(replica) = self.command.replica() else {
                return false;
            };
            let result = execute(replica, &self.principal, &self.ctx, change, opened, deps).await;
            let succeeded = result.is_ok();
            self.kept = Some(result);
            succeeded
        })
    }

    fn into_kept(self: Box<Self>) -> Box<dyn Held> {
        let result = self
            .kept
            .unwrap_or_else(|| Err(EngineError::internal("a command answered before it ran")));
        Box::new(Outcome {
            reply: self.reply,
            result,
        })
    }

    fn caller(&self) -> Uuid {
        self.principal.user_id
    }

    fn touches(&self) -> Touches {
        self.command.touches()
    }
}

/// Check the caller and apply `command` in the group's change, timed.
async fn execute<T: Transition>(
    command: T,
    principal: &Principal,
    ctx: &RequestContext,
    change: &mut Change,
    opened: &mut Opened,
    deps: &Deps,
) -> Result<T::Out, EngineError> {
    let started = std::time::Instant::now();
    if command.touches() == Touches::AnyItem {
        // It may change what was read ahead for the commands after it.
        opened.ahead.clear();
    }
    let result = async {
        let role = match command.check(principal) {
            Check::Member(action) => opened.authorize(change, principal, action).await?,
            Check::Itself => opened.role(change, principal).await?,
        };
        let mut at = InProject {
            change,
            opened,
            deps,
            principal,
            ctx,
            role,
            now: deps.clock.now(),
        };
        command.apply(&mut at).await
    }
    .await;
    metrics::histogram!(m::PROJECT_TRANSITION_SECONDS, "transition" => name::<T>())
        .record(started.elapsed().as_secs_f64());
    result
}

/// A transition's label: its type's name without the path.
fn name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// The group's failure, for each of its callers.
pub(super) fn copy(err: &EngineError) -> EngineError {
    match err {
        EngineError::Unavailable(msg) => EngineError::Unavailable(msg.clone()),
        EngineError::NotFound { what } => EngineError::NotFound { what },
        other => EngineError::Internal(other.to_string()),
    }
}
