//! The bearer security scheme: a JWT access token, checked against the user's current
//! state by the engine on every request.

use alta_actors::{Engine, context::Principal};
use poem::Request;
use poem_openapi::{SecurityScheme, auth::Bearer};

use crate::problem::ApiError;

/// `Authorization: Bearer <access token>` from `POST /api/auth/login`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct BearerAuth(pub Principal);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let engine = req
        .data::<Engine>()
        .ok_or_else(|| poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR))?;
    engine
        .authenticate(&bearer.token)
        .await
        .map_err(|err| ApiError::from(err).into())
}
