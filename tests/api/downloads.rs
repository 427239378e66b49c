//! Downloads are saved under a name whose extension matches the type detected from the
//! content, not the one the uploader chose: a text file named `x.html` must not open
//! as a web page from the downloads folder.

use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    backend_tests,
    helpers::{Backend, TestAppBuilder},
    items::upload,
    projects::create_project,
};

backend_tests!(downloads_carry_the_detected_type_s_extension);

async fn disposition(app: &crate::helpers::TestApp, token: &str, id: &str) -> String {
    let resp = app
        .get_auth(&format!("/api/documents/{id}/content"), token)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn downloads_carry_the_detected_type_s_extension(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Downloads").await;

    let html = b"<html><body><script>alert(1)</script></body></html>\n".to_vec();
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        html,
        "x.html",
        "text/plain",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let item: Value = resp.json().await.unwrap();
    assert_eq!(item["detected_type"], "plain_text");
    let id = item["id"].as_str().unwrap();
    let d = disposition(&app, &owner, id).await;
    assert!(d.starts_with("attachment; filename=\"x.html.txt\""), "{d}");
    assert!(d.contains("filename*=UTF-8''x.html.txt"), "{d}");

    // A name that fits its content is kept as it is.
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"Habari.\n".to_vec(),
        "notes.txt",
        "text/plain",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let item: Value = resp.json().await.unwrap();
    let d = disposition(&app, &owner, item["id"].as_str().unwrap()).await;
    assert!(d.starts_with("attachment; filename=\"notes.txt\""), "{d}");
}
