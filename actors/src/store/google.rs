//! Google sign-in (OpenID Connect): provider identities linked to accounts, the
//! server-side state of sign-ins in progress, and the one-time codes the frontend
//! exchanges for tokens. Secrets (state, browser binding, code) are stored as SHA-256.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{StoreResult, Tx, with_tx};

/// A sign-in in progress, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoginStateRow {
    pub id: Uuid,
    pub state_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub browser_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// Keep a new sign-in's state, and drop the expired ones.
pub async fn insert_state(tx: &mut Tx, row: &LoginStateRow) -> StoreResult<()> {
    let sweep = "DELETE FROM oidc_login_states WHERE expires_at <= $1";
    with_tx!(tx, |conn| sqlx::query(sweep)
        .bind(row.created_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    let sql = "INSERT INTO oidc_login_states (state_hash, id, nonce, pkce_verifier, browser_hash, \
               created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(row.state_hash.as_str())
        .bind(row.id)
        .bind(row.nonce.as_str())
        .bind(row.pkce_verifier.as_str())
        .bind(row.browser_hash.as_str())
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

pub async fn find_state(tx: &mut Tx, state_hash: &str) -> StoreResult<Option<LoginStateRow>> {
    let sql = "SELECT id, state_hash, nonce, pkce_verifier, browser_hash, created_at, expires_at, \
               used_at FROM oidc_login_states WHERE state_hash = $1";
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, LoginStateRow>(sql)
        .bind(state_hash)
        .fetch_optional(conn)
        .await)?;
    Ok(row)
}

/// Spend a live state; false when it was used or has expired meanwhile (a lost race).
pub async fn use_state(tx: &mut Tx, state_hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    let sql = "UPDATE oidc_login_states SET used_at = $2 WHERE state_hash = $1 \
               AND used_at IS NULL AND expires_at > $2";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(state_hash)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// An account's identity at an OpenID provider.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdentityRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub issuer: String,
    pub subject: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub last_login_at: DateTime<Utc>,
}

pub async fn find_identity(
    tx: &mut Tx,
    issuer: &str,
    subject: &str,
) -> StoreResult<Option<IdentityRow>> {
    let sql = "SELECT id, user_id, issuer, subject, email, created_at, last_login_at \
               FROM user_identities WHERE issuer = $1 AND subject = $2";
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, IdentityRow>(sql)
        .bind(issuer)
        .bind(subject)
        .fetch_optional(conn)
        .await)?;
    Ok(row)
}

pub async fn insert_identity(tx: &mut Tx, row: &IdentityRow) -> StoreResult<()> {
    let sql = "INSERT INTO user_identities (id, user_id, issuer, subject, email, created_at, \
               last_login_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(row.id)
        .bind(row.user_id)
        .bind(row.issuer.as_str())
        .bind(row.subject.as_str())
        .bind(row.email.as_str())
        .bind(row.created_at)
        .bind(row.last_login_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Note a sign-in with the identity, and the email the provider gave this time.
pub async fn touch_identity(
    tx: &mut Tx,
    id: Uuid,
    email: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "UPDATE user_identities SET last_login_at = $2, email = $3 WHERE id = $1";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(now)
        .bind(email)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Forget an identity (its account is gone).
pub async fn delete_identity(tx: &mut Tx, id: Uuid) -> StoreResult<()> {
    let sql = "DELETE FROM user_identities WHERE id = $1";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A new account made from a provider's verified identity: email verified, no password
/// (it signs in with the provider, or sets one with "forgot password"), role `user`.
pub async fn insert_user(
    tx: &mut Tx,
    id: Uuid,
    email: &str,
    full_name: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "INSERT INTO users (id, email, full_name, password_hash, role, email_verified, \
               email_verified_at, created_at, updated_at) \
               VALUES ($1, $2, $3, NULL, 'user', TRUE, $4, $4, $4)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(email)
        .bind(full_name)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A one-time login code, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoginCodeRow {
    pub id: Uuid,
    pub code_hash: String,
    pub user_id: Uuid,
    pub method: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub session_id: Option<Uuid>,
}

/// Keep a new login code, and drop the expired ones.
pub async fn insert_code(tx: &mut Tx, row: &LoginCodeRow) -> StoreResult<()> {
    let sweep = "DELETE FROM login_codes WHERE expires_at <= $1";
    with_tx!(tx, |conn| sqlx::query(sweep)
        .bind(row.created_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    let sql = "INSERT INTO login_codes (code_hash, id, user_id, method, created_at, expires_at) \
               VALUES ($1, $2, $3, $4, $5, $6)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(row.code_hash.as_str())
        .bind(row.id)
        .bind(row.user_id)
        .bind(row.method.as_str())
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

pub async fn find_code(tx: &mut Tx, code_hash: &str) -> StoreResult<Option<LoginCodeRow>> {
    let sql = "SELECT id, code_hash, user_id, method, created_at, expires_at, used_at, \
               session_id FROM login_codes WHERE code_hash = $1";
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, LoginCodeRow>(sql)
        .bind(code_hash)
        .fetch_optional(conn)
        .await)?;
    Ok(row)
}

/// Note the session a spent code opened.
pub async fn set_code_session(tx: &mut Tx, code_hash: &str, session: Uuid) -> StoreResult<()> {
    let sql = "UPDATE login_codes SET session_id = $2 WHERE code_hash = $1";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(code_hash)
        .bind(session)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Spend a live code; false when it was used or has expired meanwhile (a lost race).
pub async fn use_code(tx: &mut Tx, code_hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    let sql = "UPDATE login_codes SET used_at = $2 WHERE code_hash = $1 \
               AND used_at IS NULL AND expires_at > $2";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(code_hash)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
