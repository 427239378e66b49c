//! The users table.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Db, StoreResult, Tx, with_db, with_tx};

const USER_COLUMNS: &str = "id, email, full_name, password_hash, role, email_verified, \
     email_verified_at, last_login_at, disabled_at, created_at, updated_at, deleted_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub full_name: Option<String>,
    pub password_hash: Option<String>,
    pub role: String,
    pub email_verified: bool,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub struct NewUser<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub full_name: Option<&'a str>,
    pub password_hash: &'a str,
    pub role: &'a str,
    pub email_verified: bool,
    pub now: DateTime<Utc>,
}

/// Filters for the admin user list. `after` is the keyset cursor: ids are UUIDv7, so
/// ordering by id is ordering by creation time on both backends.
#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    pub email_contains: Option<String>,
    pub role: Option<String>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

pub async fn insert(tx: &mut Tx, user: &NewUser<'_>) -> StoreResult<()> {
    let sql = "INSERT INTO users (id, email, full_name, password_hash, role, email_verified, \
               email_verified_at, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";
    let verified_at = user.email_verified.then_some(user.now);
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(user.id)
        .bind(user.email)
        .bind(user.full_name)
        .bind(user.password_hash)
        .bind(user.role)
        .bind(user.email_verified)
        .bind(verified_at)
        .bind(user.now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A live (not soft-deleted) user by normalised email.
pub async fn find_by_email(db: &Db, email: &str) -> StoreResult<Option<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1 AND deleted_at IS NULL");
    let row = with_db!(db, |pool| sqlx::query_as::<_, UserRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(email)
    .fetch_optional(pool)
    .await)?;
    Ok(row)
}

pub async fn find_by_email_tx(tx: &mut Tx, email: &str) -> StoreResult<Option<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1 AND deleted_at IS NULL");
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, UserRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(email)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

/// A live user by id.
pub async fn find_by_id(db: &Db, id: Uuid) -> StoreResult<Option<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL");
    let row = with_db!(db, |pool| sqlx::query_as::<_, UserRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(id)
    .fetch_optional(pool)
    .await)?;
    Ok(row)
}

pub async fn find_by_id_tx(tx: &mut Tx, id: Uuid) -> StoreResult<Option<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL");
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, UserRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(id)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

/// Replace the password hash.
pub async fn set_password(
    tx: &mut Tx,
    id: Uuid,
    password_hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(password_hash)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Mark the email verified; returns false when it already was (a lost race).
pub async fn mark_email_verified(tx: &mut Tx, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
    let sql = "UPDATE users SET email_verified = TRUE, email_verified_at = $2, updated_at = $2 \
               WHERE id = $1 AND email_verified = FALSE AND deleted_at IS NULL";
    let rows = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

/// Make an existing user a verified super admin (the bootstrap path of `alta admin create`).
pub async fn promote_to_super_admin(
    tx: &mut Tx,
    id: Uuid,
    password_hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "UPDATE users SET role = 'super_admin', password_hash = $2, \
               email_verified = TRUE, email_verified_at = COALESCE(email_verified_at, $3), \
               updated_at = $3 WHERE id = $1 AND deleted_at IS NULL";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(password_hash)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

pub async fn record_login_tx(tx: &mut Tx, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
    let sql = "UPDATE users SET last_login_at = $2 WHERE id = $1";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// One page of live users, newest first.
pub async fn list(db: &Db, filter: &UserFilter) -> StoreResult<Vec<UserRow>> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE deleted_at IS NULL \
         AND (CAST($1 AS TEXT) IS NULL OR email LIKE CAST($1 AS TEXT) ESCAPE '\\') \
         AND (CAST($2 AS TEXT) IS NULL OR role = CAST($2 AS TEXT)) \
         AND ($3 IS NULL OR id < $3) \
         ORDER BY id DESC LIMIT $4"
    );
    let pattern = filter.email_contains.as_deref().map(super::like_contains);
    let rows = with_db!(db, |pool| sqlx::query_as::<_, UserRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(pattern.clone())
    .bind(filter.role.clone())
    .bind(filter.after)
    .bind(filter.limit)
    .fetch_all(pool)
    .await)?;
    Ok(rows)
}

/// A newer registration of an address nobody has confirmed yet: its password (and
/// name) replace the pending ones. Conditional: false once the address is confirmed.
pub async fn replace_pending_registration(
    tx: &mut Tx,
    id: Uuid,
    password_hash: &str,
    full_name: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "UPDATE users SET password_hash = $2, full_name = $3, updated_at = $4 \
               WHERE id = $1 AND email_verified = FALSE AND deleted_at IS NULL";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(password_hash)
        .bind(full_name)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Whether a sign-up mail (a verification link, or "this address has an account") went
/// to this user since `since`: read from the audit log, whose rows for those mails are
/// written with them (`user.verification_sent`, `user.register_existing`). The time
/// index keeps it to the last few minutes of the log.
pub async fn signup_mail_since(tx: &mut Tx, id: Uuid, since: DateTime<Utc>) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM audit_log WHERE at > $1 AND target_type = 'user' \
               AND target_id = $2 \
               AND action IN ('user.verification_sent', 'user.register_existing')";
    let n = with_tx!(tx, |conn| sqlx::query_scalar::<_, i64>(sql)
        .bind(since)
        .bind(id.to_string())
        .fetch_one(conn)
        .await)?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(crate::store::like_contains("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
