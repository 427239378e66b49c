//! A passkey made and used by a real browser: headless Chromium, driven through
//! ChromeDriver (WebDriver), with WebDriver's virtual authenticator (CTAP2, internal
//! transport, resident keys, user verification) standing in for a phone or a key.
//!
//! The test serves a small page on `http://localhost:{port}` (the origin the server
//! allows, `WEBAUTHN_ORIGINS`). The page turns the server's options into what
//! `navigator.credentials.create()` / `.get()` take, and the browser's answer into JSON
//! (`PublicKeyCredential.toJSON()`), as a frontend would. The test carries the JSON
//! between the page and the API: register a passkey for a signed-in user, then sign in
//! without an email (a discoverable credential: the authenticator says whose it is).
//!
//! `scripts/test` installs Debian's `chromium` and `chromium-driver` when missing; run
//! directly without them, this test fails and says what to install.

use std::{path::PathBuf, process::Stdio, time::Duration};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    process::{Child, Command},
};

use crate::{
    backend_tests,
    helpers::{Backend, TestApp, TestAppBuilder},
};

backend_tests!(a_browser_registers_a_passkey_and_signs_in_with_it);

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Alta passkey test page</title></head>
<body><p>Alta passkey test page</p>
<script>
// base64url (as the API sends binary fields) to bytes.
function bytes(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/');
  const padded = b64 + '='.repeat((4 - b64.length % 4) % 4);
  return Uint8Array.from(atob(padded), c => c.charCodeAt(0));
}
// Drop nulls (absent in WebAuthn dictionaries) and decode the binary fields.
function clean(o) {
  for (const k of Object.keys(o)) if (o[k] === null) delete o[k];
  return o;
}
function creationOptions(options) {
  const pk = clean(structuredClone(options.publicKey));
  pk.challenge = bytes(pk.challenge);
  pk.user = clean(pk.user);
  pk.user.id = bytes(pk.user.id);
  pk.excludeCredentials = (pk.excludeCredentials || []).map(c => ({...clean(c), id: bytes(c.id)}));
  if (pk.authenticatorSelection) clean(pk.authenticatorSelection);
  return pk;
}
function requestOptions(options) {
  const pk = clean(structuredClone(options.publicKey));
  pk.challenge = bytes(pk.challenge);
  pk.allowCredentials = (pk.allowCredentials || []).map(c => ({...clean(c), id: bytes(c.id)}));
  return pk;
}
window.altaRegister = async (options) =>
  (await navigator.credentials.create({publicKey: creationOptions(options)})).toJSON();
window.altaLogin = async (options) =>
  (await navigator.credentials.get({publicKey: requestOptions(options)})).toJSON();
</script></body></html>"#;

/// Serve [`PAGE`] to every request on `listener` (HTTP/1.1, one request per connection).
fn serve_page(listener: TcpListener) {
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0_u8; 2048];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    PAGE.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(PAGE.as_bytes()).await;
            });
        }
    });
}

/// An executable on PATH.
fn find(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// ChromeDriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    http: Client,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Self {
        let chromium = find("chromium").expect(
            "chromium is missing: install Debian's chromium and chromium-driver \
             (scripts/test does it), or run the tests with scripts/test",
        );
        let chromedriver = find("chromedriver").expect(
            "chromedriver is missing: install Debian's chromium-driver \
             (scripts/test does it), or run the tests with scripts/test",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start chromedriver");
        let mut driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: Client::new(),
            session: None,
            _profile: tempfile::tempdir().unwrap(),
        };
        let mut ready = false;
        for _ in 0..300 {
            if let Ok(resp) = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                && let Ok(body) = resp.json::<Value>().await
                && body["value"]["ready"] == true
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not become ready on port {port}");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--no-first-run",
                    format!("--user-data-dir={}", driver._profile.path().display()),
                ],
            },
        }}});
        let session = driver.call("POST", "/session", &caps).await;
        driver.session = Some(session["sessionId"].as_str().unwrap().to_owned());
        driver
    }

    /// A WebDriver command; its `value`, or a panic with the driver's error.
    async fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let url = format!("{}{path}", self.url);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(body),
        };
        let resp = req.timeout(Duration::from_secs(60)).send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {body}"
        );
        body["value"].clone()
    }

    async fn session_call(&self, method: &str, path: &str, body: &Value) -> Value {
        let session = self.session.as_deref().unwrap();
        self.call(method, &format!("/session/{session}{path}"), body)
            .await
    }

    /// Run `window.<function>(options)` in the page and return what it resolves to.
    async fn run(&self, function: &str, options: &Value) -> Value {
        let script = format!(
            "const [options, done] = arguments; \
             window.{function}(options).then(done, e => done({{error: String(e)}}));"
        );
        let value = self
            .session_call(
                "POST",
                "/execute/async",
                &json!({"script": script, "args": [options]}),
            )
            .await;
        assert!(
            value.get("error").is_none(),
            "{function} failed in the browser: {value}"
        );
        value
    }

    async fn quit(mut self) {
        if self.session.is_some() {
            self.session_call("DELETE", "", &json!({})).await;
            self.session = None;
        }
        let _ = self.child.kill().await;
    }
}

