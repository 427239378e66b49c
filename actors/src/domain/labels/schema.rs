//! A project's label schema: the fields an annotation fills in, each with its type and
//! rules. A schema is checked and normalised (defaults filled in) before it is stored,
//! so every stored version is valid and reads back as it will be applied.

use serde::{Deserialize, Serialize};

use crate::{ErrorCode, error::EngineError};

/// Most fields in one schema.
pub const MAX_FIELDS: usize = 50;
/// Most options of one field.
pub const MAX_OPTIONS: usize = 200;
const OPTION_MAX_CHARS: usize = 100;
const TITLE_MAX_CHARS: usize = 200;
const NAME_MAX_CHARS: usize = 64;
/// A `text` field's default and largest `max_length` (characters).
pub const TEXT_MAX_LENGTH_DEFAULT: u32 = 10_000;
const TEXT_MAX_LENGTH_LIMIT: u32 = 100_000;
/// The largest magnitude of a rating bound.
const RATING_LIMIT: i64 = 1_000_000;

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// One of `options`.
    Label,
    /// A subset of `options` (`min`..`max` of them).
    MultiLabel,
    /// An integer in `min`..=`max`.
    Rating,
    /// Free text of at most `max_length` characters.
    Text,
    /// Labelled `[start, end)` ranges of a document's text, in code points.
    Spans,
    /// Labelled `[start_ms, end_ms)` ranges of a recording.
    Segments,
}

impl FieldType {
    fn has_options(self) -> bool {
        matches!(
            self,
            Self::Label | Self::MultiLabel | Self::Spans | Self::Segments
        )
    }

    fn has_ranges(self) -> bool {
        matches!(self, Self::Spans | Self::Segments)
    }
}

/// A field as stored and shown: every default filled in, type-specific keys only where
/// they apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelField {
    pub name: String,
    pub title: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_overlap: Option<bool>,
}

impl LabelField {
    pub fn options(&self) -> &[String] {
        self.options.as_deref().unwrap_or_default()
    }

    pub fn allows_overlap(&self) -> bool {
        self.allow_overlap.unwrap_or(false)
    }
}

/// A field as a client sends it.
#[derive(Debug, Clone, Default)]
pub struct FieldInput {
    pub name: String,
    pub title: Option<String>,
    pub kind: Option<FieldType>,
    pub required: Option<bool>,
    pub options: Option<Vec<String>>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub max_length: Option<u32>,
    pub allow_overlap: Option<bool>,
}

fn invalid(field: String, message: impl Into<String>) -> EngineError {
    EngineError::validation(ErrorCode::InvalidLabelSchema, field, message)
}

/// Check a schema and fill in its defaults; the first fault, with its JSON pointer.
pub fn normalise(fields: Vec<FieldInput>) -> Result<Vec<LabelField>, EngineError> {
    if fields.len() > MAX_FIELDS {
        return Err(invalid(
            "/fields".into(),
            format!("a schema has at most {MAX_FIELDS} fields"),
        ));
    }
    let mut out: Vec<LabelField> = Vec::with_capacity(fields.len());
    for (i, input) in fields.into_iter().enumerate() {
        let at = |key: &str| format!("/fields/{i}/{key}");
        let name = input.name;
        let name_ok = name.len() <= NAME_MAX_CHARS
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !name_ok {
            return Err(invalid(
                at("name"),
                "a field name is 1 to 64 characters: a lowercase letter, then lowercase \
                 letters, digits or _",
            ));
        }
        if out.iter().any(|f| f.name == name) {
            return Err(invalid(
                at("name"),
                format!("two fields are named {name:?}"),
            ));
        }
        let kind = input
            .kind
            .ok_or_else(|| invalid(at("type"), "every field has a type"))?;
        let title = match input.title {
            Some(t) if t.trim().is_empty() || t.chars().count() > TITLE_MAX_CHARS => {
                return Err(invalid(
                    at("title"),
                    format!("a title is 1 to {TITLE_MAX_CHARS} characters"),
                ));
            }
            Some(t) => t.trim().to_owned(),
            None => name.clone(),
        };
        let options = match (kind.has_options(), input.options) {
            (true, None) => return Err(invalid(at("options"), "this field needs options")),
            (true, Some(options)) => Some(check_options(i, options)?),
            (false, Some(_)) => {
                return Err(invalid(at("options"), "this type of field has no options"));
            }
            (false, None) => None,
        };
        let option_count = options.as_ref().map_or(0, Vec::len) as i64;
        let (min, max) = match kind {
            FieldType::Rating => {
                let min = input
                    .min
                    .ok_or_else(|| invalid(at("min"), "a rating needs min and max"))?;
                let max = input
                    .max
                    .ok_or_else(|| invalid(at("max"), "a rating needs min and max"))?;
                if min.abs() > RATING_LIMIT || max.abs() > RATING_LIMIT {
                    return Err(invalid(
                        at("min"),
                        format!("rating bounds are within ±{RATING_LIMIT}"),
                    ));
                }
                if min > max {
                    return Err(invalid(at("min"), "min is greater than max"));
                }
                (Some(min), Some(max))
            }
            FieldType::MultiLabel => {
                if input.min.is_some_and(|m| m < 0) {
                    return Err(invalid(at("min"), "min is a count, 0 or more"));
                }
                if input.max.is_some_and(|m| m < 1 || m > option_count) {
                    return Err(invalid(
                        at("max"),
                        format!("max is a count from 1 to the {option_count} options"),
                    ));
                }
                if let (Some(min), Some(max)) = (input.min, input.max)
                    && min > max
                {
                    return Err(invalid(at("min"), "min is greater than max"));
                }
                if input.min.is_some_and(|m| m > option_count) {
                    return Err(invalid(
                        at("min"),
                        format!("min is more than the {option_count} options"),
                    ));
                }
                (input.min, input.max)
            }
            _ => {
                if input.min.is_some() {
                    return Err(invalid(at("min"), "this type of field has no min"));
                }
                if input.max.is_some() {
                    return Err(invalid(at("max"), "this type of field has no max"));
                }
                (None, None)
            }
        };
        let max_length = match (kind, input.max_length) {
            (FieldType::Text, None) => Some(TEXT_MAX_LENGTH_DEFAULT),
            (FieldType::Text, Some(n)) if (1..=TEXT_MAX_LENGTH_LIMIT).contains(&n) => Some(n),
            (FieldType::Text, Some(_)) => {
                return Err(invalid(
                    at("max_length"),
                    format!("max_length is from 1 to {TEXT_MAX_LENGTH_LIMIT}"),
                ));
            }
            (_, Some(_)) => {
                return Err(invalid(
                    at("max_length"),
                    "only a text field has a max_length",
                ));
            }
            (_, None) => None,
        };
        let allow_overlap = match (kind.has_ranges(), input.allow_overlap) {
            (true, overlap) => Some(overlap.unwrap_or(false)),
            (false, Some(_)) => {
                return Err(invalid(
                    at("allow_overlap"),
                    "only spans and segments have allow_overlap",
                ));
            }
            (false, None) => None,
        };
        out.push(LabelField {
            name,
            title,
            kind,
            required: input.required.unwrap_or(false),
            options,
            min,
            max,
            max_length,
            allow_overlap,
        });
    }
    Ok(out)
}

