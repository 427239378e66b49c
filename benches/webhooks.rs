//! Webhooks: what a subscribed webhook adds to an upload's commit, and how many
//! deliveries a second one node sends to a local receiver.
//!
//! ```text
//! cargo bench --bench webhooks -- --backend both --uploads 2000 --concurrency 8
//! ```
//!
//! For each backend, the real server runs in this process on a fresh database, with a
//! receiver (poem, on loopback, answering 200 at once) beside it:
//! 1. `--uploads` 1 KiB text uploads at `--concurrency`, into a project with no webhook;
//! 2. the same into a project with one webhook taking `item.uploaded`, while nothing is
//!    delivered yet (the receiver holds its answers, so the first few deliveries wait
//!    and the rest stay queued: the uploads measure the commit, not the sending beside
//!    it) — uploads per second and mean latency of each;
//! 3. the receiver answers again: deliveries per second until every upload's delivery
//!    has arrived, at `JOB_CONCURRENCY_WEBHOOK` (`--concurrency`) attempts at once.
//!
//! Processing is on (each upload also queues its OCR job, as in production); the
//! deliveries of `item.uploaded` only are counted.

#[path = "common/pg_schema.rs"]
mod pg_schema;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use alta::{settings::Settings, startup::Application};
use alta_actors::context::RequestContext;
use anyhow::{Context, bail, ensure};
use clap::Parser;
use poem::{EndpointExt, Route, handler, listener::TcpListener, post, web::Data};
use reqwest::{Client, multipart};
use serde_json::{Value, json};

use crate::pg_schema::{Backend, BackendArg, DEFAULT_PG_URL, PgSchema, check_postgres, redact};

const ADMIN: &str = "bench-admin@example.org";
const PASSWORD: &str = "violet tangent harbour 42";

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "both")]
    backend: BackendArg,
    /// Uploads per measured run.
    #[arg(long, default_value_t = 2000)]
    uploads: usize,
    /// Concurrent uploads, and deliveries sent at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long, env = "BENCH_DATABASE_URL", default_value = DEFAULT_PG_URL)]
    pg_url: String,
    /// cargo bench passes this; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The receiver: counts `item.uploaded` deliveries; holds its answers while `hold`.
#[derive(Default)]
struct Counter {
    uploaded: AtomicU64,
    hold: AtomicBool,
}

#[handler]
async fn receive(body: String, counter: Data<&Arc<Counter>>) -> &'static str {
    while counter.hold.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if body.contains("\"type\":\"item.uploaded\"") {
        counter.uploaded.fetch_add(1, Ordering::Relaxed);
    }
    "ok"
}

async fn start_receiver(counter: Arc<Counter>) -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    let app = Route::new().at("/hook", post(receive)).data(counter);
    tokio::spawn(poem::Server::new(TcpListener::bind(format!("127.0.0.1:{port}"))).run(app));
    // Wait for it to listen.
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(port);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("the receiver did not start")
}

struct Run {
    rate: f64,
    mean_ms: f64,
}

/// `n` distinct 1 KiB uploads into `project` at `concurrency`.
async fn upload_all(
    client: &Client,
    base: &str,
    token: &str,
    project: &str,
    n: usize,
    concurrency: usize,
    tag: &str,
) -> anyhow::Result<Run> {
    let next = Arc::new(AtomicU64::new(0));
    let total_us = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, base, token, project, next, total_us, tag) = (
            client.clone(),
            base.to_owned(),
            token.to_owned(),
            project.to_owned(),
            next.clone(),
            total_us.clone(),
            tag.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return anyhow::Ok(());
                }
                let mut text = format!("{tag} upload {i} ");
                while text.len() < 1024 {
                    text.push_str("habari ya dunia ");
                }
                let form = multipart::Form::new()
                    .text("project_id", project.clone())
                    .part(
                        "file",
                        multipart::Part::bytes(text.into_bytes())
                            .file_name(format!("d{i}.txt"))
                            .mime_str("text/plain")?,
                    );
                let t = Instant::now();
                let resp = client
                    .post(format!("{base}/api/documents"))
                    .bearer_auth(&token)
                    .multipart(form)
                    .send()
                    .await?;
                ensure!(
                    resp.status().as_u16() == 201,
                    "upload answered {}",
                    resp.status()
                );
                total_us.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Run {
        rate: n as f64 / secs,
        mean_ms: total_us.load(Ordering::Relaxed) as f64 / n as f64 / 1000.0,
    })
}

