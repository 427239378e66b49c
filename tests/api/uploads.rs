//! Resumable uploads (tus 1.0 at /api/uploads), on both backends.

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    backend_tests,
    helpers::{Backend, PASSWORD, TestApp, TestAppBuilder, assert_problem},
    items::wav,
    projects::{create_project, join},
};

backend_tests!(
    a_resumable_upload_survives_a_restart_and_becomes_an_item,
    resumable_uploads_refuse_bad_input_and_keep_nothing,
    abandoned_uploads_expire_and_are_swept,
    a_member_removed_mid_upload_commits_no_more_of_it,
);

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn metadata(project: &str, kind: &str, file_name: &str) -> String {
    format!(
        "project_id {},kind {},filename {},filetype {},title {}",
        b64(project),
        b64(kind),
        b64(file_name),
        b64("audio/wav"),
        b64("Resumed")
    )
}

async fn create(app: &TestApp, token: &str, length: usize, meta: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/uploads"))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", length.to_string())
        .header("Upload-Metadata", meta)
        .send()
        .await
        .unwrap()
}

/// Create an upload and return its path (`/api/uploads/{id}`).
async fn created(app: &TestApp, token: &str, length: usize, meta: &str) -> String {
    let resp = create(app, token, length, meta).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["tus-resumable"], "1.0.0");
    assert!(resp.headers().contains_key("upload-expires"));
    resp.headers()["location"].to_str().unwrap().to_owned()
}

async fn patch(
    app: &TestApp,
    token: &str,
    location: &str,
    offset: usize,
    bytes: Vec<u8>,
    checksum: Option<String>,
) -> reqwest::Response {
    let mut req = app
        .client
        .patch(app.url(location))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", offset.to_string());
    if let Some(c) = checksum {
        req = req.header("Upload-Checksum", c);
    }
    req.body(bytes).send().await.unwrap()
}

async fn head(app: &TestApp, token: &str, location: &str) -> reqwest::Response {
    app.client
        .head(app.url(location))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap()
}

fn offset_of(resp: &reqwest::Response) -> u64 {
    resp.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn sha1_header(bytes: &[u8]) -> String {
    use sha1::Digest as _;
    format!(
        "sha1 {}",
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(bytes))
    )
}

fn files_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

