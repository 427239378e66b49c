//! The export bench's measurements (`benches/export.rs`): every loaded item (they are
//! `pending_review`, so the export's filter names that state) out in each asked format,
//! manifests only, through the API: `jsonl`, `csv`, and `hf` (its `metadata.jsonl` and
//! card, in a tar). Each is timed from the POST to `finished`; meanwhile the process's
//! resident memory (the server runs in this process) is sampled every 20 ms, and the
//! growth over the level before the export is reported. Every file is downloaded
//! afterwards and its rows counted (an hf tar's metadata rows, read as a stream): the
//! export must hold every item.
//!
//! With `--export-files N`: the first N items get files in the blob folder (of the size
//! their rows say, 33 KiB on average: about a one-second 16 kHz recording), and those N
//! are exported as `webdataset` shards; reported in MiB/s of the file it publishes, beside
//! this disk's own rate for one large synced write. The shards are written once, in
//! place in the tar that holds them, then read back once for the file's hash.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use alta_actors::store::Db;
use chrono::{DateTime, Utc};

use super::{Backend, Http, progress};

/// The answer to a download, once it said 2xx.
async fn download(http: &Http, path: &str, token: &str) -> anyhow::Result<reqwest::Response> {
    let resp = http
        .client
        .get(format!("{}{path}", http.base))
        .bearer_auth(token)
        .send()
        .await
        .context("download")?;
    ensure!(
        resp.status().is_success(),
        "download answered {}",
        resp.status()
    );
    Ok(resp)
}

/// A tar's `metadata.jsonl` rows, counted as the download streams (never held whole).
async fn count_tar_rows(http: &Http, path: &str, token: &str) -> anyhow::Result<(u64, u64)> {
    let resp = download(http, path, token).await?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(64);
    let reader = std::thread::spawn(move || -> anyhow::Result<u64> {
        let mut archive = tar::Archive::new(ChannelReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        });
        let mut rows = 0u64;
        for entry in archive.entries()? {
            let mut entry = entry?;
            let is_metadata = entry.path()?.ends_with("metadata.jsonl");
            let mut buf = [0u8; 64 * 1024];
            loop {
                let n = std::io::Read::read(&mut entry, &mut buf)?;
                if n == 0 {
                    break;
                }
                if is_metadata {
                    rows += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
                }
            }
        }
        Ok(rows)
    });
    let mut stream = resp.bytes_stream();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("download body")?;
        bytes += chunk.len() as u64;
        if tx.send(chunk.to_vec()).is_err() {
            break; // the reader stopped: its error says why
        }
    }
    drop(tx);
    let rows = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the tar reader panicked"))??;
    Ok((rows, bytes))
}

