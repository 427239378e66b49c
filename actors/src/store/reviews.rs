//! Review: decisions per round, skips, leases on items, the changes-requested notices
//! waiting for their digest mail, and the queue a reviewer sees.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Db, StoreResult, Tx, items::COLUMNS as ITEM_COLUMNS, items::ItemRow, with_db, with_tx,
};
use crate::domain::ItemStatus;

pub(crate) const DECISION_COLUMNS: &str = "id, item_id, project_id, reviewer_id, round, decision, reason_code, \
     comment, text_revision, outcome, created_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DecisionRow {
    pub id: Uuid,
    pub item_id: Uuid,
    pub project_id: Uuid,
    pub reviewer_id: Uuid,
    pub round: i32,
    /// `approve` or `reject`.
    pub decision: String,
    pub reason_code: Option<String>,
    pub comment: Option<String>,
    /// Fix-and-accept: the text revision the reviewer wrote.
    pub text_revision: Option<i32>,
    /// Where the item stood after it: `pending`, `approved`, `changes_requested`, `rejected`.
    pub outcome: String,
    pub created_at: DateTime<Utc>,
}

async fn insert_decision(tx: &mut Tx, row: &DecisionRow) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO review_decisions ({DECISION_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    );
    with_tx!(tx, |conn| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(row.id)
        .bind(row.item_id)
        .bind(row.project_id)
        .bind(row.reviewer_id)
        .bind(row.round)
        .bind(row.decision.as_str())
        .bind(row.reason_code.clone())
        .bind(row.comment.clone())
        .bind(row.text_revision)
        .bind(row.outcome.as_str())
        .bind(row.created_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A round's votes so far: approvals, rejections, and whether `reviewer` voted (one
/// read for what a decision checks and counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundTally {
    pub approvals: u32,
    pub rejections: u32,
    pub mine: bool,
}

#[derive(sqlx::FromRow)]
struct ItemWithTally {
    #[sqlx(flatten)]
    item: ItemRow,
    approvals: i64,
    rejections: i64,
    mine: i64,
}

/// The votes of `items`' current round that meet `condition` (`d` is the decision).
fn votes(condition: &str) -> String {
    format!(
        "(SELECT COUNT(*) FROM review_decisions d WHERE d.item_id = items.id \
         AND d.round = items.review_round AND {condition})"
    )
}

/// [`item_with_tally`]'s statement (see [`RECORD_RELEASE`]).
pub static ITEM_WITH_TALLY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {ITEM_COLUMNS}, {} AS approvals, {} AS rejections, {} AS mine \
         FROM items WHERE id = $1 AND (deleted_at IS NULL) IS TRUE",
        votes("d.decision = 'approve'"),
        votes("d.decision = 'reject'"),
        votes("d.reviewer_id = $2"),
    )
});

/// A live item and the votes of its current round, in one read: what a decision needs
/// before it writes.
pub async fn item_with_tally(
    tx: &mut Tx,
    item: Uuid,
    reviewer: Uuid,
) -> StoreResult<Option<(ItemRow, RoundTally)>> {
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, ItemWithTally>(
        sqlx::AssertSqlSafe(ITEM_WITH_TALLY.as_str())
    )
    .bind(item)
    .bind(reviewer)
    .fetch_optional(conn)
    .await)?;
    Ok(row.map(|r| (r.item, tally_of(r.approvals, r.rejections, r.mine))))
}

/// One read of [`items_with_tallies`]: the item, the votes of its current round, and
/// who they were counted for.
#[derive(sqlx::FromRow)]
struct ItemWithTallyFor {
    #[sqlx(flatten)]
    with: ItemWithTally,
    reader: Uuid,
}

