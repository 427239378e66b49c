//! The served OpenAPI document: a snapshot (`openapi.json` at the repository root,
//! refreshed with `UPDATE_OPENAPI=1 cargo test --test api openapi::`) and the
//! structural promises every client relies on.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, spawn_app};

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
const PROBLEM_JSON: &str = "application/problem+json";

async fn served_spec() -> Value {
    let app = spawn_app(Backend::Sqlite).await;
    let resp = app.get("/api/openapi.json").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    resp.json().await.unwrap()
}

/// Every (path, method, operation) in the spec.
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths is an object") {
        for (method, op) in item.as_object().expect("a path item is an object") {
            if METHODS.contains(&method.as_str()) {
                ops.push((path.clone(), method.clone(), op.clone()));
            }
        }
    }
    ops
}

/// A `content` map with an `application/json` entry (poem-openapi adds `; charset=utf-8`).
fn has_json(content: &Value) -> bool {
    content.as_object().is_some_and(|c| {
        c.keys()
            .any(|ct| ct == "application/json" || ct.starts_with("application/json;"))
    })
}

fn operation<'a>(spec: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &spec["paths"][path][method];
    assert!(op.is_object(), "no {method} {path} in the spec");
    op
}

/// Where two JSON documents first differ, as a JSON pointer with both values.
fn first_difference(committed: &Value, served: &Value, at: &str) -> Option<String> {
    match (committed, served) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| {
                let pointer = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => first_difference(x, y, &pointer),
                    (Some(_), None) => Some(format!("{pointer} is no longer served")),
                    (None, _) => Some(format!("{pointer} is new")),
                }
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, &format!("{at}/{i}"))),
        (a, b) if a == b => None,
        (a, b) => Some(format!("at {at:?}: committed {a}, served {b}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_spec_matches_the_committed_snapshot() {
    let spec = served_spec().await;
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        let mut text = serde_json::to_string_pretty(&spec).unwrap();
        text.push('\n');
        std::fs::write(SNAPSHOT, text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(SNAPSHOT).unwrap_or_else(|e| {
        panic!("cannot read {SNAPSHOT}: {e}; create it with UPDATE_OPENAPI=1 cargo test --test api openapi::")
    });
    let committed: Value = serde_json::from_str(&committed).unwrap();
    if let Some(difference) = first_difference(&committed, &spec, "") {
        panic!(
            "the served OpenAPI document differs from {SNAPSHOT} ({difference}). If the API change \
             is intended, refresh it with UPDATE_OPENAPI=1 cargo test --test api openapi:: and review the diff."
        );
    }
    // The document the library renders is the one served.
    let rendered: Value = serde_json::from_str(&alta_api::openapi_json()).unwrap();
    assert_eq!(rendered, spec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_is_openapi_3_with_the_seed_paths() {
    let spec = served_spec().await;
    let version = spec["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert!(
        spec["info"]["title"].is_string() && spec["info"]["version"].is_string(),
        "{}",
        spec["info"]
    );
    for (path, method) in [
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/verify-email", "get"),
        ("/api/auth/resend-verification", "post"),
        ("/api/auth/me", "get"),
        ("/api/admin/users", "get"),
        ("/health", "get"),
        ("/health/ready", "get"),
    ] {
        operation(&spec, path, method);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_has_a_unique_id_a_tag_and_documented_errors() {
    let spec = served_spec().await;
    let declared_tags: HashSet<&str> = spec["tags"]
        .as_array()
        .map(|tags| tags.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    let ops = operations(&spec);
    assert!(ops.len() >= 8, "{} operations", ops.len());
    let mut ids = HashSet::new();
    for (path, method, op) in &ops {
        let what = format!("{method} {path}");
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{what} has no operationId"));
        assert!(!id.is_empty(), "{what}");
        assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");

        let tags = op["tags"]
            .as_array()
            .unwrap_or_else(|| panic!("{what} has no tags"));
        assert!(!tags.is_empty(), "{what} has no tags");
        for tag in tags {
            assert!(
                declared_tags.contains(tag.as_str().unwrap()),
                "{what}: tag {tag} is not declared"
            );
        }

        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{what} has no responses"));
        let is_health = path == "/health" || path == "/health/ready";
        if is_health {
            let ok = &responses
                .get("200")
                .unwrap_or_else(|| panic!("{what}: no 200"))["content"];
            assert!(has_json(ok), "{what}: 200 is JSON: {ok}");
            if path == "/health/ready" {
                let not_ready = &responses
                    .get("503")
                    .unwrap_or_else(|| panic!("{what}: no 503"))["content"];
                assert!(has_json(not_ready), "{what}: 503 is JSON: {not_ready}");
            }
            continue;
        }
        let problems: Vec<&String> = responses
            .iter()
            .filter(|(status, _)| status.starts_with('4') || status.starts_with('5'))
            .filter(|(_, r)| r["content"].get(PROBLEM_JSON).is_some())
            .map(|(status, _)| status)
            .collect();
        assert!(
            !problems.is_empty(),
            "{what} documents no problem+json error: {responses:?}"
        );
        // Every documented error of an API operation is a problem document.
        for (status, response) in responses
            .iter()
            .filter(|(s, _)| s.starts_with('4') || s.starts_with('5'))
        {
            let content = response["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{what} {status}: no content"));
            assert!(
                content.keys().all(|ct| ct == PROBLEM_JSON),
                "{what} {status}: {content:?}"
            );
        }
        // And it has a success response (for a browser's step of a sign-in, a redirect).
        assert!(
            responses
                .keys()
                .any(|s| s.starts_with('2') || s == "302" || s == "303"),
            "{what}: no 2xx (or 302/303) response"
        );
    }
    for required in [
        "auth_register",
        "auth_login",
        "auth_verify_email",
        "auth_resend_verification",
        "auth_me",
        "admin_list_users",
        "health_live",
        "health_ready",
    ] {
        assert!(ids.contains(required), "no operation {required}: {ids:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_operations_require_the_bearer_jwt_scheme() {
    let spec = served_spec().await;
    let schemes = spec["components"]["securitySchemes"]
        .as_object()
        .expect("components.securitySchemes");
    let bearer: Vec<&String> = schemes
        .iter()
        .filter(|(_, s)| {
            s["type"] == "http"
                && s["scheme"]
                    .as_str()
                    .is_some_and(|v| v.eq_ignore_ascii_case("bearer"))
                && s["bearerFormat"] == "JWT"
        })
        .map(|(name, _)| name)
        .collect();
    assert_eq!(bearer.len(), 1, "one bearer JWT scheme: {schemes:?}");
    let bearer = bearer[0];

    let requires_bearer = |op: &Value| {
        op["security"]
            .as_array()
            .is_some_and(|reqs| !reqs.is_empty() && reqs.iter().all(|r| r.get(bearer).is_some()))
    };
    for (path, method) in [("/api/auth/me", "get"), ("/api/admin/users", "get")] {
        let op = operation(&spec, path, method);
        assert!(
            requires_bearer(op),
            "{method} {path} must require {bearer}: {}",
            op["security"]
        );
        assert!(
            op["responses"].get("401").is_some(),
            "{method} {path} documents 401"
        );
    }
    // The public operations do not ask for a token.
    for (path, method) in [
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/verify-email", "get"),
        ("/api/auth/resend-verification", "post"),
        ("/health", "get"),
        ("/health/ready", "get"),
    ] {
        let op = operation(&spec, path, method);
        assert!(
            op["security"].as_array().is_none_or(Vec::is_empty),
            "{method} {path}: {}",
            op["security"]
        );
    }
    // And there is no global requirement that would apply to them.
    assert!(
        spec["security"].as_array().is_none_or(Vec::is_empty),
        "{}",
        spec["security"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_problem_schema_has_the_rfc_9457_members() {
    let spec = served_spec().await;
    let problem = &spec["components"]["schemas"]["Problem"];
    let properties = problem["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no Problem schema: {problem}"));
    let required: HashSet<&str> = problem["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for member in ["type", "title", "status", "detail", "code", "request_id"] {
        assert!(
            properties.contains_key(member),
            "Problem lacks {member}: {problem}"
        );
        assert!(
            required.contains(member),
            "Problem.{member} is not required: {problem}"
        );
    }
    assert_eq!(properties["status"]["type"], "integer", "{problem}");
    assert!(properties.contains_key("field"), "{problem}");
    assert!(!required.contains("field"), "field is optional");

    // Error responses point at it.
    let login = operation(&spec, "/api/auth/login", "post");
    let schema = &login["responses"]["401"]["content"][PROBLEM_JSON]["schema"];
    assert_eq!(schema["$ref"], "#/components/schemas/Problem", "{schema}");
}
