//! The review workflow at scale: queue reads, claims and decisions against the real
//! server, with a million items waiting for review in one project.
//!
//! For each backend: the real `Application` on a loopback port (SQLite in a temp dir,
//! or PostgreSQL in a fresh schema dropped afterwards). Through the API: a super admin
//! (made as `alta admin create` makes one), a project with `reviews_required` = 1, and
//! contributors and reviewers who register, verify their address (the link from the
//! outbox in `DATA_DIR/outbox`), and join by invitation. Then `--items` pending items
//! are bulk-loaded with SQL straight into the server's database, in transactions of
//! `--batch` rows: PostgreSQL `INSERT … SELECT … FROM generate_series`, SQLite a
//! recursive CTE. Each item is what a processed, submitted upload looks like to the
//! queries: a `document`, status `pending_review`, not deleted, from one of the
//! contributors (never a reviewer), `review_round` 0, `submitted_at` set, every NOT
//! NULL column filled, and ids that are UUIDv7 in upload order (48-bit millisecond
//! stamp, 1.5 s apart). The first 5,000 items and every 1,000th after them also have
//! their OCR job (`done`) and its text revision, so queue pages carry text, history and
//! job; the rest have none. On SQLite, UUIDs are 16-byte BLOBs and timestamps TEXT in
//! the exact form sqlx writes for `DateTime<Utc>` (RFC 3339, `AutoSi`, `+00:00`);
//! the run checks that before measuring. PostgreSQL then gets `VACUUM ANALYZE`, as
//! autovacuum would; SQLite gets nothing, as the server never runs `ANALYZE`. Audit
//! rows for the uploads are not made (no queue query reads them).
//!
//! Measured (latency from sending the request to the end of the body; percentiles by
//! nearest rank, after `--warmup` requests that are not counted):
//! 0. Baselines, sequentially: `GET /api/auth/me` (HTTP and authentication alone) and
//!    `GET /api/review?limit=1`.
//! 1. `GET /api/review?project_id=` (default limit 50) by one reviewer, sequentially.
//! 2. The same with a cursor deep in the queue: a random position in its back half
//!    each time (the cursor is the id of the item before the page, as the server
//!    encodes it).
//! 3. `POST /api/review/next` then `POST /api/review/{id}/skip` (`next` returns the
//!    item one already holds, so each claim is given back), by one reviewer alone, then
//!    by `--skip-reviewers` in parallel: both latencies, reported separately. Each skip
//!    stays in that reviewer's queue filter for the round, so every later claim of
//!    theirs scans past it; the report gives the mean `next` latency of the first and
//!    last 100 claims. Then `next` followed by an approval, by one reviewer: a
//!    reviewer's ordinary loop, where nothing accumulates.
//! 4. Decisions: `PATCH /api/review/{id}` approve, by `--concurrency` reviewers in
//!    parallel, each deciding its own items (the oldest still pending): decisions/s
//!    and latency. With N = 1 each approval finishes its item.
//! 5. (First, right after the load.) Lists filtered by label: every item gets labels
//!    (`benches/common/label_filter.rs`), then `GET /api/documents?label=…` by
//!    `--concurrency` readers.
//! 6. (Then.) Analytics reads (`benches/common/analytics_reads.rs`): the project's and
//!    the platform's summary, both leaderboards, a contributor's figures, by
//!    `--concurrency` readers. `--reads-only` measures 5 and 6 only; `--skip-reads`
//!    leaves them out (they need at least 100,000 items).
//!
//! Every claim, skip and decision of a project runs in that project's one actor, so
//! parallel reviewers' requests wait for each other there.
//!
//! Then, on PostgreSQL, `EXPLAIN (ANALYZE, BUFFERS)` of the queue statement (the
//! server's own, `store::reviews::queue_sql`, checked against the API's answer) for the
//! first page, a deep page, and a reviewer's `next` after their skips, plus the generic plan a reused prepared statement may switch to; on SQLite,
//! `EXPLAIN QUERY PLAN`. Also timed: the review monitor's `pending_stats` (it runs every
//! `REVIEW_DIGEST_INTERVAL_SECONDS`, 60 s by default, during the run too).
//!
//! ```text
//! cargo bench --bench review -- [--backend sqlite|postgres|both] [--items N]
//!     [--samples S] [--warmup W] [--skip-reviewers R] [--concurrency C]
//!     [--decisions D] [--batch B] [--database-url postgres://...]
//!     [--review-monitor-seconds S] [--reads-only | --skip-reads]
//!     [--without-rollups] [--keep]
//! ```
//!
//! PostgreSQL: `--database-url` (or `BENCH_DATABASE_URL`), default
//! `postgres://postgres@127.0.0.1:5432/postgres`; the run creates a schema
//! `rv_<unix ms>_<random>` there, points the server at it with `search_path`, and drops
//! it afterwards. The table goes to stdout, progress to stderr. Any non-2xx answer (or
//! an empty queue where one is not expected) ends the run with a non-zero exit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/analytics_reads.rs"]
mod analytics_reads;
#[path = "common/bulk.rs"]
mod bulk;
#[path = "common/label_filter.rs"]
mod label_filter;
#[path = "common/pg_schema.rs"]
mod pg_schema;

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use alta_actors::store::Db;
use anyhow::{Context, anyhow, ensure};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Parser;
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;
use uuid::Uuid;

