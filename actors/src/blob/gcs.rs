//! The Google Cloud Storage blob store (`GCS_BUCKET_NAME`), through the official
//! `google-cloud-storage` crate. Object names are the blob keys.
//!
//! Reads and writes use the crate's JSON/HTTP `Storage` client, which the emulator
//! (fake-gcs-server) also speaks. Deleting goes through `StorageControl`, which is
//! gRPC only: it works against the real service, but fake-gcs-server has no
//! `google.storage.v2` gRPC service, so there a delete fails (and is logged by the
//! caller; blobs are only deleted when a stored upload is then refused).

use std::{io, path::Path};

use futures::{StreamExt, TryStreamExt};
use google_cloud_storage::{
    builder::storage::SignedUrlBuilder,
    client::{Storage, StorageControl},
    model_ext::ReadRange,
};

use super::BlobStream;

#[derive(Clone)]
pub struct GcsBlobs {
    storage: Storage,
    control: StorageControl,
    bucket: String,
    /// `projects/_/buckets/{bucket}`, the form the client wants.
    bucket_path: String,
    /// `GCS_ENDPOINT`, which signed URLs point at too.
    endpoint: Option<String>,
    /// Who signs download URLs, and for how long they hold.
    signing: Option<(google_cloud_auth::signer::Signer, std::time::Duration)>,
}

impl std::fmt::Debug for GcsBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsBlobs")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

fn io_err(context: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{context}: {e}"))
}

/// A not-found answer from the service, as an `io::ErrorKind::NotFound`.
fn map_err(context: &str, e: google_cloud_storage::Error) -> io::Error {
    let not_found = e.http_status_code() == Some(404)
        || e.status().is_some_and(|s| s.code.name() == "NOT_FOUND");
    if not_found {
        io::Error::new(io::ErrorKind::NotFound, format!("{context}: {e}"))
    } else {
        io_err(context, e)
    }
}

impl GcsBlobs {
    /// Build the clients. `endpoint` overrides the real service (emulators);
    /// `anonymous` sends no credentials (emulators). Otherwise Application Default
    /// Credentials are used: the service-account key in `GOOGLE_APPLICATION_CREDENTIALS`
    /// when set, else the environment's (gcloud user, metadata server).
    pub(super) async fn new(
        bucket: &str,
        endpoint: Option<&str>,
        anonymous: bool,
    ) -> io::Result<Self> {
        let mut storage = Storage::builder();
        let mut control = StorageControl::builder();
        if let Some(endpoint) = endpoint {
            storage = storage.with_endpoint(endpoint);
            control = control.with_endpoint(endpoint);
        }
        if anonymous {
            let creds = google_cloud_auth::credentials::anonymous::Builder::new().build();
            storage = storage.with_credentials(creds.clone());
            control = control.with_credentials(creds);
        }
        let storage = storage.build().await.map_err(|e| io_err("GCS client", e))?;
        let control = control
            .build()
            .await
            .map_err(|e| io_err("GCS control client", e))?;
        Ok(Self {
            storage,
            control,
            bucket: bucket.to_owned(),
            bucket_path: format!("projects/_/buckets/{bucket}"),
            endpoint: endpoint.map(str::to_owned),
            signing: None,
        })
    }

