//! Processing: OCR of documents, recordings without a speech engine, people's
//! corrections, reprocessing, and failed jobs, on both backends.

use std::{io::Write, time::Duration};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    backend_tests,
    helpers::{Backend, TestApp, TestAppBuilder, assert_problem},
    items::{upload, wav},
    projects::{create_project, join},
};

backend_tests!(
    documents_get_their_text_and_people_correct_it,
    pdf_docx_and_unreadable_files,
    recordings_wait_for_a_person_and_can_be_reprocessed,
    a_job_that_keeps_failing_is_parked_and_can_be_retried,
    ocr_never_holds_up_text_and_no_project_holds_every_ocr_worker,
    an_outcome_for_an_item_deleted_while_processing_is_dropped,
    outcomes_arriving_together_each_land_on_their_own_item,
    outcomes_arriving_together_carry_their_items_spans,
    processing_goes_on_while_its_project_is_deleted,
    plain_text_is_read_while_every_extraction_slot_is_taken,
);

pub use crate::pdf::text_pdf;

fn docx(paragraphs: &[&str]) -> Vec<u8> {
    let body: String = paragraphs
        .iter()
        .map(|p| format!("<w:p><w:r><w:t>{p}</w:t></w:r></w:p>"))
        .collect();
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
    );
    let types = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for (name, data) in [
        ("[Content_Types].xml", types.as_bytes()),
        ("word/document.xml", xml.as_bytes()),
    ] {
        zip.start_file(name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Poll an item until its status leaves `uploaded`/`processing`; the item. The server's
/// clock is the test's: it moves on a little each time, so retry delays pass.
pub async fn settled(app: &TestApp, token: &str, endpoint: &str, id: &str) -> Value {
    for _ in 0..600 {
        let resp = app.get_auth(&format!("{endpoint}/{id}"), token).await;
        let code = resp.status();
        let item: Value = resp.json().await.unwrap();
        assert_eq!(
            code,
            StatusCode::OK,
            "GET {endpoint}/{id} while it settles: {item}"
        );
        let status = item["status"].as_str().unwrap().to_owned();
        if status != "uploaded" && status != "processing" {
            return item;
        }
        app.clock.advance(chrono::Duration::milliseconds(100));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("item {id} never finished processing");
}

pub async fn uploaded(
    app: &TestApp,
    token: &str,
    endpoint: &str,
    project: &str,
    bytes: Vec<u8>,
    name: &str,
    mime: &str,
) -> String {
    let resp = upload(app, token, endpoint, project, bytes, name, mime).await;
    let code = resp.status();
    let item: Value = resp.json().await.unwrap();
    assert_eq!(code, StatusCode::CREATED, "{item}");
    assert!(item["job_id"].is_string(), "the item names its job: {item}");
    item["id"].as_str().unwrap().to_owned()
}

async fn put_text(app: &TestApp, token: &str, path: &str, text: &str) -> reqwest::Response {
    app.client
        .put(app.url(path))
        .bearer_auth(token)
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap()
}

async fn post(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn documents_get_their_text_and_people_correct_it(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Texts").await;
    let contributor = join(&app, &owner, &project, "c@example.org", "contributor").await;
    let reviewer = join(&app, &owner, &project, "r@example.org", "reviewer").await;
    let stranger = app.signed_up_user("stranger@example.org").await;

    let body = "# Ripoti\n\nMvua ilinyesha jana.\n";
    let id = uploaded(
        &app,
        &contributor,
        "/api/documents",
        &project,
        body.as_bytes().to_vec(),
        "ripoti.md",
        "text/markdown",
    )
    .await;
    let item = settled(&app, &contributor, "/api/documents", &id).await;
    assert_eq!(item["status"], "ready", "{item}");
    assert!(item["processing_error_code"].is_null());
    assert_eq!(
        item["job"]["state"], "done",
        "the job's state is embedded: {item}"
    );
    assert_eq!(item["job"]["kind"], "ocr");
    let listed: Value = app
        .get_auth(
            &format!("/api/documents?project_id={project}"),
            &contributor,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["job"]["state"], "done");

    let text_path = format!("/api/documents/{id}/text");
    let text: Value = app.get_json(&text_path, &contributor).await;
    assert_eq!(text["current"]["source"], "machine");
    assert_eq!(text["current"]["engine"], "plain_text");
    assert_eq!(text["current"]["text"], body, "plain text is kept as it is");
    assert_eq!(text["revisions"].as_array().unwrap().len(), 1);

    // The job is visible to who may see the item, and only to them.
    let job_path = format!("/api/jobs/{}", item["job_id"].as_str().unwrap());
    let job: Value = app.get_json(&job_path, &contributor).await;
    assert_eq!(job["state"], "done");
    assert_eq!(job["kind"], "ocr");
    assert_eq!(job["item_id"], id.as_str());
    assert_eq!(
        app.get_auth(&job_path, &reviewer).await.status(),
        StatusCode::OK
    );
    let resp = app.get_auth(&job_path, &stranger).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;

    // The uploader corrects; a reviewer may not; an admin may. Every revision stays.
    let resp = put_text(
        &app,
        &contributor,
        &text_path,
        "# Ripoti\n\nMvua ilinyesha juzi.",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text: Value = resp.json().await.unwrap();
    assert_eq!(text["current"]["source"], "human");
    assert_eq!(text["current"]["revision"], 2);
    assert_eq!(text["item"]["status"], "ready");
    let resp = put_text(&app, &reviewer, &text_path, "not mine").await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let resp = put_text(&app, &stranger, &text_path, "not mine").await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = put_text(&app, &contributor, &text_path, "  \n ").await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "empty_text").await;
    let resp = put_text(&app, &contributor, &text_path, "bad \u{0007} bell").await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_text").await;
    let resp = put_text(&app, &owner, &text_path, "Final.").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text: Value = app.get_json(&text_path, &reviewer).await;
    let revisions = text["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 3);
    assert_eq!(revisions[0]["source"], "machine");
    assert_eq!(revisions[1]["text"], "# Ripoti\n\nMvua ilinyesha juzi.");
    assert_eq!(text["current"]["text"], "Final.");
    assert!(text["current"]["author_id"].is_string());
}

async fn pdf_docx_and_unreadable_files(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Formats").await;

    let pdf = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        text_pdf(&["Invoice number 4711", "Total 99.50 EUR"]),
        "invoice.pdf",
        "application/pdf",
    )
    .await;
    let word = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        docx(&["Habari ya leo", "Karibu tena"]),
        "barua.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )
    .await;
    let blank = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        text_pdf(&[""]),
        "scan.pdf",
        "application/pdf",
    )
    .await;

    let item = settled(&app, &owner, "/api/documents", &pdf).await;
    assert_eq!(item["status"], "ready", "{item}");
    let text: Value = app
        .get_json(&format!("/api/documents/{pdf}/text"), &owner)
        .await;
    assert_eq!(text["current"]["engine"], "pdf_text_layer");
    let pages = text["current"]["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2);
    assert!(pages[0].as_str().unwrap().contains("Invoice number 4711"));
    assert!(pages[1].as_str().unwrap().contains("99.50"));

    let item = settled(&app, &owner, "/api/documents", &word).await;
    assert_eq!(item["status"], "ready", "{item}");
    let text: Value = app
        .get_json(&format!("/api/documents/{word}/text"), &owner)
        .await;
    assert_eq!(text["current"]["engine"], "docx");
    assert!(
        text["current"]["text"]
            .as_str()
            .unwrap()
            .contains("Habari ya leo\nKaribu tena")
    );

    // A PDF with no text at all: never an empty success, always a reason.
    let item = settled(&app, &owner, "/api/documents", &blank).await;
    assert_eq!(item["status"], "processing_failed", "{item}");
    let code = item["processing_error_code"].as_str().unwrap();
    assert!(
        ["no_text_layer", "no_text_found"].contains(&code),
        "a blank scan says why: {item}"
    );
    let text: Value = app
        .get_json(&format!("/api/documents/{blank}/text"), &owner)
        .await;
    assert!(text["current"].is_null());
}

async fn recordings_wait_for_a_person_and_can_be_reprocessed(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Voices").await;
    let contributor = join(&app, &owner, &project, "c@example.org", "contributor").await;

    let id = uploaded(
        &app,
        &contributor,
        "/api/voice",
        &project,
        wav(1.0, 16_000, 330.0),
        "take.wav",
        "audio/wav",
    )
    .await;
    let item = settled(&app, &contributor, "/api/voice", &id).await;
    assert_eq!(item["status"], "processing_failed");
    assert_eq!(item["processing_error_code"], "no_transcription_engine");
    let first_job = item["job_id"].as_str().unwrap().to_owned();

    let path = format!("/api/voice/{id}/transcript");
    let resp = put_text(&app, &contributor, &path, "Habari za asubuhi").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text: Value = resp.json().await.unwrap();
    assert_eq!(text["item"]["status"], "ready");
    assert!(text["item"]["processing_error_code"].is_null());
    assert_eq!(text["current"]["source"], "human");

    // Only project admins reprocess; the item goes back to the queue with a new job.
    let reprocess = format!("/api/voice/{id}/reprocess");
    let resp = post(&app, &contributor, &reprocess).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let resp = post(&app, &owner, &reprocess).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let queued: Value = resp.json().await.unwrap();
    assert_ne!(queued["job_id"], first_job.as_str());
    let item = settled(&app, &contributor, "/api/voice", &id).await;
    assert_eq!(item["status"], "processing_failed");
    assert_eq!(item["job_id"], queued["job_id"]);
    // The person's transcript is still there.
    let text: Value = app.get_json(&path, &owner).await;
    assert_eq!(text["current"]["text"], "Habari za asubuhi");
}

/// A document whose processing job failed for good (its blob went missing) in a project
/// of `owner`'s, with a super admin who may retry it.
struct FailedJob {
    owner: String,
    root: String,
    id: String,
    job_id: String,
    /// Where the blob was, and its bytes (to mend the fault).
    blob: std::path::PathBuf,
    saved: Vec<u8>,
}

/// [`FailedJob`] in `app`, which gives a job one attempt (`JOB_MAX_ATTEMPTS=1`).
async fn failed_job(app: &TestApp) -> FailedJob {
    let owner = app.signed_up_user("owner@example.org").await;
    let root = app.super_admin("root@example.org").await;
    let project = create_project(app, &owner, "Failing").await;
    let id = uploaded(
        app,
        &owner,
        "/api/documents",
        &project,
        b"Some text to read.".to_vec(),
        "a.txt",
        "text/plain",
    )
    .await;
    assert_eq!(
        settled(app, &owner, "/api/documents", &id).await["status"],
        "ready"
    );

    // The blob goes missing (a disk fault): reading fails, the job gives up.
    let blob = app.data_dir().join("blobs").join(&project).join(&id);
    let saved = std::fs::read(&blob).unwrap();
    std::fs::remove_file(&blob).unwrap();
    let resp = post(app, &owner, &format!("/api/documents/{id}/reprocess")).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let item = settled(app, &owner, "/api/documents", &id).await;
    assert_eq!(item["status"], "processing_failed", "{item}");
    assert_eq!(item["processing_error_code"], "processing_gave_up");
    let job_id = item["job_id"].as_str().unwrap().to_owned();
    FailedJob {
        owner,
        root,
        id,
        job_id,
        blob,
        saved,
    }
}

async fn a_job_that_keeps_failing_is_parked_and_can_be_retried(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .var("JOB_MAX_ATTEMPTS", "1")
        .spawn()
        .await;
    let FailedJob {
        owner,
        root,
        id,
        job_id,
        blob,
        saved,
    } = failed_job(&app).await;

    // Super admins see it among the failed jobs; nobody else does.
    let failed: Value = app.get_json("/api/admin/jobs?state=failed", &root).await;
    let listed = failed["items"].as_array().unwrap();
    let job = listed
        .iter()
        .find(|j| j["id"] == job_id.as_str())
        .expect("the failed job is listed");
    assert_eq!(job["state"], "failed");
    assert!(job["last_error"].as_str().unwrap().len() > 3);
    let resp = app.get_auth("/api/admin/jobs", &owner).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let resp = app.get_auth("/api/admin/jobs?state=nope", &root).await;
    let problem = assert_problem(resp, StatusCode::BAD_REQUEST, "invalid_parameter").await;
    assert_eq!(problem["field"], "state");

    // The disk is mended; a super admin retries; the item gets its text.
    std::fs::write(&blob, saved).unwrap();
    let retry = format!("/api/admin/jobs/{job_id}/retry");
    let resp = post(&app, &owner, &retry).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let resp = post(&app, &root, &retry).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let item = settled(&app, &owner, "/api/documents", &id).await;
    assert_eq!(item["status"], "ready", "{item}");
    let job: Value = app.get_json(&format!("/api/jobs/{job_id}"), &owner).await;
    assert_eq!(job["state"], "done");
    let resp = post(&app, &root, &retry).await;
    assert_problem(resp, StatusCode::CONFLICT, "job_not_failed").await;
}

/// A job a super admin retries wakes the workers of every node, not only this node's:
/// the retry's commit carries a PostgreSQL `NOTIFY` of the job's kind, as a new job's
/// does (another node's idle worker would otherwise wait for its next poll).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_job_wakes_the_workers_of_every_node() {
    let app = TestAppBuilder::new(Backend::Postgres)
        .var("JOB_MAX_ATTEMPTS", "1")
        .spawn()
        .await;
    let failed = failed_job(&app).await;
    let job: Value = app
        .get_json(&format!("/api/jobs/{}", failed.job_id), &failed.owner)
        .await;
    let kind = job["kind"].as_str().expect("the job's kind").to_owned();

    // Another node listens, as each node's job listener does.
    let mut other_node = sqlx::postgres::PgListener::connect(&app.database_url)
        .await
        .unwrap();
    other_node.listen("alta_jobs").await.unwrap();
    std::fs::write(&failed.blob, &failed.saved).unwrap();
    let retry = format!("/api/admin/jobs/{}/retry", failed.job_id);
    let resp = post(&app, &failed.root, &retry).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let woken = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let notification = other_node.recv().await.unwrap();
            if notification.payload() == kind {
                break;
            }
        }
    })
    .await;
    assert!(
        woken.is_ok(),
        "no other node heard of the retried {kind} job"
    );
    let item = settled(&app, &failed.owner, "/api/documents", &failed.id).await;
    assert_eq!(item["status"], "ready", "{item}");
}

