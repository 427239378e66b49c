//! The document says exactly what the server does (issue 15, items 2–4): required
//! parameters are required, request bodies are closed and typed strictly, constraints
//! and closed value sets are in the schemas, and what the server sends fits them.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    backend_tests,
    helpers::{Backend, TestApp, assert_problem, spawn_app},
    items::upload,
    projects::create_project,
};

backend_tests!(
    required_parameters_are_required,
    constraints_are_declared_and_enforced,
    scalars_are_not_coerced,
    responses_fit_their_schemas,
);

/// The document the server serves.
pub async fn served_document(app: &TestApp) -> Value {
    let resp = app.get("/api/openapi.json").await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// The operation with this id.
pub fn operation<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ops| ops.as_object().unwrap().values())
        .find(|op| op["operationId"] == id)
        .unwrap_or_else(|| panic!("no operation {id}"))
}

fn parameter<'a>(doc: &'a Value, op: &str, name: &str) -> &'a Value {
    operation(doc, op)["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{op} has no parameter {name}"))
}

/// A schema with `$ref`s (and `allOf` wrappers around one) followed.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(reference) = schema["$ref"].as_str() {
        return resolve(doc, doc.pointer(&reference[1..]).unwrap());
    }
    if let Some([only, ..]) = schema["allOf"].as_array().map(Vec::as_slice) {
        return resolve(doc, only);
    }
    schema
}

fn component<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["components"]["schemas"][name]
}

fn property<'a>(doc: &'a Value, schema: &str, field: &str) -> &'a Value {
    resolve(doc, &component(doc, schema)["properties"][field])
}

