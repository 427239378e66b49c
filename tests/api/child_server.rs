//! The real `alta` binary as a child process, for tests that kill it (SIGKILL) and
//! start it again on the same data: a [`Site`] (temporary data dir, SQLite file or
//! PostgreSQL schema, scratch dir for logs and TMPDIR), `alta admin create`, and a
//! running `alta serve` as a [`Server`] that logs JSON to a file.

use std::{
    io::Write,
    path::PathBuf,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{Backend, PASSWORD, PgSchema};

pub const ADMIN: &str = "root@example.org";

/// Where one server's files live; the database is shared across restarts.
pub struct Site {
    pub data_dir: TempDir,
    /// Logs of every run and the child's TMPDIR.
    scratch: TempDir,
    pub database_url: String,
    pub backend: Backend,
    /// The test's own environment for every run (`SECRET_KEY` and its settings).
    env: Vec<(String, String)>,
    _pg: Option<PgSchema>,
}

impl Site {
    /// `env` is added to the environment of every `alta` run on this site.
    pub async fn new(backend: Backend, env: &[(&str, &str)]) -> Self {
        let data_dir = TempDir::new().unwrap();
        let scratch = TempDir::new().unwrap();
        std::fs::create_dir_all(scratch.path().join("tmp")).unwrap();
        let pg = match backend {
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
        Self {
            data_dir,
            scratch,
            database_url,
            backend,
            env: env
                .iter()
                .map(|&(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
            _pg: pg,
        }
    }

    /// `alta` with a clean environment: the site's settings plus `run_env`.
    fn alta(&self, run_env: &[(&str, &str)]) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_alta"));
        cmd.current_dir(self.data_dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TMPDIR", self.scratch.path().join("tmp"))
            .env("DATA_DIR", self.data_dir.path())
            .env("DATABASE_URL", &self.database_url)
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("RATE_LIMIT_AUTH_PER_IP", "10000/min")
            .env("RATE_LIMIT_AUTH_PER_ACCOUNT", "10000/min")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info,sqlx=warn")
            // The site's and the run's settings come last: they may change the above.
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .envs(run_env.iter().copied());
        cmd
    }

    /// `alta <args>` to its end, on this site; its output.
    pub fn run(&self, args: &[&str], run_env: &[(&str, &str)]) -> std::process::Output {
        self.alta(run_env)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `alta admin create` (which also applies the migrations).
    pub fn admin_create(&self, run_env: &[(&str, &str)]) {
        self.admin_create_as(ADMIN, run_env);
    }

    /// `alta admin create` for `email` (password [`PASSWORD`]).
    pub fn admin_create_as(&self, email: &str, run_env: &[(&str, &str)]) {
        let mut child = self
            .alta(run_env)
            .args(["admin", "create", "--email", email, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "admin create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `alta serve` as a child process, logging to `<run>.log` in the scratch dir;
    /// returns once GET /health answers 200.
    pub async fn serve(&self, run: &str, run_env: &[(&str, &str)]) -> Server {
        let log = self.scratch.path().join(format!("{run}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = self
            .alta(run_env)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            log,
            base: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Some(port) = server.logged_port() {
                break port;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("alta serve exited ({status}) before serving");
            }
            assert!(
                Instant::now() < deadline,
                "alta serve never logged its port"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        server.base = format!("http://127.0.0.1:{port}");
        let client = Client::new();
        loop {
            let health = client.get(server.url("/health")).send().await;
            if health.is_ok_and(|r| r.status() == StatusCode::OK) {
                return server;
            }
            assert!(Instant::now() < deadline, "GET /health never answered 200");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Site {
    /// `alta worker` as a child process, logging to `<run>.log`; returns once it says
    /// its workers run. (A [`Server`] without an API: its `url` is not for use.)
    pub async fn worker(&self, run: &str, run_env: &[(&str, &str)]) -> Server {
        let log = self.scratch.path().join(format!("{run}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = self
            .alta(run_env)
            .arg("worker")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut worker = Server {
            child,
            log,
            base: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !worker
            .log_lines()
            .iter()
            .any(|line| line["fields"]["message"] == "workers running")
        {
            if let Some(status) = worker.child.try_wait().unwrap() {
                panic!("alta worker exited ({status}) before its workers ran");
            }
            assert!(Instant::now() < deadline, "alta worker never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worker
    }
}

/// A running `alta serve`; killed (SIGKILL) when dropped, so a failing test leaves no
/// process behind. Its log is printed when the test panics.
pub struct Server {
    child: Child,
    log: PathBuf,
    base: String,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The log's JSON lines.
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .collect()
    }

    /// The port from the `serving` log line (the server listens on PORT=0).
    fn logged_port(&self) -> Option<u16> {
        self.log_lines()
            .into_iter()
            .find(|line| line["fields"]["message"] == "serving")
            .and_then(|line| line["fields"]["port"].as_u64())
            .and_then(|port| u16::try_from(port).ok())
    }

    /// SIGKILL: no shutdown hook, no drain, no cleanup, no giving jobs back.
    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "the server was killed: {status}");
    }

    /// SIGTERM (through `kill`, as an orchestrator would stop it), then wait up to
    /// `within` for the process to exit; its exit status.
    pub async fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "alta serve did not exit within {within:?} of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Create a project named `name` as `token`; its id.
    pub async fn create_project(&self, client: &Client, token: &str, name: &str) -> String {
        let resp = client
            .post(self.url("/api/projects"))
            .bearer_auth(token)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "create project {name}");
        let project: Value = resp.json().await.unwrap();
        project["id"].as_str().unwrap().to_owned()
    }

    /// Log in as [`ADMIN`]; the access token.
    pub async fn token(&self, client: &Client) -> String {
        let resp = client
            .post(self.url("/api/auth/login"))
            .json(&json!({"email": ADMIN, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "login");
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of {}:", self.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
