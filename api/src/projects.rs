//! `/api/projects`: projects, members and the project audit log.

use alta_actors::{
    Engine,
    context::RequestContext,
    domain::{DataKind, ProjectSettings},
    idempotency::Idempotent,
    projects::{
        AuditQuery, InvitationView, MemberView, ProjectInput, ProjectListQuery, ProjectView,
    },
};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
};
use uuid::Uuid;

use crate::{
    audit::{AuditPage, AuditPageOk},
    enums::{InvitationState, ProjectRole, Wire},
    json_body::JsonBody,
    problem::ApiResult,
    security::BearerAuth,
    tags::ApiTags,
};

pub struct ProjectsApi;

/// A kind of data a project collects.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum DataKindDto {
    Document,
    Audio,
}

/// Settings that uploads and review read.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct ProjectSettingsDto {
    /// Kinds of data accepted (at least one).
    #[oai(validator(min_items = 1))]
    pub accepted_kinds: Vec<DataKindDto>,
    /// Largest document upload in bytes (default 50 MiB, at most 1 GiB).
    #[oai(validator(minimum(value = "1"), maximum(value = "1073741824")))]
    pub max_document_bytes: u64,
    /// Largest audio upload in bytes (default 1 GiB, at most 8 GiB).
    #[oai(validator(minimum(value = "1"), maximum(value = "8589934592")))]
    pub max_audio_bytes: u64,
    /// Decisions needed to approve or reject an item (1–10, default 1).
    #[oai(validator(minimum(value = "1"), maximum(value = "10")))]
    pub reviews_required: u32,
    /// Reason codes reviewers may give when rejecting: 1 to 50 codes of 1 to 64
    /// lowercase letters, digits and underscores.
    #[oai(validator(
        min_items = 1,
        max_items = 50,
        min_length = 1,
        max_length = 64,
        pattern = "^[a-z0-9_]+$"
    ))]
    pub reject_reasons: Vec<String>,
    /// Rework rounds before a rejection is final (0–20, default 3).
    #[oai(validator(maximum(value = "20")))]
    pub max_rework_rounds: u32,
}

impl From<ProjectSettings> for ProjectSettingsDto {
    fn from(s: ProjectSettings) -> Self {
        Self {
            accepted_kinds: s
                .accepted_kinds
                .into_iter()
                .map(|k| match k {
                    DataKind::Document => DataKindDto::Document,
                    DataKind::Audio => DataKindDto::Audio,
                })
                .collect(),
            max_document_bytes: s.max_document_bytes,
            max_audio_bytes: s.max_audio_bytes,
            reviews_required: s.reviews_required,
            reject_reasons: s.reject_reasons,
            max_rework_rounds: s.max_rework_rounds,
        }
    }
}

impl From<DataKindDto> for DataKind {
    fn from(kind: DataKindDto) -> Self {
        match kind {
            DataKindDto::Document => Self::Document,
            DataKindDto::Audio => Self::Audio,
        }
    }
}

impl From<ProjectSettingsDto> for ProjectSettings {
    fn from(s: ProjectSettingsDto) -> Self {
        Self {
            accepted_kinds: s.accepted_kinds.into_iter().map(DataKind::from).collect(),
            max_document_bytes: s.max_document_bytes,
            max_audio_bytes: s.max_audio_bytes,
            reviews_required: s.reviews_required,
            reject_reasons: s.reject_reasons,
            max_rework_rounds: s.max_rework_rounds,
        }
    }
}

/// A project to create, or the full new state of one (`PUT`). Fields the server owns
/// (`id`, `created_by`, `deleted_at`, roles) are refused with 400 `invalid_body`.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct ProjectRequest {
    /// 1 to 200 characters (surrounding spaces are trimmed).
    #[oai(validator(max_length = 200))]
    pub name: String,
    /// Up to 5000 characters; absent means empty.
    #[oai(validator(max_length = 5000))]
    pub description: Option<String>,
    /// Absent: defaults on create, unchanged on update.
    pub settings: Option<ProjectSettingsDto>,
}

