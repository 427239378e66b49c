//! Label schemas (one row per version) and annotation revisions (the newest per item
//! is its annotation).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Db, StoreResult, Tx, with_db, with_tx};
use crate::domain::labels::LabelField;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SchemaRow {
    pub project_id: Uuid,
    pub version: i32,
    pub fields: Json<Vec<LabelField>>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

const SCHEMA_COLUMNS: &str = "project_id, version, fields, created_by, created_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AnnotationRow {
    pub item_id: Uuid,
    pub revision: i32,
    pub project_id: Uuid,
    pub schema_version: i32,
    pub label_values: Json<BTreeMap<String, Value>>,
    pub text_revision: Option<i32>,
    pub author_id: Uuid,
    pub created_at: DateTime<Utc>,
}

const ANNOTATION_COLUMNS: &str = "item_id, revision, project_id, schema_version, label_values, \
     text_revision, author_id, created_at";

fn current_schema_sql() -> String {
    format!(
        "SELECT {SCHEMA_COLUMNS} FROM label_schemas WHERE project_id = $1 \
         ORDER BY version DESC LIMIT 1"
    )
}

fn schema_version_sql() -> String {
    format!("SELECT {SCHEMA_COLUMNS} FROM label_schemas WHERE project_id = $1 AND version = $2")
}

fn current_annotation_sql() -> String {
    format!(
        "SELECT {ANNOTATION_COLUMNS} FROM annotation_revisions WHERE item_id = $1 \
         ORDER BY revision DESC LIMIT 1"
    )
}

/// The newest revision of each of `count` items bound as `$1…`.
fn current_of_sql(count: usize) -> String {
    format!(
        "SELECT {ANNOTATION_COLUMNS} FROM annotation_revisions a WHERE a.item_id IN ({}) \
         AND a.revision = (SELECT MAX(b.revision) FROM annotation_revisions b \
                           WHERE b.item_id = a.item_id)",
        super::placeholders(count)
    )
}

/// The project's newest schema version.
pub async fn current_schema(db: &Db, project: Uuid) -> StoreResult<Option<SchemaRow>> {
    let sql = current_schema_sql();
    Ok(with_db!(db, |pool| sqlx::query_as::<_, SchemaRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(project)
    .fetch_optional(pool)
    .await)?)
}

/// [`current_schema`] inside a transaction.
pub async fn current_schema_tx(tx: &mut Tx, project: Uuid) -> StoreResult<Option<SchemaRow>> {
    let sql = current_schema_sql();
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, SchemaRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(project)
    .fetch_optional(conn)
    .await)?)
}

pub async fn schema_version(
    db: &Db,
    project: Uuid,
    version: i32,
) -> StoreResult<Option<SchemaRow>> {
    let sql = schema_version_sql();
    Ok(with_db!(db, |pool| sqlx::query_as::<_, SchemaRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(project)
    .bind(version)
    .fetch_optional(pool)
    .await)?)
}

/// [`schema_version`] inside a transaction.
pub async fn schema_version_tx(
    tx: &mut Tx,
    project: Uuid,
    version: i32,
) -> StoreResult<Option<SchemaRow>> {
    let sql = schema_version_sql();
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, SchemaRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(project)
    .bind(version)
    .fetch_optional(conn)
    .await)?)
}

pub async fn insert_schema(tx: &mut Tx, row: &SchemaRow) -> StoreResult<()> {
    let sql = "INSERT INTO label_schemas (project_id, version, fields, created_by, created_at) \
               VALUES ($1, $2, $3, $4, $5)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(row.project_id)
        .bind(row.version)
        .bind(row.fields.clone())
        .bind(row.created_by)
        .bind(row.created_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The item's annotation (its newest revision).
pub async fn current_annotation(db: &Db, item: Uuid) -> StoreResult<Option<AnnotationRow>> {
    let sql = current_annotation_sql();
    Ok(with_db!(db, |pool| sqlx::query_as::<_, AnnotationRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(item)
    .fetch_optional(pool)
    .await)?)
}

/// [`current_annotation`] inside a transaction.
pub async fn current_annotation_tx(tx: &mut Tx, item: Uuid) -> StoreResult<Option<AnnotationRow>> {
    let sql = current_annotation_sql();
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, AnnotationRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(item)
    .fetch_optional(conn)
    .await)?)
}

