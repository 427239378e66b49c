//! Throughput driver for a running Alta Data server.
//!
//! Runs one or more scenarios, each for a fixed wall-clock duration, with a fixed
//! number of concurrent tokio tasks sharing one HTTP client, and prints a single JSON
//! report to stdout (one human-readable line per scenario goes to stderr).
//!
//! ```text
//! cargo bench --bench throughput -- \
//!     --url http://127.0.0.1:8000 --email bench@example.com --password '...' \
//!     --concurrency 16 --seconds 10 --scenarios health,me,login --label sqlite
//! ```
//!
//! Scenarios (the first three run by default, the upload ones only when named):
//! - `health`: `GET /health`
//! - `me`: `GET /api/auth/me` with a bearer token obtained by one login beforehand
//! - `login`: `POST /api/auth/login` on every request (argon2-bound; the server's
//!   per-account and per-IP login limits apply, 429s are counted as `rate_limited`)
//! - `passkey_login`: a passkey sign-in, `POST /api/auth/passkeys/login {email}` then
//!   `…/login/verify` with a software passkey's signed answer (webauthn-authenticator-rs),
//!   counted as one sign-in. Each task registers its own passkey first (at most 20 per
//!   account, so `--concurrency` ≤ 20): one passkey answering two ceremonies at once
//!   would be taken for a clone (its counter would go back). The server must allow
//!   `--webauthn-origin` (its default, `http://localhost:3000`, is a default server's).
//! - `upload_1k`: `POST /api/documents`, a multipart upload of 1 KiB of `text/plain`
//!   that differs on every request (the server refuses the same content twice in a
//!   project), into a project created for the scenario. The account must be allowed to
//!   create projects (e.g. a super admin, as `run.sh` makes it).
//! - `upload_big`: ONE streamed upload of a generated WAV of `--big-mib` MiB (16-bit
//!   PCM, stereo, 48 kHz, a quiet 375 Hz tone) to `POST /api/voice`, into a project
//!   created for it. The file is produced chunk by chunk while it is sent and never held
//!   in memory. `--concurrency` and `--seconds` do not apply; the report adds an
//!   `upload` object (bytes, time, MiB/s, status, measured audio duration). The
//!   server's `MAX_UPLOAD_BYTES` and the project's audio limit (1 GiB by default) must
//!   allow the size.
//!
//! - `annotate`: `PUT /api/documents/{id}/annotation` (a label and two spans) on
//!   `ANNOTATE_ITEMS` ready 1 KiB documents in turn, in a project created for the
//!   scenario with a label schema; each request writes a new annotation revision.
//!
//! Latency covers sending the request and reading the whole response body. A request
//! still in flight when a scenario's deadline passes is abandoned and not counted, so
//! every scenario takes at most `--seconds`. Percentiles (nearest rank) are computed
//! over every completed request, whatever its outcome. 429 counts as `rate_limited`
//! and 503 (server busy, e.g. all upload slots taken) as `busy`, in every scenario;
//! neither is retried or waited out, and `rps` counts every completed request.

use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use webauthn_authenticator_rs::{
    prelude::{CreationChallengeResponse, RequestChallengeResponse, Url, WebauthnAuthenticator},
    softpasskey::SoftPasskey,
};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use reqwest::multipart::{Form, Part};
use reqwest::{Client, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, timeout_at};

/// Upper bound on any single request, so a stuck connection becomes a counted error
/// instead of silently stalling a task (the scenario deadline applies as well).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How many times the initial login (for the `me` scenario) is retried after a 429.
const LOGIN_ATTEMPTS: u32 = 5;

/// Longest Retry-After the initial login is willing to honour.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Upper bound on the single `upload_big` request (transfer plus the server's analysis).
const BIG_UPLOAD_TIMEOUT: Duration = Duration::from_secs(3600);

const MIB: u64 = 1024 * 1024;

/// Size of every `upload_1k` file.
const SMALL_UPLOAD_BYTES: usize = 1024;

/// Text repeated to pad each `upload_1k` file after its unique first line.
const FILLER: &[u8] = b"Habari za asubuhi. The quick brown fox jumps over the lazy dog.\n";

/// The generated WAV: 16-bit PCM, stereo, 48 kHz.
const WAV_SAMPLE_RATE: u32 = 48_000;
const WAV_CHANNELS: u16 = 2;
const WAV_BITS: u16 = 16;
const WAV_BLOCK_ALIGN: u16 = WAV_CHANNELS * (WAV_BITS / 8);
const WAV_HEADER_BYTES: u64 = 44;

