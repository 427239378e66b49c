//! Dataset exports at scale, through the real server on a loopback port.
//!
//! `--items` documents (1,000,000 by default) are bulk-loaded into one project with SQL
//! (`benches/common/bulk.rs`: the same load as the review bench, `pending_review`, some
//! with a text revision), with the analytics rollup triggers dropped first (no export
//! reads a figure, and the load is several times faster without them). Then, for each
//! of `--formats` (default `jsonl,hf,csv`), an export of every item, manifests only, is
//! asked through the API and timed to `finished`, with the process's peak resident
//! memory growth (the server runs in this process) and each downloaded file's rows
//! counted (`benches/common/exports.rs`). With `--export-files N` (default 10,000; 0
//! skips it) the first N items get files of about a one-second recording's size and
//! are exported as `webdataset` shards: MiB/s, beside this disk's rate for one synced
//! write of 1 GiB.
//!
//! ```text
//! cargo bench --bench export -- [--backend sqlite|postgres|both] [--items N]
//!     [--formats jsonl,hf,csv] [--export-files N] [--batch B]
//!     [--database-url postgres://...] [--keep]
//! ```
//!
//! Targets (the export issue): a million items in under 60 s per format and under
//! 64 MiB of memory growth. Progress goes to stderr, the results to stdout; any
//! failure (a non-2xx answer, an export that fails or holds the wrong number of rows)
//! ends the run with a non-zero exit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/bulk.rs"]
mod bulk;
#[path = "common/exports.rs"]
mod exports;
#[path = "common/pg_schema.rs"]
mod pg_schema;

use std::process::ExitCode;

use alta_actors::store::Db;
use anyhow::ensure;
use clap::Parser;

use crate::bulk::{
    Fresh, Http, LoadPlan, Server, bulk_load, check_sqlite_rows, drop_rollup_triggers,
    each_backend, load_average, on_fresh_server, progress, setup_people,
};
use crate::pg_schema::{Backend, BackendArg, DEFAULT_PG_URL, check_postgres, redact};

const FORMATS: [&str; 3] = ["jsonl", "hf", "csv"];

#[derive(Parser)]
struct Args {
    /// Which database(s) to measure.
    #[arg(long, value_enum, default_value_t = BackendArg::Both)]
    backend: BackendArg,
    /// Documents bulk-loaded into the one project.
    #[arg(long, default_value_t = 1_000_000)]
    items: i64,
    /// Manifests-only exports of every item, in this order (`jsonl`, `hf`, `csv`).
    #[arg(long, value_delimiter = ',', default_values_t = FORMATS.map(String::from))]
    formats: Vec<String>,
    /// Give this many items files and export them as webdataset shards (0: none).
    #[arg(long, default_value_t = 10_000)]
    export_files: usize,
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
            self.items > 0 && self.batch > 0,
            "--items and --batch must be positive"
        );
        for format in &self.formats {
            ensure!(
                FORMATS.contains(&format.as_str()),
                "--formats takes jsonl, hf and csv, not {format}"
            );
        }
        ensure!(
            (self.export_files as i64) < self.items,
            "--export-files must be fewer than --items"
        );
        Ok(())
    }

    fn command_line(&self) -> String {
        let backend = self.backend.name();
        let mut cmd = format!(
            "cargo bench --bench export -- --backend {backend} --items {} --formats {} \
             --export-files {} --batch {}",
            self.items,
            self.formats.join(","),
            self.export_files,
            self.batch
        );
        if self.backend != BackendArg::Sqlite && self.database_url != DEFAULT_PG_URL {
            cmd.push_str(&format!(" --database-url '{}'", redact(&self.database_url)));
        }
        cmd
    }
}

async fn run_on(
    backend: Backend,
    args: &Args,
    server: &Server,
    db: &Db,
) -> anyhow::Result<Vec<String>> {
    let http = Http::new(&server.base)?;
    let (people, project) = setup_people(&http, server, 0, 0, backend).await?;
    progress(
        backend,
        "dropping the rollup triggers (no export reads a figure)",
    );
    drop_rollup_triggers(db).await?;
    progress(
        backend,
        format!(
            "bulk-loading {} items, {} per transaction",
            args.items, args.batch
        ),
    );
    let plan = LoadPlan {
        items: args.items,
        batch: args.batch,
    };
    let load = bulk_load(db, backend, &plan, project, &people.contributors).await?;
    check_sqlite_rows(db, project).await?;
    progress(
        backend,
        format!(
            "loaded in {:.1} s ({:.0} items/s)",
            load.seconds,
            args.items as f64 / load.seconds
        ),
    );
    let mut notes = vec![format!(
        "{} items loaded in {:.1} s; load average at start: {}",
        args.items,
        load.seconds,
        load_average()
    )];
    let blobs = server.outbox.with_file_name("blobs");
    let files = (args.export_files > 0).then_some((db, blobs.as_path(), args.export_files));
    notes.extend(
        exports::measure(
            &http,
            backend,
            project,
            &people.owner.token,
            args.items,
            &args.formats,
            files,
        )
        .await?,
    );
    Ok(notes)
}

async fn measure(backend: Backend, args: &Args) -> anyhow::Result<Vec<String>> {
    let fresh = Fresh {
        backend,
        database_url: &args.database_url,
        schema_prefix: "ex",
        keep: args.keep,
        monitor_seconds: None,
    };
    on_fresh_server(fresh, async |server, db| {
        run_on(backend, args, server, db).await
    })
    .await
}

#[tokio::main]
async fn main() -> ExitCode {
    alta::install_crypto_provider();
    bulk::set_bench("export");
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
    let (results, failed) = each_backend(backends, async |backend| {
        measure(backend, &args).await.map(|notes| (backend, notes))
    })
    .await;
    for (backend, notes) in &results {
        for note in notes {
            println!("{:<9} {note}", backend.name());
        }
    }
    println!();
    println!("reproduce: {}", args.command_line());
    if failed {
        eprintln!("error: at least one backend failed (see above)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
