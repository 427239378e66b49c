//! What an export asks for, checked once: its format, which items, whether the files
//! go with the manifest, and a deterministic train/validation/test split.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{DataKind, ItemStatus};
use crate::{ErrorCode, error::EngineError};

/// How the items leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// One JSON object per item.
    Jsonl,
    /// One row per item, flat columns (nested values as JSON text).
    Csv,
    /// A Hugging Face folder: the files with `metadata.jsonl` per split and a
    /// `README.md` dataset card (`load_dataset("audiofolder", data_dir=…)`).
    Hf,
    /// WebDataset tar shards (`shard-000000.tar`, …, each at most
    /// `EXPORT_SHARD_MAX_BYTES`) of `{id}.{ext}` and `{id}.json` per item, in one tar.
    Webdataset,
}

impl ExportFormat {
    pub const ALL: [Self; 4] = [Self::Jsonl, Self::Csv, Self::Hf, Self::Webdataset];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
            Self::Hf => "hf",
            Self::Webdataset => "webdataset",
        }
    }
}

crate::domain::stored_as_str!(ExportFormat, "export format");

/// Where an export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportState {
    Queued,
    Running,
    Finished,
    Failed,
}

impl ExportState {
    pub const ALL: [Self; 4] = [Self::Queued, Self::Running, Self::Finished, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
        }
    }
}

crate::domain::stored_as_str!(ExportState, "export state");

/// One label an exported item's current annotation must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMatch {
    pub field: String,
    pub value: String,
}

/// Which items an export takes. Stored with the export, so a resumed run takes the
/// same ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportFilter {
    /// Default: `approved` only.
    pub states: Vec<ItemStatus>,
    pub kind: Option<DataKind>,
    pub contributor_id: Option<Uuid>,
    /// Items created at or after / before these times.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub labels: Vec<LabelMatch>,
    /// Only items decided after that export was made (incremental exports).
    pub since_export: Option<Uuid>,
    /// That export's snapshot time (set when the export is created).
    #[serde(default)]
    pub since_at: Option<DateTime<Utc>>,
}

/// Train / validation / test ratios (each 0..1, summing to 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub train: f64,
    pub validation: f64,
    pub test: f64,
}

impl Split {
    pub const NAMES: [&'static str; 3] = ["train", "validation", "test"];

    /// The split an item lands in: a hash of its id placed on `[0, 1)`, so the same item
    /// lands in the same split in every export with the same ratios.
    pub fn of(&self, item_id: Uuid) -> &'static str {
        let hash = Sha256::digest(item_id.as_bytes());
        let mut head = [0u8; 8];
        head.copy_from_slice(&hash[..8]);
        let x = (u64::from_be_bytes(head) >> 11) as f64 / (1u64 << 53) as f64;
        if x < self.train {
            "train"
        } else if x < self.train + self.validation {
            "validation"
        } else {
            "test"
        }
    }
}

/// The container of an archive export: a tar (streams, Unix tools, WebDataset), or a
/// zip (opens with a double click on Windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Packaging {
    #[default]
    Tar,
    Zip,
}

impl Packaging {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tar => "tar",
            Self::Zip => "zip",
        }
    }
}

/// A checked export request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportSpec {
    pub format: ExportFormat,
    pub filter: ExportFilter,
    /// The files travel with the manifest (in an archive). Always true for `hf`.
    pub include_files: bool,
    pub split: Option<Split>,
    /// The archive's container (exports made before zip existed are tars).
    #[serde(default)]
    pub packaging: Packaging,
}

/// An export request as it arrives.
#[derive(Debug, Clone, Default)]
pub struct ExportInput {
    pub format: String,
    pub states: Option<Vec<String>>,
    pub kind: Option<String>,
    pub contributor_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub labels: Option<Vec<LabelMatch>>,
    pub since_export: Option<Uuid>,
    pub include_files: Option<bool>,
    pub split: Option<Split>,
    /// `tar` (default) or `zip`, for archives.
    pub packaging: Option<String>,
}

/// Most label conditions one export may carry.
pub const MAX_LABEL_MATCHES: usize = 10;