/// Bytes of sample data per stream chunk (16384 frames).
const WAV_CHUNK_BYTES: usize = 64 * 1024;

/// Frames per period of the tone: 48000 / 128 = 375 Hz. A chunk holds a whole number
/// of periods, so one precomputed chunk repeats without a discontinuity.
const TONE_PERIOD_FRAMES: usize = 128;

/// Tone amplitude relative to full scale (about -20 dBFS).
const TONE_AMPLITUDE: f64 = 0.1;

/// Command-line options, given after `cargo bench --bench throughput --`.
/// (No `Debug`: it holds the password.)
#[derive(Parser)]
#[command(
    name = "throughput",
    about = "HTTP throughput driver for the Alta Data API"
)]
struct Args {
    /// Base URL of the server under test.
    #[arg(long, env = "ALTA_BENCH_URL", default_value = "http://127.0.0.1:8000")]
    url: String,

    /// Email of an existing, verified account (needed by the `me` and `login` scenarios).
    #[arg(long, env = "ALTA_BENCH_EMAIL")]
    email: Option<String>,

    /// Password of that account.
    #[arg(long, env = "ALTA_BENCH_PASSWORD", hide_env_values = true)]
    password: Option<String>,

    /// Number of concurrent request loops per scenario.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    concurrency: u32,

    /// Duration of each scenario, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    seconds: u64,

    /// Scenarios to run, in order (comma-separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "health,me,login"
    )]
    scenarios: Vec<Scenario>,

    /// Size of the `upload_big` file in MiB (the default fits the default per-project
    /// audio limit of 1 GiB).
    #[arg(long, default_value_t = 1023, value_parser = clap::value_parser!(u64).range(1..=4095))]
    big_mib: u64,

    /// Free text copied into the report (e.g. "sqlite" or "postgres").
    #[arg(long, default_value = "")]
    label: String,

    /// The page origin the software passkey reports (`passkey_login`); the server must
    /// allow it (`WEBAUTHN_ORIGINS`).
    #[arg(long, default_value = "http://localhost:3000")]
    webauthn_origin: String,

    /// Passed by `cargo bench` to every bench target; accepted and ignored.
    #[arg(long = "bench", hide = true)]
    _bench: bool,
}

/// One benchmarked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// `GET /health`
    Health,
    /// `GET /api/auth/me` with a bearer token
    Me,
    /// `POST /api/auth/login`
    Login,
    /// Passkey sign-in: `…/passkeys/login` then `…/passkeys/login/verify`
    #[value(name = "passkey_login")]
    PasskeyLogin,
    /// `POST /api/documents` with 1 KiB of unique text
    #[value(name = "upload_1k")]
    Upload1k,
    /// One streamed `POST /api/voice` of `--big-mib` MiB
    #[value(name = "upload_big")]
    UploadBig,
    /// `PUT /api/documents/{id}/annotation` on ready documents in turn
    Annotate,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Me => "me",
            Self::Login => "login",
            Self::PasskeyLogin => "passkey_login",
            Self::Upload1k => "upload_1k",
            Self::UploadBig => "upload_big",
            Self::Annotate => "annotate",
        }
    }

    fn needs_credentials(self) -> bool {
        matches!(
            self,
            Self::Me
                | Self::Login
                | Self::PasskeyLogin
                | Self::Upload1k
                | Self::UploadBig
                | Self::Annotate
        )
    }
}