/// A job committed by another node wakes this node's workers through PostgreSQL
/// `NOTIFY`, long before its next poll (ten minutes here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notify_wakes_workers_on_other_nodes() {
    let app = TestAppBuilder::new(Backend::Postgres)
        .var("JOB_POLL_INTERVAL_MS", "600000")
        .spawn()
        .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Notify").await;
    let id = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"Processed once here.".to_vec(),
        "a.txt",
        "text/plain",
    )
    .await;
    assert_eq!(
        settled(&app, &owner, "/api/documents", &id).await["status"],
        "ready"
    );

    // "Another node" reprocesses it: its own connection, its own transaction.
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let job = uuid::Uuid::now_v7();
    let due = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, created_at, updated_at) \
         VALUES ($1, 'ocr', $2, 'queued', 0, 3, $3, $3, $3)",
    )
    .bind(job)
    .bind(json!({"item_id": id}))
    .bind(due)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE items SET job_id = $1, status = 'uploaded' WHERE id = $2")
        .bind(job)
        .bind(uuid::Uuid::parse_str(&id).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("SELECT pg_notify('alta_jobs', 'ocr')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let item = settled(&app, &owner, "/api/documents", &id).await;
    assert_eq!(item["status"], "ready");
    assert_eq!(item["job_id"], job.to_string());
    let text: Value = app
        .get_json(&format!("/api/documents/{id}/text"), &owner)
        .await;
    assert_eq!(
        text["revisions"].as_array().unwrap().len(),
        2,
        "ran once more"
    );
}

/// A fake Document AI that holds every `:process` call until the gate opens, noting the
/// last byte of each file it holds (the tests' marker).
#[derive(Default)]
struct Gate {
    open: std::sync::Mutex<bool>,
    opened: tokio::sync::Notify,
    held: std::sync::Mutex<Vec<u8>>,
}

#[poem::handler]
async fn gated_process(
    body: poem::web::Json<Value>,
    gate: poem::web::Data<&std::sync::Arc<Gate>>,
) -> poem::Response {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body.0["rawDocument"]["content"].as_str().unwrap_or(""))
        .unwrap_or_default();
    let marker = bytes.last().copied().unwrap_or(0);
    gate.held.lock().unwrap().push(marker);
    loop {
        let opened = gate.opened.notified();
        if *gate.open.lock().unwrap() {
            break;
        }
        opened.await;
    }
    let text = format!("Scan {marker}");
    poem::Response::builder()
        .content_type("application/json")
        .body(json!({"document": {"text": text, "pages": []}}).to_string())
}

