//! Turns every failure into a problem document: poem's own errors (unknown route,
//! wrong method, unparsable body, failed auth) and any error response that is not
//! one already. This is what makes "one error shape" true for every request.

use poem::{
    Endpoint, IntoResponse, PathPattern, Request, Response, Result,
    error::{MethodNotAllowedError, NotFoundError},
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{
    OperationId,
    error::{
        AuthorizationError, ContentTypeError, ParseMultipartError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    },
};

use std::sync::Arc;

use alta_actors::ErrorCode;

use super::allowed_methods::AllowedMethods;
use crate::problem::Problem;

pub const PROBLEM_JSON: &str = "application/problem+json";

pub async fn convert_errors<E: Endpoint>(
    next: E,
    req: Request,
    allowed: Arc<AllowedMethods>,
) -> Result<Response> {
    let path = req.uri().path().to_owned();
    let mut resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => error_response(err),
    };
    // RFC 9110: a 405 says which methods the path does answer.
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && !resp.headers().contains_key(header::ALLOW)
        && let Ok(allow) = HeaderValue::from_str(&allowed.allow(&path))
    {
        resp.headers_mut().insert(header::ALLOW, allow);
    }
    Ok(ensure_problem(resp))
}

/// A poem error as a problem response, keeping what metrics need to label it.
pub fn error_response(err: poem::Error) -> Response {
    let operation = err.data::<OperationId>().map(|op| OperationId(op.0));
    let pattern = err.data::<PathPattern>().cloned();
    let mut resp = if err.is_from_response() {
        err.into_response()
    } else {
        let status = err.status();
        let code = if err.is::<NotFoundError>() {
            ErrorCode::NotFound
        } else if err.is::<MethodNotAllowedError>() {
            ErrorCode::MethodNotAllowed
        } else if err.is::<ParseRequestPayloadError>() || err.is::<ParseMultipartError>() {
            ErrorCode::InvalidBody
        } else if err.is::<ParseParamError>() || err.is::<ParsePathError>() {
            ErrorCode::InvalidParameter
        } else if err.is::<ContentTypeError>() {
            ErrorCode::UnsupportedMediaType
        } else if err.is::<AuthorizationError>() {
            ErrorCode::Unauthorized
        } else {
            ErrorCode::for_status(status.as_u16())
        };
        let detail = if status.is_server_error() {
            tracing::error!(error = %err, "unhandled server error");
            "an unexpected error occurred; quote the request id when reporting it".to_owned()
        } else if code == ErrorCode::Unauthorized {
            "a valid bearer token is required".to_owned()
        } else if let Some(path) = err.downcast_ref::<ParsePathError>() {
            // The internal parameter name means nothing to clients.
            format!("a path parameter is not valid: {}", path.reason)
        } else {
            err.to_string()
        };
        let mut problem = Problem::new(status, code, detail);
        // A query or header parameter is named by the client; say which one is at fault.
        problem.field = err
            .downcast_ref::<ParseParamError>()
            .map(|param| param.name.to_owned());
        let mut resp = problem_response(problem);
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    };
    if let Some(op) = operation {
        resp.set_data(op);
    }
    if let Some(pattern) = pattern {
        resp.set_data(pattern);
    }
    resp
}

/// Operations whose error answers are documented JSON bodies, not problems: a
/// readiness 503 says which dependency failed.
const OWN_ERROR_BODIES: &[&str] = &["health_ready"];

/// An error status whose body is not a problem gets one.
fn ensure_problem(resp: Response) -> Response {
    if resp
        .data::<OperationId>()
        .is_some_and(|op| OWN_ERROR_BODIES.contains(&op.0))
    {
        return resp;
    }
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(PROBLEM_JSON));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return resp;
    }
    let (parts, _) = resp.into_parts();
    let mut fresh = problem_response(Problem::new(
        status,
        ErrorCode::for_status(status.as_u16()),
        status.canonical_reason().unwrap_or("error"),
    ));
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    *fresh.extensions_mut() = parts.extensions;
    fresh
}

pub fn problem_response(problem: Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_string(&problem_json(&problem)).unwrap_or_default();
    Response::builder()
        .status(status)
        .content_type(PROBLEM_JSON)
        .body(body)
}

fn problem_json(p: &Problem) -> serde_json::Value {
    let mut value = serde_json::json!({
        "type": p.problem_type,
        "title": p.title,
        "status": p.status,
        "detail": p.detail,
        "code": p.code,
        "request_id": p.request_id,
    });
    if let Some(field) = &p.field {
        value["field"] = serde_json::Value::String(field.clone());
    }
    value
}
