//! Analytics: the seed's summary and per-user figures, read from the rollups the
//! database keeps exact in every change's transaction.

use alta_actors::{
    Engine,
    analytics::{
        Figures, ReviewFigures, SeriesQuery, SeriesView, SummaryView, UserFigures, VerdictTimes,
    },
    domain::buckets::Bucket,
    store::rollups::{
        ContributorRank, ContributorSort, DecisionFigures, ReviewerRank, ReviewerSort,
    },
};
use chrono::{DateTime, FixedOffset, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use crate::{
    content::{CsvBody, wants_csv},
    enums::{ItemStatus, ProjectRole, Wire},
    problem::{ApiError, ApiResult},
    projects::DataKindDto,
    required::Required,
    security::BearerAuth,
    tags::ApiTags,
};

/// Live items of one kind in one state.
#[derive(Debug, Object)]
pub struct ItemStateCount {
    pub kind: Wire<DataKindDto>,
    pub status: Wire<ItemStatus>,
    pub items: i64,
    pub bytes: i64,
    /// Recorded audio (from the analysis at upload), seconds.
    pub audio_seconds: f64,
}

/// Live items of one kind by the engine that gave their current machine text.
#[derive(Debug, Object)]
pub struct EngineCount {
    pub kind: Wire<DataKindDto>,
    /// `plain_text`, `pdf_text_layer`, `docx`, `tesseract`, `google_document_ai`,
    /// `google_speech`, …
    pub engine: String,
    pub items: i64,
}

/// Live items of one kind whose processing failed with one code.
#[derive(Debug, Object)]
pub struct FailureCount {
    pub kind: Wire<DataKindDto>,
    /// The item's `processing_error_code` (`no_text_found`, `processing_gave_up`, …).
    pub code: String,
    pub items: i64,
}

/// Live items carrying one value of one label field.
#[derive(Debug, Object)]
pub struct LabelCount {
    pub field: String,
    pub value: String,
    pub items: i64,
}

/// What processing made of live items.
#[derive(Debug, Object)]
pub struct ProcessingCounts {
    /// Items with a machine text, by kind and the engine of the current one.
    pub by_engine: Vec<EngineCount>,
    /// Items now `processing_failed`, by kind and failure code.
    pub failures: Vec<FailureCount>,
}

/// Seconds of recorded audio by where the recordings stand.
#[derive(Debug, Object)]
pub struct AudioCounts {
    pub seconds_collected: f64,
    pub seconds_approved: f64,
    pub seconds_rejected: f64,
    pub seconds_pending_review: f64,
}

/// A project's share of the stored bytes.
#[derive(Debug, Object)]
pub struct ProjectBytes {
    pub project_id: Uuid,
    pub name: String,
    pub bytes: i64,
}

/// Bytes of the live items' current files.
#[derive(Debug, Object)]
pub struct StorageCounts {
    pub bytes: i64,
    pub document_bytes: i64,
    pub audio_bytes: i64,
    /// The platform summary: the 10 projects holding the most, most first (empty for a
    /// project).
    pub top_projects: Vec<ProjectBytes>,
}

/// Review decisions on live items with one decision, outcome and reason.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DecisionCount {
    /// `approve` or `reject`.
    pub decision: String,
    /// Where the item stood after it: `pending` (more votes needed), `approved`,
    /// `changes_requested` or `rejected`.
    pub outcome: String,
    pub reason_code: Option<String>,
    pub decisions: i64,
    /// Of them, those whose round has reached its verdict.
    pub settled: i64,
    /// Of those, the ones that matched the verdict (an approval an approved item, a
    /// rejection a rejected item or one sent back for changes).
    pub agreed: i64,
}

