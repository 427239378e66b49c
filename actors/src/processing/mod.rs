//! Processing: the OCR and transcription job handlers. Each takes an item's job, moves
//! the item through the state machine (`items::state`), asks an engine for its text and
//! records the outcome: the machine revision of the text and `ready`, or
//! `processing_failed` with a reason code. The item's changes are transitions of its
//! project (`outcome.rs`), applied by the project's actor; the outcome and the job's
//! completion commit together. An engine that cannot read a file is an
//! outcome, not a job failure; only transient trouble (the database, a remote API)
//! retries the job.

pub mod google;
pub mod local_ocr;
mod outcome;
pub mod sandbox;

use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use self::local_ocr::{Extraction, LocalOcrConfig};
use self::outcome::{HandOverToOcr, ProcessingGaveUp, RecordProcessing, StartProcessing};
use self::sandbox::SandboxConfig;
use crate::{
    ErrorCode,
    context::{Principal, RequestContext},
    deps::Deps,
    domain::ItemStatus,
    error::EngineError,
    items::{KIND_OCR, KIND_TRANSCRIPTION},
    jobs::worker::{JobEnd, JobFailure, JobHandler},
    metrics as m,
    project_actor::{Projects, Transition},
    store::{self, items::ItemRow, jobs::JobRow},
};

/// The OCR lane's job kind: images and scanned PDFs. Every document's job starts as
/// `ocr` (the text lane); the text lane hands such a file's job over (same job, new kind)
/// so that OCR never holds up text, DOCX and text-layer PDFs.
pub const KIND_OCR_IMAGE: &str = "ocr_image";

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

/// Apply a processing transition in the item's project, as the engine itself.
/// `None` when there is no such project.
async fn in_project<T: Transition>(
    projects: &Projects,
    project_id: Uuid,
    transition: T,
) -> Result<Option<T::Out>, EngineError> {
    let ctx = RequestContext::internal("processing");
    match projects
        .apply(project_id, &Principal::system(), &ctx, transition)
        .await
    {
        Ok(out) => Ok(Some(out)),
        Err(EngineError::NotFound { what: "project" }) => Ok(None),
        Err(err) => Err(err),
    }
}

/// The job's item, once the job has begun on it (`uploaded` → `processing`, in its
/// project's actor). `None`: nothing to do (the item was deleted or given a newer job,
/// or an earlier run of this job already finished it).
async fn start(
    projects: &Projects,
    deps: &Deps,
    job: &JobRow,
) -> Result<Option<ItemRow>, JobFailure> {
    let Some(item_id) = crate::jobs::item_of(&job.payload) else {
        tracing::error!(job_id = %job.id, "processing job without an item id; dropped");
        return Ok(None);
    };
    // A read first: a job whose item moved on costs its project's actor nothing.
    let Some(item) = store::items::find_any(&deps.db, item_id).await? else {
        return Ok(None);
    };
    if item.job_id != Some(job.id) {
        return Ok(None);
    }
    // Plain text and Markdown are read here, in well under a millisecond for most
    // (a bounded read, no parser): such an item goes from `uploaded` to its outcome in
    // one transition of its project, without a `processing` step that nobody could see
    // and that would cost the project's actor a commit of its own.
    if job.kind == KIND_OCR
        && item.status == ItemStatus::Uploaded
        && local_ocr::is_plain_text(&item.detected_type)
    {
        return Ok(Some(item));
    }
    let start = StartProcessing {
        job_id: job.id,
        item_id,
    };
    Ok(in_project(projects, item.project_id, start)
        .await?
        .flatten())
}

/// The item of a job handed over to the OCR lane: still `processing`, and this job is
/// its current one. (After a super admin's retry it is back to `uploaded`: start again.)
async fn start_handed_off(
    projects: &Projects,
    deps: &Deps,
    job: &JobRow,
) -> Result<Option<ItemRow>, JobFailure> {
    if let Some(item_id) = crate::jobs::item_of(&job.payload)
        && let Some(item) = store::items::find_any(&deps.db, item_id).await?
        && item.job_id == Some(job.id)
        && item.status == ItemStatus::Processing
    {
        return Ok(Some(item));
    }
    start(projects, deps, job).await
}

