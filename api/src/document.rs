//! The OpenAPI document as served: poem-openapi's output, tightened where it cannot
//! say what the server does. Request bodies are validated against this same document
//! ([`crate::json_body`]), so what it declares and what is refused cannot drift apart.

use std::sync::OnceLock;

use alta_actors::{domain::DataKind, media::detect::DetectedType};
use serde_json::{Map, Value, json};

/// poem-openapi names the JSON media type with its charset; clients (openapi-fetch,
/// openapi-typescript) look for the bare media type.
const JSON_WITH_CHARSET: &str = "application/json; charset=utf-8";
const JSON: &str = "application/json";

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc: Value = serde_json::from_str(&crate::service().spec())
            .expect("poem-openapi renders valid JSON");
        tighten(&mut doc);
        doc
    })
}

/// The document as JSON text, as served at `/api/openapi.json`.
pub fn document_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| serde_json::to_string_pretty(document()).unwrap_or_default())
}

/// A component schema by name.
pub fn schema(name: &str) -> Option<&'static Value> {
    document().pointer(&format!("/components/schemas/{}", escape_pointer(name)))
}

/// The schema a `$ref` points at (`#/components/schemas/...`).
pub fn resolve(reference: &str) -> Option<&'static Value> {
    document().pointer(reference.strip_prefix('#')?)
}

fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn tighten(doc: &mut Value) {
    // Error statuses per operation and the documented codes first; then the media
    // types, so the problem responses it adds are tightened too.
    crate::openapi_doc::finish(doc);
    bare_json_media_types(doc);
    close_request_objects(doc);
    download_media_types(doc, "document_content", &detected_types(DataKind::Document));
    download_media_types(doc, "voice_content", &detected_types(DataKind::Audio));
    download_media_types(doc, "exports_download", &EXPORT_TYPES);
    header_schemas(doc);
    close_upload_forms(doc);
    unsigned_integers_from_zero(doc);
    credentials_are_objects(doc);
}

/// The request headers the server parses itself, with the schemas of what it accepts:
/// poem-openapi knows them only as strings.
fn header_schemas(doc: &mut Value) {
    let byte_count = json!({"type": "integer", "format": "int64", "minimum": 0});
    let table = [
        ("Upload-Offset", byte_count.clone()),
        ("Upload-Length", byte_count),
        (
            "Upload-Metadata",
            json!({"type": "string", "maxLength": crate::uploads::MAX_METADATA_HEADER}),
        ),
        (
            "Upload-Checksum",
            json!({"type": "string", "pattern": "^(sha1|sha256) [A-Za-z0-9+/]+={0,2}$"}),
        ),
        (
            "Idempotency-Key",
            json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]([ -~]*[!-~])?$"}),
        ),
    ];
    // Deferred lengths are not supported (400 `defer_length_unsupported` when sent):
    // not a parameter to offer.
    for op in operations_mut(doc) {
        if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
            params.retain(|p| p.get("name").and_then(Value::as_str) != Some("Upload-Defer-Length"));
        }
    }
    for param in operations_mut(doc).flat_map(|op| {
        op.get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
    }) {
        let name = param
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if param.get("in").and_then(Value::as_str) == Some("header")
            && let Some((_, schema)) = table.iter().find(|(n, _)| *n == name)
        {
            param["schema"] = schema.clone();
        }
    }
}

/// The upload form refuses fields it does not name (as JSON bodies do), and its ids are
/// UUIDs.
fn close_upload_forms(doc: &mut Value) {
    for op in operations_mut(doc) {
        let Some(schema) = op
            .pointer_mut("/requestBody/content/multipart~1form-data/schema")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        schema.insert("additionalProperties".into(), Value::Bool(false));
        if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            for name in ["project_id", "replaces"] {
                if let Some(property) = properties.get_mut(name).and_then(Value::as_object_mut) {
                    property.insert("format".into(), json!("uuid"));
                }
            }
        }
    }
}

/// An unsigned integer (`uint16`, `uint32`, `uint64`) cannot be negative: say so, so
/// that a generated client and a fuzzer do not have to know the formats.
fn unsigned_integers_from_zero(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let unsigned = map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| f.starts_with("uint"));
            if unsigned
                && map.get("type").and_then(Value::as_str) == Some("integer")
                && !map.contains_key("minimum")
            {
                map.insert("minimum".into(), json!(0));
            }
            map.values_mut().for_each(unsigned_integers_from_zero);
        }
        Value::Array(items) => items.iter_mut().for_each(unsigned_integers_from_zero),
        _ => {}
    }
}