/// [`items_with_tallies`]'s statement for `pairs` (item, reader) pairs.
/// -- backend-specific: on PostgreSQL each item is looked up by its key in a lateral
/// subquery that the planner cannot merge into a join (`OFFSET 0`): joined to the pairs,
/// `items` was read whole in the generic plans made on young tables (see
/// [`RECORD_RELEASE`]). SQLite has no `LATERAL`, and its planner finds each by its key.
pub fn items_with_tallies_sql(pairs: usize, postgres: bool) -> String {
    let values: Vec<String> = (0..pairs)
        .map(|i| format!("(${}::uuid, ${}::uuid)", 2 * i + 1, 2 * i + 2))
        .collect();
    let from = if postgres {
        "wanted CROSS JOIN LATERAL \
         (SELECT * FROM items i WHERE i.id = wanted.item OFFSET 0) AS items \
         WHERE (items.deleted_at IS NULL) IS TRUE"
    } else {
        "wanted JOIN items ON items.id = wanted.item WHERE items.deleted_at IS NULL"
    };
    format!(
        "WITH wanted (item, reader) AS (VALUES {}) \
         SELECT {ITEM_COLUMNS}, {} AS approvals, {} AS rejections, {} AS mine, \
         wanted.reader AS reader FROM {from}",
        values.join(", "),
        votes("d.decision = 'approve'"),
        votes("d.decision = 'reject'"),
        votes("d.reviewer_id = wanted.reader"),
    )
}

/// [`item_with_tally`] for several (item, reader) pairs in one statement: what a group
/// of transitions reads ahead. Deleted and unknown items are left out.
pub async fn items_with_tallies(
    tx: &mut Tx,
    wanted: &[(Uuid, Uuid)],
) -> StoreResult<Vec<(Uuid, ItemRow, RoundTally)>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let sql = items_with_tallies_sql(wanted.len(), matches!(tx, Tx::Postgres(_)));
    let rows = with_tx!(tx, |conn| {
        let mut q = sqlx::query_as::<_, ItemWithTallyFor>(sqlx::AssertSqlSafe(sql.clone()));
        for (item, reader) in wanted {
            q = q.bind(*item).bind(*reader);
        }
        q.fetch_all(conn).await
    })?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.reader,
                r.with.item,
                tally_of(r.with.approvals, r.with.rejections, r.with.mine),
            )
        })
        .collect())
}

fn tally_of(approvals: i64, rejections: i64, mine: i64) -> RoundTally {
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    RoundTally {
        approvals: count(approvals),
        rejections: count(rejections),
        mine: mine > 0,
    }
}

/// Every decision on these items, oldest first.
pub async fn decisions_of(db: &Db, items: &[Uuid]) -> StoreResult<Vec<DecisionRow>> {
    super::fetch_by_keys(db, items, DECISIONS_OF.as_str(), |keys| {
        format!(
            "SELECT {DECISION_COLUMNS} FROM review_decisions WHERE item_id IN ({keys}) \
             ORDER BY created_at, id"
        )
    })
    .await
}

/// [`decisions_of`] on PostgreSQL (see `store::fetch_by_keys`).
pub static DECISIONS_OF: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT d.* FROM unnest($1::uuid[]) AS w (item) CROSS JOIN LATERAL \
         (SELECT {DECISION_COLUMNS} FROM review_decisions \
         WHERE review_decisions.item_id = w.item OFFSET 0) d ORDER BY d.created_at, d.id"
    )
});

