//! Lists filtered by label, at the review bench's scale (a million items in one
//! project): a label schema set through the API, then every item's current labels
//! bulk-loaded into `annotation_labels` (what an annotation write keeps there), then
//! `GET /api/documents?project_id=…&label=field:value` by `--concurrency` readers:
//! a common label (10 % of the items), a rare one (0.1 %), two together (3.3 %), and the
//! common one with a cursor deep in its pages. On PostgreSQL, `EXPLAIN (ANALYZE,
//! BUFFERS)` of the server's list statement for the common and the rare label.
//!
//! The labels of the item with rank `n` (1-based, in id order): `topic` = `t{n % 10}`,
//! `flags` ∋ `a` when `n` is even and `b` when it is a multiple of 3, `rare` = `yes`
//! when `n` is a multiple of 1,000.

use std::time::{Duration, Instant};

use alta_actors::store::{
    Db,
    items::{LabelJoin, list_sql},
};
use anyhow::{Context, ensure};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::Rng;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Args, Backend, Http, OpRow, User, pg_lines, progress, uuid_at};

/// A list page's size here (the API's default).
const LIMIT: usize = 50;

pub struct Measured {
    pub rows: Vec<OpRow>,
    pub plans: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// `INSERT … SELECT` of one field's labels from each item's rank (both dialects).
fn load_sql(field: &str, value: &str, condition: &str) -> String {
    format!(
        "INSERT INTO annotation_labels (item_id, project_id, field, value) \
         SELECT id, project_id, '{field}', {value} FROM \
         (SELECT id, project_id, row_number() OVER (ORDER BY id) AS n FROM items \
          WHERE project_id = $1) ranked WHERE {condition}"
    )
}

pub async fn measure(
    http: &Http,
    backend: Backend,
    args: &Args,
    db: &Db,
    project: Uuid,
    owner: &User,
    ids: &[Uuid],
) -> anyhow::Result<Measured> {
    let schema = json!({"fields": [
        {"name": "topic", "type": "label", "options": (0..10).map(|i| format!("t{i}")).collect::<Vec<_>>()},
        {"name": "flags", "type": "multi_label", "options": ["a", "b"]},
        {"name": "rare", "type": "label", "options": ["yes"]},
    ]});
    http.ok(
        Method::PUT,
        &format!("/api/projects/{project}/label-schema"),
        Some(&owner.token),
        Some(&schema),
    )
    .await?;
    progress(backend, "bulk-loading every item's labels");
    let started = Instant::now();
    for sql in [
        load_sql("topic", "'t' || (n % 10)", "TRUE"),
        load_sql("flags", "'a'", "n % 2 = 0"),
        load_sql("flags", "'b'", "n % 3 = 0"),
        load_sql("rare", "'yes'", "n % 1000 = 0"),
    ] {
        alta_actors::store::with_db!(db, |pool| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(project)
            .execute(pool)
            .await
            .map(|_| ()))
        .context("loading labels")?;
    }
    if let Db::Postgres(pool) = db {
        sqlx::query("VACUUM (ANALYZE) annotation_labels")
            .execute(pool)
            .await
            .context("VACUUM ANALYZE annotation_labels")?;
    }
    let load_seconds = started.elapsed().as_secs_f64();

    let base = format!("/api/documents?project_id={project}&limit={LIMIT}");
    // The API answers what the ranks say: the newest rare items are the last multiples
    // of 1,000.
    let rare = http
        .ok(
            Method::GET,
            &format!("{base}&label=rare:yes"),
            Some(&owner.token),
            None,
        )
        .await?
        .json()?;
    let expected: Vec<Uuid> = (1..=ids.len())
        .rev()
        .filter(|n| n % 1000 == 0)
        .take(LIMIT)
        .map(|n| ids[n - 1])
        .collect();
    ensure!(
        page_ids(&rare)? == expected,
        "label=rare:yes does not list the items labelled so"
    );

    let deep_from = ids.len() / 2;
    let cases: Vec<(String, String, bool)> = vec![
        (
            "list label=topic:t3 (10 %), first page".into(),
            format!("{base}&label=topic:t3"),
            false,
        ),
        (
            "list label=rare:yes (0.1 %), first page".into(),
            format!("{base}&label=rare:yes"),
            false,
        ),
        (
            // t3 is on ranks 3 mod 10, b on multiples of 3: one item in 30 has both.
            "list label=topic:t3&label=flags:b (3.3 %)".into(),
            format!("{base}&label=topic:t3&label=flags:b"),
            false,
        ),
        (
            "list label=topic:t3, cursor in back half".into(),
            format!("{base}&label=topic:t3"),
            true,
        ),
    ];
    let mut rows = Vec::new();
    for (title, path, deep) in cases {
        progress(backend, format!("{title} (c={})", args.concurrency));
        rows.push(
            concurrently(
                http,
                args,
                &title,
                &path,
                &owner.token,
                deep.then_some((ids, deep_from)),
            )
            .await?,
        );
    }

    let mut plans = Vec::new();
    if let Db::Postgres(pool) = db {
        let mut conn = pool.acquire().await?;
        let sql = list_sql(1, LabelJoin::Within, false);
        let types = "uuid, text, text, uuid, timestamptz, timestamptz, uuid, bigint, text, text";
        pg_lines(&mut conn, format!("PREPARE bench_list ({types}) AS {sql}")).await?;
        for (field, value, share) in [("topic", "t3", "10 %"), ("rare", "yes", "0.1 %")] {
            let execute = format!(
                "EXECUTE bench_list ('{project}', 'document', NULL, NULL, NULL, NULL, NULL, {}, \
                 '{field}', '{value}')",
                LIMIT + 1
            );
            pg_lines(&mut conn, format!("EXPLAIN ANALYZE {execute}")).await?;
            let plan = pg_lines(&mut conn, format!("EXPLAIN (ANALYZE, BUFFERS) {execute}")).await?;
            plans.push((
                format!(
                    "items list, label={field}:{value} ({share}), first page (LIMIT {})",
                    LIMIT + 1
                ),
                plan,
            ));
        }
        pg_lines(&mut conn, "DEALLOCATE bench_list".into()).await?;
    }
    let labels: i64 = alta_actors::store::with_db!(db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM annotation_labels WHERE project_id = $1"
    )
    .bind(project)
    .fetch_one(pool)
    .await)?;
    let notes = vec![format!(
        "label filter: {labels} annotation_labels rows for {} items loaded in {load_seconds:.1} s",
        ids.len()
    )];
    Ok(Measured { rows, plans, notes })
}

