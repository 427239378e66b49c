//! `/api/jobs/{id}` for members, `/api/admin/jobs` for super admins: background jobs
//! (OCR, transcription, mail) and putting failed ones back in the queue.

use alta_actors::{Engine, context::RequestContext, job_control::JobView};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use crate::{
    enums::{JobKind, JobState, Wire},
    problem::ApiResult,
    security::BearerAuth,
    tags::ApiTags,
};

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct JobResponse {
    pub id: Uuid,
    pub kind: Wire<JobKind>,
    pub state: Wire<JobState>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    /// When a queued job runs (next).
    pub run_at: DateTime<Utc>,
    /// The document or recording it processes.
    pub item_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<JobView> for JobResponse {
    fn from(j: JobView) -> Self {
        Self {
            id: j.id,
            kind: Wire::new(j.kind),
            state: Wire::new(j.state.as_str()),
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            last_error: j.last_error,
            run_at: j.run_at,
            item_id: j.item_id,
            created_at: j.created_at,
            updated_at: j.updated_at,
            finished_at: j.finished_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct JobPage {
    pub items: Vec<JobResponse>,
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum JobOk {
    #[oai(status = 200)]
    Ok(Json<JobResponse>),
}

#[derive(ApiResponse)]
pub enum JobPageOk {
    #[oai(status = 200)]
    Ok(Json<JobPage>),
}

pub struct JobsApi;

#[OpenApi(tag = "ApiTags::Jobs")]
impl JobsApi {
    /// A background job: whoever may read its document or recording may read it.
    #[oai(path = "/api/jobs/:id", method = "get", operation_id = "job_get")]
    async fn get(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> ApiResult<JobOk> {
        Ok(JobOk::Ok(Json(
            engine.jobs().job(&auth.0, id.0).await?.into(),
        )))
    }

    /// Jobs in a state, newest first (super admins). `state` defaults to `failed`.
    #[oai(
        path = "/api/admin/jobs",
        method = "get",
        operation_id = "admin_list_jobs"
    )]
    async fn list(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        state: Query<Option<JobState>>,
        kind: Query<Option<JobKind>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        #[oai(validator(max_length = 64))] cursor: Query<Option<String>>,
    ) -> ApiResult<JobPageOk> {
        let page = engine
            .jobs()
            .jobs(
                &auth.0,
                state.0.map(Into::into),
                kind.0.map(JobKind::as_str),
                limit.0,
                cursor.0.as_deref(),
            )
            .await?;
        Ok(JobPageOk::Ok(Json(JobPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Put a failed job back in the queue with fresh attempts (super admins); its item
    /// waits for processing again. 409 `job_not_failed` otherwise.
    #[oai(
        path = "/api/admin/jobs/:id/retry",
        method = "post",
        operation_id = "admin_retry_job"
    )]
    async fn retry(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> ApiResult<JobOk> {
        Ok(JobOk::Ok(Json(
            engine.jobs().retry_job(&auth.0, id.0, &ctx).await?.into(),
        )))
    }
}
