//! The permission matrix: one place that says which role may do what (docs/ARCHITECTURE.md, rule 6).
//! Every engine operation asks [`authorize`] (platform actions) or
//! [`authorize_project`] (actions inside a project) before it reads or changes anything.
//!
//! Inside a project: a super admin may do everything; a member may do what the table
//! allows for their role (else 403); anyone else gets 404, never a hint the project exists.

use crate::{
    context::Principal,
    domain::{GlobalRole, ProjectRole},
    error::EngineError,
};

/// Platform-level actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read one's own profile.
    ReadOwnProfile,
    /// List every user on the platform.
    ListUsers,
    /// Create a project (the creator becomes its admin).
    CreateProject,
    /// Bring back a soft-deleted project.
    RestoreProject,
    /// Read the whole audit log.
    ReadAuditLog,
    /// See failed jobs and put them back in the queue.
    ManageJobs,
    /// Read the whole platform's figures (analytics).
    ReadPlatformAnalytics,
}

/// Actions inside one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectAction {
    /// See the project and its settings.
    View,
    /// Rename, describe, change settings.
    Update,
    /// Soft-delete the project.
    Delete,
    /// See who is in the project.
    ListMembers,
    /// Change someone's role, remove someone else.
    ManageMembers,
    /// Leave the project (remove oneself).
    Leave,
    /// Invite people; see, resend and revoke invitations.
    ManageInvitations,
    /// Read the project's audit log.
    ReadAuditLog,
    /// Upload documents and recordings.
    Upload,
    /// See every item of the project (not just one's own).
    ViewAllItems,
    /// Delete any item (one's own needs only `Upload`).
    DeleteAnyItem,
    /// Correct the text of any item (one's own needs only `Upload`).
    EditAnyText,
    /// Run processing again (OCR or transcription).
    Reprocess,
    /// Send anyone's item to review (one's own needs only `Upload`).
    SubmitAnyItem,
    /// Read the review queue, claim items, approve or reject others' items.
    Review,
    /// Read the project's figures and everyone's in it (analytics).
    ReadAnalytics,
    /// Export the project's items as a dataset; list, download and delete exports.
    Export,
    /// Create, change, test and delete webhooks; read their deliveries.
    ManageWebhooks,
}

/// The platform matrix: `true` when `role` may perform `action`.
pub const fn permits(role: GlobalRole, action: Action) -> bool {
    match (role, action) {
        (GlobalRole::SuperAdmin, _) => true,
        (GlobalRole::User, Action::ReadOwnProfile | Action::CreateProject) => true,
        (
            GlobalRole::User,
            Action::ListUsers
            | Action::RestoreProject
            | Action::ReadAuditLog
            | Action::ManageJobs
            | Action::ReadPlatformAnalytics,
        ) => false,
    }
}

/// The project matrix: `true` when a member with `role` may perform `action`.
pub const fn project_permits(role: ProjectRole, action: ProjectAction) -> bool {
    match (role, action) {
        (ProjectRole::Admin, _) => true,
        (_, ProjectAction::View | ProjectAction::ListMembers | ProjectAction::Leave) => true,
        (ProjectRole::Contributor, ProjectAction::Upload) => true,
        (
            ProjectRole::Reviewer,
            ProjectAction::ViewAllItems | ProjectAction::Review | ProjectAction::ReadAnalytics,
        ) => true,
        (ProjectRole::Contributor, ProjectAction::ReadAnalytics) => false,
        (ProjectRole::Contributor, ProjectAction::Review) => false,
        (ProjectRole::Reviewer, ProjectAction::Upload) => false,
        (ProjectRole::Contributor, ProjectAction::ViewAllItems) => false,
        (
            ProjectRole::Contributor | ProjectRole::Reviewer,
            ProjectAction::DeleteAnyItem
            | ProjectAction::EditAnyText
            | ProjectAction::Reprocess
            | ProjectAction::SubmitAnyItem,
        ) => false,
        (
            ProjectRole::Contributor | ProjectRole::Reviewer,
            ProjectAction::Update
            | ProjectAction::Delete
            | ProjectAction::ManageMembers
            | ProjectAction::ManageInvitations
            | ProjectAction::ReadAuditLog
            | ProjectAction::Export
            | ProjectAction::ManageWebhooks,
        ) => false,
    }
}

pub fn authorize(principal: &Principal, action: Action) -> Result<(), EngineError> {
    if permits(principal.role, action) {
        Ok(())
    } else {
        Err(EngineError::Forbidden)
    }
}

