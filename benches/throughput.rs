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
//! Scenarios:
//! - `health`: `GET /health`
//! - `me`: `GET /api/auth/me` with a bearer token obtained by one login beforehand
//! - `login`: `POST /api/auth/login` on every request (argon2-bound; the server's
//!   per-account and per-IP login limits apply, 429s are counted as `rate_limited`)
//!
//! Latency covers sending the request and reading the whole response body. A request
//! still in flight when a scenario's deadline passes is abandoned and not counted, so
//! every scenario takes at most `--seconds`. Percentiles (nearest rank) are computed
//! over every completed request, whatever its outcome.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
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

    /// Free text copied into the report (e.g. "sqlite" or "postgres").
    #[arg(long, default_value = "")]
    label: String,

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
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Me => "me",
            Self::Login => "login",
        }
    }

    fn needs_credentials(self) -> bool {
        matches!(self, Self::Me | Self::Login)
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
}

impl Target {
    fn request(&self, client: &Client) -> reqwest::RequestBuilder {
        match self {
            Self::Health { url } => client.get(url),
            Self::Me { url, token } => client.get(url).bearer_auth(token),
            Self::Login { url, credentials } => client.post(url).json(credentials),
        }
    }
}

/// How one completed request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    RateLimited,
    Error,
}

impl Outcome {
    fn from_status(status: StatusCode) -> Self {
        if status.is_success() {
            Self::Ok
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            Self::RateLimited
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
    errors: u64,
    rps: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl ScenarioReport {
    fn new(name: &'static str, mut result: TaskResult, elapsed: Duration) -> Self {
        result.latencies_us.sort_unstable();
        let sorted = &result.latencies_us;
        let requests = result.ok + result.rate_limited + result.errors;
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
            errors: result.errors,
            rps: round3(rps),
            p50_ms: percentile_ms(sorted, 500),
            p95_ms: percentile_ms(sorted, 950),
            p99_ms: percentile_ms(sorted, 990),
            max_ms: sorted.last().map_or(0.0, |&us| us_to_ms(us)),
        }
    }

    fn summary_line(&self) -> String {
        format!(
            "{:<8} requests={} ok={} rate_limited={} errors={} rps={:.1} \
             p50={:.2}ms p95={:.2}ms p99={:.2}ms max={:.2}ms",
            self.name,
            self.requests,
            self.ok,
            self.rate_limited,
            self.errors,
            self.rps,
            self.p50_ms,
            self.p95_ms,
            self.p99_ms,
            self.max_ms,
        )
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
            let response = target.request(&client).send().await?;
            let status = response.status();
            // Drain the body so the connection goes back to the pool.
            response.bytes().await?;
            Ok::<_, reqwest::Error>(status)
        };
        match timeout_at(deadline, attempt).await {
            // Deadline hit mid-request: the request is abandoned and not counted.
            Err(_elapsed) => break,
            Ok(Ok(status)) => {
                result.record(started.elapsed(), Outcome::from_status(status), || {
                    format!("HTTP {status}")
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
            "the `me` and `login` scenarios need --email and --password \
             (or ALTA_BENCH_EMAIL / ALTA_BENCH_PASSWORD)"
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
        let target = match (scenario, &credentials) {
            (Scenario::Health, _) => Target::Health {
                url: format!("{base}/health"),
            },
            (Scenario::Me, Some(credentials)) => Target::Me {
                url: format!("{base}/api/auth/me"),
                // A fresh token per scenario, so an earlier long run cannot expire it.
                token: login(&client, &base, credentials).await?,
            },
            (Scenario::Login, Some(credentials)) => Target::Login {
                url: format!("{base}/api/auth/login"),
                credentials: credentials.clone(),
            },
            (Scenario::Me | Scenario::Login, None) => {
                bail!("scenario `{}` needs credentials", scenario.name())
            }
        };
        let report = run_scenario(
            &client,
            scenario.name(),
            target,
            args.concurrency,
            args.seconds,
        )
        .await?;
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
