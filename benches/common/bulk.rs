//! A project of bulk-loaded items behind the real server, for the benches that measure
//! at scale (`review`, `export`): the server on a loopback port (SQLite, or a throw-away
//! PostgreSQL schema), an HTTP client, the people (an owner, contributors, reviewers who
//! signed up through the API and joined by invitation), and `pending_review` documents
//! inserted with SQL (some with an OCR job and a text), far faster than through the API.
// Each bench uses the parts it needs (the export bench reads no reviewer).
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use alta::{settings::Settings, startup::Application};
use alta_actors::{
    Engine,
    context::RequestContext,
    store::{Db, DbOptions},
};
use anyhow::{Context, anyhow, bail, ensure};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;
use uuid::Uuid;

use super::pg_schema::{Backend, PgSchema};

pub const PASSWORD: &str = "bench passphrase that is long enough 7f3k";
/// Links in mail use it; the bench serves them from the loopback port instead.
pub const PUBLIC_URL: &str = "http://alta.bench";
/// The items are spread over these contributors (round robin).
pub const CONTRIBUTORS: usize = 4;
/// Items with an OCR job and a text revision: the head of the queue…
pub const TEXT_HEAD: i64 = 5_000;
/// …and every this many after it.
pub const TEXT_EVERY: i64 = 1_000;
/// Upload times of consecutive items are this far apart (1M items span ~17 days).
pub const STEP_MS: i64 = 1_500;

/// How many items to load, and how many per transaction.
pub struct LoadPlan {
    pub items: i64,
    pub batch: i64,
}

/// The bench's name in its progress lines (`set_bench`).
static BENCH: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Name the bench in progress lines (once, at its start).
pub fn set_bench(name: &'static str) {
    let _ = BENCH.set(name);
}