    /// Answer downloads with URLs signed for `ttl`: by the service-account key at
    /// `key` when there is one, else by Application Default Credentials (on Google
    /// Cloud, the IAM signBlob API), and not at all when anonymous without a key.
    pub(super) fn sign_urls(
        &mut self,
        ttl: std::time::Duration,
        key: Option<&Path>,
        anonymous: bool,
    ) -> io::Result<()> {
        let signer = match key {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| io_err(&format!("reading {}", path.display()), e))?;
                let json: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| io_err("the key file", e))?;
                if json.get("type").and_then(|t| t.as_str()) == Some("service_account") {
                    google_cloud_auth::credentials::service_account::Builder::new(json)
                        .build_signer()
                        .map_err(|e| io_err("a URL signer from the key", e))?
                } else {
                    google_cloud_auth::credentials::Builder::default()
                        .build_signer()
                        .map_err(|e| io_err("a URL signer", e))?
                }
            }
            None if anonymous => return Ok(()),
            None => google_cloud_auth::credentials::Builder::default()
                .build_signer()
                .map_err(|e| io_err("a URL signer", e))?,
        };
        self.signing = Some((signer, ttl));
        Ok(())
    }

    /// A URL that reads `key` for a while without credentials, when URLs are signed;
    /// the download is named `file_name` and typed `content_type` by GCS.
    pub(super) async fn signed_url(
        &self,
        key: &str,
        file_name: &str,
        content_type: &str,
    ) -> io::Result<Option<String>> {
        let Some((signer, ttl)) = &self.signing else {
            return Ok(None);
        };
        let mut builder = SignedUrlBuilder::for_object(&self.bucket_path, key)
            .with_expiration(*ttl)
            .with_query_param(
                "response-content-disposition",
                format!("attachment; filename=\"{}\"", file_name.replace('"', "")),
            )
            .with_query_param("response-content-type", content_type);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        let url = builder
            .sign_with(signer)
            .await
            .map_err(|e| io_err("signing a download URL", e))?;
        Ok(Some(url))
    }

    pub(super) fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Upload the file, streamed from disk (never held in memory), then remove it.
    pub(super) async fn put_file(&self, key: &str, src: &Path) -> io::Result<()> {
        // The CRC32C is computed first and sent up front, so the service verifies the
        // upload. (Without it the crate's small "single-shot" uploads send the checksum
        // as a trailing multipart part, which fake-gcs-server stores as the object.)
        let crc = file_crc32c(src).await?;
        let file = tokio::fs::File::open(src).await?;
        self.storage
            .write_object(&self.bucket_path, key, file)
            .with_known_crc32c(crc)
            .send_unbuffered()
            .await
            .map_err(|e| map_err(&format!("GCS upload of {key}"), e))?;
        tokio::fs::remove_file(src).await
    }

    pub(super) async fn len(&self, key: &str) -> io::Result<u64> {
        // The JSON client has no metadata call; a one-byte read carries the object's
        // size (`x-goog-stored-content-length`). Blobs are never empty (empty uploads
        // are refused). fake-gcs-server omits that header, so there this reads 0; the
        // content endpoint uses the size recorded at upload instead.
        let response = self
            .storage
            .read_object(&self.bucket_path, key)
            .set_read_range(ReadRange::head(1))
            .send()
            .await
            .map_err(|e| map_err(&format!("GCS read of {key}"), e))?;
        u64::try_from(response.object().size).map_err(|e| io_err("GCS object size", e))
    }

    pub(super) async fn open_range(
        &self,
        key: &str,
        start: u64,
        end_inclusive: u64,
    ) -> io::Result<BlobStream> {
        let count = end_inclusive.saturating_sub(start) + 1;
        self.read(key, Some(ReadRange::segment(start, count))).await
    }

    /// Stream the whole object (no length needed: the emulator does not report one).
    pub(super) async fn open_all(&self, key: &str) -> io::Result<BlobStream> {
        self.read(key, None).await
    }

    /// Stream the object, or `range` of it.
    async fn read(&self, key: &str, range: Option<ReadRange>) -> io::Result<BlobStream> {
        let mut read = self.storage.read_object(&self.bucket_path, key);
        if let Some(range) = range {
            read = read.set_read_range(range);
        }
        let response = read
            .send()
            .await
            .map_err(|e| map_err(&format!("GCS read of {key}"), e))?;
        let key = key.to_owned();
        let stream = futures::stream::unfold(response, |mut response| async move {
            response.next().await.map(|chunk| (chunk, response))
        });
        Ok(stream
            .map_err(move |e| map_err(&format!("GCS read of {key}"), e))
            .boxed())
    }

    pub(super) async fn delete(&self, key: &str) -> io::Result<()> {
        let result = self
            .control
            .delete_object()
            .set_bucket(&self.bucket_path)
            .set_object(key)
            .send()
            .await;
        match result.map_err(|e| map_err(&format!("GCS delete of {key}"), e)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// The CRC32C of a file, read in chunks.
async fn file_crc32c(path: &Path) -> io::Result<u32> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut crc = 0u32;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(crc);
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
    }
}
