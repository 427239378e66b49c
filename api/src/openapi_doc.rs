//! Finishes the generated OpenAPI document: poem-openapi puts every status of
//! [`ApiError`](crate::ApiError) on every operation, so here each operation keeps only
//! the error statuses it can produce, gains those the middleware adds (412 on tus, 413
//! and 415 on bodies), and the problem schema's `code` becomes the enum of every
//! [`ErrorCode`], each documented once (`x-error-codes`). schemathesis checks the result
//! (an answered status the operation does not list fails its conformance check).

use alta_actors::ErrorCode;
use serde_json::{Map, Value, json};

/// The error statuses `ApiError` declares; the others an operation lists (206, 416,
/// 460, …) are its own and stay.
const API_ERROR_STATUSES: [u16; 14] = [
    400, 401, 403, 404, 409, 410, 412, 413, 415, 422, 429, 500, 501, 503,
];

/// Operations whose errors are their own (not problems from the engine).
const UNTOUCHED: [&str; 2] = ["health_live", "health_ready"];

/// Operations limited per client IP or per account (429 with `Retry-After`).
const RATE_LIMITED: [&str; 11] = [
    "auth_google_login",
    "auth_google_callback",
    "auth_passkey_login",
    "auth_passkey_login_verify",
    "auth_register",
    "auth_verify_email",
    "auth_resend_verification",
    "auth_login",
    "auth_password_forgot",
    "auth_password_reset",
    "auth_password_change",
];

/// Reads that can be refused with 403: the global matrix (admin pages), a project role
/// that may not (audit log, invitations, the review queue), or an API token where a
/// signed-in session is needed (`session_required`). Other reads of what the caller may
/// not see answer 404, never 403 (docs/ARCHITECTURE.md, rule 6).
const FORBIDDEN_READS: [&str; 15] = [
    "admin_audit_log",
    "exports_list",
    "exports_get",
    "exports_download",
    "analytics_summary",
    "analytics_series",
    "analytics_contributors",
    "analytics_reviewers",
    "admin_list_jobs",
    "admin_list_users",
    "project_audit_log",
    "invitation_list",
    "review_queue",
    "auth_passkey_list",
    "auth_token_list",
];

/// Operations without a body or cursor whose input can still be refused as content (422):
/// a verification token, an invitation that expired, a time range whose ends are swapped,
/// a series period that makes no series.
const REFUSES_CONTENT: [&str; 5] = [
    "analytics_series",
    "auth_verify_email",
    "invitation_accept",
    "project_audit_log",
    "admin_audit_log",
];

/// The tus operations that need `Tus-Resumable: 1.0.0` (412 without it).
const TUS_VERSIONED: [&str; 4] = ["tus_create", "tus_head", "tus_patch", "tus_terminate"];

/// Statuses an operation produces beyond the rules in [`statuses`], by operationId,
/// each with the codes that cause it.
const SPECIFIC: &[(&str, &[u16])] = &[
    // Sign-in without a bearer token still refuses with 401: invalid_credentials,
    // invalid_refresh_token, passkey_rejected, invalid_login_code; and 403:
    // email_not_verified, google_email_not_verified, account_disabled.
    ("auth_login", &[401, 403]),
    ("auth_refresh", &[401]),
    ("auth_google_exchange", &[401, 403, 501]),
    // passkeys_disabled, google_signin_disabled
    ("auth_passkey_login", &[501]),
    ("auth_passkey_login_verify", &[401, 501]),
    ("auth_passkey_list", &[501]),
    ("auth_passkey_delete", &[501]),
    ("auth_passkey_rename", &[501]),
    // credential_registered, too_many_passkeys
    ("auth_passkey_register", &[409, 501]),
    ("auth_passkey_register_verify", &[409, 501]),
    ("auth_google_login", &[501]),
    ("auth_google_callback", &[501]),
    // conflict: two sign-ups for one address at once (the unique index decides)
    ("auth_register", &[409]),
    // too_many_tokens
    ("auth_token_create", &[409]),
    // job_not_failed
    ("admin_retry_job", &[409]),
    // already_member, invitation_pending
    ("invitation_create", &[409]),
    ("invitation_accept", &[409]),
    // last_admin
    ("member_remove", &[409]),
    ("member_update_role", &[409]),
    // project_not_deleted, restore_window_passed
    ("project_restore", &[409]),
    // item_processing, item_in_review
    ("document_delete", &[409]),
    ("voice_delete", &[409]),
    ("document_reprocess", &[409]),
    ("voice_reprocess", &[409]),
    ("document_edit_text", &[409]),
    ("voice_edit_transcript", &[409]),
    // duplicate_content, duplicate_external_id
    ("document_upload", &[409]),
    ("voice_upload", &[409]),
    // item_not_ready
    ("review_submit", &[409]),
    // schema_in_use
    ("label_schema_put", &[409]),
    // item_processing, item_in_review, no_label_schema
    ("annotations_bulk_put", &[409]),
    // item_processing, item_in_review, no_label_schema; precondition_failed (If-Match)
    ("document_annotation_put", &[409, 412]),
    ("voice_annotation_put", &[409, 412]),
    // item_processing, item_in_review, no_label_schema
    ("document_annotation_suggestion_put", &[409]),
    ("voice_annotation_suggestion_put", &[409]),
    // item_processing, item_in_review, no_label_schema, suggestion_stale; If-Match
    ("document_annotation_suggestion_accept", &[409, 412]),
    ("voice_annotation_suggestion_accept", &[409, 412]),
    // review_claimed, lease_lost, already_decided, item_not_pending
    ("review_next", &[409]),
    ("review_decide", &[409]),
    ("review_renew", &[409]),
    ("review_skip", &[409]),
    // file_too_large (announced length); what Upload-Metadata carries (422)
    ("tus_create", &[413, 422]),
    // upload_refused
    ("tus_head", &[410]),
    // offset_mismatch, upload_busy, upload_finished, idempotency_key_in_progress;
    // upload_expired, upload_refused; a refused complete file (duplicate_content, …)
    ("tus_patch", &[409, 410, 422]),
    // export_not_ready, export_not_stored
    ("exports_download", &[409]),
    // delivery_pending
    ("webhooks_redeliver", &[409]),
];