pub fn progress(backend: Backend, msg: impl AsRef<str>) {
    let bench = BENCH.get().copied().unwrap_or("bench");
    eprintln!("[{bench} {}] {}", backend.name(), msg.as_ref());
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The project actors' timers from the server's `/metrics` (histogram sums and counts,
/// by series): two snapshots around a phase tell where its groups spent their time.
#[derive(Default)]
pub struct ActorTimes(std::collections::BTreeMap<String, f64>);

/// The series [`ActorTimes`] keeps.
const ACTOR_SERIES: [&str; 4] = [
    "project_transition_seconds_",
    "project_group_stage_seconds_",
    "project_group_commands_",
    "project_actor_turn_seconds_",
];

impl ActorTimes {
    pub async fn read(http: &Http) -> anyhow::Result<Self> {
        let answer = http.ok(Method::GET, "/metrics", None, None).await?;
        let text = String::from_utf8_lossy(&answer.body);
        let series = text
            .lines()
            .filter(|l| ACTOR_SERIES.iter().any(|p| l.starts_with(p)))
            .filter(|l| l.contains("_sum") || l.contains("_count"))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect();
        Ok(Self(series))
    }

    /// What happened between `self` and `later`, a line each: the groups (commands in
    /// each, the actor's busy time), each transition's and each stage's mean time.
    pub fn since(&self, later: &Self) -> Vec<String> {
        let delta = |name: &str| {
            later.0.get(name).copied().unwrap_or(0.0) - self.0.get(name).copied().unwrap_or(0.0)
        };
        let mut lines = vec![format!(
            "groups={:.0} commands_per_group={:.2} actor_busy_s={:.2}",
            delta("project_group_commands_count"),
            delta("project_group_commands_sum") / delta("project_group_commands_count").max(1.0),
            delta("project_actor_turn_seconds_sum"),
        )];
        for (name, _) in later.0.iter().filter(|(n, _)| {
            n.starts_with("project_transition_seconds_sum")
                || n.starts_with("project_group_stage_seconds_sum")
        }) {
            let count = delta(&name.replacen("_sum", "_count", 1));
            if count > 0.0 {
                let total = delta(name);
                let label = name
                    .split_once('{')
                    .map_or("", |(_, l)| l.trim_end_matches('}'));
                lines.push(format!(
                    "{label} n={count:.0} mean_ms={:.2} total_s={total:.2}",
                    1000.0 * total / count
                ));
            }
        }
        lines
    }
}

// --- the server -----------------------------------------------------------------------

/// The real application, serving on a loopback port until stopped.
pub struct Server {
    pub base: String,
    pub engine: Engine,
    pub outbox: PathBuf,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    pub async fn start(
        data_dir: &Path,
        database_url: Option<&str>,
        monitor_seconds: Option<u64>,
    ) -> anyhow::Result<Self> {
        let mut vars: Vec<(String, String)> = [
            ("HOST", "127.0.0.1"),
            ("PORT", "0"),
            ("SECRET_KEY", "bench-secret-key-0123456789abcdef0123"),
            ("PUBLIC_URL", PUBLIC_URL),
            ("RATE_LIMIT_AUTH_PER_IP", "100000/min"),
            ("RATE_LIMIT_AUTH_PER_ACCOUNT", "100000/min"),
            // A full run outlasts the default 15 minutes.
            ("ACCESS_TOKEN_TTL_SECONDS", "86400"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        vars.push(("DATA_DIR".into(), data_dir.display().to_string()));
        if let Some(seconds) = monitor_seconds {
            vars.push(("REVIEW_DIGEST_INTERVAL_SECONDS".into(), seconds.to_string()));
        }
        // Without DATABASE_URL the server makes its SQLite file in DATA_DIR.
        if let Some(url) = database_url {
            vars.push(("DATABASE_URL".into(), url.to_owned()));
        }
        let settings = Settings::from_vars(vars).context("bench settings")?;
        let app = Application::build(settings)
            .await
            .context("the server did not start")?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let engine = app.engine().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Ok(Self {
            base,
            engine,
            outbox: data_dir.join("outbox"),
            stop: Some(stop),
            handle: Some(handle),
        })
    }

    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.context("the server task panicked")??;
        }
        Ok(())
    }

    /// The newest link in a mail to `to` that contains `marker` (waits up to 30 s for
    /// the mail job to write it).
    pub async fn mail_link(&self, to: &str, marker: &str) -> anyhow::Result<String> {
        for _ in 0..600 {
            if let Some(link) = newest_link(&self.outbox, to, marker) {
                return Ok(link);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "no mail to {to} with a {marker} link in {}",
            self.outbox.display()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn newest_link(outbox: &Path, to: &str, marker: &str) -> Option<String> {
    let mut mails: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(outbox)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            let modified = e.metadata().ok()?.modified().ok()?;
            text.lines()
                .any(|l| l.eq_ignore_ascii_case(&format!("To: {to}")))
                .then_some((modified, text))
        })
        .collect();
    mails.sort();
    mails.iter().rev().find_map(|(_, text)| {
        text.split_whitespace()
            .find(|w| w.starts_with("http") && w.contains(marker))
            .map(str::to_owned)
    })
}

// --- HTTP -----------------------------------------------------------------------------

/// One answered request: status, body and the time to the end of the body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Answer {
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).context("the answer is not JSON")
    }
}

#[derive(Clone)]
pub struct Http {
    pub client: Client,
    pub base: String,
}

impl Http {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(64)
                .tcp_nodelay(true)
                .build()
                .context("building the HTTP client")?,
            base: base.to_owned(),
        })
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let started = Instant::now();
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .with_context(|| format!("{method} {path}: reading the body"))?;
        let elapsed = started.elapsed();
        Ok(Answer {
            status,
            body: body.to_vec(),
            elapsed,
        })
    }

    /// As `send`, and anything but a 2xx is an error.
    pub async fn ok(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let answer = self.send(method.clone(), path, token, body).await?;
        if !answer.status.is_success() {
            bail!(
                "{method} {path} answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
                    .chars()
                    .take(500)
                    .collect::<String>()
            );
        }
        Ok(answer)
    }

    pub async fn login(&self, email: &str) -> anyhow::Result<String> {
        let body = json!({"email": email, "password": PASSWORD});
        let answer = self
            .ok(Method::POST, "/api/auth/login", None, Some(&body))
            .await?;
        answer.json()?["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("login of {email}: no access_token"))
    }

    pub async fn user_id(&self, token: &str) -> anyhow::Result<Uuid> {
        let me = self
            .ok(Method::GET, "/api/auth/me", Some(token), None)
            .await?
            .json()?;
        uuid_at(&me, "/id")
    }
}

