//! The streaming path every export takes, for the job and for `alta export` alike: a
//! keyset scan of the chosen items a page at a time, each row rendered as it comes and
//! each file copied from the blob store in the same order into the export's parts
//! ([`Parts`]); every `EXPORT_CHECKPOINT_MS` the parts are synced and the caller keeps a
//! [`Checkpoint`] ([`Progress`]), so a run that crashed resumes by cutting each part
//! back to it: no row twice. Memory stays flat in the number of items.

use std::{collections::HashMap, future::Future, path::PathBuf, time::Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    artifact::{CENTRAL, MAIN, Parts, tar_entry_len},
    card::{self, Figures},
    manifest::{self, Record},
    run::{Checkpoint, ShardMark},
};
use crate::{
    deps::Deps,
    domain::export::{ExportFormat, ExportSpec, Packaging, Split, pseudonym},
    jobs::worker::{JobEnd, JobFailure},
    metrics as m,
    store::{
        self,
        exports::{ExportRow, Scan},
        items::ItemRow,
    },
};

/// What one export takes and where it writes: its id names its folder of parts.
pub(crate) struct Source<'a> {
    pub id: Uuid,
    pub project_id: Uuid,
    pub spec: &'a ExportSpec,
    pub snapshot_at: DateTime<Utc>,
}

impl<'a> Source<'a> {
    pub fn of(export: &'a ExportRow) -> Self {
        Self {
            id: export.id,
            project_id: export.project_id,
            spec: &export.spec.0,
            snapshot_at: export.snapshot_at,
        }
    }

    pub fn scan(&self) -> Scan<'a> {
        Scan {
            project_id: self.project_id,
            filter: &self.spec.filter,
            snapshot_at: self.snapshot_at,
            since: self.spec.filter.since_at,
        }
    }
}

/// Who keeps the checkpoints: told each one (with the artifact's bytes so far), it
/// answers whether the run goes on (`None`) or stops as it says.
pub(crate) trait Progress: Send {
    fn checkpoint(
        &mut self,
        checkpoint: Checkpoint,
        bytes: u64,
    ) -> impl Future<Output = Result<Option<JobEnd>, JobFailure>> + Send;
}

/// A written export: its file (`main`, in `dir`), its size and what it holds.
pub(crate) struct Written {
    pub main: PathBuf,
    pub dir: PathBuf,
    pub size: u64,
    /// The file's SHA-256, hex.
    pub sha256: String,
    pub figures: Figures,
}

/// Write the export `source` describes, from `resume` if its parts are still there.
/// `Err(end)` inside: the progress keeper stopped it (its parts are removed).
pub(crate) async fn write(
    deps: &Deps,
    source: &Source<'_>,
    checkpoint: Option<Checkpoint>,
    progress: &mut impl Progress,
) -> Result<Result<Written, JobEnd>, JobFailure> {
    let spec = source.spec;
    let layout = Layout { spec };
    let scan = source.scan();
    let dir = deps.blobs.export_parts_path(source.id);
    let names = layout.part_names();
    // A checkpoint of other parts than these (an earlier version's) starts over.
    let checkpoint = checkpoint.filter(|c| c.parts.keys().all(|n| names.contains(n)));
    let (mut parts, resumed) = Parts::open(
        &dir,
        &names,
        checkpoint.as_ref().map(|c| &c.parts),
        checkpoint.as_ref().and_then(|c| c.shard?.open_at),
    )
    .await?;
    let max_shard = deps.config.exports.shard_max_bytes;
    let (mut after, mut figures, mut shards) = match (resumed, checkpoint) {
        (true, Some(c)) => (Some(c.after), c.figures, c.shard),
        _ => {
            layout.begin(&mut parts).await?;
            (None, Figures::default(), None)
        }
    };
    if spec.format == ExportFormat::Webdataset && shards.is_none() {
        shards = Some(ShardMark::default());
    }
    if resumed {
        tracing::info!(export_id = %source.id, items = figures.items, "export resumes from its checkpoint");
    }
    let secret = secrecy::ExposeSecret::expose_secret(&deps.config.jwt.secret).to_owned();
    let mtime = u64::try_from(source.snapshot_at.timestamp()).unwrap_or(0);
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
            let record = Record {
                item,
                text: texts.get(&item.id),
                annotation: annotations.get(&item.id),
                reason_codes: reasons.remove(&item.id).unwrap_or_default(),
                contributor: pseudonym(secret.as_bytes(), item.project_id, item.contributor_id),
                split,
                path: path.clone(),
            };
            let (part, row) = layout.row(&record)?;
            let size = u64::try_from(item.size_bytes).unwrap_or(0);
            // The main part is packed as asked; a WebDataset shard (an entry of the main
            // part, written in place) is a tar, made room in for the file and its row.
            let packing = match &mut shards {
                Some(shard) => {
                    let needed = tar_entry_len(size) + tar_entry_len(row.len() as u64);
                    shard
                        .make_room(&mut parts, spec.packaging, max_shard, needed, mtime)
                        .await?;
                    Packaging::Tar
                }
                None => spec.packaging,
            };
            if let Some(path) = &path {
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
                    .append_entry_stream(packing, MAIN, path, size, mtime, stream)
                    .await?;
            }
            if shards.is_some() {
                let name = format!("{}.json", item.id);
                parts
                    .append_entry_bytes(Packaging::Tar, MAIN, &name, &row, mtime)
                    .await?;
            } else {
                parts.append(&part, &row).await?;
            }
            figures.add(&record);
        }
        metrics::counter!(m::EXPORT_ITEMS_TOTAL).increment(page.len() as u64);
        metrics::counter!(m::EXPORT_BYTES_TOTAL).increment(parts.len(MAIN) - before_bytes);
        after = Some(last_id);
        if last_checkpoint.elapsed() >= checkpoint_every {
            last_checkpoint = Instant::now();
            let checkpoint = Checkpoint {
                after: last_id,
                parts: parts.sync().await?,
                figures: figures.clone(),
                shard: shards,
            };
            if let Some(end) = progress.checkpoint(checkpoint, parts.len(MAIN)).await? {
                drop(parts);
                Parts::remove(&dir).await;
                return Ok(Err(end));
            }
        }
        if (page.len() as i64) < page_items {
            break;
        }
    }
    let project = store::projects::find(&deps.db, source.project_id).await?;
    let card = card::render(source, project.as_ref(), &figures);
    if let Some(shard) = &mut shards {
        shard.close(&mut parts, spec.packaging, mtime).await?;
    }
    layout.finish(&mut parts, &figures, &card, mtime).await?;
    parts.sync().await?;
    let (size, main) = (parts.len(MAIN), parts.path(MAIN));
    let sha256 = parts.main_sha256().unwrap_or_default();
    drop(parts);
    Ok(Ok(Written {
        main,
        dir,
        size,
        sha256,
        figures,
    }))
}

