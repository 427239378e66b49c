//! Spans are anchored to the text revision they were made on. When a new revision is
//! written (a correction, a reviewer's fix, processing again), each span is carried
//! over through a character diff: one whose covered text is unchanged moves with it;
//! any other keeps its offsets and is marked `stale: true`, so no label silently points
//! at the wrong words. A stale span stays stale until someone writes it anew.

use std::{collections::BTreeMap, time::Duration};

use serde_json::Value;
use similar::{Algorithm, DiffOp, TextDiff};

use super::schema::{FieldType, LabelField};

/// How long a diff may search before it settles for a coarser answer (which can only
/// mark more spans stale, never move one wrongly).
const DIFF_TIMEOUT: Duration = Duration::from_millis(500);

/// Where each code point of `old` is in `new` (`None`: changed or removed).
pub fn code_point_map(old: &str, new: &str) -> Vec<Option<usize>> {
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .timeout(DIFF_TIMEOUT)
        .diff_chars(old, new);
    let mut map = vec![None; old.chars().count()];
    for op in diff.ops() {
        if let DiffOp::Equal {
            old_index,
            new_index,
            len,
        } = *op
        {
            for k in 0..len {
                if let Some(slot) = map.get_mut(old_index + k) {
                    *slot = Some(new_index + k);
                }
            }
        }
    }
    map
}

/// What carrying did to one annotation's spans.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    pub moved: usize,
    pub kept: usize,
    pub stale: usize,
}

impl Carried {
    pub fn any(&self) -> bool {
        self.moved + self.kept + self.stale > 0
    }
}

/// The values with every spans field carried from the old text to the new one.
pub fn carry(
    fields: &[LabelField],
    values: &BTreeMap<String, Value>,
    map: &[Option<usize>],
) -> (BTreeMap<String, Value>, Carried) {
    let mut out = values.clone();
    let mut carried = Carried::default();
    for field in fields.iter().filter(|f| f.kind == FieldType::Spans) {
        let Some(Value::Array(spans)) = out.get_mut(&field.name) else {
            continue;
        };
        for span in spans.iter_mut() {
            let Some(object) = span.as_object_mut() else {
                continue;
            };
            if object.get("stale").and_then(Value::as_bool) == Some(true) {
                carried.stale += 1;
                continue;
            }
            let bound = |key: &str| object.get(key).and_then(Value::as_u64).map(|n| n as usize);
            let (Some(start), Some(end)) = (bound("start"), bound("end")) else {
                continue;
            };
            match moved(map, start, end) {
                Some((s, e)) if (s, e) == (start, end) => carried.kept += 1,
                Some((s, e)) => {
                    object.insert("start".into(), Value::from(s));
                    object.insert("end".into(), Value::from(e));
                    carried.moved += 1;
                }
                None => {
                    object.insert("stale".into(), Value::Bool(true));
                    carried.stale += 1;
                }
            }
        }
    }
    (out, carried)
}

/// `[start, end)` in the new text, when every code point of it is unchanged and still
/// together.
fn moved(map: &[Option<usize>], start: usize, end: usize) -> Option<(usize, usize)> {
    let covered = map.get(start..end)?;
    let first = (*covered.first()?)?;
    for (k, slot) in covered.iter().enumerate() {
        if *slot != Some(first + k) {
            return None;
        }
    }
    Some((first, first + (end - start)))
}

/// The pointers of every stale span in `values` (`/values/entities/2`).
pub fn stale_spans(values: &BTreeMap<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, value) in values {
        if let Value::Array(items) = value {
            for (j, item) in items.iter().enumerate() {
                if item.get("stale").and_then(Value::as_bool) == Some(true) {
                    out.push(format!("/values/{name}/{j}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::labels::schema::{FieldInput, normalise};
    use serde_json::json;

    fn fields() -> Vec<LabelField> {
        normalise(vec![FieldInput {
            name: "entities".into(),
            kind: Some(FieldType::Spans),
            options: Some(vec!["PER".into(), "LOC".into()]),
            ..FieldInput::default()
        }])
        .unwrap()
    }

    fn spans(list: Value) -> BTreeMap<String, Value> {
        BTreeMap::from([("entities".to_owned(), list)])
    }

    #[test]
    fn spans_move_with_insertions_and_go_stale_when_their_text_changes() {
        // "Ana" at 0..3, "Nairobi" at 13..20.
        let old = "Ana lives in Nairobi.";
        let values = spans(json!([
            {"start": 0, "end": 3, "label": "PER"},
            {"start": 13, "end": 20, "label": "LOC"},
        ]));
        // An insertion before both: both move by its length (an emoji is one).
        let new = "👋 Ana lives in Nairobi.";
        let (out, carried) = carry(&fields(), &values, &code_point_map(old, new));
        assert_eq!(
            carried,
            Carried {
                moved: 2,
                kept: 0,
                stale: 0
            }
        );
        assert_eq!(
            out["entities"][0],
            json!({"start": 2, "end": 5, "label": "PER"})
        );
        assert_eq!(
            out["entities"][1],
            json!({"start": 15, "end": 22, "label": "LOC"})
        );
        // An edit inside the second span's words: it goes stale, the first stays put.
        let new = "Ana lives in Nairobbi.";
        let (out, carried) = carry(&fields(), &values, &code_point_map(old, new));
        assert_eq!(
            carried,
            Carried {
                moved: 0,
                kept: 1,
                stale: 1
            }
        );
        assert_eq!(out["entities"][1]["stale"], true);
        assert_eq!(stale_spans(&out), vec!["/values/entities/1".to_owned()]);
        // A deletion after both changes nothing; one before moves them back.
        let (_, carried) = carry(
            &fields(),
            &values,
            &code_point_map(old, "Ana lives in Nairobi"),
        );
        assert_eq!(
            carried,
            Carried {
                moved: 0,
                kept: 2,
                stale: 0
            }
        );
        let (out, _) = carry(
            &fields(),
            &values,
            &code_point_map(old, "na lives in Nairobi."),
        );
        assert_eq!(out["entities"][0]["stale"], true);
        assert_eq!(
            out["entities"][1],
            json!({"start": 12, "end": 19, "label": "LOC"})
        );
    }

    #[test]
    fn combining_characters_count_as_code_points() {
        // "é" as e + U+0301: two code points.
        let old = "Jose\u{301} and Ana";
        let values = spans(json!([{"start": 10, "end": 13, "label": "PER"}]));
        let new = "Dr Jose\u{301} and Ana";
        let (out, _) = carry(&fields(), &values, &code_point_map(old, new));
        assert_eq!(
            out["entities"][0],
            json!({"start": 13, "end": 16, "label": "PER"})
        );
    }
}
