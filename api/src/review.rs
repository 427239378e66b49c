//! `/api/review` and friends: submit items, read the queue, claim with a lease, decide,
//! and read an item's review history. Handlers parse and make one engine call.

use alta_actors::ErrorCode;
use alta_actors::{
    Engine,
    context::RequestContext,
    domain::DataKind,
    review::{Decision, DecisionInput, DecisionResult, DecisionView, ReviewEntry},
};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use crate::{
    enums::{ReviewOutcome, Wire},
    items::{ItemResponse, TextRevisionResponse},
    json_body::JsonBody,
    problem::ApiResult,
    required::Required,
    security::BearerAuth,
    tags::ApiTags,
};

/// Items to send to review. Give `item_ids`, or the older single `document_id`.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct SubmitInput {
    /// Up to 500 items (documents or recordings) of this project, each `ready` or
    /// `changes_requested`.
    #[oai(validator(max_items = 500))]
    pub item_ids: Option<Vec<Uuid>>,
    /// One item (the original frontend's field).
    pub document_id: Option<Uuid>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SubmittedResponse {
    /// The items, now `pending_review`.
    pub items: Vec<ItemResponse>,
}

#[derive(Debug, Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum DecisionKind {
    Approve,
    Reject,
}

/// A reviewer's decision.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct DecisionBody {
    pub decision: DecisionKind,
    /// Required to reject: one of the project's `settings.reject_reasons`.
    #[oai(validator(max_length = 64))]
    pub reason_code: Option<String>,
    /// For the contributor.
    #[oai(validator(max_length = 2000))]
    pub comment: Option<String>,
    /// With `approve`: fix and accept. Becomes the item's current text, a revision by you.
    pub corrected_text: Option<String>,
    /// With `approve`: fix and accept the labels. Becomes the item's annotation, a
    /// revision by you, checked against the current label schema (and the corrected text).
    pub corrected_annotation: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReviewDecisionResponse {
    pub id: Uuid,
    pub item_id: Uuid,
    pub reviewer_id: Uuid,
    /// The rework round (0 for the first submission).
    pub round: i32,
    pub decision: Wire<DecisionKind>,
    pub reason_code: Option<String>,
    pub comment: Option<String>,
    /// Fix and accept: the text revision the reviewer wrote.
    pub text_revision: Option<i32>,
    /// Where the item stood after this decision.
    pub outcome: Wire<ReviewOutcome>,
    pub created_at: DateTime<Utc>,
}