fn invalid(field: impl Into<crate::error::Field>, message: impl Into<String>) -> EngineError {
    EngineError::validation(ErrorCode::InvalidExport, field, message)
}

impl ExportSpec {
    pub fn parse(input: ExportInput) -> Result<Self, EngineError> {
        let format = ExportFormat::try_from(input.format).map_err(|e| invalid("/format", e))?;
        // Webdataset shards are made of the files; an hf folder has them unless asked
        // for its metadata and card alone.
        let of_files = format == ExportFormat::Webdataset;
        let states = match input.states {
            None => vec![ItemStatus::Approved],
            Some(raw) if raw.is_empty() => {
                return Err(invalid("/filter/states", "name at least one state"));
            }
            Some(raw) => {
                let mut states = Vec::new();
                for (i, s) in raw.into_iter().enumerate() {
                    let state = ItemStatus::try_from(s)
                        .map_err(|e| invalid(format!("/filter/states/{i}"), e))?;
                    if !states.contains(&state) {
                        states.push(state);
                    }
                }
                states
            }
        };
        let kind = input
            .kind
            .map(|k| match k.as_str() {
                "document" => Ok(DataKind::Document),
                "audio" | "voice" => Ok(DataKind::Audio),
                _ => Err(invalid("/filter/kind", "kind is document or audio")),
            })
            .transpose()?;
        if let (Some(from), Some(to)) = (input.from, input.to)
            && from >= to
        {
            return Err(invalid("/filter/to", "to must be after from"));
        }
        let labels = input.labels.unwrap_or_default();
        if labels.len() > MAX_LABEL_MATCHES {
            return Err(invalid(
                "/filter/labels",
                format!("at most {MAX_LABEL_MATCHES} label conditions"),
            ));
        }
        for (i, l) in labels.iter().enumerate() {
            if l.field.trim().is_empty() || l.value.is_empty() {
                return Err(invalid(
                    format!("/filter/labels/{i}"),
                    "a label condition names a field and a value",
                ));
            }
        }
        if let Some(split) = input.split {
            let parts = [split.train, split.validation, split.test];
            if parts
                .iter()
                .any(|p| !p.is_finite() || !(0.0..=1.0).contains(p))
            {
                return Err(invalid("/split", "each ratio is between 0 and 1"));
            }
            if (parts.iter().sum::<f64>() - 1.0).abs() > 1e-6 {
                return Err(invalid("/split", "the ratios add up to 1"));
            }
        }
        if format == ExportFormat::Hf && kind.is_none() {
            return Err(invalid(
                "/filter/kind",
                "an hf export holds one kind: set filter.kind to document or audio",
            ));
        }
        if of_files && input.include_files == Some(false) {
            return Err(invalid(
                "/include_files",
                format!(
                    "a {} export is made of the files: include_files cannot be false",
                    format.as_str()
                ),
            ));
        }
        let include_files = input.include_files.unwrap_or(matches!(
            format,
            ExportFormat::Hf | ExportFormat::Webdataset
        ));
        let archive = include_files || format == ExportFormat::Hf;
        let packaging = match input.packaging.as_deref() {
            None | Some("tar") => Packaging::Tar,
            Some("zip") if archive => Packaging::Zip,
            Some("zip") => {
                return Err(invalid(
                    "/packaging",
                    "a zip holds files: set include_files (or use hf or webdataset)",
                ));
            }
            Some(_) => return Err(invalid("/packaging", "packaging is tar or zip")),
        };
        Ok(Self {
            packaging,
            format,
            filter: ExportFilter {
                states,
                kind,
                contributor_id: input.contributor_id,
                from: input.from,
                to: input.to,
                labels,
                since_export: input.since_export,
                since_at: None,
            },
            include_files,
            split: input.split,
        })
    }

    /// The artifact is an archive (files, or several parts); otherwise one text file.
    pub fn is_archive(&self) -> bool {
        self.include_files || self.format == ExportFormat::Hf
    }

