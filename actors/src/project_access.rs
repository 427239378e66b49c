//! Who may do what in a live project, below the domains: the project as the caller sees
//! it, with their role, checked against the permission matrix. Every domain's reads and
//! transitions begin here (through `Handle::check_project`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    authz::{self, ProjectAction},
    context::Principal,
    deps::Deps,
    domain::{DataKind, GlobalRole, ProjectRole, ProjectSettings},
    error::EngineError,
    store::{
        self,
        items::ItemRow,
        projects::{ProjectRow, ProjectWithRole},
    },
};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub settings: ProjectSettings,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The caller's role; `None` for a super admin who is not a member.
    pub my_role: Option<ProjectRole>,
}

impl ProjectView {
    pub(crate) fn from_row(row: ProjectRow, my_role: Option<ProjectRole>) -> Self {
        Self {
            id: row.id,
            name: row.name,
            description: row.description,
            // Stored settings were validated on write; unknown or missing fields fall back to defaults.
            settings: serde_json::from_value(row.settings.0).unwrap_or_default(),
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            my_role,
        }
    }
}

impl From<ProjectWithRole> for ProjectView {
    fn from(row: ProjectWithRole) -> Self {
        let role = row.my_role.as_deref().and_then(|r| r.parse().ok());
        Self::from_row(row.project, role)
    }
}

/// The caller's role in a live project, after checking they may do `action` there.
pub(crate) async fn check(
    deps: &Deps,
    principal: &Principal,
    project_id: Uuid,
    action: ProjectAction,
) -> Result<ProjectView, EngineError> {
    let row = store::projects::find_live_with_role(&deps.db, project_id, principal.user_id)
        .await?
        .ok_or(EngineError::NotFound { what: "project" })?;
    let view = ProjectView::from(row);
    authz::authorize_project(principal, view.my_role, action)?;
    Ok(view)
}

/// May this caller, with `role` in the project, see every item of it, or only their own?
pub(crate) fn sees_all(principal: &Principal, role: Option<ProjectRole>) -> bool {
    principal.role == GlobalRole::SuperAdmin
        || role.is_some_and(|r| authz::project_permits(r, ProjectAction::ViewAllItems))
}

/// A live item (of `kind`, when given) that the caller may see: its project's `View`
/// checked as [`check`] does, and another's item hidden (404) from a caller who sees
/// only their own. The item and the caller's role are one read.
pub(crate) async fn visible_item(
    deps: &Deps,
    principal: &Principal,
    id: Uuid,
    kind: Option<DataKind>,
) -> Result<ItemRow, EngineError> {
    let found = store::items::find_live_with_role(&deps.db, id, principal.user_id)
        .await?
        .filter(|found| kind.is_none_or(|kind| found.item.kind == kind))
        .ok_or(EngineError::NotFound { what: "item" })?;
    let role = found.my_role.as_deref().and_then(|r| r.parse().ok());
    authz::authorize_project(principal, role, ProjectAction::View)?;
    if !sees_all(principal, role) && found.item.contributor_id != principal.user_id {
        return Err(EngineError::NotFound { what: "item" });
    }
    Ok(found.item)
}
