//! `/api/admin`: platform administration.

use alta_actors::{Engine, accounts::UserListQuery};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Query, payload::Json};

use crate::{auth::UserResponse, problem::ApiResult, security::BearerAuth, tags::ApiTags};

pub struct AdminApi;

/// One page of users, newest first.
#[derive(Debug, Object)]
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
        #[oai(validator(max_length = 32))] role: Query<Option<String>>,
        limit: Query<Option<u32>>,
        #[oai(validator(max_length = 64))] cursor: Query<Option<String>>,
    ) -> ApiResult<UserPageOk> {
        let query = UserListQuery {
            email: email.0,
            role: role.0,
            limit: limit.0,
            cursor: cursor.0,
        };
        let page = engine.list_users(&auth.0, query).await?;
        Ok(UserPageOk::Ok(Json(UserPage {
            items: page.items.into_iter().map(UserResponse::from).collect(),
            next_cursor: page.next_cursor,
        })))
    }
}