/// `membership` is the caller's role in the project, `None` when not a member.
pub fn authorize_project(
    principal: &Principal,
    membership: Option<ProjectRole>,
    action: ProjectAction,
) -> Result<(), EngineError> {
    if principal.role == GlobalRole::SuperAdmin {
        return Ok(());
    }
    match membership {
        None => Err(EngineError::NotFound { what: "project" }),
        Some(role) if project_permits(role, action) => Ok(()),
        Some(_) => Err(EngineError::Forbidden),
    }
}

/// Rows of the matrices, for documentation and tests.
pub const MATRIX: &[(Action, &str)] = &[
    (Action::ReadOwnProfile, "GET /api/auth/me"),
    (Action::ListUsers, "GET /api/admin/users"),
    (Action::CreateProject, "POST /api/projects"),
    (
        Action::RestoreProject,
        "POST /api/projects/{project_id}/restore",
    ),
    (Action::ReadAuditLog, "GET /api/admin/audit-log"),
    (
        Action::ReadPlatformAnalytics,
        "GET /api/analytics/summary (no project_id)",
    ),
];

pub const PROJECT_MATRIX: &[(ProjectAction, &str)] = &[
    (ProjectAction::View, "GET /api/projects/{project_id}"),
    (ProjectAction::Update, "PUT /api/projects/{project_id}"),
    (ProjectAction::Delete, "DELETE /api/projects/{project_id}"),
    (
        ProjectAction::ListMembers,
        "GET /api/projects/{project_id}/members",
    ),
    (
        ProjectAction::ManageMembers,
        "PATCH|DELETE /api/projects/{project_id}/members/{user_id}",
    ),
    (
        ProjectAction::Leave,
        "DELETE /api/projects/{project_id}/members/{own user_id}",
    ),
    (ProjectAction::ManageInvitations, "…/invitations"),
    (
        ProjectAction::ReadAuditLog,
        "GET /api/projects/{project_id}/audit-log",
    ),
    (
        ProjectAction::Upload,
        "POST /api/documents, POST /api/voice",
    ),
    (
        ProjectAction::ViewAllItems,
        "GET /api/documents|voice (every contributor's)",
    ),
    (
        ProjectAction::DeleteAnyItem,
        "DELETE /api/documents|voice/{id} (others' items)",
    ),
    (
        ProjectAction::SubmitAnyItem,
        "POST /api/projects/{project_id}/review (others' items)",
    ),
    (
        ProjectAction::Review,
        "GET /api/review, POST /api/review/next, PATCH /api/review/{id}",
    ),
    (
        ProjectAction::ReadAnalytics,
        "GET /api/analytics/summary?project_id=",
    ),
    (
        ProjectAction::Export,
        "POST|GET /api/projects/{project_id}/exports…",
    ),
    (
        ProjectAction::ManageWebhooks,
        "POST|GET|PATCH|DELETE /api/projects/{project_id}/webhooks…",
    ),
];

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn principal(role: GlobalRole) -> Principal {
        Principal {
            user_id: Uuid::nil(),
            email: "x@example.org".into(),
            role,
            session_id: None,
            token_scope: None,
        }
    }

    #[test]
    fn platform_matrix() {
        assert!(permits(GlobalRole::SuperAdmin, Action::ListUsers));
        assert!(!permits(GlobalRole::User, Action::ListUsers));
        assert!(permits(GlobalRole::User, Action::CreateProject));
        assert!(!permits(GlobalRole::User, Action::RestoreProject));
        for (action, _) in MATRIX {
            assert!(permits(GlobalRole::SuperAdmin, *action));
        }
    }

    #[test]
    fn project_matrix_hides_projects_from_outsiders() {
        let user = principal(GlobalRole::User);
        for (action, _) in PROJECT_MATRIX {
            assert_eq!(
                authorize_project(&user, None, *action).unwrap_err().code(),
                "not_found"
            );
            assert!(authorize_project(&principal(GlobalRole::SuperAdmin), None, *action).is_ok());
            assert!(authorize_project(&user, Some(ProjectRole::Admin), *action).is_ok());
        }
        for role in [ProjectRole::Contributor, ProjectRole::Reviewer] {
            assert!(authorize_project(&user, Some(role), ProjectAction::View).is_ok());
            assert_eq!(
                authorize_project(&user, Some(role), ProjectAction::Update)
                    .unwrap_err()
                    .code(),
                "forbidden"
            );
        }
    }
}