impl From<DecisionFigures> for DecisionCount {
    fn from(d: DecisionFigures) -> Self {
        Self {
            decision: d.decision,
            outcome: d.outcome,
            reason_code: (!d.reason_code.is_empty()).then_some(d.reason_code),
            decisions: d.decisions,
            settled: d.settled,
            agreed: d.agreed,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReviewCounts {
    pub decisions: Vec<DecisionCount>,
    /// Approved items never sent back for changes.
    pub approved_first_round: i64,
    /// Approved items sent back for changes at least once.
    pub approved_after_rework: i64,
    /// Rework rounds used by live items, summed.
    pub rework_rounds: i64,
    pub pending: i64,
    /// How long the longest-waiting pending item has waited (absent when none waits).
    pub oldest_pending_age_seconds: Option<i64>,
    pub time_to_verdict: VerdictTimeCounts,
}

/// How long rounds took from their submission to their verdict, every verdict of live
/// items counted in buckets (upper bounds 1 min, 5 min, 15 min, 30 min, 1 h, 2 h, 4 h,
/// 8 h, 1 day, 2 days, 4 days, 7 days, 14 days, 30 days, and longer). The median and the
/// 90th percentile are the bound of the bucket they fall in: exact to the bucket, from
/// counts the engine keeps, never a scan.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct VerdictTimeCounts {
    /// Verdicts counted (approved, changes requested, rejected).
    pub verdicts: i64,
    /// The median took at most this long, seconds (absent with no verdict, or when it
    /// is longer than 30 days).
    pub median_seconds_at_most: Option<i64>,
    /// Nine verdicts in ten took at most this long, seconds (absent as the median).
    pub p90_seconds_at_most: Option<i64>,
    /// Every bucket, shortest first.
    pub buckets: Vec<VerdictTimeBucket>,
}

/// Verdicts that took at most `le_seconds` (and more than the bucket before).
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct VerdictTimeBucket {
    /// The bucket's upper bound, seconds; absent for the last (longer than 30 days).
    pub le_seconds: Option<i64>,
    pub verdicts: i64,
}

impl From<VerdictTimes> for VerdictTimeCounts {
    fn from(t: VerdictTimes) -> Self {
        Self {
            verdicts: t.verdicts,
            median_seconds_at_most: t.median_seconds_at_most,
            p90_seconds_at_most: t.p90_seconds_at_most,
            buckets: t
                .buckets
                .into_iter()
                .map(|(le_seconds, verdicts)| VerdictTimeBucket {
                    le_seconds,
                    verdicts,
                })
                .collect(),
        }
    }
}

impl From<ReviewFigures> for ReviewCounts {
    fn from(r: ReviewFigures) -> Self {
        Self {
            decisions: r.decisions.into_iter().map(Into::into).collect(),
            approved_first_round: r.approved_first_round,
            approved_after_rework: r.approved_after_rework,
            rework_rounds: r.rework_rounds,
            pending: r.pending,
            oldest_pending_age_seconds: r.oldest_pending_age_seconds,
            time_to_verdict: r.time_to_verdict.into(),
        }
    }
}

/// Members by role (someone in two projects counts in each).
#[derive(Debug, Object)]
pub struct MemberCounts {
    pub admin: i64,
    pub contributor: i64,
    pub reviewer: i64,
}

/// A project's or the platform's figures.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AnalyticsSummary {
    /// The project; absent for the platform (its live projects).
    pub project_id: Option<Uuid>,
    /// Live items (deleted ones are in no figure).
    pub items: i64,
    /// Every kind × state of the item state machine, zeros included.
    pub items_by_state: Vec<ItemStateCount>,
    pub audio: AudioCounts,
    pub storage: StorageCounts,
    pub review: ReviewCounts,
    pub processing: ProcessingCounts,
    /// Live items by label field and value of their current annotation (label and
    /// multi_label fields; an item with two values of a field counts under each).
    pub labels: Vec<LabelCount>,
    pub members: MemberCounts,
    pub generated_at: DateTime<Utc>,
}

fn by_state(f: &Figures) -> Vec<ItemStateCount> {
    f.by_state
        .iter()
        .map(|s| ItemStateCount {
            kind: Wire::new(s.kind.as_str()),
            status: Wire::new(s.status.as_str()),
            items: s.items,
            bytes: s.bytes,
            audio_seconds: s.audio_seconds,
        })
        .collect()
}

fn audio(f: &Figures) -> AudioCounts {
    AudioCounts {
        seconds_collected: f.audio.seconds_collected,
        seconds_approved: f.audio.seconds_approved,
        seconds_rejected: f.audio.seconds_rejected,
        seconds_pending_review: f.audio.seconds_pending_review,
    }
}

fn storage(f: Figures) -> StorageCounts {
    StorageCounts {
        bytes: f.storage.bytes,
        document_bytes: f.storage.document_bytes,
        audio_bytes: f.storage.audio_bytes,
        top_projects: f
            .storage
            .top_projects
            .into_iter()
            .map(|p| ProjectBytes {
                project_id: p.project_id,
                name: p.name,
                bytes: p.bytes,
            })
            .collect(),
    }
}

impl From<SummaryView> for AnalyticsSummary {
    fn from(s: SummaryView) -> Self {
        let role = |r: ProjectRole| s.members.get(r.as_str()).copied().unwrap_or(0);
        Self {
            project_id: s.project_id,
            items: s.figures.items,
            items_by_state: by_state(&s.figures),
            audio: audio(&s.figures),
            members: MemberCounts {
                admin: role(ProjectRole::Admin),
                contributor: role(ProjectRole::Contributor),
                reviewer: role(ProjectRole::Reviewer),
            },
            storage: storage(s.figures),
            review: s.review.into(),
            processing: ProcessingCounts {
                by_engine: s
                    .processing
                    .engines
                    .into_iter()
                    .map(|r| EngineCount {
                        kind: Wire::new(r.group),
                        engine: r.name,
                        items: r.items,
                    })
                    .collect(),
                failures: s
                    .processing
                    .failures
                    .into_iter()
                    .map(|r| FailureCount {
                        kind: Wire::new(r.group),
                        code: r.name,
                        items: r.items,
                    })
                    .collect(),
            },
            labels: s
                .labels
                .into_iter()
                .map(|r| LabelCount {
                    field: r.group,
                    value: r.name,
                    items: r.items,
                })
                .collect(),
            generated_at: s.generated_at,
        }
    }
}

/// One person's figures as a contributor and as a reviewer.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UserAnalytics {
    pub user_id: Uuid,
    /// The projects counted; absent when every live project is.
    pub project_ids: Option<Vec<Uuid>>,
    /// Their live items (uploads that were not deleted).
    pub uploads: i64,
    pub items_by_state: Vec<ItemStateCount>,
    pub approved: i64,
    pub rejected: i64,
    /// Items now waiting for their changes.
    pub changes_requested: i64,
    /// Approved ÷ (approved + rejected); absent while nothing is decided.
    pub approval_rate: Option<f64>,
    pub approved_first_round: i64,
    pub approved_after_rework: i64,
    /// Rework rounds their live items used, summed.
    pub rework_rounds: i64,
    pub audio: AudioCounts,
    pub storage: StorageCounts,
    /// Decisions they made as a reviewer, on live items.
    pub reviews: i64,
    /// How often their vote matched the round's verdict: agreed ÷ settled votes
    /// (votes whose round has a verdict); absent while none is settled.
    pub review_agreement: Option<f64>,
    pub review_decisions: Vec<DecisionCount>,
}

