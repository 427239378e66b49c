//! Stopping the real `alta serve` binary while clients upload, on both backends:
//! - SIGTERM: the server stops taking connections, finishes the requests it has begun
//!   (a slow upload included) and exits 0;
//! - SIGKILL: nothing is finished.
//!
//! Either way, after a restart every acknowledged upload is there with its bytes, every
//! listed item has its file, no file is stored twice, and no item exists beyond the
//! acknowledged ones and the requests whose connection was cut (whose clients cannot
//! know the outcome).

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::SinkExt;
use reqwest::{
    Body, Client, StatusCode,
    multipart::{Form, Part},
};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::{
    backend_tests,
    child_server::{Server, Site},
    helpers::{Backend, init_test_env},
};

backend_tests!(
    sigterm_under_load_finishes_begun_requests_and_loses_no_acknowledged_upload,
    kill_9_under_load_loses_no_acknowledged_upload_and_leaves_no_item_without_its_file,
);

const ENV: &[(&str, &str)] = &[("SECRET_KEY", "stop-test-secret-key-0123456789abcdef")];

/// Clients uploading small documents in a loop while the server is stopped.
const CLIENTS: usize = 4;

fn document_form(project: &str, name: &str, body: Body) -> Form {
    let part = Part::stream(body)
        .file_name(name.to_owned())
        .mime_str("text/plain")
        .unwrap();
    Form::new()
        .text("project_id", project.to_owned())
        .part("file", part)
}

/// What one finished request told its client.
enum Outcome {
    /// 201 with the item's id and the bytes that were sent.
    Stored(String, Vec<u8>),
    /// Any other answer (a 503 while stopping is fine).
    Refused(StatusCode),
    /// The connection was refused: the listener had closed, nothing was begun.
    NotConnected,
    /// The connection was cut: the client cannot know whether it was stored.
    Cut(String),
}

async fn outcome(result: reqwest::Result<reqwest::Response>, sent: Vec<u8>) -> Outcome {
    match result {
        Ok(resp) if resp.status() == StatusCode::CREATED => match resp.json::<Value>().await {
            Ok(body) => Outcome::Stored(body["id"].as_str().unwrap().to_owned(), sent),
            Err(err) => Outcome::Cut(format!("{err:?}")),
        },
        Ok(resp) => Outcome::Refused(resp.status()),
        Err(err) if err.is_connect() => Outcome::NotConnected,
        Err(err) => Outcome::Cut(format!("{err:?}")),
    }
}

/// A site with a running server, the admin's token and a project.
struct Running {
    site: Site,
    server: Server,
    client: Client,
    token: String,
    project: String,
}

async fn start(backend: Backend) -> Running {
    init_test_env();
    let site = Site::new(backend, ENV).await;
    site.admin_create(&[]);
    // No connection reuse: a request on a kept-alive connection that the server closes
    // as it stops would fail for reasons of the client's pool, not of the server.
    let client = Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let server = site.serve("first", &[]).await;
    let token = server.token(&client).await;
    let project = server.create_project(&client, &token, "Stopping").await;
    Running {
        site,
        server,
        client,
        token,
        project,
    }
}

/// The load: each client uploads distinct small documents until the server is gone or
/// `stop` is set.
fn load(run: &Running, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<Vec<Outcome>>> {
    (0..CLIENTS)
        .map(|c| {
            let (client, url, token, project, stop) = (
                run.client.clone(),
                run.server.url("/api/documents"),
                run.token.clone(),
                run.project.clone(),
                Arc::clone(stop),
            );
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let bytes = format!("client {c} document {n}\n").into_bytes();
                    let result = client
                        .post(&url)
                        .bearer_auth(&token)
                        .multipart(document_form(
                            &project,
                            "doc.txt",
                            Body::from(bytes.clone()),
                        ))
                        .send()
                        .await;
                    let out = outcome(result, bytes).await;
                    let gone = matches!(out, Outcome::NotConnected);
                    outcomes.push(out);
                    if gone {
                        break;
                    }
                }
                outcomes
            })
        })
        .collect()
}

/// Acknowledged uploads and cut connections, over every client.
async fn tally(loaders: Vec<JoinHandle<Vec<Outcome>>>) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let (mut stored, mut refused, mut cut) = (Vec::new(), 0, Vec::new());
    for loader in loaders {
        for out in loader.await.unwrap() {
            match out {
                Outcome::Stored(id, bytes) => stored.push((id, bytes)),
                Outcome::Refused(_) => refused += 1,
                Outcome::NotConnected => {}
                Outcome::Cut(err) => cut.push(err),
            }
        }
    }
    eprintln!(
        "under load: {} stored, {refused} refused, {} cut",
        stored.len(),
        cut.len()
    );
    assert!(
        !stored.is_empty(),
        "the load stored uploads before the stop"
    );
    (stored, cut)
}