async fn a_resumable_upload_survives_a_restart_and_becomes_an_item(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Resumable").await;

    // Discovery, and the version precondition.
    let options = app
        .client
        .request(Method::OPTIONS, app.url("/api/uploads"))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(options.headers()["tus-version"], "1.0.0");
    let extensions = options.headers()["tus-extension"].to_str().unwrap();
    for ext in ["creation", "termination", "checksum", "expiration"] {
        assert!(extensions.contains(ext), "{extensions}");
    }
    assert!(options.headers().contains_key("tus-max-size"));
    assert!(
        options.headers()["tus-checksum-algorithm"]
            .to_str()
            .unwrap()
            .contains("sha1")
    );
    let no_version = app
        .client
        .post(app.url("/api/uploads"))
        .bearer_auth(&owner)
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.headers()["tus-version"], "1.0.0");
    assert_problem(
        no_version,
        StatusCode::PRECONDITION_FAILED,
        "unsupported_tus_version",
    )
    .await;

    let audio = wav(3.0, 16_000, 440.0);
    let meta = metadata(&project, "audio", "long take.wav");
    let location = created(&app, &owner, audio.len(), &meta).await;
    assert!(location.starts_with("/api/uploads/"));

    let first = head(&app, &owner, &location).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(offset_of(&first), 0);
    assert_eq!(first.headers()["upload-length"], audio.len().to_string());
    assert_eq!(first.headers()["upload-metadata"], meta.as_str());
    assert_eq!(first.headers()["cache-control"], "no-store");

    // First third, with a checksum.
    let cut = audio.len() / 3;
    let chunk = audio[..cut].to_vec();
    let resp = patch(
        &app,
        &owner,
        &location,
        0,
        chunk.clone(),
        Some(sha1_header(&chunk)),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset_of(&resp), cut as u64);
    assert_eq!(resp.headers()["tus-resumable"], "1.0.0");

    // A wrong offset and a wrong checksum change nothing.
    let resp = patch(&app, &owner, &location, 0, audio[..10].to_vec(), None).await;
    assert_problem(resp, StatusCode::CONFLICT, "offset_mismatch").await;
    let resp = patch(
        &app,
        &owner,
        &location,
        cut,
        audio[cut..cut + 100].to_vec(),
        Some(sha1_header(b"something else")),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 460);
    let problem: Value = resp.json().await.unwrap();
    assert_eq!(problem["code"], "checksum_mismatch");
    assert_eq!(offset_of(&head(&app, &owner, &location).await), cut as u64);

    // The server restarts; the upload goes on where it was.
    let app = app.restart().await;
    let owner = app.token("owner@example.org", PASSWORD).await;
    let resumed = head(&app, &owner, &location).await;
    assert_eq!(resumed.status(), StatusCode::OK);
    assert_eq!(offset_of(&resumed), cut as u64);

    // A bytes-only second chunk through X-HTTP-Method-Override, then the last one.
    let middle = 2 * cut;
    let resp = app
        .client
        .post(app.url(&location))
        .bearer_auth(&owner)
        .header("X-HTTP-Method-Override", "PATCH")
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", cut.to_string())
        .body(audio[cut..middle].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset_of(&resp), middle as u64);
    assert!(!resp.headers().contains_key("alta-item-id"));
    let last = audio[middle..].to_vec();
    let resp = patch(
        &app,
        &owner,
        &location,
        middle,
        last.clone(),
        Some(format!(
            "sha256 {}",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&last))
        )),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset_of(&resp), audio.len() as u64);
    let item_id = resp.headers()["alta-item-id"].to_str().unwrap().to_owned();

    // It is an item like any other, analysed, with the client's name cleaned.
    let item: Value = app.get_json(&format!("/api/voice/{item_id}"), &owner).await;
    assert_eq!(item["detected_type"], "wav");
    assert_eq!(item["title"], "Resumed");
    assert_eq!(item["file_name"], "long take.wav");
    assert_eq!(item["sha256"], hex::encode(Sha256::digest(&audio)));
    assert!((item["audio"]["duration_seconds"].as_f64().unwrap() - 3.0).abs() < 0.01);
    let content = app
        .get_auth(&format!("/api/voice/{item_id}/content"), &owner)
        .await;
    assert_eq!(content.bytes().await.unwrap().to_vec(), audio);

    // Afterwards HEAD and GET tell where it went; a repeated last chunk is harmless.
    let done = head(&app, &owner, &location).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(offset_of(&done), audio.len() as u64);
    assert_eq!(done.headers()["alta-item-id"], item_id.as_str());
    let state: Value = app.get_json(&location, &owner).await;
    assert_eq!(state["state"], "completed");
    assert_eq!(state["item_id"], item_id.as_str());
    let again = patch(&app, &owner, &location, audio.len(), Vec::new(), None).await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert_eq!(again.headers()["alta-item-id"], item_id.as_str());
    let listed: Value = app
        .get_json(&format!("/api/voice?project_id={project}"), &owner)
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(
        files_in(&app.data_dir().join("blobs").join(".resumable")).is_empty(),
        "the received bytes are gone once they are an item"
    );

    // Termination of a finished upload keeps its item.
    let gone = app
        .client
        .delete(app.url(&location))
        .bearer_auth(&owner)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        head(&app, &owner, &location).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_auth(&format!("/api/voice/{item_id}"), &owner)
            .await
            .status(),
        StatusCode::OK
    );
}

