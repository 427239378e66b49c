//! Analytics: after a randomised workload (uploads, processing failures, transcripts,
//! submissions, decisions with one and two reviews required, rework, deletes), the
//! figures the endpoints answer equal those counted from the base tables, figure by
//! figure, and a recount finds nothing to correct; a corrupted rollup is found and
//! corrected by the recount; deleted projects leave the platform's figures and come
//! back on restore; who may read what. On both backends.

use std::collections::{BTreeMap, HashMap};

use alta_actors::{clock::Clock, context::RequestContext, store::with_db};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    backend_tests,
    helpers::{Backend, TestApp, TestAppBuilder, assert_problem},
    items::wav,
    processing::{settled, uploaded},
    projects::{create_project, join},
};

backend_tests!(
    figures_equal_a_count_of_the_base_tables,
    who_reads_which_figures,
    series_and_leaderboards_answer_csv_to_spreadsheets,
    time_to_verdict_is_counted_to_its_bucket,
    the_label_distribution_follows_the_annotations,
    uploads_and_decisions_committed_together_keep_the_figures_exact,
);

/// `{"field:value": items}` of a `labels` list.
fn label_counts(labels: &Value) -> BTreeMap<String, i64> {
    labels
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let (field, value) = (l["field"].as_str().unwrap(), l["value"].as_str().unwrap());
            (format!("{field}:{value}"), l["items"].as_i64().unwrap())
        })
        .collect()
}

/// The summary's `labels`: live items by label field and value of their current
/// annotation, moved by a new revision, left by a deleted item; the series gives each
/// bucket's share, by the items' upload (the recount agrees).
async fn the_label_distribution_follows_the_annotations(backend: Backend) {
    // Tokens outlive the hours the clock moves on here.
    let app = TestAppBuilder::new(backend)
        .var("ACCESS_TOKEN_TTL_SECONDS", "86400")
        .spawn()
        .await;
    let admin = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &admin, "Lebo").await;
    let fields = json!([
        {"name": "topic", "type": "label", "options": ["news", "sport"]},
        {"name": "flags", "type": "multi_label", "options": ["a", "b", "c"]},
        {"name": "note", "type": "text"},
    ]);
    let resp = app
        .send(
            &admin,
            Method::PUT,
            &format!("/api/projects/{project}/label-schema"),
            Some(json!({ "fields": fields })),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut docs = Vec::new();
    for i in 0..4 {
        if i == 3 {
            // The fourth upload, three hours later.
            app.advance_clock(chrono::Duration::hours(3)).await;
        }
        let text = format!("Habari ya leo, nambari {i}.").into_bytes();
        let id = uploaded(
            &app,
            &admin,
            "/api/documents",
            &project,
            text,
            "d.txt",
            "text/plain",
        )
        .await;
        settled(&app, &admin, "/api/documents", &id).await;
        docs.push(id);
    }
    let annotate = |id: String, values: Value| {
        let (app, admin) = (&app, &admin);
        async move {
            let path = format!("/api/documents/{id}/annotation");
            let resp = app
                .send(admin, Method::PUT, &path, Some(json!({ "values": values })))
                .await;
            assert_eq!(resp.status(), StatusCode::OK, "{values}");
        }
    };
    let labels = || {
        let (app, admin, project) = (&app, &admin, &project);
        async move {
            let path = format!("/api/analytics/summary?project_id={project}");
            let summary = app.get_json(&path, admin).await;
            label_counts(&summary["labels"])
        }
    };
    let expect = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
    };
    annotate(
        docs[0].clone(),
        json!({"topic": "news", "flags": ["a", "b"], "note": "x"}),
    )
    .await;
    annotate(docs[1].clone(), json!({"topic": "news"})).await;
    annotate(docs[2].clone(), json!({"topic": "sport", "flags": ["a"]})).await;
    assert_eq!(
        labels().await,
        expect(&[
            ("flags:a", 2),
            ("flags:b", 1),
            ("topic:news", 2),
            ("topic:sport", 1)
        ]),
        "free text is not a label"
    );
    // Per hour of upload: the fourth item, uploaded three hours later, in its own bucket.
    annotate(docs[3].clone(), json!({"topic": "news"})).await;
    let now = app.clock.now();
    let (from, to) = (
        now - chrono::Duration::hours(12),
        now + chrono::Duration::hours(1),
    );
    let path = format!(
        "/api/analytics/series?project_id={project}&bucket=hour&from={}&to={}",
        from.format("%Y-%m-%dT%H:%M:%SZ"),
        to.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let series = app.get_json(&path, &admin).await;
    let by_bucket: Vec<BTreeMap<String, i64>> = series["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| label_counts(&b["labels"]))
        .filter(|m| !m.is_empty())
        .collect();
    assert_eq!(
        by_bucket,
        vec![
            expect(&[
                ("flags:a", 2),
                ("flags:b", 1),
                ("topic:news", 2),
                ("topic:sport", 1)
            ]),
            expect(&[("topic:news", 1)]),
        ],
        "{series}"
    );
    let path = format!("/api/documents/{}", docs[3]);
    let resp = app.send(&admin, Method::DELETE, &path, None).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    // A new revision moves its item.
    annotate(docs[1].clone(), json!({"topic": "sport", "flags": ["c"]})).await;
    assert_eq!(
        labels().await,
        expect(&[
            ("flags:a", 2),
            ("flags:b", 1),
            ("flags:c", 1),
            ("topic:news", 1),
            ("topic:sport", 2),
        ])
    );
    // A deleted item leaves the figures.
    let resp = app
        .send(
            &admin,
            Method::DELETE,
            &format!("/api/documents/{}", docs[2]),
            None,
        )
        .await;
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        labels().await,
        expect(&[
            ("flags:a", 1),
            ("flags:b", 1),
            ("flags:c", 1),
            ("topic:news", 1),
            ("topic:sport", 1),
        ])
    );
    assert_eq!(recount(&app).await, 0, "the label rollup drifted");
}

