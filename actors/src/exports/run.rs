//! The `export` job: one streaming path for every format. It walks the export's items
//! in id order a page at a time, renders each row as it comes, copies the files from
//! the blob store in the same order, and every second or so syncs its parts and keeps
//! a checkpoint (the last item, each part's length, the running figures) in the job's
//! payload. A run after a crash cuts the parts back to the checkpoint and goes on from
//! there, so no row is written twice; on another node (no parts there) it starts over.
//! The finished artifact is published to the blob store, then the export is marked
//! finished and the job done in one commit of the project's actor.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Instant,
};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    artifact::{MAIN, Parts},
    card::{self, Figures},
    manifest::{self, Record},
    transition::{FailExport, FinishExport},
};
use crate::{
    context::{Principal, RequestContext},
    deps::Deps,
    domain::export::{ExportFormat, ExportSpec, Split, pseudonym},
    error::EngineError,
    jobs::worker::{JobEnd, JobFailure, JobHandler},
    metrics as m,
    projects::Projects,
    store::{
        self,
        exports::{ExportRow, Published, Scan},
        items::ItemRow,
        jobs::JobRow,
    },
};

pub const KIND_EXPORT: &str = "export";


/// The payload of an `export` job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportJob {
    pub export_id: Uuid,
    pub project_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
}

/// Where a run got to, durably: items up to `after` are in the parts, whose synced
/// lengths are `parts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub after: Uuid,
    pub parts: BTreeMap<String, u64>,
    pub figures: Figures,
}

/// How a format lays its items out: which parts it writes, where a file goes, where
/// its row goes.
struct Layout<'a> {
    spec: &'a ExportSpec,
}

impl Layout<'_> {
    fn part_names(&self) -> Vec<String> {
        let mut names = vec![MAIN.to_owned()];
        match self.spec.format {
            ExportFormat::Hf => {
                for split in self.splits() {
                    names.push(format!("meta/{split}"));
                }
            }
            _ if self.spec.include_files => names.push("manifest".to_owned()),
            _ => {}
        }
        names
    }

    fn splits(&self) -> Vec<&'static str> {
        match self.spec.split {
            Some(_) => Split::NAMES.to_vec(),
            None => vec![""],
        }
    }

    /// The folder of an item's file (and of its metadata) in an hf export.
    fn hf_dir(split: Option<&'static str>) -> String {
        split.map(|s| format!("{s}/")).unwrap_or_default()
    }

    /// Where an item's file goes inside the archive, if the files travel.
    fn file_path(&self, item: &ItemRow, split: Option<&'static str>) -> Option<String> {
        match self.spec.format {
            ExportFormat::Hf => Some(format!(
                "{}{}",
                Self::hf_dir(split),
                manifest::file_name(item)
            )),
            _ if self.spec.include_files => Some(format!("files/{}", manifest::file_name(item))),
            _ => None,
        }
    }

    /// The part a row goes to, and its bytes.
    fn row(&self, record: &Record<'_>) -> std::io::Result<(String, Vec<u8>)> {
        let part = match self.spec.format {
            ExportFormat::Hf => format!("meta/{}", record.split.unwrap_or("")),
            _ if self.spec.include_files => "manifest".to_owned(),
            _ => MAIN.to_owned(),
        };
        let bytes = match self.spec.format {
            ExportFormat::Csv => manifest::csv_line(&record.csv())?,
            ExportFormat::Hf => {
                let mut line = record
                    .hf(&manifest::file_name(record.item))
                    .to_string()
                    .into_bytes();
                line.push(b'\n');
                line
            }
            _ => {
                let mut line = record.json().to_string().into_bytes();
                line.push(b'\n');
                line
            }
        };
        Ok((part, bytes))
    }

    /// What a new run writes first (the CSV header).
    async fn begin(&self, parts: &mut Parts) -> std::io::Result<()> {
        if self.spec.format == ExportFormat::Csv {
            let part = if self.spec.include_files {
                "manifest"
            } else {
                MAIN
            };
            parts
                .append(part, &manifest::csv_line(manifest::CSV_HEADER)?)
                .await?;
        }
        Ok(())
    }

    /// Close an archive: its manifests and the dataset card as entries, then the end.
    async fn finish(
        &self,
        parts: &mut Parts,
        figures: &Figures,
        card: &str,
        mtime: u64,
    ) -> std::io::Result<()> {
        if !self.spec.is_archive() {
            return Ok(());
        }
        match self.spec.format {
            ExportFormat::Hf => {
                for split in self.splits() {
                    // A split no item fell in has no folder (a metadata file alone would
                    // make `datasets` look for files that are not there).
                    if !split.is_empty() && !figures.by_split.contains_key(split) {
                        continue;
                    }
                    let part = format!("meta/{split}");
                    let dir = Self::hf_dir(Some(split).filter(|s| !s.is_empty()));
                    let path = format!("{dir}metadata.jsonl");
                    parts.append_tar_part(MAIN, &path, &part, mtime).await?;
                }
            }
            ExportFormat::Csv => {
                parts
                    .append_tar_part(MAIN, "manifest.csv", "manifest", mtime)
                    .await?
            }
            _ => {
                parts
                    .append_tar_part(MAIN, "manifest.jsonl", "manifest", mtime)
                    .await?
            }
        }
        parts
            .append_tar_bytes(MAIN, "README.md", card.as_bytes(), mtime)
            .await?;
        parts.end_tar(MAIN).await
    }
}

