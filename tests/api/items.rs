//! Uploads: documents and recordings, on both backends.

use reqwest::{
    StatusCode,
    multipart::{Form, Part},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    backend_tests,
    helpers::{Backend, TestApp, TestAppBuilder, assert_problem},
    projects::{create_project, join},
};

backend_tests!(
    a_document_round_trips_with_range_requests,
    bad_uploads_are_refused_and_store_nothing,
    a_recording_is_analysed,
    contributors_see_their_own_items_and_reviewers_everyone_s,
    the_sweep_removes_crash_leftovers_only,
    upload_retries_replay_and_external_ids_are_unique,
);

/// A mono 16-bit PCM WAV of a sine at half scale.
pub fn wav(seconds: f64, rate: u32, freq: f64) -> Vec<u8> {
    let frames = (seconds * f64::from(rate)) as u32;
    let data_len = frames * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames {
        let t = f64::from(i) / f64::from(rate);
        let s = (0.5 * (2.0 * std::f64::consts::PI * freq * t).sin() * 32767.0) as i16;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

pub async fn upload(
    app: &TestApp,
    token: &str,
    endpoint: &str,
    project: &str,
    bytes: Vec<u8>,
    file_name: &str,
    mime: &str,
) -> reqwest::Response {
    let part = Part::bytes(bytes)
        .file_name(file_name.to_owned())
        .mime_str(mime)
        .unwrap();
    let form = Form::new()
        .text("project_id", project.to_owned())
        .text("title", "A title")
        .part("file", part);
    app.client
        .post(app.url(endpoint))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn a_document_round_trips_with_range_requests(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Docs").await;
    let text = "# Habari\n\nHabari za asubuhi — karibu!\n"
        .as_bytes()
        .to_vec();
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        text.clone(),
        "../../notes\u{202E}.md",
        "text/markdown",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let item: Value = resp.json().await.unwrap();
    assert_eq!(item["detected_type"], "markdown");
    assert_eq!(item["status"], "uploaded");
    assert_eq!(item["title"], "A title");
    assert_eq!(item["size_bytes"], text.len());
    assert_eq!(item["sha256"], hex::encode(Sha256::digest(&text)));
    assert_eq!(
        item["file_name"], "notes.md",
        "path and bidi control stripped"
    );
    let id = item["id"].as_str().unwrap();

    let got: Value = app
        .get_auth(&format!("/api/documents/{id}"), &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["id"], id);
    let full = app
        .get_auth(&format!("/api/documents/{id}/content"), &owner)
        .await;
    assert_eq!(full.status(), StatusCode::OK);
    assert!(
        full.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    assert!(
        full.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"notes.md\"")
    );
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    assert_eq!(full.bytes().await.unwrap().to_vec(), text);
    let part = app
        .client
        .get(app.url(&format!("/api/documents/{id}/content")))
        .bearer_auth(&owner)
        .header("range", "bytes=2-7")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 2-7/{}", text.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap().to_vec(), text[2..=7].to_vec());
    let beyond = app
        .client
        .get(app.url(&format!("/api/documents/{id}/content")))
        .bearer_auth(&owner)
        .header("range", "bytes=9999-")
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // Documents and recordings are separate collections.
    assert_problem(
        app.get_auth(&format!("/api/voice/{id}"), &owner).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // The same bytes again: 409 naming the existing item.
    let dup = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        text.clone(),
        "copy.md",
        "text/markdown",
    )
    .await;
    let problem = assert_problem(dup, StatusCode::CONFLICT, "duplicate_content").await;
    assert!(problem["detail"].as_str().unwrap().contains(id));

    // The follow-up job was committed with the item (the OCR worker may have run it).
    let jobs = alta_actors::store::jobs::list_by_kind(&app.db().await, "ocr")
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(
        ["queued", "running", "done"].contains(&jobs[0].state.as_str()),
        "{:?}",
        jobs[0]
    );

    // Delete (soft): gone from reads, and the same content may be uploaded again.
    let del = app
        .client
        .delete(app.url(&format!("/api/documents/{id}")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get_auth(&format!("/api/documents/{id}"), &owner).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let again = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        text,
        "again.md",
        "text/markdown",
    )
    .await;
    assert_eq!(again.status(), StatusCode::CREATED);
}

async fn bad_uploads_are_refused_and_store_nothing(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .var("MAX_UPLOAD_BYTES", "200000")
        .spawn()
        .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Strict").await;
    let pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
        .to_vec();
    // (endpoint, bytes, file name, declared type, expected status, expected code)
    type Case<'a> = (&'a str, Vec<u8>, &'a str, &'a str, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "/api/documents",
            Vec::new(),
            "empty.txt",
            "text/plain",
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_file",
        ),
        (
            "/api/documents",
            pdf.clone(),
            "a.pdf",
            "image/png",
            StatusCode::UNPROCESSABLE_ENTITY,
            "declared_type_mismatch",
        ),
        (
            "/api/documents",
            vec![0u8, 159, 146, 150, 0, 1, 2, 3],
            "x.bin",
            "application/octet-stream",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
        ),
        (
            "/api/documents",
            wav(0.2, 8000, 440.0),
            "a.wav",
            "audio/wav",
            StatusCode::UNPROCESSABLE_ENTITY,
            "kind_mismatch",
        ),
        (
            "/api/voice",
            pdf.clone(),
            "a.pdf",
            "application/pdf",
            StatusCode::UNPROCESSABLE_ENTITY,
            "kind_mismatch",
        ),
        (
            "/api/voice",
            b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk".to_vec(),
            "bad.wav",
            "audio/wav",
            StatusCode::UNPROCESSABLE_ENTITY,
            "undecodable_audio",
        ),
        (
            "/api/documents",
            vec![b'a'; 300_000],
            "big.txt",
            "text/plain",
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (endpoint, bytes, name, mime, status, code) in cases {
        let resp = upload(&app, &owner, endpoint, &project, bytes, name, mime).await;
        assert_problem(resp, status, code).await;
    }
    // The project's own limit.
    let mut settings: Value = app
        .get_auth(&format!("/api/projects/{project}"), &owner)
        .await
        .json()
        .await
        .unwrap();
    settings["settings"]["max_document_bytes"] = json!(64);
    let put = app
        .client
        .put(app.url(&format!("/api/projects/{project}")))
        .bearer_auth(&owner)
        .json(&json!({"name": "Strict", "settings": settings["settings"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        vec![b'a'; 100],
        "long.txt",
        "text/plain",
    )
    .await;
    assert_problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "file_too_large").await;
    // A bad project id, a project the caller is not in.
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        "nope",
        pdf.clone(),
        "a.pdf",
        "application/pdf",
    )
    .await;
    assert_problem(resp, StatusCode::BAD_REQUEST, "invalid_project_id").await;
    let stranger = app.signed_up_user("stranger@example.org").await;
    let resp = upload(
        &app,
        &stranger,
        "/api/documents",
        &project,
        pdf,
        "a.pdf",
        "application/pdf",
    )
    .await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    // Nothing was stored: no item, no job, no blob, nothing left incoming.
    let list: Value = app
        .get_auth(&format!("/api/documents?project_id={project}"), &owner)
        .await
        .json()
        .await
        .unwrap();
    assert!(list["items"].as_array().unwrap().is_empty());
    let db = app.db().await;
    assert!(
        alta_actors::store::jobs::list_by_kind(&db, "ocr")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        alta_actors::store::jobs::list_by_kind(&db, "transcription")
            .await
            .unwrap()
            .is_empty()
    );
    let blobs = app.data_dir().join("blobs");
    let stored: Vec<_> = walk(&blobs)
        .into_iter()
        .filter(|p| !p.ends_with(".incoming"))
        .collect();
    assert!(stored.is_empty(), "files left behind: {stored:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

async fn a_recording_is_analysed(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Voices").await;
    let resp = upload(
        &app,
        &owner,
        "/api/voice",
        &project,
        wav(1.5, 16000, 440.0),
        "take1.wav",
        "audio/wav",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let item: Value = resp.json().await.unwrap();
    assert_eq!(item["kind"], "audio");
    assert_eq!(item["detected_type"], "wav");
    let audio = &item["audio"];
    assert!(
        (audio["duration_seconds"].as_f64().unwrap() - 1.5).abs() < 0.01,
        "{audio}"
    );
    assert_eq!(audio["sample_rate"], 16000);
    assert_eq!(audio["channels"], 1);
    assert_eq!(audio["decoded"], true);
    assert!(
        (audio["peak_dbfs"].as_f64().unwrap() + 6.02).abs() < 0.2,
        "{audio}"
    );
    let jobs = alta_actors::store::jobs::list_by_kind(&app.db().await, "transcription")
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let id = item["id"].as_str().unwrap();
    let part = app
        .client
        .get(app.url(&format!("/api/voice/{id}/content")))
        .bearer_auth(&owner)
        .header("range", "bytes=-4")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.unwrap().len(), 4);
}

async fn contributors_see_their_own_items_and_reviewers_everyone_s(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Shared").await;
    let ann = join(&app, &owner, &project, "ann@example.org", "contributor").await;
    let ben = join(&app, &owner, &project, "ben@example.org", "contributor").await;
    let rev = join(&app, &owner, &project, "rev@example.org", "reviewer").await;
    let a: Value = upload(
        &app,
        &ann,
        "/api/documents",
        &project,
        b"Ann's text".to_vec(),
        "a.txt",
        "text/plain",
    )
    .await
    .json()
    .await
    .unwrap();
    let b: Value = upload(
        &app,
        &ben,
        "/api/documents",
        &project,
        b"Ben's text".to_vec(),
        "b.txt",
        "text/plain",
    )
    .await
    .json()
    .await
    .unwrap();
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    // Reviewers review; they do not upload.
    let resp = upload(
        &app,
        &rev,
        "/api/documents",
        &project,
        b"Rev's text".to_vec(),
        "r.txt",
        "text/plain",
    )
    .await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;

    let count = |list: Value| list["items"].as_array().unwrap().len();
    let path = format!("/api/documents?project_id={project}");
    assert_eq!(
        count(app.get_auth(&path, &ann).await.json().await.unwrap()),
        1
    );
    assert_eq!(
        count(app.get_auth(&path, &rev).await.json().await.unwrap()),
        2
    );
    assert_eq!(
        count(app.get_auth(&path, &owner).await.json().await.unwrap()),
        2
    );
    let ann_id = a["contributor_id"].as_str().unwrap();
    assert_eq!(
        count(
            app.get_auth(&format!("{path}&contributor_id={ann_id}"), &rev)
                .await
                .json()
                .await
                .unwrap()
        ),
        1
    );
    // Ann cannot see or delete Ben's item (it does not exist for her).
    assert_problem(
        app.get_auth(&format!("/api/documents/{b_id}"), &ann).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let resp = app
        .client
        .delete(app.url(&format!("/api/documents/{b_id}")))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    // A reviewer sees it but may not delete it; an admin may.
    let resp = app
        .client
        .delete(app.url(&format!("/api/documents/{a_id}")))
        .bearer_auth(&rev)
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let resp = app
        .client
        .delete(app.url(&format!("/api/documents/{a_id}")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    // A missing project_id is a clear 400.
    assert_problem(
        app.get_auth("/api/documents", &rev).await,
        StatusCode::BAD_REQUEST,
        "missing_project_id",
    )
    .await;
}

/// What a crash leaves (a half-received upload, a blob whose row never committed) is
/// removed by the sweep; committed items keep their files.
async fn the_sweep_removes_crash_leftovers_only(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Sweep").await;
    let item: Value = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"keep me".to_vec(),
        "k.txt",
        "text/plain",
    )
    .await
    .json()
    .await
    .unwrap();
    let blobs = app.data_dir().join("blobs");
    let half_received = blobs
        .join(".incoming")
        .join(uuid::Uuid::new_v4().to_string());
    std::fs::write(&half_received, b"partial").unwrap();
    let orphan = blobs.join(&project).join(uuid::Uuid::new_v4().to_string());
    std::fs::write(&orphan, b"never committed").unwrap();

    // Fresh files are left alone (they may belong to an upload in flight).
    assert_eq!(
        app.engine
            .sweep_orphans(std::time::Duration::from_secs(3600))
            .await,
        0
    );
    assert!(half_received.exists() && orphan.exists());
    assert_eq!(app.engine.sweep_orphans(std::time::Duration::ZERO).await, 2);
    assert!(!half_received.exists() && !orphan.exists());
    let id = item["id"].as_str().unwrap();
    let content = app
        .get_auth(&format!("/api/documents/{id}/content"), &owner)
        .await;
    assert_eq!(content.status(), StatusCode::OK);
    assert_eq!(content.bytes().await.unwrap().to_vec(), b"keep me".to_vec());
}

/// The same flow with blobs in Google Cloud Storage, against the emulator that
/// `scripts/test` starts (fake-gcs-server at `TEST_GCS_ENDPOINT`).
mod gcs {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        a_document_round_trips_through_gcs(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        a_document_round_trips_through_gcs(Backend::Postgres).await
    }
}

/// The emulator's endpoint; fails (never skips) when it is not there.
pub async fn gcs_endpoint() -> String {
    let endpoint = std::env::var("TEST_GCS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "TEST_GCS_ENDPOINT is not set: run the suite with scripts/test, which starts \
             fake-gcs-server, or start fake-gcs-server (-scheme http -host 127.0.0.1) and set \
             TEST_GCS_ENDPOINT=http://127.0.0.1:4443"
        )
    });
    let answers = reqwest::Client::new()
        .get(format!("{endpoint}/storage/v1/b?project=test"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    assert!(
        answers,
        "fake-gcs-server is not answering at TEST_GCS_ENDPOINT={endpoint} (scripts/test starts it)"
    );
    endpoint
}

/// A fresh bucket in the emulator, through its JSON API (the crate's bucket admin is
/// gRPC, which the emulator lacks).
pub async fn create_bucket(endpoint: &str) -> String {
    let name = format!("alta-test-{}", uuid::Uuid::new_v4().simple());
    let resp = reqwest::Client::new()
        .post(format!("{endpoint}/storage/v1/b?project=test"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "fake-gcs-server refused to create bucket {name}: {}",
        resp.status()
    );
    name
}

/// `(name, size)` of every object in the bucket.
pub async fn bucket_objects(endpoint: &str, bucket: &str) -> Vec<(String, u64)> {
    let list: Value = reqwest::Client::new()
        .get(format!("{endpoint}/storage/v1/b/{bucket}/o"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|o| {
                    (
                        o["name"].as_str().unwrap().to_owned(),
                        o["size"].as_str().unwrap().parse().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn a_document_round_trips_through_gcs(backend: Backend) {
    let endpoint = gcs_endpoint().await;
    let bucket = create_bucket(&endpoint).await;
    let app = TestAppBuilder::new(backend)
        .var("GCS_BUCKET_NAME", bucket.clone())
        .var("GCS_ENDPOINT", endpoint.clone())
        .var("GCS_ANONYMOUS", "true")
        .spawn()
        .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Cloud").await;
    // Large enough to come back in several chunks.
    let mut text = String::from("# Habari\n\n");
    for i in 0..6000 {
        text.push_str(&format!("Mstari {i}: habari za asubuhi — karibu!\n"));
    }
    let text = text.into_bytes();
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        text.clone(),
        "notes.md",
        "text/markdown",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let item: Value = resp.json().await.unwrap();
    let id = item["id"].as_str().unwrap();
    assert_eq!(item["size_bytes"], text.len());

    // The blob is in the bucket, under `{project}/{item}`, and not on local disk.
    assert_eq!(
        bucket_objects(&endpoint, &bucket).await,
        vec![(format!("{project}/{id}"), text.len() as u64)]
    );
    let blobs = app.data_dir().join("blobs");
    assert!(!blobs.join(&project).exists(), "no local copy");
    // OCR reads a GCS blob through a temporary copy in `.incoming`: once processing has
    // ended, nothing of the upload or of that copy is left there.
    crate::processing::settled(&app, &owner, "/api/documents", id).await;
    assert_eq!(
        walk(&blobs.join(".incoming")),
        Vec::<std::path::PathBuf>::new()
    );

    let got = app.get_auth(&format!("/api/documents/{id}"), &owner).await;
    assert_eq!(got.status(), StatusCode::OK);
    let full = app
        .get_auth(&format!("/api/documents/{id}/content"), &owner)
        .await;
    assert_eq!(full.status(), StatusCode::OK);
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    assert_eq!(
        full.headers()["content-length"],
        text.len().to_string().as_str()
    );
    assert!(
        full.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    assert_eq!(full.bytes().await.unwrap().to_vec(), text);

    let range = |spec: &'static str| {
        app.client
            .get(app.url(&format!("/api/documents/{id}/content")))
            .bearer_auth(&owner)
            .header("range", spec)
            .send()
    };
    let part = range("bytes=2-7").await.unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 2-7/{}", text.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap().to_vec(), text[2..=7].to_vec());
    let tail = range("bytes=-100").await.unwrap();
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        tail.bytes().await.unwrap().to_vec(),
        text[text.len() - 100..].to_vec()
    );
    let middle = range("bytes=100000-").await.unwrap();
    assert_eq!(middle.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        middle.bytes().await.unwrap().to_vec(),
        text[100_000..].to_vec()
    );
    let beyond = range("bytes=9999999-").await.unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // The same bytes again: refused after its blob was stored. Removing that blob
    // goes through the crate's gRPC `StorageControl`, which fake-gcs-server lacks, so
    // here it is only logged (a leftover object); the answer is the same 409.
    let dup = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        text.clone(),
        "copy.md",
        "text/markdown",
    )
    .await;
    assert_problem(dup, StatusCode::CONFLICT, "duplicate_content").await;

    // Delete (soft): gone from reads; the object stays for the restore window.
    let del = app
        .client
        .delete(app.url(&format!("/api/documents/{id}")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get_auth(&format!("/api/documents/{id}/content"), &owner)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

/// An upload retried with its Idempotency-Key replays the first answer; a client's
/// `external_id` is unique per project.
async fn upload_retries_replay_and_external_ids_are_unique(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Retries").await;
    let send = |bytes: &'static [u8], key: Option<&'static str>, external_id: &'static str| {
        let part = Part::bytes(bytes.to_vec())
            .file_name("t.txt")
            .mime_str("text/plain")
            .unwrap();
        let form = Form::new()
            .text("project_id", project.clone())
            .text("external_id", external_id)
            .text("metadata", r#"{"source": "radio"}"#)
            .part("file", part);
        let mut req = app
            .client
            .post(app.url("/api/documents"))
            .bearer_auth(&owner)
            .multipart(form);
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        req.send()
    };
    let first = send(b"first text", Some("up-1"), "ext-1").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first = first.text().await.unwrap();
    let again = send(b"first text", Some("up-1"), "ext-1").await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.unwrap(), first);
    let item: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(item["metadata"], json!({"source": "radio"}));
    let dup = send(b"other text", None, "ext-1").await.unwrap();
    let problem = assert_problem(dup, StatusCode::CONFLICT, "duplicate_external_id").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(item["id"].as_str().unwrap())
    );
    let list: Value = app
        .get_auth(&format!("/api/documents?project_id={project}"), &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}
