//! The analytics rollups: live items per project, contributor, kind and state, and
//! review decisions on live items per project, reviewer, decision, outcome and reason,
//! with how many matched their round's verdict (migrations `0019_rollups`,
//! `0024_reviewer_agreement`); events per hour (`rollup_hours`), verdict times (`0023`),
//! uploads per person and hour (`0025`), items by processing engine and failure code
//! (`0026`) and by label value (`0027`). Triggers keep them in the transaction of every
//! change; this module reads them, and recounts them from the base tables
//! (`alta admin recount`).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Db, RowOnEither, StoreResult, Tx, with_db, with_tx};

/// Which projects' figures: every live project, or the listed ones (live or not: the
/// caller has checked them).
#[derive(Debug, Clone)]
pub enum Scope {
    Platform,
    Projects(Vec<Uuid>),
}

impl Scope {
    /// `project_id IN (…)` for this scope, its ids bound from `$first` on.
    fn clause(&self, column: &str, first: usize) -> String {
        match self {
            Scope::Platform => {
                format!("{column} IN (SELECT id FROM projects WHERE deleted_at IS NULL)")
            }
            Scope::Projects(ids) if ids.is_empty() => "1 = 0".into(),
            Scope::Projects(ids) => {
                format!(
                    "{column} IN ({})",
                    super::placeholders_from(first, ids.len())
                )
            }
        }
    }

    fn ids(&self) -> &[Uuid] {
        match self {
            Scope::Platform => &[],
            Scope::Projects(ids) => ids,
        }
    }
}

/// The rows of `sql` whose first placeholders are `period` (`$1` from, `$2` to) when
/// given, and the next ones the ids of `scope` (see [`Scope::clause`]).
async fn fetch_scoped<T>(
    db: &Db,
    sql: &str,
    period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    scope: &Scope,
) -> StoreResult<Vec<T>>
where
    T: RowOnEither,
{
    Ok(with_db!(db, |pool| {
        let mut q = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql.to_owned()));
        if let Some((from, to)) = period {
            q = q.bind(from).bind(to);
        }
        for id in scope.ids() {
            q = q.bind(*id);
        }
        q.fetch_all(pool).await
    })?)
}

/// A period cut into buckets for a series: `starts` ascending (the first is the
/// period's start), `end` the end of the last bucket.
#[derive(Debug, Clone, Copy)]
pub struct Period<'a> {
    pub starts: &'a [DateTime<Utc>],
    pub end: DateTime<Utc>,
}

/// The SQL expression giving the bucket (0-based) of `column`, a time of the period
/// (`$1 <= column < $2`), with the bucket starts bound from `$first` on: one array and
/// `width_bucket` on PostgreSQL; on SQLite, which has neither, a binary search written
/// as nested `CASE`s over the starts after the first (about ten comparisons a row for
/// 1,000 buckets, and the same text for every period of that many buckets, so the
/// statement is prepared once).
fn bucket_expr(db: &Db, column: &str, buckets: usize, first: usize) -> String {
    fn search(column: &str, first: usize, lo: usize, hi: usize, out: &mut String) {
        if lo == hi {
            out.push_str(&lo.to_string());
            return;
        }
        let mid = (lo + hi).div_ceil(2);
        // starts[mid] is bound as $(first + mid - 1): the first start is not bound.
        out.push_str(&format!("CASE WHEN {column} >= ${} THEN ", first + mid - 1));
        search(column, first, mid, hi, out);
        out.push_str(" ELSE ");
        search(column, first, lo, mid - 1, out);
        out.push_str(" END");
    }
    match db {
        Db::Postgres(_) => {
            format!("CAST(width_bucket({column}, ${first}::timestamptz[]) - 1 AS BIGINT)")
        }
        Db::Sqlite(_) => {
            let mut out = String::from("(");
            search(column, first, 0, buckets.saturating_sub(1), &mut out);
            out.push(')');
            out
        }
    }
}

/// The rows of `sql` over a bucketed period: `{bucket}` in it becomes the bucket of its
/// `hour` column ([`bucket_expr`]), `{scope}` the scope's clause; `$1` and `$2` are the
/// period's start and end.
async fn fetch_bucketed<T>(
    db: &Db,
    sql: &str,
    period: Period<'_>,
    scope: &Scope,
) -> StoreResult<Vec<T>>
where
    T: RowOnEither,
{
    let Some(first) = period.starts.first().copied() else {
        return Ok(Vec::new());
    };
    let ids = scope.ids();
    let after_scope = 3 + ids.len();
    let sql = sql
        .replace("{scope}", &scope.clause("project_id", 3))
        .replace(
            "{bucket}",
            &bucket_expr(db, "hour", period.starts.len(), after_scope),
        );
    // -- backend-specific: the starts as one array, or each after the first.
    Ok(match db {
        Db::Postgres(pool) => {
            let mut q = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql))
                .bind(first)
                .bind(period.end);
            for id in ids {
                q = q.bind(*id);
            }
            q.bind(period.starts.to_vec()).fetch_all(pool).await?
        }
        Db::Sqlite(sqlite) => {
            let pool = sqlite.pool();
            let mut q = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql))
                .bind(first)
                .bind(period.end);
            for id in ids {
                q = q.bind(*id);
            }
            for start in &period.starts[1..] {
                q = q.bind(*start);
            }
            q.fetch_all(pool).await?
        }
    })
}

