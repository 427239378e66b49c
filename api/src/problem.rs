//! One error shape for every failure: RFC 9457 problem details with a stable `code`
//! and the `request_id`. Internal causes go to the log, never to the client.

use alta_actors::{EngineError, ErrorCode};
use poem::http::StatusCode;
use poem_openapi::{ApiResponse, Object, payload::Json};

use crate::middleware::request_id;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct Problem {
    /// A URI naming the problem type (`urn:alta:problem:<code>`).
    #[oai(rename = "type")]
    pub problem_type: String,
    /// Short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// Stable machine-readable code; match on this, not on `detail`.
    pub code: String,
    /// The request's correlation id (also in the `X-Request-ID` header).
    pub request_id: String,
    /// The input field at fault, when there is one.
    #[oai(skip_serializing_if_is_none)]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            problem_type: format!("urn:alta:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.as_str().to_owned(),
            request_id: request_id::current(),
            field: None,
        }
    }
}

impl poem_openapi::types::Example for Problem {
    fn example() -> Self {
        Self {
            problem_type: "urn:alta:problem:invalid_email".into(),
            title: "Bad Request".into(),
            status: 400,
            detail: "email must contain @".into(),
            code: "invalid_email".into(),
            request_id: "3f0c2a4e-1b7d-4c55-9d0e-7a6b2c9f8e11".into(),
            field: Some("email".into()),
        }
    }
}

/// Every error an operation can answer with.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed or a value fails validation.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Missing, invalid or expired credentials.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>, #[oai(header = "WWW-Authenticate")] String),
    /// Authenticated but not allowed, or the account must do something first
    /// (`email_not_verified`).
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// No such resource (or it is not visible to the caller).
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// Conflicts with the current state.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// `If-Match` names a version that is no longer current.
    #[oai(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Json<Problem>),
    /// It existed and is gone for good (an expired or refused resumable upload).
    #[oai(status = 410, content_type = "application/problem+json")]
    Gone(Json<Problem>),
    /// Well-formed but not processable as asked (e.g. an `Idempotency-Key` reused with
    /// a different request).
    #[oai(status = 422, content_type = "application/problem+json")]
    Unprocessable(Json<Problem>),
    /// The content is larger than allowed.
    #[oai(status = 413, content_type = "application/problem+json")]
    PayloadTooLarge(Json<Problem>),
    /// The content is of a type that is not accepted.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// Rate limited; retry after the given number of seconds.
    #[oai(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Json<Problem>, #[oai(header = "Retry-After")] u64),
    /// An unexpected error; quote the request id when reporting it.
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
    /// This server is not configured for the feature (the message names the setting).
    #[oai(status = 501, content_type = "application/problem+json")]
    NotImplemented(Json<Problem>),
    /// A dependency is unavailable; retry shortly.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>, #[oai(header = "Retry-After")] u64),
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        let code = err.code();
        let problem = |status: StatusCode| Json(Problem::new(status, code, err.to_string()));
        match &err {
            // 400 for a request that does not fit the document, 422 for one that fits
            // but whose content is refused (the code says which; RefusedContent always).
            EngineError::Validation { field, .. } | EngineError::RefusedContent { field, .. } => {
                let content =
                    code.status() == 422 || matches!(err, EngineError::RefusedContent { .. });
                let status = if content {
                    StatusCode::UNPROCESSABLE_ENTITY
                } else {
                    StatusCode::BAD_REQUEST
                };
                let mut p = problem(status);
                p.0.field = field.as_ref().map(|f| f.to_string());
                if content {
                    Self::Unprocessable(p)
                } else {
                    Self::BadRequest(p)
                }
            }
            EngineError::Unauthenticated { .. } => Self::Unauthorized(
                problem(StatusCode::UNAUTHORIZED),
                format!(
                    "Bearer error=\"{}\"",
                    if code == ErrorCode::InvalidCredentials {
                        "invalid_request"
                    } else {
                        "invalid_token"
                    }
                ),
            ),
            EngineError::Forbidden | EngineError::Refused { .. } => {
                Self::Forbidden(problem(StatusCode::FORBIDDEN))
            }
            EngineError::NotFound { .. } => Self::NotFound(problem(StatusCode::NOT_FOUND)),
            EngineError::Conflict { .. } => Self::Conflict(problem(StatusCode::CONFLICT)),
            EngineError::Gone { .. } => Self::Gone(problem(StatusCode::GONE)),
            EngineError::PreconditionFailed { .. } => {
                Self::PreconditionFailed(problem(StatusCode::PRECONDITION_FAILED))
            }
            EngineError::NotImplemented { .. } => {
                Self::NotImplemented(problem(StatusCode::NOT_IMPLEMENTED))
            }
            EngineError::TooLarge { .. } => {
                Self::PayloadTooLarge(problem(StatusCode::PAYLOAD_TOO_LARGE))
            }
            EngineError::UnsupportedMedia { .. } => {
                Self::UnsupportedMediaType(problem(StatusCode::UNSUPPORTED_MEDIA_TYPE))
            }
            EngineError::Unprocessable { .. } => {
                Self::Unprocessable(problem(StatusCode::UNPROCESSABLE_ENTITY))
            }
            EngineError::RateLimited { retry_after } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                Self::TooManyRequests(problem(StatusCode::TOO_MANY_REQUESTS), secs.max(1))
            }
            EngineError::Unavailable(cause) => {
                tracing::warn!(%cause, "engine unavailable");
                Self::Unavailable(
                    Json(Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        code,
                        "the service is temporarily unavailable; retry shortly",
                    )),
                    1,
                )
            }
            EngineError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Self::Internal(Json(Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code,
                    "an unexpected error occurred; quote the request id when reporting it",
                )))
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