/// How long review takes: each verdict is counted in the bucket of its time from the
/// round's submission, the median and 90th percentile name the bucket they fall in, and
/// a deleted item takes its verdict out (the recount agrees).
async fn time_to_verdict_is_counted_to_its_bucket(backend: Backend) {
    // Tokens outlive the hours the clock moves on here.
    let app = TestAppBuilder::new(backend)
        .var("ACCESS_TOKEN_TTL_SECONDS", "86400")
        .spawn()
        .await;
    let admin = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &admin, "Muda").await;
    let reviewer = join(&app, &admin, &project, "r@example.org", "reviewer").await;
    let mut docs = Vec::new();
    for text in ["Moja", "Mbili", "Tatu"] {
        let name = format!("{text}.txt");
        let id = uploaded(
            &app,
            &admin,
            "/api/documents",
            &project,
            text.into(),
            &name,
            "text/plain",
        )
        .await;
        settled(&app, &admin, "/api/documents", &id).await;
        docs.push(id);
    }
    let path = format!("/api/analytics/summary?project_id={project}");
    let summary = || {
        let (app, admin, path) = (&app, &admin, &path);
        async move { app.get_json(path, admin).await["review"]["time_to_verdict"].clone() }
    };
    let none = summary().await;
    assert_eq!(none["verdicts"], 0, "{none}");
    assert!(none.get("median_seconds_at_most").is_none(), "{none}");
    assert_eq!(none["buckets"].as_array().unwrap().len(), 15);

    let submit = json!({"item_ids": docs});
    ok(
        &app,
        &admin,
        Method::POST,
        &format!("/api/projects/{project}/review"),
        Some(submit),
    )
    .await;
    let approve = |id: &String| {
        let (app, reviewer, path) = (&app, reviewer.clone(), format!("/api/review/{id}"));
        async move {
            ok(
                app,
                &reviewer,
                Method::PATCH,
                &path,
                Some(json!({"decision": "approve"})),
            )
            .await
        }
    };
    approve(&docs[0]).await; // at once: within a minute
    app.advance_clock(chrono::Duration::minutes(25)).await;
    approve(&docs[1]).await; // 25 minutes: within half an hour
    app.advance_clock(chrono::Duration::hours(3)).await;
    approve(&docs[2]).await; // 3 h 25 min: within 4 hours

    let times = summary().await;
    assert_eq!(times["verdicts"], 3, "{times}");
    assert_eq!(times["median_seconds_at_most"], 1800, "{times}");
    assert_eq!(times["p90_seconds_at_most"], 14400, "{times}");
    let counted: Vec<(Option<i64>, i64)> = times["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["verdicts"].as_i64().unwrap() > 0)
        .map(|b| (b["le_seconds"].as_i64(), b["verdicts"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        counted,
        vec![(Some(60), 1), (Some(1800), 1), (Some(14400), 1)]
    );

    // A deleted item's verdict leaves the figures.
    let resp = app
        .send(
            &admin,
            Method::DELETE,
            &format!("/api/documents/{}", docs[2]),
            None,
        )
        .await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let times = summary().await;
    assert_eq!(times["verdicts"], 2, "{times}");
    assert_eq!(times["p90_seconds_at_most"], 1800, "{times}");
    assert_eq!(recount(&app).await, 0);
}

/// Rows of a CSV answer as Python's `csv.DictReader` reads them (a reader of our own
/// would only agree with our own writer).
fn python_csv(text: &str) -> Vec<BTreeMap<String, String>> {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import csv, json, sys; print(json.dumps(list(csv.DictReader(sys.stdin))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python's csv could not read: {text}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `Accept: text/csv` on the series and the leaderboards: the same figures as the JSON,
/// as Python's csv module reads them, with a header row, and the next page's cursor in
/// `Next-Cursor`; a client preferring JSON still gets JSON.
async fn series_and_leaderboards_answer_csv_to_spreadsheets(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let admin = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &admin, "Lahajedwali").await;
    let contributor = join(&app, &admin, &project, "c@example.org", "contributor").await;
    for (token, text) in [
        (&admin, "Moja"),
        (&contributor, "Mbili"),
        (&contributor, "Tatu"),
    ] {
        let name = format!("{text}.txt");
        uploaded(
            &app,
            token,
            "/api/documents",
            &project,
            text.as_bytes().to_vec(),
            &name,
            "text/plain",
        )
        .await;
    }
    let get = |path: String, accept: &'static str| {
        let (app, admin) = (&app, &admin);
        async move {
            app.client
                .get(app.url(&path))
                .bearer_auth(admin)
                .header("accept", accept)
                .send()
                .await
                .unwrap()
        }
    };

    let series = format!("/api/analytics/series?project_id={project}&bucket=day");
    let json: Value = get(series.clone(), "application/json")
        .await
        .json()
        .await
        .unwrap();
    let resp = get(series.clone(), "text/csv").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let rows = python_csv(&resp.text().await.unwrap());
    let buckets = json["buckets"].as_array().unwrap();
    assert_eq!(rows.len(), buckets.len(), "a row per bucket");
    let uploads: i64 = rows
        .iter()
        .map(|r| r["uploads"].parse::<i64>().unwrap())
        .sum();
    assert_eq!(uploads, 3);
    for (row, bucket) in rows.iter().zip(buckets) {
        assert_eq!(row["uploads"], bucket["uploads"].to_string());
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(&row["start"]).unwrap(),
            chrono::DateTime::parse_from_rfc3339(bucket["start"].as_str().unwrap()).unwrap()
        );
    }

    // A page of one contributor at a time: the cursor travels in Next-Cursor.
    let board = format!("/api/analytics/contributors?project_id={project}&sort=uploads&limit=1");
    let resp = get(board.clone(), "text/csv").await;
    let cursor = resp.headers()["next-cursor"].to_str().unwrap().to_owned();
    let first = python_csv(&resp.text().await.unwrap());
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["email"], "c@example.org");
    assert_eq!(first[0]["uploads"], "2");
    let resp = get(format!("{board}&cursor={cursor}"), "text/csv").await;
    assert!(
        resp.headers().get("next-cursor").is_none(),
        "the last page has no cursor"
    );
    let second = python_csv(&resp.text().await.unwrap());
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["email"], "owner@example.org");

    let reviewers = format!("/api/analytics/reviewers?project_id={project}");
    let resp = get(reviewers.clone(), "text/csv").await;
    let text = resp.text().await.unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        "user_id,email,decisions,approvals,rejections,settled,agreed"
    );
    assert!(python_csv(&text).is_empty(), "no reviews yet: {text}");

    // JSON when JSON is preferred, or asked for by default.
    for accept in [
        "text/csv;q=0.5, application/json",
        "*/*",
        "application/json",
    ] {
        let resp = get(reviewers.clone(), accept).await;
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{accept}"
        );
    }
}

/// A small deterministic generator (xorshift), seeded per run and printed, so a failing
/// workload can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

async fn ok(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) {
    let resp = app.send(token, method.clone(), path, body).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
}