/// A passkey ceremony's `credential` is the browser's `PublicKeyCredential` as JSON: an
/// object (poem-openapi leaves an untyped value untyped, which would admit `null`).
fn credentials_are_objects(doc: &mut Value) {
    for name in ["LoginVerifyRequest", "RegisterVerifyRequest"] {
        if let Some(credential) = doc
            .pointer_mut(&format!("/components/schemas/{name}/properties/credential"))
            .and_then(Value::as_object_mut)
        {
            credential.insert("type".into(), json!("object"));
        }
    }
}

/// Every operation of every path.
fn operations_mut(doc: &mut Value) -> impl Iterator<Item = &mut Value> {
    doc.get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|ops| ops.values_mut())
}

/// The bare media types of a kind's detected file types.
fn detected_types(kind: DataKind) -> Vec<&'static str> {
    DetectedType::ALL
        .iter()
        .filter(|t| t.kind() == kind)
        .map(|t| t.mime().split(';').next().unwrap_or_default().trim())
        .collect()
}

/// What an export's file is: JSON Lines, CSV, or a tar with the files.
const EXPORT_TYPES: [&str; 3] = ["application/x-ndjson", "text/csv", "application/x-tar"];

/// A download is served with the type of the file it serves: the document lists each
/// type it can be (poem-openapi knows only one per response).
fn download_media_types(doc: &mut Value, operation_id: &str, types: &[&str]) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(operation) = paths
        .values_mut()
        .flat_map(object_values)
        .find(|op| op.get("operationId").and_then(Value::as_str) == Some(operation_id))
    else {
        return;
    };
    for status in ["200", "206"] {
        let Some(content) = operation
            .pointer_mut(&format!("/responses/{status}/content"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let Some(media) = content.remove("application/octet-stream") else {
            continue;
        };
        for bare in types {
            content.insert((*bare).to_owned(), media.clone());
        }
    }
}

/// Media-type keys of request bodies and responses without `; charset=utf-8`.
fn bare_json_media_types(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for operation in paths.values_mut().flat_map(object_values) {
        if let Some(content) = operation.pointer_mut("/requestBody/content") {
            rename_json_key(content);
        }
        for response in operation
            .get_mut("responses")
            .into_iter()
            .flat_map(object_values)
        {
            if let Some(content) = response.get_mut("content") {
                rename_json_key(content);
            }
        }
    }
}

fn object_values(value: &mut Value) -> impl Iterator<Item = &mut Value> {
    value.as_object_mut().into_iter().flat_map(Map::values_mut)
}

fn rename_json_key(content: &mut Value) {
    if let Some(content) = content.as_object_mut()
        && let Some(media) = content.remove(JSON_WITH_CHARSET)
    {
        content.insert(JSON.to_owned(), media);
    }
}

/// Every request body refuses unknown fields ([`crate::json_body`] does, at every depth):
/// each object schema a JSON request body reaches says `additionalProperties: false`,
/// and that its optional fields may be `null`.
fn close_request_objects(doc: &mut Value) {
    let mut pending: Vec<String> = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for operation in paths
            .values()
            .filter_map(Value::as_object)
            .flat_map(|o| o.values())
        {
            if let Some(schema) = operation.pointer(&format!(
                "/requestBody/content/{}/schema",
                escape_pointer(JSON)
            )) {
                collect_refs(schema, &mut pending);
            }
        }
    }
    let mut closed: Vec<String> = Vec::new();
    while let Some(name) = pending.pop() {
        if closed.contains(&name) {
            continue;
        }
        let Some(schema) = doc.pointer(&format!("/components/schemas/{}", escape_pointer(&name)))
        else {
            continue;
        };
        collect_refs(schema, &mut pending);
        closed.push(name);
    }
    for name in closed {
        if let Some(schema) = doc
            .pointer_mut(&format!("/components/schemas/{}", escape_pointer(&name)))
            .and_then(Value::as_object_mut)
            && schema.get("type").and_then(Value::as_str) == Some("object")
            && schema.contains_key("properties")
        {
            schema.insert("additionalProperties".into(), Value::Bool(false));
            optional_fields_take_null(schema);
        }
    }
}

/// A request may send `null` for an optional field: it means the same as leaving it
/// out (poem-openapi reads both as `None`), so the document says so.
fn optional_fields_take_null(schema: &mut Map<String, Value>) {
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|name| name.as_str().map(str::to_owned))
        .collect();
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, property) in properties.iter_mut() {
        if let Some(property) = property.as_object_mut()
            && !required.contains(name)
        {
            property.insert("nullable".into(), Value::Bool(true));
        }
    }
}

/// Names of the component schemas a schema refers to, at any depth.
fn collect_refs(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                out.push(name.replace("~1", "/").replace("~0", "~"));
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