/// Live items of one kind in one state (summed over what the query groups away).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ItemFigures {
    pub kind: String,
    pub status: String,
    pub items: i64,
    pub bytes: i64,
    pub audio_ms: i64,
    /// Of them, sent back for changes at least once.
    pub reworked: i64,
    /// Rework rounds used, summed.
    pub rounds: i64,
}

/// Review decisions on live items with one decision, outcome and reason.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DecisionFigures {
    pub decision: String,
    pub outcome: String,
    /// `""` when none was given.
    pub reason_code: String,
    pub decisions: i64,
    /// Of them, those whose round has a verdict, and those that matched it (an
    /// approval an approved item, a rejection a rejected or reworked one).
    pub settled: i64,
    pub agreed: i64,
}

/// Items by kind and state in `scope`, of `contributor` only when given.
pub async fn items(
    db: &Db,
    scope: &Scope,
    contributor: Option<Uuid>,
) -> StoreResult<Vec<ItemFigures>> {
    let sql = format!(
        "SELECT kind, status, CAST(SUM(items) AS BIGINT) AS items, \
         CAST(SUM(bytes) AS BIGINT) AS bytes, CAST(SUM(audio_ms) AS BIGINT) AS audio_ms, \
         CAST(SUM(reworked) AS BIGINT) AS reworked, CAST(SUM(rounds) AS BIGINT) AS rounds \
         FROM rollup_items WHERE ($1 IS NULL OR contributor_id = $1) AND {} \
         GROUP BY kind, status HAVING SUM(items) <> 0 ORDER BY kind, status",
        scope.clause("project_id", 2)
    );
    Ok(with_db!(db, |pool| {
        let mut q =
            sqlx::query_as::<_, ItemFigures>(sqlx::AssertSqlSafe(sql.clone())).bind(contributor);
        for id in scope.ids() {
            q = q.bind(*id);
        }
        q.fetch_all(pool).await
    })?)
}

/// Decisions in `scope` by decision, outcome and reason, of `reviewer` only when given.
pub async fn decisions(
    db: &Db,
    scope: &Scope,
    reviewer: Option<Uuid>,
) -> StoreResult<Vec<DecisionFigures>> {
    let sql = format!(
        "SELECT decision, outcome, reason_code, CAST(SUM(decisions) AS BIGINT) AS decisions, \
         CAST(SUM(settled) AS BIGINT) AS settled, CAST(SUM(agreed) AS BIGINT) AS agreed \
         FROM rollup_decisions WHERE ($1 IS NULL OR reviewer_id = $1) AND {} \
         GROUP BY decision, outcome, reason_code HAVING SUM(decisions) <> 0 \
         ORDER BY decision, outcome, reason_code",
        scope.clause("project_id", 2)
    );
    Ok(with_db!(db, |pool| {
        let mut q =
            sqlx::query_as::<_, DecisionFigures>(sqlx::AssertSqlSafe(sql.clone())).bind(reviewer);
        for id in scope.ids() {
            q = q.bind(*id);
        }
        q.fetch_all(pool).await
    })?)
}

/// The live projects holding the most bytes of live items, most first.
pub async fn top_projects(db: &Db, limit: i64) -> StoreResult<Vec<(Uuid, String, i64)>> {
    let sql = "SELECT p.id, p.name, CAST(SUM(r.bytes) AS BIGINT) AS bytes \
               FROM rollup_items r JOIN projects p ON p.id = r.project_id \
               WHERE p.deleted_at IS NULL GROUP BY p.id, p.name HAVING SUM(r.bytes) > 0 \
               ORDER BY bytes DESC, p.id LIMIT $1";
    Ok(with_db!(db, |pool| {
        sqlx::query_as::<_, (Uuid, String, i64)>(sql)
            .bind(limit)
            .fetch_all(pool)
            .await
    })?)
}

/// Members of the projects in `scope` by role (a person in two projects counts twice).
pub async fn members(db: &Db, scope: &Scope) -> StoreResult<Vec<(String, i64)>> {
    let sql = format!(
        "SELECT role, COUNT(*) FROM project_members WHERE {} GROUP BY role ORDER BY role",
        scope.clause("project_id", 1)
    );
    fetch_scoped(db, &sql, None, scope).await
}

/// When the longest-waiting pending item of `scope` was submitted: one probe of the
/// pending-items index per project, never a scan of the items.
pub async fn oldest_pending(db: &Db, scope: &Scope) -> StoreResult<Option<DateTime<Utc>>> {
    let sql = format!(
        "SELECT MIN((SELECT MIN(i.submitted_at) FROM items i WHERE i.project_id = p.id \
                     AND i.status = 'pending_review' AND i.deleted_at IS NULL)) \
         FROM projects p WHERE {}",
        scope.clause("p.id", 1)
    );
    Ok(with_db!(db, |pool| {
        let mut q =
            sqlx::query_scalar::<_, Option<DateTime<Utc>>>(sqlx::AssertSqlSafe(sql.clone()));
        for id in scope.ids() {
            q = q.bind(*id);
        }
        q.fetch_one(pool).await
    })?)
}

/// One row of `rollup_items`, as stored or as recounted.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ItemRollup {
    pub contributor_id: Uuid,
    pub kind: String,
    pub status: String,
    pub items: i64,
    pub bytes: i64,
    pub audio_ms: i64,
    pub reworked: i64,
    pub rounds: i64,
}

/// One row of `rollup_decisions`, as stored or as recounted.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DecisionRollup {
    pub reviewer_id: Uuid,
    pub decision: String,
    pub outcome: String,
    pub reason_code: String,
    pub decisions: i64,
    /// Of them, those whose round has a verdict, and those that matched it.
    pub settled: i64,
    pub agreed: i64,
}