pub fn uuid_at(v: &Value, pointer: &str) -> anyhow::Result<Uuid> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("no uuid at {pointer} in {v}"))
}

/// A member of the project, logged in.
#[derive(Clone)]
pub struct User {
    pub email: String,
    pub id: Uuid,
    pub token: String,
}

/// Invite `email` as `role`; they register, verify their address, log in and accept.
pub async fn join(
    http: &Http,
    server: &Server,
    owner: &User,
    project: Uuid,
    email: &str,
    role: &str,
) -> anyhow::Result<User> {
    let invite = json!({"email": email, "role": role});
    http.ok(
        Method::POST,
        &format!("/api/projects/{project}/invite"),
        Some(&owner.token),
        Some(&invite),
    )
    .await?;
    let register = json!({"email": email, "password": PASSWORD});
    http.ok(Method::POST, "/api/auth/register", None, Some(&register))
        .await?;
    let verify = server.mail_link(email, "verify-email").await?;
    let path = verify
        .strip_prefix(PUBLIC_URL)
        .ok_or_else(|| anyhow!("verification link {verify} is not under {PUBLIC_URL}"))?;
    // The link is the frontend's page (`/verify-email?token=…`); it calls the API's
    // `/api/auth/verify-email` with the token.
    let path = format!("/api/auth{path}");
    http.ok(Method::GET, &path, None, None).await?;
    let token = http.login(email).await?;
    let invitation = server.mail_link(email, "invitations/accept").await?;
    let invitation = invitation
        .rsplit("token=")
        .next()
        .ok_or_else(|| anyhow!("no token in {invitation}"))?;
    http.ok(
        Method::POST,
        &format!("/api/projects/invitations/{invitation}/accept"),
        Some(&token),
        None,
    )
    .await?;
    let id = http.user_id(&token).await?;
    Ok(User {
        email: email.to_owned(),
        id,
        token,
    })
}

pub struct People {
    pub owner: User,
    pub contributors: Vec<User>,
    /// Reads the queue (never claims or skips).
    pub reader: User,
    /// Claims and skips alone.
    pub solo: User,
    /// Claim and skip in parallel.
    pub skippers: Vec<User>,
    /// Claims and approves alone.
    pub worker: User,
    pub deciders: Vec<User>,
}

