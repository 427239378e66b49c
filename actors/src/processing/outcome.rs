//! What processing changes on an item, as transitions of the item's project: the job
//! starts (`uploaded` → `processing`), its outcome is recorded (the machine's text and
//! `ready`, or `processing_failed`) together with the job's completion, in one
//! transaction, or it gives up. The project's actor applies them like any other
//! transition, so it stays the one writer of its items, and a worker's outcome cannot
//! land on an item that was deleted or reprocessed meanwhile.

use serde_json::Value;
use uuid::Uuid;

use super::{MachineText, NoText};
use crate::{
    ErrorCode,
    context::Principal,
    domain::webhook::WebhookEvent,
    error::EngineError,
    items::ItemSubject,
    items::state::{ItemEvent, next_strs},
    metrics as m,
    project_actor::{Check, InProject, Touches, Transition},
    store::{
        self,
        items::ItemRow,
        outcomes::{KeptOutcome, Written},
        texts::TextRow,
    },
};

/// The item `item_id` of this project while `job_id` is its current job. Processing
/// goes on in a deleted project (its items stay, ready for a restore); only a project
/// that does not exist is refused (404).
async fn current_item(
    at: &mut InProject<'_>,
    item_id: Uuid,
    job_id: Uuid,
) -> Result<Option<ItemRow>, EngineError> {
    at.project()?;
    let project = at.id();
    Ok(at
        .live_item(item_id)
        .await?
        .filter(|item| item.project_id == project && item.job_id == Some(job_id)))
}

/// A job begins on its item. `None`: nothing to do (the item was deleted or given a
/// newer job, or an earlier run of this job already finished it).
#[derive(Clone)]
pub struct StartProcessing {
    pub job_id: Uuid,
    pub item_id: Uuid,
}

impl Transition for StartProcessing {
    crate::replayable!();

    fn touches(&self) -> Touches {
        Touches::Item {
            id: self.item_id,
            read_ahead: true,
        }
    }

    type Out = Option<ItemRow>;

    fn check(&self, _: &Principal) -> Check {
        Check::Itself // the engine's own work; see `current_item`
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<Option<ItemRow>, EngineError> {
        let Some(item) = current_item(at, self.item_id, self.job_id).await? else {
            return Ok(None);
        };
        let (from, to) = next_strs(ItemEvent::ProcessingStarted);
        let now = at.now;
        let moved = store::items::set_status(at.tx(), item.id, &from, to, None, None, now).await?;
        Ok(moved.then_some(item))
    }
}

/// The job is handed over to the OCR lane (same job, kind `ocr_image`, queued again with
/// its attempt here not counted); the item stays `processing`. `false`: this worker no
/// longer holds the job, and nothing changed.
#[derive(Clone)]
pub struct HandOverToOcr {
    pub job_id: Uuid,
    pub item_id: Uuid,
    pub worker_id: String,
}

impl Transition for HandOverToOcr {
    crate::replayable!();

    fn touches(&self) -> Touches {
        Touches::NoExistingItem // the job's kind only
    }

    type Out = bool;

    fn check(&self, _: &Principal) -> Check {
        Check::Itself // the engine's own work; see `current_item`
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<bool, EngineError> {
        let payload = serde_json::json!({"item_id": self.item_id, "project_id": at.id()});
        let now = at.now;
        Ok(store::jobs::hand_over(
            at.tx(),
            self.job_id,
            &self.worker_id,
            super::KIND_OCR_IMAGE,
            payload,
            now,
        )
        .await?)
    }
}

/// How a recorded outcome ended for the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The outcome is on the item and the job is done, in one commit.
    Done,
    /// The item no longer waits for this job (deleted, reprocessed): the job is done and
    /// the outcome dropped.
    Dropped,
}

/// A job's outcome: the machine's text and `ready`, or `processing_failed` with its
/// reason; and the job marked done by the worker that holds it, in the same commit. A
/// worker whose lease was lost gets 409 `lease_lost` and writes nothing (the worker now
/// holding the job records its own outcome).
#[derive(Clone)]
pub struct RecordProcessing {
    pub job_id: Uuid,
    pub job_kind: String,
    pub item_id: Uuid,
    pub worker_id: String,
    pub outcome: Result<MachineText, NoText>,
}

impl Transition for RecordProcessing {
    crate::replayable!();

    fn touches(&self) -> Touches {
        Touches::Item {
            id: self.item_id,
            read_ahead: false, // its one statement reads the item
        }
    }

