//! Reading and deleting items, and retrying a failed job (which changes its item too).

use super::ItemService;
use crate::ErrorCode;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{DeleteItem, ItemStatus, ItemView};
use crate::{
    authz::ProjectAction,
    context::{Principal, RequestContext},
    domain::DataKind,
    error::EngineError,
    pagination::{Page, PageRequest},
    project_access::sees_all,
    store,
};

#[derive(Debug, Clone, Default)]
pub struct ItemListQuery {
    pub project_id: Option<Uuid>,
    pub status: Option<ItemStatus>,
    /// `field:value` filters (all must hold), on label and multi_label fields.
    pub labels: Vec<String>,
    pub contributor_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Most `label` filters in one list request.
const MAX_LABEL_FILTERS: usize = 10;

/// `field:value` → `(field, value)`; 422 `invalid_label_filter` for anything else.
fn parse_label_filters(raw: &[String]) -> Result<Vec<(String, String)>, EngineError> {
    if raw.len() > MAX_LABEL_FILTERS {
        return Err(EngineError::validation(
            ErrorCode::InvalidLabelFilter,
            "label",
            format!("at most {MAX_LABEL_FILTERS} label filters"),
        ));
    }
    raw.iter()
        .map(|f| match f.split_once(':') {
            Some((field, value)) if !field.is_empty() && !value.is_empty() => {
                Ok((field.to_owned(), value.to_owned()))
            }
            _ => Err(EngineError::validation(
                ErrorCode::InvalidLabelFilter,
                "label",
                format!("{f:?} is not field:value"),
            )),
        })
        .collect()
}

impl ItemService {
    pub async fn items(
        &self,
        principal: &Principal,
        kind: DataKind,
        query: ItemListQuery,
    ) -> Result<Page<ItemView>, EngineError> {
        let project_id = query.project_id.ok_or_else(|| {
            EngineError::validation(
                ErrorCode::MissingProjectId,
                "project_id",
                "project_id is required",
            )
        })?;
        let project = self
            .check_project(principal, project_id, ProjectAction::View)
            .await?;
        let page = PageRequest::parse(query.limit, query.cursor.as_deref())?;
        let labels = parse_label_filters(&query.labels)?;
        // A contributor sees their own items only, whatever filter they ask for.
        let all = sees_all(principal, project.my_role);
        let contributor_id = if all {
            query.contributor_id
        } else {
            Some(principal.user_id)
        };
        if !all && query.contributor_id.is_some_and(|c| c != principal.user_id) {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        let rows = store::items::list(
            &self.deps.db,
            &store::items::ItemFilter {
                project_id,
                kind,
                status: query.status,
                contributor_id,
                from: query.from,
                to: query.to,
                after: page.after,
                limit: page.fetch_limit(),
                labels,
            },
        )
        .await?;
        let mut page = page.page(rows, |r| r.id, ItemView::from);
        self.attach_jobs(&mut page.items).await?;
        Ok(page)
    }

    /// An item with its processing job's state, for `GET /api/…/{id}`.
    pub async fn item_detail(
        &self,
        principal: &Principal,
        kind: DataKind,
        id: Uuid,
    ) -> Result<ItemView, EngineError> {
        let mut items = vec![self.item(principal, kind, id).await?];
        self.attach_jobs(&mut items).await?;
        Ok(items.remove(0))
    }

    /// Fill in each item's `job` (one query for the lot).
    pub(crate) async fn attach_jobs(&self, items: &mut [ItemView]) -> Result<(), EngineError> {
        let ids: Vec<Uuid> = items.iter().filter_map(|i| i.job_id).collect();
        let jobs = store::jobs::statuses(&self.deps.db, &ids).await?;
        for item in items.iter_mut() {
            item.job = jobs
                .iter()
                .find(|j| Some(j.id) == item.job_id)
                .map(|j| super::JobSummary {
                    id: j.id,
                    kind: j.kind.clone(),
                    state: j.state,
                    attempts: j.attempts,
                    last_error: j.last_error.clone(),
                });
        }
        Ok(())
    }

    /// An item the caller may see (others' items are 404 to a contributor).
    pub async fn item(
        &self,
        principal: &Principal,
        kind: DataKind,
        id: Uuid,
    ) -> Result<ItemView, EngineError> {
        let row = self.visible_item(principal, id, Some(kind)).await?;
        Ok(row.into())
    }

    /// The item and the length of its content; read it with [`Self::item_content_range`].
    /// The length is the size recorded at upload (blobs are immutable), which saves a
    /// round trip to a remote store; a missing blob shows when the range is opened.
    pub async fn item_content(
        &self,
        principal: &Principal,
        kind: DataKind,
        id: Uuid,
    ) -> Result<(ItemView, u64), EngineError> {
        let item = self.item(principal, kind, id).await?;
        let len = u64::try_from(item.size_bytes)
            .map_err(|_| EngineError::internal(format!("item {id} has a negative size")))?;
        Ok((item, len))
    }

    /// Stream the bytes `start..=end_inclusive` of an item (from [`Self::item_content`],
    /// so access has been checked) without buffering the whole blob.
    pub async fn item_content_range(
        &self,
        item: &ItemView,
        start: u64,
        end_inclusive: u64,
    ) -> Result<crate::blob::BlobStream, EngineError> {
        // The stored key: a file replaced during rework lives under its own key.
        let key = if item.blob_key.is_empty() {
            crate::blob::item_key(item.project_id, item.id)
        } else {
            item.blob_key.clone()
        };
        self.deps
            .blobs
            .open_range(&key, start, end_inclusive)
            .await
            .map_err(|e| EngineError::internal(format!("blob {key} unreadable: {e}")))
    }

    pub async fn delete_item(
        &self,
        principal: &Principal,
        kind: DataKind,
        id: Uuid,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        let item = self.item(principal, kind, id).await?;
        self.apply_in_project(item.project_id, principal, ctx, DeleteItem { item_id: id })
            .await
    }
}
