//! Labelling: a project's versioned label schema (who changes it, how it is checked,
//! changes that annotations use), the annotation of documents and recordings checked
//! against it field by field (spans in code points, segments within the recording),
//! revisions guarded by `If-Match`, who may annotate and when, and required fields at
//! submission, on both backends.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::{
    backend_tests,
    helpers::{Backend, TestApp, TestAppBuilder, assert_problem},
    items::wav,
    processing::{settled, uploaded},
    projects::{create_project, join},
};

backend_tests!(
    the_schema_is_versioned_and_only_admins_change_it,
    bad_schemas_are_refused_with_a_pointer,
    values_are_checked_against_each_field_type,
    if_match_guards_against_lost_updates,
    who_annotates_and_when,
    schema_changes_that_annotations_use_need_force,
    schema_in_use_counts_every_kind_of_value,
    required_fields_are_checked_at_submission,
    recordings_take_segments_within_their_length,
    spans_follow_their_words_when_the_text_changes,
    spans_follow_a_reprocessed_text,
    reviewers_see_and_fix_labels,
    lists_filter_by_label,
    bulk_annotation_is_all_or_nothing,
    suggestions_stay_apart_until_accepted,
);

/// A project with its admin, a contributor and a reviewer (their tokens).
struct Team {
    project: String,
    admin: String,
    contributor: String,
    reviewer: String,
}

async fn team(app: &TestApp) -> Team {
    let admin = app.signed_up_user("owner@example.org").await;
    let project = create_project(app, &admin, "Labels").await;
    let contributor = join(app, &admin, &project, "c@example.org", "contributor").await;
    let reviewer = join(app, &admin, &project, "r@example.org", "reviewer").await;
    Team {
        project,
        admin,
        contributor,
        reviewer,
    }
}

/// The `ETag` header of an answer.
fn etag(resp: &Response) -> String {
    resp.headers()
        .get("etag")
        .expect("the answer has an ETag")
        .to_str()
        .unwrap()
        .to_owned()
}

fn schema_path(project: &str) -> String {
    format!("/api/projects/{project}/label-schema")
}

async fn put_schema(app: &TestApp, token: &str, project: &str, fields: Value) -> Response {
    let body = json!({ "fields": fields });
    app.send(token, Method::PUT, &schema_path(project), Some(body))
        .await
}

/// `put_schema` with `?force=true`.
async fn force_schema(app: &TestApp, token: &str, project: &str, fields: Value) -> Response {
    let path = format!("{}?force=true", schema_path(project));
    app.send(token, Method::PUT, &path, Some(json!({ "fields": fields })))
        .await
}

/// A schema change that must succeed; the schema it answers.
pub(crate) async fn schema_set(app: &TestApp, token: &str, project: &str, fields: Value) -> Value {
    let resp = put_schema(app, token, project, fields.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK, "schema {fields}");
    resp.json().await.unwrap()
}

