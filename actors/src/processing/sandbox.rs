//! Untrusted files are parsed in a child process, never in the server's.
//!
//! [`extract_isolated`] runs `alta extract` (the server's own executable, or
//! [`SandboxConfig::executable`]) with a cleared environment, in its own process group,
//! and hands it the job on stdin. The child ([`child_main`]) first limits itself
//! (`RLIMIT_AS`, `RLIMIT_CPU`, no core files), tries to leave the network (a new user and
//! network namespace, where the kernel allows it), then reads the file and runs
//! [`local_ocr::extract`]; `pdftoppm` and `tesseract` inherit its limits. It answers one
//! JSON line on stdout. The parent keeps a wall-clock deadline and kills the whole group
//! when it passes. A child that dies of a signal (out of memory, out of CPU) is a final
//! `resource_limit`, not something to retry.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::local_ocr::{self, ExtractError, Extraction, LocalOcrConfig};
use crate::metrics as m;

/// Extra wall-clock time the parent grants over [`LocalOcrConfig::timeout`] (the child
/// keeps that deadline itself and reports `extract_timeout`).
const DEADLINE_GRACE: Duration = Duration::from_secs(5);
/// Most stderr bytes kept from the child (for the error message).
const STDERR_KEEP_BYTES: usize = 8 * 1024;
/// Most bytes of a job description on the child's stdin.
const MAX_REQUEST_BYTES: u64 = 1024 * 1024;
/// The first argument that makes the `alta` binary the extractor.
pub const SUBCOMMAND: &str = "extract";

/// How the extractor child is run and limited.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The `alta` executable to run as `alta extract` (`EXTRACT_EXECUTABLE`).
    pub executable: PathBuf,
    /// Address-space limit of the child and its tools (`EXTRACT_MEMORY_MB`).
    pub memory_bytes: u64,
    /// CPU-time limit of the child, and of each tool it runs (`EXTRACT_CPU_SECONDS`).
    pub cpu_seconds: u64,
}

/// What the parent asks of the child (on its stdin).
#[derive(Debug, Serialize, Deserialize)]
pub struct ChildRequest {
    pub path: PathBuf,
    pub detected_type: String,
    pub config: LocalOcrConfig,
}

/// What the child answers (one JSON document on its stdout).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ChildReply {
    Text {
        text: String,
        pages: Vec<String>,
        engine: String,
        confidence: Option<f64>,
    },
    Error {
        code: String,
        message: String,
    },
}

/// The limits as `alta extract` arguments (applied before anything is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildLimits {
    pub memory_bytes: u64,
    pub cpu_seconds: u64,
}

fn engine_name(engine: &str) -> Option<&'static str> {
    [
        local_ocr::ENGINE_PLAIN_TEXT,
        local_ocr::ENGINE_PDF_TEXT_LAYER,
        local_ocr::ENGINE_DOCX,
        local_ocr::ENGINE_TESSERACT,
    ]
    .into_iter()
    .find(|e| *e == engine)
}

/// Codes of a refused file (a limit hit), counted in [`m::EXTRACT_REFUSALS_TOTAL`].
const REFUSALS: [&str; 7] = [
    "resource_limit",
    "page_too_large",
    "too_many_pages",
    "page_timeout",
    "extract_timeout",
    "text_too_large",
    "extract_crashed",
];

/// Extracts the text of `path` in a limited child process.
pub async fn extract_isolated(
    sandbox: &SandboxConfig,
    cfg: &LocalOcrConfig,
    path: &Path,
    detected_type: &str,
) -> Result<Extraction, ExtractError> {
    let result = run_child(sandbox, cfg, path, detected_type).await;
    if let Err(err) = &result {
        let code = err.code();
        if REFUSALS.contains(&code) {
            metrics::counter!(m::EXTRACT_REFUSALS_TOTAL, "reason" => code).increment(1);
        }
    }
    result
}

