//! Analytics reads on a platform of many projects, through the real server on a
//! loopback port.
//!
//! `--projects` projects (100 by default) of `--items` documents each (10,000) are
//! bulk-loaded with SQL (`benches/common/bulk.rs`, the review bench's load, with the
//! rollup triggers on, as uploads keep them), then on PostgreSQL the rollup tables are
//! rewritten compactly (`ROLLUP_VACUUM`: the load wrote each rollup row thousands of
//! times in one transaction, which no traffic does). Then `--concurrency` readers read
//! one project's summary, the platform's summary (every project's rollups), the
//! project's daily series over 90 days, both leaderboards and a contributor's figures
//! (`benches/common/analytics_reads.rs`), each answer checked against the load before it
//! is timed. `--projects 1 --items 1000000` is the other size the analytics issue
//! names: a million items in one project.
//!
//! ```text
//! cargo bench --bench analytics -- [--backend sqlite|postgres|both] [--projects N]
//!     [--items N] [--samples S] [--warmup W] [--concurrency C] [--batch B]
//!     [--database-url postgres://...] [--keep]
//! ```
//!
//! Progress goes to stderr, the table to stdout; any failure ends the run with a
//! non-zero exit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/analytics_reads.rs"]
mod analytics_reads;
#[path = "common/bulk.rs"]
mod bulk;
#[path = "common/pg_schema.rs"]
mod pg_schema;

use std::{process::ExitCode, time::Instant};

use alta_actors::store::Db;
use anyhow::{Context, ensure};
use clap::Parser;
use reqwest::Method;
use serde_json::json;

use crate::bulk::{
    Fresh, Http, LoadPlan, OpRow, ROLLUP_VACUUM, Server, User, bulk_load, each_backend,
    load_average, on_fresh_server, progress, setup_people, uuid_at,
};
use crate::pg_schema::{Backend, BackendArg, DEFAULT_PG_URL, check_postgres, redact};

#[derive(Parser)]
struct Args {
    /// Which database(s) to measure.
    #[arg(long, value_enum, default_value_t = BackendArg::Both)]
    backend: BackendArg,
    /// Projects on the platform.
    #[arg(long, default_value_t = 100)]
    projects: usize,
    /// Pending documents bulk-loaded into each project.
    #[arg(long, default_value_t = 10_000)]
    items: i64,
    /// Timed requests per read (after the warm-up).
    #[arg(long, default_value_t = 1_000)]
    samples: usize,
    /// Untimed requests before each read.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Readers reading together.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Items inserted per transaction.
    #[arg(long, default_value_t = 50_000)]
    batch: i64,
    /// PostgreSQL server and database to create the throw-away schema in.
    #[arg(long, env = "BENCH_DATABASE_URL", default_value = DEFAULT_PG_URL)]
    database_url: String,
    /// Keep the database afterwards and print where it is.
    #[arg(long)]
    keep: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.projects > 0 && self.items > 0 && self.batch > 0,
            "--projects, --items and --batch must be positive"
        );
        ensure!(
            self.samples > 0 && self.concurrency > 0,
            "--samples and --concurrency must be positive"
        );
        Ok(())
    }

    fn command_line(&self) -> String {
        let backend = self.backend.name();
        let mut cmd = format!(
            "cargo bench --bench analytics -- --backend {backend} --projects {} --items {} \
             --samples {} --warmup {} --concurrency {} --batch {}",
            self.projects, self.items, self.samples, self.warmup, self.concurrency, self.batch
        );
        if self.backend != BackendArg::Sqlite && self.database_url != DEFAULT_PG_URL {
            cmd.push_str(&format!(" --database-url '{}'", redact(&self.database_url)));
        }
        cmd
    }
}

struct Report {
    backend: Backend,
    load_seconds: f64,
    rows: Vec<OpRow>,
    notes: Vec<String>,
}