/// The project's current schema, as `token` reads it.
async fn schema(app: &TestApp, token: &str, project: &str) -> Value {
    let resp = app.get_auth(&schema_path(project), token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

fn doc(id: &str) -> String {
    format!("/api/documents/{id}")
}

fn voice(id: &str) -> String {
    format!("/api/voice/{id}")
}

/// PUT the annotation of `item` (`/api/documents/{id}` or `/api/voice/{id}`), with an
/// `If-Match` when given.
async fn put_annotation(
    app: &TestApp,
    token: &str,
    item: &str,
    values: Value,
    if_match: Option<&str>,
) -> Response {
    let mut req = app
        .client
        .put(app.url(&format!("{item}/annotation")))
        .bearer_auth(token)
        .json(&json!({ "values": values }));
    if let Some(tag) = if_match {
        req = req.header("if-match", tag);
    }
    req.send().await.unwrap()
}

/// An annotation write that must succeed; the annotation it answers.
pub(crate) async fn annotated(app: &TestApp, token: &str, item: &str, values: Value) -> Value {
    let resp = put_annotation(app, token, item, values.clone(), None).await;
    assert_eq!(resp.status(), StatusCode::OK, "values {values} on {item}");
    let tag = etag(&resp);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        tag,
        format!("\"{}\"", body["revision"]),
        "ETag is the revision"
    );
    body
}

/// The annotation of `item`, as `token` reads it.
async fn annotation(app: &TestApp, token: &str, item: &str) -> Value {
    let resp = app.get_auth(&format!("{item}/annotation"), token).await;
    assert_eq!(resp.status(), StatusCode::OK, "annotation of {item}");
    resp.json().await.unwrap()
}

/// `values` are refused as `invalid_annotation` at `pointer`.
async fn refused_values(app: &TestApp, token: &str, item: &str, values: Value, pointer: &str) {
    let resp = put_annotation(app, token, item, values.clone(), None).await;
    let problem =
        assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_annotation").await;
    assert_eq!(problem["field"], pointer, "for {values}");
}

/// A text document uploaded by `token` and processed (`ready`); its id.
async fn ready_doc(app: &TestApp, token: &str, project: &str, text: &str) -> String {
    let endpoint = "/api/documents";
    let bytes = text.as_bytes().to_vec();
    let id = uploaded(
        app,
        token,
        endpoint,
        project,
        bytes,
        "page.txt",
        "text/plain",
    )
    .await;
    let item = settled(app, token, endpoint, &id).await;
    assert_eq!(item["status"], "ready", "{item}");
    id
}

async fn submit(app: &TestApp, token: &str, project: &str, ids: &[&str]) -> Response {
    let path = format!("/api/projects/{project}/review");
    app.send(token, Method::POST, &path, Some(json!({ "item_ids": ids })))
        .await
}

async fn status(app: &TestApp, token: &str, id: &str) -> Value {
    app.get_json(&doc(id), token).await["status"].clone()
}

/// Values of one `entities` span.
fn span(start: u64, end: u64, label: &str) -> Value {
    json!({"entities": [{"start": start, "end": end, "label": label}]})
}

/// One segment of a recording.
fn seg(start_ms: u64, end_ms: u64, label: &str) -> Value {
    json!({"start_ms": start_ms, "end_ms": end_ms, "label": label})
}

/// The values of an annotation without the fields it leaves unset.
fn set_values(annotation: &Value) -> Value {
    let values = annotation["values"]
        .as_object()
        .expect("values is an object");
    Value::Object(
        values
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

async fn the_schema_is_versioned_and_only_admins_change_it(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app).await;
    let path = schema_path(&t.project);

    // Before any schema: version 0 without fields.
    let resp = app.get_auth(&path, &t.admin).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(etag(&resp), "\"0\"");
    let empty: Value = resp.json().await.unwrap();
    assert_eq!(empty["project_id"], t.project.as_str());
    assert_eq!(empty["version"], 0);
    assert_eq!(empty["fields"], json!([]));
    assert!(empty["created_by"].is_null(), "{empty}");
    assert!(empty["created_at"].is_null(), "{empty}");
    // Someone outside the project does not see it at all.
    let stranger = app.signed_up_user("stranger@example.org").await;
    let resp = app.get_auth(&path, &stranger).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;

    // The admin sets version 1; the answer is normalised, defaults filled in.
    let v1_fields = json!([
        {"name": "sentiment", "type": "label", "options": ["pos", "neg"]},
        {"name": "note", "title": "Note", "type": "text", "required": true},
    ]);
    let resp = put_schema(&app, &t.admin, &t.project, v1_fields.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(etag(&resp), "\"1\"");
    let v1: Value = resp.json().await.unwrap();
    assert_eq!(v1["project_id"], t.project.as_str());
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["created_by"], app.user_id(&t.admin).await.as_str());
    assert!(v1["created_at"].is_string(), "{v1}");
    let fields = v1["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 2, "{v1}");
    assert_eq!(fields[0]["name"], "sentiment");
    assert_eq!(
        fields[0]["title"], "sentiment",
        "the title defaults to the name"
    );
    assert_eq!(fields[0]["type"], "label");
    assert_eq!(fields[0]["required"], false);
    assert_eq!(fields[0]["options"], json!(["pos", "neg"]));
    assert_eq!(fields[1]["name"], "note");
    assert_eq!(fields[1]["title"], "Note");
    assert_eq!(fields[1]["type"], "text");
    assert_eq!(fields[1]["required"], true);
    assert_eq!(fields[1]["max_length"], 10_000);

    // The same schema again is no new version.
    let resp = put_schema(&app, &t.admin, &t.project, v1_fields.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(etag(&resp), "\"1\"");
    let same: Value = resp.json().await.unwrap();
    assert_eq!(same["version"], 1);
    assert_eq!(same["fields"], v1["fields"]);
    assert_eq!(same["created_at"], v1["created_at"]);

    // Contributors and reviewers do not change it.
    let theirs = json!([{"name": "mine", "type": "text"}]);
    for token in [&t.contributor, &t.reviewer] {
        let resp = put_schema(&app, token, &t.project, theirs.clone()).await;
        assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    }
    assert_eq!(schema(&app, &t.admin, &t.project).await["version"], 1);

    // Adding a field makes version 2.
    let mut v2_fields = v1_fields.clone();
    v2_fields
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "entities", "type": "spans", "options": ["PER", "LOC"]}));
    let v2 = schema_set(&app, &t.admin, &t.project, v2_fields).await;
    assert_eq!(v2["version"], 2);
    let fields = v2["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 3, "{v2}");
    assert_eq!(fields[..2], v1["fields"].as_array().unwrap()[..]);
    assert_eq!(fields[2]["name"], "entities");
    assert_eq!(fields[2]["title"], "entities");
    assert_eq!(fields[2]["type"], "spans");
    assert_eq!(fields[2]["required"], false);
    assert_eq!(fields[2]["options"], json!(["PER", "LOC"]));
    assert_eq!(fields[2]["allow_overlap"], false);

    // Every member reads the current version; its ETag is the version.
    for token in [&t.reviewer, &t.contributor, &t.admin] {
        let resp = app.get_auth(&path, token).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(etag(&resp), "\"2\"");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["version"], 2);
        assert_eq!(body["fields"], v2["fields"]);
    }

    // Earlier versions stay readable; one that never was is not found.
    let resp = app
        .get_auth(&format!("{path}?version=1"), &t.reviewer)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(etag(&resp), "\"1\"");
    let old: Value = resp.json().await.unwrap();
    assert_eq!(old["version"], 1);
    assert_eq!(old["fields"], v1["fields"]);
    assert_eq!(old["created_at"], v1["created_at"]);
    let resp = app.get_auth(&format!("{path}?version=3"), &t.admin).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
}

async fn bad_schemas_are_refused_with_a_pointer(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let admin = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &admin, "Labels").await;
    let good_fields = json!([{"name": "sentiment", "type": "label", "options": ["pos", "neg"]}]);
    let good = schema_set(&app, &admin, &project, good_fields.clone()).await;
    assert_eq!(good["version"], 1);

    let text = |name: &str| json!({"name": name, "type": "text"});
    let too_long = format!("a{}", "b".repeat(64));
    for (fields, pointer) in [
        (json!([text("topic"), text("topic")]), "/fields/1/name"),
        (
            json!([{"name": "sentiment", "type": "label", "options": []}]),
            "/fields/0/options",
        ),
        (
            json!([text("a"), text("b"), {"name": "stars", "type": "rating", "min": 5, "max": 1}]),
            "/fields/2/min",
        ),
        (
            json!([{"name": "sentiment", "type": "label", "options": ["pos", "pos"]}]),
            "/fields/0/options/1",
        ),
        (
            json!([{
                "name": "topics", "type": "multi_label", "options": ["a", "b", "c"],
                "min": 3, "max": 2,
            }]),
            "/fields/0/min",
        ),
        (
            json!([{"name": "stars", "type": "rating", "min": 1}]),
            "/fields/0/max",
        ),
        (json!([text("Sentiment")]), "/fields/0/name"),
        (json!([text("1st")]), "/fields/0/name"),
        (json!([text("_note")]), "/fields/0/name"),
        (json!([text("ok"), text("has-dash")]), "/fields/1/name"),
        (json!([text("")]), "/fields/0/name"),
        (json!([text(&too_long)]), "/fields/0/name"),
    ] {
        let resp = put_schema(&app, &admin, &project, fields.clone()).await;
        let problem = assert_problem(
            resp,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_label_schema",
        )
        .await;
        assert_eq!(problem["field"], pointer, "for {fields}");
    }
    // A type the API does not know does not fit the OpenAPI document at all.
    let resp = put_schema(
        &app,
        &admin,
        &project,
        json!([{"name": "colour", "type": "colour"}]),
    )
    .await;
    assert_problem(resp, StatusCode::BAD_REQUEST, "invalid_body").await;

    // Nothing refused changed the schema.
    let current = schema(&app, &admin, &project).await;
    assert_eq!(current["version"], 1);
    assert_eq!(current["fields"], good["fields"]);

    // A name of exactly 64 characters is fine.
    let longest = format!("a{}", "b_9".repeat(21));
    assert_eq!(longest.len(), 64);
    let mut fields = good_fields;
    fields.as_array_mut().unwrap().push(text(&longest));
    let v2 = schema_set(&app, &admin, &project, fields).await;
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["fields"][1]["name"], longest.as_str());
}