#[poem::handler]
fn fake_token() -> poem::Response {
    poem::Response::builder()
        .content_type("application/json")
        .body(
            json!({"access_token": "ya29.fake", "expires_in": 3599, "token_type": "Bearer"})
                .to_string(),
        )
}

async fn gated_document_ai(gate: std::sync::Arc<Gate>) -> String {
    use poem::{
        EndpointExt,
        listener::{Acceptor, Listener},
    };
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let app = poem::Route::new()
        .at("/token", poem::post(fake_token))
        .at("/v1/*rest", poem::post(gated_process))
        .data(gate);
    tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
    });
    format!("http://{addr}")
}

/// A server whose Document AI is the gated fake; the gate, and the folder of the key file
/// (kept while the server runs). Leases outlast the test's clock, which runs faster than
/// time.
async fn app_with_gated_document_ai(
    builder: TestAppBuilder,
) -> (TestApp, std::sync::Arc<Gate>, tempfile::TempDir) {
    let gate = std::sync::Arc::new(Gate::default());
    let google = gated_document_ai(gate.clone()).await;
    let keys = tempfile::TempDir::new().unwrap();
    let key = crate::google::key_file(keys.path(), &format!("{google}/token"));
    let app = builder
        .var("GOOGLE_APPLICATION_CREDENTIALS", key.display().to_string())
        .var(
            "DOCUMENT_AI_PROCESSOR",
            "projects/p/locations/eu/processors/ocr1",
        )
        .var("DOCUMENT_AI_ENDPOINT", google)
        .var("JOB_LEASE_SECONDS", "86400")
        .spawn()
        .await;
    (app, gate, keys)
}