/// Bytes from a channel as a `Read` (the tar reader runs on its own thread).
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => (self.chunk, self.at) = (chunk, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Resident memory of this process, KiB (`VmRSS`).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// Lines of a download, counted as it streams (never held whole).
async fn count_lines(http: &Http, path: &str, token: &str) -> anyhow::Result<(u64, u64)> {
    let resp = download(http, path, token).await?;
    let mut stream = resp.bytes_stream();
    let (mut lines, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("download body")?;
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    Ok((lines, bytes))
}

/// One export of every loaded item in `format`: a note with its wall time, rate, file
/// size and memory growth.
async fn one(
    http: &Http,
    backend: Backend,
    project: Uuid,
    token: &str,
    items: i64,
    body: serde_json::Value,
) -> anyhow::Result<String> {
    let format = body["format"].as_str().unwrap_or("?").to_owned();
    let baseline = rss_kib();
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (sampling.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let created = http
        .ok(
            Method::POST,
            &format!("/api/projects/{project}/exports"),
            Some(token),
            Some(&body),
        )
        .await?
        .json()?;
    let id = created["id"].as_str().context("export id")?.to_owned();
    let path = format!("/api/projects/{project}/exports/{id}");
    let export = loop {
        let export = http
            .ok(Method::GET, &path, Some(token), None)
            .await?
            .json()?;
        match export["state"].as_str() {
            Some("finished") => break export,
            Some("failed") => bail!("the {format} export failed: {export}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.await.ok();
    let peak = sampling.load(std::sync::atomic::Ordering::Relaxed);
    let growth_mib = peak.saturating_sub(baseline) as f64 / 1024.0;
    ensure!(
        export["items_done"] == json!(items),
        "the {format} export holds {} items, not {items}",
        export["items_done"]
    );
    if format == "webdataset" {
        let bytes = export["bytes"].as_u64().unwrap_or(0);
        let mib = bytes as f64 / 1_048_576.0;
        return Ok(format!(
            "export webdataset with files, {items} items: {seconds:.1} s, {mib:.0} MiB file, \
             {:.0} MiB/s (written once), peak RSS growth {growth_mib:.1} MiB",
            mib / seconds
        ));
    }
    progress(
        backend,
        format!("{format}: {seconds:.1} s; counting its rows"),
    );
    let download = format!("{path}/download");
    let (rows, bytes) = match format.as_str() {
        "hf" => count_tar_rows(http, &download, token).await?,
        "csv" => {
            let (lines, bytes) = count_lines(http, &download, token).await?;
            (lines.saturating_sub(1), bytes)
        }
        _ => count_lines(http, &download, token).await?,
    };
    ensure!(
        rows == items as u64,
        "the downloaded {format} file has {rows} rows, not {items}"
    );
    Ok(format!(
        "export {format}, manifests only, {items} items: {seconds:.1} s ({:.0} items/s), \
         {:.0} MiB file, peak RSS growth {growth_mib:.1} MiB (from {:.0} MiB)",
        items as f64 / seconds,
        bytes as f64 / 1048576.0,
        baseline as f64 / 1024.0
    ))
}

/// Give the first `n` items (by id) files of their recorded size in `blobs`; the
/// creation time just after the last of them (an export filter's `to`).
async fn make_files(
    db: &Db,
    blobs: &Path,
    project: Uuid,
    n: usize,
) -> anyhow::Result<DateTime<Utc>> {
    let sql = "SELECT id, size_bytes, created_at FROM items WHERE project_id = $1 \
               ORDER BY id LIMIT $2";
    let rows: Vec<(Uuid, i64, DateTime<Utc>)> =
        alta_actors::store::with_db!(db, |pool| sqlx::query_as(sql)
            .bind(project)
            .bind(n as i64 + 1)
            .fetch_all(pool)
            .await)?;
    ensure!(rows.len() > n, "fewer than {} items loaded", n + 1);
    let dir = blobs.join(project.to_string());
    std::fs::create_dir_all(&dir)?;
    let chunk: Vec<u8> = (0..70_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for (id, size, _) in &rows[..n] {
        let size = usize::try_from(*size)?;
        std::fs::write(dir.join(id.to_string()), &chunk[..size.min(chunk.len())])?;
    }
    Ok(rows[n].2)
}

/// This disk's rate for one large write of `mib` MiB, synced.
fn disk_write_rate(dir: &Path, mib: usize) -> anyhow::Result<f64> {
    use std::io::Write;
    let path = dir.join("disk-rate.bin");
    let block = vec![0x5au8; 1_048_576];
    let started = Instant::now();
    let mut file = std::fs::File::create(&path)?;
    for _ in 0..mib {
        file.write_all(&block)?;
    }
    file.sync_all()?;
    let rate = mib as f64 / started.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(rate)
}

/// The request of a manifests-only export of every loaded item in `format`.
fn manifests_only(format: &str) -> serde_json::Value {
    match format {
        // An hf export holds one kind; without files, its metadata and card alone.
        "hf" => json!({"format": "hf", "include_files": false,
                       "filter": {"states": ["pending_review"], "kind": "document"}}),
        _ => json!({"format": format, "filter": {"states": ["pending_review"]}}),
    }
}

pub async fn measure(
    http: &Http,
    backend: Backend,
    project: Uuid,
    token: &str,
    items: i64,
    formats: &[String],
    files: Option<(&Db, &Path, usize)>,
) -> anyhow::Result<Vec<String>> {
    let mut notes = Vec::new();
    for format in formats {
        progress(backend, format!("export of every item as {format}"));
        let body = manifests_only(format);
        let note = one(http, backend, project, token, items, body).await?;
        progress(backend, &note);
        notes.push(note);
    }
    if let Some((db, blobs, n)) = files {
        progress(backend, format!("files for the first {n} items"));
        let to = make_files(db, blobs, project, n).await?;
        let body = json!({"format": "webdataset",
                          "filter": {"states": ["pending_review"], "to": to}});
        let note = one(http, backend, project, token, n as i64, body).await?;
        progress(backend, &note);
        notes.push(note);
        let rate = disk_write_rate(blobs, 1024)?;
        notes.push(format!(
            "this disk: one synced write of 1 GiB at {rate:.0} MiB/s"
        ));
    }
    Ok(notes)
}
