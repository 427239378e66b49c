//! The store: one set of SQL over PostgreSQL or SQLite (docs/ARCHITECTURE.md).
//!
//! Queries use `$1` placeholders, which both backends accept, and are written once:
//! [`with_db!`] and [`with_tx!`] expand one query expression into a match arm per
//! backend. SQL that truly differs lives in a `match` marked `-- backend-specific`.
//! Timestamps are always bound from the injected clock, never `now()` in SQL, so
//! both backends store the same representation and tests control time.

pub mod api_tokens;
pub mod audit;
pub mod exports;
pub mod google;
pub mod idempotency;
pub mod invitations;
pub mod items;
pub mod jobs;
pub mod kept;
pub mod labels;
pub mod login_throttle;
pub mod outcomes;
pub mod passkeys;
pub mod projects;
pub mod resumable;
pub mod reviews;
pub mod rollups;
pub mod sessions;
pub mod texts;
pub mod users;
pub mod verification;
pub mod webhooks;

use std::{str::FromStr, time::Duration};

use sqlx::{
    Connection, PgPool, SqlitePool,
    pool::PoolOptions,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

/// Failures of the store, already classified for the engine.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("row not found")]
    NotFound,
    #[error("unique constraint violated: {constraint}")]
    Conflict { constraint: String },
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict {
                constraint: db.constraint().unwrap_or(db.message()).to_owned(),
            },
            // SQLite SQLITE_BUSY (5) and its extended codes: contention, worth a retry.
            // PostgreSQL 40001/40P01 (serialization failure, deadlock): the same.
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c == "5" || c.parse::<u32>().is_ok_and(|n| n & 0xff == 5))
                    || db.code().is_some_and(|c| c == "40001" || c == "40P01") =>
            {
                Self::Unavailable(err.to_string())
            }
            // PostgreSQL refusing work for now: connection exceptions (class 08), too
            // many connections (53300), a shutdown or restart in progress (57P01-57P03).
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08")
                        || matches!(c.as_ref(), "53300" | "57P01" | "57P02" | "57P03")
                }) =>
            {
                Self::Unavailable(err.to_string())
            }
            // A connection that ends mid-handshake (a proxy or pooler in front of the
            // database that accepts and then closes) surfaces as a protocol error: the
            // link is down, not the request wrong.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err.to_string()),
            _ => Self::Other(err.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Self::Other(format!("migration failed: {err}"))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which database, and how to open it.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// `postgres://…`, `postgresql://…` or `sqlite:…`.
    pub url: String,
    pub max_connections: u32,
    /// For SQLite: create the file when it does not exist. Only the embedded default
    /// path sets this; an explicit URL to a missing file is an error, never a new,
    /// empty database that silently hides the real one.
    pub create_sqlite_file: bool,
}

/// A pool on whichever backend is configured.
#[derive(Debug, Clone)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// An open transaction on whichever backend is configured.
pub enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

/// Run one query expression against a `&Db`; `$conn` is the pool of the active backend.
#[macro_export]
macro_rules! with_db {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Postgres($conn) => $body,
            $crate::store::Db::Sqlite($conn) => $body,
        }
    };
}

/// Run one query expression inside a `&mut Tx`; `$conn` is the transaction's connection.
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::store::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

pub use crate::{with_db, with_tx};

/// A pooled connection that sat idle longer than this is pinged before it is handed
/// out; one in steady use is not. By default sqlx pings every connection it hands out,
/// a round trip before each read and before each group commit of a project's actor
/// (about a tenth of the upload rate on PostgreSQL), although it has already pinged the
/// connection when it came back to the pool (and dropped it if that failed). What is
/// left to catch is a connection that died while idle: the database restarted, a proxy
/// or firewall dropped it, which happens to connections idle for longer than this.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