/// Let every call the gate holds (and any later one) answer.
fn open(gate: &Gate) {
    *gate.open.lock().unwrap() = true;
    gate.opened.notify_waiters();
}

/// Waits (moving the server's clock on) until the gate holds `n` calls; their markers.
async fn held(app: &TestApp, gate: &Gate, n: usize) -> Vec<u8> {
    for _ in 0..600 {
        let held = gate.held.lock().unwrap().clone();
        if held.len() >= n {
            return held;
        }
        app.clock.advance(chrono::Duration::milliseconds(100));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the OCR engine never got {n} calls");
}

/// Issue 13 Medium 6: OCR runs in its own lane (`ocr_image`), so scans that hold every
/// OCR worker do not hold up a text file; and one project cannot hold every OCR worker.
async fn ocr_never_holds_up_text_and_no_project_holds_every_ocr_worker(backend: Backend) {
    let (app, gate, _keys) =
        app_with_gated_document_ai(TestAppBuilder::new(backend).var("JOB_CONCURRENCY_OCR", "2"))
            .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let busy = create_project(&app, &owner, "Busy").await;
    let other = create_project(&app, &owner, "Other").await;
    let scan = |marker: u8| {
        let mut png = crate::google::png();
        png.push(marker);
        png
    };
    let mut scans = Vec::new();
    for marker in [1, 2] {
        let id = uploaded(
            &app,
            &owner,
            "/api/documents",
            &busy,
            scan(marker),
            "s.png",
            "image/png",
        )
        .await;
        scans.push(id);
    }
    // The busy project has one OCR worker; its second scan waits although a worker is free.
    assert_eq!(held(&app, &gate, 1).await.len(), 1);
    for _ in 0..20 {
        app.clock.advance(chrono::Duration::milliseconds(100));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        gate.held.lock().unwrap().len(),
        1,
        "one project, one OCR worker"
    );
    // Another project's scan gets the free one.
    let id = uploaded(
        &app,
        &owner,
        "/api/documents",
        &other,
        scan(3),
        "t.png",
        "image/png",
    )
    .await;
    scans.push(id);
    let markers = held(&app, &gate, 2).await;
    assert!(
        markers.contains(&3),
        "the other project's scan runs: {markers:?}"
    );

    // Both OCR workers are busy: a text file still gets its text.
    let text = uploaded(
        &app,
        &owner,
        "/api/documents",
        &busy,
        b"Plain words.".to_vec(),
        "a.txt",
        "text/plain",
    )
    .await;
    let item = settled(&app, &owner, "/api/documents", &text).await;
    assert_eq!(item["status"], "ready", "{item}");
    for id in &scans {
        let item: Value = app.get_json(&format!("/api/documents/{id}"), &owner).await;
        assert_eq!(item["status"], "processing", "{item}");
    }

    open(&gate);
    for id in &scans {
        let item = settled(&app, &owner, "/api/documents", id).await;
        assert_eq!(item["status"], "ready", "{item}");
        assert_eq!(item["job"]["kind"], "ocr_image", "{item}");
    }
}

/// Uploads a scan whose last byte is `marker` (what the gated engine notes); its item
/// and job.
async fn marked_scan(
    app: &TestApp,
    owner: &str,
    project: &str,
    marker: u8,
) -> (uuid::Uuid, uuid::Uuid) {
    let mut png = crate::google::png();
    png.push(marker);
    let resp = upload(
        app,
        owner,
        "/api/documents",
        project,
        png,
        "s.png",
        "image/png",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let item: Value = resp.json().await.unwrap();
    let id = |field: &str| item[field].as_str().unwrap().parse().unwrap();
    (id("id"), id("job_id"))
}

/// Deletes a document (204).
async fn delete_document(app: &TestApp, owner: &str, id: uuid::Uuid) {
    let resp = app
        .client
        .delete(app.url(&format!("/api/documents/{id}")))
        .bearer_auth(owner)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

/// Polls a job (moving the server's clock on) until it is done, at most a minute of
/// the test's clock; its last state.
async fn job_settled(
    app: &TestApp,
    db: &alta_actors::store::Db,
    job: uuid::Uuid,
) -> alta_actors::domain::JobState {
    let mut state = alta_actors::domain::JobState::Queued;
    for _ in 0..600 {
        state = alta_actors::store::jobs::find(db, job)
            .await
            .unwrap()
            .unwrap()
            .state;
        if state == alta_actors::domain::JobState::Done {
            break;
        }
        app.clock.advance(chrono::Duration::milliseconds(100));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    state
}

/// An item deleted while its OCR runs gets no text when the engine answers: the outcome
/// is applied by the project's actor, which finds the item gone, and the job is done
/// all the same (in the same commit that would have recorded the text).
async fn an_outcome_for_an_item_deleted_while_processing_is_dropped(backend: Backend) {
    let (app, gate, _keys) = app_with_gated_document_ai(TestAppBuilder::new(backend)).await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Gone").await;
    let (id, job) = marked_scan(&app, &owner, &project, 9).await;
    // The engine holds the scan: the item is processing.
    held(&app, &gate, 1).await;
    delete_document(&app, &owner, id).await;

    open(&gate);
    let db = app.db().await;
    assert_eq!(
        job_settled(&app, &db, job).await,
        alta_actors::domain::JobState::Done,
        "the job ends even though its item is gone"
    );
    let texts = alta_actors::store::texts::revisions(&db, id).await.unwrap();
    assert!(texts.is_empty(), "no text for a deleted item: {texts:?}");
}

/// Outcomes that reach their project together are committed together (one group of
/// its actor, through its fast path): each lands on its own item, with its own text,
/// and each job is done. One of them is for an item deleted meanwhile: it must not be
/// recorded, and the others must not be lost with it.
async fn outcomes_arriving_together_each_land_on_their_own_item(backend: Backend) {
    let (app, gate, _keys) = app_with_gated_document_ai(
        TestAppBuilder::new(backend)
            .var("JOB_CONCURRENCY_OCR", "5")
            .var("OCR_MAX_RUNNING_PER_PROJECT", "5"),
    )
    .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Together").await;
    let mut items = Vec::new(); // (marker, item, job)
    for marker in 1..=5u8 {
        let (id, job) = marked_scan(&app, &owner, &project, marker).await;
        items.push((marker, id, job));
    }
    // The engine holds all five; the third item is deleted while it is read.
    held(&app, &gate, 5).await;
    let gone = items[2].1;
    delete_document(&app, &owner, gone).await;

    open(&gate);
    let db = app.db().await;
    for (marker, id, job) in &items {
        assert_eq!(
            job_settled(&app, &db, *job).await,
            alta_actors::domain::JobState::Done,
            "scan {marker}'s job ends"
        );
        let texts = alta_actors::store::texts::revisions(&db, *id)
            .await
            .unwrap();
        if *id == gone {
            assert!(texts.is_empty(), "no text for a deleted item: {texts:?}");
            continue;
        }
        let texts: Vec<(i32, &str, &str)> = texts
            .iter()
            .map(|t| (t.revision, t.source.as_str(), t.text.as_str()))
            .collect();
        let expected = format!("Scan {marker}");
        assert_eq!(texts, [(1, "machine", expected.as_str())], "scan {marker}");
        let item: Value = app.get_json(&format!("/api/documents/{id}"), &owner).await;
        assert_eq!(item["status"], "ready", "{item}");
    }
}

/// Outcomes that reach their project together, for items that were labelled before a
/// reprocess: each new text carries its item's spans. A group keeps its outcomes for
/// its kept writes, which cannot carry spans; they find the annotations and the group
/// starts over with a savepoint per outcome, which does. One item without an
/// annotation shares the group.
async fn outcomes_arriving_together_carry_their_items_spans(backend: Backend) {
    let (app, gate, _keys) = app_with_gated_document_ai(
        TestAppBuilder::new(backend)
            .var("JOB_CONCURRENCY_OCR", "4")
            .var("OCR_MAX_RUNNING_PER_PROJECT", "4"),
    )
    .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Labelled").await;
    let fields = json!([{"name": "entities", "type": "spans", "options": ["PER", "LOC"]}]);
    crate::labels::schema_set(&app, &owner, &project, fields).await;
    open(&gate);
    let mut items = Vec::new();
    for marker in 1..=4u8 {
        let (id, _) = marked_scan(&app, &owner, &project, marker).await;
        let item = settled(&app, &owner, "/api/documents", &id.to_string()).await;
        assert_eq!(item["status"], "ready", "{item}");
        items.push((marker, format!("/api/documents/{id}")));
    }
    // The first three are labelled on a person's revision with two code points before
    // the word ("👋 Scan 1": "Scan" is 2..6).
    let mut revisions = Vec::new();
    for (marker, item) in &items[..3] {
        let text = format!("👋 Scan {marker}");
        let resp = put_text(&app, &owner, &format!("{item}/text"), &text).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let spans = json!({"entities": [{"start": 2, "end": 6, "label": "PER"}]});
        let labelled = crate::labels::annotated(&app, &owner, item, spans).await;
        revisions.push(labelled["revision"].as_i64().unwrap());
    }

    // All four are read again; the engine holds them, then answers them together.
    *gate.open.lock().unwrap() = false;
    gate.held.lock().unwrap().clear();
    for (_, item) in &items {
        let resp = post(&app, &owner, &format!("{item}/reprocess")).await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    held(&app, &gate, 4).await;
    open(&gate);
    for (i, (marker, item)) in items.iter().enumerate() {
        let id = item.rsplit('/').next().unwrap();
        let done = settled(&app, &owner, "/api/documents", id).await;
        assert_eq!(done["status"], "ready", "{done}");
        let text: Value = app.get_json(&format!("{item}/text"), &owner).await;
        assert_eq!(text["current"]["text"], format!("Scan {marker}"), "{text}");
        let carried: Value = app.get_json(&format!("{item}/annotation"), &owner).await;
        if i == 3 {
            assert_eq!(carried["revision"], 0, "never labelled: {carried}");
            continue;
        }
        assert_eq!(carried["revision"], revisions[i] + 1, "carried: {carried}");
        assert_eq!(
            carried["values"]["entities"],
            json!([{"start": 0, "end": 4, "label": "PER"}]),
            "scan {marker}"
        );
    }
}

/// A project deleted while one of its scans is being read still gets the scan's text:
/// its items are kept for a restore, so the outcome is recorded, and after the restore
/// the item is ready (not stuck `processing`).
async fn processing_goes_on_while_its_project_is_deleted(backend: Backend) {
    let (app, gate, _keys) = app_with_gated_document_ai(TestAppBuilder::new(backend)).await;
    let root = app.super_admin("root@example.org").await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Paused").await;
    let mut png = crate::google::png();
    png.push(4);
    let id = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        png,
        "s.png",
        "image/png",
    )
    .await;
    held(&app, &gate, 1).await;
    let resp = app
        .client
        .delete(app.url(&format!("/api/projects/{project}")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    open(&gate);
    let db = app.db().await;
    let item_id = id.parse().unwrap();
    let mut texts = Vec::new();
    for _ in 0..600 {
        texts = alta_actors::store::texts::revisions(&db, item_id)
            .await
            .unwrap();
        if !texts.is_empty() {
            break;
        }
        app.clock.advance(chrono::Duration::milliseconds(100));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(texts.len(), 1, "the scan's text is recorded");

    let resp = post(&app, &root, &format!("/api/projects/{project}/restore")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let item: Value = app.get_json(&format!("/api/documents/{id}"), &owner).await;
    assert_eq!(item["status"], "ready", "{item}");
    let text: Value = app
        .get_json(&format!("/api/documents/{id}/text"), &owner)
        .await;
    assert_eq!(text["current"]["text"], "Scan 4", "{text}");
}

/// `record_outcomes` (migration 0034), which records the outcomes a group kept, finds
/// each job and item by its key, as the single statements do
/// (`plans::statements_find_their_rows_by_key_on_young_tables`). PL/pgSQL keeps its
/// statements' plans for the connection, and `EXPLAIN` cannot reach them, so
/// `auto_explain` reports them (as notices, to `psql`) while the function records an
/// outcome, in generic plans, on young tables. Its job and its item
/// must each be read by their key: a statement over all the outcomes at once, joined to
/// `jobs` and `items`, read `jobs` by a sequential scan and `items` through an index
/// whose second column is the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_outcomes_find_their_jobs_and_items_by_their_keys_on_young_tables() {
    crate::helpers::init_test_env();
    let app = TestAppBuilder::new(Backend::Postgres).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Plans").await;
    let words = "Plain words, read again.";
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        words.as_bytes().to_vec(),
        "p.txt",
        "text/plain",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let item: Value = resp.json().await.unwrap();
    let (item_id, job_id) = (
        item["id"].as_str().unwrap(),
        item["job_id"].as_str().unwrap(),
    );
    let done = settled(&app, &owner, "/api/documents", item_id).await;
    assert_eq!(done["status"], "ready", "{done}");

    // The job is taken again by a worker, and the item waits for its outcome.
    let db = app.db().await;
    let alta_actors::store::Db::Postgres(pool) = &db else {
        unreachable!("a PostgreSQL test")
    };
    let (item_uuid, job_uuid): (uuid::Uuid, uuid::Uuid) =
        (item_id.parse().unwrap(), job_id.parse().unwrap());
    let (kind,): (String,) = sqlx::query_as(
        "UPDATE jobs SET state = 'running', locked_by = 'probe' WHERE id = $1 RETURNING kind",
    )
    .bind(job_uuid)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE items SET status = 'processing' WHERE id = $1")
        .bind(item_uuid)
        .execute(pool)
        .await
        .unwrap();
    crate::plans::assert_young(pool).await;
    db.close().await;

    let script = format!(
        "SET plan_cache_mode = force_generic_plan;\n\
         LOAD 'auto_explain';\n\
         SET auto_explain.log_min_duration = 0;\n\
         SET auto_explain.log_nested_statements = on;\n\
         SET auto_explain.log_level = notice;\n\
         SELECT recorded FROM record_outcomes(ARRAY['{job_id}']::uuid[], ARRAY['probe'], \
         ARRAY['{kind}'], ARRAY['{item_id}']::uuid[], ARRAY['{project}']::uuid[], \
         ARRAY['uploaded,processing'], ARRAY['ready'], ARRAY[NULL]::text[], \
         ARRAY[NULL]::text[], ARRAY['{text_id}']::uuid[], ARRAY['plain_text'], \
         ARRAY['{words}'], ARRAY[NULL]::jsonb[], ARRAY[NULL]::jsonb[], \
         ARRAY[NULL]::float8[], ARRAY[now()]);\n",
        text_id = uuid::Uuid::now_v7(),
    );
    let (stdout, notices) = crate::plans::psql(&app, &script);
    // The last line is the query's answer (each `SET` and the `LOAD` print a tag).
    let recorded = stdout.lines().last().unwrap_or_default();
    assert_eq!(recorded, "1", "the outcome is recorded: {stdout} {notices}");

    // Each statement's plan is one notice: its text, then its nodes.
    for (statement, table, key) in [
        ("UPDATE jobs SET state = 'done'", "jobs", "jobs_pkey"),
        ("UPDATE items SET status = o_to[k]", "items", "items_pkey"),
    ] {
        let plan = notices
            .split("NOTICE:")
            .find(|notice| notice.contains(&format!("Query Text: {statement}")))
            .unwrap_or_else(|| panic!("no plan of `{statement}`: {notices}"));
        let scans: Vec<&str> = plan
            .lines()
            .filter(|line| line.contains(&format!(" on {table} ")) && line.contains("Scan"))
            .collect();
        assert!(!scans.is_empty(), "no scan of {table}: {plan}");
        for scan in scans {
            assert!(
                scan.contains(&format!("Index Scan using {key} on {table}")),
                "{table} is read by its key: {plan}"
            );
        }
    }
}

/// The text lane's `JOB_CONCURRENCY_TEXT` bounds the files parsed in child processes,
/// not the plain text read in the worker: with the one extraction slot taken by a DOCX
/// whose parser hangs, a text file still gets its text. (With one job in the lane per
/// slot, text waited behind every parse, and the lane read about 200 documents a second
/// on PostgreSQL while uploads came at 800.)
async fn plain_text_is_read_while_every_extraction_slot_is_taken(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let hanging = dir.path().join("hanging-extract");
    std::fs::write(&hanging, "#!/bin/sh\nexec /bin/sleep 30\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hanging, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let app = TestAppBuilder::new(backend)
        .var("JOB_CONCURRENCY_TEXT", "1")
        .var("EXTRACT_EXECUTABLE", hanging.display().to_string())
        .spawn()
        .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Slots").await;
    let word = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        docx(&["Never read"]),
        "hangs.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )
    .await;
    // Its job has started: the one slot is taken (the parser never answers).
    let mut started = false;
    for _ in 0..400 {
        let item: Value = app
            .get_json(&format!("/api/documents/{word}"), &owner)
            .await;
        if item["status"] == "processing" {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(started, "the DOCX's job never started");

    let text = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"Plain words, read at once.".to_vec(),
        "a.txt",
        "text/plain",
    )
    .await;
    let item = settled(&app, &owner, "/api/documents", &text).await;
    assert_eq!(item["status"], "ready", "{item}");
    let word: Value = app
        .get_json(&format!("/api/documents/{word}"), &owner)
        .await;
    assert_eq!(
        word["status"], "processing",
        "the DOCX still holds its slot: {word}"
    );
}
