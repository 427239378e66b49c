//! What readers get back about users (never the password hash).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{domain::GlobalRole, store::users::UserRow};

#[derive(Debug, Clone)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub full_name: Option<String>,
    pub role: GlobalRole,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<UserRow> for UserView {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            role: row.role.parse().unwrap_or(GlobalRole::User),
            email: row.email,
            full_name: row.full_name,
            email_verified: row.email_verified,
            created_at: row.created_at,
            last_login_at: row.last_login_at,
        }
    }
}

/// Filters of the admin user list, as received.
#[derive(Debug, Clone, Default)]
pub struct UserListQuery {
    pub email: Option<String>,
    pub role: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}