/// The ids of a list page, in order.
fn page_ids(page: &Value) -> anyhow::Result<Vec<Uuid>> {
    page["items"]
        .as_array()
        .context("no items in the list page")?
        .iter()
        .map(|item| uuid_at(item, "/id"))
        .collect()
}

/// `args.samples` GETs of `path` (after `args.warmup`), by `args.concurrency` readers
/// together. With `deep`, each asks for the page after a random item of the back half
/// (`ids[from..]`); every page is checked to be full and to follow its cursor.
async fn concurrently(
    http: &Http,
    args: &Args,
    title: &str,
    path: &str,
    token: &str,
    deep: Option<(&[Uuid], usize)>,
) -> anyhow::Result<OpRow> {
    let c = args.concurrency;
    let (per_warm, per_timed) = (args.warmup.div_ceil(c), args.samples.div_ceil(c));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..c {
        let (http, path, token) = (http.clone(), path.to_owned(), token.to_owned());
        let deep: Option<(Vec<Uuid>, usize)> = deep.map(|(ids, from)| (ids.to_vec(), from));
        tasks.spawn(async move {
            let mut latencies: Vec<Duration> = Vec::with_capacity(per_timed);
            for i in 0..per_warm + per_timed {
                let (url, after) = match &deep {
                    Some((ids, from)) => {
                        let at = rand::rng().random_range(*from..ids.len() - 1);
                        let cursor = URL_SAFE_NO_PAD.encode(ids[at].as_bytes());
                        (format!("{path}&cursor={cursor}"), Some(ids[at]))
                    }
                    None => (path.clone(), None),
                };
                let answer = http.ok(Method::GET, &url, Some(&token), None).await?;
                let page: Value = answer.json()?;
                let got = page_ids(&page)?;
                ensure!(got.len() == LIMIT, "{url}: a page of {} items", got.len());
                if let Some(after) = after {
                    ensure!(
                        got.iter().all(|id| *id < after),
                        "{url}: not after its cursor"
                    );
                }
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
