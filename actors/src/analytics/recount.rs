//! `alta admin recount`: each project's rollups rebuilt from the base tables inside the
//! project's actor (so no change of the project runs meanwhile), reporting every row
//! that differed.

use super::AnalyticsService;
use serde::Serialize;
use uuid::Uuid;

use crate::{
    authz::{self, Action},
    context::{Principal, RequestContext},
    error::EngineError,
    project_actor::{Check, InProject, Transition},
    store::{
        self,
        rollups::{
            ContributorHour, CountFigure, CountRollup, DecisionRollup, HourRollup, ItemRollup,
            LabelRollup, VerdictTimeRollup,
        },
    },
};

/// What a recount of one project found and corrected.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProjectRecount {
    pub project_id: Uuid,
    /// Rollup rows (contributor × kind × state, reviewer × decision × outcome × reason)
    /// that were wrong or missing, and stored rows that should not have been there.
    pub corrected_rows: usize,
    /// What differed, one line per row.
    pub differences: Vec<String>,
}

/// Every project's recount.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecountReport {
    pub projects: Vec<ProjectRecount>,
}

impl RecountReport {
    pub fn corrected_rows(&self) -> usize {
        self.projects.iter().map(|p| p.corrected_rows).sum()
    }
}

/// The lines for rows that differ between `stored` and `counted` (both sorted by key).
fn differences<T: PartialEq + std::fmt::Debug, K: Ord>(
    what: &str,
    stored: &[T],
    counted: &[T],
    key: impl Fn(&T) -> K,
) -> Vec<String> {
    let mut out = Vec::new();
    for row in counted {
        match stored.iter().find(|s| key(s) == key(row)) {
            Some(s) if s == row => {}
            Some(s) => out.push(format!("{what}: stored {s:?}, counted {row:?}")),
            None => out.push(format!("{what}: missing {row:?}")),
        }
    }
    for row in stored {
        if !counted.iter().any(|c| key(c) == key(row)) {
            out.push(format!("{what}: stored {row:?}, counted nothing"));
        }
    }
    out
}

/// Rebuild one project's rollups (the engine's own work).
struct Recount;

impl Transition for Recount {
    type Out = ProjectRecount;

    fn check(&self, _: &Principal) -> Check {
        // Deleted projects are recounted too: their figures come back on restore.
        Check::Itself
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<ProjectRecount, EngineError> {
        authz::authorize(at.principal, Action::ReadPlatformAnalytics)?;
        let id = at.id();
        at.project()?;
        let stored_items = store::rollups::stored_items(at.tx(), id).await?;
        let counted_items = store::rollups::counted_items(at.tx(), id).await?;
        let stored_decisions = store::rollups::stored_decisions(at.tx(), id).await?;
        let counted_decisions = store::rollups::counted_decisions(at.tx(), id).await?;
        let stored_hours = store::rollups::stored_hours(at.tx(), id).await?;
        let counted_hours = store::rollups::counted_hours(at.tx(), id).await?;
        let stored_times = store::rollups::stored_verdict_times(at.tx(), id).await?;
        let counted_times = store::rollups::counted_verdict_times(at.tx(), id).await?;
        let stored_active = store::rollups::stored_contributor_hours(at.tx(), id).await?;
        let counted_active = store::rollups::counted_contributor_hours(at.tx(), id).await?;
        let mut found = differences("items", &stored_items, &counted_items, |r: &ItemRollup| {
            (r.contributor_id, r.kind.clone(), r.status.clone())
        });
        found.extend(differences(
            "decisions",
            &stored_decisions,
            &counted_decisions,
            |r: &DecisionRollup| {
                (
                    r.reviewer_id,
                    r.decision.clone(),
                    r.outcome.clone(),
                    r.reason_code.clone(),
                )
            },
        ));
        found.extend(differences(
            "hours",
            &stored_hours,
            &counted_hours,
            |r: &HourRollup| (r.event.clone(), r.hour),
        ));
        found.extend(differences(
            "verdict times",
            &stored_times,
            &counted_times,
            |r: &VerdictTimeRollup| (r.verdict.clone(), r.bucket),
        ));
        found.extend(differences(
            "contributor hours",
            &stored_active,
            &counted_active,
            |r: &ContributorHour| (r.contributor_id, r.hour),
        ));
        let stored_labels = store::rollups::stored_labels(at.tx(), id).await?;
        let counted_labels = store::rollups::counted_labels(at.tx(), id).await?;
        found.extend(differences(
            "labels",
            &stored_labels,
            &counted_labels,
            |r: &LabelRollup| (r.field.clone(), r.value.clone(), r.hour),
        ));
        let mut counts = Vec::new();
        for figure in CountFigure::ALL {
            let stored = store::rollups::stored_counts(at.tx(), id, figure).await?;
            let counted = store::rollups::counted_counts(at.tx(), id, figure).await?;
            found.extend(differences(
                figure.name(),
                &stored,
                &counted,
                |r: &CountRollup| (r.group.clone(), r.name.clone()),
            ));
            counts.push((figure, counted));
        }
        if !found.is_empty() {
            store::rollups::replace(
                at.tx(),
                id,
                &counted_items,
                &counted_decisions,
                &counted_hours,
                &counted_times,
                &counted_active,
            )
            .await?;
            store::rollups::replace_labels(at.tx(), id, &counted_labels).await?;
            for (figure, rows) in &counts {
                store::rollups::replace_counts(at.tx(), id, *figure, rows).await?;
            }
            at.audit(
                "analytics.recounted",
                ("project", id.to_string()),
                serde_json::json!({"corrected_rows": found.len()}),
            );
        }
        Ok(ProjectRecount {
            project_id: id,
            corrected_rows: found.len(),
            differences: found,
        })
    }
}

impl AnalyticsService {
    /// Rebuild the rollups of `project` (or of every project, deleted ones included)
    /// from the base tables: the operator's `alta admin recount`, run as the engine.
    pub async fn recount(
        &self,
        project: Option<Uuid>,
        ctx: &RequestContext,
    ) -> Result<RecountReport, EngineError> {
        let principal = &Principal::system();
        let projects = match project {
            Some(id) => vec![id],
            None => store::projects::all_ids(&self.deps.db).await?,
        };
        let mut report = RecountReport::default();
        for id in projects {
            let one = self.apply_in_project(id, principal, ctx, Recount).await?;
            report.projects.push(one);
        }
        Ok(report)
    }
}