/// Restart on the same data and check what the first run acknowledged.
async fn check_after_restart(run: &Running, stored: &[(String, Vec<u8>)], cut: usize) {
    let (client, project) = (&run.client, &run.project);
    let server = run.site.serve("second", &[]).await;
    let token = server.token(client).await;
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("/api/documents?project_id={project}&limit=200");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let resp = client
            .get(server.url(&url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let page: Value = resp.json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            listed.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert!(
        listed.len() <= stored.len() + cut,
        "no item was stored without an answer but for cut connections: \
         {} listed, {} acknowledged, {cut} cut",
        listed.len(),
        stored.len(),
    );
    // Every listed item has its file, and no file is there twice.
    let mut contents = HashSet::new();
    for id in &listed {
        let resp = client
            .get(server.url(&format!("/api/documents/{id}/content")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "document {id} has its file");
        let bytes = resp.bytes().await.unwrap().to_vec();
        assert!(
            contents.insert(bytes),
            "document {id}'s file is stored once"
        );
    }
    // Every acknowledged upload is there, with the bytes that were sent.
    for (id, bytes) in stored {
        assert!(listed.contains(id), "acknowledged document {id} is listed");
        let resp = client
            .get(server.url(&format!("/api/documents/{id}/content")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            &resp.bytes().await.unwrap()[..],
            &bytes[..],
            "document {id}'s bytes"
        );
    }
}

async fn sigterm_under_load_finishes_begun_requests_and_loses_no_acknowledged_upload(
    backend: Backend,
) {
    let mut run = start(backend).await;

    // A slow upload: its body arrives over about two seconds, and SIGTERM comes while it
    // is still arriving. The server must wait for it and store it.
    let (mut slow_tx, slow_rx) = futures::channel::mpsc::channel::<std::io::Result<Vec<u8>>>(0);
    let slow_bytes: Vec<u8> = (0..20)
        .flat_map(|i| format!("slow line {i} of a document sent slowly\n").into_bytes())
        .collect();
    let slow = tokio::spawn({
        let request = run
            .client
            .post(run.server.url("/api/documents"))
            .bearer_auth(&run.token)
            .multipart(document_form(
                &run.project,
                "slow.txt",
                Body::wrap_stream(slow_rx),
            ))
            .send();
        let sent = slow_bytes.clone();
        async move { outcome(request.await, sent).await }
    });
    let mut lines: Vec<Vec<u8>> = slow_bytes
        .chunks(slow_bytes.len() / 20)
        .map(<[u8]>::to_vec)
        .collect();
    let first = lines.remove(0);
    slow_tx.send(Ok(first)).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let loaders = load(&run, &stop);

    // Let the load run, then stop the server while the slow upload is mid-body.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!slow.is_finished(), "the slow upload is still being sent");
    let feeder = tokio::spawn(async move {
        for line in lines {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow_tx.send(Ok(line)).await.is_err() {
                break;
            }
        }
    });
    let status = run.server.terminate(Duration::from_secs(60)).await;
    stop.store(true, Ordering::SeqCst);
    assert!(
        status.success(),
        "alta serve exits 0 after SIGTERM: {status}"
    );
    feeder.await.unwrap();

    let (mut stored, cut) = tally(loaders).await;
    match slow.await.unwrap() {
        Outcome::Stored(id, bytes) => stored.push((id, bytes)),
        Outcome::Refused(status) => panic!("the slow upload begun before SIGTERM got {status}"),
        Outcome::NotConnected => panic!("the slow upload had connected before SIGTERM"),
        Outcome::Cut(err) => panic!("the slow upload begun before SIGTERM was cut: {err}"),
    }
    check_after_restart(&run, &stored, cut.len()).await;
}

async fn kill_9_under_load_loses_no_acknowledged_upload_and_leaves_no_item_without_its_file(
    backend: Backend,
) {
    let mut run = start(backend).await;
    let stop = Arc::new(AtomicBool::new(false));
    let loaders = load(&run, &stop);
    tokio::time::sleep(Duration::from_millis(700)).await;
    run.server.kill_9();
    stop.store(true, Ordering::SeqCst);
    let (stored, cut) = tally(loaders).await;
    check_after_restart(&run, &stored, cut.len()).await;
}