impl From<ProjectRequest> for ProjectInput {
    fn from(r: ProjectRequest) -> Self {
        Self {
            name: r.name,
            description: r.description,
            settings: r.settings.map(Into::into),
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ProjectResponse {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub settings: ProjectSettingsDto,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The caller's role in the project; absent for a super admin who is not a member.
    pub my_role: Option<Wire<ProjectRole>>,
}

impl From<ProjectView> for ProjectResponse {
    fn from(p: ProjectView) -> Self {
        Self {
            id: p.id,
            name: p.name,
            description: p.description,
            settings: p.settings.into(),
            created_by: p.created_by,
            created_at: p.created_at,
            updated_at: p.updated_at,
            my_role: p.my_role.map(|r| Wire::new(r.as_str())),
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ProjectPage {
    pub items: Vec<ProjectResponse>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MemberResponse {
    pub user_id: Uuid,
    pub email: String,
    pub full_name: Option<String>,
    pub role: Wire<ProjectRole>,
    pub joined_at: DateTime<Utc>,
}

impl From<MemberView> for MemberResponse {
    fn from(m: MemberView) -> Self {
        Self {
            user_id: m.user_id,
            email: m.email,
            full_name: m.full_name,
            role: Wire::new(m.role.as_str()),
            joined_at: m.joined_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MemberPage {
    pub items: Vec<MemberResponse>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct RoleRequest {
    pub role: ProjectRole,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct InviteRequest {
    /// Who to invite; they may not have an account yet (the mail leads to sign-up).
    #[oai(validator(max_length = 254))]
    pub email: String,
    pub role: ProjectRole,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InvitationResponse {
    pub id: Uuid,
    pub project_id: Uuid,
    pub email: String,
    pub role: Wire<ProjectRole>,
    pub state: Wire<InvitationState>,
    pub invited_by: Uuid,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl From<InvitationView> for InvitationResponse {
    fn from(i: InvitationView) -> Self {
        Self {
            id: i.id,
            project_id: i.project_id,
            email: i.email,
            role: Wire::new(i.role.as_str()),
            state: Wire::new(i.state.as_str()),
            invited_by: i.invited_by,
            expires_at: i.expires_at,
            created_at: i.created_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InvitationPage {
    pub items: Vec<InvitationResponse>,
    pub next_cursor: Option<String>,
}

/// The project joined and the role in it.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AcceptedInvitation {
    pub project: ProjectResponse,
    pub role: Wire<ProjectRole>,
}

#[derive(ApiResponse)]
pub enum InvitationCreated {
    /// Invited; the mail is on its way. `Idempotent-Replayed: true` when this is the stored
    /// answer to an earlier request with the same `Idempotency-Key`.
    #[oai(status = 201)]
    Created(
        Json<InvitationResponse>,
        #[oai(header = "Idempotent-Replayed")] Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum InvitationOk {
    #[oai(status = 200)]
    Ok(Json<InvitationResponse>),
}

#[derive(ApiResponse)]
pub enum InvitationPageOk {
    #[oai(status = 200)]
    Ok(Json<InvitationPage>),
}

#[derive(ApiResponse)]
pub enum AcceptedOk {
    #[oai(status = 200)]
    Ok(Json<AcceptedInvitation>),
}

#[derive(ApiResponse)]
pub enum ProjectCreated {
    /// Created; the caller is its admin. `Idempotent-Replayed: true` when this is the
    /// stored answer to an earlier request with the same `Idempotency-Key`.
    #[oai(status = 201)]
    Created(
        Json<ProjectResponse>,
        #[oai(header = "Idempotent-Replayed")] Option<String>,
    ),
}

/// `Idempotent-Replayed: true` on a replay.
fn replay_header<T>(outcome: &Idempotent<T>) -> Option<String> {
    outcome.replayed().then(|| "true".to_owned())
}

#[derive(ApiResponse)]
pub enum ProjectOk {
    #[oai(status = 200)]
    Ok(Json<ProjectResponse>),
}

#[derive(ApiResponse)]
pub enum ProjectPageOk {
    #[oai(status = 200)]
    Ok(Json<ProjectPage>),
}

#[derive(ApiResponse)]
pub enum MemberPageOk {
    #[oai(status = 200)]
    Ok(Json<MemberPage>),
}

#[derive(ApiResponse)]
pub enum MemberOk {
    #[oai(status = 200)]
    Ok(Json<MemberResponse>),
}

#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

#[OpenApi(tag = "ApiTags::Projects")]
impl ProjectsApi {
    /// List projects
    ///
    /// The caller's projects (every project for a super admin), newest first. Filter by
    /// the caller's `role` and by a `search` substring of the name.
    #[oai(path = "/api/projects", method = "get", operation_id = "project_list")]
    async fn list(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        role: Query<Option<ProjectRole>>,
        #[oai(validator(max_length = 200))] search: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        #[oai(validator(max_length = 64))] cursor: Query<Option<String>>,
    ) -> ApiResult<ProjectPageOk> {
        let query = ProjectListQuery {
            role: role.0.map(|r| r.as_str().to_owned()),
            search: search.0,
            limit: limit.0,
            cursor: cursor.0,
        };
        let page = engine.projects().list_projects(&auth.0, query).await?;
        Ok(ProjectPageOk::Ok(Json(ProjectPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Create a project
    ///
    /// Send an `Idempotency-Key` (1–255 printable characters, yours alone) to make retries
    /// safe: the same key and request within 24 h return the first answer; the same key
    /// with another request is 422 `idempotency_key_reused`; while the first is still
    /// running, 409 `idempotency_key_in_progress`.
    #[oai(
        path = "/api/projects",
        method = "post",
        operation_id = "project_create"
    )]
    async fn create(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: JsonBody<ProjectRequest>,
    ) -> ApiResult<ProjectCreated> {
        let outcome = engine
            .projects()
            .create_project(&auth.0, body.0.into(), idempotency_key.0.as_deref(), &ctx)
            .await?;
        let replayed = replay_header(&outcome);
        Ok(ProjectCreated::Created(
            Json(outcome.into_inner().into()),
            replayed,
        ))
    }

    /// Get a project
    #[oai(
        path = "/api/projects/:project_id",
        method = "get",
        operation_id = "project_get"
    )]
    async fn get(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
    ) -> ApiResult<ProjectOk> {
        let project = engine.projects().project(&auth.0, project_id.0).await?;
        Ok(ProjectOk::Ok(Json(project.into())))
    }

    /// Replace a project's name, description and settings (project admins)
    #[oai(
        path = "/api/projects/:project_id",
        method = "put",
        operation_id = "project_update"
    )]
    async fn update(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        body: JsonBody<ProjectRequest>,
    ) -> ApiResult<ProjectOk> {
        let project = engine
            .projects()
            .update_project(&auth.0, project_id.0, body.0.into(), &ctx)
            .await?;
        Ok(ProjectOk::Ok(Json(project.into())))
    }

    /// Delete a project (project admins; soft delete, restorable by a super admin)
    #[oai(
        path = "/api/projects/:project_id",
        method = "delete",
        operation_id = "project_delete"
    )]
    async fn delete(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
    ) -> ApiResult<NoContent> {
        engine
            .projects()
            .delete_project(&auth.0, project_id.0, &ctx)
            .await?;
        Ok(NoContent::NoContent)
    }

    /// Restore a deleted project (super admins, within the retention window)
    #[oai(
        path = "/api/projects/:project_id/restore",
        method = "post",
        operation_id = "project_restore"
    )]
    async fn restore(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
    ) -> ApiResult<ProjectOk> {
        let project = engine
            .projects()
            .restore_project(&auth.0, project_id.0, &ctx)
            .await?;
        Ok(ProjectOk::Ok(Json(project.into())))
    }

    /// List a project's members (any member)
    #[oai(
        path = "/api/projects/:project_id/members",
        method = "get",
        operation_id = "project_members"
    )]
    async fn members(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        #[oai(validator(max_length = 64))] cursor: Query<Option<String>>,
    ) -> ApiResult<MemberPageOk> {
        let page = engine
            .projects()
            .project_members(&auth.0, project_id.0, limit.0, cursor.0.as_deref())
            .await?;
        Ok(MemberPageOk::Ok(Json(MemberPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Change a member's role (project admins; the last admin cannot be demoted)
    #[oai(
        path = "/api/projects/:project_id/members/:user_id",
        method = "patch",
        operation_id = "member_update_role"
    )]
    async fn change_role(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        user_id: Path<Uuid>,
        body: JsonBody<RoleRequest>,
    ) -> ApiResult<MemberOk> {
        let member = engine
            .projects()
            .change_member_role(&auth.0, project_id.0, user_id.0, body.role.as_str(), &ctx)
            .await?;
        Ok(MemberOk::Ok(Json(member.into())))
    }

    /// Remove a member, or leave (your own user id; the last admin cannot leave)
    #[oai(
        path = "/api/projects/:project_id/members/:user_id",
        method = "delete",
        operation_id = "member_remove"
    )]
    async fn remove_member(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        user_id: Path<Uuid>,
    ) -> ApiResult<NoContent> {
        engine
            .projects()
            .remove_member(&auth.0, project_id.0, user_id.0, &ctx)
            .await?;
        Ok(NoContent::NoContent)
    }

    /// A project's audit log (project admins), newest first
    #[oai(
        path = "/api/projects/:project_id/audit-log",
        method = "get",
        operation_id = "project_audit_log"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn audit_log(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        actor_id: Query<Option<Uuid>>,
        #[oai(validator(max_length = 64))] action: Query<Option<String>>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        #[oai(validator(max_length = 64))] cursor: Query<Option<String>>,
    ) -> ApiResult<AuditPageOk> {
        let query = AuditQuery {
            actor_id: actor_id.0,
            action: action.0,
            from: from.0,
            to: to.0,
            limit: limit.0,
            cursor: cursor.0,
        };
        let page = engine
            .projects()
            .audit_log(&auth.0, Some(project_id.0), query)
            .await?;
        Ok(AuditPageOk::Ok(Json(AuditPage::from(page))))
    }

    /// Invite someone to the project (project admins)
    ///
    /// Mails a single-use link valid 7 days. Honours `Idempotency-Key` like project creation. 409 `already_member` for a member,
    /// 409 `invitation_pending` when one is already pending (resend it instead).
    #[oai(
        path = "/api/projects/:project_id/invite",
        method = "post",
        operation_id = "invitation_create"
    )]
    async fn invite(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: JsonBody<InviteRequest>,
    ) -> ApiResult<InvitationCreated> {
        let outcome = engine
            .projects()
            .invite(
                &auth.0,
                project_id.0,
                &body.email,
                body.role.as_str(),
                idempotency_key.0.as_deref(),
                &ctx,
            )
            .await?;
        let replayed = replay_header(&outcome);
        Ok(InvitationCreated::Created(
            Json(outcome.into_inner().into()),
            replayed,
        ))
    }

    /// List the project's invitations (project admins; `state` defaults to pending)
    #[oai(
        path = "/api/projects/:project_id/invitations",
        method = "get",
        operation_id = "invitation_list"
    )]
    async fn invitations(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        state: Query<Option<InvitationState>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        #[oai(validator(max_length = 64))] cursor: Query<Option<String>>,
    ) -> ApiResult<InvitationPageOk> {
        let page = engine
            .projects()
            .invitations(
                &auth.0,
                project_id.0,
                state.0.map(Into::into),
                limit.0,
                cursor.0.as_deref(),
            )
            .await?;
        Ok(InvitationPageOk::Ok(Json(InvitationPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Send a pending invitation again with a fresh link (the old link stops working)
    #[oai(
        path = "/api/projects/:project_id/invitations/:invitation_id/resend",
        method = "post",
        operation_id = "invitation_resend"
    )]
    async fn resend(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        invitation_id: Path<Uuid>,
    ) -> ApiResult<InvitationOk> {
        let invitation = engine
            .projects()
            .resend_invitation(&auth.0, project_id.0, invitation_id.0, &ctx)
            .await?;
        Ok(InvitationOk::Ok(Json(invitation.into())))
    }

    /// Revoke a pending invitation
    #[oai(
        path = "/api/projects/:project_id/invitations/:invitation_id",
        method = "delete",
        operation_id = "invitation_revoke"
    )]
    async fn revoke(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        invitation_id: Path<Uuid>,
    ) -> ApiResult<NoContent> {
        engine
            .projects()
            .revoke_invitation(&auth.0, project_id.0, invitation_id.0, &ctx)
            .await?;
        Ok(NoContent::NoContent)
    }

    /// Accept an invitation (signed in with the invited, verified email)
    #[oai(
        path = "/api/projects/invitations/:token/accept",
        method = "post",
        operation_id = "invitation_accept"
    )]
    async fn accept(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        #[oai(validator(max_length = 256))] token: Path<String>,
    ) -> ApiResult<AcceptedOk> {
        let (project, role) = engine
            .projects()
            .accept_invitation(&auth.0, &token.0, &ctx)
            .await?;
        Ok(AcceptedOk::Ok(Json(AcceptedInvitation {
            project: project.into(),
            role: Wire::new(role.as_str()),
        })))
    }
}
