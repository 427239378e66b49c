//! The error contract seen from outside: every problem `code` is documented (in the
//! served document and in README's table), each operation lists the error statuses it
//! can produce, tus refusals use statuses tus clients do not retry, a 405 says `Allow`,
//! and CORS answers say `Vary: Origin`.

use alta_actors::ErrorCode;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    backend_tests,
    helpers::{Backend, assert_problem, spawn_app},
    projects::create_project,
    schema_contract::{operation, served_document},
};

backend_tests!(
    tus_refusals_are_statuses_clients_do_not_retry,
    a_400_breaks_the_document_and_a_422_is_refused_content,
);

fn statuses(spec: &Value, id: &str) -> Vec<String> {
    operation(spec, id)["responses"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_is_documented_in_the_document_and_the_readme() {
    let app = spawn_app(Backend::Sqlite).await;
    let spec = served_document(&app).await;
    let problem = &spec["components"]["schemas"]["Problem"];
    let listed: Vec<&str> = problem["properties"]["code"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("Problem.code is no enum: {problem}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let mut missing_from_readme = Vec::new();
    for code in ErrorCode::ALL {
        let wire = code.as_str();
        assert!(
            listed.contains(&wire),
            "{wire} is not in Problem.code's enum"
        );
        let entry = &problem["x-error-codes"][wire];
        assert_eq!(entry["description"], code.description(), "{wire}");
        assert_eq!(entry["status"], code.statuses(), "{wire}");
        let row = format!("| `{wire}` | {} |", code.statuses());
        if !readme.contains(&row) {
            missing_from_readme.push(format!("{row} {} |", code.description()));
        }
    }
    assert_eq!(
        listed.len(),
        ErrorCode::ALL.len(),
        "codes the engine does not know"
    );
    assert!(
        missing_from_readme.is_empty(),
        "README's error code table lacks these rows:\n{}",
        missing_from_readme.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_lists_the_statuses_it_can_produce() {
    let app = spawn_app(Backend::Sqlite).await;
    let spec = served_document(&app).await;
    let has = |id: &str, status: &str| statuses(&spec, id).iter().any(|s| s == status);

    // Not every ApiError status on every operation.
    assert!(!has("auth_me", "409"), "{:?}", statuses(&spec, "auth_me"));
    assert!(!has("auth_me", "413"), "no body, no 413");
    assert!(!has("project_list", "501"));
    assert!(!has("tus_options", "401"), "discovery needs no credentials");
    // 403 on writes (a `read` API token) and on reads that can refuse, not on a read
    // whose refusal is a 404.
    assert!(has("project_update", "403") && has("admin_list_users", "403"));
    assert!(!has("project_get", "403") && !has("auth_me", "403"));
    // The rules: 401 where authenticated, 404 with a path id, 413/415 on bodies,
    // 429 where rate limited, 500 and 503 everywhere the engine is called.
    for status in ["401", "404", "500", "503"] {
        assert!(has("document_get", status), "document_get lacks {status}");
    }
    for status in ["400", "413", "415"] {
        assert!(
            has("project_create", status),
            "project_create lacks {status}"
        );
    }
    assert!(has("project_create", "422"), "an Idempotency-Key reused");
    assert!(has("auth_login", "429") && has("auth_login", "401"));
    assert!(!has("project_get", "429"));
    // The tus operations: 412 without Tus-Resumable (declared as a required header),
    // 422 for a refused complete file, 460 for a checksum mismatch.
    for id in ["tus_create", "tus_head", "tus_patch", "tus_terminate"] {
        assert!(has(id, "412"), "{id} lacks 412");
        let params = operation(&spec, id)["parameters"].as_array().unwrap();
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "Tus-Resumable" && p["required"] == true),
            "{id} does not require Tus-Resumable"
        );
    }
    for status in ["409", "410", "422", "460"] {
        assert!(has("tus_patch", status), "tus_patch lacks {status}");
    }
    let options = &operation(&spec, "tus_options")["responses"]["204"]["headers"];
    assert!(options.get("Tus-Resumable").is_some(), "{options}");
    // Every added error response is a problem.
    let r412 = &operation(&spec, "tus_patch")["responses"]["412"];
    assert_eq!(
        r412["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    // The readiness probe keeps its own 503 body.
    assert_eq!(statuses(&spec, "health_ready"), ["200", "503"]);
}

async fn tus_refusals_are_statuses_clients_do_not_retry(backend: Backend) {
    let app = crate::helpers::TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Tus").await;
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let meta = format!(
        "project_id {},kind {},filename {},filetype {}",
        b64(&project),
        b64("document"),
        b64("a.txt"),
        b64("text/plain")
    );
    let create = || {
        app.client
            .post(app.url("/api/uploads"))
            .bearer_auth(&owner)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", "24")
            .header("Upload-Metadata", &meta)
            .send()
    };
    let patch = |location: String| {
        app.client
            .patch(app.url(&location))
            .bearer_auth(&owner)
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", "0")
            .body("the same twenty-four b.\n")
            .send()
    };
    let location = |resp: reqwest::Response| {
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.headers()["location"].to_str().unwrap().to_owned()
    };
    let first = location(create().await.unwrap());
    assert_eq!(patch(first).await.unwrap().status(), StatusCode::NO_CONTENT);

    // The same content again: refused when complete, with 422 (tus-js-client retries
    // 409 and 423, which would send the whole file again).
    let second = location(create().await.unwrap());
    let resp = patch(second).await.unwrap();
    assert_eq!(resp.headers()["tus-resumable"], "1.0.0");
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "duplicate_content").await;

    // A checksum mismatch is 460 with a reason phrase in the status line (read raw:
    // HTTP clients hide it).
    let third = location(create().await.unwrap());
    let host = app.address.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let body = "not the checksummed one\n";
    let request = format!(
        "PATCH {third} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {owner}\r\n\
         Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n\
         Upload-Offset: 0\r\nUpload-Checksum: sha1 {}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        b64("twenty bytes of sha1"),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let status_line = answer.lines().next().unwrap_or_default();
    assert_eq!(status_line, "HTTP/1.1 460 Checksum Mismatch", "{answer}");

    // Discovery says the version too.
    let resp = app
        .client
        .request(Method::OPTIONS, app.url("/api/uploads"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(resp.headers()["tus-resumable"], "1.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_405_lists_the_allowed_methods_and_cors_answers_vary_by_origin() {
    let app = spawn_app(Backend::Sqlite).await;
    let resp = app
        .client
        .request(Method::PUT, app.url("/api/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers().get("allow").map(|v| v.to_str().unwrap()),
        Some("POST")
    );
    assert_problem(resp, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let resp = app
        .client
        .request(
            Method::POST,
            app.url(&format!("/api/uploads/{}", uuid::Uuid::nil())),
        )
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "GET, HEAD, PATCH, DELETE");
    // A method tus does not define on a path is the router's 405, not the tus
    // envelope's 412.
    let upload = format!("/api/uploads/{}", uuid::Uuid::nil());
    for (method, path) in [
        (Method::TRACE, upload.as_str()),
        (Method::PUT, upload.as_str()),
        (Method::POST, upload.as_str()),
        (Method::DELETE, "/api/uploads"),
    ] {
        let resp = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(resp.headers().contains_key("allow"), "{method} {path}");
    }

    let varies = |resp: &reqwest::Response| {
        resp.headers()
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().to_ascii_lowercase().contains("origin"))
    };
    // A preflight, a CORS request and a request without Origin all vary by it.
    let resp = app
        .client
        .request(Method::OPTIONS, app.url("/api/auth/login"))
        .header("origin", "http://allowed.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert!(varies(&resp), "preflight: {:?}", resp.headers());
    let resp = app
        .client
        .get(app.url("/health"))
        .header("origin", "http://allowed.example")
        .send()
        .await
        .unwrap();
    assert!(varies(&resp), "CORS answer: {:?}", resp.headers());
    let resp = app.get("/health").await;
    assert!(varies(&resp), "same-origin answer: {:?}", resp.headers());
}

/// 400: the request does not fit the document (a client bug). 422: it fits, and its
/// content is refused (show it to the user). Each pair below sends one of each to the
/// same operation.
async fn a_400_breaks_the_document_and_a_422_is_refused_content(backend: Backend) {
    let app = crate::helpers::TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Content").await;
    let send = |method: Method, path: String, body: Value| {
        app.client
            .request(method, app.url(&path))
            .bearer_auth(&owner)
            .json(&body)
            .send()
    };
    let path = format!("/api/projects/{project}");
    let resp = send(Method::PUT, path.clone(), serde_json::json!({"name": 42})).await;
    assert_problem(resp.unwrap(), StatusCode::BAD_REQUEST, "invalid_body").await;
    let resp = send(
        Method::PUT,
        path.clone(),
        serde_json::json!({"name": "   "}),
    )
    .await;
    let problem = assert_problem(
        resp.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_name",
    )
    .await;
    assert_eq!(problem["field"], "name");

    // Item ids that name nothing of this project: the project is there (not 404).
    let review = format!("/api/projects/{project}/review");
    let resp = send(
        Method::POST,
        review.clone(),
        serde_json::json!({"item_ids": ["x"]}),
    )
    .await;
    assert_problem(resp.unwrap(), StatusCode::BAD_REQUEST, "invalid_body").await;
    let stranger = uuid::Uuid::new_v4().to_string();
    let resp = send(
        Method::POST,
        review,
        serde_json::json!({"item_ids": [stranger]}),
    )
    .await;
    assert_problem(
        resp.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_item",
    )
    .await;

    // A cursor of the right shape that this listing did not issue.
    let resp = app
        .get_auth("/api/projects?cursor=bm90LWEtY3Vyc29y", &owner)
        .await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_cursor").await;

    // The upload form names its fields, as a JSON body does; Uppy's extra ones pass.
    let form = |extra: &str| {
        reqwest::multipart::Form::new()
            .text("project_id", project.clone())
            .text(extra.to_owned(), "x")
            .part(
                "file",
                reqwest::multipart::Part::bytes(format!("Text sent with {extra}.").into_bytes())
                    .file_name("a.txt")
                    .mime_str("text/plain")
                    .unwrap(),
            )
    };
    let resp = app
        .client
        .post(app.url("/api/documents"))
        .bearer_auth(&owner)
        .multipart(form("colour"))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(resp, StatusCode::BAD_REQUEST, "invalid_body").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("colour"),
        "{problem}"
    );
    let resp = app
        .client
        .post(app.url("/api/documents"))
        .bearer_auth(&owner)
        .multipart(form("relativePath"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "{}",
        resp.text().await.unwrap()
    );

    // Restoring is a super admin's: the project's own admin, who sees it, gets 403.
    let resp = app
        .client
        .post(app.url(&format!("/api/projects/{project}/restore")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
}