/// The project's stored item rollup rows that count something.
pub async fn stored_items(tx: &mut Tx, project: Uuid) -> StoreResult<Vec<ItemRollup>> {
    let sql = "SELECT contributor_id, kind, status, items, bytes, audio_ms, reworked, rounds \
               FROM rollup_items WHERE project_id = $1 AND (items <> 0 OR bytes <> 0 \
               OR audio_ms <> 0 OR reworked <> 0 OR rounds <> 0) \
               ORDER BY contributor_id, kind, status";
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, ItemRollup>(sql)
        .bind(project)
        .fetch_all(conn)
        .await)?)
}

/// The project's item rollup as the base tables say it should be.
pub async fn counted_items(tx: &mut Tx, project: Uuid) -> StoreResult<Vec<ItemRollup>> {
    let audio_ms = match tx {
        Tx::Postgres(_) => "rollup_audio_ms(audio)",
        Tx::Sqlite(_) => {
            "CAST(ROUND(COALESCE(json_extract(audio, '$.duration_seconds'), 0) * 1000) AS INTEGER)"
        }
    };
    let sql = format!(
        "SELECT contributor_id, kind, status, COUNT(*) AS items, \
         CAST(SUM(size_bytes) AS BIGINT) AS bytes, CAST(SUM({audio_ms}) AS BIGINT) AS audio_ms, \
         CAST(SUM(CASE WHEN review_round > 0 THEN 1 ELSE 0 END) AS BIGINT) AS reworked, \
         CAST(SUM(review_round) AS BIGINT) AS rounds \
         FROM items WHERE project_id = $1 AND deleted_at IS NULL \
         GROUP BY contributor_id, kind, status ORDER BY contributor_id, kind, status"
    );
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, ItemRollup>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(project)
    .fetch_all(conn)
    .await)?)
}

/// The project's stored decision rollup rows that count something.
pub async fn stored_decisions(tx: &mut Tx, project: Uuid) -> StoreResult<Vec<DecisionRollup>> {
    let sql = "SELECT reviewer_id, decision, outcome, reason_code, decisions, settled, agreed \
               FROM rollup_decisions WHERE project_id = $1 \
               AND (decisions <> 0 OR settled <> 0 OR agreed <> 0) \
               ORDER BY reviewer_id, decision, outcome, reason_code";
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, DecisionRollup>(
        sql
    )
    .bind(project)
    .fetch_all(conn)
    .await)?)
}

/// The project's decision rollup as the base tables say it should be.
pub async fn counted_decisions(tx: &mut Tx, project: Uuid) -> StoreResult<Vec<DecisionRollup>> {
    // A round has at most one verdict (it ends the round), so the join adds no rows.
    let sql = "SELECT d.reviewer_id, d.decision, d.outcome, \
               COALESCE(d.reason_code, '') AS reason_code, COUNT(*) AS decisions, \
               COUNT(v.outcome) AS settled, \
               CAST(COALESCE(SUM(CASE WHEN v.outcome IS NULL THEN 0 \
                   WHEN (d.decision = 'approve') = (v.outcome = 'approved') THEN 1 \
                   ELSE 0 END), 0) AS BIGINT) AS agreed \
               FROM review_decisions d JOIN items i ON i.id = d.item_id \
               LEFT JOIN review_decisions v ON v.item_id = d.item_id AND v.round = d.round \
                   AND v.outcome IN ('approved', 'changes_requested', 'rejected') \
               WHERE d.project_id = $1 AND i.deleted_at IS NULL \
               GROUP BY d.reviewer_id, d.decision, d.outcome, COALESCE(d.reason_code, '') \
               ORDER BY d.reviewer_id, d.decision, d.outcome, reason_code";
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, DecisionRollup>(
        sql
    )
    .bind(project)
    .fetch_all(conn)
    .await)?)
}

