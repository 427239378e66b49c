//! Liveness and readiness probes.

use alta_actors::Engine;
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use crate::tags::ApiTags;

pub struct HealthApi;

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Liveness {
    /// Always `ok` when the process answers.
    pub status: String,
    pub version: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Readiness {
    /// `ready` or `not_ready` (only the database makes a node not ready).
    pub status: String,
    /// `ok` or `failed`.
    pub database: String,
    /// `ok`, `degraded` (Redis does not answer: the node serves on, rate limiting
    /// in-process), or `not_configured`.
    pub redis: String,
}

#[derive(ApiResponse)]
pub enum LivenessOk {
    #[oai(status = 200)]
    Ok(Json<Liveness>),
}

#[derive(ApiResponse)]
pub enum ReadinessResponse {
    /// The node can serve (a degraded dependency shows in the body).
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// The database does not answer; the body says so.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness: the process is up
    #[oai(path = "/health", method = "get", operation_id = "health_live")]
    async fn live(&self) -> LivenessOk {
        LivenessOk::Ok(Json(Liveness {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }))
    }

    /// Readiness: the database answers (Redis, when configured, is reported but not required)
    #[oai(path = "/health/ready", method = "get", operation_id = "health_ready")]
    async fn ready(&self, engine: Data<&Engine>) -> ReadinessResponse {
        let r = engine.readiness().await;
        if let Err(err) = &r.database {
            tracing::warn!(error = %err, "readiness: database check failed");
        }
        if let Some(Err(err)) = &r.redis {
            tracing::warn!(error = %err, "readiness: redis check failed");
        }
        let body = Readiness {
            status: if r.is_ready() { "ready" } else { "not_ready" }.into(),
            database: if r.database.is_ok() { "ok" } else { "failed" }.into(),
            redis: match &r.redis {
                None => "not_configured",
                Some(Ok(())) => "ok",
                Some(Err(_)) => "degraded",
            }
            .into(),
        };
        if r.is_ready() {
            ReadinessResponse::Ready(Json(body))
        } else {
            ReadinessResponse::NotReady(Json(body))
        }
    }
}