use crate::bulk::{
    ActorTimes, Fresh, Http, LoadPlan, OpRow, ROLLUP_VACUUM, Server, User, bulk_load,
    check_sqlite_rows, drop_rollup_triggers, each_backend, load_average, on_fresh_server, progress,
    setup_people, uuid_at,
};
use crate::pg_schema::{Backend, BackendArg, DEFAULT_PG_URL, check_postgres, redact};

/// Decisions each decider makes before the timed ones.
const DECISION_WARMUP_EACH: usize = 5;
/// `GET /api/review`'s default page size.
const PAGE: usize = 50;
const P99_TARGET_MS: f64 = 10.0;

#[derive(Parser)]
struct Args {
    /// Which database(s) to measure.
    #[arg(long, value_enum, default_value_t = BackendArg::Both)]
    backend: BackendArg,
    /// Pending items bulk-loaded into the one project.
    #[arg(long, default_value_t = 1_000_000)]
    items: i64,
    /// Timed requests per latency measurement (after the warm-up).
    #[arg(long, default_value_t = 1_000)]
    samples: usize,
    /// Untimed requests before each latency measurement.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Reviewers claiming (`next`) and skipping in parallel.
    #[arg(long, default_value_t = 4)]
    skip_reviewers: usize,
    /// Reviewers deciding in parallel.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Timed decisions (all reviewers together).
    #[arg(long, default_value_t = 2_000)]
    decisions: usize,
    /// Items inserted per transaction.
    #[arg(long, default_value_t = 50_000)]
    batch: i64,
    /// PostgreSQL server and database to create the throw-away schema in.
    #[arg(long, env = "BENCH_DATABASE_URL", default_value = DEFAULT_PG_URL)]
    database_url: String,
    /// The server's REVIEW_DIGEST_INTERVAL_SECONDS: how often the review monitor scans
    /// the pending items for its gauges (default: the server's, 60 s). A large value
    /// takes that scan out of the measurement, for comparison.
    #[arg(long)]
    review_monitor_seconds: Option<u64>,
    /// Drop the analytics rollup triggers after the load: the "without" of what the
    /// rollups cost a decision.
    #[arg(long)]
    without_rollups: bool,
    /// Measure only the reads (phases 5 and 6: label-filtered lists, analytics), not
    /// the review phases.
    #[arg(long)]
    reads_only: bool,
    /// Skip the reads (phases 5 and 6): for the review phases alone, or for fewer items
    /// than the reads' pages and rare labels need (100,000).
    #[arg(long, conflicts_with = "reads_only")]
    skip_reads: bool,
    /// Keep the database afterwards (the PostgreSQL schema, or the SQLite file's
    /// directory) and print where it is, to look at it.
    #[arg(long)]
    keep: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    fn backends(&self) -> Vec<Backend> {
        self.backend.backends()
    }

    fn decision_warmup(&self) -> usize {
        DECISION_WARMUP_EACH * self.concurrency
    }

    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.samples > 0 && self.skip_reviewers > 0 && self.concurrency > 0,
            "--samples, --skip-reviewers and --concurrency must be positive"
        );
        ensure!(self.batch > 0, "--batch must be positive");
        // Approvals take items from the head; deep pages read the back half.
        let head = (self.decisions + self.decision_warmup() + self.samples + self.warmup) as i64;
        ensure!(
            self.items >= 2 * head + 2 * PAGE as i64 + 1_000,
            "--items {} is too small for --decisions {} (need at least {})",
            self.items,
            self.decisions,
            2 * head + 2 * PAGE as i64 + 1_000
        );
        Ok(())
    }

    /// The command line that reproduces this run (any password in the URL masked).
    fn command_line(&self) -> String {
        let backend = self.backend.name();
        let mut cmd = format!(
            "cargo bench --bench review -- --backend {backend} --items {} --samples {} \
             --warmup {} --skip-reviewers {} --concurrency {} --decisions {} --batch {}",
            self.items,
            self.samples,
            self.warmup,
            self.skip_reviewers,
            self.concurrency,
            self.decisions,
            self.batch
        );
        if let Some(seconds) = self.review_monitor_seconds {
            cmd.push_str(&format!(" --review-monitor-seconds {seconds}"));
        }
        if self.reads_only {
            cmd.push_str(" --reads-only");
        }
        if self.skip_reads {
            cmd.push_str(" --skip-reads");
        }
        if self.without_rollups {
            cmd.push_str(" --without-rollups");
        }
        if self.backend != BackendArg::Sqlite && self.database_url != DEFAULT_PG_URL {
            cmd.push_str(&format!(" --database-url '{}'", redact(&self.database_url)));
        }
        cmd
    }
}

// --- the queue statement (a copy, for EXPLAIN) ----------------------------------------

/// `store::items::COLUMNS` (crate-private there).
const ITEM_COLUMNS: &str = "id, project_id, kind, contributor_id, status, title, language, \
     external_id, metadata, file_name, detected_type, content_type, size_bytes, sha256, blob_key, \
     audio, created_at, updated_at, job_id, processing_error_code, processing_error, \
     review_round, submitted_at, review_claimed_by, review_lease_until, decided_at";

