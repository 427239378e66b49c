//! What a schema change would take away from annotations that exist: a field removed
//! (or whose type changed), or an option removed from a field. The store counts the
//! annotations each removal touches (`store::labels::annotations_using`), in the
//! database, without reading them.

use super::schema::LabelField;

/// One thing a new schema version takes away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// The field is gone, or its type changed: any value of it is in the way.
    Field { field: String },
    /// The option is gone from the field: a value that uses it is in the way (a label,
    /// one of a multi-label's, a span's or segment's label).
    Option { field: String, option: String },
}

impl Removal {
    /// The field and, for an option, the option.
    pub fn target(&self) -> (&str, Option<&str>) {
        match self {
            Self::Field { field } => (field, None),
            Self::Option { field, option } => (field, Some(option)),
        }
    }

    /// What the refusal says of it, given how many annotations use it.
    pub fn describe(&self, annotations: i64) -> String {
        match self {
            Self::Field { field } => {
                format!("field {field:?} is used by {annotations} annotations")
            }
            Self::Option { field, option } => {
                format!("option {option:?} of field {field:?} is used by {annotations} annotations")
            }
        }
    }
}

/// Everything `new` takes away from `old`, field by field.
pub fn removals(old: &[LabelField], new: &[LabelField]) -> Vec<Removal> {
    let mut out = Vec::new();
    for field in old {
        let kept = new
            .iter()
            .find(|f| f.name == field.name && f.kind == field.kind);
        match kept {
            None => out.push(Removal::Field {
                field: field.name.clone(),
            }),
            Some(kept) => {
                for option in field.options() {
                    if !kept.options().contains(option) {
                        out.push(Removal::Option {
                            field: field.name.clone(),
                            option: option.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, kind: &str, options: &[&str]) -> LabelField {
        let mut v =
            serde_json::json!({"name": name, "title": name, "type": kind, "required": false});
        if !options.is_empty() {
            v["options"] = serde_json::json!(options);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn removed_fields_retyped_fields_and_removed_options() {
        let old = [
            field("sentiment", "label", &["pos", "neg"]),
            field("note", "text", &[]),
            field("score", "rating", &[]),
            field("entities", "spans", &["PER", "LOC"]),
        ];
        let new = [
            field("sentiment", "label", &["neg", "neu"]),
            field("score", "text", &[]),
            field("entities", "spans", &["PER", "LOC", "ORG"]),
        ];
        assert_eq!(
            removals(&old, &new),
            vec![
                Removal::Option {
                    field: "sentiment".into(),
                    option: "pos".into()
                },
                Removal::Field {
                    field: "note".into()
                },
                Removal::Field {
                    field: "score".into()
                },
            ]
        );
        assert!(removals(&old, &old).is_empty());
        assert_eq!(
            removals(&old, &new)[0].describe(2),
            "option \"pos\" of field \"sentiment\" is used by 2 annotations"
        );
    }
}