async fn run(backend: Backend, args: &Args) -> anyhow::Result<()> {
    let data = tempfile::TempDir::new()?;
    let schema = match backend {
        Backend::Postgres => Some(PgSchema::create(&args.pg_url, "bench_webhooks").await?),
        Backend::Sqlite => None,
    };
    let mut vars: Vec<(String, String)> = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("SECRET_KEY", "bench-secret-key-0123456789abcdef0123"),
        ("RATE_LIMIT_AUTH_PER_IP", "100000/min"),
        ("RATE_LIMIT_AUTH_PER_ACCOUNT", "100000/min"),
        ("ACCESS_TOKEN_TTL_SECONDS", "86400"),
        ("WEBHOOK_ALLOW_PRIVATE", "true"),
        // Held answers wait rather than time out.
        ("WEBHOOK_TIMEOUT_MS", "60000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars.push(("DATA_DIR".into(), data.path().display().to_string()));
    vars.push((
        "JOB_CONCURRENCY_WEBHOOK".into(),
        args.concurrency.to_string(),
    ));
    if let Some(schema) = &schema {
        vars.push(("DATABASE_URL".into(), schema.url()));
    }
    let settings = Settings::from_vars(vars).context("bench settings")?;
    let app = Application::build(settings).await.context("server start")?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let engine = app.engine().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    engine
        .accounts()
        .create_super_admin(ADMIN, PASSWORD, &RequestContext::internal("bench"))
        .await
        .map_err(|e| anyhow::anyhow!("admin: {e}"))?;
    let client = Client::builder().pool_max_idle_per_host(64).build()?;
    let login: Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"].as_str().context("login")?.to_owned();
    let project = |name: &'static str| {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        async move {
            let p: Value = client
                .post(format!("{base}/api/projects"))
                .bearer_auth(&token)
                .json(&json!({"name": name}))
                .send()
                .await?
                .json()
                .await?;
            anyhow::Ok(p["id"].as_str().context("project")?.to_owned())
        }
    };
    let counter = Arc::new(Counter::default());
    let port = start_receiver(counter.clone()).await?;

    // Warm up (connections, the project actor, the statement caches).
    let warm = project("warm-up").await?;
    upload_all(&client, &base, &token, &warm, 200, args.concurrency, "warm").await?;

    let plain = project("no webhook").await?;
    let without = upload_all(
        &client,
        &base,
        &token,
        &plain,
        args.uploads,
        args.concurrency,
        "plain",
    )
    .await?;

    let hooked = project("one webhook").await?;
    let resp = client
        .post(format!("{base}/api/projects/{hooked}/webhooks"))
        .bearer_auth(&token)
        .json(&json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["item.uploaded"]}))
        .send()
        .await?;
    ensure!(resp.status().as_u16() == 201, "webhook: {}", resp.status());
    counter.hold.store(true, Ordering::Relaxed);
    let with = upload_all(
        &client,
        &base,
        &token,
        &hooked,
        args.uploads,
        args.concurrency,
        "hooked",
    )
    .await?;

    // Deliveries: released at once, timed until every one has arrived.
    let started = Instant::now();
    counter.hold.store(false, Ordering::Relaxed);
    let deadline = started + Duration::from_secs(600);
    while (counter.uploaded.load(Ordering::Relaxed) as usize) < args.uploads {
        ensure!(
            Instant::now() < deadline,
            "deliveries did not all arrive in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered_secs = started.elapsed().as_secs_f64();

    let name = backend.name();
    println!(
        "{name}: uploads without a webhook {:.0}/s (mean {:.2} ms), with one {:.0}/s (mean {:.2} ms): +{:.2} ms per upload",
        without.rate,
        without.mean_ms,
        with.rate,
        with.mean_ms,
        with.mean_ms - without.mean_ms
    );
    println!(
        "{name}: {} deliveries in {:.2} s = {:.0}/s at concurrency {} (the first held ones included)",
        args.uploads,
        delivered_secs,
        args.uploads as f64 / delivered_secs,
        args.concurrency
    );
    let _ = stop.send(());
    server.await??;
    if let Some(schema) = schema {
        schema.drop_schema().await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    alta::install_crypto_provider();
    let args = Args::parse();
    let backends = args.backend.backends();
    check_postgres(&backends, &args.pg_url)
        .await
        .with_context(|| format!("PostgreSQL at {}", redact(&args.pg_url)))?;
    for backend in backends {
        run(backend, &args).await?;
    }
    Ok(())
}