/// Request body of `POST /api/auth/login`.
#[derive(Clone, Serialize)]
struct Credentials {
    email: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The part of the login response the driver needs.
#[derive(Debug, Deserialize)]
struct LoginResponse {
    access_token: String,
}

/// The part of the project-creation response the driver needs.
#[derive(Debug, Deserialize)]
struct ProjectCreated {
    id: String,
}

/// How a scenario runs once its setup (login, project) is done.
enum Plan {
    /// Request loops on `concurrency` tasks for `seconds`.
    Loop(Target),
    /// The single `upload_big` request.
    BigUpload { token: String, project_id: String },
    /// Passkey sign-ins: one software passkey per task.
    PasskeyLogins {
        email: String,
        keys: Vec<SoftPasskey>,
    },
}

/// A fully prepared request kind, shared by the tasks of one scenario.
enum Target {
    Health {
        url: String,
    },
    Me {
        url: String,
        token: String,
    },
    Login {
        url: String,
        credentials: Credentials,
    },
    SmallUpload {
        url: String,
        token: String,
        project_id: String,
        /// Random per scenario, so files differ from those of any earlier run.
        prefix: String,
        /// Numbers the files, so they differ within the run.
        counter: AtomicU64,
    },
    Annotate {
        /// `…/api/documents/{id}/annotation` of each ready document.
        urls: Vec<String>,
        token: String,
        counter: AtomicU64,
    },
}

impl Target {
    fn request(&self, client: &Client) -> reqwest::Result<reqwest::RequestBuilder> {
        Ok(match self {
            Self::Health { url } => client.get(url),
            Self::Me { url, token } => client.get(url).bearer_auth(token),
            Self::Login { url, credentials } => client.post(url).json(credentials),
            Self::Annotate {
                urls,
                token,
                counter,
            } => {
                let n = counter.fetch_add(1, Ordering::Relaxed) as usize;
                let stars = (n % 5) + 1;
                client.put(&urls[n % urls.len()]).bearer_auth(token).json(
                    &serde_json::json!({"values": {
                        "sentiment": if n.is_multiple_of(2) { "pos" } else { "neg" },
                        "stars": stars,
                        "entities": [
                            {"start": 0, "end": 4, "label": "PER"},
                            {"start": 5, "end": 10, "label": "LOC"},
                        ],
                    }}),
                )
            }
            Self::SmallUpload {
                url,
                token,
                project_id,
                prefix,
                counter,
            } => {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let part = Part::bytes(small_file(prefix, n))
                    .file_name("bench.txt")
                    .mime_str("text/plain")?;
                let form = Form::new()
                    .text("project_id", project_id.clone())
                    .part("file", part);
                client.post(url).bearer_auth(token).multipart(form)
            }
        })
    }
}

/// Documents the `annotate` scenario labels in turn.
const ANNOTATE_ITEMS: u64 = 64;

/// For `annotate`: a label schema on the project, and `ANNOTATE_ITEMS` 1 KiB documents
/// uploaded and processed (`ready`); the annotation URL of each.
async fn ready_documents(
    client: &Client,
    base: &str,
    token: &str,
    project_id: &str,
) -> anyhow::Result<Vec<String>> {
    let schema = serde_json::json!({"fields": [
        {"name": "sentiment", "type": "label", "options": ["pos", "neg", "neu"]},
        {"name": "stars", "type": "rating", "min": 1, "max": 5},
        {"name": "entities", "type": "spans", "options": ["PER", "LOC"]},
    ]});
    let url = format!("{base}/api/projects/{project_id}/label-schema");
    let resp = client
        .put(&url)
        .bearer_auth(token)
        .json(&schema)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("PUT {url}: HTTP {}", resp.status());
    }
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    let mut ids = Vec::new();
    for n in 0..ANNOTATE_ITEMS {
        let part = Part::bytes(small_file(&prefix, n))
            .file_name("bench.txt")
            .mime_str("text/plain")?;
        let form = Form::new()
            .text("project_id", project_id.to_owned())
            .part("file", part);
        let resp = client
            .post(format!("{base}/api/documents"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await?;
        if !status.is_success() {
            bail!("upload for annotate: HTTP {status}: {body}");
        }
        ids.push(
            body["id"]
                .as_str()
                .context("upload answer without id")?
                .to_owned(),
        );
    }
    for id in &ids {
        let url = format!("{base}/api/documents/{id}");
        let waited = Instant::now();
        loop {
            let item: serde_json::Value = client
                .get(&url)
                .bearer_auth(token)
                .send()
                .await?
                .json()
                .await?;
            match item["status"].as_str() {
                Some("ready") => break,
                Some("uploaded" | "processing") if waited.elapsed() < Duration::from_secs(120) => {
                    sleep(Duration::from_millis(50)).await;
                }
                other => bail!("document {id} did not become ready: {other:?}"),
            }
        }
    }
    Ok(ids
        .into_iter()
        .map(|id| format!("{base}/api/documents/{id}/annotation"))
        .collect())
}

/// `SMALL_UPLOAD_BYTES` of ASCII text whose first line is unique to (`prefix`, `n`).
fn small_file(prefix: &str, n: u64) -> Vec<u8> {
    let mut text = format!("alta bench {prefix} file {n}\n").into_bytes();
    while text.len() < SMALL_UPLOAD_BYTES {
        let take = (SMALL_UPLOAD_BYTES - text.len()).min(FILLER.len());
        text.extend_from_slice(&FILLER[..take]);
    }
    text.truncate(SMALL_UPLOAD_BYTES);
    text
}

/// How one completed request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    RateLimited,
    /// 503: the server refused for lack of capacity (it sends `Retry-After`).
    Busy,
    Error,
}

impl Outcome {
    fn from_status(status: StatusCode) -> Self {
        if status.is_success() {
            Self::Ok
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            Self::RateLimited
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            Self::Busy
        } else {
            Self::Error
        }
    }
}

/// What one task observed during a scenario.
#[derive(Debug, Default)]
struct TaskResult {
    /// Latency of every completed request, in microseconds.
    latencies_us: Vec<u64>,
    ok: u64,
    rate_limited: u64,
    busy: u64,
    errors: u64,
    /// First failure seen by this task, for the stderr summary.
    first_error: Option<String>,
}

impl TaskResult {
    fn record(&mut self, latency: Duration, outcome: Outcome, error: impl FnOnce() -> String) {
        self.latencies_us
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::RateLimited => self.rate_limited += 1,
            Outcome::Busy => self.busy += 1,
            Outcome::Error => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(error());
                }
            }
        }
    }

    fn merge(&mut self, other: Self) {
        self.latencies_us.extend(other.latencies_us);
        self.ok += other.ok;
        self.rate_limited += other.rate_limited;
        self.busy += other.busy;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The JSON document printed to stdout.
#[derive(Debug, Serialize)]
struct Report {
    label: String,
    url: String,
    concurrency: u32,
    seconds: u64,
    scenarios: Vec<ScenarioReport>,
}

/// Results of one scenario.
#[derive(Debug, Serialize)]
struct ScenarioReport {
    name: &'static str,
    requests: u64,
    ok: u64,
    rate_limited: u64,
    busy: u64,
    errors: u64,
    rps: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// `upload_big` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    upload: Option<BigUploadReport>,
}

/// What the single `upload_big` request did.
#[derive(Debug, Serialize)]
struct BigUploadReport {
    /// Size of the file (the multipart framing around it is not counted).
    bytes: u64,
    /// HTTP status; absent when the request failed in transport.
    status: Option<u16>,
    /// From the start of the request to the end of the response body, which includes
    /// the server's hashing, type detection and audio analysis after the transfer.
    seconds: f64,
    mib_per_s: f64,
    /// From the start of the request until the last byte of the file was handed to the
    /// HTTP client (absent if the file was not sent in full).
    send_seconds: Option<f64>,
    send_mib_per_s: Option<f64>,
    /// Duration implied by the generated header.
    expected_duration_seconds: f64,
    /// `audio.duration_seconds` from the response.
    audio_duration_seconds: Option<f64>,
}

impl ScenarioReport {
    fn new(name: &'static str, mut result: TaskResult, elapsed: Duration) -> Self {
        result.latencies_us.sort_unstable();
        let sorted = &result.latencies_us;
        let requests = result.ok + result.rate_limited + result.busy + result.errors;
        let secs = elapsed.as_secs_f64();
        let rps = if secs > 0.0 {
            requests as f64 / secs
        } else {
            0.0
        };
        Self {
            name,
            requests,
            ok: result.ok,
            rate_limited: result.rate_limited,
            busy: result.busy,
            errors: result.errors,
            rps: round3(rps),
            p50_ms: percentile_ms(sorted, 500),
            p95_ms: percentile_ms(sorted, 950),
            p99_ms: percentile_ms(sorted, 990),
            max_ms: sorted.last().map_or(0.0, |&us| us_to_ms(us)),
            upload: None,
        }
    }

    fn summary_line(&self) -> String {
        let mut line = format!(
            "{:<10} requests={} ok={} rate_limited={} busy={} errors={} rps={:.1} \
             p50={:.2}ms p95={:.2}ms p99={:.2}ms max={:.2}ms",
            self.name,
            self.requests,
            self.ok,
            self.rate_limited,
            self.busy,
            self.errors,
            self.rps,
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            self.max_ms,
        );
        if let Some(upload) = &self.upload {
            let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
            line.push_str(&format!(
                " | bytes={} status={} seconds={:.2} mib_per_s={:.1} send_seconds={} \
                 send_mib_per_s={} audio_duration={}s (expected {:.2}s)",
                upload.bytes,
                upload
                    .status
                    .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                upload.seconds,
                upload.mib_per_s,
                opt(upload.send_seconds),
                opt(upload.send_mib_per_s),
                opt(upload.audio_duration_seconds),
                upload.expected_duration_seconds,
            ));
        }
        line
    }
}

/// Nearest-rank percentile of an ascending latency vector, in milliseconds
/// (0 when there are no samples). `per_mille` is the percentile times ten
/// (500 = p50, 990 = p99); integer arithmetic avoids float rounding in the rank.
fn percentile_ms(sorted_us: &[u64], per_mille: usize) -> f64 {
    let n = sorted_us.len();
    // Rank in 1..=n: ceil(per_mille * n / 1000), clamped.
    let rank = per_mille
        .saturating_mul(n)
        .div_ceil(1000)
        .clamp(1, n.max(1));
    sorted_us.get(rank - 1).map_or(0.0, |&us| us_to_ms(us))
}

fn us_to_ms(us: u64) -> f64 {
    round3(us as f64 / 1000.0)
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// One request loop: send requests back to back until `deadline`.
async fn run_task(client: Client, target: Arc<Target>, deadline: Instant) -> TaskResult {
    let mut result = TaskResult::default();
    while Instant::now() < deadline {
        let started = Instant::now();
        let attempt = async {
            let response = target.request(&client)?.send().await?;
            let status = response.status();
            // Drain the body so the connection goes back to the pool.
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        match timeout_at(deadline, attempt).await {
            // Deadline hit mid-request: the request is abandoned and not counted.
            Err(_elapsed) => break,
            Ok(Ok((status, body))) => {
                result.record(started.elapsed(), Outcome::from_status(status), || {
                    format!("HTTP {status}: {}", body_snippet(&body))
                })
            }
            Ok(Err(err)) => {
                result.record(started.elapsed(), Outcome::Error, || {
                    format!("transport: {err}")
                });
            }
        }
    }
    result
}

/// Runs one scenario with `concurrency` tasks for `seconds` and aggregates the results.
async fn run_scenario(
    client: &Client,
    name: &'static str,
    target: Target,
    concurrency: u32,
    seconds: u64,
) -> anyhow::Result<ScenarioReport> {
    let target = Arc::new(target);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);

    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        tasks.spawn(run_task(client.clone(), Arc::clone(&target), deadline));
    }
    let mut total = TaskResult::default();
    while let Some(joined) = tasks.join_next().await {
        total.merge(joined.with_context(|| format!("a `{name}` task panicked"))?);
    }
    let elapsed = started.elapsed();

    if let Some(error) = &total.first_error {
        eprintln!("{name}: first error: {error}");
    }
    Ok(ScenarioReport::new(name, total, elapsed))
}

/// POST JSON, and the JSON answer of a 2xx (or the error).
async fn post_json(
    client: &Client,
    url: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let mut req = client.post(url).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!("{url}: HTTP {status}: {}", body_snippet(&body));
    }
    Ok(serde_json::from_slice(&body)?)
}