async fn values_are_checked_against_each_field_type(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app).await;
    schema_set(
        &app,
        &t.admin,
        &t.project,
        json!([
            {"name": "sentiment", "type": "label", "options": ["pos", "neg", "neu"]},
            {
                "name": "topics", "type": "multi_label", "options": ["news", "sport", "weather"],
                "min": 1, "max": 2,
            },
            {"name": "stars", "type": "rating", "min": 1, "max": 5},
            {"name": "note", "type": "text", "max_length": 10},
            {"name": "entities", "type": "spans", "options": ["PER", "LOC"]},
            {"name": "mentions", "type": "spans", "options": ["PER"], "allow_overlap": true},
            {"name": "turns", "type": "segments", "options": ["speech"]},
        ]),
    )
    .await;
    // 8 code points; "Ana" is 5..8 (bytes 7..10, UTF-16 units 6..9).
    let text = "Hi 👋 Ana";
    let id = ready_doc(&app, &t.contributor, &t.project, text).await;
    let current = app
        .get_json(&format!("/api/documents/{id}/text"), &t.contributor)
        .await;
    assert_eq!(current["current"]["text"], text, "spans count in this text");
    let item = doc(&id);

    // Never annotated.
    let resp = app
        .get_auth(&format!("{item}/annotation"), &t.contributor)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(etag(&resp), "\"0\"");
    let none: Value = resp.json().await.unwrap();
    assert_eq!(none["item_id"], id.as_str());
    assert_eq!(none["revision"], 0);
    assert_eq!(none["values"], json!({}));
    assert!(none["schema_version"].is_null(), "{none}");
    assert!(none["author_id"].is_null(), "{none}");
    assert!(none["updated_at"].is_null(), "{none}");

    // A valid value of every type a document takes.
    let values = json!({
        "sentiment": "pos",
        "topics": ["news", "weather"],
        "stars": 5,
        // 10 characters (40 bytes): the limit counts characters.
        "note": "👋".repeat(10),
        "entities": [
            {"start": 0, "end": 2, "label": "LOC"},
            {"start": 5, "end": 8, "label": "PER"},
        ],
        // This field allows overlaps.
        "mentions": [
            {"start": 0, "end": 8, "label": "PER"},
            {"start": 5, "end": 8, "label": "PER"},
        ],
    });
    let saved = annotated(&app, &t.contributor, &item, values.clone()).await;
    assert_eq!(saved["item_id"], id.as_str());
    assert_eq!(saved["revision"], 1);
    assert_eq!(saved["schema_version"], 1);
    assert_eq!(saved["values"], values);
    assert_eq!(
        saved["author_id"],
        app.user_id(&t.contributor).await.as_str()
    );
    assert!(saved["updated_at"].is_string(), "{saved}");
    let read = annotation(&app, &t.contributor, &item).await;
    assert_eq!(read, saved);

    for (bad, pointer) in [
        (json!({"sentiment": "meh"}), "/values/sentiment"),
        (json!({"sentiment": ["pos"]}), "/values/sentiment"),
        (json!({"topics": ["news", "politics"]}), "/values/topics/1"),
        (json!({"topics": []}), "/values/topics"),
        (
            json!({"topics": ["news", "sport", "weather"]}),
            "/values/topics",
        ),
        (json!({"topics": ["news", "news"]}), "/values/topics"),
        (json!({"stars": 0}), "/values/stars"),
        (json!({"stars": 6}), "/values/stars"),
        (json!({"stars": 2.5}), "/values/stars"),
        (json!({"note": "x".repeat(11)}), "/values/note"),
        // 9 ends the text in UTF-16 units, 11 in bytes: both are past its 8 code points.
        (span(5, 9, "PER"), "/values/entities/0/end"),
        (span(5, 11, "PER"), "/values/entities/0/end"),
        (span(3, 3, "PER"), "/values/entities/0/end"),
        (span(6, 5, "PER"), "/values/entities/0/end"),
        (span(5, 8, "ORG"), "/values/entities/0/label"),
        (
            json!({"entities": [
                {"start": 0, "end": 4, "label": "LOC"},
                {"start": 3, "end": 8, "label": "PER"},
            ]}),
            "/values/entities/1",
        ),
        // Segments are for recordings.
        (
            json!({"turns": [{"start_ms": 0, "end_ms": 100, "label": "speech"}]}),
            "/values/turns",
        ),
        (json!({"nope": "x"}), "/values/nope"),
        // One bad value among good ones refuses the whole write.
        (json!({"sentiment": "neg", "stars": 9}), "/values/stars"),
    ] {
        refused_values(&app, &t.contributor, &item, bad, pointer).await;
    }
    let unchanged = annotation(&app, &t.contributor, &item).await;
    assert_eq!(unchanged["revision"], 1, "nothing refused was written");
    assert_eq!(unchanged["values"], values);

    // The edges that are allowed: the fewest options, the lowest rating, the longest
    // note, ranges that touch and one ending at the last code point; `null` unsets a
    // field and a PUT replaces the values.
    let edges = annotated(
        &app,
        &t.contributor,
        &item,
        json!({
            "sentiment": null,
            "topics": ["sport"],
            "stars": 1,
            "note": "x".repeat(10),
            "entities": [
                {"start": 0, "end": 5, "label": "LOC"},
                {"start": 5, "end": 8, "label": "PER"},
            ],
        }),
    )
    .await;
    assert_eq!(edges["revision"], 2);
    assert_eq!(
        set_values(&edges),
        json!({
            "topics": ["sport"],
            "stars": 1,
            "note": "x".repeat(10),
            "entities": [
                {"start": 0, "end": 5, "label": "LOC"},
                {"start": 5, "end": 8, "label": "PER"},
            ],
        })
    );
    let most = annotated(
        &app,
        &t.contributor,
        &item,
        json!({"topics": ["sport", "news"], "stars": 5}),
    )
    .await;
    assert_eq!(most["revision"], 3);
    assert_eq!(
        set_values(&most),
        json!({"topics": ["sport", "news"], "stars": 5})
    );
}