impl From<DecisionView> for ReviewDecisionResponse {
    fn from(d: DecisionView) -> Self {
        Self {
            id: d.id,
            item_id: d.item_id,
            reviewer_id: d.reviewer_id,
            round: d.round,
            decision: Wire::new(d.decision),
            reason_code: d.reason_code,
            comment: d.comment,
            text_revision: d.text_revision,
            outcome: Wire::new(d.outcome),
            created_at: d.created_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DecisionResultResponse {
    pub decision: ReviewDecisionResponse,
    /// The item after the decision.
    pub item: ItemResponse,
}

impl From<DecisionResult> for DecisionResultResponse {
    fn from(r: DecisionResult) -> Self {
        Self {
            decision: r.decision.into(),
            item: r.item.into(),
        }
    }
}

/// An item in a reviewer's queue.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReviewEntryResponse {
    /// The item, with its audio analysis for recordings.
    pub item: ItemResponse,
    /// Its current text or transcript.
    pub text: Option<TextRevisionResponse>,
    /// Its labels, with the schema version they were checked against (absent: none yet).
    pub annotation: Option<crate::labels::AnnotationResponse>,
    /// Decisions of earlier rounds, oldest first (the current round's votes stay hidden
    /// until it is decided, here and in `GET /api/documents/{id}/reviews`).
    pub history: Vec<ReviewDecisionResponse>,
    /// Until when you hold it, when you do.
    pub lease_until: Option<DateTime<Utc>>,
}

impl From<ReviewEntry> for ReviewEntryResponse {
    fn from(e: ReviewEntry) -> Self {
        Self {
            item: e.item.into(),
            text: e.text.map(Into::into),
            annotation: e.annotation.map(Into::into),
            history: e.history.into_iter().map(Into::into).collect(),
            lease_until: e.lease_until,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReviewQueuePage {
    pub items: Vec<ReviewEntryResponse>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LeaseResponse {
    pub item_id: Uuid,
    pub lease_until: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReviewHistory {
    pub items: Vec<ReviewDecisionResponse>,
}

#[derive(ApiResponse)]
pub enum SubmittedOk {
    #[oai(status = 200)]
    Ok(Json<SubmittedResponse>),
}

#[derive(ApiResponse)]
pub enum QueueOk {
    #[oai(status = 200)]
    Ok(Json<ReviewQueuePage>),
}

#[derive(ApiResponse)]
pub enum NextResponse {
    /// The item is yours until `lease_until`.
    #[oai(status = 200)]
    Claimed(Json<Box<ReviewEntryResponse>>),
    /// Nothing left for you to review in this project.
    #[oai(status = 204)]
    Empty,
}

#[derive(ApiResponse)]
pub enum LeaseOk {
    #[oai(status = 200)]
    Ok(Json<LeaseResponse>),
}

#[derive(ApiResponse)]
pub enum Skipped {
    /// Out of your queue for this round; the lease is released.
    #[oai(status = 204)]
    NoContent,
}

#[derive(ApiResponse)]
pub enum DecidedOk {
    #[oai(status = 200)]
    Ok(Json<DecisionResultResponse>),
}

#[derive(ApiResponse)]
pub enum HistoryOk {
    #[oai(status = 200)]
    Ok(Json<ReviewHistory>),
}

fn missing_project_id() -> alta_actors::EngineError {
    alta_actors::EngineError::validation(
        ErrorCode::MissingProjectId,
        "project_id",
        "project_id is required",
    )
}

pub struct ReviewApi;

#[OpenApi(tag = "ApiTags::Review")]
impl ReviewApi {
    /// Submit items for review
    ///
    /// The items' contributor, or a project admin for anyone's. Each item must be
    /// `ready`, or `changes_requested` after rework; otherwise 409 `item_not_ready` and
    /// nothing is submitted. The items become `pending_review`.
    #[oai(
        path = "/api/projects/:project_id/review",
        method = "post",
        operation_id = "review_submit"
    )]
    async fn submit(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        body: JsonBody<SubmitInput>,
    ) -> ApiResult<SubmittedOk> {
        let mut ids = body.0.item_ids.unwrap_or_default();
        ids.extend(body.0.document_id);
        let items = engine
            .review()
            .submit_for_review(&auth.0, project_id.0, ids, &ctx)
            .await?;
        Ok(SubmittedOk::Ok(Json(SubmittedResponse {
            items: items.into_iter().map(Into::into).collect(),
        })))
    }

    /// Your review queue in a project
    ///
    /// Reviewers and admins. Items pending review, oldest upload first, with their
    /// text, audio analysis and history; never your own, never ones you decided or
    /// skipped this round, never ones another reviewer holds. Cursor pagination.
    #[oai(path = "/api/review", method = "get", operation_id = "review_queue")]
    async fn queue(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Query<Required<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        #[oai(validator(max_length = 64))] cursor: Query<Option<String>>,
    ) -> ApiResult<QueueOk> {
        let project_id = project_id.0.0.ok_or_else(missing_project_id)?;
        let page = engine
            .review()
            .review_queue(&auth.0, project_id, limit.0, cursor.0.as_deref())
            .await?;
        Ok(QueueOk::Ok(Json(ReviewQueuePage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Claim the next item to review
    ///
    /// Leases the head of your queue to you (`REVIEW_LEASE_SECONDS`, default 10
    /// minutes), so no other reviewer gets it; asking again returns the item you hold.
    /// Renew with `POST /api/review/{id}/lease`, give it back with `…/skip`. An expired
    /// lease returns the item to the queue. 204 when there is nothing to review.
    #[oai(
        path = "/api/review/next",
        method = "post",
        operation_id = "review_next"
    )]
    async fn next(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        ctx: Data<&RequestContext>,
        project_id: Query<Required<Uuid>>,
    ) -> ApiResult<NextResponse> {
        let project_id = project_id.0.0.ok_or_else(missing_project_id)?;
        Ok(
            match engine
                .review()
                .claim_review(&auth.0, project_id, &ctx)
                .await?
            {
                Some(entry) => NextResponse::Claimed(Json(Box::new(entry.into()))),
                None => NextResponse::Empty,
            },
        )
    }

    /// Renew your lease on an item
    ///
    /// 409 `lease_lost` when you no longer hold it.
    #[oai(
        path = "/api/review/:id/lease",
        method = "post",
        operation_id = "review_renew"
    )]
    async fn renew(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        ctx: Data<&RequestContext>,
        id: Path<Uuid>,
    ) -> ApiResult<LeaseOk> {
        let lease_until = engine.review().renew_review(&auth.0, id.0, &ctx).await?;
        Ok(LeaseOk::Ok(Json(LeaseResponse {
            item_id: id.0,
            lease_until,
        })))
    }

    /// Skip an item
    ///
    /// It leaves your queue for this round and your lease on it is released.
    #[oai(
        path = "/api/review/:id/skip",
        method = "post",
        operation_id = "review_skip"
    )]
    async fn skip(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        ctx: Data<&RequestContext>,
        id: Path<Uuid>,
    ) -> ApiResult<Skipped> {
        engine.review().skip_review(&auth.0, id.0, &ctx).await?;
        Ok(Skipped::NoContent)
    }

    /// Approve or reject an item
    ///
    /// Documents and recordings alike. Rejecting needs a `reason_code` from the
    /// project's list; approving with `corrected_text` is fix-and-accept. With
    /// `settings.reviews_required` = N, an item is approved when approvals ≥ N and
    /// approvals > rejections, sent back (`changes_requested`, or `rejected` once
    /// `max_rework_rounds` are used) when rejections ≥ N and rejections > approvals, and
    /// otherwise waits for another reviewer. 403 `self_review` on your own item; 409
    /// `item_not_pending`, `already_decided` (once per round), or `review_claimed`
    /// (another reviewer holds it).
    #[oai(
        path = "/api/review/:id",
        method = "patch",
        operation_id = "review_decide"
    )]
    async fn decide(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        id: Path<Uuid>,
        body: JsonBody<DecisionBody>,
    ) -> ApiResult<DecidedOk> {
        let body = body.0;
        let input = DecisionInput {
            decision: match body.decision {
                DecisionKind::Approve => Decision::Approve,
                DecisionKind::Reject => Decision::Reject,
            },
            reason_code: body.reason_code,
            comment: body.comment,
            corrected_text: body.corrected_text,
            corrected_annotation: body.corrected_annotation,
        };
        let result = engine
            .review()
            .decide_review(&auth.0, id.0, input, &ctx)
            .await?;
        Ok(DecidedOk::Ok(Json(result.into())))
    }

    /// A document's review history
    ///
    /// Every decision with reviewer, reason, comment and time, oldest first. Whoever may
    /// see the document (its contributor included). Review is blind: while the item is
    /// `pending_review`, the open round's votes are shown only to the reviewer who cast
    /// them (admins included: they review too); once the round ends, all of them.
    #[oai(
        path = "/api/documents/:id/reviews",
        method = "get",
        operation_id = "document_reviews"
    )]
    async fn document_reviews(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> ApiResult<HistoryOk> {
        history(&engine, &auth, DataKind::Document, id.0).await
    }

    /// A recording's review history
    ///
    /// As for documents.
    #[oai(
        path = "/api/voice/:id/reviews",
        method = "get",
        operation_id = "voice_reviews"
    )]
    async fn voice_reviews(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> ApiResult<HistoryOk> {
        history(&engine, &auth, DataKind::Audio, id.0).await
    }
}

async fn history(
    engine: &Engine,
    auth: &BearerAuth,
    kind: DataKind,
    id: Uuid,
) -> ApiResult<HistoryOk> {
    let decisions = engine.review().item_reviews(&auth.0, kind, id).await?;
    Ok(HistoryOk::Ok(Json(ReviewHistory {
        items: decisions.into_iter().map(Into::into).collect(),
    })))
}
