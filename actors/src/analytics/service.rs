//! The analytics reads: a project's or the platform's summary, and one person's
//! figures. Each is a handful of reads of the rollups (a few rows per contributor and
//! state, never the items), checked against the permission matrix first.

use super::AnalyticsService;
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, SubsecRound, Utc};
use uuid::Uuid;

use crate::{
    authz::{self, Action, ProjectAction},
    context::Principal,
    domain::{
        DataKind, GlobalRole, ItemStatus,
        buckets::{self, Bucket, BucketError},
        verdict_times,
    },
    error::EngineError,
    pagination::{Page, PageRequest},
    store::{
        self,
        rollups::{CountFigure, CountRollup, DecisionFigures, ItemFigures, Leaderboard, Scope},
    },
};

/// A leaderboard's project, which it must name.
fn required_project(project_id: Option<Uuid>) -> Result<Uuid, EngineError> {
    project_id.ok_or_else(|| {
        EngineError::validation(
            crate::ErrorCode::MissingProjectId,
            "project_id",
            "project_id is required",
        )
    })
}

/// How many projects the platform summary ranks by bytes.
const TOP_PROJECTS: i64 = 10;

/// Live items of one kind in one state.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemStateFigures {
    pub kind: DataKind,
    pub status: ItemStatus,
    pub items: i64,
    pub bytes: i64,
    pub audio_seconds: f64,
}

/// Seconds of recorded audio (from the analysis at upload) by where the items stand.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioFigures {
    pub seconds_collected: f64,
    pub seconds_approved: f64,
    pub seconds_rejected: f64,
    pub seconds_pending_review: f64,
}

/// A project's share of the stored bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct TopProject {
    pub project_id: Uuid,
    pub name: String,
    pub bytes: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageFigures {
    pub bytes: i64,
    pub document_bytes: i64,
    pub audio_bytes: i64,
    /// The platform's projects holding the most (empty for one project).
    pub top_projects: Vec<TopProject>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReviewFigures {
    /// Decisions on live items by decision, outcome and reason.
    pub decisions: Vec<DecisionFigures>,
    pub approved_first_round: i64,
    pub approved_after_rework: i64,
    /// Rework rounds used by live items, summed.
    pub rework_rounds: i64,
    pub pending: i64,
    /// How long the longest-waiting pending item has waited, seconds.
    pub oldest_pending_age_seconds: Option<i64>,
    pub time_to_verdict: VerdictTimes,
}

/// What processing made of live items.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessingFigures {
    /// Items by kind (`group`) and the engine of their current machine text (`name`).
    pub engines: Vec<CountRollup>,
    /// Items now `processing_failed`, by kind (`group`) and failure code (`name`).
    pub failures: Vec<CountRollup>,
}

/// How long rounds took from submission to verdict (every verdict of live items).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerdictTimes {
    pub verdicts: i64,
    /// The bucket bound the median does not exceed (`None`: no verdict yet, or longer
    /// than the last bound).
    pub median_seconds_at_most: Option<i64>,
    pub p90_seconds_at_most: Option<i64>,
    /// Verdicts per bucket, by upper bound (`None`: longer than the last bound).
    pub buckets: Vec<(Option<i64>, i64)>,
}

impl VerdictTimes {
    fn from_rollup(rows: &[store::rollups::VerdictTimeRollup]) -> Self {
        let mut counts = [0i64; verdict_times::BUCKETS];
        for r in rows {
            if let Some(n) = usize::try_from(r.bucket)
                .ok()
                .and_then(|b| counts.get_mut(b))
            {
                *n += r.items;
            }
        }
        Self {
            verdicts: counts.iter().sum(),
            median_seconds_at_most: verdict_times::quantile_at_most(&counts, 0.5),
            p90_seconds_at_most: verdict_times::quantile_at_most(&counts, 0.9),
            buckets: counts
                .iter()
                .enumerate()
                .map(|(b, &n)| (verdict_times::bound_of(b), n))
                .collect(),
        }
    }
}

/// What both the summary and a person's figures hold, from the item rollup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub items: i64,
    /// Every kind × state, zeros included, in the state machine's order.
    pub by_state: Vec<ItemStateFigures>,
    pub audio: AudioFigures,
    pub storage: StorageFigures,
    pub approved_first_round: i64,
    pub approved_after_rework: i64,
    pub rework_rounds: i64,
}

