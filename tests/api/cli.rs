//! The `alta` binary itself: `migrate` and `admin create`, then a server on the same data.

use std::{io::Write, process::Stdio};

use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{Backend, PASSWORD, PgSchema, assert_problem, init_test_env};

fn alta(data_dir: &TempDir, database_url: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_alta"));
    cmd.current_dir(data_dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", data_dir.path())
        .env("DATABASE_URL", database_url)
        .env("SECRET_KEY", "cli-test-secret-key-0123456789abcdef")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn");
    cmd
}

fn admin_create(
    data_dir: &TempDir,
    database_url: &str,
    email: &str,
    password: &str,
) -> std::process::Output {
    let mut child = alta(data_dir, database_url)
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
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

async fn admin_create_then_sign_in(backend: Backend) {
    init_test_env();
    let data_dir = TempDir::new().unwrap();
    let pg = match backend {
        Backend::Postgres => Some(PgSchema::create().await),
        Backend::Sqlite => None,
    };
    let url = match &pg {
        Some(schema) => schema.url.clone(),
        None => format!(
            "sqlite://{}?mode=rwc",
            data_dir.path().join("alta.db").display()
        ),
    };
    let migrate = alta(&data_dir, &url).arg("migrate").output().unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(String::from_utf8_lossy(&migrate.stdout).contains("migrations applied"));

    // A weak password is refused with the reason, and nothing is created.
    let weak = admin_create(&data_dir, &url, "root@example.org", "password1234");
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password_too_weak"));

    let out = admin_create(&data_dir, &url, "Root@Example.org", PASSWORD);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created super admin"));
    // Running it again promotes (idempotent for the bootstrap).
    let again = admin_create(&data_dir, &url, "root@example.org", PASSWORD);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("promoted"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // A server on the same database: the admin can sign in and list users.
    let settings = alta::settings::Settings::from_vars([
        ("DATA_DIR".to_owned(), data_dir.path().display().to_string()),
        ("DATABASE_URL".to_owned(), url.clone()),
        ("PORT".to_owned(), "0".to_owned()),
        (
            "SECRET_KEY".to_owned(),
            "cli-test-secret-key-0123456789abcdef".to_owned(),
        ),
    ])
    .unwrap();
    let app = alta::startup::Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::new();
    let login = client
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"email": "root@example.org", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let token: Value = login.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap();
    let users = client
        .get(format!("{base}/api/admin/users"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), StatusCode::OK);
    let users: Value = users.json().await.unwrap();
    assert_eq!(users["items"][0]["role"], "super_admin");
    assert_eq!(users["items"][0]["email_verified"], true);
    let me = client
        .get(format!("{base}/api/admin/users"))
        .send()
        .await
        .unwrap();
    assert_problem(me, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // `admin recount` finds a rollup row a manual SQL change broke, and mends it.
    let project: Value = client
        .post(format!("{base}/api/projects"))
        .bearer_auth(token)
        .json(&serde_json::json!({"name": "Recounted"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let project_id: uuid::Uuid = project["id"].as_str().unwrap().parse().unwrap();
    let db = alta_actors::store::Db::connect(&alta_actors::store::DbOptions {
        url: url.clone(),
        max_connections: 1,
        create_sqlite_file: false,
    })
    .await
    .unwrap();
    let sql = "INSERT INTO rollup_items (project_id, contributor_id, kind, status, items, bytes, \
               audio_ms, reworked, rounds) VALUES ($1, $2, 'document', 'approved', 3, 99, 0, 0, 0)";
    alta_actors::store::with_db!(&db, |pool| sqlx::query(sql)
        .bind(project_id)
        .bind(uuid::Uuid::new_v4())
        .execute(pool)
        .await
        .map(|_| ()))
    .unwrap();
    db.close().await;
    let recount = |args: &[&str]| {
        let out = alta(&data_dir, &url)
            .args(["admin", "recount"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let project_arg = project_id.to_string();
    let first = recount(&["--project", &project_arg]);
    assert!(first.contains("1 rollup row(s) corrected"), "{first}");
    assert!(first.contains("counted nothing"), "{first}");
    let second = recount(&[]);
    assert!(second.contains("0 rollup row(s) corrected"), "{second}");
}

crate::backend_tests!(admin_create_then_sign_in);

#[test]
fn configuration_errors_name_the_variable() {
    let data_dir = TempDir::new().unwrap();
    let out = alta(&data_dir, "mysql://nope")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("configuration error: DATABASE_URL"),
        "{stderr}"
    );
    let out = alta(&data_dir, "sqlite://x.db?mode=rwc")
        .env("APP_ENV", "production")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PUBLIC_URL") || stderr.contains("SECRET_KEY"),
        "{stderr}"
    );
}

/// `alta worker` runs the job workers and serves /metrics (guarded by METRICS_TOKEN,
/// as the API's is) and /health for scraping; SIGTERM stops it cleanly.
const SCRAPE_TOKEN: &str = "worker-scrape-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_serves_metrics_and_stops_on_sigterm() {
    let data_dir = TempDir::new().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        data_dir.path().join("alta.db").display()
    );
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let migrate = alta(&data_dir, &url).arg("migrate").output().unwrap();
    assert!(migrate.status.success());
    let mut child = alta(&data_dir, &url)
        .env("WORKER_METRICS_PORT", port.to_string())
        .env("METRICS_TOKEN", SCRAPE_TOKEN)
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    // The queue gauges appear after the workers' first look at the queue, which may come
    // just after the port first answers: wait for them (bounded).
    let mut metrics = None;
    for _ in 0..200 {
        if let Ok(resp) = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .bearer_auth(SCRAPE_TOKEN)
            .send()
            .await
        {
            let text = resp.text().await.unwrap();
            let done = text.contains("jobs_queue_depth");
            metrics = Some(text);
            if done {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let metrics = metrics.expect("the worker answers on WORKER_METRICS_PORT");
    assert!(metrics.contains("jobs_queue_depth"), "{metrics}");
    for token in [None, Some("not-the-scrape-token-at-all")] {
        let mut scrape = client.get(format!("http://127.0.0.1:{port}/metrics"));
        if let Some(token) = token {
            scrape = scrape.bearer_auth(token);
        }
        let resp = scrape.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "token {token:?}");
        assert!(!resp.text().await.unwrap().contains("jobs_queue_depth"));
    }
    let health = client
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let killed = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let mut exited = None;
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let status = exited.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the worker did not stop on SIGTERM");
    });
    assert!(status.success(), "exit status {status}");
}