async fn run_child(
    sandbox: &SandboxConfig,
    cfg: &LocalOcrConfig,
    path: &Path,
    detected_type: &str,
) -> Result<Extraction, ExtractError> {
    let request = serde_json::to_vec(&ChildRequest {
        path: path.to_owned(),
        detected_type: detected_type.to_owned(),
        config: cfg.clone(),
    })
    .map_err(|e| ExtractError::Internal(e.to_string()))?;
    let mut cmd = tokio::process::Command::new(&sandbox.executable);
    cmd.arg(SUBCOMMAND)
        .arg("--memory-bytes")
        .arg(sandbox.memory_bytes.to_string())
        .arg("--cpu-seconds")
        .arg(sandbox.cpu_seconds.to_string())
        // Nothing of the server's environment (secrets, proxies, credentials).
        .env_clear()
        .env("LC_ALL", "C")
        // One malloc arena per thread would reserve address space for nothing.
        .env("MALLOC_ARENA_MAX", "2")
        // mimalloc (the `alta` binary's allocator) reserves 1 GiB of address space for its
        // first arena, before the child sets RLIMIT_AS: the limit would then leave no room
        // even for a thread stack. Reserve in small steps instead.
        .env("MIMALLOC_ARENA_RESERVE", "16MiB")
        // Tesseract's OpenMP threads: one page at a time is enough.
        .env("OMP_THREAD_LIMIT", "1")
        .current_dir(path.parent().unwrap_or(Path::new("/")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(tessdata) = std::env::var_os("TESSDATA_PREFIX") {
        cmd.env("TESSDATA_PREFIX", tessdata);
    }
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|e| {
        metrics::counter!(m::EXTRACT_CHILD_ERRORS_TOTAL, "error" => "spawn").increment(1);
        ExtractError::Internal(format!(
            "cannot start the extractor {}: {e}",
            sandbox.executable.display()
        ))
    })?;
    let group = child.id();
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(ExtractError::Internal("extractor pipes missing".into()));
    };
    // The answer holds the text twice (whole and by page), JSON-escaped.
    let stdout_limit = cfg
        .max_text_bytes
        .saturating_mul(16)
        .saturating_add(1024 * 1024);
    let run = async {
        // A child that dies early closes its stdin: that is its exit status's business.
        let _ = stdin.write_all(&request).await;
        drop(stdin);
        let (out, err) = tokio::join!(read_capped(stdout, stdout_limit), read_tail(stderr));
        let status = child.wait().await;
        (status, out, err)
    };
    let budget = cfg.timeout.saturating_add(DEADLINE_GRACE);
    let outcome = tokio::time::timeout(budget, run).await;
    // Whatever happened, nothing of the group outlives the extraction (a tool the child
    // started, when the child itself was killed).
    kill_group(group);
    let Ok((status, out, err)) = outcome else {
        return Err(ExtractError::Timeout(cfg.timeout));
    };
    let status = status.map_err(|e| ExtractError::Internal(format!("extractor: {e}")))?;
    let tail = String::from_utf8_lossy(&err);
    let tail = tail.trim();
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return Err(ExtractError::ResourceLimit(format!(
            "the extractor was stopped by signal {signal} (memory limit {} MiB, CPU limit {} s){}{}",
            sandbox.memory_bytes / (1024 * 1024),
            sandbox.cpu_seconds,
            if tail.is_empty() { "" } else { ": " },
            last_line(tail),
        )));
    }
    let reply = out
        .ok()
        .and_then(|bytes| serde_json::from_slice::<ChildReply>(&bytes).ok());
    match reply {
        Some(ChildReply::Text {
            text,
            pages,
            engine,
            confidence,
        }) if status.success() => Ok(Extraction {
            text,
            pages,
            engine: engine_name(&engine).ok_or_else(|| {
                ExtractError::Internal(format!("the extractor named engine {engine:?}"))
            })?,
            confidence,
        }),
        Some(ChildReply::Error { code, message }) => Err(ExtractError::reported(&code, message)),
        _ => {
            metrics::counter!(m::EXTRACT_CHILD_ERRORS_TOTAL, "error" => "no_answer").increment(1);
            tracing::warn!(%status, stderr = %tail, "the extractor gave no answer");
            Err(ExtractError::Crashed(format!(
                "exited with {status} without an answer{}{}",
                if tail.is_empty() { "" } else { ": " },
                last_line(tail)
            )))
        }
    }
}