/// Hand the item's job over to the OCR lane, in its project's actor ([`HandOverToOcr`]):
/// the same job (the one the upload named) is queued again as `ocr_image`, with the
/// item's project for the lane's per-project limit, its attempt here not counted. The
/// item stays `processing`.
async fn hand_off(
    projects: &Projects,
    deps: &Deps,
    job: &JobRow,
    item: &ItemRow,
) -> Result<JobEnd, JobFailure> {
    let hand_over = HandOverToOcr {
        job_id: job.id,
        item_id: item.id,
        worker_id: deps.worker_id.clone(),
    };
    match in_project(projects, item.project_id, hand_over).await? {
        Some(true) => {
            metrics::counter!(m::JOBS_ENQUEUED_TOTAL, "kind" => KIND_OCR_IMAGE).increment(1);
            deps.job_waker.wake(KIND_OCR_IMAGE);
            Ok(JobEnd::HandedOver)
        }
        Some(false) => Ok(JobEnd::LeaseLost),
        None => Ok(JobEnd::Ran), // the project is gone
    }
}

/// Record what the engine said, with the job's completion, in one commit of the
/// item's project ([`RecordProcessing`]).
async fn finish(
    projects: &Projects,
    deps: &Deps,
    job: &JobRow,
    item: &ItemRow,
    outcome: Result<MachineText, NoText>,
) -> Result<JobEnd, JobFailure> {
    let record = RecordProcessing {
        job_id: job.id,
        job_kind: job.kind.clone(),
        item_id: item.id,
        worker_id: deps.worker_id.clone(),
        outcome,
    };
    match in_project(projects, item.project_id, record).await {
        Ok(Some(_)) => Ok(JobEnd::Recorded),
        // The project is gone: the job is simply done.
        Ok(None) => Ok(JobEnd::Ran),
        Err(EngineError::Conflict {
            code: ErrorCode::LeaseLost,
            ..
        }) => Ok(JobEnd::LeaseLost),
        Err(err) => Err(JobFailure(err.to_string())),
    }
}

/// The job gave up after its last attempt: the item says so.
async fn gave_up(projects: &Projects, deps: &Deps, job: &JobRow, error: &str) {
    let Some(item_id) = crate::jobs::item_of(&job.payload) else {
        return;
    };
    let result = async {
        let Some(item) = store::items::find_any(&deps.db, item_id).await? else {
            return Ok(());
        };
        let gave_up = ProcessingGaveUp {
            job_id: job.id,
            item_id,
            error: error.to_owned(),
        };
        in_project(projects, item.project_id, gave_up)
            .await
            .map(|_| ())
    }
    .await;
    if let Err(err) = result {
        tracing::error!(%item_id, error = %err, "could not mark the item as failed");
    }
}

/// What both OCR lanes extract with: local tools (in a limited child process) and
/// Google Document AI when configured.
pub struct Extractor {
    local: LocalOcrConfig,
    /// Local extraction runs in a limited child process.
    sandbox: SandboxConfig,
    document_ai: Option<google::DocumentAi>,
}

/// Google engines take files inline up to about this size; larger ones go by GCS URI.
const INLINE_MAX_BYTES: i64 = 15 * 1024 * 1024;

fn google_http() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())
}

async fn google_auth(g: &crate::config::GoogleEngines) -> Result<google::GoogleAuth, String> {
    google::GoogleAuth::from_key_file(google_http()?, &g.credentials)
        .await
        .map_err(|e| format!("GOOGLE_APPLICATION_CREDENTIALS: {e}"))
}