/// What each error status means, for responses this module adds.
fn description(status: u16) -> &'static str {
    match status {
        400 => "The request is malformed or a value fails validation.",
        401 => "Missing, invalid or expired credentials.",
        403 => "Authenticated but not allowed, or the account must do something first.",
        404 => "No such resource (or it is not visible to the caller).",
        409 => "Conflicts with the current state.",
        410 => "It existed and is gone for good.",
        412 => "`If-Match` names a version that is no longer current; read it again.",
        413 => "The content is larger than allowed.",
        415 => "The content is of a type that is not accepted.",
        422 => "Well-formed but not processable as asked.",
        429 => "Rate limited; retry after the given number of seconds.",
        500 => "An unexpected error; quote the request id when reporting it.",
        501 => "This server is not configured for the feature.",
        503 => "A dependency is unavailable; nothing was written; retry shortly.",
        _ => "An error.",
    }
}

/// Give every operation its own error statuses and document every error code.
pub fn finish(doc: &mut Value) {
    document_error_codes(doc);
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, ops) in paths.iter_mut() {
            for (method, op) in ops.as_object_mut().into_iter().flatten() {
                finish_operation(path, method, op);
            }
        }
    }
}

/// The error statuses an operation can answer.
pub fn statuses(op_id: &str, method: &str, op: &Value) -> Vec<u16> {
    let is_read = method.eq_ignore_ascii_case("get") || method.eq_ignore_ascii_case("head");
    let has_body = op.get("requestBody").is_some();
    let params: Vec<&Value> = op
        .get("parameters")
        .and_then(Value::as_array)
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    let param_in = |place: &str| {
        params
            .iter()
            .any(|p| p.get("in").and_then(Value::as_str) == Some(place))
    };
    let param_named = |name: &str| {
        params
            .iter()
            .any(|p| p.get("name").and_then(Value::as_str) == Some(name))
    };
    let authenticated = op.get("security").is_some();
    let mut out = vec![500];
    // tus discovery answers constants: no engine, no input.
    if op_id == "tus_options" {
        return out;
    }
    out.push(503);
    if has_body || !params.is_empty() {
        out.push(400);
    }
    if authenticated {
        out.push(401);
        // A write can always be 403: an API token with scope `read` (insufficient_scope).
        if !is_read || FORBIDDEN_READS.contains(&op_id) {
            out.push(403);
        }
    }
    if param_in("path") || param_named("project_id") || op_id == "tus_create" {
        out.push(404);
    }
    if has_body {
        out.extend([413, 415]);
    }
    // Input that fits the document but whose content the engine refuses (a blank name,
    // a wrong token, a cursor this listing did not issue, a rule between fields).
    if has_body || param_named("cursor") || REFUSES_CONTENT.contains(&op_id) {
        out.push(422);
    }
    if param_named("Idempotency-Key") {
        // idempotency_key_in_progress, idempotency_key_reused
        out.extend([409, 422]);
    }
    if RATE_LIMITED.contains(&op_id) {
        out.push(429);
    }
    if TUS_VERSIONED.contains(&op_id) {
        out.push(412);
    }
    if let Some((_, extra)) = SPECIFIC.iter().find(|(id, _)| *id == op_id) {
        out.extend(extra.iter());
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn finish_operation(path: &str, method: &str, op: &mut Value) {
    let Some(op_id) = op
        .get("operationId")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return;
    };
    if UNTOUCHED.contains(&op_id.as_str()) {
        return;
    }
    let wanted = statuses(&op_id, method, op);
    if TUS_VERSIONED.contains(&op_id.as_str()) {
        require_tus_resumable(op);
    }
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    responses.retain(|status, _| {
        !status
            .parse::<u16>()
            .is_ok_and(|s| API_ERROR_STATUSES.contains(&s) && !wanted.contains(&s))
    });
    for status in wanted {
        responses
            .entry(status.to_string())
            .or_insert_with(|| problem_response(status, &op_id));
    }
    if path.starts_with("/api/uploads") {
        // Every tus answer carries `Tus-Resumable`, discovery included.
        for (status, response) in responses.iter_mut() {
            if status.starts_with('2') || op_id != "tus_options" {
                add_header(
                    response,
                    "Tus-Resumable",
                    "The tus version spoken (`1.0.0`).",
                );
            }
        }
    }
}

fn problem_response(status: u16, op_id: &str) -> Value {
    let tus = TUS_VERSIONED.contains(&op_id);
    let description = match status {
        412 if tus => {
            "`Tus-Resumable: 1.0.0` is missing (`Tus-Version` lists the versions spoken)."
        }
        _ => description(status),
    };
    let mut response = json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    });
    match status {
        401 => add_header(&mut response, "WWW-Authenticate", "The bearer challenge."),
        412 if tus => add_header(
            &mut response,
            "Tus-Version",
            "The tus versions this server speaks.",
        ),
        429 | 503 => add_header(
            &mut response,
            "Retry-After",
            "Seconds to wait before retrying.",
        ),
        _ => {}
    }
    response
}