fn last_line(text: &str) -> String {
    let line = text.lines().last().unwrap_or("");
    line.chars().take(300).collect()
}

#[cfg(unix)]
fn kill_group(group: Option<u32>) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    if let Some(id) = group.and_then(|id| i32::try_from(id).ok()) {
        // Gone already (ESRCH) is the usual case.
        let _ = killpg(Pid::from_raw(id), Signal::SIGKILL);
    }
}

#[cfg(not(unix))]
fn kill_group(_group: Option<u32>) {}

async fn read_capped<R: tokio::io::AsyncRead + Unpin>(
    reader: R,
    limit: usize,
) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .await?;
    if u64::try_from(buf.len()).unwrap_or(u64::MAX) > limit {
        return Err(std::io::Error::other("the extractor's answer is too large"));
    }
    Ok(buf)
}

async fn read_tail<R: tokio::io::AsyncRead + Unpin>(mut reader: R) -> Vec<u8> {
    let mut tail = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(n) => n,
            Err(_) => return tail,
        };
        let Some(read) = chunk.get(..n).filter(|r| !r.is_empty()) else {
            return tail;
        };
        tail.extend_from_slice(read);
        if tail.len() > STDERR_KEEP_BYTES {
            tail.drain(..tail.len() - STDERR_KEEP_BYTES);
        }
    }
}

/// The address space this process maps now (`VmSize`), where the system says.
#[cfg(unix)]
fn mapped_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Applies the limits to this process (and so to every program it starts).
#[cfg(unix)]
fn limit_self(limits: ChildLimits) -> Result<(), String> {
    use nix::sys::resource::{Resource, setrlimit};
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(|e| format!("RLIMIT_CORE: {e}"))?;
    // The limit is for the work: on top of what the process already maps (its own image
    // and libraries, which grow with the binary and are not the file's doing).
    let address_space = mapped_bytes()
        .unwrap_or(0)
        .saturating_add(limits.memory_bytes);
    setrlimit(Resource::RLIMIT_AS, address_space, address_space)
        .map_err(|e| format!("RLIMIT_AS: {e}"))?;
    // SIGXCPU at the soft limit, SIGKILL a little later.
    setrlimit(
        Resource::RLIMIT_CPU,
        limits.cpu_seconds,
        limits.cpu_seconds.saturating_add(5),
    )
    .map_err(|e| format!("RLIMIT_CPU: {e}"))?;
    Ok(())
}

#[cfg(not(unix))]
fn limit_self(_limits: ChildLimits) -> Result<(), String> {
    Err("resource limits need a Unix system".into())
}

/// Leaves the network: a new user namespace (so no privilege is needed) with a new,
/// empty network namespace. Best effort: `false` where the kernel refuses (some
/// containers). Must run while the process has one thread.
#[cfg(target_os = "linux")]
fn leave_network() -> bool {
    use nix::sched::{CloneFlags, unshare};
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).is_ok()
        || unshare(CloneFlags::CLONE_NEWNET).is_ok()
}

#[cfg(not(target_os = "linux"))]
fn leave_network() -> bool {
    false
}