    type Out = Recorded;

    fn check(&self, _: &Principal) -> Check {
        Check::Itself // the engine's own work; see `current_item`
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<Recorded, EngineError> {
        at.project()?; // processing goes on in a deleted project, not in none
        let (job_id, item_id, now) = (self.job_id, self.item_id, at.now);
        // The machine's text moves into its row (it may be megabytes: no copy).
        let (event, engine, label, text, no_text) = match self.outcome {
            Ok(text) => {
                let engine = text.engine;
                (
                    ItemEvent::ProcessingSucceeded,
                    engine,
                    "ready",
                    Some(text),
                    None,
                )
            }
            Err(no_text) => {
                let code = no_text.code;
                (
                    ItemEvent::ProcessingFailed,
                    "none",
                    code,
                    None,
                    Some(no_text),
                )
            }
        };
        let error = no_text.map(|n| (n.code, n.message));
        let text = text.map(|text| TextRow {
            id: Uuid::now_v7(),
            item_id,
            revision: 0, // numbered by the insert
            source: "machine".into(),
            engine: Some(text.engine.into()),
            author_id: None,
            job_id: Some(job_id),
            text: text.text,
            pages: text.pages.map(|p| sqlx::types::Json(Value::from(p))),
            words: text.words.map(sqlx::types::Json),
            confidence: text.confidence,
            created_at: now,
        });
        let (from, to) = next_strs(event);
        let outcome = KeptOutcome {
            job_id,
            worker: self.worker_id,
            kind: self.job_kind.clone(),
            item_id,
            project_id: at.id(),
            from,
            to,
            error,
            text,
            now,
        };
        let announced = match event {
            ItemEvent::ProcessingSucceeded => WebhookEvent::ItemReady,
            _ => WebhookEvent::ItemProcessingFailed,
        };
        // On a group's fast path the outcome is kept for the group's kept writes (one
        // call for all its outcomes), which check that it went through (the job still
        // this worker's, the item still waiting for it, no annotation whose spans a new
        // text must carry); not when a webhook takes the event (its body reads the item
        // as updated).
        if at.change.defers_rows() && at.subscribers(announced).await?.is_empty() {
            at.change.keep_outcome(outcome);
        } else {
            match store::outcomes::record_outcome(at.tx(), &outcome.write()).await? {
                Written::LeaseLost => {
                    return Err(EngineError::Conflict {
                        code: ErrorCode::LeaseLost,
                        message: format!("job {job_id} is no longer held by this worker"),
                    });
                }
                // The item no longer waits for this job (deleted, reprocessed, or an
                // earlier run of the job recorded it): the job is done, the outcome
                // dropped.
                Written::Dropped => return Ok(Recorded::Dropped),
                Written::Recorded { annotated } => {
                    if annotated {
                        crate::items::carry_spans(at, item_id).await?;
                    }
                }
            }
            at.announce(announced, ItemSubject::Item(item_id)).await?;
        }
        let kind = self.job_kind;
        at.change.after_commit(move || {
            metrics::counter!(m::PROCESSING_OUTCOMES_TOTAL, "kind" => kind, "outcome" => label, "engine" => engine)
                .increment(1);
        });
        Ok(Recorded::Done)
    }
}

/// The job failed its last attempt: its item says so (when the job is still its own).
#[derive(Clone)]
pub struct ProcessingGaveUp {
    pub job_id: Uuid,
    pub item_id: Uuid,
    pub error: String,
}

impl Transition for ProcessingGaveUp {
    crate::replayable!();

    fn touches(&self) -> Touches {
        Touches::Item {
            id: self.item_id,
            read_ahead: true,
        }
    }

    type Out = ();

    fn check(&self, _: &Principal) -> Check {
        Check::Itself // the engine's own work; see `current_item`
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(), EngineError> {
        let Some(item) = current_item(at, self.item_id, self.job_id).await? else {
            return Ok(());
        };
        let (from, to) = next_strs(ItemEvent::ProcessingFailed);
        let message = format!("processing failed repeatedly: {}", self.error);
        let error = Some(("processing_gave_up", message.as_str()));
        let now = at.now;
        if store::items::set_status(at.tx(), item.id, &from, to, None, error, now).await? {
            at.announce(
                WebhookEvent::ItemProcessingFailed,
                ItemSubject::Item(item.id),
            )
            .await?;
        }
        Ok(())
    }
}