async fn resumable_uploads_refuse_bad_input_and_keep_nothing(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let outsider = app.signed_up_user("outsider@example.org").await;
    let project = create_project(&app, &owner, "Checked").await;
    let reviewer = join(&app, &owner, &project, "reviewer@example.org", "reviewer").await;
    let meta = metadata(&project, "audio", "a.wav");

    // Checked before any byte is sent.
    let resp = create(&app, &owner, 2 * 1024 * 1024 * 1024, &meta).await;
    assert_problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "file_too_large").await;
    let resp = create(&app, &owner, 0, &meta).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "empty_file").await;
    let resp = create(&app, &outsider, 100, &meta).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "not a member");
    let resp = create(&app, &reviewer, 100, &meta).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let resp = create(&app, &owner, 100, "project_id !!!").await;
    assert_problem(
        resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_upload_metadata",
    )
    .await;
    let with_bad_json = format!("{meta},metadata {}", b64("[1,2]"));
    let resp = create(&app, &owner, 100, &with_bad_json).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_metadata").await;
    let resp = app
        .client
        .post(app.url("/api/uploads"))
        .bearer_auth(&owner)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Defer-Length", "1")
        .header("Upload-Metadata", meta.as_str())
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::BAD_REQUEST, "defer_length_unsupported").await;
    let resp = app
        .client
        .post(app.url("/api/uploads"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "100")
        .header("Upload-Metadata", meta.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Someone else's upload does not exist for you.
    let location = created(&app, &owner, 100, &meta).await;
    assert_eq!(
        head(&app, &reviewer, &location).await.status(),
        StatusCode::NOT_FOUND
    );
    let resp = patch(&app, &reviewer, &location, 0, vec![0; 10], None).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;

    // A chunk past the announced length, or of the wrong type, keeps nothing.
    let resp = patch(&app, &owner, &location, 0, vec![0; 101], None).await;
    assert_problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "exceeds_upload_length").await;
    let resp = app
        .client
        .patch(app.url(&location))
        .bearer_auth(&owner)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/octet-stream")
        .header("Upload-Offset", "0")
        .body(vec![0; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let resp = patch(
        &app,
        &owner,
        &location,
        0,
        vec![0; 10],
        Some("md5 AAAA".into()),
    )
    .await;
    assert_problem(
        resp,
        StatusCode::BAD_REQUEST,
        "unsupported_checksum_algorithm",
    )
    .await;
    assert_eq!(offset_of(&head(&app, &owner, &location).await), 0);

    // A complete file that is not audio is refused like a one-shot upload; then gone.
    let resp = patch(&app, &owner, &location, 0, vec![7; 100], None).await;
    let problem = assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "kind_mismatch").await;
    let refused = head(&app, &owner, &location).await;
    assert_eq!(refused.status(), StatusCode::GONE);
    let state: Value = app.get_json(&location, &owner).await;
    assert_eq!(state["state"], "failed");
    assert_eq!(state["error_code"], problem["code"]);
    let resp = patch(&app, &owner, &location, 100, Vec::new(), None).await;
    assert_problem(resp, StatusCode::GONE, "upload_refused").await;

    // A duplicate of an existing item is refused at completion, naming the item: 422,
    // a status tus clients do not retry (they retry 409 by sending the file again).
    let audio = wav(0.5, 8_000, 300.0);
    let first = created(&app, &owner, audio.len(), &meta).await;
    let resp = patch(&app, &owner, &first, 0, audio.clone(), None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let second = created(&app, &owner, audio.len(), &meta).await;
    let resp = patch(&app, &owner, &second, 0, audio.clone(), None).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "duplicate_content").await;
    let listed: Value = app
        .get_json(&format!("/api/voice?project_id={project}"), &owner)
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // Termination removes the bytes received so far.
    let open = created(&app, &owner, 1000, &meta).await;
    let resp = patch(&app, &owner, &open, 0, vec![1; 500], None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let id = open.rsplit('/').next().unwrap();
    let partial = app.data_dir().join("blobs").join(".resumable").join(id);
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 500);
    let resp = app
        .client
        .delete(app.url(&open))
        .bearer_auth(&owner)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(!partial.exists());
    assert_eq!(
        head(&app, &owner, &open).await.status(),
        StatusCode::NOT_FOUND
    );

    // One account cannot open uploads without end: 403 (waiting does not help, and
    // tus clients would retry a 409).
    for _ in 0..alta_actors::resumable::MAX_OPEN_PER_USER {
        created(&app, &owner, 10, &meta).await;
    }
    let resp = create(&app, &owner, 10, &meta).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "too_many_open_uploads").await;
}