/// Runs `export` jobs, one at a time per project.
pub struct ExportHandler {
    projects: Projects,
}

impl ExportHandler {
    pub fn new(projects: Projects) -> Self {
        Self { projects }
    }
}

impl JobHandler for ExportHandler {
    const KIND: &'static str = KIND_EXPORT;

    fn concurrency(&self, deps: &Deps) -> usize {
        deps.config.exports.concurrency
    }

    fn per_project_limit(&self, _deps: &Deps) -> Option<usize> {
        Some(1)
    }

    async fn run(&self, deps: &Arc<Deps>, job: &JobRow) -> Result<JobEnd, JobFailure> {
        let payload: ExportJob = serde_json::from_value(job.payload.0.clone())?;
        let Some(export) =
            store::exports::find(&deps.db, payload.project_id, payload.export_id).await?
        else {
            return Ok(JobEnd::Ran); // deleted
        };
        if !matches!(
            export.state,
            crate::domain::export::ExportState::Queued
                | crate::domain::export::ExportState::Running
        ) {
            return Ok(JobEnd::Ran);
        }
        let started = Instant::now();
        let format = export.format.as_str();
        let outcome = run(deps, &self.projects, job, &export, payload.checkpoint).await;
        match &outcome {
            Ok(JobEnd::Recorded) => {
                metrics::counter!(m::EXPORTS_TOTAL, "format" => format, "outcome" => "finished")
                    .increment(1);
                metrics::histogram!(m::EXPORT_DURATION_SECONDS, "format" => format)
                    .record(started.elapsed().as_secs_f64());
            }
            Err(_) => {
                metrics::counter!(m::EXPORTS_TOTAL, "format" => format, "outcome" => "retried")
                    .increment(1);
            }
            Ok(_) => {}
        }
        outcome
    }

    async fn gave_up(&self, deps: &Arc<Deps>, job: &JobRow, error: &str) {
        let Ok(payload) = serde_json::from_value::<ExportJob>(job.payload.0.clone()) else {
            return;
        };
        let fail = FailExport {
            export_id: payload.export_id,
            error: error.to_owned(),
        };
        let ctx = RequestContext::internal("export");
        match self
            .projects
            .apply(payload.project_id, &Principal::system(), &ctx, fail)
            .await
        {
            Ok(true) => {
                metrics::counter!(m::EXPORTS_TOTAL, "format" => "any", "outcome" => "failed")
                    .increment(1);
            }
            Ok(false) => {}
            Err(err) => {
                tracing::error!(export_id = %payload.export_id, error = %err, "could not mark the export failed")
            }
        }
        let dir = deps.blobs.exports_dir().join(payload.export_id.to_string());
        Parts::remove(&dir).await;
    }
}

