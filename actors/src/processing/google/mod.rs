//! Google Cloud engines: Document AI for documents ([`document_ai`]) and Speech-to-Text
//! v1 for recordings ([`speech`]), over their REST APIs with reqwest. Both authenticate
//! with an OAuth access token from a service-account key ([`auth`]).
//!
//! Every remote failure is a [`RemoteError`]: a stable code, Google's message and
//! whether another attempt may succeed. Rate limits, quota, 5xx answers, timeouts and
//! transport trouble are retryable (the job retries later); any other 4xx is the
//! request's own fault and final. An answer with nothing in it (`no_text_found`,
//! `no_speech_found`) is final too: the file has no text, not the service a problem.
//!
//! Each HTTP exchange is timed in [`EXTERNAL_API_DURATION_SECONDS`] and each failed one
//! counted in [`EXTERNAL_API_ERRORS_TOTAL`], both labelled by `api` ([`API_DOCUMENT_AI`],
//! [`API_SPEECH`], [`API_OAUTH`]); the error counter also by `code`.

pub mod auth;
pub mod document_ai;
pub mod speech;

#[cfg(test)]
mod fake;

use std::error::Error as StdError;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

pub use self::auth::{AccessToken, GoogleAuth, ServiceAccountKey};
pub use self::document_ai::{DocSource, DocumentAi};
pub use self::speech::{AudioSource, Speech, SpeechConfig};

/// Histogram: seconds per HTTP exchange with an external API, by `api`.
pub const EXTERNAL_API_DURATION_SECONDS: &str = "external_api_duration_seconds";
/// Counter: failed exchanges with an external API, by `api` and `code`.
pub const EXTERNAL_API_ERRORS_TOTAL: &str = "external_api_errors_total";

/// `api` label of Document AI calls.
pub const API_DOCUMENT_AI: &str = "document_ai";
/// `api` label of Speech-to-Text calls.
pub const API_SPEECH: &str = "speech";
/// `api` label of the OAuth token endpoint.
pub const API_OAUTH: &str = "oauth";

/// Transport failure, timeout, 5xx or 408: retryable.
pub const CODE_UNAVAILABLE: &str = "google_unavailable";
/// HTTP 429 without a quota status: retryable.
pub const CODE_RATE_LIMITED: &str = "google_rate_limited";
/// 429 or 403 with status `RESOURCE_EXHAUSTED` (or an operation ending so): retryable.
pub const CODE_QUOTA_EXCEEDED: &str = "google_quota_exceeded";
/// Any other 4xx, or an operation ending in a non-transient error: final.
pub const CODE_REJECTED: &str = "google_rejected";
/// A success status with a body that is not the documented JSON: retryable.
pub const CODE_BAD_RESPONSE: &str = "google_bad_response";
/// The token endpoint refused the service account's assertion: final.
pub const CODE_AUTH_FAILED: &str = "google_auth_failed";
/// The service-account key file is unreadable or not a service-account key: final.
pub const CODE_CREDENTIALS_INVALID: &str = "google_credentials_invalid";
/// A long-running operation was not done within the allowed wait: retryable.
pub const CODE_OPERATION_TIMEOUT: &str = "google_operation_timeout";
/// Document AI found no text in the document: final.
pub const CODE_NO_TEXT_FOUND: &str = "no_text_found";
/// Speech-to-Text recognised no speech in the recording: final.
pub const CODE_NO_SPEECH_FOUND: &str = "no_speech_found";

/// Longest part of a remote message or body kept in a [`RemoteError`], in characters.
const MAX_MESSAGE_CHARS: usize = 500;

/// A failed call to a Google API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RemoteError {
    /// Stable `snake_case` reason (one of the `CODE_*` constants).
    pub code: &'static str,
    /// What went wrong, with Google's own message when it sent one.
    pub message: String,
    /// Whether the same request may succeed later.
    pub retryable: bool,
}

impl RemoteError {
    pub fn new(code: &'static str, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            code,
            message: message.into(),
            retryable,
        }
    }

    /// A final error: the same request will fail again.
    pub fn rejected(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, message, false)
    }

    /// A transient error: the same request may succeed later.
    pub fn transient(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, message, true)
    }
}

/// Google's error body: `{"error": {"code": 400, "message": "...", "status": "..."}}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorBody {
    error: ErrorStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorStatus {
    message: String,
    status: String,
}

/// Classifies an unsuccessful HTTP answer of a Google API.
fn status_error(service: &str, status: StatusCode, body: &[u8]) -> RemoteError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let google_status = parsed.error.status;
    let detail = if parsed.error.message.is_empty() {
        clip(&String::from_utf8_lossy(body))
    } else {
        clip(&parsed.error.message)
    };
    let head = if google_status.is_empty() {
        format!("{service} answered {status}")
    } else {
        format!("{service} answered {status} {google_status}")
    };
    let message = if detail.trim().is_empty() {
        head
    } else {
        format!("{head}: {}", detail.trim())
    };
    let quota = google_status == "RESOURCE_EXHAUSTED";
    if quota && matches!(status.as_u16(), 403 | 429) {
        RemoteError::transient(CODE_QUOTA_EXCEEDED, message)
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        RemoteError::transient(CODE_RATE_LIMITED, message)
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        RemoteError::transient(CODE_UNAVAILABLE, message)
    } else {
        RemoteError::rejected(CODE_REJECTED, message)
    }
}

