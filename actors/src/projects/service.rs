//! The projects part of the engine handle. Reads go to the store after a permission
//! check; transitions go to the project's actor (started on demand by the registry).

use super::ProjectService;
use crate::ErrorCode;
use uuid::Uuid;

use super::{
    AuditQuery, AuditView, InvitationView, MemberView, ProjectView,
    invitations::{AcceptInvitation, Invite, ResendInvitation, RevokeInvitation},
    project::{
        ChangeRole, CreateProject, DeleteProject, RemoveMember, RestoreProject, UpdateProject,
    },
};
use crate::{
    auth::secret_token,
    authz::{self, Action, ProjectAction},
    command::settle,
    context::{Principal, RequestContext},
    domain::{
        Email, GlobalRole, InvitationState, ProjectName, ProjectRole, ProjectSettings,
        parse_description,
    },
    error::EngineError,
    idempotency::{Begin, Idempotent, fingerprint},
    pagination::{Page, PageRequest},
    store,
};

/// A project as the client sends it (create, or full replacement on update).
#[derive(Debug, Clone)]
pub struct ProjectInput {
    pub name: String,
    pub description: Option<String>,
    /// `None` keeps the current settings (defaults on create).
    pub settings: Option<ProjectSettings>,
}

#[derive(Debug, Clone, Default)]
pub struct ProjectListQuery {
    pub role: Option<String>,
    pub search: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl ProjectService {
    /// Create a project (the caller becomes its admin). With an idempotency key, a retry
    /// gets the first answer instead of a second project.
    pub async fn create_project(
        &self,
        principal: &Principal,
        input: ProjectInput,
        idempotency_key: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Idempotent<ProjectView>, EngineError> {
        authz::authorize(principal, Action::CreateProject)?;
        let name = ProjectName::parse(&input.name)?;
        let description = parse_description(input.description.as_deref().unwrap_or(""))?;
        let settings = input.settings.unwrap_or_default().validate()?;
        let print = fingerprint(&(name.as_str(), &description, &settings))?;
        let claim = match self
            .begin_idempotent(principal, "POST /api/projects", idempotency_key, &print)
            .await?
        {
            Begin::Replay(view) => return Ok(Idempotent::Replayed(view)),
            Begin::Proceed(claim) => claim,
        };
        let id = Uuid::now_v7();
        let create = CreateProject {
            name,
            description,
            settings,
            idempotency: claim.clone(),
        };
        let asked = self
            .apply_in_project_tracked(id, principal, ctx, create)
            .await;
        let (result, maybe_written) = settle(asked);
        self.end_idempotent(&claim, maybe_written).await;
        result.map(Idempotent::Fresh)
    }

    pub async fn project(
        &self,
        principal: &Principal,
        project_id: Uuid,
    ) -> Result<ProjectView, EngineError> {
        self.check_project(principal, project_id, ProjectAction::View)
            .await
    }

    pub async fn list_projects(
        &self,
        principal: &Principal,
        query: ProjectListQuery,
    ) -> Result<Page<ProjectView>, EngineError> {
        let page = PageRequest::parse(query.limit, query.cursor.as_deref())?;
        let role = query
            .role
            .as_deref()
            .map(str::parse::<ProjectRole>)
            .transpose()?;
        let search = query
            .search
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        if search.as_ref().is_some_and(|s| s.chars().count() > 200) {
            return Err(EngineError::validation(
                ErrorCode::InvalidSearch,
                "search",
                "search is at most 200 characters",
            ));
        }
        let filter = store::projects::ProjectFilter {
            role: role.map(|r| r.as_str().to_owned()),
            search,
            after: page.after,
            limit: page.fetch_limit(),
        };
        let all = principal.role == GlobalRole::SuperAdmin && role.is_none();
        let rows = store::projects::list(&self.deps.db, principal.user_id, all, &filter).await?;
        Ok(page.page(rows, |r| r.project.id, ProjectView::from))
    }

    pub async fn update_project(
        &self,
        principal: &Principal,
        project_id: Uuid,
        input: ProjectInput,
        ctx: &RequestContext,
    ) -> Result<ProjectView, EngineError> {
        let current = self
            .check_project(principal, project_id, ProjectAction::Update)
            .await?;
        let name = ProjectName::parse(&input.name)?;
        let description = parse_description(input.description.as_deref().unwrap_or(""))?;
        let settings = input.settings.unwrap_or(current.settings).validate()?;
        let update = UpdateProject {
            name,
            description,
            settings,
        };
        self.apply_in_project(project_id, principal, ctx, update)
            .await
    }

    pub async fn delete_project(
        &self,
        principal: &Principal,
        project_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        self.check_project(principal, project_id, ProjectAction::Delete)
            .await?;
        self.apply_in_project(project_id, principal, ctx, DeleteProject)
            .await
    }

    pub async fn restore_project(
        &self,
        principal: &Principal,
        project_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<ProjectView, EngineError> {
        if authz::authorize(principal, Action::RestoreProject).is_err() {
            // A member who sees the (live) project learns only that restoring is not
            // theirs to do; anyone else, and every deleted project, gets 404.
            self.check_project(principal, project_id, ProjectAction::View)
                .await?;
            return Err(EngineError::Forbidden);
        }
        if !store::projects::exists(&self.deps.db, project_id).await? {
            return Err(EngineError::NotFound { what: "project" });
        }
        self.apply_in_project(project_id, principal, ctx, RestoreProject)
            .await
    }

    pub async fn project_members(
        &self,
        principal: &Principal,
        project_id: Uuid,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<MemberView>, EngineError> {
        self.check_project(principal, project_id, ProjectAction::ListMembers)
            .await?;
        let page = PageRequest::parse(limit, cursor)?;
        let rows = store::projects::list_members(
            &self.deps.db,
            project_id,
            page.after,
            page.fetch_limit(),
        )
        .await?;
        Ok(page.page(rows, |r| r.user_id, MemberView::from))
    }

    pub async fn change_member_role(
        &self,
        principal: &Principal,
        project_id: Uuid,
        user_id: Uuid,
        role: &str,
        ctx: &RequestContext,
    ) -> Result<MemberView, EngineError> {
        self.check_project(principal, project_id, ProjectAction::ManageMembers)
            .await?;
        let role: ProjectRole = role.parse()?;
        self.apply_in_project(project_id, principal, ctx, ChangeRole { user_id, role })
            .await
    }

    pub async fn remove_member(
        &self,
        principal: &Principal,
        project_id: Uuid,
        user_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        let action = if user_id == principal.user_id {
            ProjectAction::Leave
        } else {
            ProjectAction::ManageMembers
        };
        self.check_project(principal, project_id, action).await?;
        self.apply_in_project(project_id, principal, ctx, RemoveMember { user_id })
            .await
    }

    /// The whole audit log (super admins), or one project's (its admins).
    pub async fn audit_log(
        &self,
        principal: &Principal,
        project_id: Option<Uuid>,
        query: AuditQuery,
    ) -> Result<Page<AuditView>, EngineError> {
        match project_id {
            Some(id) => {
                self.check_project(principal, id, ProjectAction::ReadAuditLog)
                    .await?;
            }
            None => authz::authorize(principal, Action::ReadAuditLog)?,
        }
        let page = PageRequest::parse(query.limit, query.cursor.as_deref())?;
        if let (Some(from), Some(to)) = (query.from, query.to)
            && from >= to
        {
            return Err(EngineError::validation(
                ErrorCode::InvalidTimeRange,
                "from",
                "from must be before to",
            ));
        }
        let action = query.action.filter(|a| !a.is_empty());
        if action.as_ref().is_some_and(|a| a.len() > 64) {
            return Err(EngineError::validation(
                ErrorCode::InvalidAction,
                "action",
                "action is at most 64 characters",
            ));
        }
        let rows = store::audit::list(
            &self.deps.db,
            &store::audit::AuditFilter {
                project_id,
                actor_id: query.actor_id,
                action,
                from: query.from,
                to: query.to,
                after: page.after,
                limit: page.fetch_limit(),
            },
        )
        .await?;
        Ok(page.page(rows, |r| r.id, AuditView::from))
    }
}

impl ProjectService {
    pub async fn invite(
        &self,
        principal: &Principal,
        project_id: Uuid,
        email: &str,
        role: &str,
        idempotency_key: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Idempotent<InvitationView>, EngineError> {
        self.check_project(principal, project_id, ProjectAction::ManageInvitations)
            .await?;
        let email = Email::parse(email)?;
        let role: ProjectRole = role.parse()?;
        let print = fingerprint(&(project_id, email.as_str(), role))?;
        let route = "POST /api/projects/{project_id}/invite";
        let claim = match self
            .begin_idempotent(principal, route, idempotency_key, &print)
            .await?
        {
            Begin::Replay(view) => return Ok(Idempotent::Replayed(view)),
            Begin::Proceed(claim) => claim,
        };
        let invite = Invite {
            email,
            role,
            idempotency: claim.clone(),
        };
        let asked = self
            .apply_in_project_tracked(project_id, principal, ctx, invite)
            .await;
        let (result, maybe_written) = settle(asked);
        self.end_idempotent(&claim, maybe_written).await;
        result.map(Idempotent::Fresh)
    }

    pub async fn invitations(
        &self,
        principal: &Principal,
        project_id: Uuid,
        state: Option<InvitationState>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<InvitationView>, EngineError> {
        self.check_project(principal, project_id, ProjectAction::ManageInvitations)
            .await?;
        let state = state.unwrap_or(InvitationState::Pending);
        let page = PageRequest::parse(limit, cursor)?;
        let rows = store::invitations::list(
            &self.deps.db,
            project_id,
            state,
            page.after,
            page.fetch_limit(),
        )
        .await?;
        Ok(page.page(rows, |r| r.id, InvitationView::from))
    }

    pub async fn resend_invitation(
        &self,
        principal: &Principal,
        project_id: Uuid,
        invitation_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<InvitationView, EngineError> {
        self.check_project(principal, project_id, ProjectAction::ManageInvitations)
            .await?;
        let resend = ResendInvitation { invitation_id };
        self.apply_in_project(project_id, principal, ctx, resend)
            .await
    }

    pub async fn revoke_invitation(
        &self,
        principal: &Principal,
        project_id: Uuid,
        invitation_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        self.check_project(principal, project_id, ProjectAction::ManageInvitations)
            .await?;
        let revoke = RevokeInvitation { invitation_id };
        self.apply_in_project(project_id, principal, ctx, revoke)
            .await
    }

    /// Join the project an invitation names (signed in as the invited address).
    pub async fn accept_invitation(
        &self,
        principal: &Principal,
        token: &str,
        ctx: &RequestContext,
    ) -> Result<(ProjectView, ProjectRole), EngineError> {
        let not_found = || EngineError::NotFound { what: "invitation" };
        if token.is_empty() || token.len() > 128 {
            return Err(not_found());
        }
        let token_hash = secret_token::hash(token);
        let invitation = store::invitations::find_by_hash(&self.deps.db, &token_hash)
            .await?
            .ok_or_else(not_found)?;
        let accept = AcceptInvitation { token_hash };
        self.apply_in_project(invitation.project_id, principal, ctx, accept)
            .await
    }
}
