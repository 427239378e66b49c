//! Projects and their members.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Db, StoreResult, Tx, with_db, with_tx};
use crate::domain::webhook::WebhookEvent;

const PROJECT_COLUMNS: &str = "p.id, p.name, p.description, p.settings, p.created_by, p.created_at, p.updated_at, p.deleted_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub settings: sqlx::types::Json<serde_json::Value>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A project with the caller's role in it (`None` for a super admin who is not a member).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectWithRole {
    #[sqlx(flatten)]
    pub project: ProjectRow,
    pub my_role: Option<String>,
}

pub struct NewProject<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub description: &'a str,
    pub settings: serde_json::Value,
    pub created_by: Uuid,
    pub now: DateTime<Utc>,
}

pub async fn insert(tx: &mut Tx, p: &NewProject<'_>) -> StoreResult<()> {
    let sql = "INSERT INTO projects (id, name, description, settings, created_by, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $6)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(p.id)
        .bind(p.name)
        .bind(p.description)
        .bind(sqlx::types::Json(p.settings.clone()))
        .bind(p.created_by)
        .bind(p.now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Take the project's write lock for the rest of the transaction, and read the project
/// (one statement): every transition of one project is serialised, across nodes too
/// (PostgreSQL row lock; SQLite's single writer). `None` when there is no such project.
pub async fn lock(tx: &mut Tx, id: Uuid) -> StoreResult<Option<ProjectRow>> {
    // Written once: every group commit runs it.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "UPDATE projects SET locks = locks + 1 WHERE id = $1 RETURNING {}",
            PROJECT_COLUMNS.replace("p.", "")
        )
    });
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, ProjectRow>(
        sqlx::AssertSqlSafe(SQL.as_str())
    )
    .bind(id)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

/// A project locked by [`lock_with`], with what a group of its transitions reads first.
pub struct Locked {
    pub project: Option<ProjectRow>,
    /// The roles of the users asked for (members only); `None` when not read here.
    pub roles: Option<Vec<(Uuid, String)>>,
    /// The project's active webhooks and the events each takes; `None` when not read here.
    pub subscribers: Option<Vec<(Uuid, Vec<WebhookEvent>)>>,
    /// The project's lock count after this lock; `None` when not read here.
    pub locks: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct LockedRow {
    #[sqlx(flatten)]
    project: ProjectRow,
    caller_roles: sqlx::types::Json<Vec<(Uuid, String)>>,
    subscribers: sqlx::types::Json<Vec<(Uuid, Vec<WebhookEvent>)>>,
    /// The locked row's count.
    locks: i64,
    /// The count in the statement's snapshot, taken before it waited for the lock.
    locks_seen: Option<i64>,
}

/// [`lock`], and on PostgreSQL in the same statement the roles of `users` and the
/// project's active webhooks: a group commit's opening reads in one round trip instead
/// of three. (SQLite answers in-process, where a round trip costs next to nothing: it
/// only locks, and the rest is read when needed.)
///
/// Those reads see the statement's snapshot, taken before it waited for the lock: when
/// another transaction locked the project and committed meanwhile (a group on another
/// node), they may be stale (a member it removed, a webhook it deleted). Every lock
/// counts (`projects.locks`): a locked count other than the snapshot's plus one says
/// so, and the roles and webhooks are then left to be read later, fresh.
///
/// `left_alone`: the count a lock left that changed neither the roles nor the webhooks
/// (the project actor's group before, still committing when this one began). A lock
/// taken right after it is fresh too: the snapshot's count is one below it, and this
/// one's one above.
pub async fn lock_with(
    tx: &mut Tx,
    id: Uuid,
    users: &[Uuid],
    left_alone: Option<i64>,
) -> StoreResult<Locked> {
    // Written once: every group commit runs it.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "UPDATE projects SET locks = locks + 1 WHERE id = $1 RETURNING {}, locks, \
             (SELECT s.locks FROM projects s WHERE s.id = $1) AS locks_seen, \
             (SELECT COALESCE(json_agg(json_build_array(m.user_id, m.role)), '[]') \
              FROM project_members m WHERE m.project_id = $1 AND m.user_id = ANY($2)) \
              AS caller_roles, \
             (SELECT COALESCE(json_agg(json_build_array(w.id, w.events)), '[]') \
              FROM webhooks w WHERE w.project_id = $1 AND w.active) AS subscribers",
            PROJECT_COLUMNS.replace("p.", "")
        )
    });
    // -- backend-specific: one statement on PostgreSQL (see above).
    let Tx::Postgres(t) = tx else {
        return Ok(Locked {
            project: lock(tx, id).await?,
            roles: None,
            subscribers: None,
            locks: None,
        });
    };
    let row = sqlx::query_as::<_, LockedRow>(sqlx::AssertSqlSafe(SQL.as_str()))
        .bind(id)
        .bind(users)
        .fetch_optional(&mut **t)
        .await?;
    Ok(match row {
        Some(row) => {
            // Nothing committed between the snapshot and the lock, or only the lock that
            // left `left_alone`: the reads are fresh.
            let next_after_snapshot = row.locks_seen.map(|seen| seen + 1);
            let fresh = next_after_snapshot == Some(row.locks)
                || left_alone
                    .is_some_and(|left| next_after_snapshot == Some(left) && row.locks == left + 1);
            Locked {
                project: Some(row.project),
                roles: fresh.then_some(row.caller_roles.0),
                subscribers: fresh.then_some(row.subscribers.0),
                locks: Some(row.locks),
            }
        }
        None => Locked {
            project: None,
            roles: None,
            subscribers: None,
            locks: None,
        },
    })
}