/// The owner (a super admin), a project requiring one review, its contributors, and
/// the reviewers: the reader, solo and worker, `skip_reviewers` skippers and `deciders`.
pub async fn setup_people(
    http: &Http,
    server: &Server,
    skip_reviewers: usize,
    decider_count: usize,
    backend: Backend,
) -> anyhow::Result<(People, Uuid)> {
    let owner_email = "owner@bench.example.org";
    server
        .engine
        .accounts()
        .create_super_admin(owner_email, PASSWORD, &RequestContext::internal("bench"))
        .await
        .map_err(|e| anyhow!("create_super_admin: {e}"))?;
    let token = http.login(owner_email).await?;
    let owner = User {
        email: owner_email.into(),
        id: http.user_id(&token).await?,
        token,
    };
    let project = json!({
        "name": "review bench",
        "settings": {
            "accepted_kinds": ["document", "audio"],
            "max_document_bytes": 50 * 1024 * 1024,
            "max_audio_bytes": 1024 * 1024 * 1024,
            "reviews_required": 1,
            "reject_reasons": ["unreadable", "wrong_text", "noise", "clipped", "off_topic"],
            "max_rework_rounds": 3
        }
    });
    let created = http
        .ok(
            Method::POST,
            "/api/projects",
            Some(&owner.token),
            Some(&project),
        )
        .await?
        .json()?;
    let project_id = uuid_at(&created, "/id")?;
    ensure!(
        created.pointer("/settings/reviews_required") == Some(&json!(1)),
        "the project does not require exactly one review: {created}"
    );

    let reviewers = 3 + skip_reviewers + decider_count;
    let total = CONTRIBUTORS + reviewers;
    progress(
        backend,
        format!("{total} members register, verify and join by invitation"),
    );
    let mut contributors = Vec::new();
    for i in 0..CONTRIBUTORS {
        let email = format!("contributor{i}@bench.example.org");
        contributors.push(join(http, server, &owner, project_id, &email, "contributor").await?);
    }
    let reader = join(
        http,
        server,
        &owner,
        project_id,
        "reader@bench.example.org",
        "reviewer",
    )
    .await?;
    let solo = join(
        http,
        server,
        &owner,
        project_id,
        "solo@bench.example.org",
        "reviewer",
    )
    .await?;
    let worker = join(
        http,
        server,
        &owner,
        project_id,
        "worker@bench.example.org",
        "reviewer",
    )
    .await?;
    let mut skippers = Vec::new();
    for i in 0..skip_reviewers {
        let email = format!("skipper{i}@bench.example.org");
        skippers.push(join(http, server, &owner, project_id, &email, "reviewer").await?);
    }
    let mut deciders = Vec::new();
    for i in 0..decider_count {
        let email = format!("decider{i}@bench.example.org");
        deciders.push(join(http, server, &owner, project_id, &email, "reviewer").await?);
    }
    let members = http
        .ok(
            Method::GET,
            &format!("/api/projects/{project_id}/members?limit=200"),
            Some(&owner.token),
            None,
        )
        .await?
        .json()?;
    let listed = members["items"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["role"] == "reviewer").count());
    ensure!(
        listed == reviewers,
        "expected {reviewers} reviewers in the project, the API lists {listed}: {members}"
    );
    Ok((
        People {
            owner,
            contributors,
            reader,
            solo,
            skippers,
            worker,
            deciders,
        },
        project_id,
    ))
}

// --- bulk load ------------------------------------------------------------------------

/// SQL that differs between the backends, for the generated rows.
pub struct Dialect(Backend);

impl Dialect {
    /// A UUIDv7 from a millisecond stamp and the item number: `ms` (48 bits), version
    /// 7, `n mod 4096`, the variant nibble `variant` (8–b), then `n` (60 bits). Ids of
    /// one variant are unique per `n` and sort as `ms` does.
    pub fn uuid(&self, ms: &str, n: &str, variant: char) -> String {
        match self.0 {
            Backend::Sqlite => {
                format!("unhex(printf('%012x7%03x{variant}%015x', {ms}, ({n}) % 4096, {n}))")
            }
            Backend::Postgres => format!(
                "CAST(lpad(to_hex({ms}), 12, '0') || '7' || lpad(to_hex(({n}) % 4096), 3, '0') \
                 || '{variant}' || lpad(to_hex({n}), 15, '0') AS UUID)"
            ),
        }
    }

    /// The same id as text (`8-4-4-4-12`).
    pub fn uuid_text(&self, ms: &str, n: &str, variant: char) -> String {
        match self.0 {
            Backend::Sqlite => format!(
                "printf('%08x-%04x-7%03x-{variant}%03x-%012x', ({ms}) >> 16, ({ms}) & 65535, \
                 ({n}) % 4096, (({n}) >> 48) & 4095, ({n}) & 281474976710655)"
            ),
            Backend::Postgres => format!("CAST({} AS TEXT)", self.uuid(ms, n, variant)),
        }
    }

    /// A timestamp at `ms` since the epoch, stored as the server stores one.
    pub fn ts(&self, ms: &str) -> String {
        match self.0 {
            // sqlx writes `DateTime<Utc>` as RFC 3339 with `SecondsFormat::AutoSi` and
            // `+00:00`: no fraction on a whole second, else 3 digits for milliseconds.
            Backend::Sqlite => format!(
                "(strftime('%Y-%m-%dT%H:%M:%S', ({ms}) / 1000, 'unixepoch') || CASE WHEN ({ms}) \
                 % 1000 = 0 THEN '' ELSE printf('.%03d', ({ms}) % 1000) END || '+00:00')"
            ),
            Backend::Postgres => {
                format!("(TIMESTAMPTZ 'epoch' + ({ms}) * INTERVAL '1 millisecond')")
            }
        }
    }