/// Replace the project's rollup rows with `items`, `decisions`, `hours`,
/// `verdict_times` and `contributor_hours`.
pub async fn replace(
    tx: &mut Tx,
    project: Uuid,
    items: &[ItemRollup],
    decisions: &[DecisionRollup],
    hours: &[HourRollup],
    verdict_times: &[VerdictTimeRollup],
    contributor_hours: &[ContributorHour],
) -> StoreResult<()> {
    for sql in [
        "DELETE FROM rollup_items WHERE project_id = $1",
        "DELETE FROM rollup_decisions WHERE project_id = $1",
        "DELETE FROM rollup_hours WHERE project_id = $1",
        "DELETE FROM rollup_verdict_times WHERE project_id = $1",
        "DELETE FROM rollup_contributor_hours WHERE project_id = $1",
    ] {
        with_tx!(tx, |conn| sqlx::query(sql)
            .bind(project)
            .execute(conn)
            .await
            .map(|_| ()))?;
    }
    let insert = "INSERT INTO rollup_items (project_id, contributor_id, kind, status, items, \
                  bytes, audio_ms, reworked, rounds) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    for r in items {
        with_tx!(tx, |conn| sqlx::query(insert)
            .bind(project)
            .bind(r.contributor_id)
            .bind(r.kind.as_str())
            .bind(r.status.as_str())
            .bind(r.items)
            .bind(r.bytes)
            .bind(r.audio_ms)
            .bind(r.reworked)
            .bind(r.rounds)
            .execute(conn)
            .await
            .map(|_| ()))?;
    }
    let insert = "INSERT INTO rollup_decisions (project_id, reviewer_id, decision, outcome, \
                  reason_code, decisions, settled, agreed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    for r in decisions {
        with_tx!(tx, |conn| sqlx::query(insert)
            .bind(project)
            .bind(r.reviewer_id)
            .bind(r.decision.as_str())
            .bind(r.outcome.as_str())
            .bind(r.reason_code.as_str())
            .bind(r.decisions)
            .bind(r.settled)
            .bind(r.agreed)
            .execute(conn)
            .await
            .map(|_| ()))?;
    }
    let insert = "INSERT INTO rollup_verdict_times (project_id, verdict, bucket, items) \
                  VALUES ($1, $2, $3, $4)";
    for r in verdict_times {
        with_tx!(tx, |conn| sqlx::query(insert)
            .bind(project)
            .bind(r.verdict.as_str())
            .bind(r.bucket)
            .bind(r.items)
            .execute(conn)
            .await
            .map(|_| ()))?;
    }
    let insert = "INSERT INTO rollup_contributor_hours (project_id, contributor_id, hour, \
                  uploads) VALUES ($1, $2, $3, $4)";
    for r in contributor_hours {
        with_tx!(tx, |conn| sqlx::query(insert)
            .bind(project)
            .bind(r.contributor_id)
            .bind(r.hour)
            .bind(r.uploads)
            .execute(conn)
            .await
            .map(|_| ()))?;
    }
    let insert = "INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms) \
                  VALUES ($1, $2, $3, $4, $5)";
    for r in hours {
        with_tx!(tx, |conn| sqlx::query(insert)
            .bind(project)
            .bind(r.event.as_str())
            .bind(r.hour)
            .bind(r.items)
            .bind(r.audio_ms)
            .execute(conn)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}

/// One row of `rollup_verdict_times`: verdicts whose time from submission fell in
/// `bucket` (see `domain::verdict_times`), as stored or as recounted.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VerdictTimeRollup {
    pub verdict: String,
    pub bucket: i32,
    pub items: i64,
}

/// The verdicts of `scope` by verdict and time bucket, summed over its projects.
pub async fn verdict_times(db: &Db, scope: &Scope) -> StoreResult<Vec<VerdictTimeRollup>> {
    let sql = format!(
        "SELECT verdict, bucket, CAST(SUM(items) AS BIGINT) AS items \
         FROM rollup_verdict_times WHERE {} GROUP BY verdict, bucket \
         HAVING SUM(items) <> 0 ORDER BY verdict, bucket",
        scope.clause("project_id", 1)
    );
    fetch_scoped(db, &sql, None, scope).await
}

/// The project's stored verdict-time rows that count something.
pub async fn stored_verdict_times(
    tx: &mut Tx,
    project: Uuid,
) -> StoreResult<Vec<VerdictTimeRollup>> {
    let sql = "SELECT verdict, bucket, items FROM rollup_verdict_times \
               WHERE project_id = $1 AND items <> 0 ORDER BY verdict, bucket";
    Ok(with_tx!(tx, |conn| {
        sqlx::query_as::<_, VerdictTimeRollup>(sql)
            .bind(project)
            .fetch_all(conn)
            .await
    })?)
}

/// The project's verdict-time rows as the base tables say they should be.
pub async fn counted_verdict_times(
    tx: &mut Tx,
    project: Uuid,
) -> StoreResult<Vec<VerdictTimeRollup>> {
    let bucket = match tx {
        Tx::Postgres(_) => {
            "rollup_verdict_bucket(rollup_verdict_seconds(d.created_at, s.submitted_at))".into()
        }
        Tx::Sqlite(_) => crate::domain::verdict_times::bucket_sql(
            "((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0)",
        ),
    };
    let sql = format!(
        "SELECT d.outcome AS verdict, CAST({bucket} AS INTEGER) AS bucket, COUNT(*) AS items \
         FROM review_decisions d \
         JOIN review_submissions s ON s.item_id = d.item_id AND s.round = d.round \
         JOIN items i ON i.id = d.item_id \
         WHERE d.project_id = $1 AND i.deleted_at IS NULL \
         AND d.outcome IN ('approved', 'changes_requested', 'rejected') \
         GROUP BY 1, 2 ORDER BY 1, 2"
    );
    Ok(with_tx!(tx, |conn| {
        sqlx::query_as::<_, VerdictTimeRollup>(sqlx::AssertSqlSafe(sql.clone()))
            .bind(project)
            .fetch_all(conn)
            .await
    })?)
}

/// One row of `rollup_hours`, as stored or as recounted.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HourRollup {
    pub event: String,
    pub hour: DateTime<Utc>,
    pub items: i64,
    pub audio_ms: i64,
}

/// The project's stored hourly rows that count something.
pub async fn stored_hours(tx: &mut Tx, project: Uuid) -> StoreResult<Vec<HourRollup>> {
    let sql = "SELECT event, hour, items, audio_ms FROM rollup_hours \
               WHERE project_id = $1 AND (items <> 0 OR audio_ms <> 0) ORDER BY event, hour";
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, HourRollup>(sql)
        .bind(project)
        .fetch_all(conn)
        .await)?)
}