async fn run_on(backend: Backend, args: &Args, server: &Server, db: &Db) -> anyhow::Result<Report> {
    let http = Http::new(&server.base)?;
    let (people, first) = setup_people(&http, server, 0, 0, backend).await?;
    let owner: &User = &people.owner;
    let mut projects = vec![first];
    for n in 1..args.projects {
        let created = http
            .ok(
                Method::POST,
                "/api/projects",
                Some(&owner.token),
                Some(&json!({"name": format!("analytics bench {n}")})),
            )
            .await?
            .json()?;
        projects.push(uuid_at(&created, "/id")?);
    }
    let plan = LoadPlan {
        items: args.items,
        batch: args.batch,
    };
    progress(
        backend,
        format!(
            "bulk-loading {} projects of {} items",
            args.projects, args.items
        ),
    );
    let started = Instant::now();
    for (n, project) in projects.iter().enumerate() {
        bulk_load(db, backend, &plan, *project, &people.contributors).await?;
        if (n + 1) % 10 == 0 {
            progress(
                backend,
                format!(
                    "{} projects loaded ({:.0} s)",
                    n + 1,
                    started.elapsed().as_secs_f64()
                ),
            );
        }
    }
    let load_seconds = started.elapsed().as_secs_f64();
    if let Db::Postgres(pool) = db {
        progress(
            backend,
            "VACUUM FULL the rollups (the bulk load's versions)",
        );
        sqlx::query(ROLLUP_VACUUM)
            .execute(pool)
            .await
            .context("VACUUM FULL the rollups")?;
    }
    // The platform counts every project's items.
    let platform = http
        .ok(
            Method::GET,
            "/api/analytics/summary",
            Some(&owner.token),
            None,
        )
        .await?
        .json()?;
    let total = args.items * args.projects as i64;
    ensure!(
        platform["items"].as_i64() == Some(total),
        "the platform summary does not count the {total} loaded items: {platform}"
    );
    let notes = vec![format!(
        "{} projects × {} items loaded in {load_seconds:.1} s; load average at start: {}",
        args.projects,
        args.items,
        load_average()
    )];
    let rows =
        analytics_reads::measure(&http, backend, args, first, owner, &people.contributors[0])
            .await?;
    Ok(Report {
        backend,
        load_seconds,
        rows,
        notes,
    })
}

async fn measure(backend: Backend, args: &Args) -> anyhow::Result<Report> {
    let fresh = Fresh {
        backend,
        database_url: &args.database_url,
        schema_prefix: "an",
        keep: args.keep,
        monitor_seconds: None,
    };
    on_fresh_server(fresh, async |server, db| {
        run_on(backend, args, server, db).await
    })
    .await
}

fn print_reports(reports: &[Report], args: &Args) {
    println!(
        "{:<9} {:<44} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "backend", "operation", "samples", "p50 ms", "p90 ms", "p99 ms", "max ms", "rate/s"
    );
    for r in reports {
        for row in &r.rows {
            println!(
                "{:<9} {:<44} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8}",
                r.backend.name(),
                row.op,
                row.latencies_us.len(),
                row.percentile_ms(500),
                row.percentile_ms(900),
                row.percentile_ms(990),
                row.percentile_ms(1000),
                row.rate
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}")),
            );
        }
    }
    for r in reports {
        println!();
        println!("== {}: loaded in {:.1} s", r.backend.name(), r.load_seconds);
        for note in &r.notes {
            println!("   {note}");
        }
    }
    println!();
    println!("reproduce: {}", args.command_line());
}

#[tokio::main]
async fn main() -> ExitCode {
    alta::install_crypto_provider();
    bulk::set_bench("analytics");
    let args = Args::parse();
    if let Err(err) = args.check() {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }
    let backends = args.backend.backends();
    if let Err(err) = check_postgres(&backends, &args.database_url).await {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }
    let (reports, failed) = each_backend(backends, async |b| measure(b, &args).await).await;
    print_reports(&reports, &args);
    if failed {
        eprintln!("error: at least one backend failed (see above)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
