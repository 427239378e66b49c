//! An annotation's values checked against the schema: every value by its field's type
//! and rules, spans against the item's text (code points), segments against the
//! recording's length. A fault answers with the JSON pointer of the value at fault
//! (`/values/entities/3/end`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::schema::{FieldType, LabelField};
use crate::{ErrorCode, domain::DataKind, error::EngineError};

/// Most spans or segments in one field.
pub const MAX_RANGES: usize = 2_000;
const SEGMENT_TEXT_MAX_CHARS: usize = 10_000;
const SPEAKER_MAX_CHARS: usize = 100;

/// What the values are about.
pub struct Target<'a> {
    pub kind: DataKind,
    /// The item's current text (documents; spans count in its code points).
    pub text: Option<&'a str>,
    /// The recording's length, when known.
    pub duration_ms: Option<u64>,
}

/// RFC 6901: `~` and `/` inside a name.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn invalid(pointer: String, message: impl Into<String>) -> EngineError {
    EngineError::validation(ErrorCode::InvalidAnnotation, pointer, message)
}

/// The values to store: each checked, `null`s dropped.
pub fn check(
    fields: &[LabelField],
    values: BTreeMap<String, Value>,
    target: &Target<'_>,
) -> Result<BTreeMap<String, Value>, EngineError> {
    let mut out = BTreeMap::new();
    for (name, value) in values {
        let at = format!("/values/{}", escape(&name));
        let Some(field) = fields.iter().find(|f| f.name == name) else {
            return Err(invalid(at, format!("the schema has no field {name:?}")));
        };
        if value.is_null() {
            continue;
        }
        check_value(field, &value, &at, target)?;
        out.insert(name, value);
    }
    Ok(out)
}

/// The `(field, value)` pairs of the label and multi_label values, as lists filter by.
pub fn indexed_labels(
    fields: &[LabelField],
    values: &BTreeMap<String, Value>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for field in fields {
        match (field.kind, values.get(&field.name)) {
            (FieldType::Label, Some(Value::String(v))) => out.push((field.name.clone(), v.clone())),
            (FieldType::MultiLabel, Some(Value::Array(items))) => out.extend(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|v| (field.name.clone(), v.to_owned())),
            ),
            _ => {}
        }
    }
    out
}

/// The required fields `values` leaves unset.
pub fn missing_required<'a>(
    fields: &'a [LabelField],
    values: Option<&BTreeMap<String, Value>>,
) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|f| f.required)
        .filter(|f| {
            values
                .and_then(|v| v.get(&f.name))
                .is_none_or(Value::is_null)
        })
        .map(|f| f.name.as_str())
        .collect()
}

fn check_value(
    field: &LabelField,
    value: &Value,
    at: &str,
    target: &Target<'_>,
) -> Result<(), EngineError> {
    let options = field.options();
    match field.kind {
        FieldType::Label => {
            let label = value
                .as_str()
                .ok_or_else(|| invalid(at.into(), "a label is a string"))?;
            if !options.iter().any(|o| o == label) {
                return Err(invalid(
                    at.into(),
                    format!("{label:?} is not one of the field's options"),
                ));
            }
        }
        FieldType::MultiLabel => {
            let labels = value
                .as_array()
                .ok_or_else(|| invalid(at.into(), "a multi-label value is a list"))?;
            let mut seen: Vec<&str> = Vec::new();
            for (j, label) in labels.iter().enumerate() {
                let label = label
                    .as_str()
                    .filter(|l| options.iter().any(|o| o == l))
                    .ok_or_else(|| {
                        invalid(format!("{at}/{j}"), "not one of the field's options")
                    })?;
                if seen.contains(&label) {
                    return Err(invalid(at.into(), format!("{label:?} is listed twice")));
                }
                seen.push(label);
            }
            let count = seen.len() as i64;
            if field.min.is_some_and(|min| count < min) || field.max.is_some_and(|max| count > max)
            {
                return Err(invalid(
                    at.into(),
                    format!(
                        "choose {} to {} options",
                        field.min.unwrap_or(0),
                        field.max.unwrap_or(options.len() as i64)
                    ),
                ));
            }
        }
        FieldType::Rating => {
            let n = value
                .as_i64()
                .ok_or_else(|| invalid(at.into(), "a rating is an integer"))?;
            let (min, max) = (field.min.unwrap_or(i64::MIN), field.max.unwrap_or(i64::MAX));
            if !(min..=max).contains(&n) {
                return Err(invalid(
                    at.into(),
                    format!("a rating is from {min} to {max}"),
                ));
            }
        }
        FieldType::Text => {
            let text = value
                .as_str()
                .ok_or_else(|| invalid(at.into(), "a text value is a string"))?;
            let max = field.max_length.unwrap_or(u32::MAX) as usize;
            if text.chars().count() > max {
                return Err(invalid(at.into(), format!("at most {max} characters")));
            }
        }
        FieldType::Spans => {
            if target.kind != DataKind::Document {
                return Err(invalid(at.into(), "spans are for documents"));
            }
            let len = target.text.map_or(0, |t| t.chars().count()) as u64;
            let ranges = ranges(field, value, at, ("start", "end"), Some(len), |_, _| Ok(()))?;
            no_overlap(field, &ranges, at)?;
        }
        FieldType::Segments => {
            if target.kind != DataKind::Audio {
                return Err(invalid(at.into(), "segments are for recordings"));
            }
            let ranges = ranges(
                field,
                value,
                at,
                ("start_ms", "end_ms"),
                target.duration_ms,
                |object, at| {
                    for (key, max) in [
                        ("text", SEGMENT_TEXT_MAX_CHARS),
                        ("speaker", SPEAKER_MAX_CHARS),
                    ] {
                        if let Some(v) = object.get(key).filter(|v| !v.is_null()) {
                            let ok = v.as_str().is_some_and(|s| s.chars().count() <= max);
                            if !ok {
                                return Err(invalid(
                                    format!("{at}/{key}"),
                                    format!("{key} is a string of at most {max} characters"),
                                ));
                            }
                        }
                    }
                    Ok(())
                },
            )?;
            no_overlap(field, &ranges, at)?;
        }
    }
    Ok(())
}

