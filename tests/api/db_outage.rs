//! A PostgreSQL outage, through a proxy that cuts every connection and refuses new
//! ones: the server answers 503 problems (never a 500, never a 401 for a valid token),
//! readiness fails while liveness holds, an upload refused during the outage leaves
//! nothing behind, and the server recovers by itself when the database is back. A slow
//! database afterwards is slow, not broken.

use std::{net::SocketAddr, time::Duration};

use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    helpers::{
        Backend, PgSchema, TestApp, TestAppBuilder, assert_problem, init_test_env, postgres_url,
    },
    items::upload,
    projects::create_project,
    tcp_proxy::TcpProxy,
};

/// `host:port` of the test PostgreSQL, as written in its URL.
fn postgres_host_port() -> String {
    let url = url::Url::parse(&postgres_url()).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
}

async fn document_ids(app: &TestApp, token: &str, project: &str) -> Vec<String> {
    let page: Value = app
        .get_json(
            &format!("/api/documents?project_id={project}&limit=200"),
            token,
        )
        .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_problems_and_recovers_without_a_restart() {
    init_test_env();
    let upstream = postgres_host_port();
    let addr: SocketAddr = tokio::net::lookup_host(&upstream)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = TcpProxy::start(addr).await;
    let schema = PgSchema::create().await;
    let proxied = schema
        .url
        .replacen(&upstream, &format!("127.0.0.1:{}", proxy.port()), 1);
    assert_ne!(
        proxied, schema.url,
        "the server talks to PostgreSQL through the proxy"
    );
    let app = TestAppBuilder::new(Backend::Postgres)
        .var("DATABASE_URL", proxied)
        .spawn()
        .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Outage").await;
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"before the outage\n".to_vec(),
        "before.txt",
        "text/plain",
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let before = document_ids(&app, &owner, &project).await;
    assert_eq!(before.len(), 1);

    proxy.cut();
    // A read, a write and an upload: each a 503 problem, none a 500 or a 401.
    let resp = app
        .get_auth(&format!("/api/projects/{project}"), &owner)
        .await;
    assert_problem(resp, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let resp = app
        .client
        .post(app.url("/api/projects"))
        .bearer_auth(&owner)
        .json(&serde_json::json!({"name": "During the outage"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"during the outage\n".to_vec(),
        "during.txt",
        "text/plain",
    )
    .await;
    assert_problem(resp, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    assert_eq!(
        app.get("/health/ready").await.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready without its database"
    );
    assert_eq!(app.get("/health").await.status(), StatusCode::OK, "alive");

    proxy.restore();
    // Recovery needs no restart: readiness comes back, and so does every operation.
    let mut ready = false;
    for _ in 0..300 {
        if app.get("/health/ready").await.status() == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready again once the database is back");
    assert_eq!(
        document_ids(&app, &owner, &project).await,
        before,
        "the upload refused during the outage left no item"
    );
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"during the outage\n".to_vec(),
        "during.txt",
        "text/plain",
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "the same file uploads after the outage (nothing of the refused one blocks it)"
    );
    let projects: Value = app.get_json("/api/projects", &owner).await;
    assert_eq!(
        projects["items"].as_array().unwrap().len(),
        1,
        "the project refused during the outage was not created"
    );

    // A slow database (every round trip delayed) is slow, not broken.
    proxy.set_delay(Duration::from_millis(30));
    let resp = upload(
        &app,
        &owner,
        "/api/documents",
        &project,
        b"on a slow database\n".to_vec(),
        "slow.txt",
        "text/plain",
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "an upload on a slow database"
    );
    assert_eq!(document_ids(&app, &owner, &project).await.len(), 3);
    drop(schema);
}
