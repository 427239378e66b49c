//! One project's actor: the one writer of the project, its members, invitations and
//! items. Transitions ([`super::transition`]) join the actor's group and commit
//! together ([`super::group`]), each under the project's lock after the caller's role is
//! checked; creating, restoring and joining a project are the actor's own messages.
//! This file also holds the project's own transitions (update, delete, members).

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
    transition::{InProject, Pending, Transition},
};
use crate::{
    authz::{self, Action, ProjectAction},
    change::Change,
    command::Command,
    context::{Principal, RequestContext},
    deps::Deps,
    domain::{GlobalRole, ProjectName, ProjectRole, ProjectSettings},
    error::EngineError,
    idempotency::{self, Claim},
    store::{self, Tx, audit::AuditEntry},
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
        // Transitions join the group; anything else first lets the group that arrived
        // before it commit, so commands are applied in the order they came.
        let message = match message {
            ProjectMsg::Apply(command) => {
                state.group.push(command);
                return self.group_joined(&myself, state).await;
            }
            ProjectMsg::CommitGroup => {
                state.group_commit_sent = false;
                commit_group(state).await;
                return Ok(());
            }
            other => {
                commit_group(state).await;
                other
            }
        };
        let (deps, id) = (&state.deps, state.id);
        match message {
            ProjectMsg::Create {
                principal,
                idempotency,
                name,
                description,
                settings,
                ctx,
                reply,
            } => {
                let result = create(
                    deps,
                    id,
                    &principal,
                    &name,
                    &description,
                    &settings,
                    &ctx,
                    &idempotency,
                )
                .await;
                let _ = reply.send(result);
            }
            ProjectMsg::Restore {
                principal,
                ctx,
                reply,
            } => {
                let _ = reply.send(restore(deps, id, &principal, &ctx).await);
            }
            ProjectMsg::AcceptInvitation {
                principal,
                token_hash,
                ctx,
                reply,
            } => {
                let _ = reply.send(
                    super::invitations::accept(deps, id, &principal, &token_hash, &ctx).await,
                );
            }
            ProjectMsg::Apply(_) | ProjectMsg::CommitGroup => {} // taken by the group above
            ProjectMsg::CheckIdle => {
                if state.last_active.elapsed() >= deps.config.project_actor_idle {
                    let _ = state.registry.cast(RegistryMsg::Idle {
                        project_id: id,
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
    pub project: store::projects::ProjectRow,
    roles: std::collections::HashMap<Uuid, Option<ProjectRole>>,
    /// A transition changed the project's row or members ([`InProject::project_changed`]).
    pub(super) stale: bool,
    /// A transition deleted the project: the rest of the group finds no project.
    gone: bool,
}

impl Opened {
    /// Lock the project for the rest of the change; it must be live.
    pub(super) async fn lock(change: &mut Change, id: Uuid) -> Result<Self, EngineError> {
        let tx: &mut Tx = change;
        if !store::projects::lock(tx, id).await? {
            return Err(EngineError::NotFound { what: "project" });
        }
        let opened = Self {
            project: store::projects::find_tx(tx, id)
                .await?
                .ok_or(EngineError::NotFound { what: "project" })?,
            roles: std::collections::HashMap::new(),
            stale: false,
            gone: false,
        };
        if opened.project.deleted_at.is_some() {
            return Err(EngineError::NotFound { what: "project" });
        }
        Ok(opened)
    }

    /// Read the project and forget the roles again after a transition changed them.
    pub(super) async fn refresh(&mut self, change: &mut Change) -> Result<(), EngineError> {
        if std::mem::take(&mut self.stale) {
            match store::projects::find_tx(change, self.project.id).await? {
                Some(project) => {
                    self.gone = project.deleted_at.is_some();
                    self.project = project;
                }
                None => self.gone = true,
            }
            self.roles.clear();
        }
        Ok(())
    }

    /// The caller's role, after checking they may do `action` here.
    pub(super) async fn authorize(
        &mut self,
        change: &mut Change,
        principal: &Principal,
        action: ProjectAction,
    ) -> Result<Option<ProjectRole>, EngineError> {
        if self.gone {
            return Err(EngineError::NotFound { what: "project" });
        }
        let role = match self.roles.get(&principal.user_id) {
            Some(role) => *role,
            None => {
                let role = caller_role(change, self.project.id, principal).await?;
                self.roles.insert(principal.user_id, role);
                role
            }
        };
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

// A flat row builder: each argument is one column of the audit row.
#[allow(clippy::too_many_arguments)]
pub(super) async fn audit(
    tx: &mut Tx,
    deps: &Deps,
    ctx: &RequestContext,
    principal: &Principal,
    project: Uuid,
    action: &str,
    target: (&str, String),
    details: serde_json::Value,
) -> Result<(), EngineError> {
    let entry = AuditEntry {
        actor_id: Some(principal.user_id),
        action,
        target_type: target.0,
        target_id: Some(target.1),
        project_id: Some(project),
        details,
    };
    store::audit::record(tx, entry, ctx, deps.clock.now()).await?;
    Ok(())
}

// The message fields, passed through unchanged.
#[allow(clippy::too_many_arguments)]
async fn create(
    deps: &Deps,
    id: Uuid,
    principal: &Principal,
    name: &ProjectName,
    description: &str,
    settings: &ProjectSettings,
    ctx: &RequestContext,
    idempotency: &Option<Claim>,
) -> Result<ProjectView, EngineError> {
    authz::authorize(principal, Action::CreateProject)?;
    let now = deps.clock.now();
    let settings_json = serde_json::to_value(settings).map_err(EngineError::internal)?;
    let mut tx = deps.db.begin().await?;
    store::projects::insert(
        &mut tx,
        &store::projects::NewProject {
            id,
            name: name.as_str(),
            description,
            settings: settings_json,
            created_by: principal.user_id,
            now,
        },
    )
    .await?;
    store::projects::add_member(
        &mut tx,
        id,
        principal.user_id,
        ProjectRole::Admin.as_str(),
        now,
    )
    .await?;
    audit(
        &mut tx,
        deps,
        ctx,
        principal,
        id,
        "project.created",
        ("project", id.to_string()),
        json!({"name": name.as_str()}),
    )
    .await?;
    let row = store::projects::find_tx(&mut tx, id)
        .await?
        .ok_or(EngineError::NotFound { what: "project" })?;
    let view = ProjectView::from_row(row, Some(ProjectRole::Admin));
    idempotency::record(&mut tx, idempotency, 201, &view).await?;
    tx.commit().await?;
    Ok(view)
}

/// Replace the project's name, description and settings (project admins).
pub struct UpdateProject {
    pub name: ProjectName,
    pub description: String,
    pub settings: ProjectSettings,
}

impl Transition for UpdateProject {
    type Out = ProjectView;

    fn action(&self, _: &Principal) -> ProjectAction {
        ProjectAction::Update
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<ProjectView, EngineError> {
        let (id, now) = (at.id(), at.now);
        let before = at.project().clone();
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
        )
        .await?;
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

    fn action(&self, _: &Principal) -> ProjectAction {
        ProjectAction::Delete
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(), EngineError> {
        let (id, user, now) = (at.id(), at.principal.user_id, at.now);
        if !store::projects::soft_delete(at.tx(), id, user, now).await? {
            return Err(EngineError::NotFound { what: "project" });
        }
        at.audit("project.deleted", ("project", id.to_string()), json!({}))
            .await?;
        at.project_changed();
        Ok(())
    }
}

async fn restore(
    deps: &Deps,
    id: Uuid,
    principal: &Principal,
    ctx: &RequestContext,
) -> Result<ProjectView, EngineError> {
    // Super admins only, so no membership check: a deleted project is invisible to members.
    authz::authorize(principal, Action::RestoreProject)?;
    let not_found = || EngineError::NotFound { what: "project" };
    let mut tx = deps.db.begin().await?;
    if !store::projects::lock(&mut tx, id).await? {
        return Err(not_found());
    }
    let now = deps.clock.now();
    let retention = chrono::Duration::from_std(deps.config.project_restore_retention)
        .unwrap_or(chrono::Duration::days(30));
    let project = store::projects::find_tx(&mut tx, id)
        .await?
        .ok_or_else(not_found)?;
    if project.deleted_at.is_none() {
        return Err(EngineError::Conflict {
            code: ErrorCode::ProjectNotDeleted,
            message: "the project is not deleted".into(),
        });
    }
    if !store::projects::restore(&mut tx, id, now - retention, now).await? {
        return Err(EngineError::Conflict {
            code: ErrorCode::RestoreWindowPassed,
            message: format!(
                "the project was deleted more than {} days ago",
                retention.num_days()
            ),
        });
    }
    audit(
        &mut tx,
        deps,
        ctx,
        principal,
        id,
        "project.restored",
        ("project", id.to_string()),
        json!({}),
    )
    .await?;
    let row = store::projects::find_tx(&mut tx, id)
        .await?
        .ok_or_else(not_found)?;
    let role = caller_role(&mut tx, id, principal).await?;
    tx.commit().await?;
    Ok(ProjectView::from_row(row, role))
}

/// Give a member another role (project admins); the last admin stays admin.
pub struct ChangeRole {
    pub user_id: Uuid,
    pub role: ProjectRole,
}

impl Transition for ChangeRole {
    type Out = MemberView;

    fn action(&self, _: &Principal) -> ProjectAction {
        ProjectAction::ManageMembers
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
            )
            .await?;
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

    fn action(&self, principal: &Principal) -> ProjectAction {
        // Leaving is open to every member; removing someone else takes ManageMembers.
        if self.user_id == principal.user_id && principal.role != GlobalRole::SuperAdmin {
            ProjectAction::Leave
        } else {
            ProjectAction::ManageMembers
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
