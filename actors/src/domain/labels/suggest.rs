//! Machine suggestions for an annotation: where they come from (a named source, or a
//! transcription's word timings), and how a contributor's acceptance merges them into
//! the human values.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::schema::{FieldType, LabelField};
use crate::{ErrorCode, error::EngineError};

/// The source of suggestions read from a transcription's word timings; no client may
/// post under it.
pub const TRANSCRIPTION_SOURCE: &str = "transcription";
const SOURCE_MAX_CHARS: usize = 64;
/// A pause this long between words starts a new suggested segment.
const SEGMENT_GAP_MS: u64 = 1_000;
/// A suggested segment grows no longer than this.
const SEGMENT_MAX_MS: u64 = 30_000;

fn invalid(pointer: impl Into<crate::error::Field>, message: impl Into<String>) -> EngineError {
    EngineError::validation(ErrorCode::InvalidAnnotation, pointer, message)
}

/// A source names what made a suggestion: `^[a-z0-9][a-z0-9_.:-]{0,63}$`, not
/// [`TRANSCRIPTION_SOURCE`].
pub fn check_source(source: &str) -> Result<(), EngineError> {
    let mut chars = source.chars();
    let well_formed = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.:-".contains(c))
        && source.len() <= SOURCE_MAX_CHARS;
    if !well_formed {
        return Err(invalid(
            "/source",
            "a source is 1 to 64 of a-z, 0-9, _ . : - (starting with a letter or digit)",
        ));
    }
    if source == TRANSCRIPTION_SOURCE {
        return Err(invalid(
            "/source",
            "\"transcription\" is kept for suggestions read from the transcript's word timings",
        ));
    }
    Ok(())
}

/// A suggestion's score: a confidence from 0 to 1.
pub fn check_score(score: Option<f64>) -> Result<(), EngineError> {
    match score {
        Some(s) if !(0.0..=1.0).contains(&s) => {
            Err(invalid("/score", "a score is a number from 0 to 1"))
        }
        _ => Ok(()),
    }
}

/// One word of a transcript, as the speech engine timed it.
struct Word<'a> {
    text: &'a str,
    start_ms: u64,
    end_ms: u64,
}

fn words(words: &Value) -> Vec<Word<'_>> {
    let ms = |w: &Value, key: &str| {
        w.get(key)
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| (s * 1000.0).round() as u64)
    };
    let mut out: Vec<Word<'_>> = words
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|w| {
            Some(Word {
                text: w.get("word")?.as_str()?,
                start_ms: ms(w, "start_seconds")?,
                end_ms: ms(w, "end_seconds")?,
            })
        })
        .collect();
    out.sort_by_key(|w| w.start_ms);
    out
}

/// Suggested segments from a transcript's word timings, for each `segments` field of
/// the schema: words joined into a segment until a pause of a second or 30 seconds
/// of speech, labelled with the field's first option (the annotator relabels), the
/// words as its `text`. Segments do not overlap and end within the recording.
pub fn from_word_timings(
    fields: &[LabelField],
    timings: &Value,
    duration_ms: Option<u64>,
) -> BTreeMap<String, Value> {
    let words = words(timings);
    let mut spans: Vec<(u64, u64, Vec<&str>)> = Vec::new();
    for word in &words {
        let start = spans
            .last()
            .map_or(word.start_ms, |s| word.start_ms.max(s.1));
        let end = word.end_ms.max(start);
        match spans.last_mut() {
            Some(last)
                if start.saturating_sub(last.1) < SEGMENT_GAP_MS
                    && end.saturating_sub(last.0) <= SEGMENT_MAX_MS =>
            {
                last.1 = end;
                last.2.push(word.text);
            }
            _ => spans.push((start, end, vec![word.text])),
        }
    }
    let mut out = BTreeMap::new();
    for field in fields.iter().filter(|f| f.kind == FieldType::Segments) {
        let Some(label) = field.options().first() else {
            continue;
        };
        let segments: Vec<Value> = spans
            .iter()
            .filter_map(|(start, end, text)| {
                let end = duration_ms.map_or(*end, |d| (*end).min(d));
                (end > *start).then(|| {
                    json!({"start_ms": start, "end_ms": end, "label": label, "text": text.join(" ")})
                })
            })
            .collect();
        if !segments.is_empty() {
            out.insert(field.name.clone(), Value::Array(segments));
        }
    }
    out
}