/// Index the item's current label and multi_label values (`(field, value)` pairs),
/// replacing what was indexed for it before.
pub async fn replace_labels(
    tx: &mut Tx,
    project: Uuid,
    item: Uuid,
    labels: &[(String, String)],
) -> StoreResult<()> {
    with_tx!(tx, |conn| sqlx::query(
        "DELETE FROM annotation_labels WHERE item_id = $1"
    )
    .bind(item)
    .execute(conn)
    .await
    .map(|_| ()))?;
    let insert = "INSERT INTO annotation_labels (item_id, project_id, field, value) \
                  VALUES ($1, $2, $3, $4)";
    for (field, value) in labels {
        with_tx!(tx, |conn| sqlx::query(insert)
            .bind(item)
            .bind(project)
            .bind(field.as_str())
            .bind(value.as_str())
            .execute(conn)
            .await
            .map(|_| ()))?;
    }
    Ok(())
}

/// The annotation (newest revision) of each of `items` that has one.
pub async fn current_of(db: &Db, items: &[Uuid]) -> StoreResult<Vec<AnnotationRow>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let sql = current_of_sql(items.len());
    Ok(with_db!(db, |pool| {
        let mut q = sqlx::query_as::<_, AnnotationRow>(sqlx::AssertSqlSafe(sql.clone()));
        for id in items {
            q = q.bind(*id);
        }
        q.fetch_all(pool).await
    })?)
}

/// [`current_of`] inside a transaction.
pub async fn current_of_tx(tx: &mut Tx, items: &[Uuid]) -> StoreResult<Vec<AnnotationRow>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let sql = current_of_sql(items.len());
    Ok(with_tx!(tx, |conn| {
        let mut q = sqlx::query_as::<_, AnnotationRow>(sqlx::AssertSqlSafe(sql.clone()));
        for id in items {
            q = q.bind(*id);
        }
        q.fetch_all(conn).await
    })?)
}

/// Every revision of the item's annotation, oldest first.
pub async fn revisions(db: &Db, item: Uuid) -> StoreResult<Vec<AnnotationRow>> {
    let sql = format!(
        "SELECT {ANNOTATION_COLUMNS} FROM annotation_revisions WHERE item_id = $1 \
         ORDER BY revision"
    );
    Ok(with_db!(db, |pool| sqlx::query_as::<_, AnnotationRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(item)
    .fetch_all(pool)
    .await)?)
}

/// How many live items' annotations (each item's newest revision) have a value for
/// `field` (`option` None), or use `option` in it: as the label, one of a multi-label's,
/// or a span's or segment's label. Counted in the database (a schema change on a
/// project of a million annotations reads none of them out).
pub async fn annotations_using(
    tx: &mut Tx,
    project: Uuid,
    field: &str,
    option: Option<&str>,
) -> StoreResult<i64> {
    const NEWEST_LIVE: &str = "FROM annotation_revisions a \
         JOIN items i ON i.id = a.item_id AND i.deleted_at IS NULL \
         WHERE a.project_id = $1 \
         AND a.revision = (SELECT MAX(b.revision) FROM annotation_revisions b \
                           WHERE b.item_id = a.item_id)";
    // -- backend-specific: JSON operators.
    let uses = match (matches!(tx, Tx::Postgres(_)), option.is_some()) {
        (true, false) => "a.label_values ? $2",
        (true, true) => {
            "(a.label_values -> $2 = to_jsonb(CAST($3 AS TEXT)) \
              OR (jsonb_typeof(a.label_values -> $2) = 'array' \
                  AND (a.label_values -> $2 @> jsonb_build_array(CAST($3 AS TEXT)) \
                       OR a.label_values -> $2 @> \
                          jsonb_build_array(jsonb_build_object('label', CAST($3 AS TEXT))))))"
        }
        (false, false) => "json_type(a.label_values, '$.\"' || $2 || '\"') IS NOT NULL",
        (false, true) => {
            "EXISTS (SELECT 1 FROM json_each(a.label_values, '$.\"' || $2 || '\"') e \
                     WHERE (e.type = 'text' AND e.value = $3) \
                        OR (e.type = 'object' AND json_extract(e.value, '$.label') = $3))"
        }
    };
    let sql = format!("SELECT COUNT(*) {NEWEST_LIVE} AND {uses}");
    let count: i64 = with_tx!(tx, |conn| {
        let query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .bind(project)
            .bind(field);
        match option {
            Some(option) => query.bind(option).fetch_one(conn).await,
            None => query.fetch_one(conn).await,
        }
    })?;
    Ok(count)
}

