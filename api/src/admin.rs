//! `/api/admin`: platform administration.

use alta_actors::{Engine, accounts::UserListQuery, projects::AuditQuery};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Query, payload::Json};
use uuid::Uuid;

use crate::{
    audit::{AuditPage, AuditPageOk},
    auth::UserResponse,
    enums::PlatformRole,
    problem::ApiResult,
    security::BearerAuth,
    tags::ApiTags,
};

pub struct AdminApi;

/// One page of users, newest first.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UserPage {
    pub items: Vec<UserResponse>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum UserPageOk {
    #[oai(status = 200)]
    Ok(Json<UserPage>),
}

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// List users (super admins only)
    ///
    /// Filter by a substring of the email and by role; page with `limit` (1–200,
    /// default 50) and the `next_cursor` of the previous page.
    #[oai(
        path = "/api/admin/users",
        method = "get",
        operation_id = "admin_list_users"
    )]
    async fn list_users(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        #[oai(validator(max_length = 254))] email: Query<Option<String>>,
        role: Query<Option<PlatformRole>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        #[oai(validator(max_length = 64))] cursor: Query<Option<String>>,
    ) -> ApiResult<UserPageOk> {
        let query = UserListQuery {
            email: email.0,
            role: role.0.map(|r| r.as_str().to_owned()),
            limit: limit.0,
            cursor: cursor.0,
        };
        let page = engine.accounts().list_users(&auth.0, query).await?;
        Ok(UserPageOk::Ok(Json(UserPage {
            items: page.items.into_iter().map(UserResponse::from).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// The whole audit log (super admins), newest first
    ///
    /// Filter by `actor_id`, `action` (e.g. `project.created`) and a time range
    /// (`from` inclusive, `to` exclusive, RFC 3339).
    #[oai(
        path = "/api/admin/audit-log",
        method = "get",
        operation_id = "admin_audit_log"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn audit_log(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
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
        let page = engine.projects().audit_log(&auth.0, None, query).await?;
        Ok(AuditPageOk::Ok(Json(AuditPage::from(page))))
    }
}