/// One software passkey per task, registered for the signed-in account.
async fn register_passkeys(
    client: &Client,
    base: &str,
    token: &str,
    origin: &Url,
    count: u32,
) -> anyhow::Result<Vec<SoftPasskey>> {
    let mut keys = Vec::new();
    for n in 0..count {
        let started = post_json(
            client,
            &format!("{base}/api/auth/passkeys/register"),
            Some(token),
            &serde_json::json!({}),
        )
        .await
        .context("starting a passkey registration (is WEBAUTHN_ORIGINS set?)")?;
        let options: CreationChallengeResponse =
            serde_json::from_value(started["options"].clone())?;
        let mut key = SoftPasskey::new(true);
        let credential = key
            .do_registration(origin.clone(), options)
            .map_err(|e| anyhow::anyhow!("software passkey: {e:?}"))?;
        post_json(
            client,
            &format!("{base}/api/auth/passkeys/register/verify"),
            Some(token),
            &serde_json::json!({
                "ceremony_id": started["ceremony_id"],
                "credential": credential,
                "name": format!("bench {n}"),
            }),
        )
        .await
        .context("finishing a passkey registration")?;
        keys.push(key);
    }
    Ok(keys)
}

/// Passkey sign-ins with one key until the deadline; each sign-in (both calls and the
/// signature) is one sample.
async fn run_passkey_task(
    client: Client,
    base: Arc<str>,
    email: Arc<str>,
    origin: Url,
    mut key: SoftPasskey,
    deadline: Instant,
) -> TaskResult {
    let mut result = TaskResult::default();
    while Instant::now() < deadline {
        let started = Instant::now();
        let attempt = async {
            let resp = client
                .post(format!("{base}/api/auth/passkeys/login"))
                .json(&serde_json::json!({"email": &*email}))
                .send()
                .await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            if !status.is_success() {
                return Ok::<_, anyhow::Error>((status, body));
            }
            let started: serde_json::Value = serde_json::from_slice(&body)?;
            let options: RequestChallengeResponse =
                serde_json::from_value(started["options"].clone())?;
            let answer = key
                .do_authentication(origin.clone(), options)
                .map_err(|e| anyhow::anyhow!("software passkey: {e:?}"))?;
            let resp = client
                .post(format!("{base}/api/auth/passkeys/login/verify"))
                .json(&serde_json::json!({
                    "ceremony_id": started["ceremony_id"],
                    "credential": answer,
                }))
                .send()
                .await?;
            let status = resp.status();
            Ok((status, resp.bytes().await?))
        };
        match timeout_at(deadline, attempt).await {
            Err(_elapsed) => break,
            Ok(Ok((status, body))) => {
                result.record(started.elapsed(), Outcome::from_status(status), || {
                    format!("HTTP {status}: {}", body_snippet(&body))
                })
            }
            Ok(Err(err)) => {
                result.record(started.elapsed(), Outcome::Error, || format!("{err:#}"));
            }
        }
    }
    result
}

