//! Google Document AI and Speech-to-Text, end to end: the server's workers talk to a
//! fake Google on loopback that answers with the documented JSON (including a 429 the
//! job retries), on both backends.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use base64::Engine as _;
use poem::{
    EndpointExt, Request, Response, Route, Server, handler,
    http::StatusCode as PoemStatus,
    listener::{Acceptor, Listener, TcpListener},
    post,
    web::Data,
};
use serde_json::{Value, json};

use crate::{
    backend_tests,
    helpers::{Backend, TestAppBuilder},
    items::wav,
    processing::{settled, uploaded},
    projects::create_project,
};

backend_tests!(google_engines_read_scans_and_transcribe_recordings);

const PROCESSOR: &str = "projects/alta-test/locations/eu/processors/ocr1";

#[derive(Default)]
struct Calls {
    token: AtomicUsize,
    process: AtomicUsize,
    recognize: AtomicUsize,
}

fn json_reply(status: u16, body: Value) -> Response {
    Response::builder()
        .status(PoemStatus::from_u16(status).unwrap())
        .content_type("application/json")
        .body(body.to_string())
}

#[handler]
fn token_endpoint(calls: Data<&Arc<Calls>>) -> Response {
    calls.token.fetch_add(1, Ordering::SeqCst);
    json_reply(
        200,
        json!({"access_token": "ya29.fake", "expires_in": 3599, "token_type": "Bearer"}),
    )
}

#[handler]
fn google_v1(req: &Request, calls: Data<&Arc<Calls>>) -> Response {
    let path = req.uri().path();
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some("Bearer ya29.fake");
    if !authorized {
        return json_reply(
            401,
            json!({"error": {"code": 401, "message": "no token", "status": "UNAUTHENTICATED"}}),
        );
    }
    if path == format!("/v1/{PROCESSOR}:process") {
        // The first call is rate limited, as Google does under load: the job retries.
        if calls.process.fetch_add(1, Ordering::SeqCst) == 0 {
            return json_reply(
                429,
                json!({"error": {"code": 429, "message": "Too many requests", "status": "UNAVAILABLE"}}),
            );
        }
        let text = "Scanned invoice 4711\nPage two total\n";
        return json_reply(
            200,
            json!({
                "document": {
                    "uri": "",
                    "mimeType": "image/png",
                    "text": text,
                    "pages": [
                        {"pageNumber": 1, "layout": {"textAnchor": {"textSegments": [{"endIndex": "21"}]}, "confidence": 0.9}},
                        {"pageNumber": 2, "layout": {"textAnchor": {"textSegments": [{"startIndex": "21", "endIndex": "36"}]}, "confidence": 0.8}}
                    ]
                },
                "humanReviewStatus": {"state": "SKIPPED"}
            }),
        );
    }
    if path == "/v1/speech:recognize" {
        calls.recognize.fetch_add(1, Ordering::SeqCst);
        return json_reply(
            200,
            json!({
                "results": [{
                    "alternatives": [{
                        "transcript": "habari za asubuhi",
                        "confidence": 0.92,
                        "words": [
                            {"startTime": "0s", "endTime": "0.400s", "word": "habari", "confidence": 0.95},
                            {"startTime": "0.400s", "endTime": "0.600s", "word": "za", "confidence": 0.9},
                            {"startTime": "0.600s", "endTime": "1.100s", "word": "asubuhi", "confidence": 0.91}
                        ]
                    }],
                    "resultEndTime": "1.100s",
                    "languageCode": "sw-tz"
                }],
                "totalBilledTime": "2s"
            }),
        );
    }
    json_reply(
        404,
        json!({"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}),
    )
}

/// The fake Google, on a free loopback port; its base URL.
async fn fake_google(calls: Arc<Calls>) -> String {
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let app = Route::new()
        .at("/token", post(token_endpoint))
        .at("/v1/*rest", post(google_v1))
        .data(calls);
    tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor).run(app).await;
    });
    format!("http://{addr}")
}

/// A service-account key file (a fresh RSA key) whose `token_uri` is the fake's.
pub fn key_file(dir: &std::path::Path, token_uri: &str) -> std::path::PathBuf {
    let (_, pem) = crate::helpers::rsa_key();
    let key = json!({
        "type": "service_account",
        "project_id": "alta-test",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": "alta-test@alta-test.iam.gserviceaccount.com",
        "client_id": "100000000000000000000",
        "token_uri": token_uri,
    });
    let path = dir.join("service-account.json");
    std::fs::write(&path, key.to_string()).unwrap();
    path
}

