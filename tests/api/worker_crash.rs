//! Crash safety of processing jobs, with the real `alta serve` binary: the server is
//! killed (SIGKILL) while its worker runs an OCR job; the job stays `running` under its
//! lease, the restarted server takes it again once the lease has run out, renews the
//! lease while the job outlasts it, and the job finishes exactly once.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use reqwest::{
    Client, StatusCode,
    multipart::{Form, Part},
};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    backend_tests,
    child_server::{Server, Site},
    helpers::{Backend, init_test_env},
    pdf::blank_pdf,
};

backend_tests!(a_job_killed_mid_run_is_reclaimed_after_its_lease_and_finishes_once);

/// Blank pages of the scanned PDF. It has no text layer, so every page is rendered with
/// pdftoppm and read by tesseract, one after the other: a second or two a page on a
/// small machine, long enough to kill the server mid-job many times over.
const BLANK_PAGES: usize = 8;
/// The lease both servers claim the job with: the job may be taken again this long
/// after the kill. The restarted server's run of the job takes longer than that, so its
/// worker must renew the lease while the job runs (a third of the lease at a time), or
/// it would take the job once more itself (a third attempt, which the test refuses).
const SHORT_LEASE_SECONDS: &str = "3";
/// Most time the restarted server may take to finish the job (lease wait plus OCR).
const FINISH_TIMEOUT: Duration = Duration::from_secs(120);

/// What every run of `alta` here gets on top of the shared settings (the lease is set
/// per run). Its TMPDIR (in the site's scratch dir) is where OCR scratch files go.
const ENV: &[(&str, &str)] = &[
    ("SECRET_KEY", "worker-crash-test-secret-key-0123456789"),
    ("JOB_POLL_INTERVAL_MS", "200"),
    // One OCR job at a time (there is only one): a worker never takes the job
    // it is running a second time, even if the run outlasts its lease.
    ("JOB_CONCURRENCY_OCR", "1"),
];

/// The environment of one run: its job lease.
fn lease(seconds: &str) -> [(&str, &str); 1] {
    [("JOB_LEASE_SECONDS", seconds)]
}

/// The item's row, its job's row, how many jobs name the item and how many texts it has.
#[derive(Debug)]
struct Rows {
    status: String,
    error_code: Option<String>,
    job_id: Uuid,
    job_state: String,
    attempts: i32,
    locked_by: Option<String>,
    jobs_for_item: i64,
    texts: i64,
}

/// [`Rows`] through one pool (the same SQL on both backends but for the jobs count).
macro_rules! rows {
    ($pool:expr, $item:expr, $item_sql:expr, $jobs_sql:expr) => {{
        let (status, job_id, error_code): (String, Option<Uuid>, Option<String>) =
            sqlx::query_as($item_sql)
                .bind($item)
                .fetch_one(&$pool)
                .await
                .unwrap();
        let job_id = job_id.expect("the item names its job");
        let (job_state, attempts, locked_by): (String, i32, Option<String>) =
            sqlx::query_as("SELECT state, attempts, locked_by FROM jobs WHERE id = $1")
                .bind(job_id)
                .fetch_one(&$pool)
                .await
                .unwrap();
        let jobs_for_item: i64 = sqlx::query_scalar($jobs_sql)
            .bind($item.to_string())
            .fetch_one(&$pool)
            .await
            .unwrap();
        let texts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM item_texts WHERE item_id = $1")
            .bind($item)
            .fetch_one(&$pool)
            .await
            .unwrap();
        Rows {
            status,
            error_code,
            job_id,
            job_state,
            attempts,
            locked_by,
            jobs_for_item,
            texts,
        }
    }};
}

impl Site {
    /// What the database holds about the item and its job, read straight from the
    /// tables (no server needs to be running).
    async fn rows(&self, item: Uuid) -> Rows {
        match self.backend {
            Backend::Sqlite => {
                let url = self.database_url.trim_end_matches("?mode=rwc");
                let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                let rows = rows!(
                    pool,
                    item,
                    "SELECT status, job_id, processing_error_code FROM items WHERE id = $1",
                    "SELECT COUNT(*) FROM jobs WHERE json_extract(payload, '$.item_id') = $1"
                );
                pool.close().await;
                rows
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.database_url).await.unwrap();
                let rows = rows!(
                    pool,
                    item,
                    "SELECT status, job_id, processing_error_code FROM items WHERE id = $1",
                    "SELECT COUNT(*) FROM jobs WHERE payload->>'item_id' = $1"
                );
                pool.close().await;
                rows
            }
        }
    }
}

impl Server {
    async fn get(&self, client: &Client, token: &str, path: &str) -> Value {
        let resp = client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        resp.json().await.unwrap()
    }
}

/// `name` as an executable file on `PATH`, if there is one.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The job under test is a real OCR run: without the tools the server would fail the
/// item at once (`no_text_layer`) and there would be nothing to kill mid-job.
fn require_ocr_tools() {
    for (tool, package) in [
        ("tesseract", "tesseract-ocr"),
        ("pdftoppm", "poppler-utils"),
    ] {
        assert!(
            on_path(tool).is_some(),
            "`{tool}` is not on PATH: this test kills a server in the middle of a real OCR \
             job and needs it (apt-get install {package}; scripts/test installs it)"
        );
    }
}