/// Each range of a spans or segments value: an object with the two bounds and a label
/// (and, for segments, what `extra` checks); `[start, end)` within `0..=limit`.
fn ranges(
    field: &LabelField,
    value: &Value,
    at: &str,
    (start_key, end_key): (&str, &str),
    limit: Option<u64>,
    extra: impl Fn(&serde_json::Map<String, Value>, &str) -> Result<(), EngineError>,
) -> Result<Vec<(u64, u64)>, EngineError> {
    let items = value
        .as_array()
        .ok_or_else(|| invalid(at.into(), "a list of ranges"))?;
    if items.len() > MAX_RANGES {
        return Err(invalid(
            at.into(),
            format!("at most {MAX_RANGES} ranges in one field"),
        ));
    }
    let allowed = [start_key, end_key, "label", "text", "speaker"];
    let mut out = Vec::with_capacity(items.len());
    for (j, item) in items.iter().enumerate() {
        let here = format!("{at}/{j}");
        let object = item
            .as_object()
            .ok_or_else(|| invalid(here.clone(), "a range is an object"))?;
        if object.contains_key("stale") {
            return Err(invalid(
                format!("{here}/stale"),
                "a stale span (its text changed) is sent again with offsets in the current \
                 text and without `stale`, or left out",
            ));
        }
        let extra_keys = if field.kind == FieldType::Segments {
            5
        } else {
            3
        };
        if let Some(key) = object
            .keys()
            .find(|k| !allowed[..extra_keys].contains(&k.as_str()))
        {
            return Err(invalid(
                format!("{here}/{}", escape(key)),
                "not a key of a range",
            ));
        }
        let bound = |key: &str| {
            object
                .get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| invalid(format!("{here}/{key}"), "a whole number from 0"))
        };
        let (start, end) = (bound(start_key)?, bound(end_key)?);
        if end <= start {
            return Err(invalid(
                format!("{here}/{end_key}"),
                format!("{end_key} must be after {start_key}"),
            ));
        }
        if let Some(limit) = limit
            && end > limit
        {
            return Err(invalid(
                format!("{here}/{end_key}"),
                format!("{end_key} is past the end ({limit})"),
            ));
        }
        let label = object.get("label").and_then(Value::as_str);
        if !label.is_some_and(|l| field.options().iter().any(|o| o == l)) {
            return Err(invalid(
                format!("{here}/label"),
                "not one of the field's options",
            ));
        }
        extra(object, &here)?;
        out.push((start, end));
    }
    Ok(out)
}

/// Ranges that overlap are refused (at the later one) unless the field allows it.
fn no_overlap(field: &LabelField, ranges: &[(u64, u64)], at: &str) -> Result<(), EngineError> {
    if field.allows_overlap() {
        return Ok(());
    }
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&j| ranges[j]);
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if ranges[b].0 < ranges[a].1 {
            let later = a.max(b);
            return Err(invalid(
                format!("{at}/{later}"),
                format!(
                    "overlaps range {}; this field does not allow overlaps",
                    a.min(b)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::labels::schema::{FieldInput, normalise};
    use serde_json::json;

    fn schema() -> Vec<LabelField> {
        normalise(vec![FieldInput {
            name: "entities".into(),
            kind: Some(FieldType::Spans),
            options: Some(vec!["PER".into()]),
            ..FieldInput::default()
        }])
        .unwrap()
    }

    fn pointer(result: Result<BTreeMap<String, Value>, EngineError>) -> String {
        match result {
            Err(EngineError::Validation { field, .. }) => field.unwrap().into_owned(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn doc(text: &str) -> Target<'_> {
        Target {
            kind: DataKind::Document,
            text: Some(text),
            duration_ms: None,
        }
    }

    #[test]
    fn spans_count_code_points() {
        let text = "Hi 👋 Ana";
        let ok = BTreeMap::from([(
            "entities".to_owned(),
            json!([{"start": 5, "end": 8, "label": "PER"}]),
        )]);
        assert!(check(&schema(), ok, &doc(text)).is_ok());
        let past = BTreeMap::from([(
            "entities".to_owned(),
            json!([{"start": 5, "end": 9, "label": "PER"}]),
        )]);
        assert_eq!(
            pointer(check(&schema(), past, &doc(text))),
            "/values/entities/0/end"
        );
    }

    #[test]
    fn overlaps_are_refused_at_the_later_range() {
        let values = BTreeMap::from([(
            "entities".to_owned(),
            json!([{"start": 0, "end": 2, "label": "PER"}, {"start": 1, "end": 3, "label": "PER"}]),
        )]);
        assert_eq!(
            pointer(check(&schema(), values, &doc("abcdef"))),
            "/values/entities/1"
        );
    }
}