impl Extractor {
    pub async fn new(deps: &Deps) -> Result<Self, String> {
        let mut local = LocalOcrConfig::discover();
        let p = &deps.config.processing;
        local.languages = p.ocr_languages.clone();
        local.timeout = p.ocr_timeout;
        local.max_pages = p.pdf_max_pages;
        local.max_page_content_bytes = p.pdf_max_page_content_bytes;
        local.page_timeout = p.ocr_page_timeout;
        let executable = match &p.extract_executable {
            Some(exe) => exe.clone(),
            None => std::env::current_exe()
                .map_err(|e| format!("EXTRACT_EXECUTABLE: cannot find this executable: {e}"))?,
        };
        let sandbox = SandboxConfig {
            executable,
            memory_bytes: p.extract_memory_bytes,
            cpu_seconds: p.extract_cpu_seconds,
        };
        let document_ai = match &deps.config.processing.google {
            Some(g) => match &g.document_ai_processor {
                Some(processor) => Some(google::DocumentAi::new(
                    google_http()?,
                    g.document_ai_endpoint.clone(),
                    processor.clone(),
                    google_auth(g).await?,
                )),
                None => None,
            },
            None => None,
        };
        if local.tesseract.is_none() && document_ai.is_none() {
            tracing::info!("no OCR engine (tesseract, Document AI): images and scans will say so");
        }
        Ok(Self {
            local,
            sandbox,
            document_ai,
        })
    }

    /// Whether the OCR lane can read a file of this type that has no text layer.
    fn can_ocr(&self, detected_type: &str) -> bool {
        self.document_ai.is_some()
            || (self.local.tesseract.is_some()
                && (is_image(detected_type) || self.local.pdftoppm.is_some()))
    }

    /// Local extraction with `cfg`: text, a final reason, or a retry. Files with a format
    /// to parse go to the limited child; plain text and Markdown are read here (a
    /// bounded read and a lossy UTF-8 decode, no parser), which spares the host a
    /// process per text document.
    async fn local(
        &self,
        cfg: &LocalOcrConfig,
        path: &std::path::Path,
        detected_type: &str,
    ) -> Result<Result<MachineText, NoText>, JobFailure> {
        let extracted = if local_ocr::is_plain_text(detected_type) {
            local_ocr::extract(path, detected_type, cfg).await
        } else {
            sandbox::extract_isolated(&self.sandbox, cfg, path, detected_type).await
        };
        match extracted {
            Ok(extraction) => Ok(Ok(MachineText::from(extraction))),
            Err(err) if err.is_transient() => Err(JobFailure(err.to_string())),
            Err(err) => Ok(Err(NoText {
                code: err.code(),
                message: err.to_string(),
            })),
        }
    }

    /// Read a PDF or image with Document AI.
    async fn remote(
        &self,
        ai: &google::DocumentAi,
        deps: &Deps,
        item: &ItemRow,
        path: &std::path::Path,
    ) -> Result<Result<MachineText, NoText>, JobFailure> {
        let mime = item.content_type.clone();
        let source = match deps.blobs.gcs_bucket() {
            Some(bucket) if item.size_bytes > INLINE_MAX_BYTES => google::DocSource::Gcs {
                uri: format!("gs://{bucket}/{}", item.blob_key),
                mime,
            },
            _ => google::DocSource::Inline {
                bytes: tokio::fs::read(path).await?.into(),
                mime,
            },
        };
        remote_outcome(ai.process(source).await)
    }
}

/// The text lane (kind `ocr`, every document starts here): plain text, Markdown, DOCX and
/// PDF text layers. Images, and PDFs without a text layer, are handed over to the OCR
/// lane ([`OcrImageHandler`]) when an OCR engine exists, so OCR never blocks text.
///
/// `JOB_CONCURRENCY_TEXT` bounds the files parsed at once in child processes (DOCX,
/// PDFs), each with its memory limit. The lane holds [`TEXT_JOBS_PER_EXTRACTION`] times as
/// many jobs: plain text and Markdown are read in the worker in well under a millisecond
/// and spend their run waiting for their project's commit, so one job per extraction
/// held the lane to a couple of hundred documents a second while uploads came at four
/// times that, and the queue only grew.
pub struct OcrHandler {
    x: Extractor,
    projects: Projects,
    extractions: tokio::sync::Semaphore,
}

