//! Processing: the OCR and transcription job handlers. Each takes an item's job, moves
//! the item through the state machine (`items::state`), asks an engine for its text and
//! records the outcome: the machine revision of the text and `ready`, or
//! `processing_failed` with a reason code. An engine that cannot read a file is an
//! outcome, not a job failure; only transient trouble (the database, a remote API)
//! retries the job.

pub mod local_ocr;
pub mod google;

use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use self::local_ocr::{ExtractError, Extraction, LocalOcrConfig};
use crate::{
    engine::Deps,
    items::{
        KIND_OCR, KIND_TRANSCRIPTION,
        state::{ItemEvent, next_strs},
    },
    jobs::worker::{JobFailure, JobHandler},
    metrics as m,
    store::{self, items::ItemRow, jobs::JobRow, texts::TextRow},
};

/// Text an engine produced.
#[derive(Debug, Clone)]
pub struct MachineText {
    pub engine: &'static str,
    pub text: String,
    pub pages: Option<Vec<String>>,
    /// Word timings and confidences (transcripts).
    pub words: Option<Value>,
    pub confidence: Option<f64>,
}

impl From<Extraction> for MachineText {
    fn from(e: Extraction) -> Self {
        Self {
            engine: e.engine,
            text: e.text,
            pages: Some(e.pages),
            words: None,
            confidence: e.confidence,
        }
    }
}

/// Why an item has no text: a stable code and a sentence for people.
#[derive(Debug, Clone)]
pub struct NoText {
    pub code: &'static str,
    pub message: String,
}

/// The job's item, if the job is still the item's current one and it may start.
async fn start(deps: &Deps, job: &JobRow) -> Result<Option<ItemRow>, JobFailure> {
    let Some(item_id) = job
        .payload
        .0
        .get("item_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
    else {
        tracing::error!(job_id = %job.id, "processing job without an item id; dropped");
        return Ok(None);
    };
    let Some(item) = store::items::find_any(&deps.db, item_id).await? else {
        return Ok(None);
    };
    // Deleted meanwhile, or superseded by a reprocess: nothing to do.
    if item.job_id != Some(job.id) {
        return Ok(None);
    }
    let (from, to) = next_strs(ItemEvent::ProcessingStarted);
    let mut tx = deps.db.begin().await?;
    let moved =
        store::items::set_status(&mut tx, item.id, &from, to, None, None, deps.clock.now()).await?;
    tx.commit().await?;
    // Already finished by an earlier run of this job (its lease had expired).
    Ok(moved.then_some(item))
}

/// Record what the engine said, once: a second run of the same job adds nothing.
async fn finish(
    deps: &Deps,
    job: &JobRow,
    item: &ItemRow,
    outcome: Result<MachineText, NoText>,
) -> Result<(), JobFailure> {
    let now = deps.clock.now();
    let mut tx = deps.db.begin().await?;
    let kind = job.kind.clone();
    match outcome {
        Ok(text) => {
            let row = TextRow {
                id: Uuid::now_v7(),
                item_id: item.id,
                revision: 0,
                source: "machine".into(),
                engine: Some(text.engine.into()),
                author_id: None,
                job_id: Some(job.id),
                text: text.text,
                pages: text.pages.map(|p| sqlx::types::Json(Value::from(p))),
                words: text.words.map(sqlx::types::Json),
                confidence: text.confidence,
                created_at: now,
            };
            store::texts::add_revision(&mut tx, &row).await?;
            let (from, to) = next_strs(ItemEvent::ProcessingSucceeded);
            store::items::set_status(&mut tx, item.id, &from, to, None, None, now).await?;
            metrics::counter!(m::PROCESSING_OUTCOMES_TOTAL, "kind" => kind, "outcome" => "ready", "engine" => text.engine).increment(1);
        }
        Err(no_text) => {
            let (from, to) = next_strs(ItemEvent::ProcessingFailed);
            store::items::set_status(
                &mut tx,
                item.id,
                &from,
                to,
                None,
                Some((no_text.code, &no_text.message)),
                now,
            )
            .await?;
            metrics::counter!(m::PROCESSING_OUTCOMES_TOTAL, "kind" => kind, "outcome" => no_text.code, "engine" => "none").increment(1);
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The job gave up after its last attempt: the item says so.
async fn gave_up(deps: &Deps, job: &JobRow, error: &str) {
    let Some(item_id) = job
        .payload
        .0
        .get("item_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
    else {
        return;
    };
    let (from, to) = next_strs(ItemEvent::ProcessingFailed);
    let result = async {
        let mut tx = deps.db.begin().await?;
        store::items::set_status(
            &mut tx,
            item_id,
            &from,
            to,
            None,
            Some((
                "processing_gave_up",
                &format!("processing failed repeatedly: {error}"),
            )),
            deps.clock.now(),
        )
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(err) = result {
        tracing::error!(%item_id, error = %err, "could not mark the item as failed");
    }
}

/// Extracts the text of documents.
pub struct OcrHandler {
    local: LocalOcrConfig,
}

impl OcrHandler {
    pub fn new(deps: &Deps) -> Self {
        let mut local = LocalOcrConfig::discover();
        local.languages = deps.config.processing.ocr_languages.clone();
        local.timeout = deps.config.processing.ocr_timeout;
        if local.tesseract.is_none() {
            tracing::info!("tesseract not found: images and scanned PDFs will say no_ocr_engine");
        }
        Self { local }
    }
}

/// Errors worth another attempt (the disk, a crashed blocking task); the rest are the
/// file's own and final.
fn transient(err: &ExtractError) -> bool {
    matches!(err, ExtractError::Io(_) | ExtractError::Internal(_))
}

impl JobHandler for OcrHandler {
    const KIND: &'static str = KIND_OCR;

    fn concurrency(&self, deps: &Deps) -> usize {
        deps.config.processing.ocr_concurrency
    }

    async fn run(&self, deps: &Arc<Deps>, job: &JobRow) -> Result<(), JobFailure> {
        let Some(item) = start(deps, job).await? else {
            return Ok(());
        };
        let copy = deps.blobs.local_copy(&item.blob_key).await?;
        let outcome = match local_ocr::extract(&copy.path, &item.detected_type, &self.local).await {
            Ok(extraction) => Ok(MachineText::from(extraction)),
            Err(err) if transient(&err) => return Err(JobFailure(err.to_string())),
            Err(err) => Err(NoText {
                code: err.code(),
                message: err.to_string(),
            }),
        };
        finish(deps, job, &item, outcome).await
    }

    async fn gave_up(&self, deps: &Arc<Deps>, job: &JobRow, error: &str) {
        gave_up(deps, job, error).await
    }
}

/// Transcribes recordings.
pub struct TranscriptionHandler;

impl JobHandler for TranscriptionHandler {
    const KIND: &'static str = KIND_TRANSCRIPTION;

    fn concurrency(&self, deps: &Deps) -> usize {
        deps.config.processing.transcription_concurrency
    }

    async fn run(&self, deps: &Arc<Deps>, job: &JobRow) -> Result<(), JobFailure> {
        let Some(item) = start(deps, job).await? else {
            return Ok(());
        };
        // No speech-to-text engine is configured here: the recording waits for a person.
        let outcome = Err(NoText {
            code: "no_transcription_engine",
            message: "no speech-to-text engine is configured; write the transcript by hand \
                      (PUT /api/voice/{id}/transcript)"
                .into(),
        });
        finish(deps, job, &item, outcome).await
    }

    async fn gave_up(&self, deps: &Arc<Deps>, job: &JobRow, error: &str) {
        gave_up(deps, job, error).await
    }
}