/// The project's hourly rows as the base tables say they should be.
pub async fn counted_hours(tx: &mut Tx, project: Uuid) -> StoreResult<Vec<HourRollup>> {
    let (hour, audio_ms) = match tx {
        Tx::Postgres(_) => ("rollup_hour({})", "rollup_audio_ms({})"),
        Tx::Sqlite(_) => (
            "strftime('%Y-%m-%dT%H:00:00+00:00', {})",
            "CAST(ROUND(COALESCE(json_extract({}, '$.duration_seconds'), 0) * 1000) AS INTEGER)",
        ),
    };
    let h = |column: &str| hour.replace("{}", column);
    let a = |column: &str| audio_ms.replace("{}", column);
    let sql = format!(
        "SELECT event, hour, CAST(SUM(items) AS BIGINT) AS items, \
         CAST(SUM(audio_ms) AS BIGINT) AS audio_ms FROM ( \
           SELECT CAST('upload' AS TEXT) AS event, {} AS hour, 1 AS items, {} AS audio_ms \
           FROM items WHERE project_id = $1 AND deleted_at IS NULL \
           UNION ALL \
           SELECT CAST('submission' AS TEXT), {}, 1, 0 FROM review_submissions s \
           JOIN items i ON i.id = s.item_id WHERE s.project_id = $1 AND i.deleted_at IS NULL \
           UNION ALL \
           SELECT d.outcome, {}, 1, CASE WHEN d.outcome = 'approved' THEN {} ELSE 0 END \
           FROM review_decisions d JOIN items i ON i.id = d.item_id \
           WHERE d.project_id = $1 AND i.deleted_at IS NULL \
           AND d.outcome IN ('approved', 'changes_requested', 'rejected') \
         ) events GROUP BY event, hour ORDER BY event, hour",
        h("created_at"),
        a("audio"),
        h("s.submitted_at"),
        h("d.created_at"),
        a("i.audio"),
    );
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, HourRollup>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(project)
    .fetch_all(conn)
    .await)?)
}

/// Events of a scope's live items per bucket of a period (summed over its hours).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BucketEvents {
    pub bucket: i64,
    pub event: String,
    pub items: i64,
    pub audio_ms: i64,
}

/// The events of `scope` per bucket of `period`.
pub async fn event_buckets(
    db: &Db,
    scope: &Scope,
    period: Period<'_>,
) -> StoreResult<Vec<BucketEvents>> {
    let sql = "SELECT {bucket} AS bucket, event, CAST(SUM(items) AS BIGINT) AS items, \
               CAST(SUM(audio_ms) AS BIGINT) AS audio_ms FROM rollup_hours \
               WHERE hour >= $1 AND hour < $2 AND {scope} GROUP BY 1, event";
    fetch_bucketed(db, sql, period, scope).await
}

/// One row of a count rollup (`rollup_engines`, `rollup_failures`; `rollup_labels`
/// summed over its hours): live items in a `group` (an item kind; a label field) with a
/// `name` (an engine; a failure code; a label value), summed over a scope, stored or
/// recounted.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CountRollup {
    pub group: String,
    pub name: String,
    pub items: i64,
}

/// The count rollups: where each is kept, and how the base tables say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountFigure {
    /// Live items by kind and the engine of their newest machine text.
    Engines,
    /// Live items now `processing_failed`, by kind and failure code.
    Failures,
}

impl CountFigure {
    pub const ALL: [Self; 2] = [Self::Engines, Self::Failures];

    /// The rollup table and its group and name columns.
    fn table(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Engines => ("rollup_engines", "kind", "engine"),
            Self::Failures => ("rollup_failures", "kind", "code"),
        }
    }

    pub fn name(self) -> &'static str {
        self.table().0
    }

    /// The figure counted from the base tables (`$1`: the project).
    fn counted_sql(self) -> &'static str {
        match self {
            Self::Engines => {
                "SELECT i.kind AS \"group\", COALESCE(t.engine, '') AS name, COUNT(*) AS items \
                 FROM items i JOIN item_texts t ON t.id = ( \
                     SELECT id FROM item_texts WHERE item_id = i.id AND source = 'machine' \
                     ORDER BY revision DESC LIMIT 1) \
                 WHERE i.project_id = $1 AND i.deleted_at IS NULL \
                 GROUP BY i.kind, COALESCE(t.engine, '') ORDER BY 1, 2"
            }
            Self::Failures => {
                "SELECT kind AS \"group\", COALESCE(processing_error_code, '') AS name, \
                 COUNT(*) AS items FROM items WHERE project_id = $1 AND deleted_at IS NULL \
                 AND status = 'processing_failed' \
                 GROUP BY kind, COALESCE(processing_error_code, '') ORDER BY 1, 2"
            }
        }
    }
}

/// A count figure in `scope`, by group and name.
pub async fn counts(db: &Db, scope: &Scope, figure: CountFigure) -> StoreResult<Vec<CountRollup>> {
    let (table, group, name) = figure.table();
    summed(db, scope, table, group, name).await
}

/// The label distribution in `scope`: live items by field (`group`) and value (`name`),
/// whenever uploaded.
pub async fn label_totals(db: &Db, scope: &Scope) -> StoreResult<Vec<CountRollup>> {
    summed(db, scope, "rollup_labels", "field", "value").await
}

/// `table`'s items in `scope` summed by its `group` and `name` columns.
async fn summed(
    db: &Db,
    scope: &Scope,
    table: &str,
    group: &str,
    name: &str,
) -> StoreResult<Vec<CountRollup>> {
    let sql = format!(
        "SELECT {group} AS \"group\", {name} AS name, CAST(SUM(items) AS BIGINT) AS items \
         FROM {table} WHERE {} GROUP BY {group}, {name} HAVING SUM(items) <> 0 \
         ORDER BY 1, 2",
        scope.clause("project_id", 1)
    );
    fetch_scoped(db, &sql, None, scope).await
}