impl Figures {
    fn from_rollup(rows: &[ItemFigures]) -> Self {
        let mut out = Figures::default();
        for kind in [DataKind::Document, DataKind::Audio] {
            for status in ItemStatus::ALL {
                let row = rows
                    .iter()
                    .find(|r| r.kind == kind.as_str() && r.status == status.as_str());
                let (items, bytes, audio_ms) =
                    row.map_or((0, 0, 0), |r| (r.items, r.bytes, r.audio_ms));
                out.by_state.push(ItemStateFigures {
                    kind,
                    status,
                    items,
                    bytes,
                    audio_seconds: audio_ms as f64 / 1000.0,
                });
            }
        }
        for r in rows {
            let seconds = r.audio_ms as f64 / 1000.0;
            out.items += r.items;
            out.storage.bytes += r.bytes;
            out.rework_rounds += r.rounds;
            match r.kind.as_str() {
                "audio" => out.storage.audio_bytes += r.bytes,
                _ => out.storage.document_bytes += r.bytes,
            }
            out.audio.seconds_collected += seconds;
            match r.status.as_str() {
                "approved" => {
                    out.audio.seconds_approved += seconds;
                    out.approved_after_rework += r.reworked;
                    out.approved_first_round += r.items - r.reworked;
                }
                "rejected" => out.audio.seconds_rejected += seconds,
                "pending_review" => out.audio.seconds_pending_review += seconds,
                _ => {}
            }
        }
        out
    }

    fn count(&self, status: ItemStatus) -> i64 {
        self.by_state
            .iter()
            .filter(|s| s.status == status)
            .map(|s| s.items)
            .sum()
    }
}

/// A project's or the platform's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryView {
    /// `None`: the whole platform (live projects).
    pub project_id: Option<Uuid>,
    pub figures: Figures,
    pub review: ReviewFigures,
    pub processing: ProcessingFigures,
    /// Live items by label field (`group`) and value (`name`) of their current
    /// annotation (label and multi_label fields).
    pub labels: Vec<CountRollup>,
    /// Members by role (someone in two projects counts in each).
    pub members: BTreeMap<String, i64>,
    pub generated_at: DateTime<Utc>,
}

/// One person's figures, as a contributor and as a reviewer.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFigures {
    pub user_id: Uuid,
    /// The projects counted: one when asked for, else every live project the caller
    /// may see this person's figures in (`None`: all of them).
    pub project_ids: Option<Vec<Uuid>>,
    pub figures: Figures,
    pub approved: i64,
    pub rejected: i64,
    pub changes_requested: i64,
    /// Approved ÷ (approved + rejected); none while nothing is decided.
    pub approval_rate: Option<f64>,
    /// Decisions this person made as a reviewer, on live items.
    pub reviews: i64,
    /// Their votes that matched the round's verdict ÷ their votes whose round has one;
    /// none while none has.
    pub review_agreement: Option<f64>,
    pub review_decisions: Vec<DecisionFigures>,
}

impl AnalyticsService {
    /// A project's figures (`project_id`: its admins and reviewers; a contributor 403),
    /// or the whole platform's (super admins).
    pub async fn analytics_summary(
        &self,
        principal: &Principal,
        project_id: Option<Uuid>,
    ) -> Result<SummaryView, EngineError> {
        let scope = match project_id {
            Some(id) => {
                self.check_project(principal, id, ProjectAction::ReadAnalytics)
                    .await?;
                Scope::Projects(vec![id])
            }
            None => {
                authz::authorize(principal, Action::ReadPlatformAnalytics)?;
                Scope::Platform
            }
        };
        let db = &self.deps.db;
        let now = self.deps.clock.now().trunc_subsecs(0);
        // The reads are independent: at once, on as many connections (one round trip
        // of waiting rather than six).
        let top = async {
            match project_id {
                None => store::rollups::top_projects(db, TOP_PROJECTS).await,
                Some(_) => Ok(Vec::new()),
            }
        };
        let (items, top, oldest, decisions, members, times, engines, failures, labels) = tokio::try_join!(
            store::rollups::items(db, &scope, None),
            top,
            store::rollups::oldest_pending(db, &scope),
            store::rollups::decisions(db, &scope, None),
            store::rollups::members(db, &scope),
            store::rollups::verdict_times(db, &scope),
            store::rollups::counts(db, &scope, CountFigure::Engines),
            store::rollups::counts(db, &scope, CountFigure::Failures),
            store::rollups::label_totals(db, &scope),
        )?;
        let mut figures = Figures::from_rollup(&items);
        figures.storage.top_projects = top
            .into_iter()
            .map(|(project_id, name, bytes)| TopProject {
                project_id,
                name,
                bytes,
            })
            .collect();
        let review = ReviewFigures {
            decisions,
            approved_first_round: figures.approved_first_round,
            approved_after_rework: figures.approved_after_rework,
            rework_rounds: figures.rework_rounds,
            pending: figures.count(ItemStatus::PendingReview),
            oldest_pending_age_seconds: oldest.map(|t| (now - t).num_seconds().max(0)),
            time_to_verdict: VerdictTimes::from_rollup(&times),
        };
        let members = members.into_iter().collect();
        Ok(SummaryView {
            project_id,
            figures,
            review,
            processing: ProcessingFigures { engines, failures },
            labels,
            members,
            generated_at: now,
        })
    }

