//! What a schema change would take away from annotations that exist: a field removed
//! (or whose type changed), or an option removed from a field that values use.

use std::collections::BTreeMap;

use serde_json::Value;

use super::schema::LabelField;

/// Every label a value uses (its own, a multi-label's, each range's).
fn labels_of(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items
            .iter()
            .filter_map(|item| item.as_str().or_else(|| item.get("label")?.as_str()))
            .collect(),
        _ => Vec::new(),
    }
}

/// One line per removal that annotations use, with how many use it.
pub fn removals_in_use<'a>(
    old: &[LabelField],
    new: &[LabelField],
    annotations: impl Iterator<Item = &'a BTreeMap<String, Value>> + Clone,
) -> Vec<String> {
    let mut out = Vec::new();
    for field in old {
        let kept = new
            .iter()
            .find(|f| f.name == field.name && f.kind == field.kind);
        match kept {
            None => {
                let n = annotations
                    .clone()
                    .filter(|a| a.contains_key(&field.name))
                    .count();
                if n > 0 {
                    out.push(format!("field {:?} is used by {n} annotations", field.name));
                }
            }
            Some(kept) => {
                for option in field.options() {
                    if kept.options().contains(option) {
                        continue;
                    }
                    let n = annotations
                        .clone()
                        .filter(|a| {
                            a.get(&field.name)
                                .is_some_and(|v| labels_of(v).contains(&option.as_str()))
                        })
                        .count();
                    if n > 0 {
                        out.push(format!(
                            "option {option:?} of field {:?} is used by {n} annotations",
                            field.name
                        ));
                    }
                }
            }
        }
    }
    out
}
