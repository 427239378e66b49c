//! The middleware stack seen from outside: request ids, problem documents for
//! routing errors, security headers, CORS, the body limit, metrics and the health
//! probes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::{
    backend_tests,
    helpers::{Backend, PASSWORD, TestApp, TestAppBuilder, assert_problem, spawn_app},
};

backend_tests!(health_and_readiness);

const ALLOWED: &str = "http://allowed.example";
const EVIL: &str = "http://evil.example";
const STRICT_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).map(|v| v.to_str().unwrap())
}

fn request_id(resp: &reqwest::Response) -> String {
    header(resp, "x-request-id")
        .expect("every response has x-request-id")
        .to_owned()
}

fn assert_is_generated(id: &str) {
    assert!(
        Uuid::parse_str(id).is_ok(),
        "expected a generated UUID request id, got {id:?}"
    );
}

/// The headers every response of ours carries, whatever its status.
fn assert_security_headers(resp: &reqwest::Response) {
    let path = resp.url().path().to_owned();
    assert_eq!(
        header(resp, "x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
    assert_eq!(header(resp, "x-frame-options"), Some("DENY"), "{path}");
    assert_eq!(
        header(resp, "referrer-policy"),
        Some("no-referrer"),
        "{path}"
    );
    assert!(
        resp.headers().get("strict-transport-security").is_none(),
        "no HSTS over plain http: {path}"
    );
}

// ---------------------------------------------------------------- request id

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_when_sane_and_generated_otherwise() {
    let app = spawn_app(Backend::Sqlite).await;
    let with_id = |id: String| {
        app.client
            .get(app.url("/health"))
            .header("x-request-id", id)
            .send()
    };

    let resp = app.get("/health").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let first = request_id(&resp);
    assert_is_generated(&first);
    let second = request_id(&app.get("/health").await);
    assert_is_generated(&second);
    assert_ne!(first, second, "each request gets its own id");

    for sane in [
        "abc-123",
        "trace:0af7651916cd43dd.8448eb211c80319c_1",
        &"a".repeat(128),
    ] {
        let resp = with_id(sane.to_owned()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(request_id(&resp), sane);
    }

    for unsafe_id in [
        "has space",
        "semi;colon",
        "quote\"d",
        "new%0Aline",
        &"a".repeat(129),
        &"b".repeat(200),
    ] {
        let resp = with_id(unsafe_id.to_owned()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let id = request_id(&resp);
        assert_ne!(id, unsafe_id);
        assert_is_generated(&id);
    }
    // Non-ASCII bytes in the header are replaced too.
    let raw = reqwest::header::HeaderValue::from_bytes("caf\u{e9}".as_bytes()).unwrap();
    let resp = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", raw)
        .send()
        .await
        .unwrap();
    assert_is_generated(&request_id(&resp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problem_bodies_carry_the_request_id() {
    let app = spawn_app(Backend::Sqlite).await;
    // Echoed id, in the header and the body (assert_problem compares them).
    let resp = app
        .client
        .get(app.url("/nope"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(request_id(&resp), "abc-123");
    let body = assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(body["request_id"], "abc-123");

    // Generated id, for an unsafe incoming one.
    let resp = app
        .client
        .get(app.url("/nope"))
        .header("x-request-id", "has space")
        .send()
        .await
        .unwrap();
    let id = request_id(&resp);
    assert_is_generated(&id);
    let body = assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(body["request_id"], id.as_str());

    // Errors produced by handlers (engine errors) carry it as well.
    let resp = app
        .client
        .post(app.url("/api/auth/login"))
        .header("x-request-id", "login-attempt-7")
        .json(&json!({"email": "nobody@example.org", "password": "not the password at all"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(resp, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(body["request_id"], "login-attempt-7");

    // And parse errors produced by the framework.
    let resp = app
        .client
        .post(app.url("/api/auth/login"))
        .header("x-request-id", "bad-json-1")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    let body = assert_problem(resp, StatusCode::BAD_REQUEST, "invalid_body").await;
    assert_eq!(body["request_id"], "bad-json-1");
}

// ------------------------------------------------------------ routing errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_wrong_methods_are_problems_with_security_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in ["/nope", "/api/nope", "/api/auth/nope", "/health/nope"] {
        let resp = app.get(path).await;
        assert_security_headers(&resp);
        assert_eq!(
            header(&resp, "content-security-policy"),
            Some(STRICT_CSP),
            "{path}"
        );
        assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    }

    for (method, path) in [
        (Method::DELETE, "/health"),
        (Method::POST, "/health/ready"),
        (Method::GET, "/api/auth/login"),
        (Method::PUT, "/api/admin/users"),
    ] {
        let resp = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_security_headers(&resp);
        assert_eq!(
            header(&resp, "content-security-policy"),
            Some(STRICT_CSP),
            "{method} {path}"
        );
        assert_problem(resp, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    }
}

// ---------------------------------------------------------- security headers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_responses_carry_strict_security_headers() {
    let app = spawn_app(Backend::Sqlite).await;

    let health = app.get("/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_security_headers(&health);
    assert_eq!(header(&health, "content-security-policy"), Some(STRICT_CSP));

    let api_responses = [
        app.get("/api/openapi.json").await,
        app.get("/api/auth/me").await,
        app.get_auth("/api/auth/me", "garbage").await,
        app.post_json(
            "/api/auth/login",
            &json!({"email": "x@example.org", "password": "wrong password here"}),
        )
        .await,
    ];
    for resp in &api_responses {
        assert_security_headers(resp);
        assert_eq!(
            header(resp, "content-security-policy"),
            Some(STRICT_CSP),
            "{}",
            resp.url()
        );
        assert_eq!(
            header(resp, "cache-control"),
            Some("no-store"),
            "{}",
            resp.url()
        );
    }
    assert_eq!(api_responses[0].status(), StatusCode::OK);

    // A successful, authenticated API response too.
    let token = app.signed_up_user("headers@example.org").await;
    let me = app.get_auth("/api/auth/me", &token).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_security_headers(&me);
    assert_eq!(header(&me, "cache-control"), Some("no-store"));
    assert_eq!(header(&me, "content-security-policy"), Some(STRICT_CSP));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documentation_pages_are_served_without_the_strict_policy() {
    let app = spawn_app(Backend::Sqlite).await;
    for path in ["/docs", "/redoc"] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(
            header(&resp, "content-type")
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert_security_headers(&resp);
        // Swagger UI and ReDoc load scripts and styles: "default-src 'none'" would break them.
        let csp = header(&resp, "content-security-policy").unwrap_or_default();
        assert!(
            !csp.contains("default-src 'none'"),
            "{path} has the strict CSP: {csp}"
        );
        let html = resp.text().await.unwrap();
        assert!(
            html.contains("<html") || html.contains("<!DOCTYPE"),
            "{path}: {html}"
        );
    }
    let html = app.get("/docs").await.text().await.unwrap();
    assert!(
        html.to_lowercase().contains("swagger"),
        "/docs is Swagger UI"
    );
    let html = app.get("/redoc").await.text().await.unwrap();
    assert!(html.to_lowercase().contains("redoc"), "/redoc is ReDoc");
}

/// Both pages show the served document (per-operation errors, the error codes), not
/// the framework's untightened one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documentation_pages_embed_the_served_document() {
    let app = spawn_app(Backend::Sqlite).await;
    let served = app.get("/api/openapi.json").await.text().await.unwrap();
    assert!(served.contains("x-error-codes"), "{served}");
    for path in ["/docs", "/redoc", "/docs/"] {
        let html = app.get(path).await.text().await.unwrap();
        assert!(
            html.contains(&served),
            "{path} does not embed /api/openapi.json"
        );
    }
}

// ---------------------------------------------------------------------- CORS

fn preflight(app: &TestApp, origin: &str, method: &str) -> reqwest::RequestBuilder {
    app.client
        .request(Method::OPTIONS, app.url("/api/auth/login"))
        .header("origin", origin)
        .header("access-control-request-method", method)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_allows_only_configured_origins() {
    let app = spawn_app(Backend::Sqlite).await;

    let resp = preflight(&app, ALLOWED, "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization, x-request-id",
        )
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "preflight status {}",
        resp.status()
    );
    assert_eq!(header(&resp, "access-control-allow-origin"), Some(ALLOWED));
    let methods = header(&resp, "access-control-allow-methods")
        .unwrap()
        .to_ascii_uppercase();
    assert!(methods.split(',').any(|m| m.trim() == "POST"), "{methods}");
    let headers = header(&resp, "access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in ["content-type", "authorization", "x-request-id"] {
        assert!(headers.contains(h), "{h} not allowed: {headers}");
    }
    assert_eq!(header(&resp, "access-control-max-age"), Some("600"));
    // Bearer tokens, not cookies: credentials are never allowed.
    assert!(
        resp.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    // The preflight is answered by CORS, not by the login handler.
    assert!(resp.headers().get("www-authenticate").is_none());
    assert!(!request_id(&resp).is_empty());

    // Another origin: refused outright (poem's Cors answers 403), never echoed back.
    let resp = preflight(&app, EVIL, "POST").send().await.unwrap();
    assert!(
        resp.headers().get("access-control-allow-origin").is_none(),
        "{:?}",
        resp.headers()
    );
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;

    // An allowed origin asking for a method or header we do not allow is refused too.
    let resp = preflight(&app, ALLOWED, "TRACE").send().await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = preflight(&app, ALLOWED, "POST")
        .header("access-control-request-headers", "x-evil")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_simple_requests_get_the_allow_origin_header_for_allowed_origins() {
    let app = spawn_app(Backend::Sqlite).await;
    let resp = app
        .client
        .get(app.url("/health"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "access-control-allow-origin"), Some(ALLOWED));
    let exposed = header(&resp, "access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");

    // An API error to an allowed origin is still readable by the browser.
    let resp = app
        .client
        .get(app.url("/api/auth/me"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "access-control-allow-origin"), Some(ALLOWED));
    assert_problem(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // No Origin: not a CORS request, no CORS headers.
    let resp = app.get("/health").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    // A foreign origin never sees its origin (or a wildcard) allowed.
    let resp = app
        .client
        .get(app.url("/health"))
        .header("origin", EVIL)
        .send()
        .await
        .unwrap();
    let allowed = header(&resp, "access-control-allow-origin");
    assert!(
        allowed.is_none(),
        "allow-origin for a foreign origin: {allowed:?}"
    );
}

// ---------------------------------------------------------------- body limit

/// 10 KB of JSON: a valid register (or login) body padded with whitespace.
fn padded_body(email: &str) -> String {
    let body = json!({"email": email, "password": PASSWORD}).to_string();
    format!("{body}{}", " ".repeat(10 * 1024 - body.len()))
}

/// What came back over a raw connection.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// POST `body` with `Transfer-Encoding: chunked` (no Content-Length) in 1 KB chunks,
/// over a plain TCP connection. reqwest is built without its `stream` feature, so
/// this is written by hand.
async fn post_chunked(app: &TestApp, path: &str, body: &str) -> RawResponse {
    let host = app.address.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.as_bytes().chunks(1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading everything; what it said is
    // still in our receive buffer.
    let _ = stream.write_all(&request).await;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => panic!("no response to the chunked request: {e}"),
            Err(_) => break,
        }
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> RawResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut rest = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let mut body = Vec::new();
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16)
                    .unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = rest[line_end + 2 + size + 2..].to_vec();
        }
        rest = body;
    } else if let Some(len) = headers.iter().find(|(n, _)| n == "content-length") {
        rest.truncate(len.1.parse().unwrap());
    }
    RawResponse {
        status,
        headers,
        body: rest,
    }
}

fn assert_raw_problem(resp: &RawResponse, status: u16, code: &str) -> Value {
    assert_eq!(
        resp.status,
        status,
        "body: {}",
        String::from_utf8_lossy(&resp.body)
    );
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("application/problem+json")
    );
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(
        body["request_id"],
        resp.header("x-request-id").unwrap(),
        "{body}"
    );
    body
}

async fn user_count(app: &TestApp, admin_token: &str, email_filter: &str) -> usize {
    let url = url::Url::parse_with_params(&app.url("/api/admin/users"), [("email", email_filter)])
        .unwrap();
    let resp = app
        .client
        .get(url)
        .bearer_auth(admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["items"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_with_or_without_content_length() {
    let app = TestAppBuilder::new(Backend::Sqlite)
        .var("MAX_BODY_BYTES", "2048")
        .spawn()
        .await;
    let root = app.super_admin("root@example.org").await;

    // With Content-Length: refused from the header.
    let body = padded_body("nobody@example.org");
    assert_eq!(body.len(), 10 * 1024);
    let resp = app
        .client
        .post(app.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_security_headers(&resp);
    let problem = assert_problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("2048"),
        "{problem}"
    );

    let resp = app
        .client
        .post(app.url("/api/auth/register"))
        .header("content-type", "application/json")
        .body(padded_body("sized@example.org"))
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    // Without Content-Length (chunked): counted as it streams.
    let resp = post_chunked(&app, "/api/auth/login", &padded_body("nobody@example.org")).await;
    assert_raw_problem(&resp, 413, "payload_too_large");
    let resp = post_chunked(
        &app,
        "/api/auth/register",
        &padded_body("chunked@example.org"),
    )
    .await;
    assert_raw_problem(&resp, 413, "payload_too_large");
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));

    // Neither oversized register created anyone, nor sent a mail.
    assert_eq!(user_count(&app, &root, "sized@").await, 0);
    assert_eq!(user_count(&app, &root, "chunked@").await, 0);
    assert!(app.outbox_mails("sized@example.org").is_empty());
    assert!(app.outbox_mails("chunked@example.org").is_empty());

    // Under the limit, both framings work on the same server (so the refusals above
    // were about size).
    let small = json!({"email": "small@example.org", "password": PASSWORD}).to_string();
    let resp = post_chunked(&app, "/api/auth/register", &small).await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(
        app.register("small2@example.org", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(user_count(&app, &root, "small").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_padded_body_is_a_valid_register_under_the_default_limit() {
    // The control for the test above: the same 10 KB body is accepted at 1 MiB.
    let app = spawn_app(Backend::Sqlite).await;
    let resp = app
        .client
        .post(app.url("/api/auth/register"))
        .header("content-type", "application/json")
        .body(padded_body("padded@example.org"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = post_chunked(
        &app,
        "/api/auth/register",
        &padded_body("padded-chunked@example.org"),
    )
    .await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    app.wait_for_mails("padded-chunked@example.org", 1).await;
}

// ------------------------------------------------------------------- metrics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_labelled_by_route_template() {
    let app = spawn_app(Backend::Sqlite).await;
    assert_problem(
        app.login("nobody@example.org", "not the password at all")
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    // A raw path with an id-like segment must not become a label value.
    assert_eq!(
        app.get("/nope/zq12345xq").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/nope/zq12345xq").await.status(),
        StatusCode::NOT_FOUND
    );

    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        header(&resp, "content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();

    let requests: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .collect();
    assert!(
        !requests.is_empty(),
        "no http_requests_total lines:\n{text}"
    );
    let has = |needles: &[&str]| {
        requests
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
    };
    assert!(
        has(&[
            r#"route="/api/auth/login""#,
            r#"method="POST""#,
            r#"status="401""#
        ]),
        "{text}"
    );
    assert!(
        has(&[r#"route="/health""#, r#"method="GET""#, r#"status="200""#]),
        "{text}"
    );
    assert!(has(&[r#"route="unmatched""#, r#"status="404""#]), "{text}");
    assert!(
        !text.contains("zq12345xq"),
        "a raw path leaked into the metrics:\n{text}"
    );
    // Every route label is a template or `unmatched`, never a raw URL with a query.
    for line in &requests {
        let route = line
            .split("route=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("a route label");
        assert!(
            route == "unmatched" || (route.starts_with('/') && !route.contains('?')),
            "{line}"
        );
    }

    assert!(
        text.lines()
            .any(|l| l.starts_with("http_request_duration_seconds_bucket{")
                && l.contains(r#"route="/api/auth/login""#)),
        "no latency histogram:\n{text}"
    );
    assert!(
        text.contains(r#"auth_login_total{outcome="invalid_credentials"}"#),
        "{text}"
    );
    // The failed login was written (SQLite): its wait for the turn to write is a
    // histogram with buckets, which the dashboards' quantiles can read.
    assert!(
        text.lines()
            .any(|l| l.starts_with("sqlite_write_turn_wait_seconds_bucket{")),
        "no SQLite write-turn histogram:\n{text}"
    );
}

/// `METRICS_TOKEN`: `/metrics` answers 401 (a problem, `WWW-Authenticate: Bearer`)
/// without the token or with another, and the exposition with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_token_guards_the_metrics() {
    let token = "scrape-token-0123456789abcdef";
    let app = TestAppBuilder::new(Backend::Sqlite)
        .var("METRICS_TOKEN", token)
        .spawn()
        .await;
    let resp = app.get("/metrics").await;
    assert_eq!(header(&resp, "www-authenticate"), Some("Bearer"));
    assert_problem(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let resp = app
        .get_auth("/metrics", "scrape-token-but-not-that-one")
        .await;
    assert_problem(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let resp = app.get_auth("/metrics", token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(text.contains("metrics_scrapes_refused_total"), "{text}");
}

/// `METRICS_ADDR`: `/metrics` moves to a listener of its own; the API port has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_addr_serves_metrics_on_its_own_listener() {
    let app = TestAppBuilder::new(Backend::Sqlite)
        .var("METRICS_ADDR", "127.0.0.1:0")
        .spawn()
        .await;
    assert_problem(
        app.get("/metrics").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let port = app.metrics_port.expect("a metrics listener");
    assert_ne!(app.address, format!("http://127.0.0.1:{port}"));
    let resp = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("http_requests_total"));
}

// -------------------------------------------------------------------- health

async fn health_and_readiness(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.get("/health").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        header(&resp, "content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));

    let resp = app.get("/health/ready").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "ready", "database": "ok", "redis": "not_configured"})
    );
}

/// Browsers send `Origin` on same-origin POSTs: the server's own origin (PUBLIC_URL)
/// must never be refused, and CORS refusals still carry the security headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_origin_is_allowed_and_cors_refusals_have_security_headers() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let resp = app
        .client
        .post(app.url("/api/auth/login"))
        .header("origin", "http://alta.test")
        .json(&serde_json::json!({"email": "x@example.org", "password": "wrong password here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "a same-origin POST reaches the handler"
    );
    let resp = app
        .client
        .post(app.url("/api/auth/login"))
        .header("origin", EVIL)
        .json(&serde_json::json!({"email": "x@example.org", "password": "wrong password here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        resp.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
    assert!(resp.headers().contains_key("content-security-policy"));
}
