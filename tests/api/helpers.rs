//! `spawn_app`: one real server per test, on its own database, with a manual clock.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Once, OnceLock},
    time::Duration,
};

use alta::{settings::Settings, startup::Application};
use alta_actors::{
    clock::{Clock, ManualClock},
    context::RequestContext,
    domain::JobState,
    store::{Db, DbOptions, jobs},
};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

/// A password zxcvbn rates as strong.
pub const PASSWORD: &str = "violet tangent harbour 42";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generate `mod sqlite` and `mod postgres` with one test per listed async fn
/// `fn(Backend)`, so the same behaviour suite runs on both databases.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::helpers::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::helpers::Backend::Postgres).await }
            )*
        }
    };
}

pub fn init_test_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        alta::install_crypto_provider();
        if std::env::var("TEST_LOG").is_ok() {
            alta::telemetry::init_tracing(alta::settings::LogFormat::Pretty);
        }
    });
}

/// `postgres://…` of the shared test server (a database on it gets one schema per test).
pub fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A schema named `t_<uuid>` on the test PostgreSQL, dropped when the guard drops.
pub struct PgSchema {
    pub name: String,
    pub url: String,
}

impl PgSchema {
    pub async fn create() -> Self {
        static SWEPT: OnceLock<()> = OnceLock::new();
        let base = postgres_url();
        let admin = sqlx::PgPool::connect(&base).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at TEST_DATABASE_URL={base}: {e}. \
                 Start it (see README, 'Running the tests') or point TEST_DATABASE_URL at one."
            )
        });
        if SWEPT.set(()).is_ok() {
            // Schemas left by crashed earlier runs. Names carry their creation time
            // (`t_<unix ms>_<random>`), so only schemas older than an hour go: a
            // concurrent test process keeps its own.
            let candidates: Vec<String> = sqlx::query_scalar(
                "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 't\\_%'",
            )
            .fetch_all(&admin)
            .await
            .unwrap();
            let hour_ago = chrono::Utc::now().timestamp_millis() - 3_600_000;
            let stale = candidates.into_iter().filter(|name| {
                name.split('_')
                    .nth(1)
                    .and_then(|ms| ms.parse::<i64>().ok())
                    .is_some_and(|created| created < hour_ago)
            });
            for schema in stale {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                )))
                .execute(&admin)
                .await;
            }
        }
        let name = format!(
            "t_{}_{}",
            chrono::Utc::now().timestamp_millis(),
            &Uuid::new_v4().simple().to_string()[..12]
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        Self { name, url }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (base, name) = (postgres_url(), self.name.clone());
        // Drop runs outside async context guarantees: use a private runtime on a thread.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                    )))
                    .execute(&pool)
                    .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

/// Options for one test server.
pub struct TestAppBuilder {
    backend: Backend,
    vars: HashMap<String, String>,
}

impl TestAppBuilder {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            vars: HashMap::new(),
        }
    }

    /// Set an environment-style setting for this server.
    pub fn var(mut self, name: &str, value: impl Into<String>) -> Self {
        self.vars.insert(name.to_owned(), value.into());
        self
    }

    pub async fn spawn(self) -> TestApp {
        init_test_env();
        let data_dir = TempDir::new().unwrap();
        let pg = match self.backend {
            Backend::Postgres => Some(PgSchema::create().await),
            Backend::Sqlite => None,
        };
        let database_url = match &pg {
            Some(schema) => schema.url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                data_dir.path().join("alta.db").display()
            ),
        };
        let mut vars: HashMap<String, String> = [
            ("APP_ENV", "test"),
            ("HOST", "127.0.0.1"),
            ("PORT", "0"),
            ("SECRET_KEY", "test-secret-key-0123456789abcdef0123456789"),
            ("CORS_ORIGINS", "http://allowed.example"),
            ("JOB_POLL_INTERVAL_MS", "50"),
            ("RATE_LIMIT_AUTH_PER_IP", "10000/min"),
            ("RATE_LIMIT_AUTH_PER_ACCOUNT", "10000/min"),
            ("PASSWORD_HASH_CONCURRENCY", "2"),
            ("PUBLIC_URL", "http://alta.test"),
            // Passkey ceremonies run from a frontend on localhost (tests/api/passkeys.rs).
            ("WEBAUTHN_RP_ID", "localhost"),
            ("WEBAUTHN_ORIGINS", "http://localhost:3000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        vars.insert("DATA_DIR".into(), data_dir.path().display().to_string());
        // The server runs inside the test binary: files are parsed by the real `alta`.
        vars.insert(
            "EXTRACT_EXECUTABLE".into(),
            env!("CARGO_BIN_EXE_alta").into(),
        );
        vars.insert("DATABASE_URL".into(), database_url.clone());
        vars.insert(
            "REDIS_KEY_PREFIX".into(),
            format!("test:{}:", Uuid::new_v4().simple()),
        );
        vars.extend(self.vars);
        let clock = ManualClock::new(chrono::Utc::now());
        start(vars, clock, database_url, data_dir, pg).await
    }
}

