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

use crate::problem::Problem;

pub const PROBLEM_JSON: &str = "application/problem+json";

pub async fn convert_errors<E: Endpoint>(next: E, req: Request) -> Result<Response> {
    let resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => error_response(err),
    };
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
            "not_found"
        } else if err.is::<MethodNotAllowedError>() {
            "method_not_allowed"
        } else if err.is::<ParseRequestPayloadError>() || err.is::<ParseMultipartError>() {
            "invalid_body"
        } else if err.is::<ParseParamError>() || err.is::<ParsePathError>() {
            "invalid_parameter"
        } else if err.is::<ContentTypeError>() {
            "unsupported_media_type"
        } else if err.is::<AuthorizationError>() {
            "unauthorized"
        } else {
            code_for_status(status)
        };
        let detail = if status.is_server_error() {
            tracing::error!(error = %err, "unhandled server error");
            "an unexpected error occurred; quote the request id when reporting it".to_owned()
        } else if code == "unauthorized" {
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
        code_for_status(status),
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

pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "request_timeout",
        409 => "conflict",
        411 => "length_required",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "rate_limited",
        501 => "not_implemented",
        503 => "service_unavailable",
        s if s >= 500 => "internal_error",
        _ => "bad_request",
    }
}
