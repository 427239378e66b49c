//! One project's actor: the one writer of the project, its members, invitations and
//! items. Transitions ([`super::transition`]) join the actor's group and commit
//! together ([`super::group`]), each under the project's lock after the caller's role is
//! checked (or, for creating, restoring and joining a project, by the transition itself).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use uuid::Uuid;

use super::{
    ProjectMsg, RegistryMsg,
    group::{Follow, Prepared},
    transition::Pending,
};
use crate::{
    authz::{self, ProjectAction},
    change::Change,
    command::Command,
    context::Principal,
    deps::Deps,
    domain::ProjectRole,
    error::EngineError,
    store::{self, Tx},
};

pub struct ProjectActor;

pub struct ProjectArgs {
    pub deps: Arc<Deps>,
    pub project_id: Uuid,
    pub registry: ActorRef<RegistryMsg>,
}

pub struct ProjectState {
    deps: Arc<Deps>,
    id: Uuid,
    registry: ActorRef<RegistryMsg>,
    last_active: Instant,
    /// Commands waiting to be committed together ([`super::group`]).
    group: Vec<Box<dyn Pending>>,
    /// A `CommitGroup` is in the mailbox.
    group_commit_sent: bool,
    /// Groups left to take the careful path (savepoints) after a fast one started over.
    careful_groups: u32,
    /// The last group, committing in a task of its own while the actor goes on.
    committing: Option<Committing>,
    /// The next group's change, begun behind that commit.
    opening: Option<Opening>,
    /// Who called in the last groups, the latest first, at most [`RECENT_CALLERS`]:
    /// their roles are read with the lock of a group begun behind a commit, before its
    /// callers are all known.
    recent_callers: Vec<Uuid>,
    /// The number of the last task started for a commit or an opening: the message
    /// that says one has ended names it, so a late one is told from the current one's.
    tasks_started: u64,
}

/// A group's commit, running beside the actor ([`super::group`]).
struct Committing {
    number: u64,
    task: tokio::task::JoinHandle<()>,
    /// The next group may open before this commit ends.
    follow: Option<Follow>,
}

impl Committing {
    /// Wait for the commit (and its answers) to end.
    async fn end(self) {
        if let Err(err) = self.task.await {
            // Its callers' replies were dropped with it: each hears the group failed.
            tracing::error!(error = %err, "a project group's commit task failed");
        }
    }
}

