//! Plans on young tables. A statement that finds one row finds it by its key, also in
//! the generic plan a connection keeps (sqlx prepares each statement once per
//! connection; PostgreSQL settles on a generic plan after five runs, and PL/pgSQL keeps
//! its statements' plans), when that plan was made on tables without statistics: a new
//! database, or one growing faster than autovacuum analyses it. Written plainly
//! (`WHERE id = $1 AND deleted_at IS NULL AND …`), such statements let PostgreSQL 15 take
//! an index whose predicate or leading columns match the rest (`items_export_idx`, on
//! project, state and id, for live items) and read every entry of it to find one item.
//! The checks run `EXPLAIN` under `plan_cache_mode = force_generic_plan`, or read
//! `auto_explain`'s report through `psql` for what runs inside a function or trigger.

use alta_actors::{
    domain::ItemStatus,
    store::{
        Db, exports, items, jobs,
        kept::{self, Kept},
        outcomes,
        reviews::{self, DecisionRow, KeptDecision},
    },
};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, TestAppBuilder};

/// The tables a statement must read by a key: (table, its key's index).
type Keys<'a> = &'a [(&'a str, &'a str)];

/// The highest `$n` a statement takes.
fn parameters(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

/// Each statement that finds items (and their jobs, their projects) reads them by their
/// keys in its generic plan on young tables. Before, the item lookups read
/// `items_export_idx` whole (by `id` alone, or by state and `id`, neither of which leads
/// it): an item's page, a status change, a claim, a lease renewed, a verdict; and a
/// group's read-ahead and kept decisions, joined to a list of rows, read `items` whole
/// or by a sequential scan, as a page's jobs and decisions (`id IN (…)`) read `jobs` and
/// `review_decisions`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_find_their_rows_by_key_on_young_tables() {
    crate::helpers::init_test_env();
    let app = TestAppBuilder::new(Backend::Postgres).spawn().await;
    let db = app.db().await;
    let Db::Postgres(pool) = &db else {
        unreachable!("a PostgreSQL test")
    };
    let mut conn = pool.acquire().await.unwrap();
    assert_young(&mut *conn).await;
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await
        .unwrap();
    let item = [("items", "items_pkey")];
    // A group's kept writes, with two verdicts and two decisions whose round goes on.
    let decision = |settle_to| KeptDecision {
        row: DecisionRow {
            id: Uuid::now_v7(),
            item_id: Uuid::now_v7(),
            project_id: Uuid::now_v7(),
            reviewer_id: Uuid::now_v7(),
            round: 0,
            decision: "approve".to_owned(),
            reason_code: None,
            comment: None,
            text_revision: None,
            outcome: "approved".to_owned(),
            created_at: chrono::Utc::now(),
        },
        settle_to,
    };
    let settled = Some(ItemStatus::Approved);
    let decisions = [
        decision(settled),
        decision(settled),
        decision(None),
        decision(None),
    ];
    let (kept_writes, _) = kept::one_statement(&Kept {
        decisions: &decisions,
        ..Kept::default()
    })
    .unwrap();
    let read_ahead = reviews::items_with_tallies_sql(3, true);
    let decisions_key = [(
        "review_decisions",
        "review_decisions_item_id_round_reviewer_id_key",
    )];
    let statements: [(&str, &str, Keys); 15] = [
        ("kept::one_statement (decisions)", &kept_writes, &item),
        ("reviews::items_with_tallies_sql", &read_ahead, &item),
        (
            "outcomes::RECORD_OUTCOME",
            outcomes::RECORD_OUTCOME,
            &[("items", "items_pkey"), ("jobs", "jobs_pkey")],
        ),
        (
            "items::LIVE_WITH_ROLE",
            &items::LIVE_WITH_ROLE,
            &[("items", "items_pkey"), ("projects", "projects_pkey")],
        ),
        ("items::LIVE", &items::LIVE, &item),
        ("items::SOFT_DELETE", items::SOFT_DELETE, &item),
        ("items::SET_STATUS", items::SET_STATUS, &item),
        ("reviews::ITEM_WITH_TALLY", &reviews::ITEM_WITH_TALLY, &item),
        ("reviews::CLAIM", reviews::CLAIM, &item),
        ("reviews::RENEW", reviews::RENEW, &item),
        ("reviews::RECORD_RELEASE", &reviews::RECORD_RELEASE, &item),
        ("reviews::RECORD_VERDICT", &reviews::RECORD_VERDICT, &item),
        ("jobs::STATUSES", jobs::STATUSES, &[("jobs", "jobs_pkey")]),
        (
            "reviews::DECISIONS_OF",
            &reviews::DECISIONS_OF,
            &decisions_key,
        ),
        (
            "exports::REASON_CODES_OF",
            exports::REASON_CODES_OF,
            &decisions_key,
        ),
    ];
    let mut wrong = Vec::new();
    for (n, (name, sql, keys)) in statements.iter().enumerate() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE s{n} AS {sql}")))
            .execute(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{name} is prepared: {e}"));
        let nulls = vec!["NULL"; parameters(sql)].join(", ");
        let (plan,): (Value,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (FORMAT JSON) EXECUTE s{n} ({nulls})"
        )))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        let mut scans = Vec::new();
        collect_scans(&plan[0]["Plan"], &mut scans);
        for (table, key) in *keys {
            let found: Vec<&(String, String, String)> =
                scans.iter().filter(|(t, ..)| t == table).collect();
            if found.is_empty() {
                wrong.push(format!("{name}: no scan of {table}"));
            }
            for (_, node, index) in found {
                // A key's several rows may be read through a bitmap of the key's index.
                let keyed = matches!(node.as_str(), "Index Scan" | "Bitmap Heap Scan");
                if !keyed || index != key {
                    wrong.push(format!("{name}: {table} read by {node} {index}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "rows not read by their keys: {wrong:#?}");
    drop(conn);
    db.close().await;
}

#[test]
fn parameters_are_counted_to_the_highest() {
    assert_eq!(parameters("SELECT $1, $12, $3"), 12);
    assert_eq!(parameters("SELECT 1"), 0);
}

/// Runs a script through `psql` on the test's database, as (its output, its notices);
/// `auto_explain` reports the plans of statements run inside functions and triggers
/// there, which `EXPLAIN` cannot reach.
pub(crate) fn psql(app: &TestApp, script: &str) -> (String, String) {
    let out = std::process::Command::new("psql")
        .args([
            app.database_url.as_str(),
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            script,
        ])
        .output()
        .expect("psql runs (PostgreSQL's client, beside the test server)");
    let (stdout, notices) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "psql: {notices}");
    (stdout, notices)
}

/// Asserts that `items` and `jobs` were never analysed (the plan tests' young tables).
pub(crate) async fn assert_young<'c>(db: impl sqlx::PgExecutor<'c>) {
    let (analysed,): (bool,) = sqlx::query_as(
        "SELECT bool_or(last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL) \
         FROM pg_stat_user_tables WHERE relname IN ('items', 'jobs') \
         AND schemaname = current_schema()",
    )
    .fetch_one(db)
    .await
    .unwrap();
    assert!(!analysed, "the tables must be young (never analysed)");
}

/// Every scan of a table in a JSON plan: (table, node type, index or ""); a bitmap heap
/// scan's index is its bitmap's.
pub(crate) fn collect_scans(node: &Value, scans: &mut Vec<(String, String, String)>) {
    let kind = node["Node Type"].as_str().unwrap_or_default();
    if let Some(table) = node["Relation Name"].as_str()
        && kind.ends_with("Scan")
    {
        let index = match kind {
            "Bitmap Heap Scan" => node["Plans"][0]["Index Name"].as_str(),
            _ => node["Index Name"].as_str(),
        };
        scans.push((
            table.to_owned(),
            kind.to_owned(),
            index.unwrap_or_default().to_owned(),
        ));
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        collect_scans(child, scans);
    }
}
