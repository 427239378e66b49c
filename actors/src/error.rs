//! The engine's error type. Every variant carries a stable machine-readable code
//! ([`ErrorCode`], see [`EngineError::code`]) that the HTTP layer puts in problem responses.

use std::time::Duration;

use crate::error_code::ErrorCode;

/// The input at fault: a parameter's name, or a JSON pointer into the body
/// (`/values/entities/3/end`).
pub type Field = std::borrow::Cow<'static, str>;

/// What an engine call can fail with. Handlers map these to HTTP problems 1:1.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Input failed validation; `field` names the offending input when there is one.
    #[error("{message}")]
    Validation {
        code: ErrorCode,
        field: Option<Field>,
        message: String,
    },
    /// Input that fits the API's schemas but whose content is refused, with a code that
    /// is otherwise a schema-level (400) one: the values inside tus `Upload-Metadata`,
    /// which no schema can see into. Always 422.
    #[error("{message}")]
    RefusedContent {
        code: ErrorCode,
        field: Option<Field>,
        message: String,
    },
    /// Missing, malformed, expired or revoked credentials.
    #[error("{message}")]
    Unauthenticated { code: ErrorCode, message: String },
    /// Authenticated, but the permission matrix says no.
    #[error("you do not have permission to do this")]
    Forbidden,
    /// Authenticated and allowed in principle, but the account is in a state that forbids it.
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    /// The thing does not exist, or the caller may not know that it does.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// Well-formed, but cannot be processed as asked (e.g. a reused idempotency key).
    #[error("{message}")]
    Unprocessable { code: ErrorCode, message: String },
    /// The content is larger than allowed.
    #[error("{message}")]
    TooLarge { code: ErrorCode, message: String },
    /// The content is of a type that is not accepted here.
    #[error("{message}")]
    UnsupportedMedia { code: ErrorCode, message: String },
    /// The request conflicts with the current state (a duplicate, a lost race).
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    /// `If-Match` named a version that is no longer current (a lost update avoided).
    #[error("{message}")]
    PreconditionFailed { code: ErrorCode, message: String },
    /// It existed, and is gone for good (an expired or refused resumable upload).
    #[error("{message}")]
    Gone { code: ErrorCode, message: String },
    /// A feature this server was not configured for (passkeys without an allowed
    /// origin, Google sign-in without a client id); the message names the setting.
    #[error("{message}")]
    NotImplemented { code: ErrorCode, message: String },
    /// Too many requests for this key; try again after `retry_after`.
    #[error("too many requests; retry after {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    /// A part the engine needs (an actor, the database) is not answering right now.
    #[error("service temporarily unavailable: {0}")]
    Unavailable(String),
    /// Anything else. The message is for the log, never for the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// The stable code clients can match on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Validation { code, .. }
            | Self::RefusedContent { code, .. }
            | Self::Unauthenticated { code, .. }
            | Self::Refused { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::TooLarge { code, .. }
            | Self::Gone { code, .. }
            | Self::PreconditionFailed { code, .. }
            | Self::NotImplemented { code, .. }
            | Self::UnsupportedMedia { code, .. } => *code,
            Self::Forbidden => ErrorCode::Forbidden,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable(_) => ErrorCode::ServiceUnavailable,
            Self::Internal(_) => ErrorCode::InternalError,
        }
    }

    pub fn validation(
        code: ErrorCode,
        field: impl Into<Field>,
        message: impl Into<String>,
    ) -> Self {
        Self::Validation {
            code,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn unauthenticated(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Unauthenticated {
            code,
            message: message.into(),
        }
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::Internal(err.to_string())
    }
}

/// A failed actor call: the actor is gone, restarting, or too slow. Maps to 503.
impl<T> From<ractor::RactorErr<T>> for EngineError {
    fn from(err: ractor::RactorErr<T>) -> Self {
        Self::Unavailable(format!("engine actor did not answer: {err}"))
    }
}

/// A failed cast: the actor is gone or restarting.
impl<T> From<ractor::MessagingErr<T>> for EngineError {
    fn from(err: ractor::MessagingErr<T>) -> Self {
        Self::Unavailable(format!("engine actor did not take the message: {err}"))
    }
}