async fn configure(app: &TestApp, admin: &str, project: &str, required: u32) {
    let current = app
        .get_json(&format!("/api/projects/{project}"), admin)
        .await;
    let mut settings = current["settings"].clone();
    settings["reviews_required"] = json!(required);
    settings["max_rework_rounds"] = json!(1);
    let body = json!({"name": current["name"], "settings": settings});
    ok(
        app,
        admin,
        Method::PUT,
        &format!("/api/projects/{project}"),
        Some(body),
    )
    .await;
}

/// One uploaded item the workload moves on.
struct Item {
    id: String,
    endpoint: &'static str,
    owner: usize,
}

/// `{(kind, status): (items, bytes)}` of the project's live items, from `items`.
async fn counted_by_state(app: &TestApp, project: &str) -> BTreeMap<(String, String), (i64, i64)> {
    let db = app.db().await;
    let project: Uuid = project.parse().unwrap();
    let sql = "SELECT kind, status, COUNT(*), CAST(SUM(size_bytes) AS BIGINT) FROM items \
               WHERE project_id = $1 AND deleted_at IS NULL GROUP BY kind, status";
    let rows: Vec<(String, String, i64, i64)> = with_db!(&db, |pool| sqlx::query_as(sql)
        .bind(project)
        .fetch_all(pool)
        .await)
    .unwrap();
    db.close().await;
    rows.into_iter()
        .map(|(k, s, n, b)| ((k, s), (n, b)))
        .collect()
}

/// What the figures say of decisions with one (decision, outcome, reason): how many,
/// how many of them belong to a round with a verdict, how many matched that verdict.
type DecisionKey = (String, String, String);
type DecisionCounts = (i64, i64, i64);

/// [`DecisionCounts`] of decisions on live items, of `reviewer` when given, worked out
/// here from the rows of `review_decisions` (a round's verdict is its one decision whose
/// outcome is not `pending`; an approval agrees with `approved`, a rejection with
/// `rejected` and `changes_requested`).
async fn counted_decisions(
    app: &TestApp,
    project: &str,
    reviewer: Option<&str>,
) -> BTreeMap<DecisionKey, DecisionCounts> {
    let db = app.db().await;
    let project: Uuid = project.parse().unwrap();
    let sql = "SELECT d.item_id, d.round, d.reviewer_id, d.decision, d.outcome, \
               COALESCE(d.reason_code, '') \
               FROM review_decisions d JOIN items i ON i.id = d.item_id \
               WHERE d.project_id = $1 AND i.deleted_at IS NULL";
    let rows: Vec<(Uuid, i32, Uuid, String, String, String)> =
        with_db!(&db, |pool| sqlx::query_as(sql)
            .bind(project)
            .fetch_all(pool)
            .await)
        .unwrap();
    db.close().await;
    let mut verdicts: BTreeMap<(Uuid, i32), String> = BTreeMap::new();
    for (item, round, _, _, outcome, _) in &rows {
        if outcome != "pending" {
            let earlier = verdicts.insert((*item, *round), outcome.clone());
            assert!(earlier.is_none(), "two verdicts in one round of {item}");
        }
    }
    let mut counts = BTreeMap::new();
    for (item, round, who, decision, outcome, reason) in rows {
        if reviewer.is_some_and(|r| r != who.to_string()) {
            continue;
        }
        let entry: &mut DecisionCounts = counts
            .entry((decision.clone(), outcome, reason))
            .or_default();
        entry.0 += 1;
        if let Some(verdict) = verdicts.get(&(item, round)) {
            entry.1 += 1;
            if (decision == "approve") == (verdict == "approved") {
                entry.2 += 1;
            }
        }
    }
    counts
}

/// `({(kind, engine): items}, {(kind, code): items})`: live items by the engine of
/// their newest machine text, and live items now `processing_failed` by code.
async fn counted_processing(
    app: &TestApp,
    project: &str,
) -> (
    BTreeMap<(String, String), i64>,
    BTreeMap<(String, String), i64>,
) {
    let db = app.db().await;
    let project: Uuid = project.parse().unwrap();
    let sql = "SELECT i.id, i.kind, t.revision, COALESCE(t.engine, '') FROM items i \
               JOIN item_texts t ON t.item_id = i.id AND t.source = 'machine' \
               WHERE i.project_id = $1 AND i.deleted_at IS NULL";
    let texts: Vec<(Uuid, String, i32, String)> = with_db!(&db, |pool| sqlx::query_as(sql)
        .bind(project)
        .fetch_all(pool)
        .await)
    .unwrap();
    let sql = "SELECT kind, COALESCE(processing_error_code, '') FROM items \
               WHERE project_id = $1 AND deleted_at IS NULL AND status = 'processing_failed'";
    let failed: Vec<(String, String)> = with_db!(&db, |pool| sqlx::query_as(sql)
        .bind(project)
        .fetch_all(pool)
        .await)
    .unwrap();
    db.close().await;
    let mut newest: BTreeMap<Uuid, (i32, String, String)> = BTreeMap::new();
    for (item, kind, revision, engine) in texts {
        let entry = newest
            .entry(item)
            .or_insert((revision, kind.clone(), engine.clone()));
        if revision > entry.0 {
            *entry = (revision, kind, engine);
        }
    }
    let mut engines = BTreeMap::new();
    for (_, kind, engine) in newest.into_values() {
        *engines.entry((kind, engine)).or_default() += 1;
    }
    let mut failures = BTreeMap::new();
    for key in failed {
        *failures.entry(key).or_default() += 1;
    }
    (engines, failures)
}

/// The endpoint's `items_by_state` without zeros, keyed as [`counted_by_state`].
fn answered_by_state(figures: &Value) -> BTreeMap<(String, String), (i64, i64)> {
    let rows = figures["items_by_state"].as_array().unwrap();
    assert_eq!(rows.len(), 16, "every kind × state is listed: {figures}");
    rows.iter()
        .filter(|r| r["items"].as_i64().unwrap() != 0)
        .map(|r| {
            let key = (
                r["kind"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            );
            (
                key,
                (r["items"].as_i64().unwrap(), r["bytes"].as_i64().unwrap()),
            )
        })
        .collect()
}

fn answered_decisions(decisions: &Value) -> BTreeMap<DecisionKey, DecisionCounts> {
    decisions
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let key = (
                d["decision"].as_str().unwrap().to_owned(),
                d["outcome"].as_str().unwrap().to_owned(),
                d["reason_code"].as_str().unwrap_or("").to_owned(),
            );
            let count = |field: &str| d[field].as_i64().unwrap();
            (key, (count("decisions"), count("settled"), count("agreed")))
        })
        .collect()
}

