//! A JSON request body checked against its schema in the served OpenAPI document
//! before it is parsed: no field the schema does not name, no scalar of another type
//! (poem-openapi would read `42` or `false` as the string "42" or "false"), values within
//! their `enum`, lengths and ranges. A refusal is a 400 `invalid_body` problem whose
//! `field` names the value at fault (`name`, `settings.accepted_kinds[1]`).

use poem::{FromRequest, Request, RequestBody, http::StatusCode};
use poem_openapi::{
    payload::{Json, ParsePayload, Payload},
    registry::{MetaSchemaRef, Registry},
    types::{ParseFromJSON, Type},
};
use regex::Regex;
use serde_json::Value;
use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
};

use crate::{document, middleware::problems::problem_response, problem::Problem};

/// A request body of type `T`, documented as `application/json`.
pub struct JsonBody<T>(pub T);

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        <Json<T> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ParseFromJSON> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = Vec::<u8>::from_request(request, body).await?;
        let value: Value = serde_json::from_slice(&data)
            .map_err(|err| refusal(None, format!("the body is not JSON: {err}")))?;
        let schema = match T::schema_ref() {
            MetaSchemaRef::Reference(name) => document::schema(&name),
            MetaSchemaRef::Inline(_) => None,
        };
        if let Some(schema) = schema {
            check(schema, &value, &mut String::new())
                .map_err(|(field, detail)| refusal(Some(field), detail))?;
        }
        T::parse_from_json(Some(value))
            .map(Self)
            .map_err(|err| refusal(None, err.into_message()))
    }
}

crate::payload::payload_extractor!(JsonBody<T>, T: ParseFromJSON);

fn refusal(field: Option<String>, detail: String) -> poem::Error {
    let mut problem = Problem::new(
        StatusCode::BAD_REQUEST,
        alta_actors::ErrorCode::InvalidBody,
        detail,
    );
    problem.field = field.filter(|f| !f.is_empty());
    poem::Error::from_response(problem_response(problem))
}

/// The field at fault and what is wrong with it.
type Refusal = (String, String);

/// `value` against a schema of the document; `path` names `value` (empty: the body).
fn check(schema: &Value, value: &Value, path: &mut String) -> Result<(), Refusal> {
    if let Some(target) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(document::resolve)
    {
        check(target, value, path)?;
    }
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        check(part, value, path)?;
    }
    let at = |path: &String, what: String| -> Refusal {
        let name = if path.is_empty() { "the body" } else { path };
        (path.clone(), format!("{name} {what}"))
    };
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return Err(at(path, format!("must be one of {}", names.join(", "))));
    }
    let Some(ty) = schema.get("type").and_then(Value::as_str) else {
        return Ok(()); // any JSON value
    };
    let fits = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    };
    if !fits {
        return Err(at(
            path,
            format!("must be of type {ty}, not {}", kind(value)),
        ));
    }
    match value {
        Value::Object(fields) => check_object(schema, fields, path),
        Value::Array(items) => {
            let count = items.len();
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && count as u64 > max
            {
                return Err(at(path, format!("must have at most {max} items")));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (count as u64) < min
            {
                return Err(at(path, format!("must have at least {min} items")));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    check(item_schema, item, path)?;
                    path.truncate(len);
                }
            }
            Ok(())
        }
        Value::String(text) => {
            let chars = text.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && chars > max
            {
                return Err(at(path, format!("must be at most {max} characters")));
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && chars < min
            {
                return Err(at(path, format!("must be at least {min} characters")));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && !matches_pattern(pattern, text)
            {
                return Err(at(path, format!("must match {pattern}")));
            }
            let well_formed = match schema.get("format").and_then(Value::as_str) {
                Some("uuid") => uuid::Uuid::parse_str(text).is_ok(),
                Some("date-time") => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
                _ => true,
            };
            if !well_formed {
                let format = schema["format"].as_str().unwrap_or_default();
                return Err(at(path, format!("must be a {format}")));
            }
            Ok(())
        }
        Value::Number(number) => {
            let n = number.as_f64().unwrap_or_default();
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                return Err(at(path, format!("must be at most {max}")));
            }
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                return Err(at(path, format!("must be at least {min}")));
            }
            let range = match schema.get("format").and_then(Value::as_str) {
                Some("uint32") => Some((0.0, f64::from(u32::MAX))),
                Some("uint16") => Some((0.0, f64::from(u16::MAX))),
                Some("int32") => Some((f64::from(i32::MIN), f64::from(i32::MAX))),
                Some("uint64") => Some((0.0, u64::MAX as f64)),
                _ => None,
            };
            if let Some((low, high)) = range
                && !(low..=high).contains(&n)
            {
                return Err(at(path, format!("must be between {low} and {high}")));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_object(
    schema: &Value,
    fields: &serde_json::Map<String, Value>,
    path: &mut String,
) -> Result<(), Refusal> {
    let properties = schema.get("properties").and_then(Value::as_object);
    let child = |path: &String, name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    for name in required {
        if fields.get(name).is_none_or(Value::is_null) {
            let field = child(path, name);
            return Err((field.clone(), format!("{field} is required")));
        }
    }
    let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    for (name, value) in fields {
        match properties.and_then(|p| p.get(name)) {
            // Absent and null are the same for an optional field.
            Some(_) if value.is_null() => {}
            Some(property) => {
                let len = path.len();
                *path = child(path, name);
                check(property, value, path)?;
                path.truncate(len);
            }
            None if closed => {
                let field = child(path, name);
                return Err((field.clone(), format!("unknown field {field}")));
            }
            None => {}
        }
    }
    Ok(())
}

/// The document's patterns, compiled once each.
fn matches_pattern(pattern: &str, text: &str) -> bool {
    static COMPILED: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let mut compiled = COMPILED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    compiled
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(pattern).ok())
        .as_ref()
        .is_none_or(|re| re.is_match(text))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