async fn run_passkey_scenario(
    client: &Client,
    base: &str,
    email: &str,
    origin: &Url,
    keys: Vec<SoftPasskey>,
    seconds: u64,
) -> anyhow::Result<ScenarioReport> {
    let name = Scenario::PasskeyLogin.name();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let (base, email): (Arc<str>, Arc<str>) = (base.into(), email.into());
    let mut tasks = JoinSet::new();
    for key in keys {
        tasks.spawn(run_passkey_task(
            client.clone(),
            Arc::clone(&base),
            Arc::clone(&email),
            origin.clone(),
            key,
            deadline,
        ));
    }
    let mut total = TaskResult::default();
    while let Some(joined) = tasks.join_next().await {
        total.merge(joined.with_context(|| format!("a `{name}` task panicked"))?);
    }
    if let Some(error) = &total.first_error {
        eprintln!("{name}: first error: {error}");
    }
    Ok(ScenarioReport::new(name, total, started.elapsed()))
}

/// The start of a response body, for error messages.
fn body_snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(300).collect()
}

/// Creates a project for an upload scenario (the caller becomes its admin) and
/// returns its id.
async fn create_project(
    client: &Client,
    base: &str,
    token: &str,
    scenario: &str,
) -> anyhow::Result<String> {
    let url = format!("{base}/api/projects");
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = format!("bench {stamp} {scenario}");
    let response = client
        .post(&url)
        .bearer_auth(token)
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .with_context(|| format!("POST {url} failed"))?;
    let status = response.status();
    if status != StatusCode::CREATED {
        let body = response.text().await.unwrap_or_default();
        bail!("creating project {name:?} failed with {status}: {body}");
    }
    let project: ProjectCreated = response
        .json()
        .await
        .context("project response is not the expected JSON")?;
    Ok(project.id)
}