    /// Rows `n` = `$1` ..= `$2` with their upload stamp `ms` = `$3` + n × `$4`, as `g`.
    pub fn series(&self) -> &'static str {
        match self.0 {
            Backend::Sqlite => {
                "(WITH RECURSIVE s(n) AS (SELECT CAST($1 AS INTEGER) UNION ALL \
                 SELECT n + 1 FROM s WHERE n < $2) SELECT n, $3 + n * $4 AS ms FROM s) AS g"
            }
            Backend::Postgres => {
                "(SELECT n, $3 + n * $4 AS ms FROM generate_series(CAST($1 AS BIGINT), \
                 CAST($2 AS BIGINT)) AS s(n)) AS g"
            }
        }
    }

    pub fn sha256(&self) -> &'static str {
        match self.0 {
            Backend::Sqlite => "lower(hex(randomblob(32)))",
            Backend::Postgres => {
                "encode(sha256(convert_to('alta bench item ' || g.n, 'UTF8')), 'hex')"
            }
        }
    }

    pub fn metadata(&self) -> &'static str {
        match self.0 {
            Backend::Sqlite => r#"'{"source":"scanner","batch":"' || (g.n / 1000) || '"}'"#,
            Backend::Postgres => {
                r#"CAST('{"source":"scanner","batch":"' || (g.n / 1000) || '"}' AS JSONB)"#
            }
        }
    }

    pub fn payload(&self) -> String {
        let item = self.uuid_text("g.ms", "g.n", '8');
        match self.0 {
            Backend::Sqlite => format!("json_object('item_id', {item})"),
            Backend::Postgres => format!("jsonb_build_object('item_id', {item})"),
        }
    }

    /// About 1 KB of text.
    pub fn text(&self) -> &'static str {
        match self.0 {
            Backend::Sqlite => {
                "'Page of item ' || g.n || '. ' || replace(hex(zeroblob(24)), '00', \
                 'Habari za asubuhi, the quick brown fox. ')"
            }
            Backend::Postgres => {
                "'Page of item ' || g.n || '. ' || repeat('Habari za asubuhi, the quick brown fox. ', 24)"
            }
        }
    }
}

/// `n` whose item has an OCR job and a text.
pub fn with_text(n: &str) -> String {
    format!("({n} < {TEXT_HEAD} OR {n} % {TEXT_EVERY} = 0)")
}

pub struct Load {
    pub seconds: f64,
    /// Every item id, in queue (id = upload) order.
    pub ids: Vec<Uuid>,
    pub texts: i64,
}

