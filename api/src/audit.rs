//! The audit log as the API shows it (shared by the admin and project views).

use alta_actors::{pagination::Page, projects::AuditView};
use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, Object, payload::Json};
use uuid::Uuid;

/// One state change: who, what, to what, from where, when.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditEntryResponse {
    pub id: Uuid,
    /// The user who did it; absent for the system or the CLI.
    pub actor_id: Option<Uuid>,
    /// e.g. `user.registered`, `project.updated`, `member.role_changed`.
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub project_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    /// What changed (never a secret).
    pub details: serde_json::Value,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditPage {
    pub items: Vec<AuditEntryResponse>,
    pub next_cursor: Option<String>,
}

impl From<Page<AuditView>> for AuditPage {
    fn from(page: Page<AuditView>) -> Self {
        Self {
            items: page
                .items
                .into_iter()
                .map(|a| AuditEntryResponse {
                    id: a.id,
                    actor_id: a.actor_id,
                    action: a.action,
                    target_type: a.target_type,
                    target_id: a.target_id,
                    project_id: a.project_id,
                    request_id: a.request_id,
                    ip: a.ip,
                    details: a.details,
                    at: a.at,
                })
                .collect(),
            next_cursor: page.next_cursor,
        }
    }
}

#[derive(ApiResponse)]
pub enum AuditPageOk {
    #[oai(status = 200)]
    Ok(Json<AuditPage>),
}
