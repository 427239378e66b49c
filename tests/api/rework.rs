//! The rework loop through the upload path: a contributor replaces the file of an item
//! sent back for changes. The item keeps its id and review history, its earlier file is
//! kept (and not swept), the new file is processed, and the item goes back to review.

use reqwest::{
    StatusCode,
    multipart::{Form, Part},
};
use serde_json::{Value, json};

use crate::{
    backend_tests,
    helpers::{Backend, TestApp, TestAppBuilder, assert_problem},
    processing::{settled, uploaded},
    projects::{create_project, join},
};

backend_tests!(a_rejected_document_gets_a_new_file_and_is_approved);

/// Upload `bytes` as a replacement of `item` (multipart field `replaces`).
async fn replace(
    app: &TestApp,
    token: &str,
    project: &str,
    item: &str,
    bytes: &[u8],
) -> reqwest::Response {
    let part = Part::bytes(bytes.to_vec())
        .file_name("fixed.txt")
        .mime_str("text/plain")
        .unwrap();
    let form = Form::new()
        .text("project_id", project.to_owned())
        .text("replaces", item.to_owned())
        .part("file", part);
    app.client
        .post(app.url("/api/documents"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn send(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
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

async fn content(app: &TestApp, token: &str, item: &str) -> String {
    let resp = app
        .get_auth(&format!("/api/documents/{item}/content"), token)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.unwrap()
}

async fn a_rejected_document_gets_a_new_file_and_is_approved(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let admin = app.signed_up_user("admin@example.org").await;
    let project = create_project(&app, &admin, "rework").await;
    let contributor = join(&app, &admin, &project, "c@example.org", "contributor").await;
    let other = join(&app, &admin, &project, "c2@example.org", "contributor").await;
    let reviewer = join(&app, &admin, &project, "r@example.org", "reviewer").await;

    let first = b"Habari za asubuhi, with a typo\n".to_vec();
    let item = uploaded(
        &app,
        &contributor,
        "/api/documents",
        &project,
        first.clone(),
        "a.txt",
        "text/plain",
    )
    .await;
    settled(&app, &contributor, "/api/documents", &item).await;
    let submit = |token: String| {
        let (app, project, item) = (&app, project.clone(), item.clone());
        async move {
            send(
                app,
                &token,
                reqwest::Method::POST,
                &format!("/api/projects/{project}/review"),
                json!({"item_ids": [item]}),
            )
            .await
        }
    };
    assert_eq!(submit(contributor.clone()).await.status(), StatusCode::OK);

    // While it is in review, its file cannot be replaced.
    let resp = replace(&app, &contributor, &project, &item, b"too early\n").await;
    assert_problem(resp, StatusCode::CONFLICT, "item_in_review").await;

    let resp = send(
        &app,
        &reviewer,
        reqwest::Method::PATCH,
        &format!("/api/review/{item}"),
        json!({"decision": "reject", "reason_code": "wrong_text", "comment": "typo in line 1"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let decided: Value = resp.json().await.unwrap();
    assert_eq!(decided["item"]["status"], "changes_requested");

    // Someone else's item does not exist for another contributor; a recording cannot
    // replace a document; a malformed id is a 400.
    let resp = replace(&app, &other, &project, &item, b"not mine\n").await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = replace(&app, &contributor, &project, "not-an-id", b"x\n").await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_replaces").await;
    let unchanged: Value = app
        .get_json(&format!("/api/documents/{item}"), &contributor)
        .await;
    assert_eq!(
        unchanged["status"], "changes_requested",
        "refusals change nothing"
    );
    assert_eq!(
        content(&app, &contributor, &item).await.as_bytes(),
        first.as_slice()
    );

    // The contributor sends a corrected file: same item, new file, processed again.
    let fixed = b"Habari za asubuhi, corrected\n";
    let resp = replace(&app, &contributor, &project, &item, fixed).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let replaced: Value = resp.json().await.unwrap();
    assert_eq!(replaced["id"], item.as_str(), "the item keeps its id");
    assert_eq!(replaced["status"], "uploaded");
    assert_eq!(replaced["review_round"], 1);
    let ready = settled(&app, &contributor, "/api/documents", &item).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(content(&app, &contributor, &item).await.as_bytes(), fixed);
    let text: Value = app
        .get_json(&format!("/api/documents/{item}/text"), &contributor)
        .await;
    assert!(
        text["current"]["text"]
            .as_str()
            .unwrap()
            .contains("corrected"),
        "the new file's text is current: {text}"
    );

    // Both files survive the sweeper: the current one and the one kept as history.
    assert_eq!(app.engine.sweep_orphans(std::time::Duration::ZERO).await, 0);
    assert_eq!(content(&app, &contributor, &item).await.as_bytes(), fixed);

    // Back to review; round 1 is decided afresh and the history keeps round 0.
    assert_eq!(submit(contributor.clone()).await.status(), StatusCode::OK);
    let resp = send(
        &app,
        &reviewer,
        reqwest::Method::PATCH,
        &format!("/api/review/{item}"),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let decided: Value = resp.json().await.unwrap();
    assert_eq!(decided["item"]["status"], "approved");
    assert_eq!(decided["decision"]["round"], 1);
    let history: Value = app
        .get_json(&format!("/api/documents/{item}/reviews"), &contributor)
        .await;
    let rounds: Vec<(i64, &str)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["round"].as_i64().unwrap(),
                d["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(rounds, [(0, "reject"), (1, "approve")]);
    assert_eq!(history["items"][0]["comment"], "typo in line 1");

    // An approved item is final: no new file.
    let resp = replace(&app, &contributor, &project, &item, b"after approval\n").await;
    assert_problem(resp, StatusCode::CONFLICT, "item_in_review").await;
}