async fn a_job_killed_mid_run_is_reclaimed_after_its_lease_and_finishes_once(backend: Backend) {
    init_test_env();
    require_ocr_tools();
    let site = Site::new(backend, ENV).await;
    site.admin_create(&lease(SHORT_LEASE_SECONDS));
    let client = Client::new();

    let mut server = site.serve("first", &lease(SHORT_LEASE_SECONDS)).await;
    let token = server.token(&client).await;
    let project = server.create_project(&client, &token, "Scans").await;

    let part = Part::bytes(blank_pdf(BLANK_PAGES))
        .file_name("scan.pdf")
        .mime_str("application/pdf")
        .unwrap();
    let form = Form::new()
        .text("project_id", project)
        .text("title", "A long scan")
        .part("file", part);
    let resp = client
        .post(server.url("/api/documents"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let item: Value = resp.json().await.unwrap();
    let id = item["id"].as_str().unwrap().to_owned();
    let item_id = Uuid::parse_str(&id).unwrap();
    let job_id = item["job_id"]
        .as_str()
        .expect("the upload names its job")
        .to_owned();
    let item_path = format!("/api/documents/{id}");
    let job_path = format!("/api/jobs/{job_id}");

    // Wait until the OCR lane's worker has claimed the job (the text lane found no text
    // layer and handed it over), then kill the server at once: the OCR of the pages is
    // under way. Killed earlier, in the text lane or between the lanes, the job would be
    // on another path than the one this test is about.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let item = server.get(&client, &token, &item_path).await;
        match item["status"].as_str().unwrap() {
            "uploaded" | "processing" => {}
            other => panic!("the job ended ({other}) before it could be killed: {item}"),
        }
        let job = server.get(&client, &token, &job_path).await;
        if job["kind"] == "ocr_image" && job["state"] == "running" {
            assert_eq!(job["attempts"], 1, "on its first attempt: {job}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the OCR never started: {job} {item}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_at = Instant::now();
    server.kill_9();
    drop(server);

    // Killed mid-job, in the database: the item is still `processing` and its job is
    // still `running`, leased to the dead server, on its first attempt.
    let at_kill = site.rows(item_id).await;
    eprintln!("at the kill: {at_kill:?}");
    assert_eq!(at_kill.status, "processing", "killed mid-job: {at_kill:?}");
    assert_eq!(at_kill.job_id.to_string(), job_id);
    assert_eq!(at_kill.job_state, "running", "killed mid-job: {at_kill:?}");
    assert_eq!(at_kill.attempts, 1, "{at_kill:?}");
    assert_eq!(at_kill.jobs_for_item, 1, "{at_kill:?}");
    assert_eq!(at_kill.texts, 0, "{at_kill:?}");
    let dead_worker = at_kill.locked_by.clone().expect("the job is leased");

    // Restart on the same data. The job is not queued: only its lease running out lets
    // a worker take it again. The new run outlasts its own lease, renewed as it runs;
    // the worker has a second slot free for the project, which would take the job once
    // more should the lease run out.
    let second = [
        ("JOB_LEASE_SECONDS", SHORT_LEASE_SECONDS),
        ("JOB_CONCURRENCY_OCR", "2"),
        ("OCR_MAX_RUNNING_PER_PROJECT", "2"),
    ];
    let server = site.serve("second", &second).await;
    let token = server.token(&client).await;
    let deadline = Instant::now() + FINISH_TIMEOUT;
    let item = loop {
        let job = server.get(&client, &token, &job_path).await;
        let attempts = job["attempts"].as_i64().unwrap();
        assert!(attempts <= 2, "the job ran more than once more: {job}");
        let item = server.get(&client, &token, &item_path).await;
        if item["status"] != "processing" {
            break item;
        }
        assert!(
            Instant::now() < deadline,
            "the job was not finished {FINISH_TIMEOUT:?} after the restart: {job} {item}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "finished {:.1} s after the kill (lease {SHORT_LEASE_SECONDS} s, {BLANK_PAGES} blank pages)",
        killed_at.elapsed().as_secs_f64()
    );

    // The outcome of a blank scan: a reason, never an empty success.
    assert_eq!(item["status"], "processing_failed", "{item}");
    assert_eq!(item["processing_error_code"], "no_text_found", "{item}");
    assert_eq!(item["job_id"], job_id.as_str(), "the same job: {item}");
    let text = server
        .get(&client, &token, &format!("{item_path}/text"))
        .await;
    assert!(text["current"].is_null(), "no text: {text}");

    // The job: done, after one killed attempt and one that finished.
    let job = server.get(&client, &token, &job_path).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(
        job["attempts"], 2,
        "one killed attempt, one finished: {job}"
    );

    // Give the restarted server's worker a few more polls: nothing runs it again.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = site.rows(item_id).await;
    eprintln!("after the restart: {after:?}");
    assert_eq!(after.status, "processing_failed", "{after:?}");
    assert_eq!(after.error_code.as_deref(), Some("no_text_found"));
    assert_eq!(after.job_id.to_string(), job_id, "the item kept its job");
    assert_eq!(after.job_state, "done", "{after:?}");
    assert_eq!(after.attempts, 2, "exactly one more attempt: {after:?}");
    assert_eq!(after.jobs_for_item, 1, "no second job for the item");
    assert_eq!(after.texts, 0, "no text rows for the item");
    let new_worker = after.locked_by.expect("the finishing worker is recorded");
    assert_ne!(
        new_worker, dead_worker,
        "the restarted server's worker finished the job"
    );
    let job = server.get(&client, &token, &job_path).await;
    assert_eq!(job["attempts"], 2, "{job}");
    let lost = server
        .log_lines()
        .into_iter()
        .filter(|line| line["fields"]["message"] == "job finished after its lease was lost")
        .count();
    assert_eq!(lost, 0, "no run of the job lost its lease");
}
