//! Dataset exports, end to end on both backends: a project's items are uploaded,
//! transcribed by hand, reviewed (some approved, one sent back, one left pending);
//! exports in every format carry each approved item exactly once, with its sha256,
//! text and pseudonymous contributor, and nothing else. The files are read back by the
//! consumers people use (Python's `json` and `csv`, and Hugging Face `datasets`, whose
//! `audiofolder` must load the hf export as it is, through
//! `scripts/clients/check_export.py`). Downloads resume with `Range`; incremental
//! exports take only what was decided since; splits are stable; refusals change
//! nothing.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Read,
    path::{Path, PathBuf},
    time::Duration,
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use alta_actors::store::{Db, DbOptions, with_db, with_tx};
use reqwest::Client;
use uuid::Uuid;

use crate::{
    backend_tests,
    child_server::Site,
    helpers::{Backend, PASSWORD, TestApp, TestAppBuilder, assert_problem, init_test_env},
    items::wav,
    processing::{settled, uploaded},
    projects::{create_project, join},
};

backend_tests!(
    approved_items_leave_once_in_every_format,
    exports_refuse_and_forget_cleanly,
    an_export_killed_mid_run_resumes_from_its_checkpoint,
    an_export_deleted_while_it_runs_stops_and_leaves_nothing,
);

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Python that has `datasets` and `soundfile` (scripts/test makes it).
fn datasets_python() -> String {
    std::env::var("ALTA_DATASETS_PYTHON").unwrap_or_else(|_| {
        panic!(
            "ALTA_DATASETS_PYTHON is not set: this test loads exports with Hugging Face \
             `datasets`; run it through scripts/test, which installs datasets and soundfile \
             into a venv and sets it"
        )
    })
}

async fn post_export(app: &TestApp, token: &str, project: &str, body: Value) -> reqwest::Response {
    let path = format!("/api/projects/{project}/exports");
    app.send(token, Method::POST, &path, Some(body)).await
}

/// Ask for an export and wait for it to finish; the finished export.
async fn finished_export(app: &TestApp, token: &str, project: &str, body: Value) -> Value {
    let resp = post_export(app, token, project, body.clone()).await;
    let status = resp.status();
    let created: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}: {created}");
    assert_eq!(created["state"], "queued");
    let id = created["id"].as_str().unwrap().to_owned();
    for _ in 0..600 {
        let export = app
            .get_json(&format!("/api/projects/{project}/exports/{id}"), token)
            .await;
        match export["state"].as_str().unwrap() {
            "finished" => return export,
            "failed" => panic!("export failed: {export}"),
            _ => {
                app.clock.advance(chrono::Duration::milliseconds(100));
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }
    panic!("export {id} never finished");
}

async fn download(app: &TestApp, token: &str, project: &str, export: &Value) -> Vec<u8> {
    let id = export["id"].as_str().unwrap();
    let resp = app
        .get_auth(
            &format!("/api/projects/{project}/exports/{id}/download"),
            token,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        export["content_type"].as_str().unwrap()
    );
    let bytes = resp.bytes().await.unwrap().to_vec();
    assert_eq!(bytes.len() as i64, export["bytes"].as_i64().unwrap());
    assert_eq!(
        export["sha256"],
        sha256_hex(&bytes),
        "the file is the one recorded"
    );
    bytes
}

/// The entries of a tar: path → bytes.
fn untar(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(bytes);
    let mut entries = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        entries.insert(path, body);
    }
    entries
}

