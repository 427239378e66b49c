//! Commands that keep their word when the database is slow: a 503 means nothing was
//! written, a 2xx has everything it promised, and an idempotency key has one effect.
//! The database is slowed by a test connection that holds the lock the project actor
//! needs (PostgreSQL: a row or table lock; SQLite: the write lock), with the engine's
//! call timeout (`ENGINE_CALL_TIMEOUT_MS`) made short.

use std::{
    collections::HashSet,
    future::Future,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use futures::future::join_all;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{
    backend_tests,
    child_server::Site,
    helpers::{Backend, TestApp, TestAppBuilder, files_under, init_test_env},
    items::upload,
    projects::create_project,
};

backend_tests!(
    uploads_answered_503_leave_nothing_and_201s_keep_their_blob,
    one_idempotency_key_makes_one_project_when_the_database_is_slow,
    keyed_uploads_refused_with_503_are_retried_into_one_item_each,
    review_calls_for_unknown_projects_start_no_project_actor,
);

/// Short enough that a held lock outlasts it many times over.
const CALL_TIMEOUT_MS: &str = "300";
/// How long the lock is held at least; at most [`HOLD_MAX`], less than SQLite's
/// 5-second busy timeout. In between, it is released as soon as every request but
/// the one the actor has begun has its answer (so a slow machine cannot release it
/// before the requests have queued).
const HOLD: Duration = Duration::from_millis(1500);
const HOLD_MAX: Duration = Duration::from_secs(3);

/// A lock held by another connection, in an open transaction, until released.
struct HeldLock {
    release: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl HeldLock {
    /// PostgreSQL runs `pg_sql`; SQLite takes the database's write lock.
    async fn take(app: &TestApp, backend: Backend, pg_sql: String) -> Self {
        let url = app.database_url.clone();
        let (locked_tx, locked_rx) = oneshot::channel::<()>();
        let (release, released) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            match backend {
                Backend::Postgres => {
                    let pool = sqlx::PgPool::connect(&url).await.unwrap();
                    let mut tx = pool.begin().await.unwrap();
                    sqlx::query(sqlx::AssertSqlSafe(pg_sql))
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    locked_tx.send(()).unwrap();
                    let _ = released.await;
                    tx.rollback().await.unwrap();
                    pool.close().await;
                }
                Backend::Sqlite => {
                    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                    let tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
                    locked_tx.send(()).unwrap();
                    let _ = released.await;
                    tx.rollback().await.unwrap();
                    pool.close().await;
                }
            }
        });
        locked_rx.await.expect("the lock is taken");
        Self {
            release: Some(release),
            task,
        }
    }

    /// Release after [`HOLD`], once `answered` reaches `enough`, or after [`HOLD_MAX`].
    async fn release_when(mut self, answered: &AtomicUsize, enough: usize) {
        let start = tokio::time::Instant::now();
        tokio::time::sleep(HOLD).await;
        while answered.load(Ordering::SeqCst) < enough && start.elapsed() < HOLD_MAX {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        self.task.await.unwrap();
    }
}

/// Run `requests` at once while `lock` is held; the lock goes when all but one have
/// answered (see [`HeldLock::release_when`]).
async fn while_locked<F, T>(lock: HeldLock, requests: impl Iterator<Item = F>) -> Vec<T>
where
    F: Future<Output = T>,
{
    let answered = AtomicUsize::new(0);
    let requests: Vec<_> = requests
        .map(|request| async {
            let out = request.await;
            answered.fetch_add(1, Ordering::SeqCst);
            out
        })
        .collect();
    let enough = requests.len().saturating_sub(1);
    let (out, ()) = tokio::join!(join_all(requests), lock.release_when(&answered, enough));
    out
}

/// A server with a short call timeout, its owner's token, a project, and a held lock on
/// that project's row: every commit of the project's actor waits until it is released.
async fn project_behind_a_held_lock(
    backend: Backend,
    name: &str,
) -> (TestApp, String, String, HeldLock) {
    let app = TestAppBuilder::new(backend)
        .var("ENGINE_CALL_TIMEOUT_MS", CALL_TIMEOUT_MS)
        .spawn()
        .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, name).await;
    let lock = HeldLock::take(
        &app,
        backend,
        format!("UPDATE projects SET updated_at = updated_at WHERE id = '{project}'"),
    )
    .await;
    (app, owner, project, lock)
}

