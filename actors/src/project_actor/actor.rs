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

use super::{ProjectMsg, RegistryMsg, transition::Pending};
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
        })
    }

    /// Stopped (idle, or the tree shutting down) with transitions begun but not yet
    /// committed: they commit now, so each caller gets its outcome.
    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        commit_group(state).await;
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
        // already waiting (or the group is full).
        match message {
            ProjectMsg::Apply(command) => {
                state.group.push(command);
                self.group_joined(&myself, state).await?;
            }
            ProjectMsg::CommitGroup => {
                state.group_commit_sent = false;
                commit_group(state).await;
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

impl ProjectActor {
    /// A command joined the group: commit now when the group is full, else make sure a
    /// `CommitGroup` follows the messages already waiting (they may join it too).
    async fn group_joined(
        &self,
        myself: &ActorRef<Command<ProjectMsg>>,
        state: &mut ProjectState,
    ) -> Result<(), ActorProcessingErr> {
        if state.group.len() >= state.deps.config.project_group_max {
            commit_group(state).await;
        } else if !state.group_commit_sent {
            state.group_commit_sent = true;
            if myself
                .send_message(Command::internal(ProjectMsg::CommitGroup))
                .is_err()
            {
                // The actor is stopping: commit what it holds now.
                state.group_commit_sent = false;
                commit_group(state).await;
            }
        }
        Ok(())
    }
}

async fn commit_group(state: &mut ProjectState) {
    if state.group.is_empty() {
        return;
    }
    let group = std::mem::take(&mut state.group);
    let fast = state.careful_groups == 0;
    state.careful_groups = state.careful_groups.saturating_sub(1);
    let committed = super::group::commit(&state.deps, state.id, group, fast).await;
    if committed.restarted {
        state.careful_groups = super::group::CAREFUL_AFTER_RESTART;
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
    /// ([`store::projects::lock_with`]).
    pub(super) async fn lock(
        change: &mut Change,
        id: Uuid,
        callers: &[Uuid],
    ) -> Result<Self, EngineError> {
        let locked = store::projects::lock_with(change, id, callers).await?;
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
            ahead: std::collections::HashMap::new(),
        })
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
