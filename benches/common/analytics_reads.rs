//! The analytics reads of the review bench (a million items in one project) and of the
//! analytics bench (many projects), bulk-loaded with the rollup triggers on, as uploads
//! would keep them: a project's summary, the platform's, a project's 90-day daily
//! series, both leaderboards' first pages and a contributor's figures, each by `--concurrency` readers together. Every answer
//! is checked against what was loaded before it is timed. Each bench's own `Args` gives
//! `items` (of the project read), `samples`, `warmup` and `concurrency`.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

use super::{Args, Backend, Http, OpRow, User, progress};

/// Checks an answer before it counts.
type Check = fn(&Value) -> anyhow::Result<()>;

/// `args.samples` GETs of `path` (after `args.warmup`) by `args.concurrency` readers
/// together; `check` sees every answer.
async fn concurrently(
    http: &Http,
    args: &Args,
    title: &str,
    path: &str,
    token: &str,
    check: Check,
) -> anyhow::Result<OpRow> {
    let c = args.concurrency;
    let (per_warm, per_timed) = (args.warmup.div_ceil(c), args.samples.div_ceil(c));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..c {
        let (http, path, token) = (http.clone(), path.to_owned(), token.to_owned());
        tasks.spawn(async move {
            let mut latencies: Vec<Duration> = Vec::with_capacity(per_timed);
            for i in 0..per_warm + per_timed {
                let answer = http.ok(Method::GET, &path, Some(&token), None).await?;
                check(&answer.json()?).with_context(|| path.clone())?;
                if i >= per_warm {
                    latencies.push(answer.elapsed);
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined.context("a reader task panicked")??);
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    Ok(OpRow::new(format!("{title} (c={c})"), all, Some(rate)))
}

pub async fn measure(
    http: &Http,
    backend: Backend,
    args: &Args,
    project: Uuid,
    owner: &User,
    contributor: &User,
) -> anyhow::Result<Vec<OpRow>> {
    // The loaded items are all pending review: the figures say so.
    let summary = http
        .ok(
            Method::GET,
            &format!("/api/analytics/summary?project_id={project}"),
            Some(&owner.token),
            None,
        )
        .await?
        .json()?;
    ensure!(
        summary["items"].as_i64() == Some(args.items)
            && summary["review"]["pending"].as_i64() == Some(args.items),
        "the summary does not count the loaded items: {summary}"
    );
    // Ninety whole UTC days up to tomorrow: the loaded uploads are in the last of them.
    let to = (chrono::Utc::now() + chrono::Duration::days(1)).date_naive();
    let from = to - chrono::Duration::days(90);
    let series = format!(
        "/api/analytics/series?project_id={project}&bucket=day&from={from}T00:00:00Z\
         &to={to}T00:00:00Z"
    );
    let cases: [(&str, String, &User, Check); 6] = [
        (
            "analytics summary, project",
            format!("/api/analytics/summary?project_id={project}"),
            owner,
            |v| {
                ensure!(v["items"].as_i64().unwrap_or(0) > 0, "no items: {v}");
                Ok(())
            },
        ),
        (
            "analytics summary, platform",
            "/api/analytics/summary".to_owned(),
            owner,
            |v| {
                ensure!(
                    v["storage"]["top_projects"].is_array(),
                    "no top projects: {v}"
                );
                Ok(())
            },
        ),
        ("analytics series, project, 90 days", series, owner, |v| {
            let buckets = v["buckets"].as_array().map_or(0, Vec::len);
            ensure!(buckets == 90, "{buckets} buckets, not 90: {v}");
            let uploads: i64 = v["buckets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| b["uploads"].as_i64())
                .sum();
            ensure!(uploads > 0, "no uploads in 90 days: {v}");
            Ok(())
        }),
        (
            "leaderboard, contributors (first page)",
            format!("/api/analytics/contributors?project_id={project}&sort=uploads"),
            owner,
            |v| {
                ensure!(
                    !v["items"].as_array().is_none_or(Vec::is_empty),
                    "empty: {v}"
                );
                Ok(())
            },
        ),
        (
            "leaderboard, reviewers (first page)",
            format!("/api/analytics/reviewers?project_id={project}"),
            owner,
            |v| {
                ensure!(v["items"].is_array(), "no items: {v}");
                Ok(())
            },
        ),
        (
            "analytics user/{id} (a contributor)",
            format!("/api/analytics/user/{}", contributor.id),
            owner,
            |v| {
                ensure!(v["uploads"].as_i64().unwrap_or(0) > 0, "no uploads: {v}");
                Ok(())
            },
        ),
    ];
    let mut rows = Vec::new();
    for (title, path, who, check) in cases {
        progress(backend, format!("{title} (c={})", args.concurrency));
        rows.push(concurrently(http, args, title, &path, &who.token, check).await?);
    }
    Ok(rows)
}