/// Jobs the text lane holds for each file it may parse in a child process at once.
pub const TEXT_JOBS_PER_EXTRACTION: usize = 8;

impl OcrHandler {
    pub async fn new(deps: &Deps, projects: Projects) -> Result<Self, String> {
        Ok(Self {
            x: Extractor::new(deps).await?,
            projects,
            extractions: tokio::sync::Semaphore::new(deps.config.processing.text_concurrency),
        })
    }
}

/// The OCR lane (kind `ocr_image`): images and scanned PDFs, by tesseract or Document AI.
/// One project runs at most `OCR_MAX_RUNNING_PER_PROJECT` of these at once.
pub struct OcrImageHandler {
    x: Extractor,
    projects: Projects,
}

impl OcrImageHandler {
    pub async fn new(deps: &Deps, projects: Projects) -> Result<Self, String> {
        Ok(Self {
            x: Extractor::new(deps).await?,
            projects,
        })
    }
}

/// A remote engine's answer: text, a final reason, or a retry.
fn remote_outcome(
    result: Result<MachineText, google::RemoteError>,
) -> Result<Result<MachineText, NoText>, JobFailure> {
    match result {
        Ok(text) => Ok(Ok(text)),
        Err(err) if err.retryable => Err(JobFailure(err.to_string())),
        Err(err) => Ok(Err(NoText {
            code: err.code,
            message: err.message,
        })),
    }
}

fn is_image(detected_type: &str) -> bool {
    matches!(detected_type, "png" | "jpeg" | "tiff" | "webp")
}

impl JobHandler for OcrHandler {
    const KIND: &'static str = KIND_OCR;

    fn concurrency(&self, deps: &Deps) -> usize {
        deps.config.processing.text_concurrency * TEXT_JOBS_PER_EXTRACTION
    }

    async fn run(&self, deps: &Arc<Deps>, job: &JobRow) -> Result<JobEnd, JobFailure> {
        let Some(item) = start(&self.projects, deps, job).await? else {
            return Ok(JobEnd::Ran);
        };
        let detected = item.detected_type.as_str();
        if is_image(detected) && self.x.can_ocr(detected) {
            return hand_off(&self.projects, deps, job, &item).await;
        }
        let copy = deps.blobs.local_copy(&item.blob_key).await?;
        // No OCR here: that is the other lane's work.
        let mut text_only = self.x.local.clone();
        text_only.tesseract = None;
        // A file parsed in a child process waits for an extraction slot, and gives it back
        // before its outcome waits for the commit; plain text and Markdown are read here
        // and take none.
        let outcome = {
            let _slot = if local_ocr::is_plain_text(detected) {
                None
            } else {
                Some(
                    self.extractions
                        .acquire()
                        .await
                        .map_err(|e| JobFailure(e.to_string()))?,
                )
            };
            self.x.local(&text_only, &copy.path, detected).await?
        };
        match outcome {
            Err(no_text) if no_text.code == "no_text_layer" && self.x.can_ocr(detected) => {
                hand_off(&self.projects, deps, job, &item).await
            }
            outcome => finish(&self.projects, deps, job, &item, outcome).await,
        }
    }

    async fn gave_up(&self, deps: &Arc<Deps>, job: &JobRow, error: &str) {
        gave_up(&self.projects, deps, job, error).await
    }
}

impl JobHandler for OcrImageHandler {
    const KIND: &'static str = KIND_OCR_IMAGE;

    fn concurrency(&self, deps: &Deps) -> usize {
        deps.config.processing.ocr_concurrency
    }

    fn per_project_limit(&self, deps: &Deps) -> Option<usize> {
        Some(deps.config.processing.ocr_max_running_per_project)
    }

