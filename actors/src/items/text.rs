//! Reading and writing an item's text: the machine's output and people's revisions.

use super::ItemService;
use crate::ErrorCode;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::ItemView;
use super::{EditText, Reprocess};
use crate::{
    context::{Principal, RequestContext},
    domain::DataKind,
    error::EngineError,
    store::{self, texts::TextRow},
};

/// Longest text a person may write (machine output has its own, larger cap).
pub const MAX_HUMAN_TEXT_BYTES: usize = 2 * 1024 * 1024;

/// One revision of an item's text.
#[derive(Debug, Clone)]
pub struct TextRevision {
    pub revision: i32,
    /// `machine` or `human`.
    pub source: String,
    pub engine: Option<String>,
    pub author_id: Option<Uuid>,
    pub text: String,
    pub pages: Option<Vec<String>>,
    pub words: Option<serde_json::Value>,
    pub confidence: Option<f64>,
    pub created_at: DateTime<Utc>,
}

impl From<TextRow> for TextRevision {
    fn from(r: TextRow) -> Self {
        Self {
            revision: r.revision,
            source: r.source,
            engine: r.engine,
            author_id: r.author_id,
            text: r.text,
            pages: r.pages.and_then(|p| serde_json::from_value(p.0).ok()),
            words: r.words.map(|w| w.0),
            confidence: r.confidence,
            created_at: r.created_at,
        }
    }
}

/// An item's text: the current one and how it came to be.
#[derive(Debug, Clone)]
pub struct ItemText {
    pub item: ItemView,
    /// The newest revision, if there is any text yet.
    pub current: Option<TextRevision>,
    /// Every revision, oldest first.
    pub revisions: Vec<TextRevision>,
}

pub(crate) fn check_text(text: &str) -> Result<(), EngineError> {
    if text.trim().is_empty() {
        return Err(EngineError::validation(
            ErrorCode::EmptyText,
            "text",
            "the text is empty",
        ));
    }
    if text.len() > MAX_HUMAN_TEXT_BYTES {
        return Err(EngineError::TooLarge {
            code: ErrorCode::TextTooLarge,
            message: format!("the text must be at most {MAX_HUMAN_TEXT_BYTES} bytes"),
        });
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(EngineError::validation(
            ErrorCode::InvalidText,
            "text",
            "the text holds control characters",
        ));
    }
    Ok(())
}

impl ItemService {
    /// The text of an item the caller may read.
    pub async fn item_text(
        &self,
        principal: &Principal,
        kind: DataKind,
        id: Uuid,
    ) -> Result<ItemText, EngineError> {
        let item = self.item(principal, kind, id).await?;
        let revisions: Vec<TextRevision> = store::texts::revisions(&self.deps.db, id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect();
        Ok(ItemText {
            item,
            current: revisions.last().cloned(),
            revisions,
        })
    }

    /// Write a new revision of the text (the uploader or a project admin), once
    /// processing has ended either way. The item becomes `ready`.
    pub async fn edit_item_text(
        &self,
        principal: &Principal,
        kind: DataKind,
        id: Uuid,
        text: String,
        ctx: &RequestContext,
    ) -> Result<ItemText, EngineError> {
        check_text(&text)?;
        let item = self.item(principal, kind, id).await?;
        let edit = EditText { item_id: id, text };
        self.apply_in_project(item.project_id, principal, ctx, edit)
            .await?;
        self.item_text(principal, kind, id).await
    }

    /// Queue processing again (project admins).
    pub async fn reprocess_item(
        &self,
        principal: &Principal,
        kind: DataKind,
        id: Uuid,
        ctx: &RequestContext,
    ) -> Result<ItemView, EngineError> {
        let item = self.item(principal, kind, id).await?;
        self.apply_in_project(item.project_id, principal, ctx, Reprocess { item_id: id })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::check_text;

    #[test]
    fn text_checks() {
        assert!(check_text("Habari\nza asubuhi\t!").is_ok());
        assert_eq!(
            check_text("  \n").err().map(|e| e.code().as_str()),
            Some("empty_text")
        );
        assert_eq!(
            check_text("a\u{0}b").err().map(|e| e.code().as_str()),
            Some("invalid_text")
        );
        let big = "a".repeat(super::MAX_HUMAN_TEXT_BYTES + 1);
        assert_eq!(
            check_text(&big).err().map(|e| e.code().as_str()),
            Some("text_too_large")
        );
    }
}