async fn uploads_answered_503_leave_nothing_and_201s_keep_their_blob(backend: Backend) {
    // The project actor's commit waits for the lock; the uploads queue behind it.
    let (app, owner, project, lock) = project_behind_a_held_lock(backend, "Slow database").await;
    let contents: Vec<String> = (0..4).map(|i| format!("Document number {i}.\n")).collect();
    // The first upload goes ahead and its group waits for the lock; the others come a
    // little later, so they queue behind that begun group (with group commit, uploads
    // that arrive together would all join it, begun, and be waited for).
    let uploads = contents.iter().enumerate().map(|(i, text)| {
        let (app, owner, project) = (&app, &owner, &project);
        async move {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            upload(
                app,
                owner,
                "/api/documents",
                project,
                text.clone().into_bytes(),
                "note.txt",
                "text/plain",
            )
            .await
        }
    });
    let responses = while_locked(lock, uploads).await;

    let mut created = HashSet::new();
    let mut refused = Vec::new();
    for (resp, text) in responses.into_iter().zip(&contents) {
        match resp.status() {
            StatusCode::CREATED => {
                let body: Value = resp.json().await.unwrap();
                created.insert(body["id"].as_str().unwrap().to_owned());
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(resp.headers().contains_key("retry-after"));
                refused.push(text.clone());
            }
            other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
        }
    }
    assert!(
        !refused.is_empty(),
        "commands queued behind the lock outlive their deadline"
    );
    // Whatever the actor still had queued has had its chance to run by now.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let list = app
        .get_json(
            &format!("/api/documents?project_id={project}&limit=200"),
            &owner,
        )
        .await;
    let listed: HashSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, created, "exactly the 201s became items");
    for id in &created {
        let resp = app
            .get_auth(&format!("/api/documents/{id}/content"), &owner)
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "the blob of {id} is there");
    }
    let blobs = files_under(&app.data_dir().join("blobs").join(&project));
    assert_eq!(blobs.len(), created.len(), "no blob without its item");

    // A refused upload left nothing behind, so sending it again just works.
    for text in refused {
        let resp = upload(
            &app,
            &owner,
            "/api/documents",
            &project,
            text.into_bytes(),
            "note.txt",
            "text/plain",
        )
        .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("engine_commands_dropped_total{actor=\"project\"}"),
        "dropped commands are counted"
    );
}

/// A 503 (nothing written), or 409 while the key's first request still runs.
async fn expect_retryable(resp: reqwest::Response) {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    match status {
        StatusCode::SERVICE_UNAVAILABLE => {}
        StatusCode::CONFLICT => assert_eq!(body["code"], "idempotency_key_in_progress"),
        other => panic!("unexpected {other}: {body}"),
    }
}

async fn create(app: &TestApp, token: &str, key: &str, name: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/projects"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap()
}

async fn one_idempotency_key_makes_one_project_when_the_database_is_slow(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .var("ENGINE_CALL_TIMEOUT_MS", CALL_TIMEOUT_MS)
        .spawn()
        .await;
    let alice = app.signed_up_user("alice@example.org").await;

    // Creating a project writes `projects`, which waits for this lock.
    let lock = HeldLock::take(
        &app,
        backend,
        "LOCK TABLE projects IN SHARE MODE".to_owned(),
    )
    .await;
    let keys: Vec<String> = (0..3).map(|i| format!("slow-key-{i}")).collect();
    let first = keys.iter().map(|key| create(&app, &alice, key, key));
    let first = while_locked(lock, first).await;

    // The client's retry loop: the same key until it gets a 2xx.
    let mut ids = Vec::new();
    for (resp, key) in first.into_iter().zip(&keys) {
        let mut resp = resp;
        let mut tries = 0;
        while resp.status() != StatusCode::CREATED {
            expect_retryable(resp).await;
            tries += 1;
            assert!(tries < 50, "{key} never succeeded");
            tokio::time::sleep(Duration::from_millis(100)).await;
            resp = create(&app, &alice, key, key).await;
        }
        let body: Value = resp.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let list = app.get_json("/api/projects?limit=200", &alice).await;
    let listed: HashSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed,
        ids.iter().cloned().collect::<HashSet<_>>(),
        "one project per key"
    );
    for (key, id) in keys.iter().zip(&ids) {
        let again = create(&app, &alice, key, key).await;
        assert_eq!(again.status(), StatusCode::CREATED);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        let body: Value = again.json().await.unwrap();
        assert_eq!(body["id"], id.as_str());
    }
}