/// Parameters of one queue read.
struct QueueArgs {
    project: Uuid,
    reviewer: Uuid,
    now: DateTime<Utc>,
    limit: i64,
    after: Option<Uuid>,
}

async fn queue_ids(db: &Db, q: &QueueArgs) -> anyhow::Result<Vec<Uuid>> {
    let sql = format!(
        "SELECT id FROM ({}) AS page ORDER BY id",
        alta_actors::store::reviews::queue_sql(q.after.is_some())
    );
    let ids = alta_actors::store::with_db!(db, |pool| {
        let mut query = sqlx::query_scalar::<_, Uuid>(sqlx::AssertSqlSafe(sql.clone()))
            .bind(q.project)
            .bind(q.reviewer)
            .bind(q.now)
            .bind(q.limit);
        if let Some(after) = q.after {
            query = query.bind(after);
        }
        query.fetch_all(pool).await
    })?;
    Ok(ids)
}

/// The queue statement with its parameters written in (PostgreSQL), for `EXPLAIN`.
fn pg_inline(sql: &str, q: &QueueArgs) -> String {
    let mut sql = sql.to_owned();
    if let Some(after) = q.after {
        sql = sql.replace("$5", &format!("'{after}'::uuid"));
    }
    sql.replace("$4", &q.limit.to_string())
        .replace(
            "$3",
            &format!(
                "'{}'::timestamptz",
                q.now.to_rfc3339_opts(SecondsFormat::Micros, true)
            ),
        )
        .replace("$2", &format!("'{}'::uuid", q.reviewer))
        .replace("$1", &format!("'{}'::uuid", q.project))
}