    async fn run(&self, deps: &Arc<Deps>, job: &JobRow) -> Result<JobEnd, JobFailure> {
        let Some(item) = start_handed_off(&self.projects, deps, job).await? else {
            return Ok(JobEnd::Ran);
        };
        let copy = deps.blobs.local_copy(&item.blob_key).await?;
        let outcome = match &self.x.document_ai {
            Some(ai) => self.x.remote(ai, deps, &item, &copy.path).await?,
            None => {
                self.x
                    .local(&self.x.local, &copy.path, &item.detected_type)
                    .await?
            }
        };
        finish(&self.projects, deps, job, &item, outcome).await
    }

    async fn gave_up(&self, deps: &Arc<Deps>, job: &JobRow, error: &str) {
        gave_up(&self.projects, deps, job, error).await
    }
}

/// Transcribes recordings with Google Speech-to-Text when configured; otherwise the
/// recording waits for a person.
pub struct TranscriptionHandler {
    speech: Option<(google::Speech, String)>,
    projects: Projects,
}

impl TranscriptionHandler {
    pub async fn new(deps: &Deps, projects: Projects) -> Result<Self, String> {
        let speech = match &deps.config.processing.google {
            Some(g) if g.speech => {
                let mut speech = google::Speech::new(
                    google_http()?,
                    g.speech_endpoint.clone(),
                    google_auth(g).await?,
                );
                speech.poll_interval = g.speech_poll_interval;
                Some((speech, g.speech_default_language.clone()))
            }
            _ => None,
        };
        Ok(Self { speech, projects })
    }
}

impl JobHandler for TranscriptionHandler {
    const KIND: &'static str = KIND_TRANSCRIPTION;

    fn concurrency(&self, deps: &Deps) -> usize {
        deps.config.processing.transcription_concurrency
    }

    async fn run(&self, deps: &Arc<Deps>, job: &JobRow) -> Result<JobEnd, JobFailure> {
        let Some(item) = start(&self.projects, deps, job).await? else {
            return Ok(JobEnd::Ran);
        };
        let Some((speech, default_language)) = &self.speech else {
            let outcome = Err(NoText {
                code: "no_transcription_engine",
                message: "no speech-to-text engine is configured; write the transcript by hand \
                          (PUT /api/voice/{id}/transcript)"
                    .into(),
            });
            return finish(&self.projects, deps, job, &item, outcome).await;
        };
        let analysis: Option<crate::media::audio::AudioAnalysis> = item
            .audio
            .as_ref()
            .and_then(|a| serde_json::from_value(a.0.clone()).ok());
        let duration = analysis.as_ref().map_or(0.0, |a| a.duration_seconds);
        let mut config = google::SpeechConfig::new(
            item.language
                .clone()
                .unwrap_or_else(|| default_language.clone()),
        );
        config.sample_rate_hertz = analysis.as_ref().map(|a| a.sample_rate);
        config.channels = analysis.as_ref().map(|a| a.channels);
        config.encoding = match item.detected_type.as_str() {
            "mp3" => Some("MP3".into()),
            "ogg" => Some("OGG_OPUS".into()),
            "webm" => Some("WEBM_OPUS".into()),
            _ => None,
        };
        let source = match deps.blobs.gcs_bucket() {
            Some(bucket) => google::AudioSource::Gcs {
                uri: format!("gs://{bucket}/{}", item.blob_key),
            },
            None => {
                let copy = deps.blobs.local_copy(&item.blob_key).await?;
                google::AudioSource::Inline {
                    bytes: tokio::fs::read(&copy.path).await?.into(),
                }
            }
        };
        let outcome = remote_outcome(speech.transcribe(source, config, duration).await)?;
        finish(&self.projects, deps, job, &item, outcome).await
    }

    async fn gave_up(&self, deps: &Arc<Deps>, job: &JobRow, error: &str) {
        gave_up(&self.projects, deps, job, error).await
    }
}