impl From<UserFigures> for UserAnalytics {
    fn from(u: UserFigures) -> Self {
        Self {
            user_id: u.user_id,
            project_ids: u.project_ids,
            uploads: u.figures.items,
            items_by_state: by_state(&u.figures),
            approved: u.approved,
            rejected: u.rejected,
            changes_requested: u.changes_requested,
            approval_rate: u.approval_rate,
            approved_first_round: u.figures.approved_first_round,
            approved_after_rework: u.figures.approved_after_rework,
            rework_rounds: u.figures.rework_rounds,
            audio: audio(&u.figures),
            storage: storage(u.figures),
            reviews: u.reviews,
            review_agreement: u.review_agreement,
            review_decisions: u.review_decisions.into_iter().map(Into::into).collect(),
        }
    }
}

/// The size of a series' buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum BucketParam {
    Hour,
    /// The default.
    Day,
    /// From Monday.
    Week,
    Month,
}

impl From<BucketParam> for Bucket {
    fn from(b: BucketParam) -> Self {
        match b {
            BucketParam::Hour => Self::Hour,
            BucketParam::Day => Self::Day,
            BucketParam::Week => Self::Week,
            BucketParam::Month => Self::Month,
        }
    }
}

fn bucket_name(b: Bucket) -> &'static str {
    match b {
        Bucket::Hour => "hour",
        Bucket::Day => "day",
        Bucket::Week => "week",
        Bucket::Month => "month",
    }
}

