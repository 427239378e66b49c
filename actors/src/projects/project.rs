//! One project's actor: every transition of the project and its membership, each in
//! one transaction that takes the project's lock, re-checks the caller against the
//! permission matrix, writes the change and its audit row, then commits.

use crate::ErrorCode;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use uuid::Uuid;

use super::{MemberView, ProjectMsg, ProjectView, RegistryMsg, group::Grouped};
use crate::{
    authz::{self, Action, ProjectAction},
    change::Change,
    command::Command,
    context::{Principal, RequestContext},
    domain::{GlobalRole, ProjectName, ProjectRole, ProjectSettings},
    engine::Deps,
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
    group: Vec<Grouped>,
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
        // Uploads and decisions join the group; anything else first lets the group that
        // arrived before it commit, so commands are applied in the order they came.
        let message = match message {
            ProjectMsg::Grouped(command) => {
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
            ProjectMsg::Update {
                principal,
                name,
                description,
                settings,
                ctx,
                reply,
            } => {
                let _ = reply
                    .send(update(deps, id, &principal, &name, &description, &settings, &ctx).await);
            }
            ProjectMsg::Delete {
                principal,
                ctx,
                reply,
            } => {
                let _ = reply.send(delete(deps, id, &principal, &ctx).await);
            }
            ProjectMsg::Restore {
                principal,
                ctx,
                reply,
            } => {
                let _ = reply.send(restore(deps, id, &principal, &ctx).await);
            }
            ProjectMsg::ChangeRole {
                principal,
                user_id,
                role,
                ctx,
                reply,
            } => {
                let _ = reply.send(change_role(deps, id, &principal, user_id, role, &ctx).await);
            }
            ProjectMsg::RemoveMember {
                principal,
                user_id,
                ctx,
                reply,
            } => {
                let _ = reply.send(remove_member(deps, id, &principal, user_id, &ctx).await);
            }
            ProjectMsg::Invite {
                principal,
                idempotency,
                email,
                role,
                ctx,
                reply,
            } => {
                let result = super::invitations::invite(
                    deps,
                    id,
                    &principal,
                    &email,
                    role,
                    &ctx,
                    &idempotency,
                )
                .await;
                let _ = reply.send(result);
            }
            ProjectMsg::ResendInvitation {
                principal,
                invitation_id,
                ctx,
                reply,
            } => {
                let _ = reply.send(
                    super::invitations::resend(deps, id, &principal, invitation_id, &ctx).await,
                );
            }
            ProjectMsg::RevokeInvitation {
                principal,
                invitation_id,
                ctx,
                reply,
            } => {
                let _ = reply.send(
                    super::invitations::revoke(deps, id, &principal, invitation_id, &ctx).await,
                );
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
            ProjectMsg::ReplaceFile {
                principal,
                idempotency,
                item_id,
                row,
                ctx,
                reply,
            } => {
                let result = super::items::replace_file(
                    deps,
                    id,
                    &principal,
                    item_id,
                    &row,
                    &ctx,
                    &idempotency,
                )
                .await;
                let _ = reply.send(result);
            }
            ProjectMsg::DeleteItem {
                principal,
                item_id,
                ctx,
                reply,
            } => {
                let _ = reply.send(super::items::delete(deps, id, &principal, item_id, &ctx).await);
            }
            ProjectMsg::EditText {
                principal,
                item_id,
                text,
                ctx,
                reply,
            } => {
                let _ = reply
                    .send(super::items::edit_text(deps, id, &principal, item_id, text, &ctx).await);
            }
            ProjectMsg::Reprocess {
                principal,
                item_id,
                ctx,
                reply,
            } => {
                let _ =
                    reply.send(super::items::reprocess(deps, id, &principal, item_id, &ctx).await);
            }
            ProjectMsg::SubmitForReview {
                principal,
                item_ids,
                ctx,
                reply,
            } => {
                let _ =
                    reply.send(super::review::submit(deps, id, &principal, &item_ids, &ctx).await);
            }
            ProjectMsg::ClaimReview { principal, reply } => {
                let _ = reply.send(super::review::claim(deps, id, &principal).await);
            }
            ProjectMsg::RenewReview {
                principal,
                item_id,
                reply,
            } => {
                let _ = reply.send(super::review::renew(deps, id, &principal, item_id).await);
            }
            ProjectMsg::SkipReview {
                principal,
                item_id,
                reply,
            } => {
                let _ = reply.send(super::review::skip(deps, id, &principal, item_id).await);
            }
            ProjectMsg::Grouped(_) | ProjectMsg::CommitGroup => {} // taken by the group above
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

/// Open the transition: lock the project, load it (live only unless `deleted_ok`) and
/// check the caller's right to `action`.
pub(super) async fn begin(
    deps: &Deps,
    id: Uuid,
    principal: &Principal,
    action: ProjectAction,
) -> Result<(Tx, store::projects::ProjectRow, Option<ProjectRole>), EngineError> {
    let mut tx = deps.db.begin().await?;
    let not_found = || EngineError::NotFound { what: "project" };
    if !store::projects::lock(&mut tx, id).await? {
        return Err(not_found());
    }
    let project = store::projects::find_tx(&mut tx, id)
        .await?
        .ok_or_else(not_found)?;
    if project.deleted_at.is_some() {
        return Err(not_found());
    }
    let role = caller_role(&mut tx, id, principal).await?;
    authz::authorize_project(principal, role, action)?;
    Ok((tx, project, role))
}

/// A project locked and loaded inside a change once for all the commands of a group
/// (what [`begin`] does for one command); each caller's role is read once.
pub(super) struct Opened {
    pub project: store::projects::ProjectRow,
    roles: std::collections::HashMap<Uuid, Option<ProjectRole>>,
}

impl Opened {
    /// Lock the project for the rest of the change; it must be live.
    pub(super) async fn lock(change: &mut Change, id: Uuid) -> Result<Self, EngineError> {
        let tx: &mut Tx = change;
        let not_found = || EngineError::NotFound { what: "project" };
        if !store::projects::lock(tx, id).await? {
            return Err(not_found());
        }
        let project = store::projects::find_tx(tx, id)
            .await?
            .filter(|p| p.deleted_at.is_none())
            .ok_or_else(not_found)?;
        Ok(Self {
            project,
            roles: std::collections::HashMap::new(),
        })
    }

    /// The caller's role, after checking they may do `action` here.
    pub(super) async fn authorize(
        &mut self,
        change: &mut Change,
        principal: &Principal,
        action: ProjectAction,
    ) -> Result<Option<ProjectRole>, EngineError> {
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

async fn update(
    deps: &Deps,
    id: Uuid,
    principal: &Principal,
    name: &ProjectName,
    description: &str,
    settings: &ProjectSettings,
    ctx: &RequestContext,
) -> Result<ProjectView, EngineError> {
    let (mut tx, before, role) = begin(deps, id, principal, ProjectAction::Update).await?;
    let settings_json = serde_json::to_value(settings).map_err(EngineError::internal)?;
    let now = deps.clock.now();
    store::projects::update(
        &mut tx,
        id,
        name.as_str(),
        description,
        settings_json.clone(),
        now,
    )
    .await?;
    let mut changed = serde_json::Map::new();
    if before.name != name.as_str() {
        changed.insert(
            "name".into(),
            json!({"from": before.name, "to": name.as_str()}),
        );
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
    audit(
        &mut tx,
        deps,
        ctx,
        principal,
        id,
        "project.updated",
        ("project", id.to_string()),
        serde_json::Value::Object(changed),
    )
    .await?;
    let row = store::projects::find_tx(&mut tx, id)
        .await?
        .ok_or(EngineError::NotFound { what: "project" })?;
    tx.commit().await?;
    Ok(ProjectView::from_row(row, role))
}

async fn delete(
    deps: &Deps,
    id: Uuid,
    principal: &Principal,
    ctx: &RequestContext,
) -> Result<(), EngineError> {
    let (mut tx, _, _) = begin(deps, id, principal, ProjectAction::Delete).await?;
    if !store::projects::soft_delete(&mut tx, id, principal.user_id, deps.clock.now()).await? {
        return Err(EngineError::NotFound { what: "project" });
    }
    audit(
        &mut tx,
        deps,
        ctx,
        principal,
        id,
        "project.deleted",
        ("project", id.to_string()),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
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

async fn change_role(
    deps: &Deps,
    id: Uuid,
    principal: &Principal,
    user_id: Uuid,
    role: ProjectRole,
    ctx: &RequestContext,
) -> Result<MemberView, EngineError> {
    let (mut tx, _, _) = begin(deps, id, principal, ProjectAction::ManageMembers).await?;
    let current: ProjectRole = store::projects::member_role_tx(&mut tx, id, user_id)
        .await?
        .ok_or(EngineError::NotFound { what: "member" })?
        .parse()?;
    if current != role {
        if current == ProjectRole::Admin {
            ensure_another_admin(&mut tx, id).await?;
        }
        store::projects::set_member_role(&mut tx, id, user_id, role.as_str(), deps.clock.now())
            .await?;
        audit(
            &mut tx,
            deps,
            ctx,
            principal,
            id,
            "member.role_changed",
            ("user", user_id.to_string()),
            json!({"from": current.as_str(), "to": role.as_str()}),
        )
        .await?;
    }
    tx.commit().await?;
    let user = store::users::find_by_id(&deps.db, user_id)
        .await?
        .ok_or(EngineError::NotFound { what: "member" })?;
    let joined = store::projects::member_joined_at(&deps.db, id, user_id)
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

async fn remove_member(
    deps: &Deps,
    id: Uuid,
    principal: &Principal,
    user_id: Uuid,
    ctx: &RequestContext,
) -> Result<(), EngineError> {
    // Leaving is open to every member; removing someone else takes ManageMembers.
    let action = if user_id == principal.user_id && principal.role != GlobalRole::SuperAdmin {
        ProjectAction::Leave
    } else {
        ProjectAction::ManageMembers
    };
    let (mut tx, _, _) = begin(deps, id, principal, action).await?;
    let current: ProjectRole = store::projects::member_role_tx(&mut tx, id, user_id)
        .await?
        .ok_or(EngineError::NotFound { what: "member" })?
        .parse()?;
    if current == ProjectRole::Admin {
        ensure_another_admin(&mut tx, id).await?;
    }
    store::projects::remove_member(&mut tx, id, user_id).await?;
    let what = if user_id == principal.user_id {
        "member.left"
    } else {
        "member.removed"
    };
    audit(
        &mut tx,
        deps,
        ctx,
        principal,
        id,
        what,
        ("user", user_id.to_string()),
        json!({"role": current.as_str()}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
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