    /// The artifact's extension and content type.
    pub fn artifact_type(&self) -> (&'static str, &'static str) {
        if self.is_archive() && self.packaging == Packaging::Zip {
            ("zip", "application/zip")
        } else if self.is_archive() {
            ("tar", "application/x-tar")
        } else if self.format == ExportFormat::Csv {
            ("csv", "text/csv; charset=utf-8")
        } else {
            ("jsonl", "application/x-ndjson")
        }
    }
}

/// `filter.since_export` names no export of the project.
pub fn unknown_since_export() -> EngineError {
    invalid(
        "/filter/since_export",
        "no export of this project has that id",
    )
}

/// A contributor as a dataset shows them: stable within a project, unlinkable across
/// projects, and not reversible without the server's secret.
pub fn pseudonym(secret: &[u8], project_id: Uuid, contributor_id: Uuid) -> String {
    let mut hash = Sha256::new();
    hash.update(b"alta-export-contributor\0");
    hash.update(secret);
    hash.update(project_id.as_bytes());
    hash.update(contributor_id.as_bytes());
    format!("c_{}", hex::encode(&hash.finalize()[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(format: &str) -> ExportInput {
        ExportInput {
            format: format.into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_take_approved_items_without_files() {
        let spec = ExportSpec::parse(input("jsonl")).unwrap();
        assert_eq!(spec.filter.states, vec![ItemStatus::Approved]);
        assert!(!spec.include_files);
        assert_eq!(spec.artifact_type().0, "jsonl");
    }

    #[test]
    fn refusals_name_the_field() {
        let field_of = |i: ExportInput| match ExportSpec::parse(i) {
            Err(EngineError::Validation { field, .. }) => field.unwrap_or_default().into_owned(),
            other => panic!("expected a validation error, got {other:?}"),
        };
        assert_eq!(field_of(input("parquet")), "/format");
        let mut i = input("hf");
        assert_eq!(field_of(i.clone()), "/filter/kind");
        i.kind = Some("audio".into());
        i.include_files = Some(false);
        // An hf folder without files: its metadata and card, still a tar.
        let spec = ExportSpec::parse(i).unwrap();
        assert!(!spec.include_files && spec.is_archive());
        assert_eq!(spec.artifact_type().0, "tar");
        let mut i = input("webdataset");
        i.include_files = Some(false);
        assert_eq!(field_of(i), "/include_files");
        let mut i = input("csv");
        i.split = Some(Split {
            train: 0.8,
            validation: 0.1,
            test: 0.2,
        });
        assert_eq!(field_of(i), "/split");
        let mut i = input("csv");
        i.states = Some(vec!["approved".into(), "gone".into()]);
        assert_eq!(field_of(i), "/filter/states/1");
        let mut i = input("webdataset");
        i.include_files = Some(false);
        assert_eq!(field_of(i), "/include_files");
        assert!(
            ExportSpec::parse(input("webdataset"))
                .unwrap()
                .include_files
        );
    }

    #[test]
    fn splits_are_stable_and_near_their_ratios() {
        let split = Split {
            train: 0.8,
            validation: 0.1,
            test: 0.1,
        };
        let ids: Vec<Uuid> = (0..10_000).map(|_| Uuid::new_v4()).collect();
        let first: Vec<&str> = ids.iter().map(|id| split.of(*id)).collect();
        let again: Vec<&str> = ids.iter().map(|id| split.of(*id)).collect();
        assert_eq!(first, again);
        let train = first.iter().filter(|s| **s == "train").count();
        assert!((7_600..8_400).contains(&train), "{train}");
        let all_train = Split {
            train: 1.0,
            validation: 0.0,
            test: 0.0,
        };
        assert!(ids.iter().all(|id| all_train.of(*id) == "train"));
    }

    #[test]
    fn pseudonyms_are_stable_per_project() {
        let (p, q, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(pseudonym(b"s", p, c), pseudonym(b"s", p, c));
        assert_ne!(pseudonym(b"s", p, c), pseudonym(b"s", q, c));
        assert_ne!(pseudonym(b"s", p, c), pseudonym(b"t", p, c));
        assert!(pseudonym(b"s", p, c).starts_with("c_"));
    }
}