/// A request that never got a complete answer: always retryable.
fn transport_error(service: &str, err: &reqwest::Error) -> RemoteError {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    RemoteError::transient(
        CODE_UNAVAILABLE,
        format!("{service} request {what}: {}", error_chain(err)),
    )
}

/// A success status whose body is not what the API documents.
fn bad_response(service: &str, err: &serde_json::Error) -> RemoteError {
    RemoteError::transient(
        CODE_BAD_RESPONSE,
        format!("{service} sent an unexpected answer: {err}"),
    )
}

/// An error and its sources, `: `-separated.
fn error_chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    clip(&out)
}

/// At most [`MAX_MESSAGE_CHARS`] characters of `text`.
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn record_duration(api: &'static str, started: Instant) {
    metrics::histogram!(EXTERNAL_API_DURATION_SECONDS, "api" => api)
        .record(started.elapsed().as_secs_f64());
}

fn record_error(api: &'static str, err: &RemoteError) {
    metrics::counter!(EXTERNAL_API_ERRORS_TOTAL, "api" => api, "code" => err.code).increment(1);
}

/// One authenticated JSON exchange with a Google API: the bearer token from `auth`, the
/// body (if any) as JSON, the answer parsed as `T`. Timed and, when failed, counted.
///
/// A 401 makes the cached token suspect: it is dropped and the request sent once more
/// with a fresh one (only for service accounts; a static token cannot be renewed).
struct JsonCall<'a> {
    http: &'a reqwest::Client,
    auth: &'a GoogleAuth,
    /// Metric label, [`API_DOCUMENT_AI`] or [`API_SPEECH`].
    api: &'static str,
    /// For messages: "Document AI", "Speech-to-Text".
    service: &'static str,
    timeout: Duration,
}

impl JsonCall<'_> {
    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<T, RemoteError> {
        let mut renewed = false;
        loop {
            let token = self.auth.access_token().await?;
            let mut request = self
                .http
                .request(method.clone(), url)
                .bearer_auth(token.secret())
                .header(reqwest::header::ACCEPT, "application/json")
                .timeout(self.timeout);
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = Instant::now();
            let answer = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    response.bytes().await.map(|bytes| (status, bytes))
                }
                Err(err) => Err(err),
            };
            record_duration(self.api, started);
            let result = match answer {
                Err(err) => Err(transport_error(self.service, &err)),
                Ok((status, bytes)) if status.is_success() => {
                    serde_json::from_slice(&bytes).map_err(|err| bad_response(self.service, &err))
                }
                Ok((StatusCode::UNAUTHORIZED, _)) if !renewed && self.auth.renewable() => {
                    tracing::info!(api = self.api, "access token refused; fetching a new one");
                    self.auth.invalidate().await;
                    renewed = true;
                    continue;
                }
                Ok((status, bytes)) => Err(status_error(self.service, status, &bytes)),
            };
            if let Err(err) = &result {
                record_error(self.api, err);
            }
            return result;
        }
    }
}

/// `endpoint` without trailing slashes.
fn base_url(endpoint: &str) -> &str {
    endpoint.trim_end_matches('/')
}

/// Mean of the values, `None` if there are none.
fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values
        .into_iter()
        .fold((0.0, 0_u32), |(sum, count), v| (sum + v, count + 1));
    (count > 0).then(|| sum / f64::from(count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> RemoteError {
        status_error(
            "Test",
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
        )
    }

    #[test]
    fn statuses_map_to_codes() {
        let quota =
            r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#;
        let e = classify(429, quota);
        assert_eq!((e.code, e.retryable), (CODE_QUOTA_EXCEEDED, true));
        assert!(e.message.contains("Quota exceeded"), "{}", e.message);
        let quota403 = r#"{"error":{"code":403,"message":"Quota","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(classify(403, quota403).code, CODE_QUOTA_EXCEEDED);
        let denied = r#"{"error":{"code":403,"message":"Denied","status":"PERMISSION_DENIED"}}"#;
        let e = classify(403, denied);
        assert_eq!((e.code, e.retryable), (CODE_REJECTED, false));
        assert_eq!(
            e.message,
            "Test answered 403 Forbidden PERMISSION_DENIED: Denied"
        );
        let e = classify(429, "slow down");
        assert_eq!((e.code, e.retryable), (CODE_RATE_LIMITED, true));
        let e = classify(503, "<html>unavailable</html>");
        assert_eq!((e.code, e.retryable), (CODE_UNAVAILABLE, true));
        let e = classify(500, "");
        assert_eq!(e.message, "Test answered 500 Internal Server Error");
        let e = classify(
            404,
            r#"{"error":{"code":404,"message":"nope","status":"NOT_FOUND"}}"#,
        );
        assert_eq!((e.code, e.retryable), (CODE_REJECTED, false));
    }

    #[test]
    fn long_bodies_are_clipped() {
        let e = classify(400, &"x".repeat(10_000));
        assert!(e.message.chars().count() < MAX_MESSAGE_CHARS + 50);
    }

    #[test]
    fn mean_of_nothing_is_none() {
        assert_eq!(mean([]), None);
        assert_eq!(mean([0.5, 1.0]), Some(0.75));
    }
}