fn ping_if_idle<DB: sqlx::Database>(options: PoolOptions<DB>) -> PoolOptions<DB> {
    options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

impl Db {
    /// Open a pool. A URL with an unknown scheme is refused here, never guessed at.
    pub async fn connect(opts: &DbOptions) -> StoreResult<Self> {
        let url = opts.url.as_str();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // No JIT: every statement here is short, and one whose estimate crosses
            // jit_above_cost (the review queue's generic plan does, at a million items)
            // would spend 330-660 ms compiling to save a millisecond (benches/review.rs).
            let connect = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::Other(format!("invalid PostgreSQL URL: {e}")))?
                .options([("jit", "off")]);
            let pool = ping_if_idle(PgPoolOptions::new())
                .max_connections(opts.max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(connect)
                .await?;
            Ok(Self::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let mut connect = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Other(format!("invalid SQLite URL: {e}")))?;
            if opts.create_sqlite_file {
                // Otherwise the URL decides (`?mode=rwc` creates).
                connect = connect.create_if_missing(true);
            }
            let connect = connect
                // Durable before acknowledged: WAL + fsync on every commit (docs/ARCHITECTURE.md, rule 3).
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            let pool = ping_if_idle(SqlitePoolOptions::new())
                .max_connections(opts.max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(connect)
                .await?;
            Ok(Self::Sqlite(pool))
        } else {
            Err(StoreError::Other(
                "unsupported database URL scheme (expected postgres:// or sqlite:)".into(),
            ))
        }
    }

    /// Apply the migrations of the active backend.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self {
            Self::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
            Self::Sqlite(pool) => sqlx::migrate!("../migrations/sqlite").run(pool).await?,
        }
        Ok(())
    }

    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(match self {
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            // Every transaction here writes. IMMEDIATE takes the write lock up front (waiting
            // up to busy_timeout); a deferred one that reads first cannot upgrade after
            // another connection commits and fails at once with "database is locked".
            Self::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    /// A trivial round trip, for readiness checks.
    pub async fn ping(&self) -> StoreResult<()> {
        with_db!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }

    /// Connections (idle, in use), for the pool gauge.
    pub fn pool_usage(&self) -> (usize, usize) {
        let (size, idle) = with_db!(self, |pool| (pool.size() as usize, pool.num_idle()));
        (idle, size.saturating_sub(idle))
    }

    pub async fn close(&self) {
        with_db!(self, |pool| pool.close().await);
    }
}

impl Tx {
    pub async fn commit(self) -> StoreResult<()> {
        match self {
            Self::Postgres(t) => t.commit().await?,
            Self::Sqlite(t) => t.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> StoreResult<()> {
        match self {
            Self::Postgres(t) => t.rollback().await?,
            Self::Sqlite(t) => t.rollback().await?,
        }
        Ok(())
    }
}

/// `$1, $2, …, $n`: one placeholder per bound value.
pub(crate) fn placeholders(n: usize) -> String {
    placeholders_from(1, n)
}

/// `$first, …`: `n` placeholders numbered from `first` (after other parameters).
pub(crate) fn placeholders_from(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, …, $c), ($c+1, …)`: the VALUES of a multi-row insert of `rows` rows of `columns`.
pub(crate) fn values_list(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let marks: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", marks.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `%needle%` with LIKE's wildcards in the needle escaped.
pub(crate) fn like_contains(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The engine's view of a store failure (the store sits below the engine's errors).
impl From<StoreError> for crate::error::EngineError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound { what: "record" },
            StoreError::Conflict { constraint } => Self::Conflict {
                code: crate::error_code::ErrorCode::Conflict,
                message: format!("conflicts with an existing record ({constraint})"),
            },
            StoreError::Unavailable(msg) => Self::Unavailable(msg),
            StoreError::Other(msg) => Self::Internal(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_list_numbers_every_column_of_every_row() {
        assert_eq!(super::values_list(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::placeholders(3), "$1, $2, $3");
        assert_eq!(super::placeholders_from(2, 2), "$2, $3");
    }
}
