//! One project's actor: the one writer of the project, its members, invitations and
//! items. Transitions ([`super::transition`]) join the actor's group and commit
//! together ([`super::group`]), each under the project's lock after the caller's role is
//! checked (or, for creating, restoring and joining a project, by the transition itself).
//! This file also holds the project's own transitions (create, update, delete, restore,
//! members).

use crate::ErrorCode;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use uuid::Uuid;

use super::{
    MemberView, ProjectMsg, ProjectView, RegistryMsg,
    transition::{Check, InProject, Pending, Transition},
};
use crate::{
    authz::{self, Action, ProjectAction},
    change::Change,
    command::Command,
    context::Principal,
    deps::Deps,
    domain::{GlobalRole, ProjectName, ProjectRole, ProjectSettings, webhook::WebhookEvent},
    error::EngineError,
    idempotency::Claim,
    store::{self, Tx},
    webhooks::Subject,
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
    if !state.group.is_empty() {
        let group = std::mem::take(&mut state.group);
        super::group::commit(&state.deps, state.id, group).await;
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
}

impl Opened {
    /// Lock the project for the rest of the change (when it exists) and load it.
    pub(super) async fn lock(change: &mut Change, id: Uuid) -> Result<Self, EngineError> {
        let project = store::projects::lock(change, id).await?;
        Ok(Self {
            id,
            project,
            roles: std::collections::HashMap::new(),
            stale: false,
            subscribers: None,
        })
    }

    /// Read the project and forget the roles again after a transition changed them. A
    /// project created in this change is locked from now on.
    pub(super) async fn refresh(&mut self, change: &mut Change) -> Result<(), EngineError> {
        if std::mem::take(&mut self.stale) {
            // Locks a project created in this change, reads a changed one again.
            self.project = store::projects::lock(change, self.id).await?;
            self.roles.clear();
            self.subscribers = None;
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

pub(super) async fn caller_role(
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

/// Create this (new) project with the caller as its admin.
pub struct CreateProject {
    pub name: ProjectName,
    pub description: String,
    pub settings: ProjectSettings,
    pub idempotency: Option<Claim>,
}

impl Transition for CreateProject {
    type Out = ProjectView;

    fn check(&self, _: &Principal) -> Check {
        Check::Itself
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<ProjectView, EngineError> {
        authz::authorize(at.principal, Action::CreateProject)?;
        let (id, now, user) = (at.id(), at.now, at.principal.user_id);
        let settings = serde_json::to_value(&self.settings).map_err(EngineError::internal)?;
        let new = store::projects::NewProject {
            id,
            name: self.name.as_str(),
            description: &self.description,
            settings,
            created_by: user,
            now,
        };
        store::projects::insert(at.tx(), &new).await?;
        let admin = ProjectRole::Admin.as_str();
        store::projects::add_member(at.tx(), id, user, admin, now).await?;
        at.audit(
            "project.created",
            ("project", id.to_string()),
            json!({"name": self.name.as_str()}),
        );
        at.project_changed();
        let row = store::projects::find_tx(at.tx(), id)
            .await?
            .ok_or(EngineError::NotFound { what: "project" })?;
        let view = ProjectView::from_row(row, Some(ProjectRole::Admin));
        at.record_idempotent(&self.idempotency, 201, &view).await?;
        Ok(view)
    }
}

/// Replace the project's name, description and settings (project admins).
pub struct UpdateProject {
    pub name: ProjectName,
    pub description: String,
    pub settings: ProjectSettings,
}

impl Transition for UpdateProject {
    type Out = ProjectView;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::Update)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<ProjectView, EngineError> {
        let (id, now) = (at.id(), at.now);
        let before = at.project()?.clone();
        let settings_json = serde_json::to_value(&self.settings).map_err(EngineError::internal)?;
        let (name, description) = (self.name.as_str(), self.description.as_str());
        store::projects::update(at.tx(), id, name, description, settings_json.clone(), now).await?;
        let mut changed = serde_json::Map::new();
        if before.name != name {
            changed.insert("name".into(), json!({"from": before.name, "to": name}));
        }
        if before.description != description {
            changed.insert("description".into(), json!("changed"));
        }
        if before.settings.0 != settings_json {
            changed.insert(
                "settings".into(),
                json!({"from": before.settings.0, "to": settings_json}),
            );
        }
        at.audit(
            "project.updated",
            ("project", id.to_string()),
            serde_json::Value::Object(changed),
        );
        at.project_changed();
        let row = store::projects::find_tx(at.tx(), id)
            .await?
            .ok_or(EngineError::NotFound { what: "project" })?;
        Ok(ProjectView::from_row(row, at.role))
    }
}

/// Soft-delete the project (project admins); a super admin can restore it for a while.
pub struct DeleteProject;

impl Transition for DeleteProject {
    type Out = ();

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::Delete)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(), EngineError> {
        let (id, user, now) = (at.id(), at.principal.user_id, at.now);
        if !store::projects::soft_delete(at.tx(), id, user, now).await? {
            return Err(EngineError::NotFound { what: "project" });
        }
        at.audit("project.deleted", ("project", id.to_string()), json!({}));
        at.project_changed();
        Ok(())
    }
}

/// Bring a deleted project back (super admins), within the retention window.
pub struct RestoreProject;

impl Transition for RestoreProject {
    type Out = ProjectView;

    fn check(&self, _: &Principal) -> Check {
        // Super admins only, so no membership check: a deleted project is invisible to
        // its members.
        Check::Itself
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<ProjectView, EngineError> {
        authz::authorize(at.principal, Action::RestoreProject)?;
        let (id, now) = (at.id(), at.now);
        if at.project()?.deleted_at.is_none() {
            return Err(EngineError::Conflict {
                code: ErrorCode::ProjectNotDeleted,
                message: "the project is not deleted".into(),
            });
        }
        let retention = chrono::Duration::from_std(at.deps.config.project_restore_retention)
            .unwrap_or(chrono::Duration::days(30));
        if !store::projects::restore(at.tx(), id, now - retention, now).await? {
            return Err(EngineError::Conflict {
                code: ErrorCode::RestoreWindowPassed,
                message: format!(
                    "the project was deleted more than {} days ago",
                    retention.num_days()
                ),
            });
        }
        at.audit("project.restored", ("project", id.to_string()), json!({}));
        at.project_changed();
        let row = store::projects::find_tx(at.tx(), id)
            .await?
            .ok_or(EngineError::NotFound { what: "project" })?;
        Ok(ProjectView::from_row(row, at.role))
    }
}

/// Give a member another role (project admins); the last admin stays admin.
pub struct ChangeRole {
    pub user_id: Uuid,
    pub role: ProjectRole,
}

impl Transition for ChangeRole {
    type Out = MemberView;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::ManageMembers)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<MemberView, EngineError> {
        let (id, user_id, role, now) = (at.id(), self.user_id, self.role, at.now);
        let current = member_role(at.tx(), id, user_id).await?;
        if current != role {
            if current == ProjectRole::Admin {
                ensure_another_admin(at.tx(), id).await?;
            }
            store::projects::set_member_role(at.tx(), id, user_id, role.as_str(), now).await?;
            at.audit(
                "member.role_changed",
                ("user", user_id.to_string()),
                json!({"from": current.as_str(), "to": role.as_str()}),
            );
            at.project_changed();
        }
        let user = store::users::find_by_id_tx(at.tx(), user_id)
            .await?
            .ok_or(EngineError::NotFound { what: "member" })?;
        let joined = store::projects::member_joined_at_tx(at.tx(), id, user_id)
            .await?
            .unwrap_or(user.created_at);
        Ok(MemberView {
            user_id,
            email: user.email,
            full_name: user.full_name,
            role,
            joined_at: joined,
        })
    }
}

/// Remove a member (project admins), or leave (any member); the last admin stays.
pub struct RemoveMember {
    pub user_id: Uuid,
}

impl Transition for RemoveMember {
    type Out = ();

    fn check(&self, principal: &Principal) -> Check {
        // Leaving is open to every member; removing someone else takes ManageMembers.
        if self.user_id == principal.user_id && principal.role != GlobalRole::SuperAdmin {
            Check::Member(ProjectAction::Leave)
        } else {
            Check::Member(ProjectAction::ManageMembers)
        }
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(), EngineError> {
        let (id, user_id) = (at.id(), self.user_id);
        let current = member_role(at.tx(), id, user_id).await?;
        if current == ProjectRole::Admin {
            ensure_another_admin(at.tx(), id).await?;
        }
        store::projects::remove_member(at.tx(), id, user_id).await?;
        let what = if user_id == at.principal.user_id {
            "member.left"
        } else {
            "member.removed"
        };
        at.audit(
            what,
            ("user", user_id.to_string()),
            json!({"role": current.as_str()}),
        );
        at.announce(
            WebhookEvent::MemberRemoved,
            Subject::Member {
                user_id,
                role: current.as_str().into(),
            },
        )
        .await?;
        at.project_changed();
        Ok(())
    }
}

async fn member_role(
    tx: &mut Tx,
    project: Uuid,
    user_id: Uuid,
) -> Result<ProjectRole, EngineError> {
    store::projects::member_role_tx(tx, project, user_id)
        .await?
        .ok_or(EngineError::NotFound { what: "member" })?
        .parse()
}

/// A project always keeps at least one admin. Runs under the project lock, so two
/// concurrent demotions cannot both see "another admin" and leave none.
async fn ensure_another_admin(tx: &mut Tx, project: Uuid) -> Result<(), EngineError> {
    if store::projects::count_admins(tx, project).await? <= 1 {
        return Err(EngineError::Conflict {
            code: ErrorCode::LastAdmin,
            message: "a project must keep at least one admin; make someone else admin first".into(),
        });
    }
    Ok(())
}