fn enum_values(schema: &Value) -> Vec<&str> {
    schema["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("not an enum: {schema}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// 400 with this code, naming this field.
async fn refused(resp: reqwest::Response, code: &str, field: &str) {
    let problem = assert_problem(resp, StatusCode::BAD_REQUEST, code).await;
    assert_eq!(problem["field"], field, "{problem}");
}

async fn required_parameters_are_required(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = served_document(&app).await;
    for op in ["document_list", "voice_list", "review_queue", "review_next"] {
        assert_eq!(
            parameter(&doc, op, "project_id")["required"],
            true,
            "{op}: project_id"
        );
    }
    for header in ["Upload-Length", "Upload-Metadata", "Upload-Offset"] {
        let op = if header == "Upload-Offset" {
            "tus_patch"
        } else {
            "tus_create"
        };
        assert_eq!(
            parameter(&doc, op, header)["required"],
            true,
            "{op}: {header}"
        );
    }

    let token = app.signed_up_user("owner@example.org").await;
    for (method, path) in [
        (Method::GET, "/api/documents"),
        (Method::GET, "/api/voice"),
        (Method::GET, "/api/review"),
        (Method::POST, "/api/review/next"),
    ] {
        let resp = app
            .client
            .request(method, app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        refused(resp, "missing_project_id", "project_id").await;
    }
    // A malformed parameter names itself too.
    let resp = app
        .get_auth("/api/documents?project_id=not-a-uuid", &token)
        .await;
    refused(resp, "invalid_parameter", "project_id").await;
}

async fn constraints_are_declared_and_enforced(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = served_document(&app).await;

    // Limits, lengths and ranges are the engine's.
    for op in [
        "project_list",
        "document_list",
        "review_queue",
        "admin_list_users",
    ] {
        let limit = &parameter(&doc, op, "limit")["schema"];
        assert_eq!(limit["minimum"], 1.0, "{op}: {limit}");
        assert_eq!(limit["maximum"], 200.0, "{op}: {limit}");
    }
    assert_eq!(property(&doc, "ProjectRequest", "name")["maxLength"], 200);
    assert_eq!(
        property(&doc, "ProjectRequest", "description")["maxLength"],
        5000
    );
    assert_eq!(
        property(&doc, "CreateTokenRequest", "name")["maxLength"],
        100
    );
    assert_eq!(
        property(&doc, "RegisterRequest", "password")["maxLength"],
        128
    );
    let reviews = property(&doc, "ProjectSettingsDto", "reviews_required");
    assert_eq!(
        (reviews["minimum"].clone(), reviews["maximum"].clone()),
        (json!(1.0), json!(10.0))
    );

    // Every JSON request body is closed, at every depth.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(content) = op["requestBody"]["content"].as_object() else {
                continue;
            };
            assert!(
                content.keys().all(|k| !k.contains("charset")),
                "{method} {path}: {content:?}"
            );
            if let Some(media) = content.get("application/json") {
                let schema = resolve(&doc, &media["schema"]);
                assert_eq!(schema["additionalProperties"], false, "{method} {path}");
            }
        }
    }
    let settings = component(&doc, "ProjectSettingsDto");
    assert_eq!(settings["additionalProperties"], false);
    // Media types without parameters, so clients resolve `application/json`.
    let text = doc.to_string();
    assert!(
        !text.contains("charset=utf-8\":"),
        "a media-type key carries a charset"
    );

    // Closed sets are enums, with today's wire values.
    let roles = ["admin", "contributor", "reviewer"];
    assert_eq!(enum_values(property(&doc, "MemberResponse", "role")), roles);
    assert_eq!(enum_values(property(&doc, "InviteRequest", "role")), roles);
    assert_eq!(
        enum_values(resolve(
            &doc,
            &parameter(&doc, "project_list", "role")["schema"]
        )),
        roles
    );
    assert_eq!(
        enum_values(property(&doc, "UserResponse", "role")),
        ["super_admin", "user"]
    );
    assert_eq!(
        enum_values(property(&doc, "ItemResponse", "status")),
        [
            "uploaded",
            "processing",
            "ready",
            "processing_failed",
            "pending_review",
            "changes_requested",
            "approved",
            "rejected"
        ]
    );
    assert_eq!(
        enum_values(property(&doc, "ItemResponse", "kind")),
        ["document", "audio"]
    );
    let detected: Vec<String> = alta_actors::media::detect::DetectedType::ALL
        .iter()
        .map(|t| t.as_str().to_owned())
        .collect();
    assert_eq!(
        enum_values(property(&doc, "ItemResponse", "detected_type")),
        detected
    );
    assert_eq!(
        enum_values(property(&doc, "JobResponse", "state")),
        ["queued", "running", "done", "failed"]
    );
    assert_eq!(
        enum_values(property(&doc, "JobResponse", "kind")),
        [
            alta_actors::items::KIND_OCR,
            alta_actors::processing::KIND_OCR_IMAGE,
            alta_actors::items::KIND_TRANSCRIPTION,
            alta_actors::jobs::KIND_MAIL,
            alta_actors::exports::KIND_EXPORT,
        ]
    );
    assert_eq!(
        enum_values(property(&doc, "SessionResponse", "method")),
        ["password", "passkey", "google"]
    );
    assert_eq!(
        enum_values(resolve(
            &doc,
            &property(&doc, "CreateTokenRequest", "scopes")["items"]
        )),
        ["read", "write"]
    );
    assert_eq!(
        enum_values(property(&doc, "ReviewDecisionResponse", "outcome")),
        ["pending", "approved", "changes_requested", "rejected"]
    );
    // Downloads list the types they are served with.
    let served = operation(&doc, "voice_content")["responses"]["200"]["content"]
        .as_object()
        .unwrap();
    assert!(
        served.contains_key("audio/mpeg") && served.contains_key("audio/wav"),
        "{served:?}"
    );
    assert!(!served.contains_key("application/pdf"));

    // And the server refuses what the document forbids, naming the field.
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Limits").await;
    for limit in ["0", "201"] {
        let resp = app
            .get_auth(
                &format!("/api/documents?project_id={project}&limit={limit}"),
                &owner,
            )
            .await;
        refused(resp, "invalid_parameter", "limit").await;
    }
    let resp = app.get_auth("/api/projects?role=owner", &owner).await;
    refused(resp, "invalid_parameter", "role").await;
    let resp = send(
        &app,
        Method::POST,
        "/api/projects",
        &owner,
        json!({"name": "x".repeat(201)}),
    )
    .await;
    refused(resp, "invalid_body", "name").await;
    let resp = send(
        &app,
        Method::POST,
        "/api/projects",
        &owner,
        json!({"name": "x".repeat(200)}),
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "200 characters are fine"
    );
    let mut settings = app
        .get_json(&format!("/api/projects/{project}"), &owner)
        .await["settings"]
        .clone();
    settings["reviews_required"] = json!(11);
    let resp = send(
        &app,
        Method::PUT,
        &format!("/api/projects/{project}"),
        &owner,
        json!({"name": "Limits", "settings": settings}),
    )
    .await;
    refused(resp, "invalid_body", "settings.reviews_required").await;
    let resp = send(
        &app,
        Method::POST,
        &format!("/api/projects/{project}/invite"),
        &owner,
        json!({"email": "x@example.org", "role": "owner"}),
    )
    .await;
    refused(resp, "invalid_body", "role").await;
    let resp = send(
        &app,
        Method::PUT,
        &format!("/api/projects/{project}"),
        &owner,
        json!({"name": "Limits", "owner": "me"}),
    )
    .await;
    refused(resp, "invalid_body", "owner").await;
    let got = app
        .get_json(&format!("/api/projects/{project}"), &owner)
        .await;
    assert_eq!(
        got["settings"]["reviews_required"], 1,
        "nothing refused was applied"
    );
}