async fn pg_lines(conn: &mut sqlx::PgConnection, sql: String) -> anyhow::Result<String> {
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .context("EXPLAIN")?;
    Ok(rows
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the queue statement with these parameters: the
/// custom plan (parameters known, as for the first executions of a prepared
/// statement), and with `generic` also the generic plan PostgreSQL may switch a
/// reused prepared statement to.
async fn pg_explain(
    pool: &sqlx::PgPool,
    q: &QueueArgs,
    generic: bool,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut conn = pool.acquire().await?;
    let sql = alta_actors::store::reviews::queue_sql(q.after.is_some());
    let mut out = Vec::new();
    // Once unmeasured, so the plan shows a warm cache as the server sees it.
    pg_lines(&mut conn, format!("EXPLAIN ANALYZE {}", pg_inline(&sql, q))).await?;
    let custom = pg_lines(
        &mut conn,
        format!("EXPLAIN (ANALYZE, BUFFERS) {}", pg_inline(&sql, q)),
    )
    .await?;
    out.push(("custom plan".to_owned(), custom));
    if generic {
        let types = if q.after.is_some() {
            "uuid, uuid, timestamptz, bigint, uuid"
        } else {
            "uuid, uuid, timestamptz, bigint"
        };
        pg_lines(&mut conn, format!("PREPARE bench_queue ({types}) AS {sql}")).await?;
        pg_lines(&mut conn, "SET plan_cache_mode = force_generic_plan".into()).await?;
        let mut params = vec![
            format!("'{}'", q.project),
            format!("'{}'", q.reviewer),
            format!("'{}'", q.now.to_rfc3339_opts(SecondsFormat::Micros, true)),
            q.limit.to_string(),
        ];
        if let Some(after) = q.after {
            params.push(format!("'{after}'"));
        }
        let plan = pg_lines(
            &mut conn,
            format!(
                "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_queue ({})",
                params.join(", ")
            ),
        )
        .await;
        pg_lines(&mut conn, "DEALLOCATE bench_queue".into()).await?;
        pg_lines(&mut conn, "RESET plan_cache_mode".into()).await?;
        out.push(("generic plan (force_generic_plan)".to_owned(), plan?));
    }
    Ok(out)
}

async fn sqlite_query_plan(pool: &sqlx::SqlitePool, q: &QueueArgs) -> anyhow::Result<String> {
    let sql = format!(
        "EXPLAIN QUERY PLAN {}",
        alta_actors::store::reviews::queue_sql(q.after.is_some())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(q.project)
        .bind(q.reviewer)
        .bind(q.now)
        .bind(q.limit);
    if let Some(after) = q.after {
        query = query.bind(after);
    }
    let rows = query.fetch_all(pool).await?;
    Ok(rows
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `held_by` of `actors/src/store/reviews.rs`: the first statement of every `next`.
fn held_by_sql() -> String {
    format!(
        "SELECT {ITEM_COLUMNS} FROM items WHERE review_claimed_by = $1 AND project_id = $2 \
         AND status = 'pending_review' AND deleted_at IS NULL AND review_lease_until > $3 LIMIT 1"
    )
}

/// Median time of `runs` executions of the queue statement on the bench's own
/// connection (a prepared statement, as the server runs it), in ms.
async fn time_queue(db: &Db, q: &QueueArgs, runs: usize) -> anyhow::Result<f64> {
    let sql = alta_actors::store::reviews::queue_sql(q.after.is_some());
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        alta_actors::store::with_db!(db, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(q.project)
                .bind(q.reviewer)
                .bind(q.now)
                .bind(q.limit);
            if let Some(after) = q.after {
                query = query.bind(after);
            }
            query.fetch_all(pool).await.map(|_| ())
        })?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// As `time_queue`, for `held_by`.
async fn time_held_by(db: &Db, project: Uuid, reviewer: Uuid, runs: usize) -> anyhow::Result<f64> {
    let sql = held_by_sql();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        alta_actors::store::with_db!(db, |pool| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(reviewer)
            .bind(project)
            .bind(Utc::now())
            .fetch_all(pool)
            .await
            .map(|_| ()))?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The plans of the queue statement for these cases (PostgreSQL: `EXPLAIN (ANALYZE,
/// BUFFERS)`, with the generic plan where asked; SQLite: `EXPLAIN QUERY PLAN`), each
/// with the statement's median time.
async fn queue_plans(
    db: &Db,
    cases: &[(String, QueueArgs, bool)],
) -> anyhow::Result<Vec<(String, String)>> {
    let mut plans = Vec::new();
    for (title, q, generic) in cases {
        let median = time_queue(db, q, 11).await?;
        let title = format!(
            "{title}; run alone by the bench: median {median:.2} ms of 11 runs, round trip included"
        );
        match db {
            Db::Postgres(pool) => {
                for (kind, plan) in pg_explain(pool, q, *generic).await? {
                    plans.push((
                        format!("EXPLAIN (ANALYZE, BUFFERS) queue_sql: {title}; {kind}"),
                        plan,
                    ));
                }
            }
            Db::Sqlite(sqlite) => plans.push((
                format!("EXPLAIN QUERY PLAN queue_sql: {title}"),
                sqlite_query_plan(sqlite.pool(), q).await?,
            )),
        }
    }
    Ok(plans)
}

/// The plan of `held_by` for `reviewer` (who holds nothing), with its median time.
async fn held_by_plan(db: &Db, project: Uuid, reviewer: Uuid) -> anyhow::Result<(String, String)> {
    let median = time_held_by(db, project, reviewer, 11).await?;
    let what = format!(
        "held_by (first statement of every `next`), reviewer holding nothing; the \
         statement run alone by the bench: median {median:.2} ms of 11 runs, round trip \
         included"
    );
    Ok(match db {
        Db::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            let sql = held_by_sql()
                .replace("$3", &format!("'{}'::timestamptz", Utc::now().to_rfc3339()))
                .replace("$2", &format!("'{project}'::uuid"))
                .replace("$1", &format!("'{reviewer}'::uuid"));
            (
                format!("EXPLAIN (ANALYZE, BUFFERS) {what}"),
                pg_lines(&mut conn, format!("EXPLAIN (ANALYZE, BUFFERS) {sql}")).await?,
            )
        }
        Db::Sqlite(sqlite) => {
            let pool = sqlite.pool();
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "EXPLAIN QUERY PLAN {}",
                held_by_sql()
            )))
            .bind(reviewer)
            .bind(project)
            .bind(Utc::now())
            .fetch_all(pool)
            .await?;
            (
                format!("EXPLAIN QUERY PLAN {what}"),
                rows.iter()
                    .map(|r| r.get::<String, _>("detail"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        }
    })
}

// --- measurements ---------------------------------------------------------------------

struct Report {
    backend: Backend,
    items: i64,
    texts: i64,
    load_seconds: f64,
    rows: Vec<OpRow>,
    /// (title, plan text)
    plans: Vec<(String, String)>,
    notes: Vec<String>,
}

fn queue_path(project: Uuid, cursor: Option<&str>) -> String {
    match cursor {
        Some(c) => format!("/api/review?project_id={project}&cursor={c}"),
        None => format!("/api/review?project_id={project}"),
    }
}

fn page_ids(page: &Value) -> anyhow::Result<Vec<Uuid>> {
    page["items"]
        .as_array()
        .ok_or_else(|| anyhow!("no items in the queue page"))?
        .iter()
        .map(|e| uuid_at(e, "/item/id"))
        .collect()
}

/// 1. The first page, one reader, sequentially.
async fn measure_head(
    http: &Http,
    args: &Args,
    project: Uuid,
    reader: &User,
    expected: &[Uuid],
) -> anyhow::Result<OpRow> {
    let path = queue_path(project, None);
    let mut latencies = Vec::with_capacity(args.samples);
    for i in 0..args.warmup + args.samples {
        let answer = http
            .ok(Method::GET, &path, Some(&reader.token), None)
            .await?;
        if i == 0 {
            let page = answer.json()?;
            let ids = page_ids(&page)?;
            ensure!(
                ids == expected[..PAGE],
                "the first page is not the first {PAGE} items in id order"
            );
            ensure!(
                page["next_cursor"].is_string(),
                "no next_cursor on a full page"
            );
            let first = &page["items"][0];
            ensure!(
                first["text"]["text"].is_string() && first["item"]["job"]["state"] == "done",
                "the head item has no text or job in the queue: {first}"
            );
        }
        if i >= args.warmup {
            latencies.push(answer.elapsed);
        }
    }
    Ok(OpRow::new(
        format!("GET /api/review (first page, {PAGE})"),
        latencies,
        None,
    ))
}

/// 2. A page after a random position in the back half of the queue.
async fn measure_deep(
    http: &Http,
    args: &Args,
    project: Uuid,
    reader: &User,
    ids: &[Uuid],
) -> anyhow::Result<OpRow> {
    let mut latencies = Vec::with_capacity(args.samples);
    let (lo, hi) = (ids.len() / 2, ids.len() - PAGE - 2);
    for i in 0..args.warmup + args.samples {
        let at = rand::rng().random_range(lo..hi);
        let cursor = URL_SAFE_NO_PAD.encode(ids[at].as_bytes());
        let answer = http
            .ok(
                Method::GET,
                &queue_path(project, Some(&cursor)),
                Some(&reader.token),
                None,
            )
            .await?;
        let page = answer.json()?;
        let got = page_ids(&page)?;
        ensure!(
            got == ids[at + 1..at + 1 + PAGE],
            "the page after item {at} is not the next {PAGE} items"
        );
        if i >= args.warmup {
            latencies.push(answer.elapsed);
        }
    }
    Ok(OpRow::new(
        format!("GET /api/review (cursor in back half, {PAGE})"),
        latencies,
        None,
    ))
}

/// What a reviewer does with the item `next` gave them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    /// `POST /api/review/{id}/skip`: the item stays pending, and in this reviewer's
    /// skips for the round.
    Skip,
    /// `PATCH /api/review/{id}` approve: the item leaves the queue.
    Approve,
}

/// Result of a `next` loop.
struct Claims {
    next: OpRow,
    then: OpRow,
    /// Items each reviewer claimed (warm-up included).
    per_reviewer: usize,
    /// Mean `next` latency of the first and of the last 100 timed samples (one
    /// reviewer only), ms.
    trend: Option<(f64, f64)>,
}

/// 3. `next`, then skip or approve the item, by `users` in parallel (each in a loop).
async fn measure_claims(
    http: &Http,
    args: &Args,
    project: Uuid,
    users: &[User],
    then: Then,
) -> anyhow::Result<Claims> {
    let r = users.len();
    let per_warm = args.warmup.div_ceil(r);
    let per_timed = args.samples.div_ceil(r);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for user in users.iter().cloned() {
        let http = http.clone();
        tasks.spawn(async move {
            let next_path = format!("/api/review/next?project_id={project}");
            let approve = json!({"decision": "approve"});
            let mut next = Vec::with_capacity(per_timed);
            let mut after = Vec::with_capacity(per_timed);
            let mut seen = std::collections::HashSet::new();
            for i in 0..per_warm + per_timed {
                let answer = http
                    .ok(Method::POST, &next_path, Some(&user.token), None)
                    .await?;
                ensure!(
                    answer.status == StatusCode::OK,
                    "{}: next answered {} (empty queue?)",
                    user.email,
                    answer.status
                );
                let entry = answer.json()?;
                let item = uuid_at(&entry, "/item/id")?;
                ensure!(
                    entry["lease_until"].is_string(),
                    "{}: next gave {item} without a lease",
                    user.email
                );
                // An item another reviewer held may come back once they skip it;
                // one this reviewer skipped (or approved) never does.
                ensure!(
                    seen.insert(item),
                    "{}: next gave {item} a second time",
                    user.email
                );
                let followed = match then {
                    Then::Skip => {
                        http.ok(
                            Method::POST,
                            &format!("/api/review/{item}/skip"),
                            Some(&user.token),
                            None,
                        )
                        .await?
                    }
                    Then::Approve => {
                        let answer = http
                            .ok(
                                Method::PATCH,
                                &format!("/api/review/{item}"),
                                Some(&user.token),
                                Some(&approve),
                            )
                            .await?;
                        let result = answer.json()?;
                        ensure!(
                            result["item"]["status"] == "approved",
                            "{}: approving {item}: {result}",
                            user.email
                        );
                        answer
                    }
                };
                if i >= per_warm {
                    next.push(answer.elapsed);
                    after.push(followed.elapsed);
                }
            }
            Ok::<_, anyhow::Error>((next, after))
        });
    }
    let (mut next, mut after) = (Vec::new(), Vec::new());
    let mut trend = None;
    while let Some(joined) = tasks.join_next().await {
        let (n, a) = joined.context("a reviewer task panicked")??;
        if r == 1 && n.len() >= 200 {
            let mean = |d: &[Duration]| {
                d.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / d.len() as f64
            };
            trend = Some((mean(&n[..100]), mean(&n[n.len() - 100..])));
        }
        next.extend(n);
        after.extend(a);
    }
    let pairs_per_second = next.len() as f64 / started.elapsed().as_secs_f64();
    let who = if r == 1 {
        "1 reviewer".to_owned()
    } else {
        format!("{r} reviewers")
    };
    let (then_op, then_what) = match then {
        Then::Skip => ("POST /api/review/{id}/skip", "skip"),
        Then::Approve => ("PATCH /api/review/{id} approve", "approve"),
    };
    Ok(Claims {
        next: OpRow::new(
            format!("POST /api/review/next, +{then_what} ({who})"),
            next,
            Some(pairs_per_second),
        ),
        then: OpRow::new(format!("{then_op} ({who})"), after, None),
        per_reviewer: per_warm + per_timed,
        trend,
    })
}

/// A fixed request, sequentially: a baseline for the others.
async fn measure_plain(
    http: &Http,
    args: &Args,
    label: &str,
    path: &str,
    token: &str,
) -> anyhow::Result<(OpRow, usize)> {
    let mut latencies = Vec::with_capacity(args.samples);
    let mut bytes = 0;
    for i in 0..args.warmup + args.samples {
        let answer = http.ok(Method::GET, path, Some(token), None).await?;
        bytes = answer.body.len();
        if i >= args.warmup {
            latencies.push(answer.elapsed);
        }
    }
    Ok((OpRow::new(label, latencies, None), bytes))
}

/// 4. Approvals by `--concurrency` reviewers, each on its own items.
async fn measure_decisions(
    http: &Http,
    args: &Args,
    deciders: &[User],
    items: &[Uuid],
) -> anyhow::Result<OpRow> {
    let c = deciders.len();
    let (warm, timed) = items.split_at(args.decision_warmup());
    let run = |slice: Vec<Uuid>| {
        let mut tasks = tokio::task::JoinSet::new();
        for (k, user) in deciders.iter().cloned().enumerate() {
            let mine: Vec<Uuid> = slice.iter().skip(k).step_by(c).copied().collect();
            let http = http.clone();
            tasks.spawn(async move {
                let body = json!({"decision": "approve"});
                let mut latencies = Vec::with_capacity(mine.len());
                for item in mine {
                    let answer = http
                        .ok(
                            Method::PATCH,
                            &format!("/api/review/{item}"),
                            Some(&user.token),
                            Some(&body),
                        )
                        .await?;
                    let result = answer.json()?;
                    ensure!(
                        result["decision"]["outcome"] == "approved"
                            && result["item"]["status"] == "approved",
                        "{}: approving {item} did not approve it: {result}",
                        user.email
                    );
                    latencies.push(answer.elapsed);
                }
                Ok::<_, anyhow::Error>(latencies)
            });
        }
        tasks
    };
    let mut warmup = run(warm.to_vec());
    while let Some(joined) = warmup.join_next().await {
        joined.context("a decider panicked")??;
    }
    let before = ActorTimes::read(http).await?;
    let started = Instant::now();
    let mut tasks = run(timed.to_vec());
    let mut latencies = Vec::with_capacity(timed.len());
    while let Some(joined) = tasks.join_next().await {
        latencies.extend(joined.context("a decider panicked")??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = timed.len() as f64 / elapsed;
    // Where the project's actor spent the phase (the time between the groups is its
    // waiting for the next command).
    let after = ActorTimes::read(http).await?;
    for line in before.since(&after) {
        eprintln!("[review c={c}, {elapsed:.1} s] {line}");
    }
    Ok(OpRow::new(
        format!("PATCH /api/review/{{id}} approve (c={c})"),
        latencies,
        Some(rate),
    ))
}

// --- one backend ----------------------------------------------------------------------

async fn measure(backend: Backend, args: &Args) -> anyhow::Result<Report> {
    let fresh = Fresh {
        backend,
        database_url: &args.database_url,
        schema_prefix: "rv",
        keep: args.keep,
        monitor_seconds: args.review_monitor_seconds,
    };
    on_fresh_server(fresh, async |server, db| {
        run_on(backend, args, server, db).await
    })
    .await
}

async fn run_on(backend: Backend, args: &Args, server: &Server, db: &Db) -> anyhow::Result<Report> {
    let http = Http::new(&server.base)?;
    let (people, project) = setup_people(
        &http,
        server,
        args.skip_reviewers,
        args.concurrency,
        backend,
    )
    .await?;
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
            "loaded in {:.1} s ({:.0} items/s); {} with job and text",
            load.seconds,
            args.items as f64 / load.seconds,
            load.texts
        ),
    );
    let ids = &load.ids;
    if args.without_rollups {
        progress(backend, "dropping the rollup triggers (--without-rollups)");
        drop_rollup_triggers(db).await?;
    }
    // The rows decode through the API like uploaded ones.
    for id in [ids[0], ids[ids.len() / 2], ids[ids.len() - 1]] {
        let item = http
            .ok(
                Method::GET,
                &format!("/api/documents/{id}"),
                Some(&people.owner.token),
                None,
            )
            .await?
            .json()?;
        ensure!(
            item["status"] == "pending_review",
            "item {id} through the API: {item}"
        );
    }
    // The copy of the queue statement returns what the API returns.
    let head_args = QueueArgs {
        project,
        reviewer: people.reader.id,
        now: Utc::now(),
        limit: PAGE as i64 + 1,
        after: None,
    };
    let direct = queue_ids(db, &head_args).await?;
    ensure!(
        direct == ids[..=PAGE],
        "queue_sql run directly disagrees with the loaded queue"
    );

    let mut rows = Vec::new();
    let mut notes = vec![format!("load average at start: {}", load_average())];
    let reader = &people.reader;

    let mut plans = Vec::new();
    if !args.skip_reads {
        progress(backend, "lists filtered by label");
        let labelled =
            label_filter::measure(&http, backend, args, db, project, &people.owner, ids).await?;
        rows.extend(labelled.rows);
        plans = labelled.plans;
        notes.extend(labelled.notes);
        progress(backend, "analytics reads");
        if let Db::Postgres(pool) = db {
            // The rollup tables as steady traffic leaves them (see ROLLUP_VACUUM).
            progress(
                backend,
                "VACUUM FULL the rollups (the bulk load's versions)",
            );
            sqlx::query(ROLLUP_VACUUM)
                .execute(pool)
                .await
                .context("VACUUM FULL the rollups")?;
        }
        rows.extend(
            analytics_reads::measure(
                &http,
                backend,
                args,
                project,
                &people.owner,
                &people.contributors[0],
            )
            .await?,
        );
    }
    if args.reads_only {
        return Ok(Report {
            backend,
            items: args.items,
            texts: load.texts,
            load_seconds: load.seconds,
            rows,
            plans,
            notes,
        });
    }

    progress(
        backend,
        "baselines: GET /api/auth/me, GET /api/review?limit=1",
    );
    let (me, _) = measure_plain(
        &http,
        args,
        "GET /api/auth/me (baseline: HTTP + auth)",
        "/api/auth/me",
        &reader.token,
    )
    .await?;
    rows.push(me);
    let (one, _) = measure_plain(
        &http,
        args,
        "GET /api/review?limit=1 (first page, 1)",
        &format!("{}&limit=1", queue_path(project, None)),
        &reader.token,
    )
    .await?;
    rows.push(one);
    progress(backend, "GET /api/review, first page");
    rows.push(measure_head(&http, args, project, reader, ids).await?);
    let page_bytes = http
        .ok(
            Method::GET,
            &queue_path(project, None),
            Some(&reader.token),
            None,
        )
        .await?
        .body
        .len();
    notes.push(format!(
        "a first page of {PAGE} (each with ~1 KB of text) is {page_bytes} bytes of JSON"
    ));
    progress(backend, "GET /api/review, deep cursor");
    rows.push(measure_deep(&http, args, project, reader, ids).await?);

    progress(backend, "next + skip by one reviewer");
    let solo = measure_claims(
        &http,
        args,
        project,
        std::slice::from_ref(&people.solo),
        Then::Skip,
    )
    .await?;
    if let Some((first, last)) = solo.trend {
        notes.push(format!(
            "next + skip, 1 reviewer: {} items skipped; mean `next` {first:.2} ms over the \
             first 100 timed claims, {last:.2} ms over the last 100 (each claim scans past \
             the reviewer's own skips at the head)",
            solo.per_reviewer
        ));
    }
    rows.push(solo.next);
    rows.push(solo.then);
    // Now, while the items this reviewer skipped are still pending (later phases approve
    // the oldest items).
    let solo_cases = vec![(
        format!(
            "queue head for `next` (LIMIT 1) by the reviewer who just skipped {} items \
             alone, those items still pending",
            solo.per_reviewer
        ),
        QueueArgs {
            project,
            reviewer: people.solo.id,
            now: Utc::now(),
            limit: 1,
            after: None,
        },
        true,
    )];
    let solo_plans = queue_plans(db, &solo_cases).await?;
    progress(
        backend,
        format!("next + skip by {} reviewers", people.skippers.len()),
    );
    let parallel = measure_claims(&http, args, project, &people.skippers, Then::Skip).await?;
    notes.push(format!(
        "next + skip, {} reviewers: {} items skipped by each; every claim and skip of a \
         project runs in its one project actor, so they wait for each other",
        people.skippers.len(),
        parallel.per_reviewer
    ));
    rows.push(parallel.next);
    rows.push(parallel.then);
    progress(backend, "next + approve by one reviewer");
    let worker = measure_claims(
        &http,
        args,
        project,
        std::slice::from_ref(&people.worker),
        Then::Approve,
    )
    .await?;
    if let Some((first, last)) = worker.trend {
        notes.push(format!(
            "next + approve, 1 reviewer: {} items approved; mean `next` {first:.2} ms over \
             the first 100 timed claims, {last:.2} ms over the last 100",
            worker.per_reviewer
        ));
    }
    rows.push(worker.next);
    rows.push(worker.then);

    // Plans, before decisions change the head.
    let deep_at = ids.len() * 3 / 4;
    let cases = vec![
        (
            "first page (GET, LIMIT 51)".to_owned(),
            QueueArgs {
                now: Utc::now(),
                ..head_args
            },
            true,
        ),
        (
            "page after the item at 3/4 of the queue (GET with cursor, LIMIT 51)".to_owned(),
            QueueArgs {
                project,
                reviewer: reader.id,
                now: Utc::now(),
                limit: PAGE as i64 + 1,
                after: Some(ids[deep_at]),
            },
            false,
        ),
    ];
    plans.extend(queue_plans(db, &cases).await?);
    plans.extend(solo_plans);
    plans.push(held_by_plan(db, project, people.worker.id).await?);
    // The review monitor's gauge query, which runs every minute on the whole table.
    let stats_sql = "SELECT project_id, COUNT(*) AS pending, MIN(submitted_at) AS \
                     oldest_submitted_at FROM items WHERE status = 'pending_review' AND \
                     deleted_at IS NULL GROUP BY project_id";
    let started = Instant::now();
    alta_actors::store::with_db!(db, |pool| sqlx::query(stats_sql)
        .fetch_all(pool)
        .await
        .map(|_| ()))?;
    notes.push(format!(
        "review monitor's pending_stats (every REVIEW_DIGEST_INTERVAL_SECONDS, 60 s): {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    ));
    if let Db::Postgres(pool) = db {
        let mut conn = pool.acquire().await?;
        plans.push((
            "EXPLAIN (ANALYZE, BUFFERS) pending_stats (review monitor, every 60 s)".into(),
            pg_lines(&mut conn, format!("EXPLAIN (ANALYZE, BUFFERS) {stats_sql}")).await?,
        ));
    }

    progress(
        backend,
        format!(
            "decisions by {} reviewers in parallel ({} + {} warm-up)",
            people.deciders.len(),
            args.decisions,
            args.decision_warmup()
        ),
    );
    // The oldest items still pending (none is held: every claim above was given back
    // or decided).
    let sql = "SELECT id FROM items WHERE project_id = $1 AND status = 'pending_review' \
               AND deleted_at IS NULL ORDER BY id LIMIT $2";
    let wanted = args.decisions + args.decision_warmup();
    let decided: Vec<Uuid> = alta_actors::store::with_db!(db, |pool| sqlx::query_scalar(sql)
        .bind(project)
        .bind(wanted as i64)
        .fetch_all(pool)
        .await)?;
    ensure!(
        decided.len() == wanted,
        "only {} items left to decide",
        decided.len()
    );
    rows.push(measure_decisions(&http, args, &people.deciders, &decided).await?);
    let sql = "SELECT COUNT(*) FROM items WHERE project_id = $1 AND status = 'approved' \
               AND decided_at IS NOT NULL";
    let approved: i64 = alta_actors::store::with_db!(db, |pool| sqlx::query_scalar(sql)
        .bind(project)
        .fetch_one(pool)
        .await)?;
    let expected = worker.per_reviewer + decided.len();
    ensure!(
        approved as usize == expected,
        "{approved} items approved after {expected} approvals"
    );
    // The same first page once the head holds decided items.
    let after_decisions = vec![(
        format!("first page (GET, LIMIT 51) after {expected} approvals of the oldest items"),
        QueueArgs {
            project,
            reviewer: reader.id,
            now: Utc::now(),
            limit: PAGE as i64 + 1,
            after: None,
        },
        false,
    )];
    plans.extend(queue_plans(db, &after_decisions).await?);
    if let Db::Postgres(pool) = db {
        let (live, dead, vacuumed): (i64, i64, bool) = sqlx::query_as(
            "SELECT n_live_tup, n_dead_tup, last_autovacuum IS NOT NULL FROM \
             pg_stat_user_tables WHERE relname = 'items' AND schemaname = current_schema()",
        )
        .fetch_one(pool)
        .await?;
        notes.push(format!(
            "items at the end: {live} live and {dead} dead row versions (each claim, skip and \
             decision rewrites the row); autovacuum {} run on it since the load",
            if vacuumed { "has" } else { "has not" }
        ));
    }
    notes.push(format!("load average at end: {}", load_average()));

    Ok(Report {
        backend,
        items: args.items,
        texts: load.texts,
        load_seconds: load.seconds,
        rows,
        plans,
        notes,
    })
}

// --- output ---------------------------------------------------------------------------

fn print_reports(reports: &[Report], args: &Args) {
    println!(
        "{:<9} {:>8}  {:<48} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "backend",
        "items",
        "operation",
        "samples",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "mean ms",
        "rate/s"
    );
    for r in reports {
        for row in &r.rows {
            println!(
                "{:<9} {:>8}  {:<48} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9}",
                r.backend.name(),
                r.items,
                row.op,
                row.latencies_us.len(),
                row.percentile_ms(500),
                row.percentile_ms(900),
                row.percentile_ms(990),
                row.percentile_ms(1000),
                row.mean_ms(),
                row.rate
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}")),
            );
        }
    }
    println!();
    println!(
        "rate/s: on `next` rows, claims per second (each followed by its skip or approve); \
         on the PATCH (c=N) row, decisions per second."
    );
    for r in reports {
        println!();
        println!(
            "== {}: {} items loaded in {:.1} s ({:.0} items/s), {} with OCR job and text",
            r.backend.name(),
            r.items,
            r.load_seconds,
            r.items as f64 / r.load_seconds,
            r.texts
        );
        for note in &r.notes {
            println!("   {note}");
        }
        for (title, plan) in &r.plans {
            println!();
            println!("-- {title}");
            println!("{plan}");
        }
    }
    if let Some(pg) = reports.iter().find(|r| r.backend == Backend::Postgres) {
        println!();
        println!(
            "target: p99 < {P99_TARGET_MS} ms on PostgreSQL at {} items",
            pg.items
        );
        for row in pg
            .rows
            .iter()
            .filter(|r| r.op.starts_with("GET /api/review") || r.op.contains("/next"))
        {
            let p99 = row.percentile_ms(990);
            println!(
                "  {:<48} p99 {:>7.2} ms  {}",
                row.op,
                p99,
                if p99 < P99_TARGET_MS {
                    "met"
                } else {
                    "NOT met"
                }
            );
        }
    }
    println!();
    println!("reproduce: {}", args.command_line());
}

#[tokio::main]
async fn main() -> ExitCode {
    alta::install_crypto_provider();
    bulk::set_bench("review");
    let args = Args::parse();
    if let Err(err) = args.check() {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }
    let backends = args.backends();
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
