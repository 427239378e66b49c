//! The dataset card (`README.md`, as the Hugging Face Hub reads it): what the export
//! holds, counted while it was written ([`Figures`], kept in the checkpoint so a
//! resumed run counts on).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{manifest::Record, write::Source};
use crate::store::projects::ProjectRow;

/// Most distinct values per field the card's label table lists.
const MAX_VALUES_PER_FIELD: usize = 50;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Figures {
    pub items: u64,
    /// Bytes of the items' files.
    pub file_bytes: u64,
    pub audio_ms: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub by_split: BTreeMap<String, u64>,
    /// Field → label → items whose annotation has it (label and multi_label values).
    pub labels: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Figures {
    pub fn add(&mut self, record: &Record<'_>) {
        let item = record.item;
        self.items += 1;
        self.file_bytes += u64::try_from(item.size_bytes).unwrap_or(0);
        self.audio_ms += item.duration_ms().unwrap_or(0);
        *self
            .by_kind
            .entry(item.kind.as_str().to_owned())
            .or_default() += 1;
        if let Some(split) = record.split {
            *self.by_split.entry(split.to_owned()).or_default() += 1;
        }
        let Some(annotation) = record.annotation else {
            return;
        };
        for (field, value) in &annotation.label_values.0 {
            let labels: Vec<&str> = match value {
                Value::String(s) => vec![s.as_str()],
                Value::Array(values) => values.iter().filter_map(Value::as_str).collect(),
                _ => continue,
            };
            let counts = self.labels.entry(field.clone()).or_default();
            for label in labels {
                if counts.len() < MAX_VALUES_PER_FIELD || counts.contains_key(label) {
                    *counts.entry(label.to_owned()).or_default() += 1;
                }
            }
        }
    }
}

/// A Markdown table cell: no pipes or line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

pub(crate) fn render(
    source: &Source<'_>,
    project: Option<&ProjectRow>,
    figures: &Figures,
) -> String {
    let name = project
        .map(|p| p.name.as_str())
        .unwrap_or("Alta Data export");
    let description = project.map(|p| p.description.as_str()).unwrap_or("");
    let spec = source.spec;
    let mut card = String::new();
    // YAML front matter: JSON strings are YAML strings, so the name needs no escaping rules
    // of its own.
    card.push_str("---\n");
    card.push_str(&format!(
        "pretty_name: {}\n",
        Value::String(name.to_owned())
    ));
    let size = match figures.items {
        0..1_000 => "n<1K",
        1_000..10_000 => "1K<n<10K",
        10_000..100_000 => "10K<n<100K",
        100_000..1_000_000 => "100K<n<1M",
        _ => "1M<n<10M",
    };
    card.push_str(&format!("size_categories:\n- {size}\n"));
    card.push_str("---\n\n");
    card.push_str(&format!("# {}\n\n", name.replace('\n', " ")));
    if !description.is_empty() {
        card.push_str(description);
        card.push_str("\n\n");
    }
    card.push_str("## Contents\n\n");
    card.push_str(&format!("- Items: {}\n", figures.items));
    for (kind, n) in &figures.by_kind {
        card.push_str(&format!("  - {kind}: {n}\n"));
    }
    if figures.audio_ms > 0 {
        card.push_str(&format!(
            "- Hours of audio: {:.2}\n",
            figures.audio_ms as f64 / 3_600_000.0
        ));
    }
    if spec.include_files {
        card.push_str(&format!("- Bytes of files: {}\n", figures.file_bytes));
    }
    if !figures.by_split.is_empty() {
        card.push_str("- Splits (stable per item):");
        for (split, n) in &figures.by_split {
            card.push_str(&format!(" {split} {n};"));
        }
        card.push('\n');
    }
    let states: Vec<&str> = spec.filter.states.iter().map(|s| s.as_str()).collect();
    card.push_str(&format!(
        "- Review states taken: {}\n- Snapshot: items created and decided by {}\n",
        states.join(", "),
        source.snapshot_at.to_rfc3339()
    ));
    if !figures.labels.is_empty() {
        card.push_str("\n## Labels\n\n| field | label | items |\n| --- | --- | --- |\n");
        for (field, counts) in &figures.labels {
            for (label, n) in counts {
                card.push_str(&format!("| {} | {} | {n} |\n", cell(field), cell(label)));
            }
        }
    }
    card.push_str(
        "\n## Fields\n\nEach row names the item (`id`), its file, `sha256` and size, the current \
         text or transcript (`text`, with per-word timings in `words` when the engine gave \
         them), the annotation values and the label schema version they were checked \
         against, the audio analysis, the review outcome (`status`, `rounds`, \
         `reason_codes`), the contributor as a pseudonym stable within this project \
         (`contributor`, never an email), and timestamps.\n",
    );
    card.push_str(&format!(
        "\nExported by Alta Data (export `{}`, format `{}`).\n",
        source.id,
        spec.format.as_str()
    ));
    card
}