/// The 44-byte RIFF/WAVE header of a PCM file with `data_len` bytes of samples.
fn wav_header(data_len: u32) -> Vec<u8> {
    let byte_rate = WAV_SAMPLE_RATE * u32::from(WAV_BLOCK_ALIGN);
    let mut header = Vec::with_capacity(44);
    header.extend_from_slice(b"RIFF");
    // RIFF chunk size: everything after these 8 bytes.
    header.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    header.extend_from_slice(b"WAVE");
    header.extend_from_slice(b"fmt ");
    header.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    header.extend_from_slice(&1u16.to_le_bytes()); // PCM
    header.extend_from_slice(&WAV_CHANNELS.to_le_bytes());
    header.extend_from_slice(&WAV_SAMPLE_RATE.to_le_bytes());
    header.extend_from_slice(&byte_rate.to_le_bytes());
    header.extend_from_slice(&WAV_BLOCK_ALIGN.to_le_bytes());
    header.extend_from_slice(&WAV_BITS.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&data_len.to_le_bytes());
    header
}

/// One `WAV_CHUNK_BYTES` block of a quiet tone, the same on every channel; it holds a
/// whole number of periods, so repeating it keeps the waveform continuous.
fn tone_chunk() -> Vec<u8> {
    let frame_bytes = usize::from(WAV_BLOCK_ALIGN);
    let mut chunk = Vec::with_capacity(WAV_CHUNK_BYTES);
    for frame in 0..WAV_CHUNK_BYTES / frame_bytes {
        let phase = (frame % TONE_PERIOD_FRAMES) as f64 / TONE_PERIOD_FRAMES as f64;
        let value = TONE_AMPLITUDE * (std::f64::consts::TAU * phase).sin();
        let sample = (value * f64::from(i16::MAX)).round() as i16;
        for _ in 0..WAV_CHANNELS {
            chunk.extend_from_slice(&sample.to_le_bytes());
        }
    }
    chunk
}

