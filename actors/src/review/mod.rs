//! Review: where collected items become dataset items. Submission, the reviewer's
//! queue with leases, decisions with consensus, fix-and-accept and the rework loop.
//! The transitions run in the project's actor (`transition`); this module holds
//! what callers send and get back, and the reads.

pub mod digest;
mod transition;

use self::transition::{ClaimReview, Decide, RenewReview, SkipReview, Submit};
use crate::ErrorCode;
use crate::items::ItemService;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    authz::ProjectAction,
    context::{Principal, RequestContext},
    domain::DataKind,
    error::EngineError,
    items::{ItemStatus, ItemView, TextRevision},
    pagination::{Page, PageRequest},
    store::{
        self,
        items::ItemRow,
        reviews::{DecisionRow, QueueFilter},
    },
};

crate::handle::service!(
    /// The review part of the engine: the queue, claims, decisions, review mail.
    ReviewService
);

/// Most items one submission may carry.
pub const MAX_SUBMIT_ITEMS: usize = 500;
/// Longest reviewer comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }
}

/// A reviewer's decision on one item.
#[derive(Debug, Clone)]
pub struct DecisionInput {
    pub decision: Decision,
    /// Required with `Reject`: one of the project's `reject_reasons`.
    pub reason_code: Option<String>,
    pub comment: Option<String>,
    /// With `Approve`: fix and accept, a new text revision by the reviewer.
    pub corrected_text: Option<String>,
    /// With `Approve`: fix and accept the labels, a new annotation revision by the
    /// reviewer, checked against the current schema (and the corrected text).
    pub corrected_annotation: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// One decision in an item's history.
#[derive(Debug, Clone)]
pub struct DecisionView {
    pub id: Uuid,
    pub item_id: Uuid,
    pub reviewer_id: Uuid,
    /// The rework round it was made in (0 for the first submission).
    pub round: i32,
    pub decision: String,
    pub reason_code: Option<String>,
    pub comment: Option<String>,
    pub text_revision: Option<i32>,
    /// Where the item stood after it: `pending`, `approved`, `changes_requested`, `rejected`.
    pub outcome: String,
    pub created_at: DateTime<Utc>,
}

impl From<DecisionRow> for DecisionView {
    fn from(r: DecisionRow) -> Self {
        Self {
            id: r.id,
            item_id: r.item_id,
            reviewer_id: r.reviewer_id,
            round: r.round,
            decision: r.decision,
            reason_code: r.reason_code,
            comment: r.comment,
            text_revision: r.text_revision,
            outcome: r.outcome,
            created_at: r.created_at,
        }
    }
}

/// An item as a reviewer sees it: the item (with its audio analysis), its current
/// text and every earlier decision.
#[derive(Debug, Clone)]
pub struct ReviewEntry {
    pub item: ItemView,
    pub text: Option<TextRevision>,
    /// Its labels (with the schema version they were checked against), when it has any.
    pub annotation: Option<crate::labels::AnnotationView>,
    pub history: Vec<DecisionView>,
    /// Set when the caller holds the item's lease.
    pub lease_until: Option<DateTime<Utc>>,
}

/// The answer to a decision: the decision and the item after it.
#[derive(Debug, Clone)]
pub struct DecisionResult {
    pub decision: DecisionView,
    pub item: ItemView,
}

fn check_input(input: &DecisionInput) -> Result<(), EngineError> {
    if let Some(comment) = &input.comment
        && comment.chars().count() > MAX_COMMENT_CHARS
    {
        return Err(EngineError::validation(
            ErrorCode::CommentTooLong,
            "comment",
            format!("the comment must be at most {MAX_COMMENT_CHARS} characters"),
        ));
    }
    if let Some(code) = &input.reason_code
        && (code.is_empty() || code.len() > 64)
    {
        return Err(EngineError::validation(
            ErrorCode::InvalidReason,
            "reason_code",
            "reason_code is a short code from the project's list",
        ));
    }
    if let Some(text) = &input.corrected_text {
        crate::items::check_text(text)?;
    }
    Ok(())
}

impl ReviewService {
    /// Send ready items to review (their contributor, or a project admin for anyone's).
    pub async fn submit_for_review(
        &self,
        principal: &Principal,
        project_id: Uuid,
        item_ids: Vec<Uuid>,
        ctx: &RequestContext,
    ) -> Result<Vec<ItemView>, EngineError> {
        let mut ids = item_ids;
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        if ids.is_empty() || ids.len() > MAX_SUBMIT_ITEMS {
            return Err(EngineError::validation(
                ErrorCode::InvalidItemIds,
                "item_ids",
                format!("give between 1 and {MAX_SUBMIT_ITEMS} item ids"),
            ));
        }
        // A project that is not there (or not the caller's) gets no actor.
        self.check_project(principal, project_id, ProjectAction::View)
            .await?;
        self.apply_in_project(project_id, principal, ctx, Submit { item_ids: ids })
            .await
    }