fn add_header(response: &mut Value, name: &str, description: &str) {
    let Some(response) = response.as_object_mut() else {
        return;
    };
    let headers = response
        .entry("headers")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(headers) = headers.as_object_mut()
        && !headers.keys().any(|k| k.eq_ignore_ascii_case(name))
    {
        let schema = if name == "Retry-After" {
            json!({"type": "integer", "format": "uint64"})
        } else {
            json!({"type": "string"})
        };
        headers.insert(
            name.to_owned(),
            json!({"description": description, "required": true, "schema": schema}),
        );
    }
}

/// `Tus-Resumable: 1.0.0` is a required request header of the versioned tus requests.
fn require_tus_resumable(op: &mut Value) {
    let Some(op) = op.as_object_mut() else {
        return;
    };
    let params = op
        .entry("parameters")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(params) = params.as_array_mut() {
        params.push(json!({
            "name": "Tus-Resumable",
            "in": "header",
            "required": true,
            "description": "The tus protocol version; this server speaks `1.0.0` only (412 otherwise).",
            "schema": {"type": "string", "enum": ["1.0.0"]},
        }));
    }
}

/// The problem schema's `code` is the enum of every code, and `x-error-codes` says
/// once what each means, with its status.
fn document_error_codes(doc: &mut Value) {
    let Some(problem) = doc.pointer_mut("/components/schemas/Problem") else {
        return;
    };
    let codes: Vec<Value> = ErrorCode::ALL
        .iter()
        .map(|c| Value::String(c.as_str().to_owned()))
        .collect();
    let table: Map<String, Value> = ErrorCode::ALL
        .iter()
        .map(|c| {
            (
                c.as_str().to_owned(),
                json!({"status": c.statuses(), "description": c.description()}),
            )
        })
        .collect();
    if let Some(code) = problem
        .pointer_mut("/properties/code")
        .and_then(Value::as_object_mut)
    {
        code.insert("enum".into(), Value::Array(codes));
        code.insert(
            "description".into(),
            Value::String(
                "Stable machine-readable code; match on this, not on `detail`. \
                 `x-error-codes` on this schema says what each code means."
                    .into(),
            ),
        );
    }
    if let Some(problem) = problem.as_object_mut() {
        problem.insert("x-error-codes".into(), Value::Object(table));
    }
}
