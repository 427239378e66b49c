//! One exported item as each format writes it: a JSON object (jsonl, and the manifest
//! inside an archive), a CSV record, and a Hugging Face metadata row (flat, with
//! nested values as JSON text so every row has the same columns and types).

use serde_json::{Map, Value, json};

use crate::{
    media::detect::DetectedType,
    store::{items::ItemRow, labels::AnnotationRow, texts::TextRow},
};

/// Everything an exported row says about one item.
pub struct Record<'a> {
    pub item: &'a ItemRow,
    pub text: Option<&'a TextRow>,
    pub annotation: Option<&'a AnnotationRow>,
    pub reason_codes: Vec<String>,
    /// The contributor's pseudonym (never their id or email).
    pub contributor: String,
    pub split: Option<&'static str>,
    /// The file's path inside the export, when the files travel with it.
    pub path: Option<String>,
}

/// The extension an item's file is saved with inside an export (from its detected
/// type, never the client's name).
pub fn extension(item: &ItemRow) -> &'static str {
    DetectedType::parse(&item.detected_type)
        .map(DetectedType::extension)
        .unwrap_or("bin")
}

/// The file name of an item inside an export: `{id}.{ext}`.
pub fn file_name(item: &ItemRow) -> String {
    format!("{}.{}", item.id, extension(item))
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    t.map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

impl Record<'_> {
    fn words(&self) -> Value {
        self.text
            .and_then(|t| t.words.as_ref())
            .map(|w| w.0.clone())
            .unwrap_or(Value::Null)
    }

    /// The full manifest object.
    pub fn json(&self) -> Value {
        let item = self.item;
        json!({
            "id": item.id,
            "kind": item.kind.as_str(),
            "file": self.path,
            "file_name": item.file_name,
            "sha256": item.sha256,
            "size_bytes": item.size_bytes,
            "content_type": item.content_type,
            "title": item.title,
            "language": item.language,
            "external_id": item.external_id,
            "metadata": item.metadata.0,
            "text": self.text.map(|t| t.text.as_str()),
            "text_engine": self.text.and_then(|t| t.engine.as_deref()),
            "words": self.words(),
            "annotation": self.annotation.map(|a| json!({
                "schema_version": a.schema_version,
                "values": a.label_values.0,
            })),
            "audio": item.audio.as_ref().map(|a| a.0.clone()),
            "duration_ms": item.duration_ms(),
            "review": {
                "status": item.status.as_str(),
                "rounds": item.review_round,
                "reason_codes": self.reason_codes,
            },
            "contributor": self.contributor,
            "split": self.split,
            "created_at": time(Some(item.created_at)),
            "submitted_at": time(item.submitted_at),
            "decided_at": time(item.decided_at),
        })
    }

    /// A Hugging Face `metadata.jsonl` row: `file_name` relative to the metadata file,
    /// scalars as they are, nested values as JSON text.
    pub fn hf(&self, file_name: &str) -> Value {
        let full = self.json();
        let mut row = Map::new();
        row.insert("file_name".into(), Value::String(file_name.to_owned()));
        if let Value::Object(fields) = full {
            for (key, value) in fields {
                match (key.as_str(), value) {
                    ("file" | "file_name", _) => {}
                    ("review", Value::Object(review)) => {
                        for (k, v) in review {
                            let v = match v {
                                Value::Array(_) => Value::String(v.to_string()),
                                v => v,
                            };
                            row.insert(k, v);
                        }
                    }
                    // `audio` is the column `audiofolder` decodes the file into.
                    ("audio", v) => {
                        let v = if v.is_null() {
                            v
                        } else {
                            Value::String(v.to_string())
                        };
                        row.insert("audio_analysis".into(), v);
                    }
                    (_, v @ (Value::Object(_) | Value::Array(_))) => {
                        row.insert(key, Value::String(v.to_string()));
                    }
                    (_, v) => {
                        row.insert(key, v);
                    }
                }
            }
        }
        // Not `…file_name`: `datasets` reads every such column as a path to a file.
        row.insert(
            "uploaded_as".into(),
            Value::String(self.item.file_name.clone()),
        );
        Value::Object(row)
    }

    /// The CSV record, in [`CSV_HEADER`]'s order.
    pub fn csv(&self) -> Vec<String> {
        let item = self.item;
        let text_of = |v: Value| match v {
            Value::Null => String::new(),
            Value::String(s) => s,
            other => other.to_string(),
        };
        vec![
            item.id.to_string(),
            item.kind.as_str().to_owned(),
            self.path.clone().unwrap_or_default(),
            item.file_name.clone(),
            item.sha256.clone(),
            item.size_bytes.to_string(),
            item.content_type.clone(),
            item.title.clone().unwrap_or_default(),
            item.language.clone().unwrap_or_default(),
            item.external_id.clone().unwrap_or_default(),
            item.metadata.0.to_string(),
            self.text.map(|t| t.text.clone()).unwrap_or_default(),
            self.annotation
                .map(|a| a.schema_version.to_string())
                .unwrap_or_default(),
            self.annotation
                .map(|a| Value::Object(a.label_values.0.clone().into_iter().collect()).to_string())
                .unwrap_or_default(),
            item.duration_ms()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            item.status.as_str().to_owned(),
            item.review_round.to_string(),
            self.reason_codes.join(";"),
            self.contributor.clone(),
            self.split.unwrap_or_default().to_owned(),
            text_of(time(Some(item.created_at))),
            text_of(time(item.submitted_at)),
            text_of(time(item.decided_at)),
        ]
    }
}

/// The CSV columns.
pub const CSV_HEADER: &[&str] = &[
    "id",
    "kind",
    "file",
    "file_name",
    "sha256",
    "size_bytes",
    "content_type",
    "title",
    "language",
    "external_id",
    "metadata",
    "text",
    "schema_version",
    "annotation",
    "duration_ms",
    "status",
    "rounds",
    "reason_codes",
    "contributor",
    "split",
    "created_at",
    "submitted_at",
    "decided_at",
];

/// One CSV line (RFC 4180 quoting), through the `csv` crate.
pub fn csv_line(fields: &[impl AsRef<[u8]>]) -> std::io::Result<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    writer.write_record(fields).map_err(std::io::Error::other)?;
    writer
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))
}