/// A project by id, deleted or not (callers decide what a deleted one means).
pub async fn find_tx(tx: &mut Tx, id: Uuid) -> StoreResult<Option<ProjectRow>> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1");
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, ProjectRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(id)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

/// A project by id, deleted or not.
pub async fn find(db: &Db, id: Uuid) -> StoreResult<Option<ProjectRow>> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1");
    let row = with_db!(db, |pool| sqlx::query_as::<_, ProjectRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(id)
    .fetch_optional(pool)
    .await)?;
    Ok(row)
}

/// A live project with `user`'s role in it.
pub async fn find_live_with_role(
    db: &Db,
    id: Uuid,
    user: Uuid,
) -> StoreResult<Option<ProjectWithRole>> {
    let sql = format!(
        "SELECT {PROJECT_COLUMNS}, m.role AS my_role FROM projects p \
         LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = $2 \
         WHERE p.id = $1 AND p.deleted_at IS NULL"
    );
    let row = with_db!(db, |pool| sqlx::query_as::<_, ProjectWithRole>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(id)
    .bind(user)
    .fetch_optional(pool)
    .await)?;
    Ok(row)
}

#[derive(Debug, Clone, Default)]
pub struct ProjectFilter {
    /// Only projects where the caller has this role.
    pub role: Option<String>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// Live projects, newest first: the caller's (`all = false`) or every one (super admins).
pub async fn list(
    db: &Db,
    user: Uuid,
    all: bool,
    f: &ProjectFilter,
) -> StoreResult<Vec<ProjectWithRole>> {
    let sql = format!(
        "SELECT {PROJECT_COLUMNS}, m.role AS my_role FROM projects p \
         LEFT JOIN project_members m ON m.project_id = p.id AND m.user_id = $1 \
         WHERE p.deleted_at IS NULL \
         AND ($2 OR m.role IS NOT NULL) \
         AND (CAST($3 AS TEXT) IS NULL OR m.role = CAST($3 AS TEXT)) \
         AND (CAST($4 AS TEXT) IS NULL OR LOWER(p.name) LIKE CAST($4 AS TEXT) ESCAPE '\\') \
         AND ($5 IS NULL OR p.id < $5) \
         ORDER BY p.id DESC LIMIT $6"
    );
    let search = f
        .search
        .as_deref()
        .map(|s| super::like_contains(&s.to_lowercase()));
    let rows = with_db!(db, |pool| sqlx::query_as::<_, ProjectWithRole>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(user)
    .bind(all)
    .bind(f.role.clone())
    .bind(search.clone())
    .bind(f.after)
    .bind(f.limit)
    .fetch_all(pool)
    .await)?;
    Ok(rows)
}

pub async fn update(
    tx: &mut Tx,
    id: Uuid,
    name: &str,
    description: &str,
    settings: serde_json::Value,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "UPDATE projects SET name = $2, description = $3, settings = $4, updated_at = $5 \
               WHERE id = $1 AND deleted_at IS NULL";
    let rows = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(name)
        .bind(description)
        .bind(sqlx::types::Json(settings.clone()))
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

pub async fn soft_delete(tx: &mut Tx, id: Uuid, by: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
    let sql = "UPDATE projects SET deleted_at = $2, deleted_by = $3, updated_at = $2 \
               WHERE id = $1 AND deleted_at IS NULL";
    let rows = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(now)
        .bind(by)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

/// Undelete, if it was deleted after `not_before` (the retention window).
pub async fn restore(
    tx: &mut Tx,
    id: Uuid,
    not_before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "UPDATE projects SET deleted_at = NULL, deleted_by = NULL, updated_at = $3 \
               WHERE id = $1 AND deleted_at IS NOT NULL AND deleted_at > $2";
    let rows = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(not_before)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

// ---- members ----

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub user_id: Uuid,
    pub email: String,
    pub full_name: Option<String>,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

pub async fn add_member(
    tx: &mut Tx,
    project: Uuid,
    user: Uuid,
    role: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "INSERT INTO project_members (project_id, user_id, role, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $4)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(project)
        .bind(user)
        .bind(role)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

pub async fn member_role(db: &Db, project: Uuid, user: Uuid) -> StoreResult<Option<String>> {
    let sql = "SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2";
    let role = with_db!(db, |pool| sqlx::query_scalar::<_, String>(sql)
        .bind(project)
        .bind(user)
        .fetch_optional(pool)
        .await)?;
    Ok(role)
}

pub async fn member_role_tx(tx: &mut Tx, project: Uuid, user: Uuid) -> StoreResult<Option<String>> {
    let sql = "SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2";
    let role = with_tx!(tx, |conn| sqlx::query_scalar::<_, String>(sql)
        .bind(project)
        .bind(user)
        .fetch_optional(conn)
        .await)?;
    Ok(role)
}

/// The roles of these users in the project (members only), in one read.
pub async fn member_roles_tx(
    tx: &mut Tx,
    project: Uuid,
    users: &[Uuid],
) -> StoreResult<Vec<(Uuid, String)>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT user_id, role FROM project_members WHERE project_id = $1 AND user_id IN ({})",
        super::placeholders_from(2, users.len())
    );
    let rows = with_tx!(tx, |conn| {
        let mut q =
            sqlx::query_as::<_, (Uuid, String)>(sqlx::AssertSqlSafe(sql.clone())).bind(project);
        for user in users {
            q = q.bind(*user);
        }
        q.fetch_all(conn).await
    })?;
    Ok(rows)
}

pub async fn count_admins(tx: &mut Tx, project: Uuid) -> StoreResult<i64> {
    let sql = "SELECT COUNT(*) FROM project_members WHERE project_id = $1 AND role = 'admin'";
    let n = with_tx!(tx, |conn| sqlx::query_scalar::<_, i64>(sql)
        .bind(project)
        .fetch_one(conn)
        .await)?;
    Ok(n)
}

/// The addresses of a project's admins (for mail about the project).
pub async fn admin_emails(tx: &mut Tx, project: Uuid) -> StoreResult<Vec<String>> {
    let sql = "SELECT u.email FROM project_members m JOIN users u ON u.id = m.user_id \
               WHERE m.project_id = $1 AND m.role = 'admin' AND u.deleted_at IS NULL \
               ORDER BY u.email";
    let rows = with_tx!(tx, |conn| sqlx::query_scalar::<_, String>(sql)
        .bind(project)
        .fetch_all(conn)
        .await)?;
    Ok(rows)
}

pub async fn set_member_role(
    tx: &mut Tx,
    project: Uuid,
    user: Uuid,
    role: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "UPDATE project_members SET role = $3, updated_at = $4 WHERE project_id = $1 AND user_id = $2";
    let rows = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(project)
        .bind(user)
        .bind(role)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

pub async fn remove_member(tx: &mut Tx, project: Uuid, user: Uuid) -> StoreResult<bool> {
    let sql = "DELETE FROM project_members WHERE project_id = $1 AND user_id = $2";
    let rows = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(project)
        .bind(user)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

/// One page of a project's members, ordered by user id (stable keyset).
pub async fn list_members(
    db: &Db,
    project: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> StoreResult<Vec<MemberRow>> {
    let sql = "SELECT m.user_id, u.email, u.full_name, m.role, m.created_at \
               FROM project_members m JOIN users u ON u.id = m.user_id \
               WHERE m.project_id = $1 AND u.deleted_at IS NULL AND ($2 IS NULL OR m.user_id > $2) \
               ORDER BY m.user_id LIMIT $3";
    let rows = with_db!(db, |pool| sqlx::query_as::<_, MemberRow>(sql)
        .bind(project)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
    Ok(rows)
}

pub async fn member_joined_at_tx(
    tx: &mut Tx,
    project: Uuid,
    user: Uuid,
) -> StoreResult<Option<DateTime<Utc>>> {
    let sql = "SELECT created_at FROM project_members WHERE project_id = $1 AND user_id = $2";
    let at = with_tx!(tx, |conn| sqlx::query_scalar::<_, DateTime<Utc>>(sql)
        .bind(project)
        .bind(user)
        .fetch_optional(conn)
        .await)?;
    Ok(at)
}

/// Whether a project row exists, deleted or not.
pub async fn exists(db: &Db, id: Uuid) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM projects WHERE id = $1";
    let count: i64 = with_db!(db, |pool| sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(pool)
        .await)?;
    Ok(count > 0)
}

/// Every project's id, deleted ones included, oldest first.
pub async fn all_ids(db: &Db) -> StoreResult<Vec<Uuid>> {
    let sql = "SELECT id FROM projects ORDER BY created_at, id";
    Ok(with_db!(db, |pool| sqlx::query_scalar::<_, Uuid>(sql)
        .fetch_all(pool)
        .await)?)
}