    /// One person's figures: for themselves and super admins across the platform (or
    /// one project); for a project admin, the projects they share with that person. To
    /// anyone else the person does not exist (404).
    pub async fn analytics_user(
        &self,
        principal: &Principal,
        user_id: Uuid,
        project_id: Option<Uuid>,
    ) -> Result<UserFigures, EngineError> {
        let db = &self.deps.db;
        let unknown = || EngineError::NotFound { what: "user" };
        let everywhere = principal.user_id == user_id || principal.role == GlobalRole::SuperAdmin;
        let scope = if everywhere {
            store::users::find_by_id(db, user_id)
                .await?
                .ok_or_else(unknown)?;
            match project_id {
                Some(id) => {
                    // The project must be one the caller sees.
                    self.check_project(principal, id, ProjectAction::View)
                        .await?;
                    Scope::Projects(vec![id])
                }
                None => Scope::Platform,
            }
        } else {
            let mut shared =
                store::rollups::shared_as_admin(db, principal.user_id, user_id).await?;
            if let Some(id) = project_id {
                shared.retain(|p| *p == id);
            }
            if shared.is_empty() {
                return Err(unknown());
            }
            Scope::Projects(shared)
        };
        let figures =
            Figures::from_rollup(&store::rollups::items(db, &scope, Some(user_id)).await?);
        let review_decisions = store::rollups::decisions(db, &scope, Some(user_id)).await?;
        let (approved, rejected) = (
            figures.count(ItemStatus::Approved),
            figures.count(ItemStatus::Rejected),
        );
        Ok(UserFigures {
            user_id,
            project_ids: match scope {
                Scope::Platform => None,
                Scope::Projects(ids) => Some(ids),
            },
            approved,
            rejected,
            changes_requested: figures.count(ItemStatus::ChangesRequested),
            approval_rate: (approved + rejected > 0)
                .then(|| approved as f64 / (approved + rejected) as f64),
            reviews: review_decisions.iter().map(|d| d.decisions).sum(),
            review_agreement: agreement(&review_decisions),
            review_decisions,
            figures,
        })
    }
}

impl AnalyticsService {
    /// A page of one of the project's leaderboards (contributors or reviewers, by the
    /// sort's type), for its admins and reviewers.
    pub async fn ranking<L: Leaderboard>(
        &self,
        principal: &Principal,
        project_id: Option<Uuid>,
        sort: L,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<L::Row>, EngineError> {
        let project_id = required_project(project_id)?;
        self.check_project(principal, project_id, ProjectAction::ReadAnalytics)
            .await?;
        let page = PageRequest::parse(limit, cursor)?;
        let rows = store::rollups::ranked(
            &self.deps.db,
            project_id,
            sort,
            page.after,
            page.fetch_limit(),
        )
        .await?;
        Ok(page.page(rows, L::user_of, |r| r))
    }
}

/// A series request: `[from, to)` (default: the 30 days to now) cut into `bucket`s of
/// the zone `tz` (default UTC).
#[derive(Debug, Clone)]
pub struct SeriesQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub bucket: Bucket,
    pub tz: Option<String>,
}

/// What happened in one bucket, to live items.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesPoint {
    pub start: Option<DateTime<FixedOffset>>,
    pub uploads: i64,
    pub submissions: i64,
    pub approvals: i64,
    pub changes_requested: i64,
    pub rejections: i64,
    pub audio_seconds_uploaded: f64,
    pub audio_seconds_approved: f64,
    /// People with a live upload in the bucket.
    pub active_contributors: i64,
    /// Of the live items uploaded in the bucket, how many carry each (field, value) of
    /// their current annotation.
    pub labels: BTreeMap<(String, String), i64>,
}

/// A series: every bucket, empty ones included.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesView {
    pub project_id: Option<Uuid>,
    pub bucket: Bucket,
    pub tz: String,
    /// The first bucket's start (`from` rounded down to its bucket).
    pub from: DateTime<FixedOffset>,
    /// The last bucket's end (`to` rounded up to its bucket).
    pub to: DateTime<Utc>,
    pub points: Vec<SeriesPoint>,
    /// People with a live upload anywhere in the period (each counted once).
    pub active_contributors: i64,
}

