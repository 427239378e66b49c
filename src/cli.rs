//! The `alta` command line.

use std::io::Read;

use alta_actors::{EngineRoles, clock::SystemClock, context::RequestContext};
use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{
    settings::Settings,
    startup::{self, Application},
    telemetry,
};

/// Alta Data backend. Configuration comes from the environment and `.env` (see README).
#[derive(Debug, Parser)]
#[command(name = "alta", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and run the job workers (the default).
    Serve,
    /// Run the job workers only (scale them apart from the API).
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Administration tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Export a project's items to a file, straight from the database (the same path
    /// as `POST /api/projects/{project_id}/exports`, without the API): JSON Lines, CSV,
    /// or a tar (with `--include-files`, and always for `hf`). A progress bar on a
    /// terminal, plain progress lines otherwise.
    Export(ExportArgs),
    /// Extract the text of one untrusted file (run by the job workers, not by people):
    /// the job comes as JSON on stdin, the answer goes to stdout. The limits apply to
    /// this process before anything is read.
    #[command(hide = true)]
    Extract {
        /// Address-space limit (RLIMIT_AS), bytes.
        #[arg(long)]
        memory_bytes: u64,
        /// CPU-time limit (RLIMIT_CPU), seconds.
        #[arg(long)]
        cpu_seconds: u64,
    },
}

/// `alta extract`: run before any async runtime or other thread exists (the child
/// limits itself and leaves the network, which needs a single thread). The exit code.
pub fn run_extract(memory_bytes: u64, cpu_seconds: u64) -> u8 {
    let code = alta_actors::processing::sandbox::child_main(
        alta_actors::processing::sandbox::ChildLimits {
            memory_bytes,
            cpu_seconds,
        },
    );
    u8::try_from(code).unwrap_or(2)
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The project.
    #[arg(long)]
    pub project: uuid::Uuid,
    /// `jsonl`, `csv`, `hf` (a Hugging Face folder; needs `--kind`) or `webdataset`.
    #[arg(long)]
    pub format: String,
    /// Where the file goes; a directory gets `export-<project>.<ext>` in it.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Review states to take (repeat; default `approved`).
    #[arg(long = "state")]
    pub states: Vec<String>,
    /// `document` or `audio`.
    #[arg(long)]
    pub kind: Option<String>,
    /// Put the files in the export (an archive).
    #[arg(long)]
    pub include_files: bool,
    /// The archive's container: `tar` (default) or `zip`.
    #[arg(long)]
    pub packaging: Option<String>,
    /// Train, validation and test ratios, e.g. `0.8,0.1,0.1`.
    #[arg(long)]
    pub split: Option<String>,
    /// Only items decided after this export of the project was made.
    #[arg(long)]
    pub since_export: Option<uuid::Uuid>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a verified super admin, or promote an existing account.
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: never pass it as an argument).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Rebuild the analytics rollups from the base tables (after an upgrade or a manual
    /// SQL fix), each project inside its actor, and report every figure corrected.
    Recount {
        /// Only this project (default: every project, deleted ones included).
        #[arg(long)]
        project: Option<uuid::Uuid>,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::from_env().map_err(|e| anyhow::anyhow!("configuration error: {e}"))?;
    telemetry::init_tracing(settings.log_format);
    // Before anything records a metric: values recorded earlier would be lost.
    let _ = telemetry::metrics_handle();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Extract {
            memory_bytes,
            cpu_seconds,
        } => match run_extract(memory_bytes, cpu_seconds) {
            0 => Ok(()),
            code => Err(anyhow::anyhow!("the extraction failed ({code})")),
        },
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until(startup::shutdown_signal()).await
        }
        Command::Worker => {
            let db = startup::connect_database(&settings).await?;
            let engine = startup::start_engine(
                &settings,
                db,
                std::sync::Arc::new(SystemClock),
                EngineRoles::WORKER,
            )
            .await?;
            tracing::info!(
                database = engine.database_backend(),
                metrics_port = settings.worker_metrics_port,
                "workers running"
            );
            // Workers serve no API, but SREs still scrape them.
            let result = startup::serve_worker_metrics(&settings, startup::shutdown_signal()).await;
            engine.shutdown().await;
            result
        }
        Command::Export(args) => export(&settings, args).await,
        Command::Migrate => {
            let db = startup::connect_database(&settings).await?;
            println!("migrations applied ({})", db.backend_name());
            db.close().await;
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::Recount { project },
        } => {
            let db = startup::connect_database(&settings).await?;
            let engine = startup::start_engine(
                &settings,
                db,
                std::sync::Arc::new(SystemClock),
                EngineRoles::ADMIN,
            )
            .await?;
            let result = engine
                .analytics()
                .recount(project, &RequestContext::internal("cli"))
                .await;
            engine.shutdown().await;
            let report = result.map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
            for p in &report.projects {
                for line in &p.differences {
                    println!("project {}: corrected {line}", p.project_id);
                }
            }
            println!(
                "recounted {} project(s); {} rollup row(s) corrected",
                report.projects.len(),
                report.corrected_rows()
            );
            Ok(())
        }
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    password_stdin: _,
                },
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.strip_suffix('\n').unwrap_or(&password);
            let password = password.strip_suffix('\r').unwrap_or(password);
            let db = startup::connect_database(&settings).await?;
            let engine = startup::start_engine(
                &settings,
                db,
                std::sync::Arc::new(SystemClock),
                EngineRoles::ADMIN,
            )
            .await?;
            let result = engine
                .accounts()
                .create_super_admin(&email, password, &RequestContext::internal("cli"))
                .await;
            engine.shutdown().await;
            let created = result.map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
            if created.created {
                println!("created super admin {email} ({})", created.user_id);
            } else {
                println!("promoted {email} ({}) to super admin", created.user_id);
            }
            Ok(())
        }
    }
}