/// How a format lays its items out: which parts it writes, where a file goes, where
/// its row goes.
struct Layout<'a> {
    spec: &'a ExportSpec,
}

impl Layout<'_> {
    fn part_names(&self) -> Vec<String> {
        let mut names = vec![MAIN.to_owned()];
        if self.spec.is_archive() && self.spec.packaging == Packaging::Zip {
            names.push(CENTRAL.to_owned());
        }
        match self.spec.format {
            ExportFormat::Hf => {
                for split in self.splits() {
                    names.push(format!("meta/{split}"));
                }
            }
            ExportFormat::Webdataset => {} // shards are entries of the main part
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

    /// Where an item's file goes inside the archive (inside its shard for webdataset),
    /// if the files travel.
    fn file_path(&self, item: &ItemRow, split: Option<&'static str>) -> Option<String> {
        match self.spec.format {
            ExportFormat::Webdataset => Some(manifest::file_name(item)),
            ExportFormat::Hf if self.spec.include_files => Some(format!(
                "{}{}",
                Self::hf_dir(split),
                manifest::file_name(item)
            )),
            ExportFormat::Hf => None, // its metadata and card alone
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
        let packaging = self.spec.packaging;
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
                    parts
                        .append_entry_part(packaging, MAIN, &path, &part, mtime)
                        .await?;
                }
            }
            // The shards are in already (`ShardMark::close`); the rows are in them.
            ExportFormat::Webdataset => {}
            ExportFormat::Csv => {
                parts
                    .append_entry_part(packaging, MAIN, "manifest.csv", "manifest", mtime)
                    .await?
            }
            _ => {
                parts
                    .append_entry_part(packaging, MAIN, "manifest.jsonl", "manifest", mtime)
                    .await?
            }
        }
        parts
            .append_entry_bytes(packaging, MAIN, "README.md", card.as_bytes(), mtime)
            .await?;
        parts.end_archive(packaging, MAIN).await
    }
}

// WebDataset shards: each an entry of the main part whose bytes are written in place as
// the items come (the file is written once), its header made right when it closes.
impl ShardMark {
    fn entry(index: usize) -> String {
        format!("shard-{index:06}.tar")
    }

    /// Open a shard, or a new one when `needed` more bytes would take the open one past
    /// `max` (an empty shard takes any item).
    async fn make_room(
        &mut self,
        parts: &mut Parts,
        packaging: Packaging,
        max: u64,
        needed: u64,
        mtime: u64,
    ) -> std::io::Result<()> {
        if let Some(at) = self.open_at {
            let header = match packaging {
                Packaging::Tar => 512,
                Packaging::Zip => {
                    super::zip::local_header(&Self::entry(self.index), mtime).len() as u64
                }
            };
            let len = parts.len(MAIN) - at - header;
            if len == 0 || len + needed + 1024 <= max {
                return Ok(());
            }
            self.close(parts, packaging, mtime).await?;
        }
        let at = parts
            .begin_open_entry(packaging, MAIN, &Self::entry(self.index), mtime)
            .await?;
        self.open_at = Some(at);
        Ok(())
    }

    /// End the open shard (a tar's end, then its entry's), if there is one.
    async fn close(
        &mut self,
        parts: &mut Parts,
        packaging: Packaging,
        mtime: u64,
    ) -> std::io::Result<()> {
        let Some(at) = self.open_at.take() else {
            return Ok(());
        };
        parts.end_archive(Packaging::Tar, MAIN).await?;
        parts
            .end_open_entry(packaging, MAIN, &Self::entry(self.index), at, mtime)
            .await?;
        self.index += 1;
        Ok(())
    }
}