impl Actor for ProjectActor {
    type Msg = Command<ProjectMsg>;
    type State = ProjectState;
    type Arguments = ProjectArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let idle = args.deps.config.project_actor_idle;
        myself.send_interval((idle / 2).max(Duration::from_millis(50)), || {
            Command::internal(ProjectMsg::CheckIdle)
        });
        Ok(ProjectState {
            deps: args.deps,
            id: args.project_id,
            registry: args.registry,
            last_active: Instant::now(),
            group: Vec::new(),
            group_commit_sent: false,
            careful_groups: 0,
            committing: None,
            opening: None,
            recent_callers: Vec::new(),
            tasks_started: 0,
        })
    }

    /// Stopped (idle, or the tree shutting down) with transitions begun but not yet
    /// committed: they commit now, so each caller gets its outcome.
    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        commit_group(&myself, state).await;
        if let Some(begun) = state.opening.take() {
            // Begun for a group that has gone already (it cannot be left holding the lock).
            if let Some((change, _)) = begun.end().await
                && let Err(err) = change.rollback().await
            {
                tracing::warn!(error = %err, "rolling back a change begun for no group");
            }
        }
        if let Some(committing) = state.committing.take() {
            committing.end().await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A command whose caller has stopped waiting is dropped before it begins.
        let Some(message) = message.open() else {
            return Ok(());
        };
        if !matches!(message, ProjectMsg::CheckIdle) {
            state.last_active = Instant::now();
        }
        // Transitions join the group, committed when the actor has taken every message
        // already waiting and the group before has committed (or the group is full).
        match message {
            ProjectMsg::Apply(command) => {
                state.group.push(command);
                group_joined(&myself, state).await;
            }
            ProjectMsg::CommitGroup => {
                state.group_commit_sent = false;
                // While a commit runs, its end (or the next group's lock) starts the group.
                if state.committing.is_none() && state.opening.is_none() {
                    commit_group(&myself, state).await;
                }
            }
            ProjectMsg::Committed(number) => {
                // A commit collected already (a group that began behind it did) says
                // nothing more.
                if state.committing.as_ref().is_none_or(|c| c.number != number) {
                    return Ok(());
                }
                if let Some(committing) = state.committing.take() {
                    committing.end().await; // it has ended: this only collects it
                }
                // A group begun behind the commit goes when its lock is taken (`Opened`).
                if state.opening.is_none() {
                    commit_group(&myself, state).await;
                }
            }
            ProjectMsg::Opened(number) => {
                if state.opening.as_ref().is_some_and(|o| o.number == number) {
                    commit_group(&myself, state).await;
                }
            }
            ProjectMsg::CheckIdle => {
                if state.last_active.elapsed() >= state.deps.config.project_actor_idle {
                    let _ = state.registry.cast(RegistryMsg::Idle {
                        project_id: state.id,
                        actor: myself.get_id(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A command joined the group. When the group is full it commits now. While the group
/// before commits, the first command to join begins this group's change behind it
/// ([`super::group::begin_behind`]) when that group may be followed; the end of the
/// commit, or that change's lock, starts the group. Otherwise a `CommitGroup` follows
/// the messages already waiting (they may join too).
async fn group_joined(myself: &ActorRef<Command<ProjectMsg>>, state: &mut ProjectState) {
    if state.group.len() >= state.deps.config.project_group_max {
        commit_group(myself, state).await;
    } else if let Some(committing) = &state.committing {
        if state.opening.is_none()
            && let Some(after) = committing.follow
        {
            state.opening = Some(Opening::begin(myself, state, after));
        }
    } else if !state.group_commit_sent {
        state.group_commit_sent = true;
        if myself
            .send_message(Command::internal(ProjectMsg::CommitGroup))
            .is_err()
        {
            // The actor is stopping: commit what it holds now.
            state.group_commit_sent = false;
            commit_group(myself, state).await;
        }
    }
}

/// Apply the waiting group and hand its commit to a task of its own, which tells the
/// actor when it has ended ([`ProjectMsg::Committed`]); the next group gathers
/// meanwhile ([`super::group`]).
async fn commit_group(myself: &ActorRef<Command<ProjectMsg>>, state: &mut ProjectState) {
    if state.group.is_empty() {
        return;
    }
    let turn = Instant::now();
    let group = std::mem::take(&mut state.group);
    let fast = state.careful_groups == 0;
    state.careful_groups = state.careful_groups.saturating_sub(1);
    // The change begun behind the last commit, if any: its lock says that commit ended.
    let begun = match state.opening.take() {
        Some(opening) => opening.end().await,
        None => None,
    };
    if begun.is_none()
        && let Some(committing) = state.committing.take()
    {
        committing.end().await;
    }
    let prepared: Prepared = super::group::prepare(&state.deps, state.id, group, fast, begun).await;
    if prepared.restarted {
        state.careful_groups = super::group::CAREFUL_AFTER_RESTART;
    }
    // Ended already (this group's lock waited for it): collected before the next one.
    if let Some(committing) = state.committing.take() {
        committing.end().await;
    }
    let follow = prepared.follow;
    remember_callers(&mut state.recent_callers, &prepared.callers);
    state.tasks_started += 1;
    let number = state.tasks_started;
    let ended = TellOnEnd::new(myself, ProjectMsg::Committed(number));
    state.committing = Some(Committing {
        number,
        task: tokio::spawn(async move {
            let _ended = ended;
            prepared.finish().await;
        }),
        follow,
    });
    metrics::histogram!(crate::metrics::PROJECT_ACTOR_TURN_SECONDS)
        .record(turn.elapsed().as_secs_f64());
}

/// How many recent callers a group begun behind a commit reads the roles of with its
/// lock. Reading a few more than the group needs costs the lock nothing worth
/// measuring (one index lookup each); a caller not among them costs a read of its own.
const RECENT_CALLERS: usize = 32;

/// Put `callers` first among the `recent` ones, each once, keeping at most
/// [`RECENT_CALLERS`].
fn remember_callers(recent: &mut Vec<Uuid>, callers: &[Uuid]) {
    recent.retain(|user| !callers.contains(user));
    let mut latest: Vec<Uuid> = callers.iter().take(RECENT_CALLERS).copied().collect();
    latest.extend(recent.iter().take(RECENT_CALLERS - latest.len()));
    *recent = latest;
}

/// Tells the actor that a task of its own has ended, when dropped: at the task's end,
/// also when it panics (a message that never came would leave the actor's next group
/// waiting for it). A stopped actor is told nothing.
struct TellOnEnd {
    actor: ActorRef<Command<ProjectMsg>>,
    message: Option<ProjectMsg>,
}

impl TellOnEnd {
    fn new(actor: &ActorRef<Command<ProjectMsg>>, message: ProjectMsg) -> Self {
        Self {
            actor: actor.clone(),
            message: Some(message),
        }
    }
}

impl Drop for TellOnEnd {
    fn drop(&mut self) {
        if let Some(message) = self.message.take() {
            let _ = self.actor.send_message(Command::internal(message));
        }
    }
}

/// The next group's change, begun and locking the project in a task of its own while
/// the group before commits ([`super::group::begin_behind`]).
struct Opening {
    number: u64,
    task: tokio::task::JoinHandle<Result<(Change, Opened), EngineError>>,
}

impl Opening {
    /// Begin behind the group that left `after`, reading the roles of the recent
    /// callers and of this group's so far with the lock; tell the actor once the lock
    /// is taken ([`ProjectMsg::Opened`]).
    fn begin(
        myself: &ActorRef<Command<ProjectMsg>>,
        state: &mut ProjectState,
        after: Follow,
    ) -> Self {
        let mut callers: Vec<Uuid> = state.group.iter().map(|c| c.caller()).collect();
        callers.extend(&state.recent_callers);
        callers.sort_unstable();
        callers.dedup();
        let deps = Arc::clone(&state.deps);
        let id = state.id;
        state.tasks_started += 1;
        let number = state.tasks_started;
        let ended = TellOnEnd::new(myself, ProjectMsg::Opened(number));
        let task = tokio::spawn(async move {
            let _ended = ended;
            super::group::begin_behind(&deps, id, &callers, after).await
        });
        Self { number, task }
    }

    /// The begun change; `None` when it could not begin (the group then begins its own).
    async fn end(self) -> Option<(Change, Opened)> {
        match self.task.await {
            Ok(Ok(begun)) => Some(begun),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "beginning a group behind a commit");
                None
            }
            Err(err) => {
                tracing::error!(error = %err, "a task beginning a group failed");
                None
            }
        }
    }
}

/// A project locked and loaded inside a change once for all the transitions of a
/// group; each caller's role is read once.
pub struct Opened {
    pub(super) id: Uuid,
    /// `None` while the project does not exist (before it is created).
    pub(super) project: Option<store::projects::ProjectRow>,
    roles: std::collections::HashMap<Uuid, Option<ProjectRole>>,
    /// A transition changed the project's row, members or webhooks
    /// ([`InProject::project_changed`]).
    pub(super) stale: bool,
    /// The project's active webhooks and their events, read once per group by the first
    /// transition that announces something. Safe to keep for the group: every change of
    /// a webhook is a transition of this project, under its lock, which marks it stale.
    pub(super) subscribers: Option<Vec<(Uuid, Vec<crate::domain::webhook::WebhookEvent>)>>,
    /// The project's lock count after this group's lock (PostgreSQL).
    locks: Option<i64>,
    /// A transition of this group changed the project's row, members or webhooks.
    changed: bool,
    /// Items read ahead for the one command of the group that touches each
    /// ([`super::Touches::Item`]); `None` when it is deleted or unknown. A command takes
    /// its own; one that may touch any item makes the group forget them all.
    pub(super) ahead: std::collections::HashMap<Uuid, Option<Ahead>>,
}

/// An item read ahead, with the votes of its current round counted for `reader`.
pub(super) struct Ahead {
    pub reader: Uuid,
    pub item: store::items::ItemRow,
    pub tally: store::reviews::RoundTally,
}

impl Opened {
    /// Lock the project for the rest of the change (when it exists) and load it, with
    /// the roles of `callers` and its webhooks where that costs no round trip of its own
    /// ([`store::projects::lock_with`]). `after`: the group before, which may still be
    /// committing.
    pub(super) async fn lock(
        change: &mut Change,
        id: Uuid,
        callers: &[Uuid],
        after: Option<Follow>,
    ) -> Result<Self, EngineError> {
        let left_alone = after.map(|a| a.locks);
        let locked = store::projects::lock_with(change, id, callers, left_alone).await?;
        let mut roles = std::collections::HashMap::new();
        if let Some(found) = locked.roles {
            for user in callers {
                let role = found
                    .iter()
                    .find(|(u, _)| u == user)
                    .and_then(|(_, r)| r.parse().ok());
                roles.insert(*user, role);
            }
        }
        Ok(Self {
            id,
            project: locked.project,
            roles,
            stale: false,
            subscribers: locked.subscribers,
            locks: locked.locks,
            changed: false,
            ahead: std::collections::HashMap::new(),
        })
    }

    /// Whether the next group may open before this one commits ([`Follow`]): the
    /// project existed when locked (PostgreSQL), and nothing changed it, its members or
    /// its webhooks.
    pub(super) fn followable(&self) -> Option<Follow> {
        if self.changed || self.stale || self.project.is_none() {
            return None;
        }
        self.locks.map(|locks| Follow { locks })
    }

    /// Read the `(item, reader)` pairs ahead, in one statement.
    pub(super) async fn read_ahead(
        &mut self,
        change: &mut Change,
        wanted: &[(Uuid, Uuid)],
    ) -> Result<(), EngineError> {
        let found = store::reviews::items_with_tallies(change, wanted).await?;
        // Every wanted item has its entry: `None` says it is gone, with no read of its own.
        self.ahead = wanted.iter().map(|(item, _)| (*item, None)).collect();
        self.ahead
            .extend(found.into_iter().map(|(reader, item, tally)| {
                let ahead = Ahead {
                    reader,
                    item,
                    tally,
                };
                (ahead.item.id, Some(ahead))
            }));
        Ok(())
    }

    /// Read the project and forget the roles again after a transition changed them. A
    /// project created in this change is locked from now on.
    pub(super) async fn refresh(&mut self, change: &mut Change) -> Result<(), EngineError> {
        if std::mem::take(&mut self.stale) {
            self.changed = true;
            // Locks a project created in this change, reads a changed one again.
            self.project = store::projects::lock(change, self.id).await?;
            self.roles.clear();
            self.subscribers = None;
            self.ahead.clear();
        }
        Ok(())
    }

    /// Read the roles of a group's callers at once (one read instead of one each).
    pub(super) async fn read_roles(
        &mut self,
        change: &mut Change,
        users: &[Uuid],
    ) -> Result<(), EngineError> {
        let mut wanted: Vec<Uuid> = users
            .iter()
            .filter(|u| !self.roles.contains_key(u))
            .copied()
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.len() < 2 {
            return Ok(()); // one caller costs the same read either way
        }
        let found = store::projects::member_roles_tx(change, self.id, &wanted).await?;
        for user in wanted {
            let role = found
                .iter()
                .find(|(u, _)| *u == user)
                .and_then(|(_, r)| r.parse().ok());
            self.roles.insert(user, role);
        }
        Ok(())
    }

    /// The caller's role (unchecked).
    pub(super) async fn role(
        &mut self,
        change: &mut Change,
        principal: &Principal,
    ) -> Result<Option<ProjectRole>, EngineError> {
        if let Some(role) = self.roles.get(&principal.user_id) {
            return Ok(*role);
        }
        let role = caller_role(change, self.id, principal).await?;
        self.roles.insert(principal.user_id, role);
        Ok(role)
    }

    /// The caller's role in the live project, after checking they may do `action` here.
    pub(super) async fn authorize(
        &mut self,
        change: &mut Change,
        principal: &Principal,
        action: ProjectAction,
    ) -> Result<Option<ProjectRole>, EngineError> {
        if self.project.as_ref().is_none_or(|p| p.deleted_at.is_some()) {
            return Err(EngineError::NotFound { what: "project" });
        }
        let role = self.role(change, principal).await?;
        authz::authorize_project(principal, role, action)?;
        Ok(role)
    }
}

async fn caller_role(
    tx: &mut Tx,
    project: Uuid,
    principal: &Principal,
) -> Result<Option<ProjectRole>, EngineError> {
    Ok(
        store::projects::member_role_tx(tx, project, principal.user_id)
            .await?
            .and_then(|r| r.parse().ok()),
    )
}

#[cfg(test)]
mod tests {
    use super::{RECENT_CALLERS, remember_callers};
    use uuid::Uuid;

    #[test]
    fn recent_callers_keep_the_latest_first_each_once_and_at_most_the_bound() {
        let users: Vec<Uuid> = (0..40).map(|_| Uuid::now_v7()).collect();
        let mut recent = Vec::new();
        remember_callers(&mut recent, &users[0..3]);
        assert_eq!(recent, users[0..3]);
        // A caller seen again moves to the front, once.
        remember_callers(&mut recent, &[users[2], users[5]]);
        assert_eq!(recent, vec![users[2], users[5], users[0], users[1]]);
        // The oldest go beyond the bound.
        remember_callers(&mut recent, &users[6..40]);
        assert_eq!(recent.len(), RECENT_CALLERS);
        assert_eq!(recent, users[6..6 + RECENT_CALLERS]);
    }
}
