//! The project's own transitions: create, update, delete, restore, members.

use serde_json::json;
use uuid::Uuid;

use super::{MemberView, ProjectView};
use crate::{
    ErrorCode,
    authz::{self, Action, ProjectAction},
    context::Principal,
    domain::{GlobalRole, ProjectName, ProjectRole, ProjectSettings, webhook::WebhookEvent},
    error::EngineError,
    idempotency::Claim,
    project_actor::{Check, InProject, Transition},
    store::{self, Tx},
    webhooks::Subject,
};

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
