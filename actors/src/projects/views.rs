//! What readers get back about projects, members and the audit log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use crate::project_access::ProjectView;
use crate::{
    domain::{InvitationState, ProjectRole},
    store::{audit::AuditRow, invitations::InvitationRow, projects::MemberRow},
};

#[derive(Debug, Clone)]
pub struct MemberView {
    pub user_id: Uuid,
    pub email: String,
    pub full_name: Option<String>,
    pub role: ProjectRole,
    pub joined_at: DateTime<Utc>,
}

impl From<MemberRow> for MemberView {
    fn from(row: MemberRow) -> Self {
        Self {
            user_id: row.user_id,
            email: row.email,
            full_name: row.full_name,
            role: row.role.parse().unwrap_or(ProjectRole::Contributor),
            joined_at: row.created_at,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditView {
    pub id: Uuid,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub project_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub details: Value,
    pub at: DateTime<Utc>,
}

impl From<AuditRow> for AuditView {
    fn from(r: AuditRow) -> Self {
        Self {
            id: r.id,
            actor_id: r.actor_id,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            project_id: r.project_id,
            request_id: r.request_id,
            ip: r.ip,
            details: r.details.0,
            at: r.at,
        }
    }
}

/// Filters of an audit-log request, as received.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor_id: Option<Uuid>,
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvitationView {
    pub id: Uuid,
    pub project_id: Uuid,
    pub email: String,
    pub role: ProjectRole,
    pub state: InvitationState,
    pub invited_by: Uuid,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl From<InvitationRow> for InvitationView {
    fn from(r: InvitationRow) -> Self {
        Self {
            id: r.id,
            project_id: r.project_id,
            role: r.role.parse().unwrap_or(ProjectRole::Contributor),
            email: r.email,
            state: r.state,
            invited_by: r.invited_by,
            expires_at: r.expires_at,
            created_at: r.created_at,
        }
    }
}