fn write_tree(dir: &Path, entries: &BTreeMap<String, Vec<u8>>) {
    for (path, bytes) in entries {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// Run scripts/clients/check_export.py on `path` with what the database says.
fn python_check(format: &str, path: &Path, expected: &Value) {
    let expect_file = path.with_extension("expect.json");
    std::fs::write(&expect_file, expected.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/clients/check_export.py");
    let out = std::process::Command::new(datasets_python())
        .arg(script)
        .args(["--format", format])
        .arg("--path")
        .arg(path)
        .arg("--expect")
        .arg(&expect_file)
        .env("HF_DATASETS_OFFLINE", "1")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("run check_export.py");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "check_export.py {format} failed:\n{stdout}\n{stderr}"
    );
    eprintln!("check_export.py {format}: {stdout}");
}

struct Uploaded {
    id: String,
    bytes: Vec<u8>,
    text: String,
    voice: bool,
}

/// The same exports with the blobs (the items' files and the exports' own) in Google
/// Cloud Storage, against the emulator `scripts/test` starts.
mod gcs {
    use super::*;

    async fn in_the_emulator(backend: Backend) {
        let endpoint = crate::items::gcs_endpoint().await;
        let bucket = crate::items::create_bucket(&endpoint).await;
        let builder = TestAppBuilder::new(backend)
            .var("GCS_BUCKET_NAME", bucket.clone())
            .var("GCS_ENDPOINT", endpoint.clone())
            .var("GCS_ANONYMOUS", "true");
        let exports = every_format(builder).await;
        let objects = crate::items::bucket_objects(&endpoint, &bucket).await;
        for (project, export) in exports {
            assert!(
                objects
                    .iter()
                    .any(|(name, _)| *name == format!("{project}/{export}")),
                "export {export} is not in the bucket: {objects:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        in_the_emulator(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        in_the_emulator(Backend::Postgres).await
    }

    /// With a service-account key, a download is a 302 to a V4 signed URL: the
    /// signature verifies with the key's public half, and the URL reads the file from
    /// the bucket (the emulator ignores signatures; it serves path-style URLs to the
    /// host name of the real service).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn downloads_redirect_to_a_signed_url() {
        use aws_lc_rs::signature::{self, KeyPair};

        let endpoint = crate::items::gcs_endpoint().await;
        let bucket = crate::items::create_bucket(&endpoint).await;
        let (pair, pem) = crate::helpers::rsa_key();
        let key_dir = tempfile::tempdir().unwrap();
        let key_path = key_dir.path().join("key.json");
        let email = "alta-exports@test-project.iam.gserviceaccount.com";
        let key = json!({
            "type": "service_account", "project_id": "test-project", "private_key_id": "k1",
            "private_key": pem, "client_email": email, "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token",
        });
        std::fs::write(&key_path, key.to_string()).unwrap();
        let app = TestAppBuilder::new(Backend::Sqlite)
            .var("GCS_BUCKET_NAME", bucket.clone())
            .var("GCS_ENDPOINT", endpoint.clone())
            .var("GCS_ANONYMOUS", "true")
            .var(
                "GOOGLE_APPLICATION_CREDENTIALS",
                key_path.display().to_string(),
            )
            .spawn()
            .await;
        let admin = app.signed_up_user("admin@example.org").await;
        let project = create_project(&app, &admin, "Saini").await;
        let text = b"Maandishi yaliyosainiwa.".to_vec();
        let id = crate::processing::uploaded(
            &app,
            &admin,
            "/api/documents",
            &project,
            text,
            "s.txt",
            "text/plain",
        )
        .await;
        crate::processing::settled(&app, &admin, "/api/documents", &id).await;
        let body = json!({"format": "jsonl", "filter": {"states": ["ready"]}});
        let export = finished_export(&app, &admin, &project, body).await;
        let export_id = export["id"].as_str().unwrap();
        let path = format!("/api/projects/{project}/exports/{export_id}/download");
        let resp = app.send(&admin, Method::GET, &path, None).await;
        assert_eq!(resp.status(), StatusCode::FOUND);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        let url = reqwest::Url::parse(&location).unwrap();
        assert_eq!(url.path(), format!("/{bucket}/{project}/{export_id}"));
        let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(query["X-Goog-Algorithm"], "GOOG4-RSA-SHA256");
        assert_eq!(query["X-Goog-Expires"], "900");
        assert!(query["X-Goog-Credential"].starts_with(email), "{location}");
        assert!(
            query["response-content-disposition"].contains(export["file_name"].as_str().unwrap()),
            "{location}"
        );

        // The signature: RSA-SHA256 over GOOG4-RSA-SHA256, the time, the scope and the
        // hash of the canonical request (the query as sent, sorted, less the signature).
        let raw = url.query().unwrap();
        let mut pairs: Vec<&str> = raw
            .split('&')
            .filter(|p| !p.starts_with("X-Goog-Signature="))
            .collect();
        pairs.sort();
        // The client signs the host without its port (the real service has none).
        let host = url.host_str().unwrap();
        let canonical = format!(
            "GET\n{}\n{}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD",
            url.path(),
            pairs.join("&")
        );
        let scope = query["X-Goog-Credential"].split_once('/').unwrap().1;
        let to_sign = format!(
            "GOOG4-RSA-SHA256\n{}\n{scope}\n{}",
            query["X-Goog-Date"],
            sha256_hex(canonical.as_bytes())
        );
        let signature = hex::decode(&query["X-Goog-Signature"]).unwrap();
        signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            pair.public_key().as_ref(),
        )
        .verify(to_sign.as_bytes(), &signature)
        .expect("the URL's signature verifies with the service account's public key");

        let file = reqwest::Client::new()
            .get(&location)
            .header("host", "storage.googleapis.com")
            .send()
            .await
            .unwrap();
        assert_eq!(file.status(), StatusCode::OK);
        let bytes = file.bytes().await.unwrap();
        assert_eq!(sha256_hex(&bytes), export["sha256"].as_str().unwrap());
        assert!(String::from_utf8_lossy(&bytes).contains(&id));
    }
}

async fn approved_items_leave_once_in_every_format(backend: Backend) {
    every_format(TestAppBuilder::new(backend)).await;
}

/// The whole flow on a server built by `builder`; `(project, export)` of each export made.
async fn every_format(builder: TestAppBuilder) -> Vec<(String, String)> {
    // Small shards, so that a webdataset export has several.
    let app = builder.var("EXPORT_SHARD_MAX_BYTES", "20000").spawn().await;
    let mut made = Vec::new();
    let admin = app.signed_up_user("admin@example.org").await;
    let project = create_project(&app, &admin, "Sauti").await;
    let contributor = join(&app, &admin, &project, "c@example.org", "contributor").await;
    let reviewer = join(&app, &admin, &project, "r@example.org", "reviewer").await;

    // Three documents and four recordings, each with its text.
    let mut items = Vec::new();
    for i in 0..7 {
        let voice = i >= 3;
        let (endpoint, bytes, name, mime) = if voice {
            let rate = [8_000, 16_000][i % 2];
            (
                "/api/voice",
                wav(0.5, rate, 300.0 + i as f64),
                "a.wav",
                "audio/wav",
            )
        } else {
            let text = format!("Hati namba {i}, \"iliyonukuliwa\", mstari\nwa pili.");
            ("/api/documents", text.into_bytes(), "d.txt", "text/plain")
        };
        let id = uploaded(
            &app,
            &contributor,
            endpoint,
            &project,
            bytes.clone(),
            name,
            mime,
        )
        .await;
        let item = settled(&app, &contributor, endpoint, &id).await;
        let text = if voice {
            let text = format!("habari ya sauti {i}, \"karibu\"");
            let path = format!("/api/voice/{id}/transcript");
            let body = json!({"text": text});
            let resp = app.send(&contributor, Method::PUT, &path, Some(body)).await;
            assert!(resp.status().is_success(), "transcript: {}", resp.status());
            text
        } else {
            assert_eq!(item["status"], "ready", "{item}");
            String::from_utf8(bytes.clone()).unwrap()
        };
        items.push(Uploaded {
            id,
            bytes,
            text,
            voice,
        });
    }
    let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let path = format!("/api/projects/{project}/review");
    let body = json!({"item_ids": ids});
    let resp = app
        .send(&contributor, Method::POST, &path, Some(body))
        .await;
    assert!(resp.status().is_success(), "submit: {}", resp.status());
    let decide = |id: String, body: Value| {
        let (app, reviewer) = (&app, &reviewer);
        async move {
            let path = format!("/api/review/{id}");
            let resp = app.send(reviewer, Method::PATCH, &path, Some(body)).await;
            assert!(resp.status().is_success(), "decide {id}: {}", resp.status());
        }
    };
    // Approved: documents 0 and 1, recordings 3, 4 and 5. Sent back: document 2.
    // Left pending: recording 6.
    for i in [0, 1, 3, 4, 5] {
        decide(items[i].id.clone(), json!({"decision": "approve"})).await;
    }
    decide(
        items[2].id.clone(),
        json!({"decision": "reject", "reason_code": "wrong_text"}),
    )
    .await;
    let approved: BTreeSet<String> = [0, 1, 3, 4, 5]
        .iter()
        .map(|&i| items[i].id.clone())
        .collect();
    let by_id: BTreeMap<&str, &Uploaded> = items.iter().map(|i| (i.id.as_str(), i)).collect();
    let dir = tempfile::tempdir().unwrap();

    // JSON Lines: every approved item once, nothing else, as Python's json reads it.
    let export = finished_export(&app, &admin, &project, json!({"format": "jsonl"})).await;
    assert_eq!(export["items_done"], 5);
    assert_eq!(export["items_total"], 5);
    assert_eq!(export["spec"]["filter"]["states"], json!(["approved"]));
    let jsonl = download(&app, &admin, &project, &export).await;
    let rows: Vec<Value> = String::from_utf8(jsonl.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: BTreeSet<String> = rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rows.len(), 5, "each approved item once");
    assert_eq!(seen, approved);
    let pseudonyms: BTreeSet<&str> = rows
        .iter()
        .map(|r| r["contributor"].as_str().unwrap())
        .collect();
    assert_eq!(pseudonyms.len(), 1, "one contributor, one pseudonym");
    let pseudonym = pseudonyms.into_iter().next().unwrap().to_owned();
    assert!(pseudonym.starts_with("c_"), "{pseudonym}");
    assert!(
        !String::from_utf8_lossy(&jsonl).contains("c@example.org"),
        "no email leaves"
    );
    for row in &rows {
        let item = by_id[row["id"].as_str().unwrap()];
        assert_eq!(row["sha256"], sha256_hex(&item.bytes));
        assert_eq!(row["size_bytes"], item.bytes.len());
        assert_eq!(row["text"], item.text.as_str());
        assert_eq!(row["review"]["status"], "approved");
        assert_eq!(row["kind"], if item.voice { "audio" } else { "document" });
        assert!(row["file"].is_null(), "no files asked for: {row}");
    }
    let expected: Value = approved
        .iter()
        .map(|id| {
            let item = by_id[id.as_str()];
            (
                id.clone(),
                json!({"sha256": sha256_hex(&item.bytes), "text": item.text,
                       "kind": if item.voice { "audio" } else { "document" }}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    let path = dir.path().join("export.jsonl");
    std::fs::write(&path, &jsonl).unwrap();
    python_check("jsonl", &path, &expected);

    // A download resumes: the rest from a byte on equals the tail of the whole.
    let id = export["id"].as_str().unwrap();
    let resp = app
        .client
        .get(app.url(&format!("/api/projects/{project}/exports/{id}/download")))
        .bearer_auth(&admin)
        .header("Range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.headers()["content-range"].to_str().unwrap(),
        format!("bytes 100-{}/{}", jsonl.len() - 1, jsonl.len())
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &jsonl[100..]);

    // CSV with the files: a tar of the files, manifest.csv and the dataset card.
    let export = finished_export(
        &app,
        &admin,
        &project,
        json!({"format": "csv", "include_files": true}),
    )
    .await;
    assert_eq!(export["content_type"], "application/x-tar");
    let entries = untar(&download(&app, &admin, &project, &export).await);
    let card = String::from_utf8(entries["README.md"].clone()).unwrap();
    assert!(card.contains("pretty_name: \"Sauti\""), "{card}");
    assert!(card.contains("- Items: 5"), "{card}");
    for id in &approved {
        let item = by_id[id.as_str()];
        let ext = if item.voice { "wav" } else { "txt" };
        assert_eq!(
            entries[&format!("files/{id}.{ext}")],
            item.bytes,
            "the file of {id} travels intact"
        );
    }
    assert_eq!(
        entries.len(),
        5 + 2,
        "files, manifest and card: {:?}",
        entries.keys()
    );
    let csv_path = dir.path().join("manifest.csv");
    std::fs::write(&csv_path, &entries["manifest.csv"]).unwrap();
    python_check("csv", &csv_path, &expected);

    // JSON Lines with the files, as a zip (for Windows): Python's zipfile opens it,
    // every entry's CRC holds, every file is intact.
    let body = json!({"format": "jsonl", "include_files": true, "packaging": "zip"});
    let export = finished_export(&app, &admin, &project, body).await;
    assert_eq!(export["content_type"], "application/zip");
    assert!(
        export["file_name"].as_str().unwrap().ends_with(".zip"),
        "{export}"
    );
    assert_eq!(export["spec"]["packaging"], "zip");
    let zip_path = dir.path().join("export.zip");
    std::fs::write(&zip_path, download(&app, &admin, &project, &export).await).unwrap();
    python_check("zip", &zip_path, &expected);

    // hf: recordings only, split; Hugging Face datasets loads it as it is.
    let split = json!({"train": 0.5, "validation": 0.5, "test": 0.0});
    let body = json!({"format": "hf", "filter": {"kind": "audio"}, "split": split});
    let export = finished_export(&app, &admin, &project, body.clone()).await;
    assert_eq!(export["items_done"], 3);
    let entries = untar(&download(&app, &admin, &project, &export).await);
    let hf_dir = dir.path().join("hf");
    write_tree(&hf_dir, &entries);
    let mut splits = BTreeMap::new();
    for path in entries.keys().filter(|p| p.ends_with(".wav")) {
        let (split, file) = path.split_once('/').unwrap();
        splits.insert(file.trim_end_matches(".wav").to_owned(), split.to_owned());
    }
    assert_eq!(splits.len(), 3, "{:?}", entries.keys());
    let voice_expected: Value = approved
        .iter()
        .filter(|id| by_id[id.as_str()].voice)
        .map(|id| {
            let item = by_id[id.as_str()];
            let rate = u32::from_le_bytes(item.bytes[24..28].try_into().unwrap());
            (
                id.clone(),
                json!({"sha256": sha256_hex(&item.bytes), "text": item.text,
                       "sampling_rate": rate, "split": splits[id]}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    python_check("hf", &hf_dir, &voice_expected);
    // Its metadata and card alone: the same rows, naming where each file goes, no file.
    let mut manifests_only = body.clone();
    manifests_only["include_files"] = json!(false);
    let export = finished_export(&app, &admin, &project, manifests_only).await;
    let meta_only = untar(&download(&app, &admin, &project, &export).await);
    let names: Vec<&String> = meta_only.keys().collect();
    assert!(
        names
            .iter()
            .all(|n| n.ends_with("metadata.jsonl") || *n == "README.md"),
        "{names:?}"
    );
    let file_names: BTreeSet<String> = meta_only
        .iter()
        .filter(|(n, _)| n.ends_with("metadata.jsonl"))
        .flat_map(|(n, body)| {
            let dir = n.trim_end_matches("metadata.jsonl").to_owned();
            String::from_utf8(body.clone())
                .unwrap()
                .lines()
                .map(|l| {
                    let row: Value = serde_json::from_str(l).unwrap();
                    format!("{dir}{}", row["file_name"].as_str().unwrap())
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let wav_paths: BTreeSet<String> = entries
        .keys()
        .filter(|p| p.ends_with(".wav"))
        .cloned()
        .collect();
    assert_eq!(
        file_names, wav_paths,
        "where each file goes, as in the full folder"
    );

    // WebDataset: shards of each item's file and its JSON row, in one tar; the
    // webdataset library iterates them.
    let export = finished_export(&app, &admin, &project, json!({"format": "webdataset"})).await;
    let entries = untar(&download(&app, &admin, &project, &export).await);
    let shards: Vec<&String> = entries.keys().filter(|k| k.starts_with("shard-")).collect();
    assert!(
        shards.len() >= 2,
        "small shards, several of them: {shards:?}"
    );
    for shard in &shards {
        assert!(
            entries[*shard].len() <= 20_000 || untar(&entries[*shard]).len() == 2,
            "{shard} is over the limit with more than one item"
        );
    }
    let wds_dir = dir.path().join("wds");
    write_tree(&wds_dir, &entries);
    python_check("webdataset", &wds_dir, &expected);

    // The same split again: every item lands where it did.
    let again = finished_export(&app, &admin, &project, body).await;
    let entries = untar(&download(&app, &admin, &project, &again).await);
    for (id, split) in &splits {
        assert!(
            entries.contains_key(&format!("{split}/{id}.wav")),
            "{id} moved out of {split}"
        );
    }

    // Incremental: nothing decided since the first export, until the pending recording
    // is approved.
    let first = export["id"].as_str().unwrap();
    let since = json!({"format": "jsonl", "filter": {"since_export": first}});
    let empty = finished_export(&app, &admin, &project, since.clone()).await;
    assert_eq!(empty["items_done"], 0);
    assert_eq!(empty["bytes"], 0);
    app.clock.advance(chrono::Duration::seconds(1));
    decide(items[6].id.clone(), json!({"decision": "approve"})).await;
    let next = finished_export(&app, &admin, &project, since).await;
    let rows = String::from_utf8(download(&app, &admin, &project, &next).await).unwrap();
    let ids: Vec<String> = rows
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, vec![items[6].id.clone()]);

    // The list shows them newest first; a reviewer may not see any.
    let list = app
        .get_json(&format!("/api/projects/{project}/exports?limit=2"), &admin)
        .await;
    assert_eq!(list["items"][0]["id"], next["id"]);
    assert!(list["next_cursor"].is_string());
    let resp = app
        .get_auth(&format!("/api/projects/{project}/exports"), &reviewer)
        .await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let all = app
        .get_json(
            &format!("/api/projects/{project}/exports?limit=100"),
            &admin,
        )
        .await;
    for export in all["items"].as_array().unwrap() {
        made.push((project.clone(), export["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(made.len(), 9);
    made
}

async fn exports_refuse_and_forget_cleanly(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let admin = app.signed_up_user("admin@example.org").await;
    let project = create_project(&app, &admin, "Tupu").await;
    let contributor = join(&app, &admin, &project, "c@example.org", "contributor").await;

    // Refusals say where, and leave no export behind.
    for (body, status, code) in [
        (
            json!({"format": "parquet"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"format": "hf"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_export",
        ),
        (
            json!({"format": "csv", "split": {"train": 0.5, "validation": 0.2, "test": 0.2}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_export",
        ),
        (
            json!({"format": "jsonl", "filter": {"since_export": uuid::Uuid::new_v4()}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_export",
        ),
        (
            json!({"format": "webdataset", "include_files": false}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_export",
        ),
        // A zip holds files.
        (
            json!({"format": "jsonl", "packaging": "zip"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_export",
        ),
    ] {
        let resp = post_export(&app, &admin, &project, body.clone()).await;
        assert_problem(resp, status, code).await;
    }
    let resp = post_export(&app, &contributor, &project, json!({"format": "jsonl"})).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let list = app
        .get_json(&format!("/api/projects/{project}/exports"), &admin)
        .await;
    assert_eq!(list["items"], json!([]), "refusals wrote nothing");

    // An idempotent retry gets the first answer, not a second export.
    let send = |key: &'static str| {
        app.client
            .post(app.url(&format!("/api/projects/{project}/exports")))
            .bearer_auth(&admin)
            .header("Idempotency-Key", key)
            .json(&json!({"format": "csv"}))
            .send()
    };
    let first = send("export-1").await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    let second = send("export-1").await.unwrap();
    assert_eq!(second.status(), StatusCode::ACCEPTED);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);

    // An export of nothing is a CSV of its header alone.
    let empty = finished_export(&app, &admin, &project, json!({"format": "csv"})).await;
    let csv = String::from_utf8(download(&app, &admin, &project, &empty).await).unwrap();
    assert!(csv.starts_with("id,kind,file,"), "{csv}");
    assert_eq!(csv.lines().count(), 1);

    // Deleted: gone, with its file.
    let id = empty["id"].as_str().unwrap();
    let path = format!("/api/projects/{project}/exports/{id}");
    let resp = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = app.get_auth(&path, &admin).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = app.get_auth(&format!("{path}/download"), &admin).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let artifact = app.data_dir().join(format!("blobs/{project}/{id}"));
    for _ in 0..500 {
        if !artifact.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!artifact.exists(), "the deleted export's file is removed");

    // The sweep leaves a kept export's file alone, however old; past its retention
    // (7 days by default) the export goes, with its file.
    let kept = finished_export(&app, &admin, &project, json!({"format": "jsonl"})).await;
    let kept_id = kept["id"].as_str().unwrap();
    let kept_file = app.data_dir().join(format!("blobs/{project}/{kept_id}"));
    assert!(kept_file.exists());
    app.engine.sweep_orphans(Duration::ZERO).await;
    assert!(kept_file.exists(), "the sweep took a kept export's file");
    let kept_path = format!("/api/projects/{project}/exports/{kept_id}");
    assert_eq!(
        app.get_auth(&kept_path, &admin).await.status(),
        StatusCode::OK
    );
    app.advance_clock(chrono::Duration::days(8)).await;
    app.engine.sweep_orphans(Duration::from_secs(3600)).await;
    // A week on, the access token has expired too.
    let admin = app.token("admin@example.org", PASSWORD).await;
    let resp = app.get_auth(&kept_path, &admin).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    assert!(!kept_file.exists(), "an expired export's file is removed");
}

/// Approved items inserted straight into the database (`count` of them, in one
/// transaction): what a crash test needs is many rows, not the way they came.
async fn insert_approved(database_url: &str, project: &str, contributor: &str, count: usize) {
    let db = Db::connect(&DbOptions {
        url: database_url.to_owned(),
        max_connections: 1,
        create_sqlite_file: false,
    })
    .await
    .unwrap();
    let (project, contributor): (Uuid, Uuid) =
        (project.parse().unwrap(), contributor.parse().unwrap());
    let now = chrono::Utc::now() - chrono::Duration::minutes(5);
    let sql = "INSERT INTO items (id, project_id, kind, contributor_id, status, title, metadata, \
               file_name, detected_type, content_type, size_bytes, sha256, blob_key, created_at, \
               updated_at, review_round, submitted_at, decided_at) \
               VALUES ($1, $2, 'document', $3, 'approved', $4, $5, 'a.txt', 'plain_text', \
               'text/plain', 10, $6, $7, $8, $8, 0, $8, $8)";
    let mut tx = db.begin().await.unwrap();
    for n in 0..count {
        let id = Uuid::now_v7();
        with_tx!(&mut tx, |conn| sqlx::query(sql)
            .bind(id)
            .bind(project)
            .bind(contributor)
            .bind(format!("Item {n}"))
            .bind(sqlx::types::Json(json!({"n": n})))
            .bind(sha256_hex(format!("item {n}").as_bytes()))
            .bind(format!("{project}/{id}"))
            .bind(now)
            .execute(conn)
            .await
            .map(|_| ())
            .unwrap());
    }
    tx.commit().await.unwrap();
    db.close().await;
}

/// The export's row, read straight from the table (no server needs to be running).
async fn export_progress(database_url: &str, id: &str) -> (String, i64) {
    let db = Db::connect(&DbOptions {
        url: database_url.to_owned(),
        max_connections: 1,
        create_sqlite_file: false,
    })
    .await
    .unwrap();
    let id: Uuid = id.parse().unwrap();
    let row: (String, i64) = alta_actors::store::with_db!(&db, |pool| sqlx::query_as(
        "SELECT state, items_done FROM exports WHERE id = $1"
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap());
    db.close().await;
    row
}

/// The real binary is killed (SIGKILL) while it writes an export; the restarted server
/// takes the job again once its lease has run out, cuts what was written after the last
/// checkpoint, and finishes: every approved item exactly once.
async fn an_export_killed_mid_run_resumes_from_its_checkpoint(backend: Backend) {
    const ITEMS: usize = 3_000;
    init_test_env();
    let env = [
        ("SECRET_KEY", "export-crash-test-secret-key-0123456789"),
        ("JOB_POLL_INTERVAL_MS", "200"),
        ("JOB_LEASE_SECONDS", "3"),
        // Small pages, a checkpoint after each: many points to be killed between.
        ("EXPORT_PAGE_ITEMS", "10"),
        ("EXPORT_CHECKPOINT_MS", "0"),
    ];
    let site = Site::new(backend, &env).await;
    site.admin_create(&[]);
    let client = Client::new();
    let mut server = site.serve("first", &[]).await;
    let token = server.token(&client).await;
    let project = server.create_project(&client, &token, "Kubwa").await;
    let me: Value = client
        .get(server.url("/api/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    insert_approved(
        &site.database_url,
        &project,
        me["id"].as_str().unwrap(),
        ITEMS,
    )
    .await;

    let resp = client
        .post(server.url(&format!("/api/projects/{project}/exports")))
        .bearer_auth(&token)
        .json(&json!({"format": "jsonl"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let export: Value = resp.json().await.unwrap();
    let id = export["id"].as_str().unwrap().to_owned();

    // Killed once it has checkpointed some of the items, and before it is done.
    let mut done_at_kill = 0;
    for _ in 0..2_000 {
        let (state, done) = export_progress(&site.database_url, &id).await;
        assert_ne!(
            state, "finished",
            "the export finished before it could be killed"
        );
        if done > 0 {
            done_at_kill = done;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(done_at_kill > 0, "the export never checkpointed");
    server.kill_9();
    let (state, done) = export_progress(&site.database_url, &id).await;
    assert_eq!(state, "running");
    assert!(
        (done as usize) < ITEMS,
        "killed after {done} of {ITEMS} items: too late to test a resumption"
    );

    let server = site.serve("second", &[]).await;
    let token = server.token(&client).await;
    let path = format!("/api/projects/{project}/exports/{id}");
    let mut finished = Value::Null;
    for _ in 0..600 {
        let resp = client
            .get(server.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        if body["state"] == "finished" {
            finished = body;
            break;
        }
        assert_ne!(body["state"], "failed", "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(finished["state"], "finished", "the export never finished");
    assert_eq!(finished["items_done"], ITEMS);
    let resumed = server
        .log_lines()
        .iter()
        .any(|line| line["fields"]["message"] == "export resumes from its checkpoint");
    assert!(resumed, "the second run started over instead of resuming");

    let body = client
        .get(server.url(&format!("{path}/download")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        finished["sha256"],
        sha256_hex(body.as_bytes()),
        "the hash carried across the crash"
    );
    let ids: Vec<String> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), ITEMS, "every approved item once, no row twice");
    assert_eq!(unique.len(), ITEMS);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "rows in id order across the crash");

    // `alta export` writes the same items straight from the database, with progress
    // lines when its output is not a terminal.
    let out_dir = tempfile::tempdir().unwrap();
    let out = site.run(
        &[
            "export",
            "--project",
            &project,
            "--format",
            "csv",
            "--out",
            out_dir.path().to_str().unwrap(),
        ],
        &[],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "alta export: {stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("exported {ITEMS} items")),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("/{ITEMS} items")),
        "no progress: {stderr}"
    );
    let file = out_dir.path().join(format!("export-{project}.csv"));
    let mut reader = csv::Reader::from_path(&file).unwrap();
    let rows: BTreeSet<String> = reader.records().map(|r| r.unwrap()[0].to_owned()).collect();
    assert_eq!(rows, unique.into_iter().cloned().collect());

    // The project's list records it: finished, no author, the file's hash, no download.
    let list: Value = client
        .get(server.url(&format!("/api/projects/{project}/exports")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recorded = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e.get("created_by").is_none())
        .unwrap_or_else(|| panic!("the file export is not listed: {list}"))
        .clone();
    let cli_id = recorded["id"].as_str().unwrap().to_owned();
    assert!(
        stdout.contains(&cli_id),
        "the command names its export: {stdout}"
    );
    assert_eq!(recorded["state"], "finished", "{recorded}");
    assert_eq!(recorded["items_done"], ITEMS);
    assert_eq!(recorded["format"], "csv");
    assert_eq!(
        recorded["sha256"],
        sha256_hex(&std::fs::read(&file).unwrap()),
        "{recorded}"
    );
    let resp = client
        .get(server.url(&format!(
            "/api/projects/{project}/exports/{cli_id}/download"
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::CONFLICT, "export_not_stored").await;
    // A later export takes only what was decided since it: nothing here.
    let since_dir = tempfile::tempdir().unwrap();
    let out = site.run(
        &[
            "export",
            "--project",
            &project,
            "--format",
            "jsonl",
            "--since-export",
            &cli_id,
            "--out",
            since_dir.path().to_str().unwrap(),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "alta export --since-export: {stdout}");
    assert!(stdout.contains("exported 0 items"), "{stdout}");
}

/// Files under `dir` whose path names `id`.
fn files_naming(dir: &Path, id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.to_string_lossy().contains(id) {
                found.push(path.clone());
            }
            if path.is_dir() {
                dirs.push(path);
            }
        }
    }
    found
}

/// An export deleted while its job writes it: the row is gone at once (404, out of the
/// list), the job stops at its next checkpoint without publishing, is not tried again,
/// and leaves no part and no file behind.
async fn an_export_deleted_while_it_runs_stops_and_leaves_nothing(backend: Backend) {
    const ITEMS: usize = 3_000;
    let app = TestAppBuilder::new(backend)
        // Small pages, a checkpoint after each: the run is long enough to be caught.
        .var("EXPORT_PAGE_ITEMS", "10")
        .var("EXPORT_CHECKPOINT_MS", "0")
        .spawn()
        .await;
    let admin = app.signed_up_user("admin@example.org").await;
    let project = create_project(&app, &admin, "Futa").await;
    let me = app.user_id(&admin).await;
    insert_approved(&app.database_url, &project, &me, ITEMS).await;

    let resp = post_export(&app, &admin, &project, json!({"format": "jsonl"})).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let export: Value = resp.json().await.unwrap();
    let id = export["id"].as_str().unwrap().to_owned();
    // Deleted once it has checkpointed some of the items, and before it is done.
    let mut caught = false;
    for _ in 0..2_000 {
        let (state, done) = export_progress(&app.database_url, &id).await;
        assert_ne!(
            state, "finished",
            "the export finished before it could be deleted"
        );
        if done > 0 {
            caught = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(caught, "the export never checkpointed");
    let path = format!("/api/projects/{project}/exports/{id}");
    let resp = app.send(&admin, Method::DELETE, &path, None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_auth(&path, &admin).await.status(),
        StatusCode::NOT_FOUND
    );
    let listed = app
        .get_json(&format!("/api/projects/{project}/exports"), &admin)
        .await;
    assert_eq!(listed["items"], json!([]), "{listed}");

    // The job ends without publishing: done, not retried, and nothing left on disk.
    let db = app.db().await;
    let mut job_state = String::new();
    for _ in 0..600 {
        let states: Vec<String> = with_db!(&db, |pool| sqlx::query_scalar(
            "SELECT state FROM jobs WHERE kind = 'export'"
        )
        .fetch_all(pool)
        .await)
        .unwrap();
        assert_eq!(states.len(), 1, "{states:?}");
        job_state = states[0].clone();
        if job_state != "running" && job_state != "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.close().await;
    assert_eq!(job_state, "done", "the deleted export's job ends as done");
    let left = files_naming(&app.data_dir().join("blobs"), &id);
    assert!(left.is_empty(), "the deleted export left {left:?}");
}
