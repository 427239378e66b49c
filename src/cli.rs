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
