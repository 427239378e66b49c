//! What the database benches share (`#[path = "common/pg_schema.rs"] mod pg_schema;`):
//! the `--backend` choice, and a throw-away PostgreSQL schema per run. The server under
//! test connects with `search_path` set to it; it is dropped at the end.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use uuid::Uuid;

/// Where `--database-url` points unless told otherwise (this machine's PostgreSQL).
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// `--backend`: which database(s) to measure.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    Sqlite,
    Postgres,
    Both,
}

impl BackendArg {
    pub fn backends(self) -> Vec<Backend> {
        match self {
            Self::Sqlite => vec![Backend::Sqlite],
            Self::Postgres => vec![Backend::Postgres],
            Self::Both => vec![Backend::Sqlite, Backend::Postgres],
        }
    }

    /// As `--backend` takes it (for a bench's "reproduce" line; the webhooks bench
    /// prints none).
    #[allow(dead_code)]
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Both => "both",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Refuse at once, before any SQLite run, when PostgreSQL is asked for but not there.
pub async fn check_postgres(backends: &[Backend], url: &str) -> anyhow::Result<()> {
    if backends.contains(&Backend::Postgres) {
        pg_admin(url).await?.close().await;
    }
    Ok(())
}

/// The URL with its password hidden, for printing.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

pub struct PgSchema {
    base: String,
    pub name: String,
}

impl PgSchema {
    /// Create `<prefix>_<unix ms>_<random>` on the server at `base`.
    pub async fn create(base: &str, prefix: &str) -> anyhow::Result<Self> {
        let admin = pg_admin(base).await?;
        let name = format!(
            "{prefix}_{}_{}",
            Utc::now().timestamp_millis(),
            &Uuid::new_v4().simple().to_string()[..12]
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
            .execute(&admin)
            .await
            .with_context(|| format!("PostgreSQL: could not create schema {name}"))?;
        admin.close().await;
        Ok(Self {
            base: base.to_owned(),
            name,
        })
    }

    /// `base` with `search_path` set to the schema.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }

    pub async fn drop_schema(self) -> anyhow::Result<()> {
        let admin = pg_admin(&self.base).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            self.name
        )))
        .execute(&admin)
        .await
        .with_context(|| format!("PostgreSQL: could not drop schema {}", self.name))?;
        admin.close().await;
        Ok(())
    }
}

/// A one-connection pool on the server itself (schema admin, reachability checks).
async fn pg_admin(base: &str) -> anyhow::Result<sqlx::PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(base)
        .await
        .with_context(|| {
            format!(
                "PostgreSQL is not reachable at {} (set --database-url or BENCH_DATABASE_URL)",
                redact(base)
            )
        })
}