/// The WAV file as a sequence of chunks: the header, then sample data until the file
/// has its full size. Only the one precomputed chunk lives in memory.
struct WavChunks {
    header: Option<Vec<u8>>,
    tone: Vec<u8>,
    /// Sample bytes still to produce.
    remaining: u64,
    /// Set when the consumer asks for more after the last chunk.
    done_at: Arc<OnceLock<Instant>>,
}

impl Iterator for WavChunks {
    type Item = Result<Vec<u8>, std::io::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(header) = self.header.take() {
            return Some(Ok(header));
        }
        if self.remaining == 0 {
            let _ = self.done_at.set(Instant::now());
            return None;
        }
        let len =
            usize::try_from(self.remaining).map_or(self.tone.len(), |r| r.min(self.tone.len()));
        self.remaining -= len as u64;
        Some(Ok(self.tone[..len].to_vec()))
    }
}

/// `upload_big`: streams one generated WAV of `mib` MiB to `POST /api/voice`.
async fn run_big_upload(
    client: &Client,
    base: &str,
    token: &str,
    project_id: &str,
    mib: u64,
) -> anyhow::Result<ScenarioReport> {
    let name = Scenario::UploadBig.name();
    let url = format!("{base}/api/voice");
    let bytes = mib * MIB;
    let data_len = u32::try_from(bytes - WAV_HEADER_BYTES)
        .context("the WAV data length must fit in 32 bits")?;
    let expected_duration =
        f64::from(data_len) / f64::from(WAV_SAMPLE_RATE * u32::from(WAV_BLOCK_ALIGN));

    let done_at = Arc::new(OnceLock::new());
    let chunks = WavChunks {
        header: Some(wav_header(data_len)),
        tone: tone_chunk(),
        remaining: u64::from(data_len),
        done_at: Arc::clone(&done_at),
    };
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let part = Part::stream_with_length(body, bytes)
        .file_name("bench.wav")
        .mime_str("audio/wav")?;
    let form = Form::new()
        .text("project_id", project_id.to_owned())
        .part("file", part);

    eprintln!("{name}: streaming {mib} MiB to {url}");
    let started = Instant::now();
    let outcome = async {
        let response = client
            .post(&url)
            .bearer_auth(token)
            .timeout(BIG_UPLOAD_TIMEOUT)
            .multipart(form)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, body))
    }
    .await;
    let elapsed = started.elapsed();
    let send_elapsed = done_at.get().map(|at| at.duration_since(started));

    let mib_per_s = |d: Duration| {
        let secs = d.as_secs_f64();
        if secs > 0.0 {
            round3(mib as f64 / secs)
        } else {
            0.0
        }
    };
    let mut result = TaskResult::default();
    let (status, audio_duration) = match &outcome {
        Ok((status, body)) => {
            result.record(elapsed, Outcome::from_status(*status), || {
                format!("HTTP {status}: {}", body_snippet(body))
            });
            let duration = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.pointer("/audio/duration_seconds")?.as_f64());
            (Some(status.as_u16()), duration)
        }
        Err(err) => {
            result.record(elapsed, Outcome::Error, || format!("transport: {err}"));
            (None, None)
        }
    };
    if let Some(error) = &result.first_error {
        eprintln!("{name}: error: {error}");
    }
    let mut report = ScenarioReport::new(name, result, elapsed);
    report.upload = Some(BigUploadReport {
        bytes,
        status,
        seconds: round3(elapsed.as_secs_f64()),
        mib_per_s: mib_per_s(elapsed),
        send_seconds: send_elapsed.map(|d| round3(d.as_secs_f64())),
        send_mib_per_s: send_elapsed.map(mib_per_s),
        expected_duration_seconds: round3(expected_duration),
        audio_duration_seconds: audio_duration,
    });
    Ok(report)
}

/// Checks that the server answers `GET /health` before any scenario starts.
async fn preflight(client: &Client, base: &str) -> anyhow::Result<()> {
    let url = format!("{base}/health");
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("server not reachable at {url}"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("GET {url} returned {status}");
    }
    Ok(())
}

