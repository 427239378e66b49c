//! Throughput of the durable job queue (`alta_actors::store::jobs`), on the store
//! directly: no engine, no actors, no HTTP.
//!
//! For each backend and each worker count: a fresh database (a temporary SQLite file, or
//! a fresh schema on PostgreSQL that is dropped afterwards), N jobs of kind `bench`
//! enqueued in batches, one transaction per batch (timed: the enqueue rate), then W
//! concurrent workers, each with its own worker id, that loop `claim` up to B due jobs,
//! run a no-op and `complete` each, until a claim comes back empty (timed: the
//! claim+complete rate). Afterwards every job must be done exactly once: no id is
//! claimed twice (checked as claims come in), every `complete` succeeds, and the table
//! holds exactly the enqueued ids, all `done` after one attempt. Any failure exits non-zero.
//!
//! ```text
//! cargo bench --bench job_queue -- [--backend sqlite|postgres|both] [--jobs N]
//!     [--workers W[,W...]] [--batch B] [--enqueue-batch E] [--max-connections C]
//!     [--database-url postgres://...]
//! ```
//!
//! PostgreSQL: `--database-url` (or `BENCH_DATABASE_URL`), default
//! `postgres://postgres@127.0.0.1:5432/postgres`; the benchmark creates a schema
//! `jq_<unix ms>_<random>` there and connects with `search_path` set to it.
//! SQLite runs with the server's settings (WAL, `synchronous = FULL`), so every commit
//! is an fsync: its numbers depend on the disk.
//!
//! Compare rates only at equal `--jobs`: a claim's cost grows with the table (on SQLite
//! it reads every row of the kind, done ones included; on PostgreSQL every due one),
//! so the claim+complete rate falls as N grows.
//!
//! The table goes to stdout, progress to stderr.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/pg_schema.rs"]
mod pg_schema;

use std::{
    collections::HashSet,
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use alta_actors::store::{Db, DbOptions, StoreError, jobs};
use anyhow::{Context, bail};
use chrono::Utc;
use clap::Parser;
use uuid::Uuid;

use crate::pg_schema::{Backend, BackendArg, DEFAULT_PG_URL, PgSchema, check_postgres, redact};

const KIND: &str = "bench";

#[derive(Parser)]
struct Args {
    /// Which database(s) to measure.
    #[arg(long, value_enum, default_value_t = BackendArg::Both)]
    backend: BackendArg,
    /// Jobs to enqueue and run per measurement.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Concurrent workers; a comma-separated list measures each count in turn.
    #[arg(long, value_delimiter = ',', default_value = "4")]
    workers: Vec<usize>,
    /// Jobs claimed per `claim` call (at most).
    #[arg(long, default_value_t = 16)]
    batch: i64,
    /// Jobs enqueued per transaction.
    #[arg(long, default_value_t = 500)]
    enqueue_batch: usize,
    /// Pool size (the server's DATABASE_MAX_CONNECTIONS default is 10).
    #[arg(long, default_value_t = 10)]
    max_connections: u32,
    /// PostgreSQL server and database to create the throw-away schema in.
    #[arg(long, env = "BENCH_DATABASE_URL", default_value = DEFAULT_PG_URL)]
    database_url: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    fn backends(&self) -> Vec<Backend> {
        self.backend.backends()
    }

    /// The command line that reproduces this run (any password in the URL masked).
    fn command_line(&self) -> String {
        let backend = self.backend.name();
        let workers: Vec<String> = self.workers.iter().map(ToString::to_string).collect();
        let mut cmd = format!(
            "cargo bench --bench job_queue -- --backend {backend} --jobs {} --workers {} \
             --batch {} --enqueue-batch {} --max-connections {}",
            self.jobs,
            workers.join(","),
            self.batch,
            self.enqueue_batch,
            self.max_connections
        );
        if self.backend != BackendArg::Sqlite && self.database_url != DEFAULT_PG_URL {
            cmd.push_str(&format!(" --database-url '{}'", redact(&self.database_url)));
        }
        cmd
    }
}

struct Measurement {
    backend: Backend,
    workers: usize,
    enqueue: Duration,
    work: Duration,
    claims: u64,
    busy_retries: u64,
}

/// What the workers share: the ids claimed so far and a few counters.
#[derive(Default)]
struct Shared {
    claimed: Mutex<HashSet<Uuid>>,
    claims: AtomicU64,
    busy_retries: AtomicU64,
    completed: AtomicU64,
}

/// One measurement on a fresh database.
async fn measure(backend: Backend, workers: usize, args: &Args) -> anyhow::Result<Measurement> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::TempDir::new().context("could not create a temp dir")?;
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            run(backend, &url, workers, args).await
        }
        Backend::Postgres => {
            let schema = PgSchema::create(&args.database_url, "jq").await?;
            let result = run(backend, &schema.url(), workers, args).await;
            let dropped = schema.drop_schema().await;
            let measurement = result?;
            dropped?;
            Ok(measurement)
        }
    }
}