/// Insert `--items` pending items (and the jobs and texts of some) with SQL.
pub async fn bulk_load(
    db: &Db,
    backend: Backend,
    args: &LoadPlan,
    project: Uuid,
    contributors: &[User],
) -> anyhow::Result<Load> {
    let d = Dialect(backend);
    let first_ms = Utc::now().timestamp_millis() - args.items * STEP_MS - 3_600_000;
    let contributor = {
        let arms: Vec<String> = (0..contributors.len())
            .map(|k| format!("WHEN {k} THEN ${}", 7 + k))
            .collect();
        format!("CASE g.n % {} {} END", contributors.len(), arms.join(" "))
    };
    let items_sql = format!(
        "INSERT INTO items (id, project_id, kind, contributor_id, status, title, language, \
         external_id, metadata, file_name, detected_type, content_type, size_bytes, sha256, \
         blob_key, audio, created_at, updated_at, job_id, processing_error_code, \
         processing_error, review_round, submitted_at, review_claimed_by, review_lease_until, \
         decided_at) \
         SELECT {id}, $5, 'document', {contributor}, 'pending_review', 'Scan ' || g.n, \
         CASE WHEN g.n % 3 = 0 THEN 'en' ELSE 'sw' END, NULL, {metadata}, \
         'scan-' || g.n || '.txt', 'plain_text', 'text/plain', 512 + (g.n * 7919) % 65536, \
         {sha}, $6 || '/' || {id_text}, NULL, {created}, {updated}, \
         CASE WHEN {has_text} THEN {job} ELSE NULL END, NULL, NULL, 0, {updated}, NULL, NULL, \
         NULL FROM {series}",
        id = d.uuid("g.ms", "g.n", '8'),
        id_text = d.uuid_text("g.ms", "g.n", '8'),
        metadata = d.metadata(),
        sha = d.sha256(),
        created = d.ts("g.ms"),
        // Processed, then submitted a minute after the upload.
        updated = d.ts("g.ms + 60000"),
        has_text = with_text("g.n"),
        job = d.uuid("g.ms + 1", "g.n", '9'),
        series = d.series(),
    );
    let jobs_sql = format!(
        "INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, \
         lease_until, locked_by, last_error, created_at, updated_at, finished_at) \
         SELECT {job}, 'ocr', {payload}, 'done', 1, 8, {created}, NULL, 'bench-worker', NULL, \
         {created}, {finished}, {finished} FROM {series} WHERE {has_text}",
        job = d.uuid("g.ms + 1", "g.n", '9'),
        payload = d.payload(),
        created = d.ts("g.ms"),
        finished = d.ts("g.ms + 20000"),
        series = d.series(),
        has_text = with_text("g.n"),
    );
    let texts_sql = format!(
        "INSERT INTO item_texts (id, item_id, revision, source, engine, author_id, job_id, \
         text, pages, words, confidence, created_at) \
         SELECT {text_id}, {item}, 1, 'machine', 'plain_text', NULL, {job}, {text}, NULL, \
         NULL, NULL, {finished} FROM {series} WHERE {has_text}",
        text_id = d.uuid("g.ms + 20000", "g.n", 'a'),
        item = d.uuid("g.ms", "g.n", '8'),
        job = d.uuid("g.ms + 1", "g.n", '9'),
        text = d.text(),
        finished = d.ts("g.ms + 20000"),
        series = d.series(),
        has_text = with_text("g.n"),
    );

    let started = Instant::now();
    let mut lo = 0;
    while lo < args.items {
        let hi = (lo + args.batch).min(args.items) - 1;
        let mut tx = db.begin().await.context("begin")?;
        alta_actors::store::with_tx!(&mut tx, |conn| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(items_sql.clone()))
                .bind(lo)
                .bind(hi)
                .bind(first_ms)
                .bind(STEP_MS)
                .bind(project)
                .bind(project.to_string());
            for c in contributors {
                q = q.bind(c.id);
            }
            q.execute(&mut *conn).await.context("inserting items")?;
            for sql in [&jobs_sql, &texts_sql] {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(lo)
                    .bind(hi)
                    .bind(first_ms)
                    .bind(STEP_MS)
                    .execute(&mut *conn)
                    .await
                    .context("inserting jobs and texts")?;
            }
        });
        tx.commit().await.context("commit of a batch")?;
        lo = hi + 1;
        if lo % (args.batch * 4) == 0 || lo == args.items {
            progress(
                backend,
                format!(
                    "loaded {lo} / {} items ({:.0} s)",
                    args.items,
                    started.elapsed().as_secs_f64()
                ),
            );
        }
    }
    // The project's byte count, as uploads keep it.
    let sql = "UPDATE projects SET storage_bytes = (SELECT COALESCE(SUM(size_bytes), 0) \
               FROM items WHERE project_id = $1 AND deleted_at IS NULL) WHERE id = $1";
    alta_actors::store::with_db!(db, |pool| sqlx::query(sql)
        .bind(project)
        .execute(pool)
        .await
        .map(|_| ()))?;
    if let Db::Postgres(pool) = db {
        progress(backend, "VACUUM ANALYZE (what autovacuum would do)");
        sqlx::query("VACUUM (ANALYZE) items, item_texts, jobs")
            .execute(pool)
            .await
            .context("VACUUM ANALYZE")?;
    }
    let seconds = started.elapsed().as_secs_f64();

    let sql = "SELECT id FROM items WHERE project_id = $1 AND status = 'pending_review' \
               AND deleted_at IS NULL ORDER BY id";
    let ids: Vec<Uuid> = alta_actors::store::with_db!(db, |pool| sqlx::query_scalar(sql)
        .bind(project)
        .fetch_all(pool)
        .await)?;
    ensure!(
        ids.len() as i64 == args.items,
        "{} pending items in the project after loading {}",
        ids.len(),
        args.items
    );
    let sql = "SELECT COUNT(*) FROM item_texts t JOIN items i ON i.id = t.item_id \
               JOIN jobs j ON j.id = i.job_id AND j.id = t.job_id WHERE i.project_id = $1";
    let texts: i64 = alta_actors::store::with_db!(db, |pool| sqlx::query_scalar(sql)
        .bind(project)
        .fetch_one(pool)
        .await)?;
    let expected = (0..args.items)
        .filter(|n| *n < TEXT_HEAD || n % TEXT_EVERY == 0)
        .count() as i64;
    ensure!(
        texts == expected,
        "{texts} items with a job and a text, expected {expected}"
    );
    // Upload order is id order: the first id carries the earliest stamp, n = 0.
    ensure!(
        ids[0].get_version_num() == 7 && ids[0].as_u128() & ((1_u128 << 60) - 1) == 0,
        "the first item in id order is not item 0: {}",
        ids[0]
    );
    Ok(Load {
        seconds,
        ids,
        texts,
    })
}

