//! Invitation transitions, run by the project's actor: invite, resend, revoke, accept.

use crate::ErrorCode;
use serde_json::json;
use uuid::Uuid;

use super::{InvitationView, ProjectView};
use crate::{
    auth::secret_token,
    authz::ProjectAction,
    context::Principal,
    deps::Deps,
    domain::MailJob,
    domain::{Email, InvitationState, ProjectRole, webhook::WebhookEvent},
    error::EngineError,
    idempotency::Claim,
    project_actor::{Check, InProject, Transition},
    store,
    webhooks::Subject,
};

/// Invitations are valid this long.
const INVITATION_TTL_DAYS: i64 = 7;

fn invitation_mail(
    deps: &Deps,
    project_name: &str,
    email: &str,
    role: ProjectRole,
    token: &str,
) -> MailJob {
    let link = format!(
        "{}/invitations/accept?token={token}",
        deps.config.public_url
    );
    MailJob {
        to: email.to_owned(),
        subject: format!("You are invited to {project_name} on Alta Data"),
        text: format!(
            "Hello,\n\nYou are invited to join the project \"{project_name}\" on Alta Data as {role}.\n\n\
             Accept the invitation here (sign up first with this email address if you have no account):\n\n\
             {link}\n\nThe invitation works once and expires in {INVITATION_TTL_DAYS} days.\n"
        ),
        template: "project_invitation".into(),
    }
}

/// Invite someone by email to a role in the project (project admins).
pub struct Invite {
    pub email: Email,
    pub role: ProjectRole,
    pub idempotency: Option<Claim>,
}

impl Transition for Invite {
    type Out = InvitationView;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::ManageInvitations)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<InvitationView, EngineError> {
        let (id, now, email, role) = (at.id(), at.now, self.email.as_str(), self.role);
        if let Some(user) = store::users::find_by_email_tx(at.tx(), email).await?
            && store::projects::member_role_tx(at.tx(), id, user.id)
                .await?
                .is_some()
        {
            return Err(EngineError::Conflict {
                code: ErrorCode::AlreadyMember,
                message: format!("{email} is already a member of this project"),
            });
        }
        if store::invitations::pending_for_email(at.tx(), id, email)
            .await?
            .is_some()
        {
            return Err(EngineError::Conflict {
                code: ErrorCode::InvitationPending,
                message: format!("{email} already has a pending invitation; resend it instead"),
            });
        }
        let (token, token_hash) = secret_token::generate();
        let invitation_id = Uuid::now_v7();
        let invited_by = at.principal.user_id;
        store::invitations::insert(
            at.tx(),
            &store::invitations::NewInvitation {
                id: invitation_id,
                project_id: id,
                email,
                role: role.as_str(),
                token_hash: &token_hash,
                invited_by,
                expires_at: now + chrono::Duration::days(INVITATION_TTL_DAYS),
                now,
            },
        )
        .await?;
        let mail = invitation_mail(at.deps, &at.project()?.name, email, role, &token);
        at.enqueue_mail(mail)?;
        at.audit(
            "invitation.created",
            ("invitation", invitation_id.to_string()),
            json!({"email": email, "role": role.as_str()}),
        );
        let row = store::invitations::find_tx(at.tx(), id, invitation_id)
            .await?
            .ok_or(EngineError::NotFound { what: "invitation" })?;
        let view = InvitationView::from(row);
        at.record_idempotent(&self.idempotency, 201, &view).await?;
        Ok(view)
    }
}

/// Send a pending invitation again, with a new link (the old one stops working).
pub struct ResendInvitation {
    pub invitation_id: Uuid,
}