async fn if_match_guards_against_lost_updates(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app).await;
    schema_set(
        &app,
        &t.admin,
        &t.project,
        json!([
            {"name": "sentiment", "type": "label", "options": ["pos", "neg"]},
            {"name": "note", "type": "text"},
        ]),
    )
    .await;
    let id = ready_doc(&app, &t.contributor, &t.project, "Habari za asubuhi.").await;
    let item = doc(&id);
    let path = format!("{item}/annotation");
    let contributor_id = app.user_id(&t.contributor).await;
    let admin_id = app.user_id(&t.admin).await;

    // Written against the tag just read.
    let stale = etag(&app.get_auth(&path, &t.contributor).await);
    assert_eq!(stale, "\"0\"");
    let resp = put_annotation(
        &app,
        &t.contributor,
        &item,
        json!({"sentiment": "pos"}),
        Some(&stale),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(etag(&resp), "\"1\"");
    let first: Value = resp.json().await.unwrap();
    assert_eq!(first["revision"], 1);
    assert_eq!(first["author_id"], contributor_id.as_str());

    // A writer still holding the old tag is refused, and nothing is written.
    let resp = put_annotation(
        &app,
        &t.admin,
        &item,
        json!({"sentiment": "neg"}),
        Some(&stale),
    )
    .await;
    assert_problem(resp, StatusCode::PRECONDITION_FAILED, "precondition_failed").await;
    let current = annotation(&app, &t.admin, &item).await;
    assert_eq!(current["revision"], 1);
    assert_eq!(current["values"], json!({"sentiment": "pos"}));

    // Read again, then write: it goes through.
    let tag = etag(&app.get_auth(&path, &t.admin).await);
    assert_eq!(tag, "\"1\"");
    let resp = put_annotation(
        &app,
        &t.admin,
        &item,
        json!({"sentiment": "neg", "note": "checked"}),
        Some(&tag),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(etag(&resp), "\"2\"");
    let second: Value = resp.json().await.unwrap();
    assert_eq!(second["revision"], 2);
    assert_eq!(second["author_id"], admin_id.as_str());

    // The same tag is stale now.
    let resp = put_annotation(
        &app,
        &t.contributor,
        &item,
        json!({"sentiment": "pos"}),
        Some(&tag),
    )
    .await;
    assert_problem(resp, StatusCode::PRECONDITION_FAILED, "precondition_failed").await;
    assert_eq!(annotation(&app, &t.contributor, &item).await["revision"], 2);

    // Without If-Match the write just happens.
    let third = annotated(&app, &t.contributor, &item, json!({"note": "final"})).await;
    assert_eq!(third["revision"], 3);

    // Every revision, oldest first, with its author.
    let resp = app
        .get_auth(&format!("{path}/revisions"), &t.contributor)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let revisions = body["revisions"].as_array().unwrap();
    let seen: Vec<(i64, String, Value)> = revisions
        .iter()
        .map(|r| {
            assert_eq!(r["schema_version"], 1, "{r}");
            assert!(r["created_at"].is_string(), "{r}");
            (
                r["revision"].as_i64().unwrap(),
                r["author_id"].as_str().unwrap().to_owned(),
                r["values"].clone(),
            )
        })
        .collect();
    let expected: [(i64, String, Value); 3] = [
        (1, contributor_id.clone(), json!({"sentiment": "pos"})),
        (2, admin_id, json!({"sentiment": "neg", "note": "checked"})),
        (3, contributor_id, json!({"note": "final"})),
    ];
    assert_eq!(seen, expected);
}

async fn who_annotates_and_when(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app).await;
    let other = join(&app, &t.admin, &t.project, "c2@example.org", "contributor").await;
    let id = ready_doc(&app, &t.contributor, &t.project, "Mvua ilinyesha jana.").await;
    let item = doc(&id);

    // A project without a schema has nothing to annotate with.
    let resp = put_annotation(
        &app,
        &t.contributor,
        &item,
        json!({"sentiment": "pos"}),
        None,
    )
    .await;
    assert_problem(resp, StatusCode::CONFLICT, "no_label_schema").await;
    assert_eq!(annotation(&app, &t.contributor, &item).await["revision"], 0);

    schema_set(
        &app,
        &t.admin,
        &t.project,
        json!([{"name": "sentiment", "type": "label", "options": ["pos", "neg"]}]),
    )
    .await;

    // A reviewer reads it but does not write it.
    let resp = put_annotation(&app, &t.reviewer, &item, json!({"sentiment": "pos"}), None).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(annotation(&app, &t.reviewer, &item).await["revision"], 0);

    // Another contributor does not see the item at all.
    let resp = put_annotation(&app, &other, &item, json!({"sentiment": "pos"}), None).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = app.get_auth(&format!("{item}/annotation"), &other).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;

    // A project admin annotates someone else's item; the item's contributor too.
    let by_admin = annotated(&app, &t.admin, &item, json!({"sentiment": "neg"})).await;
    assert_eq!(by_admin["revision"], 1);
    assert_eq!(by_admin["author_id"], app.user_id(&t.admin).await.as_str());
    let by_owner = annotated(&app, &t.contributor, &item, json!({"sentiment": "pos"})).await;
    assert_eq!(by_owner["revision"], 2);
    assert_eq!(
        by_owner["author_id"],
        app.user_id(&t.contributor).await.as_str()
    );
    let seen = annotation(&app, &t.reviewer, &item).await;
    assert_eq!(seen["revision"], 2);
    assert_eq!(seen["values"], json!({"sentiment": "pos"}));

    // Submitted, it is in review: nobody changes its annotation.
    let resp = submit(&app, &t.contributor, &t.project, &[&id]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(status(&app, &t.contributor, &id).await, "pending_review");
    for token in [&t.contributor, &t.admin] {
        let resp = put_annotation(&app, token, &item, json!({"sentiment": "neg"}), None).await;
        assert_problem(resp, StatusCode::CONFLICT, "item_in_review").await;
    }
    assert_eq!(annotation(&app, &t.contributor, &item).await["revision"], 2);

    // Sent back for changes, it can be annotated again.
    let resp = app
        .send(
            &t.reviewer,
            Method::PATCH,
            &format!("/api/review/{id}"),
            Some(json!({"decision": "reject", "reason_code": "noise"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let decided: Value = resp.json().await.unwrap();
    assert_eq!(decided["item"]["status"], "changes_requested");
    let fixed = annotated(&app, &t.contributor, &item, json!({"sentiment": "neg"})).await;
    assert_eq!(fixed["revision"], 3);
    assert_eq!(fixed["values"], json!({"sentiment": "neg"}));
}

async fn schema_changes_that_annotations_use_need_force(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app).await;
    let sentiment =
        |options: Value| json!({"name": "sentiment", "type": "label", "options": options});
    let note = json!({"name": "note", "type": "text"});
    let spare = json!({"name": "spare", "type": "text"});
    let topic = json!({"name": "topic", "type": "label", "options": ["news"]});
    let v1 = schema_set(
        &app,
        &t.admin,
        &t.project,
        json!([sentiment(json!(["pos", "neg"])), note, spare]),
    )
    .await;
    assert_eq!(v1["version"], 1);
    let a = ready_doc(&app, &t.contributor, &t.project, "Habari ya leo.").await;
    let b = ready_doc(&app, &t.contributor, &t.project, "Asante sana.").await;
    annotated(
        &app,
        &t.contributor,
        &doc(&a),
        json!({"sentiment": "pos", "note": "x"}),
    )
    .await;
    annotated(&app, &t.contributor, &doc(&b), json!({"sentiment": "pos"})).await;

    // Dropping an option that two annotations use.
    let resp = put_schema(
        &app,
        &t.admin,
        &t.project,
        json!([sentiment(json!(["neg"])), note, spare]),
    )
    .await;
    let problem = assert_problem(resp, StatusCode::CONFLICT, "schema_in_use").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("pos") && detail.contains('2'), "{detail}");
    // Dropping a field that one annotation uses.
    let resp = put_schema(
        &app,
        &t.admin,
        &t.project,
        json!([sentiment(json!(["pos", "neg"])), spare]),
    )
    .await;
    let problem = assert_problem(resp, StatusCode::CONFLICT, "schema_in_use").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("note") && detail.contains('1'), "{detail}");
    let current = schema(&app, &t.admin, &t.project).await;
    assert_eq!(current["version"], 1);
    assert_eq!(current["fields"], v1["fields"]);

    // Adding options and fields, and dropping a field nothing uses, is always allowed.
    let v2 = schema_set(
        &app,
        &t.admin,
        &t.project,
        json!([sentiment(json!(["pos", "neg", "neu"])), note, topic]),
    )
    .await;
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["fields"][0]["options"], json!(["pos", "neg", "neu"]));
    assert_eq!(v2["fields"][2]["name"], "topic");

    // Forced, the option goes; the annotations stay as written, on their version.
    let resp = force_schema(
        &app,
        &t.admin,
        &t.project,
        json!([sentiment(json!(["neg", "neu"])), note, topic]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v3: Value = resp.json().await.unwrap();
    assert_eq!(v3["version"], 3);
    assert_eq!(v3["fields"][0]["options"], json!(["neg", "neu"]));
    for id in [&a, &b] {
        let kept = annotation(&app, &t.contributor, &doc(id)).await;
        assert_eq!(kept["schema_version"], 1, "{kept}");
        assert_eq!(kept["revision"], 1);
        assert_eq!(kept["values"]["sentiment"], "pos");
    }
    // The version a forced change replaced stays readable.
    let old = app
        .get_json(&format!("{}?version=2", schema_path(&t.project)), &t.admin)
        .await;
    assert_eq!(old["fields"], v2["fields"]);

    // New writes follow the current schema.
    refused_values(
        &app,
        &t.contributor,
        &doc(&a),
        json!({"sentiment": "pos"}),
        "/values/sentiment",
    )
    .await;
    let rewritten = annotated(&app, &t.contributor, &doc(&a), json!({"sentiment": "neu"})).await;
    assert_eq!(rewritten["schema_version"], 3);
    assert_eq!(rewritten["revision"], 2);
}

async fn required_fields_are_checked_at_submission(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app).await;
    schema_set(
        &app,
        &t.admin,
        &t.project,
        json!([
            {"name": "sentiment", "type": "label", "options": ["pos", "neg"], "required": true},
            {"name": "note", "type": "text"},
            {"name": "stars", "type": "rating", "min": 1, "max": 5, "required": true},
        ]),
    )
    .await;
    let a = ready_doc(&app, &t.contributor, &t.project, "Kwanza.").await;
    let b = ready_doc(&app, &t.contributor, &t.project, "Pili.").await;

    // Leaving required fields out is fine while annotating.
    let partial = annotated(
        &app,
        &t.contributor,
        &doc(&a),
        json!({"note": "draft", "stars": 4}),
    )
    .await;
    assert_eq!(partial["revision"], 1);

    // `a` lacks sentiment, `b` has no annotation: neither is submitted.
    let resp = submit(&app, &t.contributor, &t.project, &[&a, &b]).await;
    let problem = assert_problem(
        resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "annotation_incomplete",
    )
    .await;
    let detail = problem["detail"].as_str().unwrap();
    for needle in [a.as_str(), b.as_str(), "sentiment", "stars"] {
        assert!(detail.contains(needle), "{needle} in {detail}");
    }
    for id in [&a, &b] {
        assert_eq!(status(&app, &t.contributor, id).await, "ready");
    }

    // `a` complete, `b` still without: refused for `b` alone, and `a` stays too.
    annotated(
        &app,
        &t.contributor,
        &doc(&a),
        json!({"note": "done", "sentiment": "pos", "stars": 4}),
    )
    .await;
    let resp = submit(&app, &t.contributor, &t.project, &[&a, &b]).await;
    let problem = assert_problem(
        resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "annotation_incomplete",
    )
    .await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(&b) && !detail.contains(&a), "{detail}");
    assert_eq!(status(&app, &t.contributor, &a).await, "ready");

    // `null` leaves a required field unset.
    annotated(
        &app,
        &t.contributor,
        &doc(&b),
        json!({"sentiment": "neg", "stars": null}),
    )
    .await;
    let resp = submit(&app, &t.contributor, &t.project, &[&b]).await;
    let problem = assert_problem(
        resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "annotation_incomplete",
    )
    .await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(&b) && detail.contains("stars"), "{detail}");
    assert_eq!(status(&app, &t.contributor, &b).await, "ready");

    // Complete, both go to review.
    annotated(
        &app,
        &t.contributor,
        &doc(&b),
        json!({"sentiment": "neg", "stars": 2}),
    )
    .await;
    let resp = submit(&app, &t.contributor, &t.project, &[&a, &b]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    for id in [&a, &b] {
        assert_eq!(status(&app, &t.contributor, id).await, "pending_review");
    }
}

async fn recordings_take_segments_within_their_length(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app).await;
    schema_set(
        &app,
        &t.admin,
        &t.project,
        json!([
            {"name": "turns", "type": "segments", "options": ["speech", "music"]},
            {
                "name": "events", "type": "segments", "options": ["cough", "laugh"],
                "allow_overlap": true,
            },
            {"name": "entities", "type": "spans", "options": ["PER"]},
            {"name": "quality", "type": "rating", "min": 1, "max": 3},
        ]),
    )
    .await;
    let endpoint = "/api/voice";
    let id = uploaded(
        &app,
        &t.contributor,
        endpoint,
        &t.project,
        wav(1.0, 16_000, 330.0),
        "take.wav",
        "audio/wav",
    )
    .await;
    // No speech engine in tests: a person's transcript makes the recording ready.
    let item = settled(&app, &t.contributor, endpoint, &id).await;
    assert_eq!(item["status"], "processing_failed", "{item}");
    let resp = app
        .send(
            &t.contributor,
            Method::PUT,
            &format!("{}/transcript", voice(&id)),
            Some(json!({"text": "Habari za asubuhi"})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let recording = app.get_json(&voice(&id), &t.contributor).await;
    assert_eq!(recording["status"], "ready", "{recording}");
    let seconds = recording["audio"]["duration_seconds"].as_f64().unwrap();
    let duration_ms = (seconds * 1000.0).round() as u64;
    assert!((990..=1010).contains(&duration_ms), "{recording}");
    let item = voice(&id);

    // Segments that touch, one ending at the very end; overlaps where they are allowed.
    let turns = json!([
        {"start_ms": 0, "end_ms": 400, "label": "speech", "text": "Habari", "speaker": "A"},
        {"start_ms": 400, "end_ms": duration_ms, "label": "music"},
    ]);
    let events = json!([
        {"start_ms": 100, "end_ms": 300, "label": "cough"},
        {"start_ms": 200, "end_ms": 500, "label": "laugh"},
    ]);
    let values = json!({"turns": turns, "events": events, "quality": 2});
    let saved = annotated(&app, &t.contributor, &item, values.clone()).await;
    assert_eq!(saved["item_id"], id.as_str());
    assert_eq!(saved["revision"], 1);
    assert_eq!(saved["schema_version"], 1);
    assert_eq!(saved["values"], values);

    for (bad, pointer) in [
        (
            json!({"turns": [seg(0, duration_ms + 1, "speech")]}),
            "/values/turns/0/end_ms",
        ),
        (
            json!({"turns": [seg(0, 100, "speech"), seg(500, duration_ms + 500, "music")]}),
            "/values/turns/1/end_ms",
        ),
        (
            json!({"turns": [seg(300, 300, "speech")]}),
            "/values/turns/0/end_ms",
        ),
        (
            json!({"turns": [seg(0, 500, "speech"), seg(400, 900, "music")]}),
            "/values/turns/1",
        ),
        (
            json!({"turns": [seg(0, 500, "applause")]}),
            "/values/turns/0/label",
        ),
        // Spans are for documents.
        (
            json!({"entities": [{"start": 0, "end": 1, "label": "PER"}]}),
            "/values/entities",
        ),
        (json!({"quality": 4}), "/values/quality"),
    ] {
        refused_values(&app, &t.contributor, &item, bad, pointer).await;
    }
    let unchanged = annotation(&app, &t.reviewer, &item).await;
    assert_eq!(unchanged["revision"], 1, "nothing refused was written");
    assert_eq!(unchanged["values"], values);
}

/// Write `text` as the document's new text revision (its contributor).
async fn write_text(app: &TestApp, token: &str, id: &str, text: &str) {
    let resp = app
        .send(
            token,
            Method::PUT,
            &format!("/api/documents/{id}/text"),
            Some(json!({ "text": text })),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "text of {id}");
}

/// The machine's new text after a reprocess carries the spans too (written with the
/// job's outcome, in the same transaction).
async fn spans_follow_a_reprocessed_text(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app).await;
    schema_set(
        &app,
        &t.admin,
        &t.project,
        json!([{"name": "entities", "type": "spans", "options": ["PER", "LOC"]}]),
    )
    .await;
    let id = ready_doc(&app, &t.contributor, &t.project, "Ana lives in Nairobi.").await;
    let item = doc(&id);
    // Labelled on a person's revision with two code points before the words...
    write_text(&app, &t.contributor, &id, "👋 Ana lives in Nairobi.").await;
    let spans = json!({"entities": [
        {"start": 2, "end": 5, "label": "PER"},
        {"start": 15, "end": 22, "label": "LOC"},
    ]});
    let labelled = annotated(&app, &t.contributor, &item, spans).await;

    // ...then the file is read again: the machine's new text is the original, and the
    // spans move back onto its words.
    let resp = app
        .send(&t.admin, Method::POST, &format!("{item}/reprocess"), None)
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let done = settled(&app, &t.contributor, "/api/documents", &id).await;
    assert_eq!(done["status"], "ready", "{done}");
    let carried = annotation(&app, &t.contributor, &item).await;
    assert_eq!(
        carried["revision"],
        labelled["revision"].as_i64().unwrap() + 1,
        "carrying is a revision: {carried}"
    );
    assert_eq!(
        carried["values"]["entities"],
        json!([
            {"start": 0, "end": 3, "label": "PER"},
            {"start": 13, "end": 20, "label": "LOC"},
        ])
    );
    assert_eq!(carried["stale_spans"], json!([]));
}

/// Spans are anchored to the text they were made on. A new text revision carries them
/// over through a character diff: spans whose words are unchanged move (insertions and
/// deletions before them, an emoji counted once); spans whose words changed stay put,
/// marked `stale`, are listed in `stale_spans`, block submission, and must be sent again
/// without `stale`.
async fn spans_follow_their_words_when_the_text_changes(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app).await;
    schema_set(
        &app,
        &t.admin,
        &t.project,
        json!([{"name": "entities", "type": "spans", "options": ["PER", "LOC"]}]),
    )
    .await;
    // "Ana" 0..3, "Nairobi" 13..20.
    let id = ready_doc(&app, &t.contributor, &t.project, "Ana lives in Nairobi.").await;
    let item = doc(&id);
    let spans = json!({"entities": [
        {"start": 0, "end": 3, "label": "PER"},
        {"start": 13, "end": 20, "label": "LOC"},
    ]});
    let first = annotated(&app, &t.contributor, &item, spans).await;
    assert_eq!(first["stale_spans"], json!([]));

    // An insertion before both (an emoji and a space: two code points).
    write_text(&app, &t.contributor, &id, "👋 Ana lives in Nairobi.").await;
    let moved = annotation(&app, &t.contributor, &item).await;
    assert_eq!(moved["revision"], 2, "carrying is a revision: {moved}");
    assert_eq!(
        moved["values"]["entities"],
        json!([
            {"start": 2, "end": 5, "label": "PER"},
            {"start": 15, "end": 22, "label": "LOC"},
        ])
    );
    assert_eq!(moved["stale_spans"], json!([]));
    assert_eq!(
        moved["author_id"], first["author_id"],
        "the labels are still theirs"
    );

    // An edit inside "Nairobi" and a deletion after it: "Ana" stays, "Nairobi" is stale.
    write_text(&app, &t.contributor, &id, "👋 Ana lives in Nairobbi").await;
    let stale = annotation(&app, &t.contributor, &item).await;
    assert_eq!(stale["revision"], 3);
    assert_eq!(
        stale["values"]["entities"],
        json!([
            {"start": 2, "end": 5, "label": "PER"},
            {"start": 15, "end": 22, "label": "LOC", "stale": true},
        ])
    );
    assert_eq!(stale["stale_spans"], json!(["/values/entities/1"]));

    // A stale span blocks submission (nothing is submitted)...
    let resp = app
        .send(
            &t.contributor,
            Method::POST,
            &format!("/api/projects/{}/review", t.project),
            Some(json!({"item_ids": [id]})),
        )
        .await;
    let problem = assert_problem(
        resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "annotation_incomplete",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("/values/entities/1"),
        "{problem}"
    );
    let item_now = app.get_json(&item, &t.contributor).await;
    assert_eq!(item_now["status"], "ready");

    // ...and cannot be echoed back as it is.
    refused_values(
        &app,
        &t.contributor,
        &item,
        stale["values"].clone(),
        "/values/entities/1/stale",
    )
    .await;

    // Fixed against the current text ("Nairobbi" is 15..23), it is accepted and the
    // item can be submitted.
    let fixed = annotated(
        &app,
        &t.contributor,
        &item,
        json!({"entities": [
            {"start": 2, "end": 5, "label": "PER"},
            {"start": 15, "end": 23, "label": "LOC"},
        ]}),
    )
    .await;
    assert_eq!(fixed["stale_spans"], json!([]));
    let resp = app
        .send(
            &t.contributor,
            Method::POST,
            &format!("/api/projects/{}/review", t.project),
            Some(json!({"item_ids": [id]})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

/// Reviewers see an item's labels in the queue and may fix and accept them: the
/// corrected labels are checked like any other write and become a revision by the
/// reviewer; refused labels record no decision.
async fn reviewers_see_and_fix_labels(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app).await;
    schema_set(
        &app,
        &t.admin,
        &t.project,
        json!([{"name": "sentiment", "type": "label", "options": ["pos", "neg"], "required": true}]),
    )
    .await;
    let id = ready_doc(&app, &t.contributor, &t.project, "Habari za asubuhi").await;
    let item = doc(&id);
    annotated(&app, &t.contributor, &item, json!({"sentiment": "pos"})).await;
    let resp = app
        .send(
            &t.contributor,
            Method::POST,
            &format!("/api/projects/{}/review", t.project),
            Some(json!({"item_ids": [id]})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    // The queue entry carries the labels and their schema version.
    let resp = app
        .send(
            &t.reviewer,
            Method::POST,
            &format!("/api/review/next?project_id={}", t.project),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let entry: Value = resp.json().await.unwrap();
    assert_eq!(entry["item"]["id"], id.as_str());
    assert_eq!(entry["annotation"]["values"], json!({"sentiment": "pos"}));
    assert_eq!(entry["annotation"]["schema_version"], 1);
    assert_eq!(entry["annotation"]["revision"], 1);

    // Labels that break the schema: 422, and no decision is recorded.
    let resp = app
        .send(
            &t.reviewer,
            Method::PATCH,
            &format!("/api/review/{id}"),
            Some(json!({"decision": "approve", "corrected_annotation": {"sentiment": "meh"}})),
        )
        .await;
    let problem =
        assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_annotation").await;
    assert_eq!(problem["field"], "/values/sentiment");
    let now = app.get_json(&item, &t.reviewer).await;
    assert_eq!(now["status"], "pending_review");

    // Labels go with an approval only.
    let resp = app
        .send(
            &t.reviewer,
            Method::PATCH,
            &format!("/api/review/{id}"),
            Some(json!({
                "decision": "reject", "reason_code": "noise",
                "corrected_annotation": {"sentiment": "neg"},
            })),
        )
        .await;
    assert_problem(
        resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "correction_not_allowed",
    )
    .await;

    // Fix and accept: the reviewer's labels are the item's, in a revision of theirs.
    let resp = app
        .send(
            &t.reviewer,
            Method::PATCH,
            &format!("/api/review/{id}"),
            Some(json!({"decision": "approve", "corrected_annotation": {"sentiment": "neg"}})),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let labels = annotation(&app, &t.contributor, &item).await;
    assert_eq!(labels["revision"], 2);
    assert_eq!(labels["values"], json!({"sentiment": "neg"}));
    assert_eq!(labels["author_id"], app.user_id(&t.reviewer).await.as_str());
    let now = app.get_json(&item, &t.contributor).await;
    assert_eq!(now["status"], "approved");
}

/// Lists filter by label: `label=field:value`, repeatable (all must hold), on label and
/// multi_label fields, following each item's current annotation.
async fn lists_filter_by_label(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app).await;
    schema_set(
        &app,
        &t.admin,
        &t.project,
        json!([
            {"name": "sentiment", "type": "label", "options": ["pos", "neg"]},
            {"name": "topics", "type": "multi_label", "options": ["news", "sport"]},
        ]),
    )
    .await;
    let a = ready_doc(&app, &t.contributor, &t.project, "first document").await;
    let b = ready_doc(&app, &t.contributor, &t.project, "second document").await;
    let c = ready_doc(&app, &t.contributor, &t.project, "third document").await;
    annotated(
        &app,
        &t.contributor,
        &doc(&a),
        json!({"sentiment": "pos", "topics": ["news"]}),
    )
    .await;
    annotated(
        &app,
        &t.contributor,
        &doc(&b),
        json!({"sentiment": "pos", "topics": ["sport", "news"]}),
    )
    .await;
    annotated(&app, &t.contributor, &doc(&c), json!({"sentiment": "neg"})).await;

    let listed = |filters: &'static [&'static str]| {
        let app = &app;
        let project = t.project.clone();
        let token = t.admin.clone();
        async move {
            let query: String = filters.iter().map(|f| format!("&label={f}")).collect();
            let page = app
                .get_json(
                    &format!("/api/documents?project_id={project}{query}"),
                    &token,
                )
                .await;
            let mut ids: Vec<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        listed(&["sentiment:pos"]).await,
        sorted(vec![a.clone(), b.clone()])
    );
    assert_eq!(listed(&["sentiment:neg"]).await, vec![c.clone()]);
    assert_eq!(
        listed(&["topics:news"]).await,
        sorted(vec![a.clone(), b.clone()])
    );
    assert_eq!(
        listed(&["topics:news", "topics:sport"]).await,
        vec![b.clone()]
    );
    assert_eq!(
        listed(&["sentiment:pos", "topics:sport"]).await,
        vec![b.clone()]
    );
    assert!(listed(&["sentiment:neu"]).await.is_empty());
    assert_eq!(listed(&[]).await.len(), 3);

    // A new revision replaces what the item is found by.
    annotated(&app, &t.contributor, &doc(&a), json!({"sentiment": "neg"})).await;
    assert_eq!(listed(&["sentiment:pos"]).await, vec![b.clone()]);
    assert_eq!(
        listed(&["sentiment:neg"]).await,
        sorted(vec![a.clone(), c.clone()])
    );

    // A contributor's list is still their own; a malformed filter is refused.
    let resp = app
        .get_auth(
            &format!("/api/documents?project_id={}&label=sentiment", t.project),
            &t.admin,
        )
        .await;
    let problem = assert_problem(
        resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_label_filter",
    )
    .await;
    assert_eq!(problem["field"], "label");
}

/// Pipelines annotate many items at once: all or nothing, each item checked as a single
/// write would be, faults pointing into the request, and `Idempotency-Key` honoured.
async fn bulk_annotation_is_all_or_nothing(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app).await;
    schema_set(
        &app,
        &t.admin,
        &t.project,
        json!([
            {"name": "sentiment", "type": "label", "options": ["pos", "neg"]},
            {"name": "stars", "type": "rating", "min": 1, "max": 5},
        ]),
    )
    .await;
    let a = ready_doc(&app, &t.contributor, &t.project, "first document").await;
    let b = ready_doc(&app, &t.contributor, &t.project, "second document").await;
    let path = format!("/api/projects/{}/annotations", t.project);
    let bulk = |token: &str, body: Value, key: Option<&str>| {
        let mut req = app
            .client
            .put(app.url(&path))
            .bearer_auth(token.to_owned())
            .json(&body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        req.send()
    };

    // One bad value refuses the lot, pointing at it; nothing is written.
    let body = json!({"items": [
        {"item_id": a, "values": {"sentiment": "pos", "stars": 4}},
        {"item_id": b, "values": {"sentiment": "pos", "stars": 9}},
    ]});
    let resp = bulk(&t.contributor, body, None).await.unwrap();
    let problem =
        assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_annotation").await;
    assert_eq!(problem["field"], "/items/1/values/stars");
    assert_eq!(
        annotation(&app, &t.contributor, &doc(&a)).await["revision"],
        0
    );

    // An item of no one's (or not of this project) is refused as content.
    let body = json!({"items": [{"item_id": uuid::Uuid::new_v4(), "values": {}}]});
    let resp = bulk(&t.contributor, body, None).await.unwrap();
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "unknown_item").await;

    // Reviewers do not label.
    let body = json!({"items": [{"item_id": a, "values": {"sentiment": "neg"}}]});
    let resp = bulk(&t.reviewer, body, None).await.unwrap();
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;

    // All valid: every item gets a revision, in the order sent; a retry with the same
    // key is the same answer, written once.
    let body = json!({"items": [
        {"item_id": a, "values": {"sentiment": "pos", "stars": 4}},
        {"item_id": b, "values": {"sentiment": "neg"}},
    ]});
    let resp = bulk(&t.contributor, body.clone(), Some("bulk-1"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let first: Value = resp.json().await.unwrap();
    let written = first["annotations"].as_array().unwrap();
    assert_eq!(written.len(), 2);
    assert_eq!(written[0]["item_id"], a.as_str());
    assert_eq!(written[1]["values"], json!({"sentiment": "neg"}));
    let resp = bulk(&t.contributor, body, Some("bulk-1")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["idempotent-replayed"], "true");
    let again: Value = resp.json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(
        annotation(&app, &t.contributor, &doc(&a)).await["revision"],
        1
    );
    assert_eq!(
        annotation(&app, &t.contributor, &doc(&b)).await["revision"],
        1
    );
}

/// PUT `source`'s suggestion for `item`.
async fn suggest(
    app: &TestApp,
    token: &str,
    item: &str,
    source: &str,
    score: Option<f64>,
    values: Value,
) -> Response {
    let mut body = json!({"source": source, "values": values});
    if let Some(score) = score {
        body["score"] = json!(score);
    }
    let path = format!("{item}/annotation/suggestions");
    app.send(token, Method::PUT, &path, Some(body)).await
}

/// POST an acceptance of `source`'s suggestion for `item` (`fields`, when given).
async fn accept(
    app: &TestApp,
    token: &str,
    item: &str,
    body: Value,
    if_match: Option<&str>,
) -> Response {
    let mut req = app
        .client
        .post(app.url(&format!("{item}/annotation/suggestions/accept")))
        .bearer_auth(token)
        .json(&body);
    if let Some(tag) = if_match {
        req = req.header("if-match", tag);
    }
    req.send().await.unwrap()
}

/// Machine suggestions are stored per source beside the human values, checked as values
/// are, replaced when the source posts again, and change nothing until the contributor
/// accepts them (all fields or some, guarded by `If-Match`). Suggested spans made on an
/// earlier text are refused at acceptance; an item in review takes no suggestion.
async fn suggestions_stay_apart_until_accepted(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app).await;
    schema_set(
        &app,
        &t.admin,
        &t.project,
        json!([
            {"name": "topic", "type": "label", "options": ["news", "sport"]},
            {"name": "entities", "type": "spans", "options": ["PER", "LOC"]},
            {"name": "stars", "type": "rating", "min": 1, "max": 5},
        ]),
    )
    .await;
    // "Ana" 0..3, "Nairobi" 13..20.
    let id = ready_doc(&app, &t.contributor, &t.project, "Ana lives in Nairobi.").await;
    let item = doc(&id);
    annotated(&app, &t.contributor, &item, json!({"stars": 4})).await;
    let admin_id = app.user_id(&t.admin).await;

    // A pipeline (the admin's token) suggests; a second post from it replaces the first.
    let first = json!({"topic": "sport"});
    let resp = suggest(&app, &t.admin, &item, "ner-v1", Some(0.5), first).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let ner = json!({
        "topic": "news",
        "entities": [{"start": 0, "end": 3, "label": "PER"}, {"start": 13, "end": 20, "label": "LOC"}],
    });
    let resp = suggest(&app, &t.admin, &item, "ner-v1", Some(0.8), ner.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let stored: Value = resp.json().await.unwrap();
    assert_eq!(stored["source"], "ner-v1");
    assert_eq!(stored["score"], 0.8);
    assert_eq!(stored["values"], ner);
    assert_eq!(stored["schema_version"], 1);
    assert_eq!(stored["author_id"], admin_id.as_str());
    assert_eq!(
        stored["text_revision"], 1,
        "spans count in the machine text"
    );
    // The contributor's own script suggests too (no score).
    let resp = suggest(
        &app,
        &t.contributor,
        &item,
        "a-rules",
        None,
        json!({"stars": 2}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);

    // Refused: a kept or malformed source, a value that does not fit, a reviewer, an
    // outsider; each changes nothing.
    for (source, values, pointer) in [
        ("transcription", json!({}), "/source"),
        ("NER", json!({}), "/source"),
        (
            "ner-v1",
            json!({"entities": [{"start": 0, "end": 3, "label": "ORG"}]}),
            "/values/entities/0/label",
        ),
        (
            "ner-v1",
            json!({"entities": [{"start": 0, "end": 99, "label": "PER"}]}),
            "/values/entities/0/end",
        ),
        ("ner-v1", json!({"colour": "red"}), "/values/colour"),
    ] {
        let resp = suggest(&app, &t.admin, &item, source, None, values).await;
        let problem =
            assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_annotation").await;
        assert_eq!(problem["field"], pointer);
    }
    let resp = suggest(&app, &t.admin, &item, "ner-v1", Some(1.5), json!({})).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "a score is 0 to 1");
    let resp = suggest(&app, &t.reviewer, &item, "r", None, json!({})).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let outsider = app.signed_up_user("out@example.org").await;
    let resp = suggest(&app, &outsider, &item, "o", None, json!({})).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;

    // Every member who sees the item reads them, by source; the values are untouched.
    let path = format!("{item}/annotation/suggestions");
    let listed = app.get_json(&path, &t.reviewer).await;
    let sources: Vec<&str> = listed["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["a-rules", "ner-v1"], "{listed}");
    assert_eq!(listed["suggestions"][1]["values"], ner);
    assert!(listed["suggestions"][0].get("score").is_none());
    let unchanged = annotation(&app, &t.contributor, &item).await;
    assert_eq!(unchanged["revision"], 1);
    assert_eq!(unchanged["values"], json!({"stars": 4}));

    // Accepting some fields: a revision by the acceptor, the rest kept.
    let resp = accept(
        &app,
        &t.contributor,
        &item,
        json!({"source": "ner-v1", "fields": ["topic"]}),
        Some("\"1\""),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(etag(&resp), "\"2\"");
    let taken: Value = resp.json().await.unwrap();
    assert_eq!(taken["values"], json!({"stars": 4, "topic": "news"}));
    assert_eq!(
        taken["author_id"],
        app.user_id(&t.contributor).await.as_str()
    );
    // A stale If-Match, a field the suggestion lacks, a source that suggested nothing,
    // a reviewer: refused, nothing written.
    let resp = accept(
        &app,
        &t.contributor,
        &item,
        json!({"source": "ner-v1"}),
        Some("\"1\""),
    )
    .await;
    assert_problem(resp, StatusCode::PRECONDITION_FAILED, "precondition_failed").await;
    let resp = accept(
        &app,
        &t.contributor,
        &item,
        json!({"source": "ner-v1", "fields": ["topic", "stars"]}),
        None,
    )
    .await;
    let problem =
        assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_annotation").await;
    assert_eq!(problem["field"], "/fields/1");
    let resp = accept(
        &app,
        &t.contributor,
        &item,
        json!({"source": "nobody"}),
        None,
    )
    .await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = accept(&app, &t.reviewer, &item, json!({"source": "ner-v1"}), None).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(annotation(&app, &t.contributor, &item).await["revision"], 2);

    // The text changes: the suggested spans may point at other words now, so accepting
    // them is refused until the pipeline suggests again on the current text.
    write_text(&app, &t.contributor, &id, "Dr. Ana lives in Nairobi.").await;
    let resp = accept(
        &app,
        &t.contributor,
        &item,
        json!({"source": "ner-v1"}),
        None,
    )
    .await;
    assert_problem(resp, StatusCode::CONFLICT, "suggestion_stale").await;
    // Fields without spans are still taken.
    let resp = accept(
        &app,
        &t.contributor,
        &item,
        json!({"source": "a-rules"}),
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let renewed = json!({"entities": [{"start": 4, "end": 7, "label": "PER"}]});
    let resp = suggest(&app, &t.admin, &item, "ner-v1", Some(0.9), renewed.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = accept(
        &app,
        &t.contributor,
        &item,
        json!({"source": "ner-v1"}),
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let all: Value = resp.json().await.unwrap();
    assert_eq!(
        all["values"],
        json!({"stars": 2, "topic": "news", "entities": renewed["entities"]})
    );

    // In review, nothing about the labels changes, suggestions included.
    let resp = submit(&app, &t.contributor, &t.project, &[&id]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = suggest(&app, &t.admin, &item, "ner-v1", None, json!({})).await;
    assert_problem(resp, StatusCode::CONFLICT, "item_in_review").await;
    let resp = accept(
        &app,
        &t.contributor,
        &item,
        json!({"source": "a-rules"}),
        None,
    )
    .await;
    assert_problem(resp, StatusCode::CONFLICT, "item_in_review").await;
}

/// What a removal is in use by, counted in the database for every kind of value: a
/// multi-label's options, a span's label, a rating field; only each live item's newest
/// revision counts (not a deleted item's, not an earlier revision's).
async fn schema_in_use_counts_every_kind_of_value(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app).await;
    let fields = |tags: Value, entities: Value| {
        json!([
            {"name": "tags", "type": "multi_label", "options": tags},
            {"name": "entities", "type": "spans", "options": entities},
            {"name": "score", "type": "rating", "min": 1, "max": 5},
        ])
    };
    schema_set(
        &app,
        &t.admin,
        &t.project,
        fields(json!(["x", "y", "z"]), json!(["PER", "LOC"])),
    )
    .await;
    let a = ready_doc(&app, &t.contributor, &t.project, "Amina anaishi Nairobi.").await;
    let b = ready_doc(&app, &t.contributor, &t.project, "Juma yuko Mombasa.").await;
    let gone = ready_doc(&app, &t.contributor, &t.project, "Hii itafutwa.").await;
    annotated(
        &app,
        &t.contributor,
        &doc(&a),
        json!({"tags": ["x", "y"], "entities": [{"start": 0, "end": 5, "label": "PER"},
                                                {"start": 14, "end": 21, "label": "LOC"}],
               "score": 4}),
    )
    .await;
    // b's first revision used z; its newest does not.
    annotated(&app, &t.contributor, &doc(&b), json!({"tags": ["z"]})).await;
    annotated(
        &app,
        &t.contributor,
        &doc(&b),
        json!({"tags": ["y"], "entities": [{"start": 0, "end": 4, "label": "PER"}]}),
    )
    .await;
    annotated(
        &app,
        &t.contributor,
        &doc(&gone),
        json!({"tags": ["x", "y", "z"], "entities": [{"start": 0, "end": 3, "label": "LOC"}],
               "score": 2}),
    )
    .await;
    let resp = app
        .send(&t.contributor, Method::DELETE, &doc(&gone), None)
        .await;
    assert!(resp.status().is_success(), "{}", resp.status());

    let refusal = |resp: Response| async move {
        let problem = assert_problem(resp, StatusCode::CONFLICT, "schema_in_use").await;
        problem["detail"].as_str().unwrap().to_owned()
    };
    // Options x, y (multi-label) and LOC (a span's label) go; z is used by no newest
    // revision of a live item, PER stays.
    let detail = refusal(
        put_schema(
            &app,
            &t.admin,
            &t.project,
            fields(json!(["z"]), json!(["PER"])),
        )
        .await,
    )
    .await;
    assert!(
        detail.contains(r#"option "x" of field "tags" is used by 1 annotations"#),
        "{detail}"
    );
    assert!(
        detail.contains(r#"option "y" of field "tags" is used by 2 annotations"#),
        "{detail}"
    );
    assert!(
        detail.contains(r#"option "LOC" of field "entities" is used by 1 annotations"#),
        "{detail}"
    );
    assert!(!detail.contains(r#"option "z""#), "{detail}");
    // The rating field goes: one live annotation has a score.
    let detail = refusal(
        put_schema(
            &app,
            &t.admin,
            &t.project,
            json!([
                {"name": "tags", "type": "multi_label", "options": ["x", "y", "z"]},
                {"name": "entities", "type": "spans", "options": ["PER", "LOC"]},
            ]),
        )
        .await,
    )
    .await;
    assert!(
        detail.contains(r#"field "score" is used by 1 annotations"#),
        "{detail}"
    );
    // Dropping only z is allowed: nothing current uses it.
    let v2 = schema_set(
        &app,
        &t.admin,
        &t.project,
        fields(json!(["x", "y"]), json!(["PER", "LOC"])),
    )
    .await;
    assert_eq!(v2["version"], 2);
}
