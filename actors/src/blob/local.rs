//! The local-folder blob store: `{root}/{project_id}/{item_id}`.

use std::{
    io,
    path::{Path, PathBuf},
};

use bytes::Bytes;
use futures::StreamExt;
use tokio::{
    fs,
    io::{AsyncReadExt, AsyncSeekExt},
};
use uuid::Uuid;

use super::BlobStream;

/// Bytes read from disk at a time when streaming a blob.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct LocalBlobs {
    pub(super) root: PathBuf,
}

impl LocalBlobs {
    /// Move a complete, synced file into place (durable on return).
    pub(super) async fn put_file(&self, key: &str, src: &Path) -> io::Result<()> {
        let dest = self.path_of(key)?;
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).await?;
        }
        fs::rename(src, &dest).await?;
        // Make the rename itself durable.
        if let Some(dir) = dest.parent() {
            fs::File::open(dir).await?.sync_all().await?;
        }
        Ok(())
    }

    pub(super) async fn len(&self, key: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.path_of(key)?).await?.len())
    }

    pub(super) async fn open_range(
        &self,
        key: &str,
        start: u64,
        end_inclusive: u64,
    ) -> io::Result<BlobStream> {
        let mut file = fs::File::open(self.path_of(key)?).await?;
        file.seek(io::SeekFrom::Start(start)).await?;
        let remaining = end_inclusive.saturating_sub(start) + 1;
        let stream =
            futures::stream::try_unfold((file, remaining), |(mut file, left)| async move {
                if left == 0 {
                    return Ok(None);
                }
                let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
                let mut buf = vec![0u8; want];
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    // Shorter than the caller was told: end the body early, as an error.
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob shorter than expected",
                    ));
                }
                buf.truncate(n);
                Ok(Some((Bytes::from(buf), (file, left - n as u64))))
            });
        Ok(stream.boxed())
    }

    pub(super) async fn delete(&self, key: &str) -> io::Result<()> {
        match fs::remove_file(self.path_of(key)?).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Keys are `{uuid}/{uuid}`; anything else is refused rather than joined.
    pub(super) fn path_of(&self, key: &str) -> io::Result<PathBuf> {
        super::check_key(key)?;
        Ok(self.root.join(key))
    }
}

/// Whether `key` is a well-formed blob key (`{uuid}/{uuid}`).
pub(super) fn key_ok(key: &str) -> bool {
    key.split('/').count() == 2 && key.split('/').all(|part| Uuid::parse_str(part).is_ok())
}