/// A 1×1 PNG: an image, so OCR goes to Document AI.
pub fn png() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
        .unwrap()
}

async fn google_engines_read_scans_and_transcribe_recordings(backend: Backend) {
    let calls = Arc::new(Calls::default());
    let google = fake_google(calls.clone()).await;
    let keys = tempfile::TempDir::new().unwrap();
    let key = key_file(keys.path(), &format!("{google}/token"));
    let app = TestAppBuilder::new(backend)
        .var("GOOGLE_APPLICATION_CREDENTIALS", key.display().to_string())
        .var("DOCUMENT_AI_PROCESSOR", PROCESSOR)
        .var("DOCUMENT_AI_ENDPOINT", google.clone())
        .var("SPEECH_TO_TEXT", "google")
        .var("SPEECH_ENDPOINT", google.clone())
        .var("JOB_BASE_BACKOFF_MS", "20")
        .spawn()
        .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Google").await;

    let id = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        png(),
        "scan.png",
        "image/png",
    )
    .await;
    let item = settled(&app, &owner, "/api/documents", &id).await;
    assert_eq!(item["status"], "ready", "{item}");
    assert_eq!(item["job"]["attempts"], 2, "the 429 was retried: {item}");
    let text: Value = app
        .get_json(&format!("/api/documents/{id}/text"), &owner)
        .await;
    assert_eq!(text["current"]["engine"], "google_document_ai");
    let pages = text["current"]["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2, "{text}");
    assert_eq!(pages[0], "Scanned invoice 4711");
    assert_eq!(pages[1], "Page two total");
    assert!((text["current"]["confidence"].as_f64().unwrap() - 0.85).abs() < 1e-9);

    let id = uploaded(
        &app,
        &owner,
        "/api/voice",
        &project,
        wav(1.5, 16_000, 440.0),
        "a.wav",
        "audio/wav",
    )
    .await;
    let item = settled(&app, &owner, "/api/voice", &id).await;
    assert_eq!(item["status"], "ready", "{item}");
    let text: Value = app
        .get_json(&format!("/api/voice/{id}/transcript"), &owner)
        .await;
    assert_eq!(text["current"]["engine"], "google_speech");
    assert_eq!(text["current"]["text"], "habari za asubuhi");
    let words = text["current"]["words"].as_array().unwrap();
    assert_eq!(words.len(), 3);
    assert_eq!(words[2]["word"], "asubuhi");
    assert!((words[2]["end_seconds"].as_f64().unwrap() - 1.1).abs() < 1e-9);

    assert_eq!(calls.recognize.load(Ordering::SeqCst), 1);
    assert_eq!(calls.process.load(Ordering::SeqCst), 2);
    assert!(
        calls.token.load(Ordering::SeqCst) >= 1,
        "a service-account token was used"
    );

    // The word timings are suggested segments for the schema's segments fields, with
    // the engine's confidence; accepting them makes them the recording's labels.
    let resp = app
        .client
        .put(app.url(&format!("/api/projects/{project}/label-schema")))
        .bearer_auth(&owner)
        .json(&json!({"fields": [
            {"name": "turns", "type": "segments", "options": ["speech", "music"]},
            {"name": "mood", "type": "label", "options": ["calm"]},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let path = format!("/api/voice/{id}/annotation/suggestions");
    let listed: Value = app.get_json(&path, &owner).await;
    let expected_turns = json!([
        {"start_ms": 0, "end_ms": 1100, "label": "speech", "text": "habari za asubuhi"}
    ]);
    assert_eq!(
        listed,
        json!({"suggestions": [{
            "source": "transcription",
            "score": 0.92,
            "schema_version": 1,
            "values": {"turns": expected_turns},
            "created_at": listed["suggestions"][0]["created_at"],
        }]})
    );
    let resp = app
        .client
        .post(app.url(&format!("{path}/accept")))
        .bearer_auth(&owner)
        .json(&json!({"source": "transcription"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let annotation: Value = resp.json().await.unwrap();
    assert_eq!(annotation["revision"], 1);
    assert_eq!(annotation["values"], json!({"turns": expected_turns}));
}