/// SQLite: the loaded rows hold what the server itself would have written.
pub async fn check_sqlite_rows(db: &Db, project: Uuid) -> anyhow::Result<()> {
    let Db::Sqlite(sqlite) = db else {
        return Ok(());
    };
    let pool = sqlite.pool();
    let rows = sqlx::query(
        "SELECT typeof(id), length(id), typeof(contributor_id), length(contributor_id), \
         created_at, updated_at, submitted_at FROM items WHERE project_id = $1 LIMIT 2000",
    )
    .bind(project)
    .fetch_all(pool)
    .await?;
    for row in rows {
        ensure!(
            row.get::<String, _>(0) == "blob"
                && row.get::<i64, _>(1) == 16
                && row.get::<String, _>(2) == "blob"
                && row.get::<i64, _>(3) == 16,
            "item ids are not 16-byte BLOBs"
        );
        for i in 4..7 {
            let stored: String = row.get(i);
            let parsed = DateTime::parse_from_rfc3339(&stored)
                .with_context(|| format!("stored timestamp {stored:?}"))?
                .with_timezone(&Utc);
            let written = parsed.to_rfc3339_opts(SecondsFormat::AutoSi, false);
            ensure!(
                stored == written,
                "stored timestamp {stored:?} is not what sqlx writes ({written:?})"
            );
        }
    }
    // A row the server wrote, for comparison: the project's own created_at.
    let project_created: String =
        sqlx::query_scalar("SELECT created_at FROM projects WHERE id = $1")
            .bind(project)
            .fetch_one(pool)
            .await?;
    ensure!(
        project_created.ends_with("+00:00") && project_created.contains('T'),
        "the server writes timestamps as {project_created:?}; the bench assumed RFC 3339 +00:00"
    );
    Ok(())
}