/// What happened to live items in one bucket.
#[derive(Debug, Object)]
pub struct SeriesBucket {
    /// The bucket's start, with the zone's offset then.
    pub start: DateTime<FixedOffset>,
    pub uploads: i64,
    /// Submissions for review (each round's).
    pub submissions: i64,
    pub approvals: i64,
    pub changes_requested: i64,
    pub rejections: i64,
    pub audio_seconds_uploaded: f64,
    pub audio_seconds_approved: f64,
    /// People with a live upload in the bucket.
    pub active_contributors: i64,
    /// The label distribution of the live items uploaded in the bucket (by their current
    /// annotation; not in the CSV).
    pub labels: Vec<LabelCount>,
}

/// A series: every bucket of the period, empty ones included.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AnalyticsSeries {
    /// The project; absent for the platform.
    pub project_id: Option<Uuid>,
    pub bucket: Wire<BucketParam>,
    pub tz: String,
    /// The first bucket's start (`from` rounded down to its bucket).
    pub from: DateTime<FixedOffset>,
    /// The last bucket's end (`to` rounded up to its bucket).
    pub to: DateTime<Utc>,
    /// People with a live upload anywhere in the period, each counted once (so not the
    /// sum of the buckets' figures).
    pub active_contributors: i64,
    pub buckets: Vec<SeriesBucket>,
}

impl From<SeriesView> for AnalyticsSeries {
    fn from(v: SeriesView) -> Self {
        Self {
            project_id: v.project_id,
            bucket: Wire::new(bucket_name(v.bucket)),
            tz: v.tz,
            from: v.from,
            to: v.to,
            active_contributors: v.active_contributors,
            buckets: v
                .points
                .into_iter()
                .filter_map(|p| {
                    Some(SeriesBucket {
                        start: p.start?,
                        uploads: p.uploads,
                        submissions: p.submissions,
                        approvals: p.approvals,
                        changes_requested: p.changes_requested,
                        rejections: p.rejections,
                        audio_seconds_uploaded: p.audio_seconds_uploaded,
                        audio_seconds_approved: p.audio_seconds_approved,
                        active_contributors: p.active_contributors,
                        labels: p
                            .labels
                            .into_iter()
                            .map(|((field, value), items)| LabelCount {
                                field,
                                value,
                                items,
                            })
                            .collect(),
                    })
                })
                .collect(),
        }
    }
}

/// JSON, or CSV for `Accept: text/csv`.
#[derive(poem_openapi::ResponseContent)]
pub enum SeriesContent {
    Json(Json<AnalyticsSeries>),
    Csv(CsvBody),
}

/// JSON, or CSV for `Accept: text/csv` (the page's rows; the next page's cursor in
/// `Next-Cursor`).
#[derive(poem_openapi::ResponseContent)]
pub enum ContributorContent {
    Json(Json<ContributorBoard>),
    Csv(CsvBody),
}

/// JSON, or CSV for `Accept: text/csv` (as for contributors).
#[derive(poem_openapi::ResponseContent)]
pub enum ReviewerContent {
    Json(Json<ReviewerBoard>),
    Csv(CsvBody),
}

#[derive(ApiResponse)]
pub enum SeriesOk {
    #[oai(status = 200)]
    Ok(SeriesContent),
}

/// What the contributors' leaderboard ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ContributorSortParam {
    /// Approved items (the default).
    Approved,
    /// Approved recorded audio.
    ApprovedAudioSeconds,
    /// Live items uploaded.
    Uploads,
}

impl From<ContributorSortParam> for ContributorSort {
    fn from(s: ContributorSortParam) -> Self {
        match s {
            ContributorSortParam::Approved => Self::Approved,
            ContributorSortParam::ApprovedAudioSeconds => Self::ApprovedAudio,
            ContributorSortParam::Uploads => Self::Uploads,
        }
    }
}

