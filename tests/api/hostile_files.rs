//! Hostile files: text extraction runs in a limited child process (`alta extract`), so a
//! file built to exhaust memory ends its item `processing_failed` with a code, once, and
//! the server (this test process) does not grow.

use serde_json::Value;

use crate::{
    backend_tests,
    helpers::{Backend, TestApp, TestAppBuilder},
    pdf::q_bomb_pdf_with_text,
    processing::{settled, text_pdf, uploaded},
    projects::create_project,
};

backend_tests!(
    a_pdf_memory_bomb_fails_once_and_the_server_does_not_grow,
    a_large_page_under_the_cap_is_read_within_the_child_memory_limit,
    too_many_pages_is_refused,
    an_image_of_text_is_read_by_tesseract_in_the_ocr_lane,
);

/// This process's resident memory (the server runs in it), KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// As `processing::settled`, with room for a slow (debug, busy) machine: reading a
/// large page takes a while there.
async fn settled_slowly(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..2400 {
        let item: Value = app.get_json(&format!("/api/documents/{id}"), token).await;
        let status = item["status"].as_str().unwrap().to_owned();
        if status != "uploaded" && status != "processing" {
            return item;
        }
        app.clock.advance(chrono::Duration::milliseconds(100));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("item {id} never finished processing");
}

/// The item's job, as its uploader sees it, once its worker has recorded it (the item's
/// outcome commits just before).
async fn job_of(app: &TestApp, token: &str, item: &Value) -> Value {
    let job_id = item["job_id"].as_str().unwrap();
    for _ in 0..400 {
        let job: Value = app.get_json(&format!("/api/jobs/{job_id}"), token).await;
        if job["state"] != "running" {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {job_id} is still running");
}

async fn a_pdf_memory_bomb_fails_once_and_the_server_does_not_grow(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Hostile").await;
    // 6 MiB of operators: over the page cap (4 MiB), and ~1.4 GiB if parsed whole.
    let bomb = q_bomb_pdf_with_text(6 * 1024 * 1024, None);
    assert!(
        bomb.len() < 64 * 1024,
        "a small upload: {} bytes",
        bomb.len()
    );
    let before = rss_kib();
    let id = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        bomb,
        "bomb.pdf",
        "application/pdf",
    )
    .await;
    let item = settled(&app, &owner, "/api/documents", &id).await;
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert_eq!(item["status"], "processing_failed", "{item}");
    let code = item["processing_error_code"].as_str().unwrap();
    assert!(
        ["resource_limit", "page_too_large"].contains(&code),
        "refused for its size: {item}"
    );
    // Final, not retried.
    let job = job_of(&app, &owner, &item).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
    // Parsed in this process, the bomb would take ~1.4 GiB; the margin is for the other
    // tests running in this process meanwhile.
    assert!(grown_mib < 512, "the server grew by {grown_mib} MiB");

    // The server is fine: an ordinary PDF still gets its text.
    let id = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        text_pdf(&["Invoice number 4711"]),
        "invoice.pdf",
        "application/pdf",
    )
    .await;
    let item = settled(&app, &owner, "/api/documents", &id).await;
    assert_eq!(item["status"], "ready", "{item}");
}

/// With the page cap raised, a page of the same kind (after a line of text) is read one
/// operation at a time in the child, within a memory limit that holding every
/// operation (~240 times the content, over 200 MiB here) would break: its text comes out.
async fn a_large_page_under_the_cap_is_read_within_the_child_memory_limit(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .var("PDF_MAX_PAGE_CONTENT_BYTES", (2 * 1024 * 1024).to_string())
        .var("EXTRACT_MEMORY_MB", "160")
        // A busy machine must not turn this into a timeout.
        .var("OCR_PAGE_TIMEOUT_SECONDS", "3600")
        .var("OCR_TIMEOUT_SECONDS", "3600")
        // The test moves the server's clock faster than time: leases must outlast it.
        .var("JOB_LEASE_SECONDS", "86400")
        .spawn()
        .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Large").await;
    let id = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        q_bomb_pdf_with_text(1024 * 1024, Some("Still readable")),
        "large.pdf",
        "application/pdf",
    )
    .await;
    let item = settled_slowly(&app, &owner, &id).await;
    assert_eq!(item["status"], "ready", "{item}");
    let text: Value = app
        .get_json(&format!("/api/documents/{id}/text"), &owner)
        .await;
    assert_eq!(text["current"]["engine"], "pdf_text_layer", "{text}");
    assert_eq!(text["current"]["text"], "Still readable", "{text}");
    assert_eq!(job_of(&app, &owner, &item).await["attempts"], 1);
}

async fn too_many_pages_is_refused(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .var("PDF_MAX_PAGES", "3")
        .spawn()
        .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Pages").await;
    let long = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        text_pdf(&["one", "two", "three", "four"]),
        "long.pdf",
        "application/pdf",
    )
    .await;
    let short = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        text_pdf(&["one", "two", "three"]),
        "short.pdf",
        "application/pdf",
    )
    .await;
    let item = settled(&app, &owner, "/api/documents", &long).await;
    assert_eq!(item["status"], "processing_failed", "{item}");
    assert_eq!(item["processing_error_code"], "too_many_pages", "{item}");
    assert_eq!(job_of(&app, &owner, &item).await["attempts"], 1);
    let item = settled(&app, &owner, "/api/documents", &short).await;
    assert_eq!(item["status"], "ready", "{item}");
}

/// Ordinary files still read as before through the child and the lanes: an image of
/// text goes to the OCR lane and tesseract (which the suite needs, as worker_crash does).
async fn an_image_of_text_is_read_by_tesseract_in_the_ocr_lane(backend: Backend) {
    let pdftoppm = alta_actors::processing::local_ocr::find_pdftoppm()
        .expect("pdftoppm (poppler-utils) is needed to render the test image");
    assert!(
        alta_actors::processing::local_ocr::find_tesseract().is_some(),
        "tesseract (tesseract-ocr) is needed: scripts/test installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("words.pdf");
    std::fs::write(&pdf, text_pdf(&["Invoice number 4711"])).unwrap();
    let status = std::process::Command::new(pdftoppm)
        .args(["-r", "200", "-png", "-singlefile", "-f", "1", "-l", "1"])
        .arg(&pdf)
        .arg(dir.path().join("words"))
        .status()
        .unwrap();
    assert!(status.success());
    let png = std::fs::read(dir.path().join("words.png")).unwrap();

    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Images").await;
    let id = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        png,
        "words.png",
        "image/png",
    )
    .await;
    let item = settled_slowly(&app, &owner, &id).await;
    assert_eq!(item["status"], "ready", "{item}");
    let job = job_of(&app, &owner, &item).await;
    assert_eq!(job["kind"], "ocr_image", "{job}");
    assert_eq!(job["attempts"], 1, "the hand-over is not an attempt: {job}");
    let text: Value = app
        .get_json(&format!("/api/documents/{id}/text"), &owner)
        .await;
    assert_eq!(text["current"]["engine"], "tesseract", "{text}");
    let read = text["current"]["text"].as_str().unwrap().to_lowercase();
    assert!(read.contains("invoice") && read.contains("4711"), "{read}");
}