/// Start a server on these settings (a fresh one, or a restart on the same data).
async fn start(
    vars: HashMap<String, String>,
    clock: ManualClock,
    database_url: String,
    data_dir: TempDir,
    pg: Option<PgSchema>,
) -> TestApp {
    let settings = Settings::from_vars(vars.clone()).expect("test settings are valid");
    let app = Application::build_with_clock(settings, std::sync::Arc::new(clock.clone()))
        .await
        .expect("the test server starts");
    let port = app.port();
    let metrics_port = app.metrics_port();
    let engine = app.engine().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        clock,
        engine,
        database_url,
        outbox: data_dir.path().join("outbox"),
        vars,
        _data_dir: data_dir,
        stop: Some(stop),
        server: Some(server),
        _pg: pg,
        metrics_port,
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    TestAppBuilder::new(backend).spawn().await
}

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub clock: ManualClock,
    pub engine: alta_actors::Engine,
    pub database_url: String,
    pub outbox: PathBuf,
    /// The settings it runs on (a restart reuses them).
    pub vars: HashMap<String, String>,
    /// Holds the SQLite file and the outbox for the app's lifetime.
    _data_dir: TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _pg: Option<PgSchema>,
    /// The port of the `/metrics` listener when `METRICS_ADDR` gives it one.
    pub metrics_port: Option<u16>,
}

impl TestApp {
    /// Stop this server (gracefully) and start a new one on the same database, data
    /// folder, settings and clock: what survives a restart survives this.
    pub async fn restart(mut self) -> TestApp {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        let vars = std::mem::take(&mut self.vars);
        let data_dir = std::mem::replace(&mut self._data_dir, TempDir::new().unwrap());
        let pg = self._pg.take();
        start(
            vars,
            self.clock.clone(),
            self.database_url.clone(),
            data_dir,
            pg,
        )
        .await
    }

    /// Another server ("node") on this one's database and settings (secret, Redis
    /// prefix, clock), with a data folder of its own and these settings on top.
    pub async fn another_node(&self, extra: &[(&str, &str)]) -> TestApp {
        let data_dir = TempDir::new().unwrap();
        let mut vars = self.vars.clone();
        vars.insert("DATA_DIR".into(), data_dir.path().display().to_string());
        for (name, value) in extra {
            vars.insert((*name).to_owned(), (*value).to_owned());
        }
        start(
            vars,
            self.clock.clone(),
            self.database_url.clone(),
            data_dir,
            None,
        )
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// GET as `token` and parse the JSON body (whatever the status).
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        self.get_auth(path, token).await.json().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/auth/register",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Register, follow the verification link, log in; returns the access token.
    pub async fn signed_up_user(&self, email: &str) -> String {
        assert_eq!(
            self.register(email, PASSWORD).await.status(),
            StatusCode::CREATED
        );
        let link = self.verification_link(email).await;
        assert_eq!(self.follow(&link).await.status(), StatusCode::OK);
        self.token(email, PASSWORD).await
    }

    /// A verified super admin made the way `alta admin create` makes one; returns its token.
    pub async fn super_admin(&self, email: &str) -> String {
        self.engine
            .accounts()
            .create_super_admin(email, PASSWORD, &RequestContext::internal("test"))
            .await
            .unwrap();
        self.token(email, PASSWORD).await
    }

    /// `method path` as `token`, with `body` as JSON when there is one.
    pub async fn send(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// The id of the account `token` belongs to.
    pub async fn user_id(&self, token: &str) -> String {
        let me = self.get_json("/api/auth/me", token).await;
        me["id"].as_str().unwrap().to_owned()
    }

    pub async fn token(&self, email: &str, password: &str) -> String {
        let resp = self.login(email, password).await;
        assert_eq!(resp.status(), StatusCode::OK, "login of {email} failed");
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Follow a link from a mail (its host is PUBLIC_URL; we serve it here). The
    /// verification link is a frontend page (`/verify-email?token=…`): it is followed
    /// the way that page does, by calling `GET /api/auth/verify-email` with the token.
    pub async fn follow(&self, link: &str) -> Response {
        let path = link
            .strip_prefix("http://alta.test")
            .expect("links use PUBLIC_URL");
        match path.strip_prefix("/verify-email?") {
            Some(query) => self.get(&format!("/api/auth/verify-email?{query}")).await,
            None => self.get(path).await,
        }
    }

    /// Every outbox mail addressed to `to`, oldest first (the outbox names its files by
    /// the time they were written; two mails can share a modification time).
    pub fn outbox_mails(&self, to: &str) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(&self.outbox) else {
            return Vec::new();
        };
        let mut mails: Vec<(std::ffi::OsString, String)> = dir
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .filter_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                text.lines()
                    .any(|l| l.eq_ignore_ascii_case(&format!("To: {to}")))
                    .then_some((e.file_name(), text))
            })
            .collect();
        mails.sort();
        mails.into_iter().map(|(_, text)| text).collect()
    }