async fn api(app: &TestApp, path: &str, token: Option<&str>, body: &Value) -> Value {
    let mut req = app.client.post(app.url(path)).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

async fn a_browser_registers_a_passkey_and_signs_in_with_it(backend: Backend) {
    let page = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://localhost:{}", page.local_addr().unwrap().port());
    serve_page(page);
    let app = TestAppBuilder::new(backend)
        .var("WEBAUTHN_RP_ID", "localhost")
        .var("WEBAUTHN_ORIGINS", origin.as_str())
        .spawn()
        .await;
    let token = app.signed_up_user("chris@example.org").await;

    let driver = Driver::start().await;
    driver
        .session_call("POST", "/url", &json!({"url": format!("{origin}/")}))
        .await;
    let authenticator = driver
        .session_call(
            "POST",
            "/webauthn/authenticator",
            &json!({
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserConsenting": true,
                "isUserVerified": true,
            }),
        )
        .await;
    let authenticator = authenticator.as_str().unwrap().to_owned();

    // Register: the server's options go to navigator.credentials.create().
    let started = api(
        &app,
        "/api/auth/passkeys/register",
        Some(&token),
        &json!({}),
    )
    .await;
    let credential = driver.run("altaRegister", &started["options"]).await;
    let created = api(
        &app,
        "/api/auth/passkeys/register/verify",
        Some(&token),
        &json!({"ceremony_id": started["ceremony_id"], "credential": credential, "name": "chromium"}),
    )
    .await;
    assert_eq!(created["name"], "chromium");
    // The authenticator keeps it as a discoverable credential of ours.
    let held = driver
        .session_call(
            "GET",
            &format!("/webauthn/authenticator/{authenticator}/credentials"),
            &json!({}),
        )
        .await;
    let held = held.as_array().unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["isResidentCredential"], true);
    assert_eq!(held[0]["rpId"], "localhost");

    // Sign in without an email: the browser offers the passkey it holds.
    let started = api(&app, "/api/auth/passkeys/login", None, &json!({})).await;
    let assertion = driver.run("altaLogin", &started["options"]).await;
    let tokens = api(
        &app,
        "/api/auth/passkeys/login/verify",
        None,
        &json!({"ceremony_id": started["ceremony_id"], "credential": assertion}),
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    let me = app.get_auth("/api/auth/me", access).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["email"], "chris@example.org");

    // And with the email: the allow list is padded with stand-ins to the most passkeys an
    // account may hold (so it does not tell how many this one has); the browser picks the
    // one it holds among them.
    let started = api(
        &app,
        "/api/auth/passkeys/login",
        None,
        &json!({"email": "chris@example.org"}),
    )
    .await;
    assert_eq!(
        started["options"]["publicKey"]["allowCredentials"]
            .as_array()
            .map(Vec::len),
        Some(20)
    );
    let assertion = driver.run("altaLogin", &started["options"]).await;
    api(
        &app,
        "/api/auth/passkeys/login/verify",
        None,
        &json!({"ceremony_id": started["ceremony_id"], "credential": assertion}),
    )
    .await;
    let listed = app.get_json("/api/auth/passkeys", &token).await;
    assert!(listed["items"][0]["last_used_at"].is_string(), "{listed}");
    driver.quit().await;
}