impl Transition for ResendInvitation {
    type Out = InvitationView;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::ManageInvitations)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<InvitationView, EngineError> {
        let (id, now, invitation_id) = (at.id(), at.now, self.invitation_id);
        let invitation = pending(at.tx(), id, invitation_id).await?;
        let (token, token_hash) = secret_token::generate();
        let expires_at = now + chrono::Duration::days(INVITATION_TTL_DAYS);
        store::invitations::rotate_token(at.tx(), invitation_id, &token_hash, expires_at, now)
            .await?;
        let role: ProjectRole = invitation.role.parse()?;
        let mail = invitation_mail(
            at.deps,
            &at.project()?.name,
            &invitation.email,
            role,
            &token,
        );
        at.enqueue_mail(mail)?;
        at.audit(
            "invitation.resent",
            ("invitation", invitation_id.to_string()),
            json!({}),
        );
        let row = store::invitations::find_tx(at.tx(), id, invitation_id)
            .await?
            .ok_or(EngineError::NotFound { what: "invitation" })?;
        Ok(row.into())
    }
}

/// Withdraw a pending invitation.
pub struct RevokeInvitation {
    pub invitation_id: Uuid,
}

impl Transition for RevokeInvitation {
    type Out = ();

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::ManageInvitations)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(), EngineError> {
        let (id, now, invitation_id) = (at.id(), at.now, self.invitation_id);
        pending(at.tx(), id, invitation_id).await?;
        store::invitations::finish(at.tx(), invitation_id, InvitationState::Revoked, None, now)
            .await?;
        at.audit(
            "invitation.revoked",
            ("invitation", invitation_id.to_string()),
            json!({}),
        );
        Ok(())
    }
}

/// The caller joins the project. Their verified email must be the invited address.
pub struct AcceptInvitation {
    pub token_hash: String,
}

impl Transition for AcceptInvitation {
    type Out = (ProjectView, ProjectRole);

    fn check(&self, _: &Principal) -> Check {
        // The caller is not a member yet: the invitation is their right to join.
        Check::Itself
    }

    async fn apply(
        self,
        at: &mut InProject<'_>,
    ) -> Result<(ProjectView, ProjectRole), EngineError> {
        let invalid = || EngineError::NotFound { what: "invitation" };
        let (id, now, user) = (at.id(), at.now, at.principal.user_id);
        let project = at
            .project()
            .ok()
            .filter(|p| p.deleted_at.is_none())
            .cloned()
            .ok_or_else(invalid)?;
        let invitation = store::invitations::find_by_hash_tx(at.tx(), &self.token_hash)
            .await?
            .filter(|i| i.project_id == id && i.state == InvitationState::Pending)
            .ok_or_else(invalid)?;
        if invitation.expires_at <= now {
            return Err(EngineError::Validation {
                code: ErrorCode::InvitationExpired,
                field: Some("token".into()),
                message: "this invitation has expired; ask a project admin to resend it".into(),
            });
        }
        if !at.principal.email.eq_ignore_ascii_case(&invitation.email) {
            return Err(EngineError::Refused {
                code: ErrorCode::InvitationEmailMismatch,
                message:
                    "this invitation was sent to another email address; sign in with that address"
                        .into(),
            });
        }
        if at.role.is_some() {
            return Err(EngineError::Conflict {
                code: ErrorCode::AlreadyMember,
                message: "you are already a member of this project".into(),
            });
        }
        // Conditional: of two simultaneous accepts, one finds it no longer pending.
        if !store::invitations::finish(
            at.tx(),
            invitation.id,
            InvitationState::Accepted,
            Some(user),
            now,
        )
        .await?
        {
            return Err(invalid());
        }
        let role: ProjectRole = invitation.role.parse()?;
        store::projects::add_member(at.tx(), id, user, role.as_str(), now).await?;
        at.audit(
            "invitation.accepted",
            ("invitation", invitation.id.to_string()),
            json!({"role": role.as_str()}),
        );
        at.announce(
            WebhookEvent::MemberAdded,
            Subject::Member {
                user_id: user,
                role: role.as_str().into(),
            },
        )
        .await?;
        at.project_changed();
        Ok((ProjectView::from_row(project, Some(role)), role))
    }
}

async fn pending(
    tx: &mut store::Tx,
    project: Uuid,
    invitation_id: Uuid,
) -> Result<store::invitations::InvitationRow, EngineError> {
    store::invitations::find_tx(tx, project, invitation_id)
        .await?
        .filter(|i| i.state == InvitationState::Pending)
        .ok_or(EngineError::NotFound { what: "invitation" })
}