fn check_options(i: usize, options: Vec<String>) -> Result<Vec<String>, EngineError> {
    if options.is_empty() {
        return Err(invalid(
            format!("/fields/{i}/options"),
            "this field needs at least one option",
        ));
    }
    if options.len() > MAX_OPTIONS {
        return Err(invalid(
            format!("/fields/{i}/options"),
            format!("a field has at most {MAX_OPTIONS} options"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(options.len());
    for (j, option) in options.into_iter().enumerate() {
        let at = format!("/fields/{i}/options/{j}");
        if option.trim().is_empty() || option.chars().count() > OPTION_MAX_CHARS {
            return Err(invalid(
                at,
                format!("an option is 1 to {OPTION_MAX_CHARS} characters"),
            ));
        }
        if out.contains(&option) {
            return Err(invalid(
                at,
                format!("the option {option:?} is listed twice"),
            ));
        }
        out.push(option);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, kind: FieldType) -> FieldInput {
        FieldInput {
            name: name.into(),
            kind: Some(kind),
            ..FieldInput::default()
        }
    }

    fn pointer(result: Result<Vec<LabelField>, EngineError>) -> String {
        match result {
            Err(EngineError::Validation { field, .. }) => field.unwrap().into_owned(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_filled_in() {
        let fields = normalise(vec![
            field("note", FieldType::Text),
            FieldInput {
                options: Some(vec!["PER".into()]),
                ..field("entities", FieldType::Spans)
            },
        ])
        .unwrap();
        assert_eq!(fields[0].title, "note");
        assert_eq!(fields[0].max_length, Some(TEXT_MAX_LENGTH_DEFAULT));
        assert!(!fields[0].required);
        assert_eq!(fields[1].allow_overlap, Some(false));
        assert_eq!(fields[1].max_length, None);
    }

    #[test]
    fn each_fault_points_at_its_place() {
        let dup = vec![field("a", FieldType::Text), field("a", FieldType::Text)];
        assert_eq!(pointer(normalise(dup)), "/fields/1/name");
        let empty = vec![FieldInput {
            options: Some(vec![]),
            ..field("a", FieldType::Label)
        }];
        assert_eq!(pointer(normalise(empty)), "/fields/0/options");
        let twice = vec![FieldInput {
            options: Some(vec!["x".into(), "x".into()]),
            ..field("a", FieldType::Label)
        }];
        assert_eq!(pointer(normalise(twice)), "/fields/0/options/1");
        let swapped = vec![FieldInput {
            min: Some(5),
            max: Some(1),
            ..field("stars", FieldType::Rating)
        }];
        assert_eq!(pointer(normalise(swapped)), "/fields/0/min");
        assert_eq!(
            pointer(normalise(vec![field("Bad", FieldType::Text)])),
            "/fields/0/name"
        );
    }
}