async fn keyed_upload(
    app: &TestApp,
    token: &str,
    project: &str,
    key: &str,
    text: &str,
) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(text.as_bytes().to_vec())
        .file_name("note.txt")
        .mime_str("text/plain")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("project_id", project.to_owned())
        .part("file", part);
    app.client
        .post(app.url("/api/documents"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Uploads with keys queue behind a slow commit: those refused with 503 wrote nothing
/// and kept no claim on their key, so the client's retry with the same key makes the
/// item, once; a replay names it.
async fn keyed_uploads_refused_with_503_are_retried_into_one_item_each(backend: Backend) {
    let (app, owner, project, lock) = project_behind_a_held_lock(backend, "Keyed").await;
    let keys: Vec<String> = (0..4).map(|i| format!("upload-key-{i}")).collect();
    let texts: Vec<String> = (0..4).map(|i| format!("Keyed document {i}.\n")).collect();
    let first = keys
        .iter()
        .zip(&texts)
        .map(|(key, text)| keyed_upload(&app, &owner, &project, key, text));
    let first = while_locked(lock, first).await;

    let mut ids = Vec::new();
    for ((resp, key), text) in first.into_iter().zip(&keys).zip(&texts) {
        let mut resp = resp;
        let mut tries = 0;
        while resp.status() != StatusCode::CREATED {
            expect_retryable(resp).await;
            tries += 1;
            assert!(tries < 50, "{key} never succeeded");
            tokio::time::sleep(Duration::from_millis(100)).await;
            resp = keyed_upload(&app, &owner, &project, key, text).await;
        }
        let body: Value = resp.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let list = app
        .get_json(
            &format!("/api/documents?project_id={project}&limit=200"),
            &owner,
        )
        .await;
    let listed: HashSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed,
        ids.iter().cloned().collect::<HashSet<_>>(),
        "one item per key"
    );
    for ((key, text), id) in keys.iter().zip(&texts).zip(&ids) {
        let again = keyed_upload(&app, &owner, &project, key, text).await;
        assert_eq!(again.status(), StatusCode::CREATED);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        let body: Value = again.json().await.unwrap();
        assert_eq!(body["id"], id.as_str());
        let content = app
            .get_auth(&format!("/api/documents/{id}/content"), &owner)
            .await;
        assert_eq!(content.status(), StatusCode::OK);
    }
}

/// The `project_actors_active` gauge, 0 while no project actor ever ran.
async fn active_project_actors(client: &Client, url: &str) -> f64 {
    let text = client.get(url).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("project_actors_active "))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// A separate process, so the gauge is this server's alone.
async fn review_calls_for_unknown_projects_start_no_project_actor(backend: Backend) {
    init_test_env();
    let site = Site::new(
        backend,
        &[("SECRET_KEY", "deadline-test-secret-key-0123456789abcdef")],
    )
    .await;
    site.admin_create(&[]);
    let server = site.serve("only", &[]).await;
    let client = Client::new();
    let token = server.token(&client).await;
    let metrics = server.url("/metrics");
    let before = active_project_actors(&client, &metrics).await;

    for _ in 0..40 {
        let id = Uuid::now_v7();
        let resp = client
            .post(server.url(&format!("/api/review/next?project_id={id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let resp = client
            .post(server.url(&format!("/api/projects/{id}/review")))
            .bearer_auth(&token)
            .json(&json!({"item_ids": [Uuid::now_v7()]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let resp = client
            .post(server.url(&format!("/api/projects/{id}/restore")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(active_project_actors(&client, &metrics).await, before);
}