/// Logs in once and returns the access token, waiting out a bounded number of 429s.
async fn login(client: &Client, base: &str, credentials: &Credentials) -> anyhow::Result<String> {
    let url = format!("{base}/api/auth/login");
    for attempt in 1..=LOGIN_ATTEMPTS {
        let response = client
            .post(&url)
            .json(credentials)
            .send()
            .await
            .with_context(|| format!("POST {url} failed"))?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS && attempt < LOGIN_ATTEMPTS {
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs)
                .min(MAX_RETRY_AFTER);
            eprintln!("login rate-limited, retrying in {}s", wait.as_secs());
            sleep(wait).await;
            continue;
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!(
                "login as {} failed with {status}: {body}",
                credentials.email
            );
        }
        let body: LoginResponse = response
            .json()
            .await
            .context("login response is not the expected JSON")?;
        return Ok(body.access_token);
    }
    bail!("login still rate-limited after {LOGIN_ATTEMPTS} attempts")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = args.url.trim_end_matches('/').to_owned();
    let origin = Url::parse(&args.webauthn_origin).context("--webauthn-origin")?;

    let scenarios = args.scenarios.clone();
    if scenarios.is_empty() {
        bail!("no scenarios selected");
    }
    let credentials = match (&args.email, &args.password) {
        (Some(email), Some(password)) => Some(Credentials {
            email: email.clone(),
            password: password.clone(),
        }),
        _ => None,
    };
    if credentials.is_none() && scenarios.iter().any(|s| s.needs_credentials()) {
        bail!(
            "the `me`, `login`, `passkey_login`, `upload_1k` and `upload_big` scenarios need --email and \
             --password (or ALTA_BENCH_EMAIL / ALTA_BENCH_PASSWORD)"
        );
    }

    let pool_size = usize::try_from(args.concurrency).unwrap_or(usize::MAX);
    let client = Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(pool_size)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")?;

    preflight(&client, &base).await?;

    let mut reports = Vec::with_capacity(scenarios.len());
    for scenario in scenarios {
        let plan = match (scenario, &credentials) {
            (Scenario::Health, _) => Plan::Loop(Target::Health {
                url: format!("{base}/health"),
            }),
            (Scenario::Me, Some(credentials)) => Plan::Loop(Target::Me {
                url: format!("{base}/api/auth/me"),
                // A fresh token per scenario, so an earlier long run cannot expire it.
                token: login(&client, &base, credentials).await?,
            }),
            (Scenario::Login, Some(credentials)) => Plan::Loop(Target::Login {
                url: format!("{base}/api/auth/login"),
                credentials: credentials.clone(),
            }),
            (Scenario::Upload1k, Some(credentials)) => {
                let token = login(&client, &base, credentials).await?;
                let project_id = create_project(&client, &base, &token, scenario.name()).await?;
                Plan::Loop(Target::SmallUpload {
                    url: format!("{base}/api/documents"),
                    token,
                    project_id,
                    prefix: uuid::Uuid::new_v4().simple().to_string(),
                    counter: AtomicU64::new(0),
                })
            }
            (Scenario::Annotate, Some(credentials)) => {
                let token = login(&client, &base, credentials).await?;
                let project_id = create_project(&client, &base, &token, scenario.name()).await?;
                let urls = ready_documents(&client, &base, &token, &project_id).await?;
                Plan::Loop(Target::Annotate {
                    urls,
                    token,
                    counter: AtomicU64::new(0),
                })
            }
            (Scenario::UploadBig, Some(credentials)) => {
                let token = login(&client, &base, credentials).await?;
                let project_id = create_project(&client, &base, &token, scenario.name()).await?;
                Plan::BigUpload { token, project_id }
            }
            (Scenario::PasskeyLogin, Some(credentials)) => {
                if args.concurrency > 20 {
                    bail!("passkey_login: at most 20 passkeys per account, so --concurrency <= 20");
                }
                let token = login(&client, &base, credentials).await?;
                let keys =
                    register_passkeys(&client, &base, &token, &origin, args.concurrency).await?;
                Plan::PasskeyLogins {
                    email: credentials.email.clone(),
                    keys,
                }
            }
            (
                Scenario::Me
                | Scenario::Login
                | Scenario::PasskeyLogin
                | Scenario::Upload1k
                | Scenario::UploadBig
                | Scenario::Annotate,
                None,
            ) => {
                bail!("scenario `{}` needs credentials", scenario.name())
            }
        };
        let report = match plan {
            Plan::Loop(target) => {
                run_scenario(
                    &client,
                    scenario.name(),
                    target,
                    args.concurrency,
                    args.seconds,
                )
                .await?
            }
            Plan::BigUpload { token, project_id } => {
                run_big_upload(&client, &base, &token, &project_id, args.big_mib).await?
            }
            Plan::PasskeyLogins { email, keys } => {
                run_passkey_scenario(&client, &base, &email, &origin, keys, args.seconds).await?
            }
        };
        eprintln!("{}", report.summary_line());
        reports.push(report);
    }

    let report = Report {
        label: args.label,
        url: base,
        concurrency: args.concurrency,
        seconds: args.seconds,
        scenarios: reports,
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
