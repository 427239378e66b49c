//! Uploads are authorised before they are read: the caller, the project and an upload
//! permit come before any byte of the file is stored; and a busy server queues uploads
//! for a while instead of refusing them at once.

use std::time::Duration;

use futures::{SinkExt, channel::mpsc};
use reqwest::{
    Body, StatusCode,
    multipart::{Form, Part},
};
use serde_json::Value;

use crate::{
    backend_tests,
    helpers::{Backend, TestApp, TestAppBuilder, assert_problem},
    items::upload,
    projects::create_project,
};

backend_tests!(
    a_non_members_upload_is_refused_before_its_file_is_read,
    project_id_comes_first_or_in_the_query_string,
    uploads_wait_for_a_turn_and_are_refused_only_after_the_wait,
);

const MIB: usize = 1024 * 1024;

type Chunks = mpsc::Sender<std::io::Result<Vec<u8>>>;

/// POST a document whose file part streams from the returned sender (kept open until
/// the test drops it). `project_id` goes first in the form.
fn streaming_upload(
    app: &TestApp,
    token: &str,
    project: &str,
) -> (
    Chunks,
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
) {
    let (tx, rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(0);
    let part = Part::stream(Body::wrap_stream(rx))
        .file_name("stream.txt")
        .mime_str("text/plain")
        .unwrap();
    let form = Form::new()
        .text("project_id", project.to_owned())
        .part("file", part);
    let request = app
        .client
        .post(app.url("/api/documents"))
        .bearer_auth(token)
        .multipart(form)
        .send();
    (tx, tokio::spawn(request))
}

/// Files in the blob store's incoming folder (uploads being received).
fn incoming_files(app: &TestApp) -> usize {
    std::fs::read_dir(app.data_dir().join("blobs").join(".incoming"))
        .map(|dir| dir.flatten().count())
        .unwrap_or(0)
}

async fn a_non_members_upload_is_refused_before_its_file_is_read(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Private").await;
    let stranger = app.signed_up_user("stranger@example.org").await;

    let (mut tx, request) = streaming_upload(&app, &stranger, &project);
    // Offer 64 MiB, a MiB at a time. A server that reads the file before checking the
    // caller takes it all; one that checks first stops reading after its socket
    // buffers fill, and a send then stalls.
    let chunk = vec![b'x'; MIB];
    let mut taken = 0;
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_secs(3), tx.send(Ok(chunk.clone()))).await {
            Ok(Ok(())) => taken += 1,
            // Stalled, or the request is over: the server stopped reading.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    assert!(
        taken < 64,
        "the server read the whole 64 MiB body of a caller who is not in the project"
    );
    drop(tx);
    // The answer is a 404 (or the connection was cut while the client still sent).
    if let Ok(resp) = request.await.unwrap() {
        assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_eq!(incoming_files(&app), 0, "nothing of the file was stored");
}

async fn project_id_comes_first_or_in_the_query_string(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Order").await;
    let file = || {
        Part::bytes(b"Some text.\n".to_vec())
            .file_name("a.txt")
            .mime_str("text/plain")
            .unwrap()
    };

    // A file before project_id: refused, and nothing stored.
    let form = Form::new()
        .part("file", file())
        .text("project_id", project.clone());
    let resp = app
        .client
        .post(app.url("/api/documents"))
        .bearer_auth(&owner)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(resp, StatusCode::BAD_REQUEST, "project_id_first").await;
    assert_eq!(problem["field"], "project_id");
    assert_eq!(incoming_files(&app), 0);

    // project_id in the query string: the form needs only the file.
    let resp = app
        .client
        .post(app.url(&format!("/api/documents?project_id={project}")))
        .bearer_auth(&owner)
        .multipart(Form::new().text("title", "Queried").part("file", file()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let item: Value = resp.json().await.unwrap();
    assert_eq!(item["project_id"], project.as_str());
    assert_eq!(item["title"], "Queried");

    // Both, disagreeing: refused.
    let other = create_project(&app, &owner, "Other").await;
    let resp = app
        .client
        .post(app.url(&format!("/api/documents?project_id={other}")))
        .bearer_auth(&owner)
        .multipart(
            Form::new()
                .text("project_id", project.clone())
                .part("file", file()),
        )
        .send()
        .await
        .unwrap();
    assert_problem(
        resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "project_id_mismatch",
    )
    .await;

    // A text field longer than its limit is refused as it streams. (Small enough to
    // be sent whole before the early answer: a client still writing when the server
    // closes may see the connection reset instead.)
    let resp = app
        .client
        .post(app.url("/api/documents"))
        .bearer_auth(&owner)
        .multipart(
            Form::new()
                .text("title", "t".repeat(8 * 1024))
                .text("project_id", project.clone())
                .part("file", file()),
        )
        .send()
        .await
        .unwrap();
    let problem = assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    assert_eq!(problem["field"], "title");

    // No project at all, or no file: clear 400s.
    let resp = app
        .client
        .post(app.url("/api/documents"))
        .bearer_auth(&owner)
        .multipart(Form::new().text("title", "Lost"))
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::BAD_REQUEST, "missing_project_id").await;
    let resp = app
        .client
        .post(app.url("/api/documents"))
        .bearer_auth(&owner)
        .multipart(Form::new().text("project_id", project.clone()))
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::BAD_REQUEST, "missing_file").await;
}

async fn uploads_wait_for_a_turn_and_are_refused_only_after_the_wait(backend: Backend) {
    // One upload at a time: eight clients at once all get in, each waiting its turn.
    let app = TestAppBuilder::new(backend)
        .var("UPLOAD_CONCURRENCY", "1")
        .var("UPLOAD_PERMIT_WAIT_MS", "60000")
        .spawn()
        .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Queue").await;
    let contents: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let mut text = format!("Document {i}\n").into_bytes();
            text.resize(1024, b'.');
            text
        })
        .collect();
    let uploads = contents.iter().map(|bytes| {
        upload(
            &app,
            &owner,
            "/api/documents",
            &project,
            bytes.clone(),
            "doc.txt",
            "text/plain",
        )
    });
    for resp in futures::future::join_all(uploads).await {
        assert_eq!(resp.status(), StatusCode::CREATED);
    }

    // With no wait allowed, an upload arriving while the only permit is held is
    // refused with 503 and Retry-After.
    let app = TestAppBuilder::new(backend)
        .var("UPLOAD_CONCURRENCY", "1")
        .var("UPLOAD_PERMIT_WAIT_MS", "0")
        .spawn()
        .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Busy").await;
    let (mut tx, held) = streaming_upload(&app, &owner, &project);
    tx.send(Ok(b"The first half, ".to_vec())).await.unwrap();
    // The permit is taken before the file's first byte is stored.
    for _ in 0..400 {
        if incoming_files(&app) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        incoming_files(&app),
        1,
        "the first upload is being received"
    );
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"Another document.\n".to_vec(),
        "b.txt",
        "text/plain",
    )
    .await;
    assert!(resp.headers().contains_key("retry-after"));
    assert_problem(resp, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;

    // The first upload finishes; the refused one then gets in.
    tx.send(Ok(b"and the second.\n".to_vec())).await.unwrap();
    drop(tx);
    assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::CREATED);
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"Another document.\n".to_vec(),
        "b.txt",
        "text/plain",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("upload_permit_waits_total"));
    assert!(metrics.contains("upload_permit_refusals_total"));
}