async fn abandoned_uploads_expire_and_are_swept(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .var("RESUMABLE_UPLOAD_EXPIRY_HOURS", "2")
        .spawn()
        .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Expiry").await;
    let meta = metadata(&project, "audio", "a.wav");
    let location = created(&app, &owner, 1000, &meta).await;
    let id = location.rsplit('/').next().unwrap().to_owned();
    let partial = app.data_dir().join("blobs").join(".resumable").join(&id);

    // Each chunk pushes the expiry out.
    app.advance_clock(chrono::Duration::minutes(90)).await;
    let owner = app.token("owner@example.org", PASSWORD).await;
    assert_eq!(
        patch(&app, &owner, &location, 0, vec![1; 10], None)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    app.advance_clock(chrono::Duration::minutes(90)).await;
    let owner = app.token("owner@example.org", PASSWORD).await;
    assert_eq!(head(&app, &owner, &location).await.status(), StatusCode::OK);
    app.advance_clock(chrono::Duration::minutes(31)).await;
    let owner = app.token("owner@example.org", PASSWORD).await;
    let resp = head(&app, &owner, &location).await;
    assert_eq!(resp.status(), StatusCode::GONE, "expired, not yet swept");
    assert_eq!(
        app.engine
            .sweep_orphans(std::time::Duration::from_secs(3600))
            .await,
        1
    );
    assert_eq!(
        head(&app, &owner, &location).await.status(),
        StatusCode::NOT_FOUND
    );
    assert!(!partial.exists());
    let resp = patch(&app, &owner, &location, 10, vec![1; 10], None).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
}

/// The server dies while the last chunk's item is being committed (held at a project
/// lock after the upload's key was claimed). After a restart the client sends the last
/// chunk again: while the dead attempt's claim lasts it is told to retry (409
/// `idempotency_key_in_progress`), and the upload stays open instead of being refused
/// for good; once the claim lapses the chunk makes the item. PostgreSQL only (the
/// lock is a row lock, which SQLite's single writer cannot hold apart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_chunk_retried_after_a_crash_makes_its_item() {
    use crate::child_server::Site;
    use reqwest::Client;
    use std::time::Duration;

    crate::helpers::init_test_env();
    let site = Site::new(
        Backend::Postgres,
        &[("SECRET_KEY", "tus-crash-secret-key-0123456789abcdef")],
    )
    .await;
    site.admin_create(&[]);
    let mut server = site.serve("first", &[]).await;
    let client = Client::new();
    let token = server.token(&client).await;
    let resp = client
        .post(server.url("/api/projects"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Crashy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let project: Value = resp.json().await.unwrap();
    let project = project["id"].as_str().unwrap().to_owned();

    let text = b"The first half of a note, and then its second half.\n".to_vec();
    let half = text.len() / 2;
    let meta = format!(
        "project_id {},kind {},filename {},filetype {}",
        b64(&project),
        b64("document"),
        b64("note.txt"),
        b64("text/plain")
    );
    let resp = client
        .post(server.url("/api/uploads"))
        .bearer_auth(&token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", text.len().to_string())
        .header("Upload-Metadata", meta)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    let patch = |base: String, token: String, offset: usize, bytes: Vec<u8>| {
        let client = client.clone();
        let location = location.clone();
        async move {
            client
                .patch(format!("{base}{location}"))
                .bearer_auth(token)
                .header("Tus-Resumable", "1.0.0")
                .header("Content-Type", "application/offset+octet-stream")
                .header("Upload-Offset", offset.to_string())
                .body(bytes)
                .send()
                .await
        }
    };
    let resp = patch(server.url(""), token.clone(), 0, text[..half].to_vec())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // The item's commit waits for this lock; the server is killed meanwhile.
    let pool = sqlx::PgPool::connect(&site.database_url).await.unwrap();
    let mut lock = pool.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE projects SET updated_at = updated_at WHERE id = '{project}'"
    )))
    .execute(&mut *lock)
    .await
    .unwrap();
    let pending = tokio::spawn(patch(
        server.url(""),
        token.clone(),
        half,
        text[half..].to_vec(),
    ));
    let key = format!("tus:{id}");
    crate::helpers::wait_for_idempotency_claim(&pool, &key).await;
    server.kill_9();
    lock.rollback().await.unwrap();
    assert!(
        pending.await.unwrap().is_err(),
        "the request died with its server"
    );

    let server = site.serve("second", &[]).await;
    let token = server.token(&client).await;
    let mut waits = 0;
    let item_id = loop {
        let resp = patch(server.url(""), token.clone(), half, text[half..].to_vec())
            .await
            .unwrap();
        match resp.status() {
            StatusCode::NO_CONTENT => {
                break resp.headers()["alta-item-id"].to_str().unwrap().to_owned();
            }
            StatusCode::CONFLICT => {
                let problem: Value = resp.json().await.unwrap();
                assert_eq!(problem["code"], "idempotency_key_in_progress");
                waits += 1;
                assert!(waits < 60, "the dead attempt's claim never lapsed");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
        }
    };
    let resp = client
        .get(server.url(&format!("/api/documents/{item_id}/content")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), text);
    pool.close().await;
}

/// Resumable uploads across nodes on one PostgreSQL.
mod nodes {
    use super::*;
    use crate::items::{bucket_objects, create_bucket, gcs_endpoint};

    /// Three chunks of a recording: the bytes and their cut points.
    fn recording() -> (Vec<u8>, usize, usize) {
        let audio = wav(2.0, 16_000, 330.0);
        let cut = audio.len() / 3;
        (audio, cut, 2 * cut)
    }

    async fn content_of(app: &TestApp, token: &str, item: &str) -> Vec<u8> {
        let resp = app
            .client
            .get(app.url(&format!("/api/voice/{item}/content")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.bytes().await.unwrap().to_vec()
    }

    /// Nodes that do not share uploads (no `MULTI_NODE`): a node asked to continue an
    /// upload whose first bytes another node holds refuses plainly, and keeps nothing;
    /// it never fills the gap and judges half a file. The node that has them finishes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_without_the_first_bytes_says_so() {
        let a = TestAppBuilder::new(Backend::Postgres).spawn().await;
        // (B runs no jobs: A's mail worker writes the sign-up mail to A's outbox.)
        let b = a.another_node(&[("SERVE_WORKERS", "false")]).await;
        let owner = a.signed_up_user("owner@example.org").await;
        let project = create_project(&a, &owner, "Two nodes").await;
        let (audio, cut, _) = recording();
        let location = created(
            &a,
            &owner,
            audio.len(),
            &metadata(&project, "audio", "a.wav"),
        )
        .await;
        let resp = patch(&a, &owner, &location, 0, audio[..cut].to_vec(), None).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);

        // Node B knows the offset (the database says it) but not the bytes.
        assert_eq!(offset_of(&head(&b, &owner, &location).await), cut as u64);
        let resp = patch(&b, &owner, &location, cut, audio[cut..].to_vec(), None).await;
        let problem = assert_problem(resp, StatusCode::CONFLICT, "upload_elsewhere").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("MULTI_NODE"),
            "{problem}"
        );
        assert_eq!(offset_of(&head(&a, &owner, &location).await), cut as u64);
        assert!(
            files_in(&b.data_dir().join("blobs/.resumable")).is_empty(),
            "node B keeps nothing of the refused chunk"
        );

        // Node A, which has them, finishes: the item holds exactly the bytes sent.
        let resp = patch(&a, &owner, &location, cut, audio[cut..].to_vec(), None).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let item = resp.headers()["alta-item-id"].to_str().unwrap().to_owned();
        assert_eq!(content_of(&a, &owner, &item).await, audio);
    }

    /// Where two nodes that share uploads keep their blobs.
    enum Shared {
        /// One bucket of the Cloud Storage emulator. It has no delete (the crate deletes
        /// through gRPC, which the emulator lacks), so parts left behind are not checked.
        Bucket { endpoint: String, bucket: String },
        /// One local folder, as a network file system would give every node.
        Folder,
    }

    /// The blobs in the shared store: `(upload or project id, blob)` names.
    async fn stored(shared: &Shared, a: &TestApp) -> Vec<String> {
        match shared {
            Shared::Bucket { endpoint, bucket } => bucket_objects(endpoint, bucket)
                .await
                .into_iter()
                .map(|(name, _)| name)
                .collect(),
            Shared::Folder => {
                let root = a.data_dir().join("blobs");
                crate::helpers::files_under(&root)
                    .into_iter()
                    .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
                    // Not the working folders (.incoming, .resumable, .exports).
                    .filter(|name| !name.starts_with('.'))
                    .collect()
            }
        }
    }

    /// Nodes that share uploads (`MULTI_NODE=true`, one blob store): each chunk goes to
    /// whichever node, and the last one makes the item on the node it reached, with
    /// exactly the bytes sent; the parts are removed afterwards, and when an upload is
    /// stopped half-way.
    async fn nodes_sharing_uploads_continue_each_others(shared: Shared) {
        let redis = crate::helpers::redis_url();
        let mut builder = TestAppBuilder::new(Backend::Postgres)
            .var("MULTI_NODE", "true")
            .var("REDIS_URL", redis.clone());
        if let Shared::Bucket { endpoint, bucket } = &shared {
            builder = builder
                .var("GCS_BUCKET_NAME", bucket.clone())
                .var("GCS_ENDPOINT", endpoint.clone())
                .var("GCS_ANONYMOUS", "true");
        }
        let a = builder.spawn().await;
        let folder = a.data_dir().display().to_string();
        let mut b_settings = vec![("SERVE_WORKERS", "false")];
        if let Shared::Folder = shared {
            b_settings.push(("DATA_DIR", folder.as_str()));
        }
        let b = a.another_node(&b_settings).await;
        let owner = a.signed_up_user("owner@example.org").await;
        let project = create_project(&a, &owner, "Shared uploads").await;
        let (audio, cut, middle) = recording();
        let location = created(
            &a,
            &owner,
            audio.len(),
            &metadata(&project, "audio", "s.wav"),
        )
        .await;

        // First third on A, second on B (with a checksum), a wrong offset on A refused.
        let resp = patch(&a, &owner, &location, 0, audio[..cut].to_vec(), None).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let second = audio[cut..middle].to_vec();
        let resp = patch(
            &b,
            &owner,
            &location,
            cut,
            second.clone(),
            Some(sha1_header(&second)),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(offset_of(&resp), middle as u64);
        let resp = patch(&a, &owner, &location, cut, second, None).await;
        assert_problem(resp, StatusCode::CONFLICT, "offset_mismatch").await;
        assert_eq!(offset_of(&head(&a, &owner, &location).await), middle as u64);
        let upload_id = location.rsplit('/').next().unwrap().to_owned();
        let parts = stored(&shared, &a).await;
        assert_eq!(parts.len(), 2, "one blob per committed chunk: {parts:?}");
        assert!(parts.iter().all(|p| p.starts_with(&upload_id)), "{parts:?}");

        // The last third on A: A assembles the file from the parts B and A wrote.
        let resp = patch(
            &a,
            &owner,
            &location,
            middle,
            audio[middle..].to_vec(),
            None,
        )
        .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let item = resp.headers()["alta-item-id"].to_str().unwrap().to_owned();
        assert_eq!(content_of(&b, &owner, &item).await, audio);
        if let Shared::Bucket { .. } = shared {
            return;
        }
        let left = stored(&shared, &a).await;
        assert_eq!(left.len(), 1, "only the item's blob stays: {left:?}");
        assert!(left[0].ends_with(&item), "{left:?}");

        // An upload stopped half-way (on the other node) leaves no part behind.
        let other = created(
            &a,
            &owner,
            audio.len(),
            &metadata(&project, "audio", "t.wav"),
        )
        .await;
        let resp = patch(&b, &owner, &other, 0, audio[..cut].to_vec(), None).await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(stored(&shared, &a).await.len(), 2);
        let resp = a
            .client
            .delete(a.url(&other))
            .bearer_auth(&owner)
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(stored(&shared, &a).await.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_sharing_uploads_in_a_bucket() {
        let endpoint = gcs_endpoint().await;
        let bucket = create_bucket(&endpoint).await;
        nodes_sharing_uploads_continue_each_others(Shared::Bucket { endpoint, bucket }).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_sharing_uploads_in_a_folder() {
        nodes_sharing_uploads_continue_each_others(Shared::Folder).await
    }
}

/// A resumable upload's chunks are transitions of its project, checked like any other
/// write: once its owner is no longer a member, no further chunk is committed.
async fn a_member_removed_mid_upload_commits_no_more_of_it(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let admin = app.signed_up_user("admin@example.org").await;
    let project = create_project(&app, &admin, "Leaving").await;
    let member = join(&app, &admin, &project, "member@example.org", "contributor").await;
    let audio = wav(1.0, 8_000, 440.0);
    let third = audio.len() / 3;
    let meta = metadata(&project, "audio", "leaving.wav");
    let location = created(&app, &member, audio.len(), &meta).await;
    let resp = patch(&app, &member, &location, 0, audio[..third].to_vec(), None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    let member_id = app.user_id(&member).await;
    let resp = app
        .client
        .delete(app.url(&format!("/api/projects/{project}/members/{member_id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // A chunk short of the end: its offset is a transition the project refuses.
    let chunk = audio[third..2 * third].to_vec();
    let resp = patch(&app, &member, &location, third, chunk, None).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = head(&app, &member, &location).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(offset_of(&resp), third as u64, "nothing more was committed");
    let items = app
        .get_json(&format!("/api/voice?project_id={project}"), &admin)
        .await;
    assert_eq!(items["items"].as_array().unwrap().len(), 0, "{items}");
}