    /// The caller's review queue in a project, oldest upload first.
    pub async fn review_queue(
        &self,
        principal: &Principal,
        project_id: Uuid,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<ReviewEntry>, EngineError> {
        self.check_project(principal, project_id, ProjectAction::Review)
            .await?;
        let page = PageRequest::parse(limit, cursor)?;
        let filter = QueueFilter {
            project_id,
            reviewer_id: principal.user_id,
            now: self.deps.clock.now(),
            after: page.after,
            limit: page.fetch_limit(),
        };
        let rows = store::reviews::queue(&self.deps.db, &filter).await?;
        let page = page.page(rows, |r| r.id, |r| r);
        let entries = self.review_entries(principal, page.items).await?;
        Ok(Page {
            items: entries,
            next_cursor: page.next_cursor,
        })
    }

    /// Claim the next item of the caller's queue (or the one they hold) with a lease.
    pub async fn claim_review(
        &self,
        principal: &Principal,
        project_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<Option<ReviewEntry>, EngineError> {
        // A project that is not there (or not the caller's) gets no actor.
        self.check_project(principal, project_id, ProjectAction::View)
            .await?;
        let row = self
            .apply_in_project(project_id, principal, ctx, ClaimReview)
            .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(self.review_entries(principal, vec![row]).await?.pop()),
        }
    }

    /// The live item `id` (any kind), for review calls by item id. As for every item,
    /// a contributor who did not upload it (and any outsider) gets 404.
    async fn review_item(&self, principal: &Principal, id: Uuid) -> Result<ItemRow, EngineError> {
        self.visible_item(principal, id, None).await
    }

    /// Push out the caller's lease on an item; the new end of the lease.
    pub async fn renew_review(
        &self,
        principal: &Principal,
        item_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<DateTime<Utc>, EngineError> {
        let item = self.review_item(principal, item_id).await?;
        let row = self
            .apply_in_project(item.project_id, principal, ctx, RenewReview { item_id })
            .await?;
        row.review_lease_until
            .ok_or_else(|| EngineError::internal("a renewed lease has no end"))
    }

    /// Pass on an item for this round (and give back its lease).
    pub async fn skip_review(
        &self,
        principal: &Principal,
        item_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        let item = self.review_item(principal, item_id).await?;
        self.apply_in_project(item.project_id, principal, ctx, SkipReview { item_id })
            .await
    }

    /// Approve or reject an item (documents and recordings alike).
    pub async fn decide_review(
        &self,
        principal: &Principal,
        item_id: Uuid,
        input: DecisionInput,
        ctx: &RequestContext,
    ) -> Result<DecisionResult, EngineError> {
        check_input(&input)?;
        let item = self.review_item(principal, item_id).await?;
        let decide = Decide {
            item_id,
            input: Box::new(input),
        };
        let (row, decision) = self
            .apply_in_project(item.project_id, principal, ctx, decide)
            .await?;
        Ok(DecisionResult {
            decision: decision.into(),
            item: row.into(),
        })
    }

    /// Every review decision on an item the caller may see, oldest first.
    ///
    /// Blind review: while a round is open (the item is `pending_review`), its votes are
    /// shown to their own reviewer only, as in the queue (`review_entries`): not to the
    /// other reviewers, admins and super admins included (they review too), nor to the
    /// contributor. Once the round ends, every vote of it is shown.
    pub async fn item_reviews(
        &self,
        principal: &Principal,
        kind: DataKind,
        item_id: Uuid,
    ) -> Result<Vec<DecisionView>, EngineError> {
        let item = self
            .service::<ItemService>()
            .item(principal, kind, item_id)
            .await?;
        let open_round = (item.status == ItemStatus::PendingReview).then_some(item.review_round);
        Ok(store::reviews::decisions_of(&self.deps.db, &[item_id])
            .await?
            .into_iter()
            .filter(|d| open_round != Some(d.round) || d.reviewer_id == principal.user_id)
            .map(Into::into)
            .collect())
    }

    /// Items with their current text, labels and decision history (four queries for the
    /// lot).
    async fn review_entries(
        &self,
        principal: &Principal,
        rows: Vec<ItemRow>,
    ) -> Result<Vec<ReviewEntry>, EngineError> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut texts: HashMap<Uuid, TextRevision> = store::texts::current_of(&self.deps.db, &ids)
            .await?
            .into_iter()
            .map(|t| (t.item_id, t.into()))
            .collect();
        let mut annotations: HashMap<Uuid, crate::labels::AnnotationView> =
            store::labels::current_of(&self.deps.db, &ids)
                .await?
                .into_iter()
                .map(|a| (a.item_id, a.into()))
                .collect();
        // Earlier rounds only: the votes of the current round stay hidden from reviewers
        // until it is decided, so one reviewer's verdict does not sway the next.
        let rounds: HashMap<Uuid, i32> = rows.iter().map(|r| (r.id, r.review_round)).collect();
        let mut history: HashMap<Uuid, Vec<DecisionView>> = HashMap::new();
        for d in store::reviews::decisions_of(&self.deps.db, &ids).await? {
            if rounds.get(&d.item_id).is_some_and(|round| d.round < *round) {
                history.entry(d.item_id).or_default().push(d.into());
            }
        }
        let mut items: Vec<ItemView> = Vec::with_capacity(rows.len());
        let mut leases = Vec::with_capacity(rows.len());
        for row in rows {
            let mine = row.review_claimed_by == Some(principal.user_id);
            leases.push(row.review_lease_until.filter(|_| mine));
            items.push(row.into());
        }
        self.service::<ItemService>()
            .attach_jobs(&mut items)
            .await?;
        Ok(items
            .into_iter()
            .zip(leases)
            .map(|(item, lease_until)| ReviewEntry {
                text: texts.remove(&item.id),
                annotation: annotations.remove(&item.id),
                history: history.remove(&item.id).unwrap_or_default(),
                lease_until,
                item,
            })
            .collect())
    }

    /// Whether the caller gets the changes-requested digest mail.
    pub async fn review_mail(&self, principal: &Principal) -> Result<bool, EngineError> {
        Ok(store::reviews::review_mail(&self.deps.db, principal.user_id).await?)
    }
}