/// What the reviewers' leaderboard ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ReviewerSortParam {
    /// Decisions made (the default).
    Decisions,
    Approvals,
    Rejections,
    /// How often their votes matched the round's verdict (agreed ÷ settled votes).
    Agreement,
}

impl From<ReviewerSortParam> for ReviewerSort {
    fn from(s: ReviewerSortParam) -> Self {
        match s {
            ReviewerSortParam::Decisions => Self::Decisions,
            ReviewerSortParam::Approvals => Self::Approvals,
            ReviewerSortParam::Rejections => Self::Rejections,
            ReviewerSortParam::Agreement => Self::Agreement,
        }
    }
}

/// A contributor's standing in the project (their live items).
#[derive(Debug, Object)]
pub struct ContributorStanding {
    pub user_id: Uuid,
    pub email: String,
    pub uploads: i64,
    pub approved: i64,
    pub rejected: i64,
    pub approved_audio_seconds: f64,
    pub audio_seconds: f64,
}

impl From<ContributorRank> for ContributorStanding {
    fn from(r: ContributorRank) -> Self {
        Self {
            user_id: r.user_id,
            email: r.email,
            uploads: r.uploads,
            approved: r.approved,
            rejected: r.rejected,
            approved_audio_seconds: r.approved_audio_ms as f64 / 1000.0,
            audio_seconds: r.audio_ms as f64 / 1000.0,
        }
    }
}

/// A reviewer's standing in the project (decisions on live items).
#[derive(Debug, Object)]
pub struct ReviewerStanding {
    pub user_id: Uuid,
    pub email: String,
    pub decisions: i64,
    pub approvals: i64,
    pub rejections: i64,
    /// Votes whose round has reached its verdict, and those that matched it.
    pub settled: i64,
    pub agreed: i64,
    /// agreed ÷ settled; absent while none is settled.
    pub agreement: Option<f64>,
}