/// `reviewer` passes on `item` for this round (again is harmless).
pub async fn skip(
    tx: &mut Tx,
    item: Uuid,
    round: i32,
    reviewer: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "INSERT INTO review_skips (item_id, round, reviewer_id, created_at) \
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(item)
        .bind(round)
        .bind(reviewer)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The item (of `project`) whose lease `reviewer` holds at `now`, if any. No `ORDER BY`:
/// a reviewer holds at most one item per project, and ordering by id would lead SQLite's
/// planner to walk the whole queue index instead of `items_review_claimed_idx`.
pub async fn held_by(
    tx: &mut Tx,
    project: Uuid,
    reviewer: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<Option<ItemRow>> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM items WHERE review_claimed_by = $1 AND project_id = $2 \
         AND status = 'pending_review' AND deleted_at IS NULL AND review_lease_until > $3 LIMIT 1"
    );
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, ItemRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(reviewer)
    .bind(project)
    .bind(now)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

/// [`claim`]'s statement (see [`RECORD_RELEASE`]).
pub const CLAIM: &str = "UPDATE items SET review_claimed_by = $2, review_lease_until = $3 \
     WHERE id = $1 AND (status = 'pending_review' AND deleted_at IS NULL \
     AND (review_claimed_by IS NULL OR review_claimed_by = $2 OR review_lease_until <= $4)) IS TRUE";

/// [`renew`]'s statement (see [`RECORD_RELEASE`]).
pub const RENEW: &str = "UPDATE items SET review_lease_until = $3 \
     WHERE id = $1 AND (status = 'pending_review' AND deleted_at IS NULL \
     AND review_claimed_by = $2 AND review_lease_until > $4) IS TRUE";

/// Give `reviewer` the lease of a pending item until `until`: only when nobody else
/// holds a live lease on it. False otherwise.
pub async fn claim(
    tx: &mut Tx,
    item: Uuid,
    reviewer: Uuid,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let n = with_tx!(tx, |conn| sqlx::query(CLAIM)
        .bind(item)
        .bind(reviewer)
        .bind(until)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Push out a lease `reviewer` still holds. False when it was lost (expired and taken,
/// or the item was decided).
pub async fn renew(
    tx: &mut Tx,
    item: Uuid,
    reviewer: Uuid,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let n = with_tx!(tx, |conn| sqlx::query(RENEW)
        .bind(item)
        .bind(reviewer)
        .bind(until)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Drop `reviewer`'s lease on `item`, if they hold it.
pub async fn release(tx: &mut Tx, item: Uuid, reviewer: Uuid) -> StoreResult<()> {
    let sql = "UPDATE items SET review_claimed_by = NULL, review_lease_until = NULL \
               WHERE id = $1 AND (review_claimed_by = $2) IS TRUE";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(item)
        .bind(reviewer)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The item entered review (again): a new round starts with no lease, and the round's
/// submission is kept (the item's row keeps only the current round's; the analytics
/// series count them all).
pub async fn mark_submitted(tx: &mut Tx, item: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
    for sql in [
        "UPDATE items SET submitted_at = $2, decided_at = NULL, \
         review_claimed_by = NULL, review_lease_until = NULL WHERE id = $1",
        "INSERT INTO review_submissions (item_id, round, project_id, submitted_at) \
         SELECT id, review_round, project_id, $2 FROM items WHERE id = $1 \
         ON CONFLICT (item_id, round) DO NOTHING",
    ] {
        with_tx!(tx, |conn| sqlx::query(sql)
            .bind(item)
            .bind(now)
            .execute(conn)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}

/// The round's verdict: the item moves from pending review to `to`, its lease ends,
/// and a rework verdict opens the next round (else the item is decided now). One
/// statement; the item as it now is, or `None` when it was not pending review.
async fn settle(
    tx: &mut Tx,
    item: Uuid,
    to: &str,
    rework: bool,
    now: DateTime<Utc>,
) -> StoreResult<Option<ItemRow>> {
    let sql = format!(
        "UPDATE items SET status = $2, processing_error_code = NULL, processing_error = NULL, \
         updated_at = $4, review_claimed_by = NULL, review_lease_until = NULL, \
         review_round = review_round + CASE WHEN $3 THEN 1 ELSE 0 END, \
         decided_at = CASE WHEN $3 THEN NULL ELSE $4 END \
         WHERE id = $1 AND (deleted_at IS NULL AND status = 'pending_review') IS TRUE \
         RETURNING {ITEM_COLUMNS}"
    );
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, ItemRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(item)
    .bind(to)
    .bind(rework)
    .bind(now)
    .fetch_optional(conn)
    .await)?)
}

/// A decision kept for its change's commit (a group's fast path): the row, and the
/// status a verdict moves the item to (`None`: the round goes on and the reviewer's
/// lease ends). A verdict that sends the item back for rework is never kept (it reads
/// its round's decisions back).
#[derive(Debug, Clone)]
pub struct KeptDecision {
    pub row: DecisionRow,
    pub settle_to: Option<ItemStatus>,
}

impl KeptDecision {
    /// The effect, as [`record_decision`] takes it.
    pub fn effect(&self) -> DecisionEffect<'static> {
        match self.settle_to {
            Some(to) => DecisionEffect::Settle {
                to: to.as_str(),
                rework: false,
            },
            None => DecisionEffect::Release,
        }
    }

    /// `item` as [`record_decision`] leaves it (what its statement would read back).
    pub fn applied_to(&self, item: &ItemRow) -> ItemRow {
        let at = self.row.created_at;
        match self.settle_to {
            Some(status) => ItemRow {
                status,
                processing_error_code: None,
                processing_error: None,
                updated_at: at,
                review_claimed_by: None,
                review_lease_until: None,
                decided_at: Some(at),
                ..item.clone()
            },
            None if item.review_claimed_by == Some(self.row.reviewer_id) => ItemRow {
                review_claimed_by: None,
                review_lease_until: None,
                ..item.clone()
            },
            None => item.clone(),
        }
    }
}

/// What a decision does to its item besides counting in its round.
#[derive(Debug, Clone, Copy)]
pub enum DecisionEffect<'a> {
    /// The round goes on: the reviewer's lease ends ([`release`]).
    Release,
    /// The round's verdict: the item moves to `to` ([`settle`]).
    Settle { to: &'a str, rework: bool },
}

/// A release's decision and its effect, one statement on PostgreSQL
/// ([`record_decision`]). Each statement here that finds one item finds it by its key
/// alone and checks the rest in one `IS TRUE`, as `store::items::LIVE_WITH_ROLE` says why.
pub static RECORD_RELEASE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH decision AS (INSERT INTO review_decisions ({DECISION_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)) \
         UPDATE items SET review_claimed_by = NULL, review_lease_until = NULL \
         WHERE id = $2 AND (review_claimed_by = $4) IS TRUE"
    )
});

/// A verdict and its effect, one statement on PostgreSQL ([`record_decision`]).
pub static RECORD_VERDICT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH decision AS (INSERT INTO review_decisions ({DECISION_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)) \
         UPDATE items SET status = $12, processing_error_code = NULL, \
         processing_error = NULL, updated_at = $11, review_claimed_by = NULL, \
         review_lease_until = NULL, \
         review_round = review_round + CASE WHEN $13 THEN 1 ELSE 0 END, \
         decided_at = CASE WHEN $13 THEN NULL ELSE $11 END \
         WHERE id = $2 AND (deleted_at IS NULL AND status = 'pending_review') IS TRUE \
         RETURNING {ITEM_COLUMNS}"
    )
});

/// Record a decision and apply its effect, at the decision's time: one statement on
/// PostgreSQL (the insert as a data-modifying `WITH`; the decision's rollup triggers read
/// only the item's `deleted_at` and `audio`, which the update leaves alone), two on
/// SQLite, where a statement costs no round trip. For a verdict, the item as it left
/// it, or `None` when the item was not pending review (the caller rolls back, the
/// decision with it); `None` for a release.
pub async fn record_decision(
    tx: &mut Tx,
    row: &DecisionRow,
    effect: DecisionEffect<'_>,
) -> StoreResult<Option<ItemRow>> {
    let Tx::Postgres(conn) = tx else {
        insert_decision(tx, row).await?;
        return match effect {
            DecisionEffect::Release => release(tx, row.item_id, row.reviewer_id)
                .await
                .map(|()| None),
            DecisionEffect::Settle { to, rework } => {
                settle(tx, row.item_id, to, rework, row.created_at).await
            }
        };
    };
    let sql = match effect {
        DecisionEffect::Release => RECORD_RELEASE.as_str(),
        DecisionEffect::Settle { .. } => RECORD_VERDICT.as_str(),
    };
    let mut query = sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(sql))
        .bind(row.id)
        .bind(row.item_id)
        .bind(row.project_id)
        .bind(row.reviewer_id)
        .bind(row.round)
        .bind(row.decision.as_str())
        .bind(row.reason_code.as_deref())
        .bind(row.comment.as_deref())
        .bind(row.text_revision)
        .bind(row.outcome.as_str())
        .bind(row.created_at);
    if let DecisionEffect::Settle { to, rework } = effect {
        query = query.bind(to).bind(rework);
    }
    // A release returns no row.
    Ok(query.fetch_optional(&mut **conn).await?)
}

/// What a reviewer's queue is read with.
#[derive(Debug, Clone)]
pub struct QueueFilter {
    pub project_id: Uuid,
    pub reviewer_id: Uuid,
    pub now: DateTime<Utc>,
    /// Keyset cursor: items after this id.
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// The queue's statement: pending items of the project `$1` that are not reviewer
/// `$2`'s, not decided or skipped by them this round, and not held by someone else's
/// live lease at `$3`; oldest upload first, `$4` of them, after the id `$5` when
/// `with_cursor`. The partial index `items_review_queue_idx` walks the project's
/// pending items in id order; each candidate costs two primary-key probes. A cursor
/// makes a second statement rather than `($5 IS NULL OR id > $5)`, so the planner
/// always starts the index range at the cursor.
///
/// `LIMIT 1 OFFSET 0` in the NOT EXISTS subqueries keeps PostgreSQL from turning them
/// into anti joins over all of the reviewer's decisions and skips (an OFFSET is a
/// planner fence): with 1,050 skips the anti join took 91 ms a page, the per-item probe
/// 5 ms. Public for `benches/review.rs`, which explains and times this very statement.
pub fn queue_sql(with_cursor: bool) -> String {
    let after = if with_cursor { "AND i.id > $5" } else { "" };
    format!(
        "SELECT {ITEM_COLUMNS} FROM items i WHERE i.project_id = $1 \
         AND i.status = 'pending_review' AND i.deleted_at IS NULL AND i.contributor_id <> $2 \
         AND (i.review_claimed_by IS NULL OR i.review_claimed_by = $2 OR i.review_lease_until <= $3) \
         AND NOT EXISTS (SELECT 1 FROM review_decisions d \
             WHERE d.item_id = i.id AND d.round = i.review_round AND d.reviewer_id = $2 \
             LIMIT 1 OFFSET 0) \
         AND NOT EXISTS (SELECT 1 FROM review_skips s \
             WHERE s.item_id = i.id AND s.round = i.review_round AND s.reviewer_id = $2 \
             LIMIT 1 OFFSET 0) \
         {after} ORDER BY i.id LIMIT $4"
    )
}

/// One page of a reviewer's queue.
pub async fn queue(db: &Db, f: &QueueFilter) -> StoreResult<Vec<ItemRow>> {
    let sql = queue_sql(f.after.is_some());
    let rows = with_db!(db, |pool| {
        let mut q = sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(sql.clone()))
            .bind(f.project_id)
            .bind(f.reviewer_id)
            .bind(f.now)
            .bind(f.limit);
        if let Some(after) = f.after {
            q = q.bind(after);
        }
        q.fetch_all(pool).await
    })?;
    Ok(rows)
}

/// The head of a reviewer's queue, inside a transition's transaction (for claims).
pub async fn queue_head(tx: &mut Tx, f: &QueueFilter) -> StoreResult<Option<ItemRow>> {
    let sql = queue_sql(false);
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, ItemRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(f.project_id)
    .bind(f.reviewer_id)
    .bind(f.now)
    .bind(1_i64)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

/// Pending items per project and the oldest submission time (for gauges).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingStats {
    pub project_id: Uuid,
    pub pending: i64,
    pub oldest_submitted_at: Option<DateTime<Utc>>,
}

pub async fn pending_stats(db: &Db) -> StoreResult<Vec<PendingStats>> {
    let sql = "SELECT project_id, COUNT(*) AS pending, MIN(submitted_at) AS oldest_submitted_at \
               FROM items WHERE status = 'pending_review' AND deleted_at IS NULL GROUP BY project_id";
    let rows = with_db!(db, |pool| sqlx::query_as::<_, PendingStats>(sql)
        .fetch_all(pool)
        .await)?;
    Ok(rows)
}

/// Remember that `user`'s item needs changes, for their next digest mail.
pub async fn add_notice(
    tx: &mut Tx,
    user: Uuid,
    item: Uuid,
    project: Uuid,
    reasons: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "INSERT INTO review_notices (id, user_id, item_id, project_id, reasons, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(Uuid::now_v7())
        .bind(user)
        .bind(item)
        .bind(project)
        .bind(reasons)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Contributors with unsent notices whose last digest went before `sent_before` (or
/// never), at most `limit` of them.
pub async fn digest_due(db: &Db, sent_before: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Uuid>> {
    let sql = "SELECT DISTINCT n.user_id FROM review_notices n JOIN users u ON u.id = n.user_id \
               WHERE n.sent_at IS NULL \
               AND (u.review_mail_sent_at IS NULL OR u.review_mail_sent_at <= $1) LIMIT $2";
    let rows = with_db!(db, |pool| sqlx::query_scalar::<_, Uuid>(sql)
        .bind(sent_before)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
    Ok(rows)
}

/// One unsent notice, with what the mail says about it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NoticeRow {
    pub id: Uuid,
    pub item_id: Uuid,
    pub project_name: String,
    pub item_title: Option<String>,
    pub file_name: String,
    pub kind: String,
    pub reasons: String,
}

/// The contributor's address, opt-in, last digest time, and unsent notices (locked
/// by the caller's transaction).
pub async fn unsent_notices(tx: &mut Tx, user: Uuid) -> StoreResult<Vec<NoticeRow>> {
    let sql = "SELECT n.id, n.item_id, p.name AS project_name, i.title AS item_title, \
               i.file_name, i.kind, n.reasons FROM review_notices n \
               JOIN items i ON i.id = n.item_id JOIN projects p ON p.id = n.project_id \
               WHERE n.user_id = $1 AND n.sent_at IS NULL ORDER BY n.created_at LIMIT 200";
    let rows = with_tx!(tx, |conn| sqlx::query_as::<_, NoticeRow>(sql)
        .bind(user)
        .fetch_all(conn)
        .await)?;
    Ok(rows)
}

/// Mark notices sent (or dropped, for a user who opted out).
pub async fn mark_notices_sent(tx: &mut Tx, ids: &[Uuid], now: DateTime<Utc>) -> StoreResult<()> {
    for id in ids {
        let sql = "UPDATE review_notices SET sent_at = $2 WHERE id = $1";
        with_tx!(tx, |conn| sqlx::query(sql)
            .bind(*id)
            .bind(now)
            .execute(conn)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}

/// Take the user's digest slot: only when their last digest went before `sent_before`.
/// False when another node (or tick) sent one meanwhile.
pub async fn take_digest_slot(
    tx: &mut Tx,
    user: Uuid,
    sent_before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "UPDATE users SET review_mail_sent_at = $3 WHERE id = $1 \
               AND (review_mail_sent_at IS NULL OR review_mail_sent_at <= $2)";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(user)
        .bind(sent_before)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Whether the user wants the changes-requested digest, and their address.
pub async fn mail_preference(tx: &mut Tx, user: Uuid) -> StoreResult<Option<(String, bool)>> {
    let sql = "SELECT email, review_mail FROM users WHERE id = $1 AND deleted_at IS NULL";
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, (String, bool)>(sql)
        .bind(user)
        .fetch_optional(conn)
        .await)?;
    Ok(row)
}

/// Read or change the opt-in.
pub async fn review_mail(db: &Db, user: Uuid) -> StoreResult<bool> {
    let sql = "SELECT review_mail FROM users WHERE id = $1";
    let on = with_db!(db, |pool| sqlx::query_scalar::<_, bool>(sql)
        .bind(user)
        .fetch_one(pool)
        .await)?;
    Ok(on)
}

pub async fn set_review_mail(tx: &mut Tx, user: Uuid, on: bool) -> StoreResult<()> {
    let sql = "UPDATE users SET review_mail = $2 WHERE id = $1";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(user)
        .bind(on)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The reasons (code, and comment when given) of this round's rejections.
pub async fn round_rejections(tx: &mut Tx, item: Uuid, round: i32) -> StoreResult<Vec<String>> {
    let sql = "SELECT reason_code, comment FROM review_decisions \
               WHERE item_id = $1 AND round = $2 AND decision = 'reject' ORDER BY created_at, id";
    let rows = with_tx!(tx, |conn| sqlx::query_as::<
        _,
        (Option<String>, Option<String>),
    >(sql)
    .bind(item)
    .bind(round)
    .fetch_all(conn)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|(code, comment)| {
            let code = code.unwrap_or_default();
            match comment {
                Some(c) if !c.trim().is_empty() => format!("{code}: {c}"),
                _ => code,
            }
        })
        .collect())
}
