//! Crash safety of uploads, with the real `alta serve` binary: killing the server
//! (SIGKILL) mid-upload leaves no item and, after the sweep, no orphan blob.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use futures::SinkExt;
use reqwest::{
    Body, Client, StatusCode,
    multipart::{Form, Part},
};
use serde_json::{Value, json};

use crate::{
    backend_tests,
    child_server::{Server, Site},
    helpers::{Backend, files_under, init_test_env},
};

backend_tests!(killing_the_server_mid_upload_leaves_no_item_and_no_orphan_blob);

/// The big recording: 128 MiB of 48 kHz stereo PCM (about 11 minutes), far below
/// every limit, so the server would accept it if it lived long enough.
const BIG_WAV_BYTES: usize = 128 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;

/// What every run of `alta` here gets on top of the shared settings. Its TMPDIR (in the
/// site's scratch dir) is where poem spools multipart bodies.
const ENV: &[(&str, &str)] = &[
    ("SECRET_KEY", "crash-test-secret-key-0123456789abcdef"),
    ("SWEEP_INTERVAL_SECONDS", "1"),
    ("ORPHAN_GRACE_SECONDS", "2"),
];

impl Site {
    fn blobs(&self) -> PathBuf {
        self.data_dir.path().join("blobs")
    }

    fn incoming(&self) -> PathBuf {
        self.blobs().join(".incoming")
    }

    /// The number of item rows, straight from the database (soft-deleted ones too).
    async fn item_rows(&self, backend: Backend) -> i64 {
        let sql = "SELECT COUNT(*) FROM items";
        match backend {
            Backend::Sqlite => {
                let url = self.database_url.trim_end_matches("?mode=rwc");
                let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
                pool.close().await;
                n
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.database_url).await.unwrap();
                let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
                pool.close().await;
                n
            }
        }
    }
}

/// The 44-byte header of a 48 kHz stereo 16-bit PCM WAV with `data_len` sample bytes.
fn wav_header(data_len: usize) -> Vec<u8> {
    let data_len = u32::try_from(data_len).unwrap();
    let (rate, channels, bits) = (48_000u32, 2u16, 16u16);
    let block = channels * bits / 8;
    let mut out = Vec::with_capacity(44);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out
}

/// One MiB of quiet sawtooth samples (a whole number of stereo frames).
fn samples_chunk() -> Vec<u8> {
    (0..CHUNK / 2)
        .flat_map(|i| {
            let sample = i16::try_from(i % 200).unwrap() * 40 - 4000;
            sample.to_le_bytes()
        })
        .collect()
}

/// POST /api/voice with the recording's bytes streamed from `body`.
fn voice_upload(
    client: &Client,
    server: &Server,
    token: &str,
    project: &str,
    file_name: &str,
    body: Body,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let part = Part::stream(body)
        .file_name(file_name.to_owned())
        .mime_str("audio/wav")
        .unwrap();
    let form = Form::new()
        .text("project_id", project.to_owned())
        .text("title", "A long take")
        .part("file", part);
    let request = client
        .post(server.url("/api/voice"))
        .bearer_auth(token)
        .multipart(form)
        .send();
    tokio::spawn(request)
}

async fn killing_the_server_mid_upload_leaves_no_item_and_no_orphan_blob(backend: Backend) {
    init_test_env();
    let site = Site::new(backend, ENV).await;
    site.admin_create(&[]);
    let client = Client::new();

    let mut server = site.serve("first", &[]).await;
    let token = server.token(&client).await;
    let project = server.create_project(&client, &token, "Crash").await;
    assert!(
        files_under(&site.blobs()).is_empty(),
        "the blob store starts empty"
    );

    // Upload 1 stalls mid-body: a header and 8 MiB of a 64 MiB recording, then nothing
    // (the sender is kept open until after the kill).
    let (mut stalled_tx, stalled_rx) =
        futures::channel::mpsc::channel::<std::io::Result<Vec<u8>>>(0);
    let stalled = voice_upload(
        &client,
        &server,
        &token,
        &project,
        "stalled.wav",
        Body::wrap_stream(stalled_rx),
    );
    stalled_tx.send(Ok(wav_header(64 * CHUNK))).await.unwrap();
    let chunk = samples_chunk();
    for _ in 0..8 {
        stalled_tx.send(Ok(chunk.clone())).await.unwrap();
    }

    // Upload 2 sends a whole 128 MiB recording; the server spools it, then copies it
    // into `blobs/.incoming` while hashing, then analyses it. Kill the server as soon as
    // that copy is on disk.
    let big_body = futures::stream::iter(
        std::iter::once(wav_header(BIG_WAV_BYTES))
            .chain(std::iter::repeat_n(chunk, BIG_WAV_BYTES / CHUNK))
            .map(Ok::<_, std::io::Error>),
    );
    let big = voice_upload(
        &client,
        &server,
        &token,
        &project,
        "long-take.wav",
        Body::wrap_stream(big_body),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if !files_under(&site.incoming()).is_empty() {
            server.kill_9();
            break;
        }
        assert!(
            !big.is_finished(),
            "the upload ended before anything reached blobs/.incoming: {:?}",
            big.await
        );
        assert!(
            Instant::now() < deadline,
            "nothing reached blobs/.incoming in time"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // The crash left a half-done upload on disk (so the sweep below has work to do), and
    // neither client was told its upload was stored.
    let leftovers = files_under(&site.incoming());
    assert!(
        !leftovers.is_empty(),
        "a received upload is left in blobs/.incoming after the kill"
    );
    let sizes: Vec<u64> = leftovers
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    eprintln!("left in .incoming at the kill: {leftovers:?} ({sizes:?} bytes)");
    match big.await.unwrap() {
        Err(_) => {}
        Ok(resp) => assert_ne!(
            resp.status(),
            StatusCode::CREATED,
            "the big upload was not stored"
        ),
    }
    drop(stalled_tx);
    match stalled.await.unwrap() {
        Err(_) => {}
        Ok(resp) => assert_ne!(
            resp.status(),
            StatusCode::CREATED,
            "the stalled upload was not stored"
        ),
    }
    assert_eq!(
        site.item_rows(backend).await,
        0,
        "no item row after the kill"
    );

    // Restart on the same data: the sweep removes every leftover once it is older than
    // ORPHAN_GRACE_SECONDS.
    let server = site.serve("second", &[]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let remaining = files_under(&site.blobs());
        if remaining.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sweep left files in the blob store: {remaining:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        leftovers.iter().all(|p| !p.exists()),
        "the crash leftovers are gone"
    );

    // No item, through the API and in the database.
    let token = server.token(&client).await;
    let list = client
        .get(server.url(&format!("/api/voice?project_id={project}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["items"], json!([]), "no recording after the crash");
    assert_eq!(
        site.item_rows(backend).await,
        0,
        "no item row after the sweep"
    );
}