/// Drop the analytics rollup triggers (the figures stop following the items).
pub async fn drop_rollup_triggers(db: &Db) -> anyhow::Result<()> {
    let sql = match db {
        Db::Postgres(_) => {
            "DROP TRIGGER items_rollup_insert ON items; \
             DROP TRIGGER items_rollup_update ON items; \
             DROP TRIGGER review_decisions_rollup ON review_decisions"
        }
        Db::Sqlite(_) => {
            "DROP TRIGGER items_rollup_insert; DROP TRIGGER items_rollup_update; \
             DROP TRIGGER review_decisions_rollup"
        }
    };
    alta_actors::store::with_db!(db, |pool| sqlx::raw_sql(sql)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Where a fresh server runs: SQLite in a temporary folder, or a throw-away schema of
/// the PostgreSQL at `database_url` (named `{schema_prefix}_…`); what to keep after.
pub struct Fresh<'a> {
    pub backend: Backend,
    pub database_url: &'a str,
    pub schema_prefix: &'a str,
    /// Keep the database (and the data folder) afterwards, and say where.
    pub keep: bool,
    /// The server's REVIEW_DIGEST_INTERVAL_SECONDS, if not its default.
    pub monitor_seconds: Option<u64>,
}

/// Run `body` against a fresh server (and a connection of the bench's own to its
/// database), then stop the server and drop what the run made (unless kept).
pub async fn on_fresh_server<T>(
    fresh: Fresh<'_>,
    body: impl AsyncFnOnce(&Server, &Db) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let backend = fresh.backend;
    let dir = tempfile::TempDir::new().context("could not create a temp dir")?;
    let run = async |server_url: Option<&str>, db_url: &str| -> anyhow::Result<T> {
        let server = Server::start(dir.path(), server_url, fresh.monitor_seconds).await?;
        let db = Db::connect(&DbOptions {
            url: db_url.to_owned(),
            max_connections: 2,
            create_sqlite_file: false,
        })
        .await
        .context("the bench's own connection to the server's database")?;
        let result = body(&server, &db).await;
        db.close().await;
        let stopped = server.shutdown().await;
        let out = result?;
        stopped?;
        Ok(out)
    };
    let result = match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", dir.path().join("alta.db").display());
            run(None, &url).await
        }
        Backend::Postgres => {
            let schema = PgSchema::create(fresh.database_url, fresh.schema_prefix).await?;
            progress(backend, format!("schema {}", schema.name));
            let url = schema.url();
            let result = run(Some(&url), &url).await;
            if fresh.keep {
                progress(backend, format!("kept: {url}"));
            } else {
                schema.drop_schema().await?;
            }
            result
        }
    };
    if fresh.keep {
        progress(backend, format!("kept: {}", dir.keep().display()));
    }
    result
}

/// Every analytics rollup table (see `migrations/postgres/0028_rollup_storage.sql`),
/// rewritten compactly: the bulk load and the labelling wrote each rollup row tens of
/// thousands of times inside single transactions (50,000 items each), which no traffic
/// does (each change commits alone or in a small group, pruning and autovacuum keep a row
/// on its page, half of which is left free for that); a plain VACUUM would leave the
/// thousands of pages those versions took, and the summary would read them.
pub const ROLLUP_VACUUM: &str = "VACUUM (FULL, ANALYZE) rollup_items, rollup_decisions, rollup_hours, \
     rollup_verdict_times, rollup_contributor_hours, rollup_engines, rollup_failures, \
     rollup_labels";

/// One measured operation: its latencies, sorted, and a rate where that is the point.
pub struct OpRow {
    pub op: String,
    pub latencies_us: Vec<u64>,
    /// Requests per second over the whole measurement, when that is the point.
    pub rate: Option<f64>,
}

impl OpRow {
    pub fn new(op: impl Into<String>, mut latencies: Vec<Duration>, rate: Option<f64>) -> Self {
        latencies.sort_unstable();
        Self {
            op: op.into(),
            latencies_us: latencies
                .iter()
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
                .collect(),
            rate,
        }
    }

    /// Nearest rank; `per_mille` 500 = p50, 990 = p99.
    pub fn percentile_ms(&self, per_mille: usize) -> f64 {
        let n = self.latencies_us.len();
        let rank = per_mille
            .saturating_mul(n)
            .div_ceil(1000)
            .clamp(1, n.max(1));
        self.latencies_us
            .get(rank - 1)
            .map_or(0.0, |&us| us as f64 / 1000.0)
    }

    pub fn mean_ms(&self) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.iter().sum::<u64>() as f64 / self.latencies_us.len() as f64 / 1000.0
    }
}

/// Measure each backend in turn: a failure is printed and the others go on. The
/// measurements, and whether one failed.
pub async fn each_backend<T>(
    backends: Vec<Backend>,
    measure: impl AsyncFn(Backend) -> anyhow::Result<T>,
) -> (Vec<T>, bool) {
    let mut measured = Vec::new();
    let mut failed = false;
    for backend in backends {
        let started = Instant::now();
        match measure(backend).await {
            Ok(m) => {
                progress(
                    backend,
                    format!("done in {:.0} s", started.elapsed().as_secs_f64()),
                );
                measured.push(m);
            }
            Err(err) => {
                eprintln!("error: {}: {err:#}", backend.name());
                failed = true;
            }
        }
    }
    (measured, failed)
}