fn invalid_period(field: &'static str, message: String) -> EngineError {
    EngineError::validation(crate::ErrorCode::InvalidPeriod, field, message)
}

impl AnalyticsService {
    /// Uploads, submissions and verdicts per bucket, for a project (its admins and
    /// reviewers) or the platform (super admins), from the hourly rollup.
    pub async fn analytics_series(
        &self,
        principal: &Principal,
        project_id: Option<Uuid>,
        query: SeriesQuery,
    ) -> Result<SeriesView, EngineError> {
        let tz_name = query.tz.unwrap_or_else(|| "UTC".to_owned());
        let tz = buckets::zone(&tz_name).map_err(|_| {
            invalid_period("tz", format!("{tz_name:?} is not an IANA time zone name"))
        })?;
        let to = query.to.unwrap_or_else(|| self.deps.clock.now());
        let from = query.from.unwrap_or(to - Duration::days(30));
        let cover = buckets::cover(from, to, query.bucket, &tz).map_err(|e| match e {
            BucketError::Empty => invalid_period("from", "from must be before to".into()),
            BucketError::TooMany(_) => invalid_period(
                "bucket",
                format!(
                    "more than {} buckets; use a larger bucket or a shorter period",
                    buckets::MAX_BUCKETS
                ),
            ),
            BucketError::UnknownZone(_) | BucketError::OutOfRange => {
                invalid_period("from", "the period is out of range".into())
            }
        })?;
        let scope = match project_id {
            Some(id) => {
                self.check_project(principal, id, ProjectAction::ReadAnalytics)
                    .await?;
                Scope::Projects(vec![id])
            }
            None => {
                authz::authorize(principal, Action::ReadPlatformAnalytics)?;
                Scope::Platform
            }
        };
        let starts: Vec<DateTime<Utc>> = cover.starts.iter().map(|s| s.to_utc()).collect();
        let period = store::rollups::Period {
            starts: &starts,
            end: cover.end,
        };
        let db = &self.deps.db;
        // Bucketed by the database: a row per bucket, not per hour (a 90-day series of
        // a busy project has thousands of hourly rows, a label's too).
        let (events, active, labels) = tokio::try_join!(
            store::rollups::event_buckets(db, &scope, period),
            store::rollups::active_contributors(db, &scope, period),
            store::rollups::label_buckets(db, &scope, period),
        )?;
        let mut points: Vec<SeriesPoint> = cover
            .starts
            .iter()
            .map(|s| SeriesPoint {
                start: Some(*s),
                ..SeriesPoint::default()
            })
            .collect();
        let at = |bucket: i64| usize::try_from(bucket).ok().filter(|i| *i < starts.len());
        for row in events {
            let Some(i) = at(row.bucket) else {
                continue;
            };
            let p = &mut points[i];
            let seconds = row.audio_ms as f64 / 1000.0;
            match row.event.as_str() {
                "upload" => {
                    p.uploads += row.items;
                    p.audio_seconds_uploaded += seconds;
                }
                "submission" => p.submissions += row.items,
                "approved" => {
                    p.approvals += row.items;
                    p.audio_seconds_approved += seconds;
                }
                "changes_requested" => p.changes_requested += row.items,
                "rejected" => p.rejections += row.items,
                _ => {}
            }
        }
        for row in labels {
            if let Some(i) = at(row.bucket) {
                *points[i].labels.entry((row.field, row.value)).or_default() += row.items;
            }
        }
        // Each person once per bucket (the query's pairs are distinct), and once over
        // the period.
        let mut anywhere = std::collections::BTreeSet::new();
        for (bucket, contributor) in active {
            if let Some(i) = at(bucket) {
                points[i].active_contributors += 1;
                anywhere.insert(contributor);
            }
        }
        Ok(SeriesView {
            project_id,
            bucket: query.bucket,
            tz: tz_name,
            from: cover.starts[0],
            to: cover.end,
            points,
            active_contributors: anywhere.len() as i64,
        })
    }
}

/// Agreed ÷ settled votes, none while no vote is settled.
fn agreement(decisions: &[DecisionFigures]) -> Option<f64> {
    let settled: i64 = decisions.iter().map(|d| d.settled).sum();
    let agreed: i64 = decisions.iter().map(|d| d.agreed).sum();
    (settled > 0).then(|| agreed as f64 / settled as f64)
}