async fn run(
    deps: &Arc<Deps>,
    projects: &Projects,
    job: &JobRow,
    export: &ExportRow,
    checkpoint: Option<Checkpoint>,
) -> Result<JobEnd, JobFailure> {
    let spec = &export.spec.0;
    let layout = Layout { spec };
    let scan = Scan {
        project_id: export.project_id,
        filter: &spec.filter,
        snapshot_at: export.snapshot_at,
        since: spec.filter.since_at,
    };
    let total = store::exports::scan_count(&deps.db, &scan, None).await?;
    if !store::exports::mark_running(&deps.db, export.id, total, deps.clock.now()).await? {
        return Ok(JobEnd::Ran);
    }
    let dir = deps.blobs.exports_dir().join(export.id.to_string());
    let (mut parts, resumed) = Parts::open(
        &dir,
        &layout.part_names(),
        checkpoint.as_ref().map(|c| &c.parts),
    )
    .await?;
    let (mut after, mut figures) = match (resumed, checkpoint) {
        (true, Some(c)) => (Some(c.after), c.figures),
        _ => {
            layout.begin(&mut parts).await?;
            (None, Figures::default())
        }
    };
    if resumed {
        tracing::info!(export_id = %export.id, items = figures.items, "export resumes from its checkpoint");
    }
    let secret = secrecy::ExposeSecret::expose_secret(&deps.config.jwt.secret).to_owned();
    let mtime = u64::try_from(export.snapshot_at.timestamp()).unwrap_or(0);
    let (page_items, checkpoint_every) = (
        deps.config.exports.page_items,
        deps.config.exports.checkpoint_every,
    );
    let mut last_checkpoint = Instant::now();
    loop {
        let page = store::exports::scan_page(&deps.db, &scan, after, page_items).await?;
        let Some(last) = page.last() else { break };
        let last_id = last.id;
        let ids: Vec<Uuid> = page.iter().map(|i| i.id).collect();
        let texts: HashMap<Uuid, _> = store::texts::current_of(&deps.db, &ids)
            .await?
            .into_iter()
            .map(|t| (t.item_id, t))
            .collect();
        let annotations: HashMap<Uuid, _> = store::labels::current_of(&deps.db, &ids)
            .await?
            .into_iter()
            .map(|a| (a.item_id, a))
            .collect();
        let mut reasons: HashMap<Uuid, Vec<String>> = HashMap::new();
        for (item_id, code) in store::exports::reason_codes_of(&deps.db, &ids).await? {
            reasons.entry(item_id).or_default().push(code);
        }
        let before_bytes = parts.len(MAIN);
        for item in &page {
            let split = spec.split.map(|s| s.of(item.id));
            let path = layout.file_path(item, split);
            if let Some(path) = &path {
                let size = u64::try_from(item.size_bytes).unwrap_or(0);
                let key = if item.blob_key.is_empty() {
                    crate::blob::item_key(item.project_id, item.id)
                } else {
                    item.blob_key.clone()
                };
                let stream: crate::blob::BlobStream = if size == 0 {
                    Box::pin(futures::stream::empty())
                } else {
                    deps.blobs.open_range(&key, 0, size - 1).await?
                };
                parts
                    .append_tar_stream(MAIN, path, size, mtime, stream)
                    .await?;
            }
            let record = Record {
                item,
                text: texts.get(&item.id),
                annotation: annotations.get(&item.id),
                reason_codes: reasons.remove(&item.id).unwrap_or_default(),
                contributor: pseudonym(secret.as_bytes(), item.project_id, item.contributor_id),
                split,
                path,
            };
            let (part, bytes) = layout.row(&record)?;
            parts.append(&part, &bytes).await?;
            figures.add(&record);
        }
        metrics::counter!(m::EXPORT_ITEMS_TOTAL).increment(page.len() as u64);
        metrics::counter!(m::EXPORT_BYTES_TOTAL).increment(parts.len(MAIN) - before_bytes);
        after = Some(last_id);
        if last_checkpoint.elapsed() >= checkpoint_every {
            last_checkpoint = Instant::now();
            let lens = parts.sync().await?;
            let payload = ExportJob {
                export_id: export.id,
                project_id: export.project_id,
                checkpoint: Some(Checkpoint {
                    after: last_id,
                    parts: lens,
                    figures: figures.clone(),
                }),
            };
            let payload = serde_json::to_value(&payload)?;
            let now = deps.clock.now();
            if !store::jobs::save_payload(&deps.db, job.id, &deps.worker_id, payload, now).await? {
                return Ok(JobEnd::LeaseLost);
            }
            let items = i64::try_from(figures.items).unwrap_or(i64::MAX);
            let bytes = i64::try_from(parts.len(MAIN)).unwrap_or(i64::MAX);
            if !store::exports::progress(&deps.db, export.id, items, bytes).await? {
                // Deleted while it ran: nothing to publish.
                drop(parts);
                Parts::remove(&dir).await;
                return Ok(JobEnd::Ran);
            }
        }
        if (page.len() as i64) < page_items {
            break;
        }
    }
    let project = store::projects::find(&deps.db, export.project_id).await?;
    let card = card::render(export, project.as_ref(), &figures);
    layout.finish(&mut parts, &figures, &card, mtime).await?;
    parts.sync().await?;
    let size = parts.len(MAIN);
    let main = parts.path(MAIN);
    drop(parts);
    let key = crate::blob::item_key(export.project_id, export.id);
    deps.blobs.put_file(&key, &main).await?;
    Parts::remove(&dir).await;
    let (extension, content_type) = spec.artifact_type();
    let published = Published {
        blob_key: key.clone(),
        file_name: format!("export-{}.{extension}", export.id),
        content_type: content_type.to_owned(),
        bytes: i64::try_from(size).unwrap_or(i64::MAX),
        items: i64::try_from(figures.items).unwrap_or(i64::MAX),
    };
    let finish = FinishExport {
        export_id: export.id,
        job_id: job.id,
        worker_id: deps.worker_id.clone(),
        published,
    };
    let ctx = RequestContext::internal("export");
    match projects
        .apply(export.project_id, &Principal::system(), &ctx, finish)
        .await
    {
        Ok(true) => Ok(JobEnd::Recorded),
        Ok(false) => {
            // Deleted meanwhile: its artifact goes too.
            if let Err(err) = deps.blobs.delete(&key).await {
                tracing::warn!(%key, error = %err, "could not remove a deleted export's artifact");
            }
            Ok(JobEnd::Recorded)
        }
        Err(EngineError::Conflict { .. }) => Ok(JobEnd::LeaseLost),
        Err(EngineError::NotFound { .. }) => Ok(JobEnd::Ran),
        Err(err) => Err(JobFailure(err.to_string())),
    }
}
