//! The bearer security scheme: a JWT access token, checked against the user's current
//! state by the engine on every request.

use alta_actors::ErrorCode;
use alta_actors::{
    Engine, EngineError,
    context::{Principal, TokenScope},
};
use poem::{Request, http::Method};
use poem_openapi::{SecurityScheme, auth::Bearer};

use crate::problem::ApiError;

/// `Authorization: Bearer <token>`: an access token (a JWT from `POST /api/auth/login`
/// or `/refresh`), or a personal access token (`alta_pat_…`, `POST /api/auth/tokens`);
/// a token with only the `read` scope may send `GET` and `HEAD` only.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct BearerAuth(pub Principal);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let engine = req
        .data::<Engine>()
        .ok_or_else(|| poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR))?;
    let principal = engine
        .accounts()
        .authenticate(&bearer.token)
        .await
        .map_err(ApiError::from)?;
    let reads = matches!(*req.method(), Method::GET | Method::HEAD);
    if principal.token_scope == Some(TokenScope::Read) && !reads {
        return Err(ApiError::from(EngineError::Refused {
            code: ErrorCode::InsufficientScope,
            message: "this API token may only read (scope `read`)".into(),
        })
        .into());
    }
    Ok(principal)
}