/// The project's stored rows of a count figure that count something.
pub async fn stored_counts(
    tx: &mut Tx,
    project: Uuid,
    figure: CountFigure,
) -> StoreResult<Vec<CountRollup>> {
    let (table, group, name) = figure.table();
    let sql = format!(
        "SELECT {group} AS \"group\", {name} AS name, items FROM {table} \
         WHERE project_id = $1 AND items <> 0 ORDER BY 1, 2"
    );
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, CountRollup>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(project)
    .fetch_all(conn)
    .await)?)
}

/// The project's count figure as the base tables say it should be.
pub async fn counted_counts(
    tx: &mut Tx,
    project: Uuid,
    figure: CountFigure,
) -> StoreResult<Vec<CountRollup>> {
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, CountRollup>(
        figure.counted_sql()
    )
    .bind(project)
    .fetch_all(conn)
    .await)?)
}

/// Replace the project's rows of a count figure with `rows`.
pub async fn replace_counts(
    tx: &mut Tx,
    project: Uuid,
    figure: CountFigure,
    rows: &[CountRollup],
) -> StoreResult<()> {
    let (table, group, name) = figure.table();
    let delete = format!("DELETE FROM {table} WHERE project_id = $1");
    with_tx!(tx, |conn| sqlx::query(sqlx::AssertSqlSafe(delete.clone()))
        .bind(project)
        .execute(conn)
        .await
        .map(|_| ()))?;
    let insert =
        format!("INSERT INTO {table} (project_id, {group}, {name}, items) VALUES ($1, $2, $3, $4)");
    for r in rows {
        with_tx!(tx, |conn| sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
            .bind(project)
            .bind(r.group.as_str())
            .bind(r.name.as_str())
            .bind(r.items)
            .execute(conn)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}

/// One row of `rollup_labels`: live items uploaded in one UTC hour carrying one value
/// of one label field, as stored or as recounted.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LabelRollup {
    pub field: String,
    pub value: String,
    pub hour: DateTime<Utc>,
    pub items: i64,
}

/// Live items of a scope per bucket of a period (of their upload), label field and
/// value.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BucketLabels {
    pub bucket: i64,
    pub field: String,
    pub value: String,
    pub items: i64,
}

/// The label counts of `scope` per bucket of `period` (items uploaded in it).
pub async fn label_buckets(
    db: &Db,
    scope: &Scope,
    period: Period<'_>,
) -> StoreResult<Vec<BucketLabels>> {
    let sql = "SELECT {bucket} AS bucket, field, value, CAST(SUM(items) AS BIGINT) AS items \
               FROM rollup_labels WHERE hour >= $1 AND hour < $2 AND {scope} \
               GROUP BY 1, field, value HAVING SUM(items) <> 0";
    fetch_bucketed(db, sql, period, scope).await
}

/// The project's stored label rows that count something.
pub async fn stored_labels(tx: &mut Tx, project: Uuid) -> StoreResult<Vec<LabelRollup>> {
    let sql = "SELECT field, value, hour, items FROM rollup_labels \
               WHERE project_id = $1 AND items <> 0 ORDER BY field, value, hour";
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, LabelRollup>(sql)
        .bind(project)
        .fetch_all(conn)
        .await)?)
}

/// The project's label rows as its label index and items say they should be.
pub async fn counted_labels(tx: &mut Tx, project: Uuid) -> StoreResult<Vec<LabelRollup>> {
    let hour = match tx {
        Tx::Postgres(_) => "rollup_hour(i.created_at)",
        Tx::Sqlite(_) => "strftime('%Y-%m-%dT%H:00:00+00:00', i.created_at)",
    };
    let sql = format!(
        "SELECT l.field, l.value, {hour} AS hour, COUNT(*) AS items \
         FROM annotation_labels l JOIN items i ON i.id = l.item_id \
         WHERE l.project_id = $1 AND i.deleted_at IS NULL \
         GROUP BY l.field, l.value, {hour} ORDER BY l.field, l.value, hour"
    );
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, LabelRollup>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(project)
    .fetch_all(conn)
    .await)?)
}

/// Replace the project's label rows with `rows`.
pub async fn replace_labels(tx: &mut Tx, project: Uuid, rows: &[LabelRollup]) -> StoreResult<()> {
    with_tx!(tx, |conn| sqlx::query(
        "DELETE FROM rollup_labels WHERE project_id = $1"
    )
    .bind(project)
    .execute(conn)
    .await
    .map(|_| ()))?;
    let insert = "INSERT INTO rollup_labels (project_id, field, value, hour, items) \
                  VALUES ($1, $2, $3, $4, $5)";
    for r in rows {
        with_tx!(tx, |conn| sqlx::query(insert)
            .bind(project)
            .bind(r.field.as_str())
            .bind(r.value.as_str())
            .bind(r.hour)
            .bind(r.items)
            .execute(conn)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}

/// One row of `rollup_contributor_hours`: a contributor's live uploads in one UTC hour,
/// as stored or as recounted.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ContributorHour {
    pub contributor_id: Uuid,
    pub hour: DateTime<Utc>,
    pub uploads: i64,
}

/// The project's stored contributor hours that count something.
pub async fn stored_contributor_hours(
    tx: &mut Tx,
    project: Uuid,
) -> StoreResult<Vec<ContributorHour>> {
    let sql = "SELECT contributor_id, hour, uploads FROM rollup_contributor_hours \
               WHERE project_id = $1 AND uploads <> 0 ORDER BY contributor_id, hour";
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, ContributorHour>(
        sql
    )
    .bind(project)
    .fetch_all(conn)
    .await)?)
}

