//! What generated clients rely on (issue 15, first piece): an optional response field
//! is absent when it has no value, never `null`, as the OpenAPI document declares it (an
//! optional, non-nullable property). So a last page has no `next_cursor` at all, and a
//! client's `while (cursor !== undefined)` loop ends.

use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    backend_tests,
    helpers::{Backend, TestApp, spawn_app},
    items::upload,
    projects::create_project,
};

backend_tests!(optional_response_fields_are_absent_never_null);

/// Every JSON path in `value` whose value is `null`.
fn null_paths(value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Null => out.push(path.to_owned()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                null_paths(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                null_paths(item, &format!("{path}.{key}"), out);
            }
        }
        _ => {}
    }
}

async fn get_ok(app: &TestApp, path: &str, token: &str) -> Value {
    let resp = app.get_auth(path, token).await;
    assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
    let body: Value = resp.json().await.unwrap();
    let mut nulls = Vec::new();
    null_paths(&body, "$", &mut nulls);
    assert!(
        nulls.is_empty(),
        "GET {path} sent null at {nulls:?}: {body}"
    );
    body
}

async fn optional_response_fields_are_absent_never_null(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Contract").await;
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"a document with few fields set\n".to_vec(),
        "plain.txt",
        "text/plain",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: Value = resp.json().await.unwrap();
    let mut nulls = Vec::new();
    null_paths(&created, "$", &mut nulls);
    assert!(nulls.is_empty(), "the upload's 201 sent null at {nulls:?}");
    let id = created["id"].as_str().unwrap();

    get_ok(&app, "/api/auth/me", &owner).await;
    get_ok(&app, &format!("/api/projects/{project}"), &owner).await;
    get_ok(&app, &format!("/api/documents/{id}"), &owner).await;
    get_ok(&app, &format!("/api/projects/{project}/members"), &owner).await;
    for list in [
        "/api/projects".to_owned(),
        format!("/api/documents?project_id={project}"),
    ] {
        let page = get_ok(&app, &list, &owner).await;
        assert!(
            !page.as_object().unwrap().contains_key("next_cursor"),
            "the last page of {list} has no next_cursor: {page}"
        );
    }
    // A first page that is not the last has a cursor, and following it ends.
    upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"a second document\n".to_vec(),
        "second.txt",
        "text/plain",
    )
    .await;
    let first = get_ok(
        &app,
        &format!("/api/documents?project_id={project}&limit=1"),
        &owner,
    )
    .await;
    let cursor = first["next_cursor"].as_str().expect("a cursor on page 1");
    let last = get_ok(
        &app,
        &format!("/api/documents?project_id={project}&limit=1&cursor={cursor}"),
        &owner,
    )
    .await;
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
    assert!(!last.as_object().unwrap().contains_key("next_cursor"));
}