async fn recount(app: &TestApp) -> usize {
    let report = app
        .engine
        .analytics()
        .recount(None, &RequestContext::internal("test"))
        .await
        .unwrap();
    for p in &report.projects {
        for line in &p.differences {
            eprintln!("recount: {}: {line}", p.project_id);
        }
    }
    report.corrected_rows()
}

/// Uploads and decisions sent at once commit together: a group of the project's actor
/// inserts their rows in one statement, some decisions verdicts that settle the
/// decisions beside them, some too late for a round already decided. The rollups (on
/// PostgreSQL written once per statement) still equal a count of the base tables.
async fn uploads_and_decisions_committed_together_keep_the_figures_exact(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let admin = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &admin, "Together").await;
    configure(&app, &admin, &project, 2).await;
    let contributor = join(&app, &admin, &project, "c@example.org", "contributor").await;
    let mut reviewers = Vec::new();
    for r in 0..3 {
        let email = format!("r{r}@example.org");
        reviewers.push(join(&app, &admin, &project, &email, "reviewer").await);
    }
    // Uploaded at once too: their items are inserted together.
    let uploads = (0..12).map(|i| {
        let text = format!("Document {i} decided by everyone at once.");
        uploaded(
            &app,
            &contributor,
            "/api/documents",
            &project,
            text.into_bytes(),
            "d.txt",
            "text/plain",
        )
    });
    let ids = futures::future::join_all(uploads).await;
    for id in &ids {
        settled(&app, &contributor, "/api/documents", id).await;
    }
    let submit = json!({"item_ids": ids});
    let review = format!("/api/projects/{project}/review");
    ok(&app, &contributor, Method::POST, &review, Some(submit)).await;

    // Every reviewer decides every item, all at once.
    let sends = ids.iter().enumerate().flat_map(|(i, id)| {
        let app = &app;
        reviewers
            .iter()
            .enumerate()
            .map(move |(r, token)| async move {
                // A quarter of the items rejected by two of three (changes requested), the
                // rest approved by two of three.
                let reject = if i % 4 == 0 { r < 2 } else { (i + r) % 3 == 0 };
                let body = if reject {
                    json!({"decision": "reject", "reason_code": "noise"})
                } else {
                    json!({"decision": "approve"})
                };
                let path = format!("/api/review/{id}");
                app.send(token, Method::PATCH, &path, Some(body)).await
            })
    });
    let mut decided = 0;
    for resp in futures::future::join_all(sends).await {
        match resp.status() {
            StatusCode::OK => decided += 1,
            // The round was decided by the votes before this one.
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
        }
    }
    assert!(decided >= 2 * ids.len(), "{decided} decisions");

    assert_eq!(recount(&app).await, 0, "the rollups drifted");
    let summary = app
        .get_json(
            &format!("/api/analytics/summary?project_id={project}"),
            &admin,
        )
        .await;
    assert_eq!(
        answered_decisions(&summary["review"]["decisions"]),
        counted_decisions(&app, &project, None).await,
        "{summary}"
    );
}