pub async fn insert_annotation(tx: &mut Tx, row: &AnnotationRow) -> StoreResult<()> {
    let sql = "INSERT INTO annotation_revisions (item_id, revision, project_id, schema_version, \
               label_values, text_revision, author_id, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(row.item_id)
        .bind(row.revision)
        .bind(row.project_id)
        .bind(row.schema_version)
        .bind(row.label_values.clone())
        .bind(row.text_revision)
        .bind(row.author_id)
        .bind(row.created_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A source's suggestion for an item's annotation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SuggestionRow {
    pub item_id: Uuid,
    pub source: String,
    pub project_id: Uuid,
    pub schema_version: i32,
    pub label_values: Json<BTreeMap<String, Value>>,
    pub score: Option<f64>,
    pub text_revision: Option<i32>,
    pub author_id: Uuid,
    pub created_at: DateTime<Utc>,
}

const SUGGESTION_COLUMNS: &str = "item_id, source, project_id, schema_version, label_values, \
     score, text_revision, author_id, created_at";

fn suggestions_sql() -> String {
    format!(
        "SELECT {SUGGESTION_COLUMNS} FROM annotation_suggestions WHERE item_id = $1 \
         ORDER BY source"
    )
}

/// The item's suggestions, by source.
pub async fn suggestions(db: &Db, item: Uuid) -> StoreResult<Vec<SuggestionRow>> {
    let sql = suggestions_sql();
    Ok(with_db!(db, |pool| sqlx::query_as::<_, SuggestionRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(item)
    .fetch_all(pool)
    .await)?)
}

/// The item's suggestion from `source`, inside a transaction.
pub async fn suggestion_tx(
    tx: &mut Tx,
    item: Uuid,
    source: &str,
) -> StoreResult<Option<SuggestionRow>> {
    let sql = format!(
        "SELECT {SUGGESTION_COLUMNS} FROM annotation_suggestions \
         WHERE item_id = $1 AND source = $2"
    );
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, SuggestionRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(item)
    .bind(source)
    .fetch_optional(conn)
    .await)?)
}

/// Store a source's suggestion for an item, replacing what that source suggested before.
pub async fn put_suggestion(tx: &mut Tx, row: &SuggestionRow) -> StoreResult<()> {
    let sql = "INSERT INTO annotation_suggestions (item_id, source, project_id, schema_version, \
               label_values, score, text_revision, author_id, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
               ON CONFLICT (item_id, source) DO UPDATE SET schema_version = EXCLUDED.schema_version, \
               label_values = EXCLUDED.label_values, score = EXCLUDED.score, \
               text_revision = EXCLUDED.text_revision, author_id = EXCLUDED.author_id, \
               created_at = EXCLUDED.created_at";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(row.item_id)
        .bind(row.source.as_str())
        .bind(row.project_id)
        .bind(row.schema_version)
        .bind(row.label_values.clone())
        .bind(row.score)
        .bind(row.text_revision)
        .bind(row.author_id)
        .bind(row.created_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}