async fn run(
    backend: Backend,
    url: &str,
    workers: usize,
    args: &Args,
) -> anyhow::Result<Measurement> {
    let db = Db::connect(&DbOptions {
        url: url.to_owned(),
        max_connections: args.max_connections,
        create_sqlite_file: true,
    })
    .await
    .with_context(|| format!("{}: could not connect", backend.name()))?;
    db.migrate()
        .await
        .with_context(|| format!("{}: migrations failed", backend.name()))?;
    let result = run_on(&db, backend, workers, args).await;
    db.close().await;
    result
}

async fn run_on(
    db: &Db,
    backend: Backend,
    workers: usize,
    args: &Args,
) -> anyhow::Result<Measurement> {
    let label = format!("{} W={workers}", backend.name());

    // --- enqueue ------------------------------------------------------------------------
    eprintln!("[{label}] enqueueing {} jobs", args.jobs);
    let mut enqueued = HashSet::with_capacity(args.jobs);
    let started = Instant::now();
    let mut n = 0;
    while n < args.jobs {
        let end = (n + args.enqueue_batch).min(args.jobs);
        let mut tx = db.begin().await.context("begin")?;
        for i in n..end {
            let now = Utc::now();
            let id = jobs::enqueue(&mut tx, KIND, serde_json::json!({ "n": i }), 3, now, now)
                .await
                .context("enqueue")?;
            enqueued.insert(id);
        }
        tx.commit().await.context("commit of an enqueue batch")?;
        n = end;
    }
    let enqueue = started.elapsed();
    if enqueued.len() != args.jobs {
        bail!(
            "{label}: enqueue returned {} distinct ids for {} jobs",
            enqueued.len(),
            args.jobs
        );
    }

    // --- claim and complete -------------------------------------------------------------
    eprintln!(
        "[{label}] running with {workers} worker(s), batch {}",
        args.batch
    );
    let shared = Arc::new(Shared::default());
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let (db, shared, batch) = (db.clone(), shared.clone(), args.batch);
        tasks.push(tokio::spawn(async move {
            worker(&db, &format!("bench-worker-{w}"), batch, &shared).await
        }));
    }
    let mut failure = None;
    for task in tasks {
        let outcome = task.await.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(err) = outcome {
            failure.get_or_insert(err);
        }
    }
    let work = started.elapsed();
    if let Some(err) = failure {
        return Err(err.context(format!("{label}: a worker failed")));
    }

    // --- verify -------------------------------------------------------------------------
    let claimed = std::mem::take(&mut *shared.claimed.lock().unwrap());
    let completed = shared.completed.load(Ordering::Relaxed);
    if claimed.len() != args.jobs || completed != args.jobs as u64 {
        bail!(
            "{label}: {} jobs enqueued, {} claimed, {completed} completed",
            args.jobs,
            claimed.len()
        );
    }
    if claimed != enqueued {
        bail!("{label}: the claimed ids are not the enqueued ids");
    }
    let rows = jobs::list_by_kind(db, KIND).await.context("list_by_kind")?;
    let done = rows
        .iter()
        .filter(|r| r.state == alta_actors::domain::JobState::Done)
        .count();
    let once = rows.iter().filter(|r| r.attempts == 1).count();
    let in_table: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
    if rows.len() != args.jobs || done != args.jobs || once != args.jobs || in_table != enqueued {
        bail!(
            "{label}: table holds {} `{KIND}` jobs ({} distinct), {done} done, {once} with \
             exactly one attempt; expected {} of each",
            rows.len(),
            in_table.len(),
            args.jobs
        );
    }
    eprintln!(
        "[{label}] verified: {} jobs, each claimed and done exactly once",
        args.jobs
    );

    Ok(Measurement {
        backend,
        workers,
        enqueue,
        work,
        claims: shared.claims.load(Ordering::Relaxed),
        busy_retries: shared.busy_retries.load(Ordering::Relaxed),
    })
}

