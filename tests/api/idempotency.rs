//! Idempotency keys on creating POSTs, on both backends.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    backend_tests,
    helpers::{Backend, PASSWORD, TestApp, TestAppBuilder, assert_problem},
};

backend_tests!(
    a_retry_replays_the_first_answer,
    fifty_concurrent_retries_make_one_project,
    failures_are_not_stored_and_keys_expire,
);

async fn create(app: &TestApp, token: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/api/projects"))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    req.send().await.unwrap()
}

async fn project_count(app: &TestApp, token: &str) -> usize {
    let list: Value = app
        .get_auth("/api/projects?limit=200", token)
        .await
        .json()
        .await
        .unwrap();
    list["items"].as_array().unwrap().len()
}

async fn a_retry_replays_the_first_answer(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let alice = app.signed_up_user("alice@example.org").await;
    let body = json!({"name": "Retry me"});
    let first = create(&app, &alice, Some("key-1"), &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = first.text().await.unwrap();
    let again = create(&app, &alice, Some("key-1"), &body).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(
        again.text().await.unwrap(),
        first,
        "the replay is identical"
    );
    assert_eq!(project_count(&app, &alice).await, 1);

    // The same key with another request is refused and changes nothing.
    let other = create(
        &app,
        &alice,
        Some("key-1"),
        &json!({"name": "Something else"}),
    )
    .await;
    assert_problem(
        other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!(project_count(&app, &alice).await, 1);

    // Keys are per user: Bob's "key-1" is his own.
    let bob = app.signed_up_user("bob@example.org").await;
    let bobs = create(&app, &bob, Some("key-1"), &body).await;
    assert_eq!(bobs.status(), StatusCode::CREATED);
    assert!(bobs.headers().get("idempotent-replayed").is_none());
    let bobs: Value = bobs.json().await.unwrap();
    let alices: Value = serde_json::from_str(&first).unwrap();
    assert_ne!(bobs["id"], alices["id"]);

    // Without a key every POST creates; a malformed key is refused.
    create(&app, &alice, None, &body).await;
    create(&app, &alice, None, &body).await;
    assert_eq!(project_count(&app, &alice).await, 3);
    let long = "k".repeat(256);
    assert_problem(
        create(&app, &alice, Some(&long), &body).await,
        StatusCode::BAD_REQUEST,
        "invalid_idempotency_key",
    )
    .await;

    // Invitations honour keys too.
    let project = alices["id"].as_str().unwrap();
    let invite = |key: &'static str| {
        app.client
            .post(app.url(&format!("/api/projects/{project}/invite")))
            .bearer_auth(&alice)
            .header("idempotency-key", key)
            .json(&json!({"email": "carol@example.org", "role": "reviewer"}))
            .send()
    };
    assert_eq!(invite("inv-1").await.unwrap().status(), StatusCode::CREATED);
    let replay = invite("inv-1").await.unwrap();
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");
    app.wait_for_mails("carol@example.org", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        app.outbox_mails("carol@example.org").len(),
        1,
        "one invitation, one mail"
    );
}

async fn fifty_concurrent_retries_make_one_project(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let alice = app.signed_up_user("alice@example.org").await;
    let body = json!({"name": "Stampede"});
    let responses =
        futures::future::join_all((0..50).map(|_| create(&app, &alice, Some("stampede"), &body)))
            .await;
    let mut ids = std::collections::HashSet::new();
    for resp in responses {
        match resp.status() {
            StatusCode::CREATED => {
                let project: Value = resp.json().await.unwrap();
                ids.insert(project["id"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => {
                let problem: Value = resp.json().await.unwrap();
                assert_eq!(problem["code"], "idempotency_key_in_progress");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ids.len(), 1, "every 201 names the same project");
    assert_eq!(project_count(&app, &alice).await, 1, "exactly one effect");
}

async fn failures_are_not_stored_and_keys_expire(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let alice = app.signed_up_user("alice@example.org").await;
    let project = create(&app, &alice, None, &json!({"name": "Base"})).await;
    let project: Value = project.json().await.unwrap();
    let project = project["id"].as_str().unwrap().to_owned();
    // A refused request (409: already a member) is not stored: the retry is evaluated again.
    for _ in 0..2 {
        let resp = app
            .client
            .post(app.url(&format!("/api/projects/{project}/invite")))
            .bearer_auth(&alice)
            .header("idempotency-key", "member-key")
            .json(&json!({"email": "alice@example.org", "role": "reviewer"}))
            .send()
            .await
            .unwrap();
        assert_problem(resp, StatusCode::CONFLICT, "already_member").await;
    }
    // Validation failures neither: the key then works for a valid request.
    let bad = create(&app, &alice, Some("fresh"), &json!({"name": ""})).await;
    assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_name").await;
    assert_eq!(
        create(&app, &alice, Some("fresh"), &json!({"name": "Good"}))
            .await
            .status(),
        StatusCode::CREATED
    );

    // After 24 hours a key is forgotten: the same request creates again.
    app.clock
        .advance(chrono::Duration::hours(24) + chrono::Duration::seconds(1));
    let alice = app.token("alice@example.org", PASSWORD).await;
    let again = create(&app, &alice, Some("fresh"), &json!({"name": "Good"})).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert!(again.headers().get("idempotent-replayed").is_none());
    assert_eq!(project_count(&app, &alice).await, 3);
}

/// A request killed mid-flight (SIGKILL) holds its key only for the claim's lease,
/// which its dead owner no longer renews: a retry soon gets through, and makes the one
/// project the dead request never committed. PostgreSQL only: the create is held at a
/// table lock after its claim is written, which SQLite's single writer cannot do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_requests_key_is_free_again_within_seconds() {
    use crate::child_server::Site;
    use reqwest::Client;
    use std::time::Duration;

    crate::helpers::init_test_env();
    let site = Site::new(
        Backend::Postgres,
        &[("SECRET_KEY", "lease-test-secret-key-0123456789abcdef")],
    )
    .await;
    site.admin_create(&[]);
    let mut server = site.serve("first", &[]).await;
    let client = Client::new();
    let token = server.token(&client).await;
    let create_at = |base: String, token: String| {
        let client = client.clone();
        async move {
            client
                .post(format!("{base}/api/projects"))
                .bearer_auth(token)
                .header("idempotency-key", "crash-key")
                .json(&json!({"name": "Survivor"}))
                .send()
                .await
        }
    };

    let pool = sqlx::PgPool::connect(&site.database_url).await.unwrap();
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE projects IN SHARE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let pending = tokio::spawn(create_at(server.url(""), token.clone()));
    crate::helpers::wait_for_idempotency_claim(&pool, "crash-key").await;
    server.kill_9();
    lock.rollback().await.unwrap();
    assert!(
        pending.await.unwrap().is_err(),
        "the request died with its server"
    );

    let server = site.serve("second", &[]).await;
    let token = server.token(&client).await;
    let mut in_progress = 0;
    let created: Value = loop {
        let resp = create_at(server.url(""), token.clone()).await.unwrap();
        match resp.status() {
            StatusCode::CREATED => break resp.json().await.unwrap(),
            StatusCode::CONFLICT => {
                let problem: Value = resp.json().await.unwrap();
                assert_eq!(problem["code"], "idempotency_key_in_progress");
                in_progress += 1;
                assert!(
                    in_progress < 60,
                    "the dead request's claim still held after 30 s"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => panic!("unexpected {other}"),
        }
    };
    let projects: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM projects")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(projects, 1, "the dead request committed nothing");
    assert_eq!(created["name"], "Survivor");
    pool.close().await;
}
