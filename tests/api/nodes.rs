//! Several nodes on one PostgreSQL and one Redis, as real processes: three `alta serve`
//! nodes that answer the API only (`SERVE_WORKERS=false`) and `alta worker` processes
//! that run the jobs, under load from several clients at once. What one node writes,
//! the others see and respect: a project setting, the rate limits, review decisions;
//! jobs are woken across processes by NOTIFY; a node killed mid-load loses nothing it
//! acknowledged; a worker killed mid-job has its job taken over after the lease, and
//! nothing runs twice to visible effect.

use std::time::{Duration, Instant};

use reqwest::{
    Client, StatusCode,
    multipart::{Form, Part},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    child_server::{ADMIN, Server, Site},
    helpers::{Backend, PASSWORD, init_test_env, redis_url},
    pdf::blank_pdf,
};

/// Documents each client uploads (one client per node).
const UPLOADS_PER_CLIENT: usize = 8;
/// A job is taken again this long after its worker died.
const LEASE_SECONDS: &str = "4";
/// How long anything here may take to settle.
const SETTLE: Duration = Duration::from_secs(120);

async fn login(client: &Client, node: &Server, email: &str) -> String {
    let resp = client
        .post(node.url("/api/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "login {email}");
    resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn upload_form(project: &str, bytes: Vec<u8>, name: &str, mime: &str) -> Form {
    let part = Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(mime)
        .unwrap();
    Form::new()
        .text("project_id", project.to_owned())
        .part("file", part)
}

/// Upload a document to `node`; the item's id, or `None` when the node did not answer.
async fn upload_doc(
    client: &Client,
    node: &Server,
    token: &str,
    project: &str,
    bytes: Vec<u8>,
    name: &str,
    mime: &str,
) -> Option<String> {
    let sent = client
        .post(node.url("/api/documents"))
        .bearer_auth(token)
        .multipart(upload_form(project, bytes, name, mime))
        .send()
        .await;
    let resp = sent.ok()?;
    assert_eq!(resp.status(), StatusCode::CREATED, "upload {name}");
    Some(
        resp.json::<Value>().await.unwrap()["id"]
            .as_str()?
            .to_owned(),
    )
}

async fn item(client: &Client, node: &Server, token: &str, id: &str) -> Value {
    client
        .get(node.url(&format!("/api/documents/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Wait until every item has left `uploaded` / `processing`; their final states.
async fn settled(client: &Client, node: &Server, token: &str, ids: &[String]) -> Vec<Value> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut items = Vec::new();
        for id in ids {
            items.push(item(client, node, token, id).await);
        }
        let pending = items
            .iter()
            .filter(|i| matches!(i["status"].as_str(), Some("uploaded" | "processing")))
            .count();
        if pending == 0 {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} of {} items never finished processing",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_and_workers_share_one_database() {
    init_test_env();
    let prefix = format!("nodes:{}:", Uuid::new_v4().simple());
    let redis = redis_url();
    let site = Site::new(
        Backend::Postgres,
        &[
            ("MULTI_NODE", "true"),
            ("REDIS_URL", &redis),
            ("REDIS_KEY_PREFIX", &prefix),
            ("SECRET_KEY", "three-nodes-test-secret-key-0123456789"),
            ("PUBLIC_URL", "http://alta.test"),
            ("JOB_LEASE_SECONDS", LEASE_SECONDS),
            ("RATE_LIMIT_AUTH_PER_ACCOUNT", "2/min"),
            ("WORKER_METRICS_PORT", "0"),
        ],
    )
    .await;
    let reviewers = ["r1@example.org", "r2@example.org", "r3@example.org"];
    site.admin_create(&[]);
    for reviewer in reviewers {
        site.admin_create_as(reviewer, &[]);
    }
    let api_only = [("SERVE_WORKERS", "false")];
    let a = site.serve("a", &api_only).await;
    let b = site.serve("b", &api_only).await;
    let mut c = site.serve("c", &api_only).await;
    // The only worker, polling every ten minutes: every job it runs in this test was
    // announced to it by another process's NOTIFY.
    let mut notified = site
        .worker("worker-1", &[("JOB_POLL_INTERVAL_MS", "600000")])
        .await;
    let client = Client::new();
    let token = login(&client, &a, ADMIN).await;
    let project = a.create_project(&client, &token, "Three nodes").await;

    // Rate limits are one budget for all nodes (Redis): two sign-in attempts per account
    // a minute, wherever they land (fewer than the failures a login delay forgives).
    for (node, status) in [
        (&a, StatusCode::UNAUTHORIZED),
        (&b, StatusCode::UNAUTHORIZED),
        (&c, StatusCode::TOO_MANY_REQUESTS),
        (&a, StatusCode::TOO_MANY_REQUESTS),
    ] {
        let resp = client
            .post(node.url("/api/auth/login"))
            .json(&json!({"email": "guess@example.org", "password": "wrong password guess"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "one budget for every node");
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(resp.json::<Value>().await.unwrap()["code"], "rate_limited");
        }
    }

    // A setting changed on one node holds on the others at once.
    let current: Value = client
        .get(b.url(&format!("/api/projects/{project}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut settings = current["settings"].clone();
    settings["accepted_kinds"] = json!(["document"]);
    let resp = client
        .put(b.url(&format!("/api/projects/{project}")))
        .bearer_auth(&token)
        .json(&json!({"name": current["name"], "description": current["description"], "settings": settings}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = client
        .post(c.url("/api/voice"))
        .bearer_auth(&token)
        .multipart(upload_form(
            &project,
            crate::items::wav(0.5, 16_000, 440.0),
            "v.wav",
            "audio/wav",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "node c saw the setting"
    );
    assert_eq!(
        resp.json::<Value>().await.unwrap()["code"],
        "kind_not_accepted"
    );

    // Load: one client per node uploading at once. Node c is killed (SIGKILL) half-way
    // through its client's uploads; that client goes on against node a. Every upload
    // acknowledged by any node is kept.
    let text = |client_no: usize, n: usize| {
        format!("Client {client_no}, document {n}: words from several nodes.\n").into_bytes()
    };
    let (ids_a, ids_b, ids_c) = {
        let load = |node: &'static str, client_no: usize| {
            let (client, token, project) = (client.clone(), token.clone(), project.clone());
            let (a, b) = (&a, &b);
            async move {
                let target = if node == "a" { a } else { b };
                let mut ids = Vec::new();
                for n in 0..UPLOADS_PER_CLIENT {
                    let name = format!("{node}-{n}.txt");
                    let id = upload_doc(
                        &client,
                        target,
                        &token,
                        &project,
                        text(client_no, n),
                        &name,
                        "text/plain",
                    )
                    .await
                    .expect("a live node answers");
                    ids.push(id);
                }
                ids
            }
        };
        let on_c = async {
            let mut ids = Vec::new();
            for n in 0..UPLOADS_PER_CLIENT {
                let name = format!("c-{n}.txt");
                if n == UPLOADS_PER_CLIENT / 2 {
                    c.kill_9();
                }
                let target = if n < UPLOADS_PER_CLIENT / 2 { &c } else { &a };
                let id = upload_doc(
                    &client,
                    target,
                    &token,
                    &project,
                    text(3, n),
                    &name,
                    "text/plain",
                )
                .await;
                ids.push(id.expect("node a answers once c is gone"));
            }
            ids
        };
        tokio::join!(load("a", 1), load("b", 2), on_c)
    };
    let uploaded: Vec<String> = ids_a.into_iter().chain(ids_b).chain(ids_c).collect();
    assert_eq!(uploaded.len(), 3 * UPLOADS_PER_CLIENT);
    for item in settled(&client, &a, &token, &uploaded).await {
        assert_eq!(item["status"], "ready", "{item}");
    }

    // A worker killed mid-job: its job is taken over after the lease by another worker
    // (which polls), and finishes once.
    let scans: Vec<String> = {
        let mut ids = Vec::new();
        for pages in [2, 3] {
            let pdf = blank_pdf(pages);
            let n = pages;
            ids.push(
                upload_doc(
                    &client,
                    &b,
                    &token,
                    &project,
                    pdf,
                    &format!("scan-{n}.pdf"),
                    "application/pdf",
                )
                .await
                .unwrap(),
            );
        }
        ids
    };
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut running = false;
        for id in &scans {
            running |= item(&client, &a, &token, id).await["status"] == "processing";
        }
        if running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no scan was ever taken by the worker"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    notified.kill_9();
    let _polling = site
        .worker("worker-2", &[("JOB_POLL_INTERVAL_MS", "300")])
        .await;
    let scans_done = settled(&client, &a, &token, &scans).await;
    for scan in &scans_done {
        assert_ne!(scan["status"], "processing", "{scan}");
    }

    // Review from several nodes at once: every reviewer decides every item; exactly one
    // decision per item stands, the others are refused.
    let refs: Vec<&str> = uploaded.iter().map(String::as_str).collect();
    let resp = client
        .post(a.url(&format!("/api/projects/{project}/review")))
        .bearer_auth(&token)
        .json(&json!({"item_ids": refs}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );
    let mut reviewer_tokens = Vec::new();
    for (reviewer, node) in reviewers.iter().zip([&a, &b, &a]) {
        reviewer_tokens.push((login(&client, node, reviewer).await, node));
    }
    let mut accepted = 0;
    for id in &uploaded {
        let decisions = reviewer_tokens.iter().map(|(t, node)| {
            client
                .patch(node.url(&format!("/api/review/{id}")))
                .bearer_auth(t)
                .json(&json!({"decision": "approve"}))
                .send()
        });
        for resp in futures::future::join_all(decisions).await {
            let resp = resp.unwrap();
            match resp.status() {
                StatusCode::OK => accepted += 1,
                StatusCode::CONFLICT => {}
                other => panic!("decision answered {other}: {}", resp.text().await.unwrap()),
            }
        }
    }
    assert_eq!(accepted, uploaded.len(), "one decision stands per item");

    // Nothing ran twice to visible effect: one text per document, one decision per
    // item, every item approved.
    let pool = sqlx::PgPool::connect(&site.database_url).await.unwrap();
    let twice: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT item_id, COUNT(*) FROM item_texts GROUP BY item_id HAVING COUNT(*) > 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(twice.is_empty(), "texts written twice: {twice:?}");
    let decided: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT item_id, COUNT(*) FROM review_decisions GROUP BY item_id HAVING COUNT(*) <> 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        decided.is_empty(),
        "items decided other than once: {decided:?}"
    );
    for item in settled(&client, &b, &token, &uploaded).await {
        assert_eq!(item["status"], "approved", "{item}");
    }
    pool.close().await;
}