/// `alta extract`: the child's whole life. Call it before any other thread starts.
/// Returns the process exit code (0 with an answer on stdout; 2 when it could not even
/// start, the reason on stderr).
pub fn child_main(limits: ChildLimits) -> i32 {
    if let Err(e) = limit_self(limits) {
        eprintln!("alta extract: cannot limit resources: {e}");
        return 2;
    }
    let isolated = leave_network();
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin()
        .take(MAX_REQUEST_BYTES)
        .read_to_end(&mut input)
    {
        eprintln!("alta extract: cannot read the request: {e}");
        return 2;
    }
    let request: ChildRequest = match serde_json::from_slice(&input) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("alta extract: invalid request: {e}");
            return 2;
        }
    };
    if !isolated {
        eprintln!("alta extract: no network namespace available; running without one");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("alta extract: cannot start: {e}");
            return 2;
        }
    };
    let result = runtime.block_on(local_ocr::extract(
        &request.path,
        &request.detected_type,
        &request.config,
    ));
    let reply = match result {
        Ok(x) => ChildReply::Text {
            text: x.text,
            pages: x.pages,
            engine: x.engine.to_owned(),
            confidence: x.confidence,
        },
        Err(e) => ChildReply::Error {
            code: e.code().to_owned(),
            message: e.to_string(),
        },
    };
    let mut stdout = std::io::stdout().lock();
    match serde_json::to_writer(&mut stdout, &reply)
        .and_then(|()| stdout.flush().map_err(serde_json::Error::io))
    {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("alta extract: cannot answer: {e}");
            2
        }
    }
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for `alta extract`: a shell script.
    fn fake(dir: &tempfile::TempDir, name: &str, script: &str) -> SandboxConfig {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        SandboxConfig {
            executable: path,
            memory_bytes: 256 * 1024 * 1024,
            cpu_seconds: 10,
        }
    }

    fn cfg() -> LocalOcrConfig {
        let mut cfg = LocalOcrConfig::discover();
        cfg.timeout = Duration::from_secs(30);
        cfg
    }

    async fn code(sandbox: &SandboxConfig, cfg: &LocalOcrConfig) -> &'static str {
        match extract_isolated(sandbox, cfg, Path::new("/nonexistent"), "pdf").await {
            Ok(x) => panic!("expected an error, got {x:?}"),
            Err(e) => e.code(),
        }
    }

    #[tokio::test]
    async fn the_child_outcome_becomes_the_extraction_outcome() {
        let dir = tempfile::tempdir().unwrap();
        // Killed for its resources (the kernel's SIGKILL at the CPU limit, an abort when
        // memory runs out): final.
        let killed = fake(&dir, "killed", "cat >/dev/null; kill -9 $$");
        assert_eq!(code(&killed, &cfg()).await, "resource_limit");
        let aborted = fake(&dir, "aborted", "cat >/dev/null; kill -ABRT $$");
        assert_eq!(code(&aborted, &cfg()).await, "resource_limit");
        // Its arguments are the limits, its environment is empty.
        let args = fake(
            &dir,
            "args",
            r#"cat >/dev/null; [ "$1 $2 $3 $4 $5" = "extract --memory-bytes 268435456 --cpu-seconds 10" ] || exit 9
               [ -z "$HOME" ] && [ -z "$DATABASE_URL" ] || exit 9
               printf '{"outcome":"text","text":"hi","pages":["hi"],"engine":"plain_text","confidence":null}'"#,
        );
        let x = extract_isolated(&args, &cfg(), Path::new("/x"), "plain_text")
            .await
            .unwrap();
        assert_eq!((x.text.as_str(), x.engine), ("hi", "plain_text"));
        // A reported error keeps its code; transient ones stay transient.
        let reported = fake(
            &dir,
            "reported",
            r#"cat >/dev/null; printf '{"outcome":"error","code":"page_too_large","message":"page 2 is big"}'"#,
        );
        match extract_isolated(&reported, &cfg(), Path::new("/x"), "pdf").await {
            Err(e) => {
                assert_eq!(e.code(), "page_too_large");
                assert_eq!(e.to_string(), "page 2 is big");
                assert!(!e.is_transient());
            }
            Ok(x) => panic!("{x:?}"),
        }
        // No answer: crashed, final.
        let silent = fake(&dir, "silent", "cat >/dev/null; echo oops >&2; exit 3");
        assert_eq!(code(&silent, &cfg()).await, "extract_crashed");
        // Past its deadline: killed, with the group.
        let slow = fake(&dir, "slow", "cat >/dev/null; sleep 600");
        let mut hurried = cfg();
        hurried.timeout = Duration::ZERO;
        assert_eq!(code(&slow, &hurried).await, "extract_timeout");
        // Not there at all: retried (a deployment problem, not the file's).
        let missing = SandboxConfig {
            executable: dir.path().join("missing"),
            ..killed
        };
        let err = extract_isolated(&missing, &cfg(), Path::new("/x"), "pdf")
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
    }
}
