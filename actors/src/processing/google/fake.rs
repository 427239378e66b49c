//! Test support: a fake Google server on 127.0.0.1:0 (poem) that records every request
//! and answers what a test's handler says, and a freshly generated service-account key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Response, Server};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::auth::{GoogleAuth, JWT_BEARER_GRANT_TYPE, ServiceAccountKey};

pub const TEST_CLIENT_EMAIL: &str = "alta-test@alta-test.iam.gserviceaccount.com";
pub const TEST_PRIVATE_KEY_ID: &str = "0123456789abcdef";

struct TestKey {
    pem: String,
    /// PKCS#1 `RSAPublicKey` DER.
    public_der: Vec<u8>,
}

/// One RSA-2048 key for the whole test run.
fn test_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let der: Pkcs8V1Der = pair.as_der().unwrap();
        let b64 = STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        TestKey {
            pem,
            public_der: pair.public_key().as_ref().to_vec(),
        }
    })
}

/// A key file as Google issues it, with the test key and `token_uri`.
pub fn key_file_json(token_uri: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "alta-test",
        "private_key_id": TEST_PRIVATE_KEY_ID,
        "private_key": test_key().pem,
        "client_email": TEST_CLIENT_EMAIL,
        "client_id": "100000000000000000000",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    })
    .to_string()
}

/// Service-account auth whose token endpoint is `server`'s `/token`.
pub fn service_account_auth(server: &FakeServer) -> GoogleAuth {
    let key = ServiceAccountKey::from_json(&key_file_json(&server.url("/token"))).unwrap();
    GoogleAuth::service_account(reqwest::Client::new(), key)
}

/// A request as the fake server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The body as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self) -> HashMap<String, String> {
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (percent_decode(k), percent_decode(v)))
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the fake server answers.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            content_type: "application/json; charset=UTF-8",
            body: body.to_string(),
        }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain",
            body: body.to_owned(),
        }
    }

    /// Google's error shape: `{"error": {"code", "message", "status"}}`.
    pub fn google_error(status: u16, google_status: &str, message: &str) -> Self {
        Self::json(
            status,
            json!({"error": {"code": status, "message": message, "status": google_status}}),
        )
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A fake Google server. Stops when dropped.
pub struct FakeServer {
    base: String,
    log: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl FakeServer {
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let handler: Arc<Handler> = Arc::new(handler);
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = log.clone();
        let endpoint = poem::endpoint::make(move |req: poem::Request| {
            let handler = handler.clone();
            let seen = seen.clone();
            async move {
                let recorded = Recorded {
                    method: req.method().to_string(),
                    path: req
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                    authorization: req.header("authorization").map(str::to_owned),
                    content_type: req.header("content-type").map(str::to_owned),
                    body: req.into_body().into_vec().await.unwrap_or_default(),
                };
                seen.lock().unwrap().push(recorded.clone());
                let reply = handler(&recorded);
                Response::builder()
                    .status(StatusCode::from_u16(reply.status).unwrap())
                    .content_type(reply.content_type)
                    .body(reply.body)
            }
        });
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(endpoint).await;
        });
        Self {
            base: format!("http://{addr}"),
            log,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`, the endpoint to give an engine.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// Requests to `path` (path and query).
    pub fn count(&self, path: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The token endpoint: a token for a well-formed JWT-bearer request, else Google's
/// `invalid_grant`.
pub fn token_reply(req: &Recorded, token: &str, expires_in: u64) -> Reply {
    let form = req.form();
    let well_formed = req.method == "POST"
        && form.get("grant_type").map(String::as_str) == Some(JWT_BEARER_GRANT_TYPE)
        && form
            .get("assertion")
            .is_some_and(|a| a.split('.').count() == 3);
    if !well_formed {
        return Reply::json(
            400,
            json!({"error": "invalid_grant", "error_description": "Invalid grant: malformed request."}),
        );
    }
    Reply::json(
        200,
        json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}),
    )
}

/// The claims of the request's assertion, after checking its RS256 signature against the
/// test key and its `aud`.
pub fn verify_assertion(req: &Recorded, audience: &str) -> Value {
    let form = req.form();
    let assertion = form.get("assertion").unwrap();
    let header = jsonwebtoken::decode_header(assertion).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some(TEST_PRIVATE_KEY_ID));
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    let key = DecodingKey::from_rsa_der(&test_key().public_der);
    jsonwebtoken::decode::<Value>(assertion, &key, &validation)
        .unwrap()
        .claims
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("a%3Ab+c%"), "a:b c%");
}
