//! Memory after bursts: starts a throw-away `alta serve` (SQLite in a temp dir), reads
//! its resident memory (VmRSS in /proc/PID/status) before a burst of logins and
//! registrations, right after it, and again after a pause, and prints the numbers as
//! JSON. Each login and registration hashes a password with argon2 (19 MiB a hash),
//! which is what used to stay resident under glibc's allocator.
//!
//!   cargo bench --bench memory -- [--bin PATH] [--logins 200] [--registrations 200]
//!                                 [--concurrency 16] [--settle-seconds 60]
//!
//! `--bin` defaults to the `alta` built with the bench (release) profile; pass
//! `$CARGO_TARGET_DIR/debug/alta` to measure a debug build (argon2 is optimised there
//! too). Linux only (/proc). Nothing is asserted: it reports.

use std::{
    io::Write,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use futures::{StreamExt, stream};
use reqwest::Client;
use serde_json::json;

#[derive(Parser, Debug)]
struct Args {
    /// The `alta` binary to run.
    #[arg(long)]
    bin: Option<PathBuf>,
    #[arg(long, default_value_t = 200)]
    logins: usize,
    #[arg(long, default_value_t = 200)]
    registrations: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to wait after the burst before the last reading.
    #[arg(long, default_value_t = 60)]
    settle_seconds: u64,
    /// `cargo bench` passes `--bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const EMAIL: &str = "bench-admin@example.org";
const PASSWORD: &str = "violet tangent harbour 42";

/// The server process; killed when dropped.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("reading /proc/PID/status (Linux only)")?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmRSS line")
    }

    fn port(&self) -> Option<u16> {
        std::fs::read_to_string(&self.log)
            .ok()?
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["fields"]["message"] == "serving")
            .and_then(|l| l["fields"]["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
    }
}

fn alta(bin: &PathBuf, dir: &tempfile::TempDir) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", dir.path())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("alta.db").display()),
        )
        .env("SECRET_KEY", "memory-bench-secret-key-0123456789abcdef")
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("RATE_LIMIT_AUTH_PER_IP", "1000000/min")
        .env("RATE_LIMIT_AUTH_PER_ACCOUNT", "1000000/min")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn,alta::startup=info");
    cmd
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = args
        .bin
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_alta")));
    let dir = tempfile::TempDir::new()?;

    let mut admin = alta(&bin, &dir)
        .args(["admin", "create", "--email", EMAIL, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("running {}", bin.display()))?;
    admin
        .stdin
        .take()
        .context("stdin")?
        .write_all(PASSWORD.as_bytes())?;
    if !admin.wait()?.success() {
        bail!("alta admin create failed");
    }

    let log = dir.path().join("server.log");
    let out = std::fs::File::create(&log)?;
    let child = alta(&bin, &dir)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    let server = Server { child, log };
    let deadline = Instant::now() + Duration::from_secs(60);
    let port = loop {
        if let Some(port) = server.port() {
            break port;
        }
        if Instant::now() > deadline {
            bail!("the server did not log its port");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new();
    client.get(format!("{base}/health")).send().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = server.rss_kib()?;
    eprintln!("[memory] RSS before: {} MiB", mib(before));

    let started = Instant::now();
    let login_failures = stream::iter(0..args.logins)
        .map(|_| {
            let client = client.clone();
            let url = format!("{base}/api/auth/login");
            async move {
                client
                    .post(url)
                    .json(&json!({"email": EMAIL, "password": PASSWORD}))
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        })
        .buffer_unordered(args.concurrency)
        .filter(|ok| std::future::ready(!ok))
        .count()
        .await;
    let after_logins = server.rss_kib()?;
    eprintln!(
        "[memory] RSS after {} logins: {} MiB",
        args.logins,
        mib(after_logins)
    );
    let registration_failures = stream::iter(0..args.registrations)
        .map(|i| {
            let client = client.clone();
            let url = format!("{base}/api/auth/register");
            async move {
                client
                    .post(url)
                    .json(&json!({
                        "email": format!("bench-{i}@example.org"),
                        "password": PASSWORD,
                    }))
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        })
        .buffer_unordered(args.concurrency)
        .filter(|ok| std::future::ready(!ok))
        .count()
        .await;
    let burst_seconds = started.elapsed().as_secs_f64();
    let after_burst = server.rss_kib()?;
    eprintln!(
        "[memory] RSS after {} registrations: {} MiB; waiting {} s",
        args.registrations,
        mib(after_burst),
        args.settle_seconds
    );
    tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
    let settled = server.rss_kib()?;

    let report = json!({
        "binary": bin.display().to_string(),
        "logins": args.logins,
        "login_failures": login_failures,
        "registrations": args.registrations,
        "registration_failures": registration_failures,
        "concurrency": args.concurrency,
        "burst_seconds": (burst_seconds * 10.0).round() / 10.0,
        "rss_mib": {
            "before": mib(before),
            "after_logins": mib(after_logins),
            "after_registrations": mib(after_burst),
            "after_settle": mib(settled),
        },
        "settle_seconds": args.settle_seconds,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