/// The values after accepting `suggested` (all of its fields, or those named in
/// `only`) over `current`: a suggested field replaces the current value of that field.
pub fn accept(
    current: BTreeMap<String, Value>,
    suggested: &BTreeMap<String, Value>,
    only: Option<&[String]>,
) -> Result<BTreeMap<String, Value>, EngineError> {
    let mut values = current;
    match only {
        None => values.extend(suggested.iter().map(|(k, v)| (k.clone(), v.clone()))),
        Some(names) => {
            for (i, name) in names.iter().enumerate() {
                let value = suggested.get(name).ok_or_else(|| {
                    invalid(
                        format!("/fields/{i}"),
                        format!("the suggestion has no value for {name:?}"),
                    )
                })?;
                values.insert(name.clone(), value.clone());
            }
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments_field(name: &str) -> LabelField {
        LabelField {
            name: name.into(),
            title: name.into(),
            kind: FieldType::Segments,
            required: false,
            options: Some(vec!["speech".into(), "noise".into()]),
            min: None,
            max: None,
            max_length: None,
            allow_overlap: None,
        }
    }

    fn word(w: &str, start: f64, end: f64) -> Value {
        json!({"word": w, "start_seconds": start, "end_seconds": end, "confidence": 0.9})
    }

    fn pointer(err: EngineError) -> String {
        match err {
            EngineError::Validation { field, .. } => field.unwrap().into_owned(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn sources_are_names_and_transcription_is_kept() {
        assert!(check_source("ner-v2.1:large_model").is_ok());
        for bad in [
            "",
            "Ner",
            "-x",
            "a b",
            "é",
            &"x".repeat(65),
            "transcription",
        ] {
            assert_eq!(
                pointer(check_source(bad).unwrap_err()),
                "/source",
                "{bad:?}"
            );
        }
        assert!(check_score(Some(0.0)).is_ok() && check_score(Some(1.0)).is_ok());
        assert!(check_score(Some(1.5)).is_err() && check_score(Some(-0.1)).is_err());
    }

    #[test]
    fn words_join_into_segments_split_at_pauses_and_clamped_to_the_recording() {
        let timings = json!([
            word("hello", 0.0, 0.4),
            word("there", 0.5, 0.9),
            // a pause of 1.1 s: a new segment
            word("general", 2.0, 2.5),
            word("kenobi", 2.6, 3.4),
            {"word": "untimed"},
        ]);
        let fields = [segments_field("speech"), segments_field("turns")];
        let out = from_word_timings(&fields, &timings, Some(3_000));
        let expected = json!([
            {"start_ms": 0, "end_ms": 900, "label": "speech", "text": "hello there"},
            {"start_ms": 2000, "end_ms": 3000, "label": "speech", "text": "general kenobi"},
        ]);
        assert_eq!(out["speech"], expected);
        assert_eq!(out["turns"], expected);
    }

    #[test]
    fn overlapping_word_times_never_make_overlapping_segments_and_long_speech_splits() {
        let mut timings: Vec<Value> = (0..40)
            .map(|i| word("w", f64::from(i), f64::from(i) + 1.2))
            .collect();
        timings.push(word("late", 100.0, 100.0));
        let out = from_word_timings(&[segments_field("s")], &Value::Array(timings), None);
        let segments = out["s"].as_array().unwrap();
        assert!(segments.len() >= 2, "40 s of speech is split: {segments:?}");
        let mut last_end = 0;
        for s in segments {
            let (start, end) = (
                s["start_ms"].as_u64().unwrap(),
                s["end_ms"].as_u64().unwrap(),
            );
            assert!(start >= last_end && end > start && end - start <= SEGMENT_MAX_MS);
            last_end = end;
        }
        // A zero-length word alone makes no segment.
        assert!(segments.iter().all(|s| s["text"] != "late"));
    }

    #[test]
    fn no_segments_field_or_no_words_suggests_nothing() {
        let label = LabelField {
            kind: FieldType::Label,
            ..segments_field("topic")
        };
        let timings = json!([word("a", 0.0, 1.0)]);
        assert!(from_word_timings(&[label], &timings, None).is_empty());
        assert!(from_word_timings(&[segments_field("s")], &json!([]), None).is_empty());
        assert!(from_word_timings(&[segments_field("s")], &json!("nonsense"), None).is_empty());
    }

    #[test]
    fn accepting_replaces_the_named_fields_and_keeps_the_rest() {
        let current = BTreeMap::from([
            ("topic".to_owned(), json!("sport")),
            ("stars".to_owned(), json!(3)),
        ]);
        let suggested = BTreeMap::from([
            ("topic".to_owned(), json!("news")),
            ("tags".to_owned(), json!(["a"])),
        ]);
        let all = accept(current.clone(), &suggested, None).unwrap();
        assert_eq!(all["topic"], "news");
        assert_eq!(all["stars"], 3);
        assert_eq!(all["tags"], json!(["a"]));
        let some = accept(current.clone(), &suggested, Some(&["tags".to_owned()])).unwrap();
        assert_eq!(some["topic"], "sport");
        assert_eq!(some["tags"], json!(["a"]));
        let err = accept(current, &suggested, Some(&["tags".into(), "stars".into()])).unwrap_err();
        assert_eq!(pointer(err), "/fields/1");
    }
}