async fn figures_equal_a_count_of_the_base_tables(backend: Backend) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("workload seed {seed}");
    let mut rng = Rng(seed);
    let app = TestAppBuilder::new(backend).spawn().await;
    let admin = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &admin, "Campaign").await;
    let required = 1 + rng.below(2) as u32;
    configure(&app, &admin, &project, required).await;
    let contributors = [
        join(&app, &admin, &project, "c1@example.org", "contributor").await,
        join(&app, &admin, &project, "c2@example.org", "contributor").await,
    ];
    let reviewers = [
        join(&app, &admin, &project, "r1@example.org", "reviewer").await,
        join(&app, &admin, &project, "r2@example.org", "reviewer").await,
    ];

    // Uploads: documents become ready; recordings fail (no speech engine here) and half
    // of them get a transcript by hand.
    let mut items = Vec::new();
    for i in 0..18 {
        let owner = i % 2;
        let token = &contributors[owner];
        let (endpoint, bytes, name, mime) = if i % 3 == 2 {
            let seconds = 0.5 + 0.25 * rng.below(6) as f64;
            (
                "/api/voice",
                wav(seconds, 8_000, 200.0 + i as f64),
                "a.wav",
                "audio/wav",
            )
        } else {
            let text = format!("Document {i} of the campaign, seed {seed}.");
            ("/api/documents", text.into_bytes(), "d.txt", "text/plain")
        };
        let id = uploaded(&app, token, endpoint, &project, bytes, name, mime).await;
        let item = settled(&app, token, endpoint, &id).await;
        if endpoint == "/api/voice" && rng.below(2) == 0 {
            assert_eq!(item["status"], "processing_failed");
            let path = format!("/api/voice/{id}/transcript");
            ok(
                &app,
                token,
                Method::PUT,
                &path,
                Some(json!({"text": "habari"})),
            )
            .await;
        }
        items.push(Item {
            id,
            endpoint,
            owner,
        });
    }

    // Random steps on random items, each what its state allows.
    let mut voted: HashMap<(String, i64), Vec<usize>> = HashMap::new();
    for _ in 0..90 {
        let item = &items[rng.below(items.len())];
        let token = &contributors[item.owner];
        let path = format!("{}/{}", item.endpoint, item.id);
        let resp = app.send(token, Method::GET, &path, None).await;
        if resp.status() == StatusCode::NOT_FOUND {
            continue; // deleted
        }
        let current: Value = resp.json().await.unwrap();
        let round = current["review_round"].as_i64().unwrap();
        if rng.below(25) == 0 {
            ok(&app, token, Method::DELETE, &path, None).await;
            continue;
        }
        let submit = json!({"item_ids": [item.id]});
        let review = format!("/api/projects/{project}/review");
        match current["status"].as_str().unwrap() {
            "ready" => ok(&app, token, Method::POST, &review, Some(submit)).await,
            "changes_requested" => {
                let text = if item.endpoint == "/api/voice" {
                    "transcript"
                } else {
                    "text"
                };
                let body = json!({"text": format!("corrected {}", rng.below(1000))});
                ok(
                    &app,
                    token,
                    Method::PUT,
                    &format!("{path}/{text}"),
                    Some(body),
                )
                .await;
                ok(&app, token, Method::POST, &review, Some(submit)).await;
            }
            "pending_review" => {
                let who = voted.entry((item.id.clone(), round)).or_default();
                let Some(r) = (0..2).find(|r| !who.contains(r)) else {
                    continue;
                };
                who.push(r);
                let body = match rng.below(3) {
                    0 => {
                        let reason = ["wrong_text", "noise"][rng.below(2)];
                        json!({"decision": "reject", "reason_code": reason})
                    }
                    _ => json!({"decision": "approve"}),
                };
                ok(
                    &app,
                    &reviewers[r],
                    Method::PATCH,
                    &format!("/api/review/{}", item.id),
                    Some(body),
                )
                .await;
            }
            _ => {}
        }
    }

    // The rollups equal a count of the base tables, row by row.
    assert_eq!(recount(&app).await, 0, "the rollups drifted (seed {seed})");

    // The project's figures, figure by figure.
    let summary_path = format!("/api/analytics/summary?project_id={project}");
    let summary = app.get_json(&summary_path, &admin).await;
    let counted = counted_by_state(&app, &project).await;
    eprintln!("live items by kind and state: {counted:?}");
    assert!(
        counted.len() >= 3,
        "the workload reached few states: {counted:?}"
    );
    assert_eq!(
        answered_by_state(&summary),
        counted,
        "seed {seed}: {summary}"
    );
    let live: i64 = counted.values().map(|(n, _)| n).sum();
    let bytes: i64 = counted.values().map(|(_, b)| b).sum();
    assert_eq!(summary["items"], live);
    assert_eq!(summary["storage"]["bytes"], bytes);
    let decisions = counted_decisions(&app, &project, None).await;
    assert_eq!(
        answered_decisions(&summary["review"]["decisions"]),
        decisions,
        "seed {seed}"
    );
    let pending = counted
        .iter()
        .filter(|((_, s), _)| s == "pending_review")
        .map(|(_, (n, _))| n)
        .sum::<i64>();
    assert_eq!(summary["review"]["pending"], pending);
    // Processing: live items by the engine of their newest machine text, and failed
    // ones by code, worked out here from the rows.
    let (engines, failures) = counted_processing(&app, &project).await;
    eprintln!("processing: {engines:?} {failures:?}");
    assert!(!engines.is_empty(), "the workload processed items");
    let answered = |list: &str, field: &str| -> BTreeMap<(String, String), i64> {
        summary["processing"][list]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let key = (
                    r["kind"].as_str().unwrap().to_owned(),
                    r[field].as_str().unwrap().to_owned(),
                );
                (key, r["items"].as_i64().unwrap())
            })
            .collect()
    };
    assert_eq!(answered("by_engine", "engine"), engines, "seed {seed}");
    assert_eq!(answered("failures", "code"), failures, "seed {seed}");
    // Every verdict of a live item is in a time-to-verdict bucket.
    let timed = &summary["review"]["time_to_verdict"];
    let all_verdicts: i64 = ["approved", "changes_requested", "rejected"]
        .iter()
        .map(|outcome| {
            decisions
                .iter()
                .filter(|((_, o, _), _)| o == outcome)
                .map(|(_, n)| n.0)
                .sum::<i64>()
        })
        .sum();
    assert_eq!(timed["verdicts"], all_verdicts, "seed {seed}: {timed}");
    let in_buckets: i64 = timed["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["verdicts"].as_i64().unwrap())
        .sum();
    assert_eq!(in_buckets, all_verdicts);
    assert_eq!(
        summary["review"]["oldest_pending_age_seconds"].is_i64(),
        pending > 0,
        "{summary}"
    );
    assert_eq!(
        summary["members"],
        json!({"admin": 1, "contributor": 2, "reviewer": 2})
    );

    // Audio seconds from each live recording's analysis, as the API shows it.
    let mut collected_ms = 0;
    let mut approved_ms = 0;
    for item in items.iter().filter(|i| i.endpoint == "/api/voice") {
        let resp = app
            .send(
                &admin,
                Method::GET,
                &format!("/api/voice/{}", item.id),
                None,
            )
            .await;
        if resp.status() == StatusCode::NOT_FOUND {
            continue;
        }
        let v: Value = resp.json().await.unwrap();
        let ms = (v["audio"]["duration_seconds"].as_f64().unwrap() * 1000.0).round() as i64;
        collected_ms += ms;
        if v["status"] == "approved" {
            approved_ms += ms;
        }
    }
    let seconds = |v: &Value| (v.as_f64().unwrap() * 1000.0).round() as i64;
    assert_eq!(
        seconds(&summary["audio"]["seconds_collected"]),
        collected_ms
    );
    assert_eq!(seconds(&summary["audio"]["seconds_approved"]), approved_ms);

    // A contributor's own figures, and a reviewer's, as they read them.
    let c1 = app.user_id(&contributors[0]).await;
    let mine = app
        .get_json("/api/analytics/user/me", &contributors[0])
        .await;
    assert_eq!(mine["user_id"], c1.as_str());
    let db = app.db().await;
    let sql = "SELECT COUNT(*) FROM items WHERE contributor_id = $1 AND deleted_at IS NULL";
    let c1_uuid: Uuid = c1.parse().unwrap();
    let uploads: i64 = with_db!(&db, |pool| sqlx::query_scalar(sql)
        .bind(c1_uuid)
        .fetch_one(pool)
        .await)
    .unwrap();
    db.close().await;
    assert_eq!(mine["uploads"], uploads);
    let (approved, rejected) = (
        mine["approved"].as_i64().unwrap(),
        mine["rejected"].as_i64().unwrap(),
    );
    match mine["approval_rate"].as_f64() {
        Some(rate) => assert!((rate - approved as f64 / (approved + rejected) as f64).abs() < 1e-9),
        None => assert_eq!(approved + rejected, 0),
    }
    let r1 = app.user_id(&reviewers[0]).await;
    let theirs = app
        .get_json(&format!("/api/analytics/user/{r1}"), &admin)
        .await;
    let r1_decisions = counted_decisions(&app, &project, Some(&r1)).await;
    assert_eq!(
        answered_decisions(&theirs["review_decisions"]),
        r1_decisions
    );
    assert_eq!(
        theirs["reviews"],
        r1_decisions.values().map(|c| c.0).sum::<i64>()
    );
    let (voted, agreed) = r1_decisions
        .values()
        .fold((0, 0), |(s, a), c| (s + c.1, a + c.2));
    match theirs["review_agreement"].as_f64() {
        Some(rate) => assert!((rate - agreed as f64 / voted as f64).abs() < 1e-9),
        None => assert_eq!(voted, 0, "{theirs}"),
    }
    assert_eq!(
        theirs["project_ids"],
        json!([project]),
        "an admin sees the shared project only"
    );

    // The series: every event of the workload in its hour (UTC) and in its day
    // (Nairobi), summing to the counts of the base tables.
    let now: chrono::DateTime<chrono::Utc> =
        summary["generated_at"].as_str().unwrap().parse().unwrap();
    let (from, to) = (
        now - chrono::Duration::days(2),
        now + chrono::Duration::days(1),
    );
    let range = format!(
        "from={}&to={}",
        from.format("%Y-%m-%dT%H:%M:%SZ"),
        to.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let db = app.db().await;
    let pid: Uuid = project.parse().unwrap();
    let sql = "SELECT COUNT(*) FROM review_submissions s JOIN items i ON i.id = s.item_id \
               WHERE s.project_id = $1 AND i.deleted_at IS NULL";
    let submissions: i64 = with_db!(&db, |pool| sqlx::query_scalar(sql)
        .bind(pid)
        .fetch_one(pool)
        .await)
    .unwrap();
    let sql = "SELECT contributor_id, created_at FROM items \
               WHERE project_id = $1 AND deleted_at IS NULL";
    let uploads: Vec<(Uuid, chrono::DateTime<chrono::Utc>)> =
        with_db!(&db, |pool| sqlx::query_as(sql)
            .bind(pid)
            .fetch_all(pool)
            .await)
        .unwrap();
    db.close().await;
    // Distinct people with a live upload in [start, end).
    let active = |start: chrono::DateTime<chrono::Utc>, end: chrono::DateTime<chrono::Utc>| {
        uploads
            .iter()
            .filter(|(_, at)| (start..end).contains(at))
            .map(|(who, _)| *who)
            .collect::<std::collections::BTreeSet<_>>()
            .len() as i64
    };
    let verdicts = |outcome: &str| -> i64 {
        decisions
            .iter()
            .filter(|((_, o, _), _)| o == outcome)
            .map(|(_, n)| n.0)
            .sum()
    };
    for (query, buckets, offset) in [
        (format!("bucket=hour&{range}"), 72, "+00:00"),
        (format!("bucket=day&tz=Africa/Nairobi&{range}"), 0, "+03:00"),
    ] {
        let path = format!("/api/analytics/series?project_id={project}&{query}");
        let series = app.get_json(&path, &admin).await;
        let points = series["buckets"].as_array().unwrap();
        if buckets > 0 {
            // 72 hours, or 73 when the period does not start on the hour.
            assert!((buckets..=buckets + 1).contains(&points.len()), "{series}");
        }
        assert!(
            points
                .iter()
                .all(|p| p["start"].as_str().unwrap().ends_with(offset))
        );
        let sum = |key: &str| points.iter().map(|p| p[key].as_i64().unwrap()).sum::<i64>();
        assert_eq!(sum("uploads"), live, "seed {seed}: {series}");
        assert_eq!(sum("submissions"), submissions, "seed {seed}");
        assert_eq!(sum("approvals"), verdicts("approved"), "seed {seed}");
        assert_eq!(
            sum("changes_requested"),
            verdicts("changes_requested"),
            "seed {seed}"
        );
        assert_eq!(sum("rejections"), verdicts("rejected"), "seed {seed}");
        let uploaded_ms: i64 = points
            .iter()
            .map(|p| (p["audio_seconds_uploaded"].as_f64().unwrap() * 1000.0).round() as i64)
            .sum();
        assert_eq!(uploaded_ms, collected_ms);
        // Active contributors, per bucket and over the period, as the items say.
        let time = |v: &Value| -> chrono::DateTime<chrono::Utc> {
            chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
                .unwrap()
                .to_utc()
        };
        let end = time(&series["to"]);
        for (i, point) in points.iter().enumerate() {
            let next = points.get(i + 1).map_or(end, |p| time(&p["start"]));
            assert_eq!(
                point["active_contributors"],
                active(time(&point["start"]), next),
                "seed {seed}: {point}"
            );
            // Each upload in the bucket its time falls in (the database buckets them).
            let start = time(&point["start"]);
            let uploaded = uploads
                .iter()
                .filter(|(_, at)| (start..next).contains(at))
                .count();
            assert_eq!(point["uploads"], uploaded, "seed {seed}: {point}");
        }
        let period = active(time(&points[0]["start"]), end);
        assert!(period > 0, "the workload uploaded in the period");
        assert_eq!(series["active_contributors"], period, "seed {seed}");
    }

    // The leaderboards: contributors by approved items, reviewers by decisions, each
    // page after the last one's person, as counted from the base tables.
    let db = app.db().await;
    let pid: Uuid = project.parse().unwrap();
    let sql = "SELECT contributor_id, CAST(SUM(CASE WHEN status = 'approved' THEN 1 ELSE 0 END) AS BIGINT), \
               COUNT(*) FROM items WHERE project_id = $1 AND deleted_at IS NULL GROUP BY contributor_id";
    let mut expected: Vec<(Uuid, i64, i64)> = with_db!(&db, |pool| sqlx::query_as(sql)
        .bind(pid)
        .fetch_all(pool)
        .await)
    .unwrap();
    db.close().await;
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let board = |path: String| {
        let app = &app;
        let admin = &admin;
        async move {
            let mut rows = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let url = match &cursor {
                    Some(c) => format!("{path}&limit=1&cursor={c}"),
                    None => format!("{path}&limit=1"),
                };
                let page = app.get_json(&url, admin).await;
                rows.extend(page["items"].as_array().unwrap().iter().cloned());
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break rows,
                }
            }
        }
    };
    let ranked = board(format!("/api/analytics/contributors?project_id={project}")).await;
    let got: Vec<(Uuid, i64, i64)> = ranked
        .iter()
        .map(|r| {
            let id = r["user_id"].as_str().unwrap().parse().unwrap();
            (
                id,
                r["approved"].as_i64().unwrap(),
                r["uploads"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected, "seed {seed}");
    let mut expected: Vec<(String, i64)> = Vec::new();
    let mut agreement: Vec<(String, i64)> = Vec::new();
    for token in &reviewers {
        let id = app.user_id(token).await;
        let counts = counted_decisions(&app, &project, Some(&id)).await;
        let n: i64 = counts.values().map(|c| c.0).sum();
        if n > 0 {
            let settled: i64 = counts.values().map(|c| c.1).sum();
            let agreed: i64 = counts.values().map(|c| c.2).sum();
            agreement.push((
                id.clone(),
                if settled > 0 {
                    agreed * 1000 / settled
                } else {
                    0
                },
            ));
            expected.push((id, n));
        }
    }
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let ranked = board(format!("/api/analytics/reviewers?project_id={project}")).await;
    let got: Vec<(String, i64)> = ranked
        .iter()
        .map(|r| {
            (
                r["user_id"].as_str().unwrap().to_owned(),
                r["decisions"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected, "seed {seed}");
    // By agreement (to the thousandth), the same way.
    agreement.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let ranked = board(format!(
        "/api/analytics/reviewers?project_id={project}&sort=agreement"
    ))
    .await;
    let got: Vec<(String, i64)> = ranked
        .iter()
        .map(|r| {
            let (agreed, settled) = (
                r["agreed"].as_i64().unwrap(),
                r["settled"].as_i64().unwrap(),
            );
            let permille = if settled > 0 {
                agreed * 1000 / settled
            } else {
                0
            };
            (r["user_id"].as_str().unwrap().to_owned(), permille)
        })
        .collect();
    assert_eq!(got, agreement, "seed {seed}");

    // A rollup corrupted by hand (a bad manual fix) shows, and the recount mends it.
    let db = app.db().await;
    let pid: Uuid = project.parse().unwrap();
    with_db!(&db, |pool| sqlx::query(
        "UPDATE rollup_items SET items = items + 7 WHERE project_id = $1"
    )
    .bind(pid)
    .execute(pool)
    .await
    .map(|_| ()))
    .unwrap();
    db.close().await;
    let wrong = app.get_json(&summary_path, &admin).await;
    assert!(wrong["items"].as_i64().unwrap() > live, "{wrong}");
    assert!(
        recount(&app).await >= 1,
        "the recount found the corrupted rows"
    );
    assert_eq!(recount(&app).await, 0, "and left nothing to correct");
    let mended = app.get_json(&summary_path, &admin).await;
    assert_eq!(answered_by_state(&mended), counted);

    // The platform: every live project; a deleted one leaves, and comes back.
    let root = app.super_admin("root@example.org").await;
    let other = create_project(&app, &admin, "Other").await;
    let doc = uploaded(
        &app,
        &admin,
        "/api/documents",
        &other,
        b"other text".to_vec(),
        "o.txt",
        "text/plain",
    )
    .await;
    settled(&app, &admin, "/api/documents", &doc).await;
    let platform = app.get_json("/api/analytics/summary", &root).await;
    assert!(platform.get("project_id").is_none());
    assert_eq!(platform["items"], live + 1);
    let top: Vec<&str> = platform["storage"]["top_projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["project_id"].as_str().unwrap())
        .collect();
    assert_eq!(top.len(), 2, "{platform}");
    ok(
        &app,
        &admin,
        Method::DELETE,
        &format!("/api/projects/{other}"),
        None,
    )
    .await;
    assert_eq!(
        app.get_json("/api/analytics/summary", &root).await["items"],
        live
    );
    ok(
        &app,
        &root,
        Method::POST,
        &format!("/api/projects/{other}/restore"),
        None,
    )
    .await;
    assert_eq!(
        app.get_json("/api/analytics/summary", &root).await["items"],
        live + 1
    );
    assert_eq!(recount(&app).await, 0);
}

async fn who_reads_which_figures(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let admin = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &admin, "Figures").await;
    let contributor = join(&app, &admin, &project, "c@example.org", "contributor").await;
    let reviewer = join(&app, &admin, &project, "r@example.org", "reviewer").await;
    let outsider = app.signed_up_user("out@example.org").await;
    let root = app.super_admin("root@example.org").await;
    let summary = format!("/api/analytics/summary?project_id={project}");

    for token in [&admin, &reviewer, &root] {
        let resp = app.get_auth(&summary, token).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_problem(
        app.get_auth(&summary, &contributor).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_problem(
        app.get_auth(&summary, &outsider).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let unknown = format!("/api/analytics/summary?project_id={}", Uuid::new_v4());
    assert_problem(
        app.get_auth(&unknown, &root).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    for board in ["contributors", "reviewers"] {
        let path = format!("/api/analytics/{board}?project_id={project}");
        assert_eq!(
            app.get_auth(&path, &reviewer).await.status(),
            StatusCode::OK
        );
        assert_problem(
            app.get_auth(&path, &contributor).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
        assert_problem(
            app.get_auth(&path, &outsider).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        let missing = format!("/api/analytics/{board}");
        assert_problem(
            app.get_auth(&missing, &admin).await,
            StatusCode::BAD_REQUEST,
            "missing_project_id",
        )
        .await;
        let bad = format!("{path}&cursor=not-ours");
        assert_problem(
            app.get_auth(&bad, &admin).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_cursor",
        )
        .await;
    }
    let series = format!("/api/analytics/series?project_id={project}");
    assert_eq!(
        app.get_auth(&series, &reviewer).await.status(),
        StatusCode::OK
    );
    assert_problem(
        app.get_auth(&series, &contributor).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    for (query, field) in [
        ("tz=Mars/Olympus_Mons", "tz"),
        ("from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
        (
            "bucket=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            "bucket",
        ),
    ] {
        let resp = app.get_auth(&format!("{series}&{query}"), &admin).await;
        let problem =
            assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_period").await;
        assert_eq!(problem["field"], field, "{query}");
    }
    let resp = app
        .get_auth(&format!("{series}&bucket=fortnight"), &admin)
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let month = app
        .get_json(
            &format!("{series}&bucket=month&from=2026-01-15T00:00:00Z&to=2026-03-02T00:00:00Z"),
            &admin,
        )
        .await;
    assert_eq!(month["from"], "2026-01-01T00:00:00+00:00", "{month}");
    assert_eq!(month["buckets"].as_array().unwrap().len(), 3);
    // The platform is the super admins'.
    for token in [&admin, &reviewer, &contributor] {
        let resp = app.get_auth("/api/analytics/summary", token).await;
        assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    }
    assert_eq!(
        app.get_auth("/api/analytics/summary", &root).await.status(),
        StatusCode::OK
    );
    let resp = app
        .get_auth("/api/analytics/summary?project_id=nope", &root)
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get("/api/analytics/summary").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A person's figures: themselves, a super admin, an admin of a shared project;
    // nobody else learns they exist.
    let c = app.user_id(&contributor).await;
    let path = format!("/api/analytics/user/{c}");
    for token in [&contributor, &admin, &root] {
        assert_eq!(app.get_auth(&path, token).await.status(), StatusCode::OK);
    }
    for token in [&reviewer, &outsider] {
        assert_problem(
            app.get_auth(&path, token).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let elsewhere = format!("{path}?project_id={}", Uuid::new_v4());
    assert_problem(
        app.get_auth(&elsewhere, &admin).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    for bad in ["nobody", &Uuid::new_v4().to_string()] {
        let resp = app
            .get_auth(&format!("/api/analytics/user/{bad}"), &root)
            .await;
        assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    }
    let me = app.get_json("/api/analytics/user/me", &outsider).await;
    assert_eq!(me["uploads"], 0);
    assert!(me.get("approval_rate").is_none());
}

/// The rollup triggers that look an item up find it by its key alone, then check that
/// it is live (migration 0033). With `deleted_at IS NULL` beside the key, PostgreSQL 15
/// may take a partial index of live items instead (`items_export_idx`) and read every
/// entry of it, on tables without statistics yet; PL/pgSQL then keeps that plan for the
/// connection. A trigger written that way later fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_triggers_find_an_item_by_its_key_alone() {
    crate::helpers::init_test_env();
    let app = TestAppBuilder::new(Backend::Postgres).spawn().await;
    let db = app.db().await;
    let sql = "SELECT p.proname::text FROM pg_proc p \
               WHERE p.pronamespace = current_schema()::regnamespace \
               AND p.prosrc ~* 'WHERE\\s+(\\w+\\.)?id\\s*=\\s*(NEW|OLD)\\.item_id\\s+AND\\s+(\\w+\\.)?deleted_at\\s+IS\\s+NULL' \
               ORDER BY 1";
    let both: Vec<(String,)> =
        with_db!(&db, |pool| sqlx::query_as(sql).fetch_all(pool).await).unwrap();
    let (engines,): (i64,) = with_db!(&db, |pool| sqlx::query_as(
        "SELECT COUNT(*) FROM pg_proc WHERE pronamespace = current_schema()::regnamespace \
         AND proname = 'rollup_engines_text'"
    )
    .fetch_one(pool)
    .await)
    .unwrap();
    db.close().await;
    assert_eq!(
        engines, 1,
        "the engine rollup's trigger function is in this schema"
    );
    assert!(
        both.is_empty(),
        "trigger functions that look an item up by its key and deleted_at together: {both:?}"
    );
}

/// Every rollup helper that reads or writes a table is PL/pgSQL on PostgreSQL, whose
/// plans are kept per connection: PostgreSQL 15 plans a SQL-language function with a
/// `FROM` or an `INSERT` again at every call, which cost each processing outcome a fifth
/// of its statement (migration 0032). A SQL-language helper must be `IMMUTABLE` (it only
/// computes a value, and is inlined); one that touches a table cannot be. A helper added
/// later in SQL that reads or writes fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_helpers_that_touch_a_table_are_plpgsql() {
    crate::helpers::init_test_env();
    let app = TestAppBuilder::new(Backend::Postgres).spawn().await;
    let db = app.db().await;
    let sql = "SELECT p.proname::text, l.lanname::text, p.provolatile::text FROM pg_proc p \
               JOIN pg_language l ON l.oid = p.prolang \
               WHERE p.pronamespace = current_schema()::regnamespace \
               AND p.proname LIKE 'rollup\\_%' ORDER BY 1";
    let helpers: Vec<(String, String, String)> =
        with_db!(&db, |pool| sqlx::query_as(sql).fetch_all(pool).await).unwrap();
    db.close().await;
    let language = |name: &str| {
        helpers
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(_, lang, _)| lang.as_str())
    };
    for helper in [
        "rollup_engines_add",
        "rollup_hours_add",
        "rollup_labels_add",
        "rollup_latest_engine",
    ] {
        assert_eq!(language(helper), Some("plpgsql"), "{helper}");
    }
    assert_eq!(
        language("rollup_hour"),
        Some("sql"),
        "value helpers stay SQL"
    );
    let touching_in_sql: Vec<&str> = helpers
        .iter()
        .filter(|(_, lang, volatility)| lang == "sql" && volatility != "i")
        .map(|(n, ..)| n.as_str())
        .collect();
    assert!(
        touching_in_sql.is_empty(),
        "SQL-language rollup helpers that are not IMMUTABLE: {touching_in_sql:?}"
    );
}

/// A group of review decisions moves the rollups (the statement-level trigger of
/// migration 0030) by reading each decision's item by its key, also in the plans a
/// connection made while `items` was young and small, which PL/pgSQL keeps as the table
/// grows. Joined to the inserted decisions, `items` was read whole through the partial
/// index of live items (`items_export_idx`): made on 40 items and kept, that plan took
/// about half a second for a group of 3 decisions once there were 100,000 (migration
/// 0035). `auto_explain` reports the trigger's plans as notices to `psql`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_rollups_find_each_item_by_its_key_on_young_tables() {
    crate::helpers::init_test_env();
    let app = TestAppBuilder::new(Backend::Postgres).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let owner_id = app.user_id(&owner).await;
    let project = create_project(&app, &owner, "Plans").await;
    let item = uploaded(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"Words to review.".to_vec(),
        "w.txt",
        "text/plain",
    )
    .await;
    let db = app.db().await;
    let alta_actors::store::Db::Postgres(pool) = &db else {
        unreachable!("a PostgreSQL test")
    };
    crate::plans::assert_young(pool).await;
    db.close().await;

    // A verdict runs each of the trigger's four statements; the decision is rolled back.
    let script = format!(
        "LOAD 'auto_explain';\n\
         SET auto_explain.log_min_duration = 0;\n\
         SET auto_explain.log_nested_statements = on;\n\
         SET auto_explain.log_level = notice;\n\
         BEGIN;\n\
         INSERT INTO review_decisions (id, item_id, project_id, reviewer_id, round, \
         decision, outcome, created_at) VALUES ('{id}', '{item}', '{project}', \
         '{owner_id}', 1, 'approve', 'approved', now());\n\
         ROLLBACK;\n",
        id = Uuid::now_v7(),
    );
    let (_, notices) = crate::plans::psql(&app, &script);
    // Each statement's plan is one notice: its text, then its nodes.
    let plans: Vec<&str> = notices
        .split("NOTICE:")
        .filter(|notice| notice.contains("Query Text: INSERT INTO rollup_"))
        .collect();
    assert_eq!(plans.len(), 4, "the trigger's four statements: {notices}");
    for plan in plans {
        let scans: Vec<&str> = plan
            .lines()
            .filter(|line| line.contains(" on items ") && line.contains("Scan"))
            .collect();
        assert!(!scans.is_empty(), "no scan of items: {plan}");
        for scan in scans {
            assert!(
                scan.contains("Index Scan using items_pkey on items"),
                "items is read by its key: {plan}"
            );
        }
    }
}