    /// Wait (bounded) until `count` mails to `to` are in the outbox.
    pub async fn wait_for_mails(&self, to: &str, count: usize) -> Vec<String> {
        for _ in 0..200 {
            let mails = self.outbox_mails(to);
            if mails.len() >= count {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "expected {count} mail(s) to {to}; found {}",
            self.outbox_mails(to).len()
        );
    }

    /// The verification link of the newest verification mail to `to`.
    pub async fn verification_link(&self, to: &str) -> String {
        let mail = self.wait_for_mail_containing(to, "verify-email").await;
        extract_link(&mail, "verify-email").unwrap()
    }

    /// The newest mail to `to` that contains `needle`, once it is in the outbox (mails
    /// are sent by a job, after the request that queued them has answered).
    pub async fn wait_for_mail_containing(&self, to: &str, needle: &str) -> String {
        for _ in 0..200 {
            if let Some(mail) = self
                .outbox_mails(to)
                .into_iter()
                .rev()
                .find(|m| m.contains(needle))
            {
                return mail;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no mail to {to} contains {needle:?}");
    }

    /// The server's DATA_DIR (SQLite file, outbox, blobs).
    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
    }

    /// A pool on this app's database, for assertions on rows the API does not show.
    pub async fn db(&self) -> Db {
        Db::connect(&DbOptions {
            url: self.database_url.clone(),
            max_connections: 2,
            create_sqlite_file: false,
        })
        .await
        .unwrap()
    }

    /// Move the server's clock by `by`, once no job is running or due. A jump past a
    /// running job's lease lets a worker take it again and run it a second time (a job
    /// runs at least once), which a test counting mails or deliveries would see. Jobs
    /// held up for longer than a few seconds (a receiver that never answers) do not
    /// hold the clock: it moves anyway.
    pub async fn advance_clock(&self, by: chrono::Duration) {
        let db = self.db().await;
        for _ in 0..200 {
            if !jobs_in_flight(&db, self.clock.now()).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        db.close().await;
        self.clock.advance(by);
    }
}

/// Whether a job is running, or queued and due (about to be claimed).
async fn jobs_in_flight(db: &Db, now: chrono::DateTime<chrono::Utc>) -> bool {
    let running = jobs::list_in_state(db, JobState::Running, None, None, 1)
        .await
        .unwrap();
    let queued = jobs::queue_stats(db).await.unwrap();
    !running.is_empty()
        || queued
            .iter()
            .any(|kind| kind.oldest_run_at.is_some_and(|due| due <= now))
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The first URL in a mail that contains `marker`.
pub fn extract_link(mail: &str, marker: &str) -> Option<String> {
    mail.split_whitespace()
        .find(|w| w.starts_with("http") && w.contains(marker))
        .map(str::to_owned)
}

/// Every regular file under `dir`, at any depth (none when it does not exist).
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Wait (bounded) until the PostgreSQL behind `pool` holds a claim on idempotency `key`:
/// a request that has begun and not finished.
pub async fn wait_for_idempotency_claim(pool: &sqlx::PgPool, key: &str) {
    for _ in 0..400 {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys WHERE key = $1")
            .bind(key)
            .fetch_one(pool)
            .await
            .unwrap();
        if n == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no request claimed idempotency key {key}");
}

/// Assert a problem document with this status and code; returns it.
pub async fn assert_problem(resp: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(resp.status(), status, "unexpected status");
    let content_type = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type was {content_type}"
    );
    let header_id = resp
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "body: {body}");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(
        body["request_id"],
        header_id.as_str(),
        "problem carries the request id"
    );
    assert!(body["type"].as_str().unwrap().ends_with(code));
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

/// A fresh 2048-bit RSA key and its PKCS#8 PEM (for fake Google service accounts and
/// the fake OpenID provider's signing key).
pub fn rsa_key() -> (aws_lc_rs::rsa::KeyPair, String) {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use base64::Engine as _;
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der: Pkcs8V1Der = pair.as_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    (pair, pem)
}
