//! The store: one set of SQL over PostgreSQL or SQLite (docs/ARCHITECTURE.md).
//!
//! Queries use `$1` placeholders, which both backends accept, and are written once:
//! [`with_db!`] and [`with_tx!`] expand one query expression into a match arm per
//! backend. SQL that truly differs lives in a `match` marked `-- backend-specific`.
//! A statement that writes outside a transaction goes through [`with_db_write!`], which
//! on SQLite first takes the process's turn to write ([`SqliteDb`]).
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
#[cfg(test)]
mod turns_check;
pub mod users;
pub mod verification;
pub mod webhooks;

use std::{
    ops::{Deref, DerefMut},
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use sqlx::{
    Connection, PgPool, SqliteConnection, SqlitePool,
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

/// How long a SQLite writer waits for the lock (or for its turn) before it gives up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool on whichever backend is configured.
#[derive(Debug, Clone)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqliteDb),
}

/// SQLite's pool, with this process's turns to write.
///
/// SQLite lets one connection write at a time. The others wait in its busy handler,
/// which sleeps (1, 2, 5 … then 100 ms at a time) and tries again, so a writer that
/// finds the lock taken seldom catches it free while another task writes back to back.
/// Seen under uploads: a job worker's claim waited 1 to 3.8 s behind the project's actor
/// committing groups, and documents were processed at under a hundredth of the upload
/// rate; a sign-in or a lease renewal would have waited the same way. So every write of
/// this process first takes a turn here, in the order the writers came (tokio's mutex is
/// fair), and then finds the lock free. Reads take no turn (WAL lets them run beside
/// the writer); another process on the same file still meets the busy handler.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    pool: SqlitePool,
    turns: Arc<tokio::sync::Mutex<()>>,
}

/// This process's turn to write to SQLite: the next writer waits until it is dropped.
pub type WriteTurn = tokio::sync::OwnedMutexGuard<()>;

impl SqliteDb {
    pub fn new(pool: SqlitePool) -> Self {
        Self {
            pool,
            turns: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The pool, for reads and for a write that holds its turn (no `Deref`: a write
    /// cannot reach the pool without saying so).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Wait for this process's turn to write, as long as SQLite's own busy timeout
    /// would have waited for the lock.
    pub async fn write_turn(&self) -> StoreResult<WriteTurn> {
        let asked = std::time::Instant::now();
        let turn =
            tokio::time::timeout(SQLITE_BUSY_TIMEOUT, Arc::clone(&self.turns).lock_owned()).await;
        metrics::histogram!(crate::metrics::SQLITE_WRITE_TURN_WAIT_SECONDS)
            .record(asked.elapsed().as_secs_f64());
        turn.map_err(|_| {
            StoreError::Unavailable(format!(
                "no turn to write to SQLite within {} s",
                SQLITE_BUSY_TIMEOUT.as_secs()
            ))
        })
    }
}

/// An open transaction on whichever backend is configured.
pub enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(SqliteTx),
}

/// A SQLite transaction, holding the process's turn to write until it ends.
pub struct SqliteTx {
    // Declared first, so dropped first: an abandoned transaction's rollback is queued on
    // its connection before the next writer's turn begins (should that writer still find
    // the lock taken, the busy handler covers the moment).
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _turn: WriteTurn,
}

impl Deref for SqliteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl DerefMut for SqliteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

/// Run one query expression against a `&Db`; `$conn` is the pool of the active backend.
/// For reads: a statement that writes goes through [`with_db_write!`].
#[macro_export]
macro_rules! with_db {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Postgres($conn) => $body,
            $crate::store::Db::Sqlite(sqlite) => {
                let $conn = sqlite.pool();
                $body
            }
        }
    };
}