/// `--split 0.8,0.1,0.1`.
fn parse_split(raw: &str) -> anyhow::Result<alta_actors::domain::export::Split> {
    let parts: Vec<f64> = raw
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--split takes three numbers, e.g. 0.8,0.1,0.1"))?;
    let [train, validation, test] = parts[..] else {
        anyhow::bail!("--split takes three numbers, e.g. 0.8,0.1,0.1");
    };
    Ok(alta_actors::domain::export::Split {
        train,
        validation,
        test,
    })
}

async fn export(settings: &Settings, args: ExportArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;

    let input = alta_actors::domain::export::ExportInput {
        format: args.format.clone(),
        states: (!args.states.is_empty()).then_some(args.states),
        kind: args.kind,
        include_files: args.include_files.then_some(true),
        split: args.split.as_deref().map(parse_split).transpose()?,
        since_export: args.since_export,
        packaging: args.packaging.clone(),
        ..Default::default()
    };
    let out = if args.out.is_dir() {
        let spec = alta_actors::domain::export::ExportSpec::parse(input.clone())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let ext = spec.artifact_type().0;
        args.out.join(format!("export-{}.{ext}", args.project))
    } else {
        args.out
    };
    let db = startup::connect_database(settings).await?;
    let engine = startup::start_engine(
        settings,
        db,
        std::sync::Arc::new(SystemClock),
        EngineRoles::ADMIN,
    )
    .await?;
    let terminal = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::new(0);
    if terminal {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} items, {msg}, {per_sec}, ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let started = std::time::Instant::now();
    let report = |p: alta_actors::exports::ExportProgress| {
        let mib = p.bytes as f64 / 1_048_576.0;
        if terminal {
            bar.set_length(p.items_total);
            bar.set_position(p.items_done);
            bar.set_message(format!("{mib:.1} MiB"));
        } else {
            let seconds = started.elapsed().as_secs_f64().max(0.001);
            let rate = p.items_done as f64 / seconds;
            let eta = if rate > 0.0 {
                format!(
                    "{:.0} s",
                    p.items_total.saturating_sub(p.items_done) as f64 / rate
                )
            } else {
                "?".to_owned()
            };
            eprintln!(
                "export: {}/{} items, {mib:.1} MiB, {rate:.0} items/s, ETA {eta}",
                p.items_done, p.items_total
            );
        }
    };
    let result = engine
        .exports()
        .export_to_file(args.project, input, &out, report)
        .await;
    bar.finish_and_clear();
    engine.shutdown().await;
    let done = result.map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
    println!(
        "exported {} items ({} bytes, sha256 {}) to {} in {:.1} s; export {} (--since-export takes it)",
        done.items,
        done.bytes,
        done.sha256,
        out.display(),
        started.elapsed().as_secs_f64(),
        done.export_id
    );
    Ok(())
}
