//! Group commit: a project's actor commits the uploads (and review decisions) that
//! arrive together in one transaction, a savepoint each. Seen from outside, nothing
//! may change: every success is committed and visible, every refusal wrote nothing,
//! even when refusals and successes share a group.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    backend_tests,
    helpers::{Backend, TestAppBuilder},
    items::upload,
    projects::create_project,
};

backend_tests!(uploads_committed_together_succeed_or_fail_alone);

async fn uploads_committed_together_succeed_or_fail_alone(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Crowd").await;
    // 24 distinct texts, each sent twice at once: 48 uploads in flight, of which
    // exactly one of each pair can win (the other is a duplicate of it).
    let texts: Vec<String> = (0..24)
        .map(|i| format!("Document number {i} of the crowd, with its own words."))
        .collect();
    let sends = texts.iter().chain(texts.iter()).map(|text| {
        upload(
            &app,
            &owner,
            "/api/documents",
            &project,
            text.clone().into_bytes(),
            "crowd.txt",
            "text/plain",
        )
    });
    let answers = join_all(sends).await;
    let mut created = Vec::new();
    let mut duplicates = 0;
    for resp in answers {
        match resp.status() {
            StatusCode::CREATED => {
                let body: Value = resp.json().await.unwrap();
                created.push(body["id"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => {
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["code"], "duplicate_content", "{body}");
                duplicates += 1;
            }
            other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
        }
    }
    assert_eq!(created.len(), 24, "one of each pair is created");
    assert_eq!(duplicates, 24, "the other is refused");

    // Every success is there; no refusal left an item or an audit row behind.
    let list = app
        .get_json(
            &format!("/api/documents?project_id={project}&limit=200"),
            &owner,
        )
        .await;
    let mut listed: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    created.sort();
    assert_eq!(listed, created);
    let audit = app
        .get_json(
            &format!("/api/projects/{project}/audit-log?action=item.uploaded&limit=200"),
            &owner,
        )
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 24, "{audit}");
}