/// Contention (SQLite busy, PostgreSQL serialization failure): retried, and counted.
const MAX_BUSY_RETRIES: u32 = 100;

async fn worker(db: &Db, id: &str, batch: i64, shared: &Shared) -> anyhow::Result<()> {
    let mut busy = 0;
    loop {
        let now = Utc::now();
        let claimed = match jobs::claim(
            db,
            KIND,
            id,
            now,
            now + chrono::Duration::seconds(300),
            batch,
        )
        .await
        {
            Ok(rows) => rows,
            Err(StoreError::Unavailable(msg)) if busy < MAX_BUSY_RETRIES => {
                busy += 1;
                shared.busy_retries.fetch_add(1, Ordering::Relaxed);
                eprintln!("[{id}] claim busy, retrying: {msg}");
                continue;
            }
            Err(err) => return Err(err).context(format!("{id}: claim")),
        };
        busy = 0;
        shared.claims.fetch_add(1, Ordering::Relaxed);
        // All jobs were due before the workers started and leases outlive the run, so an
        // empty claim means nothing is left queued: the rest is held by other workers.
        if claimed.is_empty() {
            return Ok(());
        }
        {
            let mut seen = shared.claimed.lock().unwrap();
            for job in &claimed {
                if !seen.insert(job.id) {
                    bail!(
                        "{id}: job {} claimed a second time (attempts {})",
                        job.id,
                        job.attempts
                    );
                }
            }
        }
        for job in claimed {
            // The handler: a no-op.
            std::hint::black_box(&job.payload);
            loop {
                match jobs::complete(db, job.id, id, Utc::now(), false).await {
                    Ok(true) => break,
                    Ok(false) => bail!("{id}: complete({}) found the lease lost", job.id),
                    Err(StoreError::Unavailable(msg)) if busy < MAX_BUSY_RETRIES => {
                        busy += 1;
                        shared.busy_retries.fetch_add(1, Ordering::Relaxed);
                        eprintln!("[{id}] complete busy, retrying: {msg}");
                    }
                    Err(err) => return Err(err).context(format!("{id}: complete({})", job.id)),
                }
            }
            busy = 0;
            shared.completed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn print_table(rows: &[Measurement], jobs: usize, batch: i64) {
    println!(
        "{:<9} {:>7} {:>6} {:>7} {:>10} {:>13} {:>10} {:>13} {:>9} {:>7} {:>5}",
        "backend",
        "workers",
        "batch",
        "jobs",
        "enqueue s",
        "enqueue/s",
        "work s",
        "claim+done/s",
        "total s",
        "claims",
        "busy"
    );
    for m in rows {
        let (enqueue, work) = (m.enqueue.as_secs_f64(), m.work.as_secs_f64());
        println!(
            "{:<9} {:>7} {:>6} {:>7} {:>10.2} {:>13.0} {:>10.2} {:>13.0} {:>9.2} {:>7} {:>5}",
            m.backend.name(),
            m.workers,
            batch,
            jobs,
            enqueue,
            jobs as f64 / enqueue,
            work,
            jobs as f64 / work,
            enqueue + work,
            m.claims,
            m.busy_retries
        );
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    alta::install_crypto_provider();
    let args = Args::parse();
    if args.jobs == 0 || args.batch < 1 || args.enqueue_batch == 0 || args.max_connections == 0 {
        eprintln!("error: --jobs, --batch, --enqueue-batch and --max-connections must be positive");
        return ExitCode::FAILURE;
    }
    if args.workers.is_empty() || args.workers.contains(&0) {
        eprintln!("error: --workers must be positive");
        return ExitCode::FAILURE;
    }
    let backends = args.backends();
    if let Err(err) = check_postgres(&backends, &args.database_url).await {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }

    let mut rows = Vec::new();
    let mut failed = false;
    for backend in backends {
        for &workers in &args.workers {
            match measure(backend, workers, &args).await {
                Ok(m) => rows.push(m),
                Err(err) => {
                    eprintln!("error: {err:#}");
                    failed = true;
                }
            }
        }
    }
    print_table(&rows, args.jobs, args.batch);
    println!();
    println!("reproduce: {}", args.command_line());
    if failed {
        eprintln!("error: at least one measurement failed (see above)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
