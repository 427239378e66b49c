//! The review monitor: on a timer, mails each contributor one digest of their items
//! that need changes (at most one per `digest_min_gap`, unless they opted out), and
//! refreshes the review gauges (pending items and the oldest pending age per project).

use super::ReviewService;
use std::{collections::HashSet, sync::Arc};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use uuid::Uuid;

use crate::{
    change::Change,
    change::enqueue_mail,
    deps::Deps,
    domain::MailJob,
    domain::{DataKind, ItemStatus},
    error::EngineError,
    metrics as m,
    store::{self, reviews::NoticeRow},
};

pub enum ReviewMonitorMsg {
    Tick,
}

pub struct ReviewMonitor;

pub struct ReviewMonitorState {
    deps: Arc<Deps>,
    /// Projects given a pending gauge last time, so an emptied queue reads 0.
    reported: HashSet<Uuid>,
}

impl Actor for ReviewMonitor {
    type Msg = ReviewMonitorMsg;
    type State = ReviewMonitorState;
    type Arguments = Arc<Deps>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        deps: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(deps.config.review.digest_interval, || {
            ReviewMonitorMsg::Tick
        });
        Ok(ReviewMonitorState {
            deps,
            reported: HashSet::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ReviewMonitorMsg::Tick => {
                if let Err(err) = send_digests(&state.deps).await {
                    tracing::warn!(error = %err, "review digests failed; retrying next tick");
                }
                if let Err(err) = refresh_gauges(&state.deps, &mut state.reported).await {
                    tracing::warn!(error = %err, "review gauges not refreshed");
                }
            }
        }
        Ok(())
    }
}

/// Contributors looked at per tick; the rest wait for the next one.
const USERS_PER_TICK: i64 = 200;

/// Queue one digest mail for each contributor who has unsent notices and had no digest
/// within the gap. Returns how many mails were queued.
pub async fn send_digests(deps: &Deps) -> Result<usize, EngineError> {
    let now = deps.clock.now();
    let gap = chrono::Duration::from_std(deps.config.review.digest_min_gap)
        .unwrap_or(chrono::Duration::hours(1));
    let sent_before = now - gap;
    let mut sent = 0;
    for user in store::reviews::digest_due(&deps.db, sent_before, USERS_PER_TICK).await? {
        let mut change = Change::begin(&deps.db).await?;
        let (notices, outcome) = match store::reviews::mail_preference(&mut change, user).await? {
            Some((email, true)) => {
                // The conditional write makes one node (or tick) the sender for this gap.
                if !store::reviews::take_digest_slot(&mut change, user, sent_before, now).await? {
                    continue;
                }
                let notices = store::reviews::unsent_notices(&mut change, user).await?;
                if notices.is_empty() {
                    continue;
                }
                enqueue_mail(deps, &mut change, digest_mail(deps, &email, &notices))?;
                sent += 1;
                (notices, "sent")
            }
            // Opted out (or gone): the notices are dropped, not kept for later, and the
            // digest slot stays as it was (nothing went out).
            _ => (
                store::reviews::unsent_notices(&mut change, user).await?,
                "opted_out",
            ),
        };
        let ids: Vec<Uuid> = notices.iter().map(|n| n.id).collect();
        store::reviews::mark_notices_sent(&mut change, &ids, now).await?;
        change.commit().await?;
        metrics::counter!(m::REVIEW_DIGESTS_TOTAL, "outcome" => outcome).increment(1);
    }
    if sent > 0 {
        deps.job_waker.wake(crate::domain::KIND_MAIL);
    }
    Ok(sent)
}

fn digest_mail(deps: &Deps, to: &str, notices: &[NoticeRow]) -> MailJob {
    let mut text = format!(
        "Hello,\n\nReviewers asked for changes on {} of your item{}:\n\n",
        notices.len(),
        if notices.len() == 1 { "" } else { "s" }
    );
    for n in notices {
        let name = n.item_title.as_deref().unwrap_or(&n.file_name);
        let path = if n.kind == "audio" {
            "voice"
        } else {
            "documents"
        };
        text.push_str(&format!(
            "- {project}: {name}\n  Reasons: {reasons}\n  {url}/api/{path}/{id}/reviews\n",
            project = n.project_name,
            reasons = n.reasons,
            url = deps.config.public_url,
            id = n.item_id,
        ));
    }
    text.push_str(
        "\nCorrect the text or replace the file, then submit the item for review again.\n\n\
         You get at most one of these mails an hour. To stop them, turn off review mail \
         in your notification settings (PUT /api/auth/me/notifications).\n",
    );
    MailJob {
        to: to.to_owned(),
        subject: format!(
            "{} item{} need{} changes",
            notices.len(),
            if notices.len() == 1 { "" } else { "s" },
            if notices.len() == 1 { "s" } else { "" }
        ),
        text,
        template: "review_changes_requested".into(),
    }
}

/// Pending items and the age of the oldest, per project with a queue.
async fn refresh_gauges(deps: &Deps, reported: &mut HashSet<Uuid>) -> Result<(), EngineError> {
    let now = deps.clock.now();
    let stats = store::reviews::pending_stats(&deps.db).await?;
    let mut current = HashSet::with_capacity(stats.len());
    for s in stats {
        let project = s.project_id.to_string();
        metrics::gauge!(m::REVIEW_PENDING_ITEMS, "project_id" => project.clone())
            .set(s.pending as f64);
        let age = s
            .oldest_submitted_at
            .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
        metrics::gauge!(m::REVIEW_OLDEST_PENDING_AGE_SECONDS, "project_id" => project).set(age);
        current.insert(s.project_id);
    }
    for gone in reported.difference(&current) {
        let project = gone.to_string();
        metrics::gauge!(m::REVIEW_PENDING_ITEMS, "project_id" => project.clone()).set(0.0);
        metrics::gauge!(m::REVIEW_OLDEST_PENDING_AGE_SECONDS, "project_id" => project).set(0.0);
    }
    *reported = current;
    refresh_collection_gauges(deps).await
}

/// The platform's items by kind and state, and audio seconds by state, from the
/// analytics rollups (a few rows, not the items). Every kind × state is set, zeros
/// included, so a state that empties reads 0 rather than its last value.
async fn refresh_collection_gauges(deps: &Deps) -> Result<(), EngineError> {
    let rows = store::rollups::items(&deps.db, &store::rollups::Scope::Platform, None).await?;
    for status in ItemStatus::ALL {
        let mut audio_ms = 0;
        for kind in [DataKind::Document, DataKind::Audio] {
            let row = rows
                .iter()
                .find(|r| r.kind == kind.as_str() && r.status == status.as_str());
            let items = row.map_or(0, |r| r.items);
            audio_ms += row.map_or(0, |r| r.audio_ms);
            metrics::gauge!(m::COLLECTION_ITEMS, "kind" => kind.as_str().to_owned(), "status" => status.as_str())
                .set(items as f64);
        }
        metrics::gauge!(m::COLLECTION_AUDIO_SECONDS, "status" => status.as_str())
            .set(audio_ms as f64 / 1000.0);
    }
    Ok(())
}

impl ReviewService {
    /// Send due digests now (tests; the monitor does it on its timer).
    pub async fn send_review_digests(&self) -> Result<usize, EngineError> {
        send_digests(&self.deps).await
    }
}
