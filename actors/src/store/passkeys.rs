//! Passkeys and the server-side state of WebAuthn ceremonies.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Db, StoreResult, Tx, with_db, with_tx};

const COLUMNS: &str = "id, user_id, credential_id, name, passkey, created_at, last_used_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PasskeyRow {
    pub id: Uuid,
    pub user_id: Uuid,
    /// base64url of the credential id.
    pub credential_id: String,
    pub name: String,
    /// webauthn-rs's `Passkey` as JSON.
    pub passkey: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

pub async fn insert(tx: &mut Tx, row: &PasskeyRow) -> StoreResult<()> {
    let sql = format!("INSERT INTO passkeys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)");
    with_tx!(tx, |conn| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(row.id)
        .bind(row.user_id)
        .bind(row.credential_id.as_str())
        .bind(row.name.as_str())
        .bind(row.passkey.as_str())
        .bind(row.created_at)
        .bind(row.last_used_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A user's passkeys, oldest first.
pub async fn of_user(db: &Db, user: Uuid) -> StoreResult<Vec<PasskeyRow>> {
    let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id");
    let rows = with_db!(db, |pool| sqlx::query_as::<_, PasskeyRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(user)
    .fetch_all(pool)
    .await)?;
    Ok(rows)
}

pub async fn count_of_user(tx: &mut Tx, user: Uuid) -> StoreResult<i64> {
    let sql = "SELECT COUNT(*) FROM passkeys WHERE user_id = $1";
    let n = with_tx!(tx, |conn| sqlx::query_scalar::<_, i64>(sql)
        .bind(user)
        .fetch_one(conn)
        .await)?;
    Ok(n)
}

pub async fn find_by_credential_tx(
    tx: &mut Tx,
    credential_id: &str,
) -> StoreResult<Option<PasskeyRow>> {
    let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1");
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, PasskeyRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(credential_id)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

pub async fn credential_exists(tx: &mut Tx, credential_id: &str) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM passkeys WHERE credential_id = $1";
    let n = with_tx!(tx, |conn| sqlx::query_scalar::<_, i64>(sql)
        .bind(credential_id)
        .fetch_one(conn)
        .await)?;
    Ok(n > 0)
}

pub async fn find_tx(tx: &mut Tx, id: Uuid) -> StoreResult<Option<PasskeyRow>> {
    let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE id = $1");
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, PasskeyRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(id)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

/// Store the credential after a login (its counter and backup state move on), if it
/// is still as it was read (`old`); false when another sign-in changed it first.
pub async fn record_use(
    tx: &mut Tx,
    id: Uuid,
    old: &str,
    passkey: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "UPDATE passkeys SET passkey = $3, last_used_at = $4 WHERE id = $1 AND passkey = $2";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(old)
        .bind(passkey)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Rename one of a user's passkeys; false when they have no such passkey.
pub async fn rename(tx: &mut Tx, user: Uuid, id: Uuid, name: &str) -> StoreResult<bool> {
    let sql = "UPDATE passkeys SET name = $3 WHERE id = $1 AND user_id = $2";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(user)
        .bind(name)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Delete one of a user's passkeys; false when they have no such passkey.
pub async fn delete(tx: &mut Tx, user: Uuid, id: Uuid) -> StoreResult<bool> {
    let sql = "DELETE FROM passkeys WHERE id = $1 AND user_id = $2";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(user)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// A ceremony in progress.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CeremonyRow {
    pub id: Uuid,
    pub kind: String,
    pub user_id: Option<Uuid>,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Store a new ceremony, and drop the ones that expired (they are useless, and nothing
/// else cleans them up).
pub async fn insert_ceremony(tx: &mut Tx, row: &CeremonyRow) -> StoreResult<()> {
    let sweep = "DELETE FROM webauthn_ceremonies WHERE expires_at < $1";
    let insert = "INSERT INTO webauthn_ceremonies (id, kind, user_id, state, created_at, expires_at) \
                  VALUES ($1, $2, $3, $4, $5, $6)";
    with_tx!(tx, |conn| sqlx::query(sweep)
        .bind(row.created_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    with_tx!(tx, |conn| sqlx::query(insert)
        .bind(row.id)
        .bind(row.kind.as_str())
        .bind(row.user_id)
        .bind(row.state.as_str())
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Take (delete and return) a ceremony of this kind. With `user`, only one that user
/// started: someone else's ceremony id finds nothing and stays usable by its owner.
/// An expired ceremony is taken too (the caller refuses it).
pub async fn take_ceremony(
    tx: &mut Tx,
    id: Uuid,
    kind: &str,
    user: Option<Uuid>,
) -> StoreResult<Option<CeremonyRow>> {
    let sql = "DELETE FROM webauthn_ceremonies WHERE id = $1 AND kind = $2 \
               AND ($3 IS NULL OR user_id = $3) \
               RETURNING id, kind, user_id, state, created_at, expires_at";
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, CeremonyRow>(sql)
        .bind(id)
        .bind(kind)
        .bind(user)
        .fetch_optional(conn)
        .await)?;
    Ok(row)
}

/// Remove every passkey of `user` (a password reset, a verification); the names of
/// those removed, oldest first.
pub async fn delete_all(tx: &mut Tx, user: Uuid) -> StoreResult<Vec<String>> {
    let select = "SELECT name FROM passkeys WHERE user_id = $1 ORDER BY created_at, id";
    let names = with_tx!(tx, |conn| sqlx::query_scalar::<_, String>(select)
        .bind(user)
        .fetch_all(conn)
        .await)?;
    let sql = "DELETE FROM passkeys WHERE user_id = $1";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(user)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(names)
}