/// The project's contributor hours as its live items say they should be.
pub async fn counted_contributor_hours(
    tx: &mut Tx,
    project: Uuid,
) -> StoreResult<Vec<ContributorHour>> {
    let hour = match tx {
        Tx::Postgres(_) => "rollup_hour(created_at)",
        Tx::Sqlite(_) => "strftime('%Y-%m-%dT%H:00:00+00:00', created_at)",
    };
    let sql = format!(
        "SELECT contributor_id, {hour} AS hour, COUNT(*) AS uploads FROM items \
         WHERE project_id = $1 AND deleted_at IS NULL \
         GROUP BY contributor_id, {hour} ORDER BY contributor_id, hour"
    );
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, ContributorHour>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(project)
    .fetch_all(conn)
    .await)?)
}

/// Who uploaded (a live item) in each bucket of `period`: (bucket, contributor), each
/// pair once.
pub async fn active_contributors(
    db: &Db,
    scope: &Scope,
    period: Period<'_>,
) -> StoreResult<Vec<(i64, Uuid)>> {
    let sql = "SELECT DISTINCT {bucket} AS bucket, contributor_id FROM rollup_contributor_hours \
               WHERE hour >= $1 AND hour < $2 AND uploads > 0 AND {scope}";
    fetch_bucketed(db, sql, period, scope).await
}

/// The live projects where `admin` is an admin and `member` a member.
pub async fn shared_as_admin(db: &Db, admin: Uuid, member: Uuid) -> StoreResult<Vec<Uuid>> {
    let sql = "SELECT a.project_id FROM project_members a \
               JOIN project_members m ON m.project_id = a.project_id \
               JOIN projects p ON p.id = a.project_id \
               WHERE a.user_id = $1 AND a.role = 'admin' AND m.user_id = $2 \
               AND p.deleted_at IS NULL ORDER BY a.project_id";
    Ok(with_db!(db, |pool| sqlx::query_scalar::<_, Uuid>(sql)
        .bind(admin)
        .bind(member)
        .fetch_all(pool)
        .await)?)
}

/// A leaderboard over a rollup table (`r`): what it ranks by, the rows it answers, and
/// the SQL pieces of its grouped query. The contributors' and the reviewers' are one
/// query of two shapes ([`ranked`]).
pub trait Leaderboard: Copy + Send + Sync + 'static {
    type Row: RowOnEither;
    /// The rollup table, as `r`.
    const FROM: &'static str;
    /// Its column naming the person ranked.
    const ID: &'static str;
    /// The row's columns (`user_id`, `email`, then the figures).
    const SELECT: &'static str;
    /// Who is on the board at all.
    const HAVING: &'static str;

    /// The figure ranked by (an aggregate over `r`).
    fn expr(self) -> &'static str;

    /// The person a row is about (the cursor).
    fn user_of(row: &Self::Row) -> Uuid;
}

/// What a contributors' leaderboard ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContributorSort {
    Approved,
    ApprovedAudio,
    Uploads,
}

impl Leaderboard for ContributorSort {
    type Row = ContributorRank;
    const FROM: &'static str = "rollup_items r";
    const ID: &'static str = "contributor_id";
    const SELECT: &'static str = "r.contributor_id AS user_id, u.email, \
         CAST(SUM(r.items) AS BIGINT) AS uploads, \
         CAST(SUM(CASE WHEN r.status = 'approved' THEN r.items ELSE 0 END) AS BIGINT) AS approved, \
         CAST(SUM(CASE WHEN r.status = 'rejected' THEN r.items ELSE 0 END) AS BIGINT) AS rejected, \
         CAST(SUM(CASE WHEN r.status = 'approved' THEN r.audio_ms ELSE 0 END) AS BIGINT) \
             AS approved_audio_ms, \
         CAST(SUM(r.audio_ms) AS BIGINT) AS audio_ms";
    const HAVING: &'static str = "SUM(r.items) > 0";

    fn expr(self) -> &'static str {
        match self {
            Self::Approved => "SUM(CASE WHEN r.status = 'approved' THEN r.items ELSE 0 END)",
            Self::ApprovedAudio => {
                "SUM(CASE WHEN r.status = 'approved' THEN r.audio_ms ELSE 0 END)"
            }
            Self::Uploads => "SUM(r.items)",
        }
    }

    fn user_of(row: &ContributorRank) -> Uuid {
        row.user_id
    }
}

/// A contributor's standing in a project (live items).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ContributorRank {
    pub user_id: Uuid,
    pub email: String,
    pub uploads: i64,
    pub approved: i64,
    pub rejected: i64,
    pub approved_audio_ms: i64,
    pub audio_ms: i64,
}

/// What a reviewers' leaderboard ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewerSort {
    Decisions,
    Approvals,
    Rejections,
    /// Votes that matched their round's verdict, per thousand settled votes.
    Agreement,
}