async fn scalars_are_not_coerced(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Strict").await;
    for name in [
        json!(42),
        json!(true),
        json!(1.5),
        json!(["x"]),
        json!({"x": 1}),
    ] {
        let resp = send(
            &app,
            Method::POST,
            "/api/projects",
            &owner,
            json!({"name": name}),
        )
        .await;
        refused(resp, "invalid_body", "name").await;
    }
    let resp = send(
        &app,
        Method::PUT,
        &format!("/api/projects/{project}"),
        &owner,
        json!({"name": "Strict", "description": 7}),
    )
    .await;
    refused(resp, "invalid_body", "description").await;
    // Nested values are named by their path.
    let mut settings = app
        .get_json(&format!("/api/projects/{project}"), &owner)
        .await["settings"]
        .clone();
    settings["reject_reasons"] = json!(["noise", 3]);
    let resp = send(
        &app,
        Method::PUT,
        &format!("/api/projects/{project}"),
        &owner,
        json!({"name": "Strict", "settings": settings}),
    )
    .await;
    refused(resp, "invalid_body", "settings.reject_reasons[1]").await;

    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"some text to correct\n".to_vec(),
        "note.txt",
        "text/plain",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let item: Value = resp.json().await.unwrap();
    let text_path = format!("/api/documents/{}/text", item["id"].as_str().unwrap());
    for text in [json!(false), json!(0), json!(null)] {
        let resp = send(&app, Method::PUT, &text_path, &owner, json!({"text": text})).await;
        refused(resp, "invalid_body", "text").await;
    }
    // Booleans are booleans, numbers numbers.
    let resp = send(
        &app,
        Method::PUT,
        "/api/auth/me/notifications",
        &owner,
        json!({"review_mail": "false"}),
    )
    .await;
    refused(resp, "invalid_body", "review_mail").await;
    let resp = send(
        &app,
        Method::POST,
        &format!("/api/projects/{project}/review"),
        &owner,
        json!({"item_ids": ["not-a-uuid"]}),
    )
    .await;
    refused(resp, "invalid_body", "item_ids[0]").await;
    // Nothing refused was stored.
    let got = app
        .get_json(&format!("/api/projects/{project}"), &owner)
        .await;
    assert_eq!(got["name"], "Strict");
    assert_eq!(got["description"], "");
    // `null` for an optional field is absent, as the document says (nullable).
    let doc = served_document(&app).await;
    let request = component(&doc, "ProjectRequest");
    assert_eq!(request["properties"]["description"]["nullable"], true);
    assert!(request["properties"]["name"]["nullable"].is_null());
    let resp = send(
        &app,
        Method::PUT,
        &format!("/api/projects/{project}"),
        &owner,
        json!({"name": "Strict", "description": null, "settings": null}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

/// Where `value` does not fit `schema`: a missing required field, a field the schema
/// does not name, a value of another type or outside its enum.
fn misfits(doc: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        out.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    match (schema["type"].as_str(), value) {
        (Some("object"), Value::Object(fields)) => {
            let properties = schema["properties"].as_object();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                if !fields.contains_key(name) {
                    out.push(format!("{path}.{name}: required but absent"));
                }
            }
            for (name, field) in fields {
                match properties.and_then(|p| p.get(name)) {
                    Some(property) => misfits(doc, property, field, &format!("{path}.{name}"), out),
                    None => out.push(format!("{path}.{name}: not in the schema")),
                }
            }
        }
        (Some("array"), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                misfits(doc, &schema["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        (Some("string"), Value::String(_))
        | (Some("boolean"), Value::Bool(_))
        | (Some("integer" | "number"), Value::Number(_))
        | (None, _) => {}
        (Some(ty), other) => out.push(format!("{path}: {other} is not {ty}")),
    }
}

/// The body of a 2xx answer fits the schema the document gives for it.
async fn fits(app: &TestApp, doc: &Value, op: &str, resp: reqwest::Response) -> Value {
    let status = resp.status();
    assert!(status.is_success(), "{op}: {status}");
    let body: Value = resp.json().await.unwrap();
    let schema =
        &operation(doc, op)["responses"][status.as_str()]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{op}: no application/json schema for {status}"
    );
    let mut out = Vec::new();
    misfits(doc, schema, &body, "$", &mut out);
    assert!(
        out.is_empty(),
        "{op} does not fit its schema: {out:?}\n{body}"
    );
    let _ = app;
    body
}

async fn responses_fit_their_schemas(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = served_document(&app).await;
    let owner = app.signed_up_user("owner@example.org").await;
    let resp = send(
        &app,
        Method::POST,
        "/api/projects",
        &owner,
        json!({"name": "Fit"}),
    )
    .await;
    let project = fits(&app, &doc, "project_create", resp).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"a document to check against the schema\n".to_vec(),
        "fit.txt",
        "text/plain",
    )
    .await;
    let item = fits(&app, &doc, "document_upload", resp).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = send(
        &app,
        Method::PUT,
        &format!("/api/documents/{item}/text"),
        &owner,
        json!({"text": "Corrected."}),
    )
    .await;
    // Processing may still hold the item; either answer is documented.
    if resp.status() == StatusCode::OK {
        fits(&app, &doc, "document_edit_text", resp).await;
    }
    for (op, path) in [
        ("auth_me", "/api/auth/me".to_owned()),
        ("auth_sessions", "/api/auth/sessions".to_owned()),
        ("project_get", format!("/api/projects/{project}")),
        ("project_list", "/api/projects".to_owned()),
        (
            "project_members",
            format!("/api/projects/{project}/members"),
        ),
        ("document_get", format!("/api/documents/{item}")),
        (
            "document_list",
            format!("/api/documents?project_id={project}"),
        ),
        ("document_text", format!("/api/documents/{item}/text")),
        (
            "project_audit_log",
            format!("/api/projects/{project}/audit-log"),
        ),
    ] {
        let resp = app.get_auth(&path, &owner).await;
        fits(&app, &doc, op, resp).await;
    }
    let resp = send(
        &app,
        Method::POST,
        &format!("/api/projects/{project}/invite"),
        &owner,
        json!({"email": "guest@example.org", "role": "reviewer"}),
    )
    .await;
    fits(&app, &doc, "invitation_create", resp).await;
    let resp = send(
        &app,
        Method::POST,
        "/api/auth/tokens",
        &owner,
        json!({"name": "export", "scopes": ["read", "write"]}),
    )
    .await;
    fits(&app, &doc, "auth_token_create", resp).await;
    let resp = app.get_auth("/api/auth/tokens", &owner).await;
    let tokens = fits(&app, &doc, "auth_token_list", resp).await;
    assert_eq!(tokens["items"][0]["scopes"], json!(["read", "write"]));
    let resp = app
        .login("owner@example.org", crate::helpers::PASSWORD)
        .await;
    let login = fits(&app, &doc, "auth_login", resp).await;
    assert_eq!(login["token_type"], "bearer");
}
