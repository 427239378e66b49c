//! Startup wiring, called as a library: misconfiguration fails fast and names the
//! variable at fault; several servers can live in one process.

use std::time::Duration;

use alta::{settings::Settings, startup::Application};
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::init_test_env;

/// Upper bound on a build that should fail fast; only there so a hang fails the
/// test instead of blocking the suite (no duration is asserted).
const BUILD_BOUND: Duration = Duration::from_secs(120);

/// Minimal valid settings under `dir`, with `extra` added (or overriding).
fn vars(dir: &TempDir, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("DATA_DIR", dir.path().display().to_string()),
        ("PORT", "0".to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
        (
            "SECRET_KEY",
            "startup-test-secret-key-0123456789abcdef".to_owned(),
        ),
        ("APP_ENV", "test".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    vars.retain(|(k, _)| !extra.iter().any(|(name, _)| name == k));
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    vars
}

fn settings(dir: &TempDir, extra: &[(&str, &str)]) -> Settings {
    Settings::from_vars(vars(dir, extra)).expect("valid settings")
}

/// `Application::build`, which must fail; the error chain as `{:#}`.
async fn build_error(settings: Settings) -> String {
    let result = tokio::time::timeout(BUILD_BOUND, Application::build(settings))
        .await
        .expect("Application::build neither succeeded nor failed: it hangs");
    match result {
        Ok(_) => panic!("Application::build succeeded, expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_sqlite_file_is_an_error_not_a_new_database() {
    init_test_env();
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("missing.db");
    let url = format!("sqlite://{}", missing.display());
    assert!(url.starts_with("sqlite:///"), "{url}");
    let settings = settings(&dir, &[("DATABASE_URL", &url)]);
    assert!(!settings.create_sqlite_file);

    let error = build_error(settings).await;
    assert!(
        error.contains("DATABASE_URL"),
        "the error names the variable: {error}"
    );
    assert!(!missing.exists(), "{} was created", missing.display());
    // Nothing else that looks like a database appeared either.
    let created: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".db"))
        .collect();
    assert!(created.is_empty(), "{created:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_database_schemes_are_refused_by_the_settings() {
    init_test_env();
    let dir = TempDir::new().unwrap();
    for url in ["mysql://x", "mysql://user:pw@db/alta", "/var/lib/alta.db"] {
        let err = Settings::from_vars(vars(&dir, &[("DATABASE_URL", url)])).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL", "{url}: {err}");
        assert!(err.to_string().starts_with("DATABASE_URL:"), "{err}");
        assert!(
            !err.to_string().contains("pw@"),
            "credentials are not echoed: {err}"
        );
    }
    // The defaults are valid, so the failures above are about DATABASE_URL alone.
    assert!(Settings::from_vars(vars(&dir, &[])).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_fails_the_build_and_names_redis_url() {
    init_test_env();
    let dir = TempDir::new().unwrap();
    // Port 1 on loopback: nothing listens there.
    let settings = settings(&dir, &[("REDIS_URL", "redis://127.0.0.1:1")]);
    assert!(settings.redis_url.is_some());
    let error = build_error(settings).await;
    assert!(
        error.contains("REDIS_URL"),
        "the error names the variable: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applications_in_one_process_listen_on_their_own_ports() {
    init_test_env();
    let (dir_a, dir_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let a = Application::build(settings(&dir_a, &[]))
        .await
        .expect("first application builds");
    let b = Application::build(settings(&dir_b, &[]))
        .await
        .expect("second application builds");
    let (port_a, port_b) = (a.port(), b.port());
    assert_ne!(port_a, 0);
    assert_ne!(port_b, 0);
    assert_ne!(port_a, port_b);

    let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
    let (stop_b, stopped_b) = tokio::sync::oneshot::channel::<()>();
    let server_a = tokio::spawn(a.run_until(async {
        let _ = stopped_a.await;
    }));
    let server_b = tokio::spawn(b.run_until(async {
        let _ = stopped_b.await;
    }));

    let client = reqwest::Client::new();
    for port in [port_a, port_b] {
        let resp = client
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "port {port}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "ok");
        let resp = client
            .get(format!("http://127.0.0.1:{port}/health/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "port {port}");
    }
    // Each has its own database: a user registered on one is unknown to the other.
    let register =
        serde_json::json!({"email": "only-a@example.org", "password": crate::helpers::PASSWORD});
    let resp = client
        .post(format!("http://127.0.0.1:{port_a}/api/auth/register"))
        .json(&register)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let login =
        serde_json::json!({"email": "only-a@example.org", "password": crate::helpers::PASSWORD});
    let on_a = client
        .post(format!("http://127.0.0.1:{port_a}/api/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap();
    let on_b = client
        .post(format!("http://127.0.0.1:{port_b}/api/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap();
    let (on_a, on_b): (Value, Value) = (on_a.json().await.unwrap(), on_b.json().await.unwrap());
    assert_eq!(on_a["code"], "email_not_verified", "{on_a}");
    assert_eq!(on_b["code"], "invalid_credentials", "{on_b}");
    assert!(dir_a.path().join("alta.db").exists());
    assert!(dir_b.path().join("alta.db").exists());

    // Stopping one leaves the other serving.
    stop_a.send(()).unwrap();
    server_a
        .await
        .unwrap()
        .expect("the first server stops cleanly");
    let resp = client
        .get(format!("http://127.0.0.1:{port_b}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    stop_b.send(()).unwrap();
    server_b
        .await
        .unwrap()
        .expect("the second server stops cleanly");
}

/// PostgreSQL connections run without JIT: a statement whose estimate crosses
/// `jit_above_cost` (the review queue's generic plan does, at a million items) would
/// otherwise spend hundreds of milliseconds compiling (benches/review.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_run_without_jit() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await;
    let db = app.db().await;
    let alta_actors::store::Db::Postgres(pool) = &db else {
        panic!("a PostgreSQL app has a PostgreSQL pool");
    };
    let jit: String = sqlx::query_scalar("SHOW jit")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(jit, "off");
}

/// Production refuses the mail outbox (mail files and logged links hold live tokens)
/// unless `MAIL_OUTBOX_IN_PRODUCTION=true`, and an anonymous `/metrics` unless
/// `METRICS_TOKEN` or `METRICS_ADDR` is set; each error names its variable.
#[test]
fn production_needs_smtp_or_an_explicit_outbox_and_a_guarded_metrics() {
    let dir = TempDir::new().unwrap();
    let prod = [
        ("APP_ENV", "production"),
        ("PUBLIC_URL", "https://data.example.org"),
    ];
    let error = |extra: &[(&str, &str)]| {
        let mut all = prod.to_vec();
        all.extend_from_slice(extra);
        Settings::from_vars(vars(&dir, &all))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let token = ("METRICS_TOKEN", "scrape-token-0123456789");
    let e = error(&[token]);
    assert!(e.starts_with("MAIL_OUTBOX_IN_PRODUCTION:"), "{e}");
    let e = error(&[("SMTP_HOST", "smtp.example.org")]);
    assert!(e.starts_with("METRICS_TOKEN:"), "{e}");
    let e = error(&[token, ("MAIL_OUTBOX_IN_PRODUCTION", "maybe")]);
    assert!(e.starts_with("MAIL_OUTBOX_IN_PRODUCTION:"), "{e}");

    let mut allowed = prod.to_vec();
    allowed.extend([token, ("MAIL_OUTBOX_IN_PRODUCTION", "true")]);
    assert!(Settings::from_vars(vars(&dir, &allowed)).is_ok());
    let mut own_listener = prod.to_vec();
    own_listener.extend([
        ("SMTP_HOST", "smtp.example.org"),
        ("METRICS_ADDR", "127.0.0.1:0"),
    ]);
    assert!(Settings::from_vars(vars(&dir, &own_listener)).is_ok());
}

/// `GET /` says where the documentation is, to a browser (a page of links) and to a
/// program (JSON), and the pages it names answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_points_at_the_documentation() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let json: Value = app.get("/").await.json().await.unwrap();
    assert_eq!(json["docs"], "/docs");
    assert_eq!(json["openapi"], "/api/openapi.json");
    let page = app
        .client
        .get(app.url("/"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("href=\"/docs\""), "{html}");
    for path in ["/docs", "/redoc", "/api/openapi.json", "/health"] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
    }
}