impl Leaderboard for ReviewerSort {
    type Row = ReviewerRank;
    const FROM: &'static str = "rollup_decisions r";
    const ID: &'static str = "reviewer_id";
    const SELECT: &'static str = "r.reviewer_id AS user_id, u.email, \
         CAST(SUM(r.decisions) AS BIGINT) AS decisions, \
         CAST(SUM(CASE WHEN r.decision = 'approve' THEN r.decisions ELSE 0 END) AS BIGINT) \
             AS approvals, \
         CAST(SUM(CASE WHEN r.decision = 'reject' THEN r.decisions ELSE 0 END) AS BIGINT) \
             AS rejections, \
         CAST(SUM(r.settled) AS BIGINT) AS settled, CAST(SUM(r.agreed) AS BIGINT) AS agreed";
    const HAVING: &'static str = "SUM(r.decisions) > 0";

    fn expr(self) -> &'static str {
        match self {
            Self::Decisions => "SUM(r.decisions)",
            Self::Approvals => "SUM(CASE WHEN r.decision = 'approve' THEN r.decisions ELSE 0 END)",
            Self::Rejections => "SUM(CASE WHEN r.decision = 'reject' THEN r.decisions ELSE 0 END)",
            // Integer per-mille, so that a cursor can name the position exactly.
            Self::Agreement => "COALESCE(SUM(r.agreed) * 1000 / NULLIF(SUM(r.settled), 0), 0)",
        }
    }

    fn user_of(row: &ReviewerRank) -> Uuid {
        row.user_id
    }
}

/// A reviewer's standing in a project (decisions on live items).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReviewerRank {
    pub user_id: Uuid,
    pub email: String,
    pub decisions: i64,
    pub approvals: i64,
    pub rejections: i64,
    /// Votes whose round has a verdict, and those that matched it.
    pub settled: i64,
    pub agreed: i64,
}

/// One page of a leaderboard's grouped query: rows ranked by `sort` (most first, then
/// by id), after the row of `after` as it stands now. `$1` project, `$2`/`$3` the
/// position after which the page starts, `$4` the limit.
fn ranked_sql(select: &str, from: &str, id: &str, sort: &str, having: &str) -> String {
    format!(
        "SELECT {select} FROM {from} JOIN users u ON u.id = r.{id} WHERE r.project_id = $1 \
         GROUP BY r.{id}, u.email HAVING {having} \
         AND ($2 IS NULL OR {sort} < $2 OR ({sort} = $2 AND r.{id} > $3)) \
         ORDER BY {sort} DESC, r.{id} LIMIT $4"
    )
}

/// The value `sort` has for `user` now (the position a cursor names), 0 when none.
async fn rank_value(
    db: &Db,
    from: &str,
    id: &str,
    sort: &str,
    project: Uuid,
    user: Uuid,
) -> StoreResult<i64> {
    let sql = format!(
        "SELECT CAST(COALESCE({sort}, 0) AS BIGINT) FROM {from} WHERE r.project_id = $1 AND r.{id} = $2"
    );
    Ok(with_db!(db, |pool| sqlx::query_scalar::<_, i64>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(project)
    .bind(user)
    .fetch_one(pool)
    .await)?)
}

/// A page of the project's leaderboard `L`, ranked by `sort`, after the person `after`.
pub async fn ranked<L: Leaderboard>(
    db: &Db,
    project: Uuid,
    sort: L,
    after: Option<Uuid>,
    limit: i64,
) -> StoreResult<Vec<L::Row>> {
    let position = match after {
        Some(user) => Some((
            rank_value(db, L::FROM, L::ID, sort.expr(), project, user).await?,
            user,
        )),
        None => None,
    };
    let sql = ranked_sql(L::SELECT, L::FROM, L::ID, sort.expr(), L::HAVING);
    Ok(with_db!(db, |pool| sqlx::query_as::<_, L::Row>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(project)
    .bind(position.map(|p| p.0))
    .bind(position.map(|p| p.1))
    .bind(limit)
    .fetch_all(pool)
    .await)?)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone as _};

    use super::*;
    use crate::domain::buckets::index_of;

    /// SQLite's bucket search (nested `CASE`s) puts every time where the series'
    /// definition does ([`index_of`]), for every bucket count up to 40 and for starts
    /// that are not whole hours apart.
    #[tokio::test]
    async fn sqlite_buckets_each_time_where_the_definition_does() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (hour TEXT NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        let origin = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        for h in 0..200 {
            sqlx::query("INSERT INTO t (hour) VALUES ($1)")
                .bind(origin + Duration::hours(h))
                .execute(&pool)
                .await
                .unwrap();
        }
        let db = Db::Sqlite(crate::store::SqliteDb::new(pool.clone()));
        for n in 1..=40usize {
            // Uneven widths: 1 to 5 hours, some starting on the half hour.
            let mut starts = vec![origin];
            for i in 1..n {
                let step = Duration::hours(1 + (i as i64 * 7) % 5)
                    + Duration::minutes(if i % 3 == 0 { 30 } else { 0 });
                starts.push(starts[i - 1] + step);
            }
            let sql = format!(
                "SELECT hour, {} AS bucket FROM t",
                bucket_expr(&db, "hour", n, 1)
            );
            let mut q = sqlx::query_as::<_, (DateTime<Utc>, i64)>(sqlx::AssertSqlSafe(sql));
            for start in &starts[1..] {
                q = q.bind(*start);
            }
            let fixed: Vec<_> = starts.iter().map(|s| s.fixed_offset()).collect();
            for (hour, bucket) in q.fetch_all(&pool).await.unwrap() {
                let expected = index_of(&fixed, hour).unwrap() as i64;
                assert_eq!(bucket, expected, "{n} buckets, {hour}");
            }
        }
    }
}