/// [`with_db!`] for a statement that writes outside a transaction: on SQLite it waits
/// for the process's turn to write first ([`SqliteDb`]). Never inside a `Tx`'s life on
/// the same task: the transaction holds the turn.
#[macro_export]
macro_rules! with_db_write {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Postgres($conn) => $body,
            $crate::store::Db::Sqlite(sqlite) => {
                let _turn = sqlite.write_turn().await?;
                let $conn = sqlite.pool();
                $body
            }
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

pub use crate::{with_db, with_db_write, with_tx};

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
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true);
            let pool = ping_if_idle(SqlitePoolOptions::new())
                .max_connections(opts.max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(connect)
                .await?;
            Ok(Self::Sqlite(SqliteDb::new(pool)))
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
            Self::Sqlite(sqlite) => {
                sqlx::migrate!("../migrations/sqlite")
                    .run(sqlite.pool())
                    .await?
            }
        }
        Ok(())
    }

    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(match self {
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            // Every transaction here writes. IMMEDIATE takes the write lock up front (waiting
            // up to busy_timeout); a deferred one that reads first cannot upgrade after
            // another connection commits and fails at once with "database is locked".
            // The turn comes first, so IMMEDIATE finds the lock free (`SqliteDb`).
            Self::Sqlite(sqlite) => {
                let turn = sqlite.write_turn().await?;
                Tx::Sqlite(SqliteTx {
                    tx: sqlite.pool.begin_with("BEGIN IMMEDIATE").await?,
                    _turn: turn,
                })
            }
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
            Self::Sqlite(t) => t.tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> StoreResult<()> {
        match self {
            Self::Postgres(t) => t.rollback().await?,
            Self::Sqlite(t) => t.tx.rollback().await?,
        }
        Ok(())
    }
}

/// A row type read from either backend (every store read that is written once for
/// both pools decodes its rows through this).
pub trait RowOnEither:
    for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + Send
    + Unpin
{
}

impl<T> RowOnEither for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin
{
}

/// The rows found by a list of keys (none for none). On PostgreSQL `postgres`, which
/// takes the keys as one array (`$1`) and looks each up alone, in a lateral subquery
/// behind `OFFSET 0`: written `IN (…)`, the generic plan a connection keeps, made while
/// the table had no statistics yet, read the table whole. On SQLite `sqlite_sql` with the
/// keys' placeholders (`IN ({})`), whose planner finds each by its key.
pub(crate) async fn fetch_by_keys<T>(
    db: &Db,
    keys: &[uuid::Uuid],
    postgres: &'static str,
    sqlite_sql: impl FnOnce(&str) -> String,
) -> StoreResult<Vec<T>>
where
    T: RowOnEither,
{
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    // -- backend-specific: an array on PostgreSQL, an `IN` list on SQLite.
    Ok(match db {
        Db::Postgres(pool) => {
            sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(postgres))
                .bind(keys)
                .fetch_all(pool)
                .await?
        }
        Db::Sqlite(sqlite) => {
            let sql = sqlite_sql(&placeholders(keys.len()));
            let mut q = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql));
            for key in keys {
                q = q.bind(*key);
            }
            q.fetch_all(sqlite.pool()).await?
        }
    })
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
    use super::*;

    #[test]
    fn values_list_numbers_every_column_of_every_row() {
        assert_eq!(super::values_list(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::placeholders(3), "$1, $2, $3");
        assert_eq!(super::placeholders_from(2, 2), "$2, $3");
    }

    /// On SQLite a writer that comes while another task commits transaction after
    /// transaction (as a busy project's actor does) is served between two of them, in
    /// the order it came: here a job worker's claim, outside any transaction. Left to
    /// SQLite's busy handler, which sleeps between tries, the claim waited until the
    /// other task stopped (1 to 3.8 s under a benchmark's uploads).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sqlite_writer_is_served_between_another_tasks_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DbOptions {
            url: format!("sqlite:{}", dir.path().join("turns.db").display()),
            max_connections: 4,
            create_sqlite_file: true,
        })
        .await
        .unwrap();
        db.migrate().await.unwrap();
        let now = chrono::Utc::now();
        let mut tx = db.begin().await.unwrap();
        jobs::enqueue(&mut tx, "mail", serde_json::json!({}), 3, now, now)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        // The busy task: 200 transactions one after another, counted as they commit.
        let committed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (first_open_tx, first_open) = tokio::sync::oneshot::channel();
        let (claim_waits_tx, claim_waits) = tokio::sync::oneshot::channel::<()>();
        let busy = tokio::spawn({
            let (db, committed) = (db.clone(), Arc::clone(&committed));
            async move {
                let mut first = Some((first_open_tx, claim_waits));
                for n in 0..200i64 {
                    let mut tx = db.begin().await.unwrap();
                    let at = now + chrono::Duration::milliseconds(n);
                    jobs::enqueue(&mut tx, "export", serde_json::json!({}), 3, at, at)
                        .await
                        .unwrap();
                    if let Some((opened, waits)) = first.take() {
                        // Hold the first one until the claim has come.
                        opened.send(()).unwrap();
                        waits.await.unwrap();
                    }
                    tx.commit().await.unwrap();
                    committed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        first_open.await.unwrap();
        let claim = tokio::spawn({
            let (db, committed) = (db.clone(), Arc::clone(&committed));
            async move {
                let lease = now + chrono::Duration::seconds(60);
                let claimed = jobs::claim(&db, "mail", "worker", now, lease, 1)
                    .await
                    .unwrap();
                (
                    claimed.len(),
                    committed.load(std::sync::atomic::Ordering::SeqCst),
                )
            }
        });
        // Let the claim reach the lock (or its turn) and wait there a while before the
        // busy task goes on: SQLite's busy handler sleeps longer the longer it waited.
        tokio::time::sleep(Duration::from_millis(300)).await;
        claim_waits_tx.send(()).unwrap();
        let (claimed, committed_before) = claim.await.unwrap();
        busy.await.unwrap();
        assert_eq!(claimed, 1, "the claim took the queued job");
        assert!(
            committed_before <= 1,
            "the claim waited for {committed_before} of the other task's 200 commits"
        );
    }
}
