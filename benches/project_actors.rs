//! Memory of the project actor tree: create N projects (each transition starts that
//! project's actor), then wait past the idle timeout and check the actors are gone.
//! Reports RSS and `project_actors_active` at each step as JSON.
//!
//!   cargo bench --profile dev --bench project_actors -- [--projects N] [--database-url URL]
//!
//! Runs the engine in-process on a temporary SQLite file unless `--database-url` names a
//! (fresh, empty) PostgreSQL database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Instant};

use alta::{settings::Settings, startup::Application};
use alta_actors::{clock::SystemClock, context::RequestContext, projects::ProjectInput};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Projects to create.
    #[arg(long, default_value_t = 10_000)]
    projects: usize,
    /// PostgreSQL URL of an empty database (default: a temporary SQLite file).
    #[arg(long)]
    database_url: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn active_actors() -> f64 {
    let text = alta::telemetry::metrics_handle()
        .map(|h| h.render())
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("project_actors_active"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() {
    alta::install_crypto_provider();
    let args = Args::parse();
    let dir = tempfile::TempDir::new().unwrap();
    let mut vars = vec![
        ("DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("PORT".to_owned(), "0".to_owned()),
        (
            "SECRET_KEY".to_owned(),
            "bench-secret-key-0123456789abcdef0123".to_owned(),
        ),
        ("PROJECT_ACTOR_IDLE_SECONDS".to_owned(), "2".to_owned()),
        ("RATE_LIMIT_AUTH_PER_IP".to_owned(), "100000/min".to_owned()),
    ];
    if let Some(url) = &args.database_url {
        vars.push(("DATABASE_URL".to_owned(), url.clone()));
    }
    let _ = alta::telemetry::metrics_handle();
    let settings = Settings::from_vars(vars).unwrap();
    let app = Application::build_with_clock(settings, Arc::new(SystemClock))
        .await
        .unwrap();
    let engine = app.engine().clone();
    let ctx = RequestContext::internal("bench");
    let password = "bench passphrase that is long enough";
    engine
        .accounts()
        .create_super_admin("bench@example.org", password, &ctx)
        .await
        .unwrap();
    let token = engine
        .accounts()
        .login("bench@example.org", password, &ctx)
        .await
        .unwrap();
    let principal = engine
        .accounts()
        .authenticate(&token.access.token)
        .await
        .unwrap();

    let baseline = rss_mib();
    let mut rounds = Vec::new();
    // Two rounds: a leak grows RSS again in the second; allocator retention does not.
    for round in 0..2 {
        let started = Instant::now();
        for i in 0..args.projects {
            let input = ProjectInput {
                name: format!("project {round}-{i}"),
                description: None,
                settings: None,
            };
            engine
                .projects()
                .create_project(&principal, input, None, &ctx)
                .await
                .unwrap();
        }
        let create_secs = started.elapsed().as_secs_f64();
        let after_create = rss_mib();
        let active_after_create = active_actors();
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        rounds.push(serde_json::json!({
            "create_seconds": (create_secs * 100.0).round() / 100.0,
            "creates_per_second": (args.projects as f64 / create_secs).round(),
            "rss_mib_after_create": (after_create * 10.0).round() / 10.0,
            "rss_mib_after_idle": (rss_mib() * 10.0).round() / 10.0,
            "actors_active_after_create": active_after_create,
            "actors_active_after_idle": active_actors(),
        }));
    }
    let report = serde_json::json!({
        "backend": engine.database_backend(),
        "projects_per_round": args.projects,
        "rss_mib_baseline": (baseline * 10.0).round() / 10.0,
        "rounds": rounds,
    });
    println!("{report:#}");
    engine.shutdown().await;
}