impl From<ReviewerRank> for ReviewerStanding {
    fn from(r: ReviewerRank) -> Self {
        Self {
            user_id: r.user_id,
            email: r.email,
            decisions: r.decisions,
            approvals: r.approvals,
            rejections: r.rejections,
            settled: r.settled,
            agreed: r.agreed,
            agreement: (r.settled > 0).then(|| r.agreed as f64 / r.settled as f64),
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ContributorBoard {
    pub items: Vec<ContributorStanding>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReviewerBoard {
    pub items: Vec<ReviewerStanding>,
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum ContributorBoardOk {
    #[oai(status = 200)]
    Ok(
        ContributorContent,
        /// With CSV: the next page's cursor (absent on the last page).
        #[oai(header = "Next-Cursor")]
        Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum ReviewerBoardOk {
    #[oai(status = 200)]
    Ok(
        ReviewerContent,
        /// With CSV: the next page's cursor (absent on the last page).
        #[oai(header = "Next-Cursor")]
        Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum SummaryOk {
    #[oai(status = 200)]
    Ok(Json<AnalyticsSummary>),
}

#[derive(ApiResponse)]
pub enum UserOk {
    #[oai(status = 200)]
    Ok(Json<UserAnalytics>),
}

pub struct AnalyticsApi;

#[OpenApi(tag = "ApiTags::Analytics")]
impl AnalyticsApi {
    /// A project's or the platform's figures
    ///
    /// With `project_id`: that project (its admins and reviewers; a contributor gets
    /// 403, a non-member 404). Without: the whole platform's live projects (super
    /// admins; 403 for anyone else). Items by kind and state with bytes, audio seconds
    /// collected, approved and rejected, storage (and the top projects by bytes), review
    /// decisions by outcome and reason, first-round and after-rework approvals, the
    /// oldest pending item's age, members by role. Read from rollups kept in the same
    /// transaction as every change, so the figures are exact and the answer never scans
    /// the items. Deleted items and projects are in no figure.
    #[oai(
        path = "/api/analytics/summary",
        method = "get",
        operation_id = "analytics_summary"
    )]
    async fn summary(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Query<Option<Uuid>>,
    ) -> ApiResult<SummaryOk> {
        let view = engine
            .analytics()
            .analytics_summary(&auth.0, project_id.0)
            .await?;
        Ok(SummaryOk::Ok(Json(view.into())))
    }

    /// One person's figures
    ///
    /// `user_id` is an id or `me`. Uploads by state, approvals, rejections, changes
    /// requested, the approval rate, rework rounds, audio seconds, and the decisions
    /// they made as a reviewer. Who may see them: the person, a super admin (across the
    /// platform, or the one `project_id`), and the admins of a project they share
    /// (limited to the projects shared, or the one `project_id` among them); to anyone
    /// else the person does not exist (404).
    #[oai(
        path = "/api/analytics/user/:user_id",
        method = "get",
        operation_id = "analytics_user"
    )]
    async fn user(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        /// A user's id, or `me`.
        #[oai(validator(max_length = 36))]
        user_id: Path<String>,
        project_id: Query<Option<Uuid>>,
    ) -> ApiResult<UserOk> {
        let user = match user_id.0.as_str() {
            "me" => auth.0.user_id,
            other => other.parse::<Uuid>().map_err(|_| {
                ApiError::from(alta_actors::error::EngineError::NotFound { what: "user" })
            })?,
        };
        let figures = engine
            .analytics()
            .analytics_user(&auth.0, user, project_id.0)
            .await?;
        Ok(UserOk::Ok(Json(figures.into())))
    }

    /// A project's contributors, ranked
    ///
    /// Its admins and reviewers. Ranked by `sort` (`approved` by default,
    /// `approved_audio_seconds`, `uploads`), most first, ties by user id; paged like
    /// every list (`cursor` names the last person of the previous page, as they stand
    /// now). Live items only. `Accept: text/csv` gives the page as CSV for
    /// spreadsheets, the next page's cursor in `Next-Cursor`.
    #[oai(
        path = "/api/analytics/contributors",
        method = "get",
        operation_id = "analytics_contributors"
    )]
    #[allow(clippy::too_many_arguments)] // one per query parameter
    async fn contributors(
        &self,
        req: &poem::Request,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Query<Required<Uuid>>,
        sort: Query<Option<ContributorSortParam>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        #[oai(validator(max_length = 64))] cursor: Query<Option<String>>,
    ) -> ApiResult<ContributorBoardOk> {
        let sort: ContributorSort = sort.0.unwrap_or(ContributorSortParam::Approved).into();
        let page = engine
            .analytics()
            .ranking(&auth.0, project_id.0.0, sort, limit.0, cursor.0.as_deref())
            .await?;
        let items: Vec<ContributorStanding> = page.items.into_iter().map(Into::into).collect();
        if wants_csv(req) {
            let header = [
                "user_id",
                "email",
                "uploads",
                "approved",
                "rejected",
                "approved_audio_seconds",
                "audio_seconds",
            ];
            let rows = items.iter().map(|r| {
                vec![
                    r.user_id.to_string(),
                    r.email.clone(),
                    r.uploads.to_string(),
                    r.approved.to_string(),
                    r.rejected.to_string(),
                    r.approved_audio_seconds.to_string(),
                    r.audio_seconds.to_string(),
                ]
            });
            let csv = ContributorContent::Csv(CsvBody::of(&header, rows)?);
            return Ok(ContributorBoardOk::Ok(csv, page.next_cursor));
        }
        let board = ContributorBoard {
            items,
            next_cursor: page.next_cursor,
        };
        Ok(ContributorBoardOk::Ok(
            ContributorContent::Json(Json(board)),
            None,
        ))
    }

    /// A project's reviewers, ranked
    ///
    /// Its admins and reviewers. Ranked by `sort` (`decisions` by default, `approvals`,
    /// `rejections`, `agreement`: how often their votes matched the round's verdict, to
    /// the thousandth) on live items, most first, ties by user id; paged like every list.
    /// `Accept: text/csv` gives the page as CSV, the next cursor in `Next-Cursor`.
    #[oai(
        path = "/api/analytics/reviewers",
        method = "get",
        operation_id = "analytics_reviewers"
    )]
    #[allow(clippy::too_many_arguments)] // one per query parameter
    async fn reviewers(
        &self,
        req: &poem::Request,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Query<Required<Uuid>>,
        sort: Query<Option<ReviewerSortParam>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
        #[oai(validator(max_length = 64))] cursor: Query<Option<String>>,
    ) -> ApiResult<ReviewerBoardOk> {
        let sort: ReviewerSort = sort.0.unwrap_or(ReviewerSortParam::Decisions).into();
        let page = engine
            .analytics()
            .ranking(&auth.0, project_id.0.0, sort, limit.0, cursor.0.as_deref())
            .await?;
        let items: Vec<ReviewerStanding> = page.items.into_iter().map(Into::into).collect();
        if wants_csv(req) {
            let header = [
                "user_id",
                "email",
                "decisions",
                "approvals",
                "rejections",
                "settled",
                "agreed",
            ];
            let rows = items.iter().map(|r| {
                vec![
                    r.user_id.to_string(),
                    r.email.clone(),
                    r.decisions.to_string(),
                    r.approvals.to_string(),
                    r.rejections.to_string(),
                    r.settled.to_string(),
                    r.agreed.to_string(),
                ]
            });
            let csv = ReviewerContent::Csv(CsvBody::of(&header, rows)?);
            return Ok(ReviewerBoardOk::Ok(csv, page.next_cursor));
        }
        let board = ReviewerBoard {
            items,
            next_cursor: page.next_cursor,
        };
        Ok(ReviewerBoardOk::Ok(
            ReviewerContent::Json(Json(board)),
            None,
        ))
    }

    /// Uploads, submissions and verdicts over time
    ///
    /// Per bucket (`bucket` = `hour`, `day` (default), `week` from Monday, `month`) of
    /// the IANA time zone `tz` (default `UTC`), over `[from, to)` (RFC 3339; default the
    /// 30 days to now), rounded out to whole buckets; every bucket is listed, empty
    /// ones included. Counts live items: uploads, submissions for review (each round's),
    /// approvals, changes requested, rejections (at the deciding decision), and the
    /// recorded audio uploaded and approved. With `project_id`: that project (its admins
    /// and reviewers); without: the platform (super admins). A bad period is 422
    /// `invalid_period` with `field` naming the parameter (`from` not before `to`, an
    /// unknown `tz`, more than 1,000 buckets). Read from per-hour rollups kept in every
    /// change's transaction: exact for zones whose offset is whole hours.
    /// `Accept: text/csv` gives the buckets as CSV (a row each, a header first).
    #[oai(
        path = "/api/analytics/series",
        method = "get",
        operation_id = "analytics_series"
    )]
    #[allow(clippy::too_many_arguments)] // one per query parameter
    async fn series(
        &self,
        req: &poem::Request,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Query<Option<Uuid>>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
        bucket: Query<Option<BucketParam>>,
        /// An IANA time zone name (`Africa/Nairobi`).
        #[oai(validator(max_length = 64))]
        tz: Query<Option<String>>,
    ) -> ApiResult<SeriesOk> {
        let query = SeriesQuery {
            from: from.0,
            to: to.0,
            bucket: bucket.0.unwrap_or(BucketParam::Day).into(),
            tz: tz.0,
        };
        let view = engine
            .analytics()
            .analytics_series(&auth.0, project_id.0, query)
            .await?;
        let series = AnalyticsSeries::from(view);
        if wants_csv(req) {
            let header = [
                "start",
                "uploads",
                "submissions",
                "approvals",
                "changes_requested",
                "rejections",
                "audio_seconds_uploaded",
                "audio_seconds_approved",
                "active_contributors",
            ];
            let rows = series.buckets.iter().map(|b| {
                vec![
                    b.start.to_rfc3339(),
                    b.uploads.to_string(),
                    b.submissions.to_string(),
                    b.approvals.to_string(),
                    b.changes_requested.to_string(),
                    b.rejections.to_string(),
                    b.audio_seconds_uploaded.to_string(),
                    b.audio_seconds_approved.to_string(),
                    b.active_contributors.to_string(),
                ]
            });
            return Ok(SeriesOk::Ok(SeriesContent::Csv(CsvBody::of(
                &header, rows,
            )?)));
        }
        Ok(SeriesOk::Ok(SeriesContent::Json(Json(series))))
    }
}
