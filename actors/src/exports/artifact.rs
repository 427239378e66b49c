//! The files of an export under construction: named parts in a folder of their own
//! (`{blob_root}/.exports/{export_id}/`), appended to and synced at each checkpoint, so
//! that a run that crashed resumes by cutting each part back to its checkpointed
//! length. The main part becomes the artifact; an archive's other parts (its manifests)
//! are copied into it at the end as entries. An archive is a tar or a zip
//! ([`Packaging`]); a zip's central directory grows in a part of its own ([`CENTRAL`])
//! as entries are written, so a resumed run cuts it back with the rest.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

use futures::StreamExt;
use tokio::{
    fs,
    io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter},
};

use sha2::{Digest, Sha256};

use super::zip;
use crate::{blob::BlobStream, domain::export::Packaging};

/// The part that becomes the artifact.
pub const MAIN: &str = "main";
/// The central directory of a zip main part, appended to it at the end.
pub const CENTRAL: &str = "zip_central";

struct Part {
    file: BufWriter<fs::File>,
    len: u64,
    /// The SHA-256 of the part's first `hashed` bytes (the main part only): all that was
    /// written, unless an open entry holds it back (its header is patched at its end).
    hash: Option<Sha256>,
    hashed: u64,
    /// An open entry holds the hash back at `hashed`.
    held: bool,
}

pub struct Parts {
    dir: PathBuf,
    parts: BTreeMap<String, Part>,
}

/// A part's file name on disk (`meta/train` → `meta_train`).
fn disk_name(name: &str) -> String {
    name.replace('/', "_")
}

impl Parts {
    /// Open the parts `names` in `dir`. With `resume` (the lengths of the last
    /// checkpoint), each part is cut back to its length when every part is still there
    /// and at least that long; the answer says whether the run resumes. Otherwise every
    /// part starts empty. `open_entry_at`: where the checkpoint's open entry in the main
    /// part begins (its hash goes on from there when that entry ends).
    pub async fn open(
        dir: &Path,
        names: &[String],
        resume: Option<&BTreeMap<String, u64>>,
        open_entry_at: Option<u64>,
    ) -> io::Result<(Self, bool)> {
        fs::create_dir_all(dir).await?;
        let mut resumable = resume.is_some();
        for name in names {
            let want = resume.and_then(|r| r.get(name)).copied();
            let have = fs::metadata(dir.join(disk_name(name)))
                .await
                .map(|m| m.len())
                .ok();
            if !matches!((want, have), (Some(w), Some(h)) if h >= w) {
                resumable = false;
            }
        }
        let mut parts = BTreeMap::new();
        for name in names {
            let len = if resumable {
                resume.and_then(|r| r.get(name)).copied().unwrap_or(0)
            } else {
                0
            };
            let mut file = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .read(true)
                .open(dir.join(disk_name(name)))
                .await?;
            file.set_len(len).await?;
            // The main part's hash goes on from what a resumed run keeps of it.
            let held_at = open_entry_at.filter(|at| resumable && name == MAIN && *at <= len);
            let hashed = held_at.unwrap_or(len);
            let hash = if name == MAIN {
                Some(hash_prefix(&mut file, hashed).await?)
            } else {
                None
            };
            file.seek(io::SeekFrom::Start(len)).await?;
            parts.insert(
                name.clone(),
                Part {
                    file: BufWriter::with_capacity(256 * 1024, file),
                    len,
                    hash,
                    hashed,
                    held: held_at.is_some(),
                },
            );
        }
        Ok((
            Self {
                dir: dir.to_owned(),
                parts,
            },
            resumable,
        ))
    }

    fn part(&mut self, name: &str) -> io::Result<&mut Part> {
        self.parts
            .get_mut(name)
            .ok_or_else(|| io::Error::other(format!("no export part {name}")))
    }

    pub async fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let part = self.part(name)?;
        part.file.write_all(bytes).await?;
        part.len += bytes.len() as u64;
        if !part.held {
            if let Some(hash) = &mut part.hash {
                hash.update(bytes);
            }
            part.hashed = part.len;
        }
        Ok(())
    }

    /// The SHA-256 of the main part as written so far, in hex (none while an open entry
    /// holds its hash back).
    pub fn main_sha256(&self) -> Option<String> {
        self.parts
            .get(MAIN)
            .filter(|p| !p.held)
            .and_then(|p| p.hash.clone())
            .map(|h| hex::encode(h.finalize()))
    }

    pub fn len(&self, name: &str) -> u64 {
        self.parts.get(name).map(|p| p.len).unwrap_or(0)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(disk_name(name))
    }

    /// Make every part durable; their lengths, for a checkpoint.
    pub async fn sync(&mut self) -> io::Result<BTreeMap<String, u64>> {
        let mut lens = BTreeMap::new();
        for (name, part) in &mut self.parts {
            part.file.flush().await?;
            part.file.get_ref().sync_data().await?;
            lens.insert(name.clone(), part.len);
        }
        Ok(lens)
    }

    /// Begin an entry of `size` bytes at `path` in the archive in `name`: the offset of
    /// its header (a zip's central record points there).
    async fn begin_entry(
        &mut self,
        packaging: Packaging,
        name: &str,
        path: &str,
        size: u64,
        mtime: u64,
    ) -> io::Result<u64> {
        let offset = self.len(name);
        match packaging {
            Packaging::Tar => self.append(name, &tar_header(path, size, mtime)?).await?,
            Packaging::Zip => self.append(name, &zip::local_header(path, mtime)).await?,
        }
        Ok(offset)
    }

    /// End the entry begun at `offset`: a tar's padding, or a zip's data descriptor and
    /// its record in the central directory.
    async fn end_entry(
        &mut self,
        packaging: Packaging,
        name: &str,
        entry: Entry<'_>,
    ) -> io::Result<()> {
        match packaging {
            Packaging::Tar => self.append(name, &vec![0u8; tar_padding(entry.size)]).await,
            Packaging::Zip => {
                let crc = entry.crc.finalize();
                self.append(name, &zip::data_descriptor(crc, entry.size))
                    .await?;
                let record =
                    zip::central_record(entry.path, entry.mtime, crc, entry.size, entry.offset);
                self.append(CENTRAL, &record).await
            }
        }
    }

    /// Append a file entry to the archive in `name` whose bytes come from `stream`,
    /// which must yield exactly `size` bytes.
    pub async fn append_entry_stream(
        &mut self,
        packaging: Packaging,
        name: &str,
        path: &str,
        size: u64,
        mtime: u64,
        mut stream: BlobStream,
    ) -> io::Result<()> {
        let offset = self.begin_entry(packaging, name, path, size, mtime).await?;
        let mut crc = crc32fast::Hasher::new();
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            written += chunk.len() as u64;
            if written > size {
                break;
            }
            crc.update(&chunk);
            self.append(name, &chunk).await?;
        }
        if written != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{path}: the stored file has {written} bytes, its record says {size}"),
            ));
        }
        let entry = Entry {
            path,
            size,
            mtime,
            offset,
            crc,
        };
        self.end_entry(packaging, name, entry).await
    }

    /// Append an entry holding `bytes`.
    pub async fn append_entry_bytes(
        &mut self,
        packaging: Packaging,
        name: &str,
        path: &str,
        bytes: &[u8],
        mtime: u64,
    ) -> io::Result<()> {
        let size = bytes.len() as u64;
        let offset = self.begin_entry(packaging, name, path, size, mtime).await?;
        self.append(name, bytes).await?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(bytes);
        let entry = Entry {
            path,
            size,
            mtime,
            offset,
            crc,
        };
        self.end_entry(packaging, name, entry).await
    }

    /// Begin the entry `path` in the archive in `name` whose size is not known yet: the
    /// caller appends its bytes to `name` and ends it with [`Parts::end_open_entry`],
    /// passing the offset this answers. So a WebDataset shard is written once, in place,
    /// and not as a part of its own copied in at the end. The part's hash waits until the
    /// entry ends (a tar header is patched then).
    pub async fn begin_open_entry(
        &mut self,
        packaging: Packaging,
        name: &str,
        path: &str,
        mtime: u64,
    ) -> io::Result<u64> {
        let part = self.part(name)?;
        if part.held {
            return Err(io::Error::other(format!(
                "export part {name} has an open entry already"
            )));
        }
        part.held = true;
        self.begin_entry(packaging, name, path, 0, mtime).await
    }

    /// End the entry `path` begun at `offset` by [`Parts::begin_open_entry`]: its size is
    /// what was appended since its header; a tar header is rewritten with it, a zip gets
    /// its data descriptor and central record. The bytes written since the hash was held
    /// are read back once, for the hash and a zip's CRC.
    pub async fn end_open_entry(
        &mut self,
        packaging: Packaging,
        name: &str,
        path: &str,
        offset: u64,
        mtime: u64,
    ) -> io::Result<()> {
        let header_len = match packaging {
            Packaging::Tar => 512,
            Packaging::Zip => zip::local_header(path, mtime).len() as u64,
        };
        let data_at = offset + header_len;
        let size = self.len(name).checked_sub(data_at).ok_or_else(|| {
            io::Error::other(format!("export part {name} is shorter than its open entry"))
        })?;
        if packaging == Packaging::Tar {
            self.patch(name, offset, &tar_header(path, size, mtime)?)
                .await?;
        }
        let crc = self.catch_up(name, data_at).await?;
        let entry = Entry {
            path,
            size,
            mtime,
            offset,
            crc,
        };
        self.end_entry(packaging, name, entry).await
    }

    /// Write `bytes` over what the part `name` holds at `offset` (inside an open entry,
    /// whose bytes are not hashed yet).
    async fn patch(&mut self, name: &str, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let part = self.part(name)?;
        if !part.held || offset < part.hashed || offset + bytes.len() as u64 > part.len {
            return Err(io::Error::other(format!(
                "export part {name}: a patch outside its open entry"
            )));
        }
        part.file.flush().await?;
        let file = part.file.get_mut();
        file.seek(io::SeekFrom::Start(offset)).await?;
        file.write_all(bytes).await?;
        file.seek(io::SeekFrom::Start(part.len)).await?;
        Ok(())
    }

    /// Hash what the part `name` holds past its hashed prefix, reading it back, and hash
    /// as it is appended again; the CRC-32 of the bytes from `crc_from` on.
    async fn catch_up(&mut self, name: &str, crc_from: u64) -> io::Result<crc32fast::Hasher> {
        let dir = self.dir.clone();
        let part = self.part(name)?;
        part.file.flush().await?;
        let mut source = fs::File::open(dir.join(disk_name(name))).await?;
        source.seek(io::SeekFrom::Start(part.hashed)).await?;
        let mut crc = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut at = part.hashed;
        while at < part.len {
            let want = usize::try_from(part.len - at)
                .unwrap_or(buf.len())
                .min(buf.len());
            let n = source.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("export part {name} is shorter than written"),
                ));
            }
            if let Some(hash) = &mut part.hash {
                hash.update(&buf[..n]);
            }
            let skip = usize::try_from(crc_from.saturating_sub(at))
                .unwrap_or(n)
                .min(n);
            crc.update(&buf[skip..n]);
            at += n as u64;
        }
        part.hashed = part.len;
        part.held = false;
        Ok(crc)
    }

    /// Append the part `from` to the archive in `name` as the entry `path`.
    pub async fn append_entry_part(
        &mut self,
        packaging: Packaging,
        name: &str,
        path: &str,
        from: &str,
        mtime: u64,
    ) -> io::Result<()> {
        let size = {
            let part = self.part(from)?;
            part.file.flush().await?;
            part.len
        };
        let offset = self.begin_entry(packaging, name, path, size, mtime).await?;
        let mut crc = crc32fast::Hasher::new();
        self.copy_part(name, from, size, Some(&mut crc)).await?;
        let entry = Entry {
            path,
            size,
            mtime,
            offset,
            crc,
        };
        self.end_entry(packaging, name, entry).await
    }

    /// Copy the first `size` bytes of the part `from` to the end of `name`.
    async fn copy_part(
        &mut self,
        name: &str,
        from: &str,
        size: u64,
        mut crc: Option<&mut crc32fast::Hasher>,
    ) -> io::Result<()> {
        let mut source = fs::File::open(self.path(from)).await?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(buf.len()).min(buf.len());
            let n = source.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("export part {from} is shorter than written"),
                ));
            }
            if let Some(crc) = crc.as_deref_mut() {
                crc.update(&buf[..n]);
            }
            self.append(name, &buf[..n]).await?;
            left -= n as u64;
        }
        Ok(())
    }

    /// Close the archive in `name`: a tar's two zero blocks; a zip's central directory
    /// and end records.
    pub async fn end_archive(&mut self, packaging: Packaging, name: &str) -> io::Result<()> {
        match packaging {
            Packaging::Tar => self.append(name, &[0u8; 1024]).await,
            Packaging::Zip => {
                let central_len = {
                    let part = self.part(CENTRAL)?;
                    part.file.flush().await?;
                    part.len
                };
                let entries = count_central(&self.path(CENTRAL), central_len).await?;
                let central_offset = self.len(name);
                self.copy_part(name, CENTRAL, central_len, None).await?;
                self.append(
                    name,
                    &zip::end_records(entries, central_offset, central_len),
                )
                .await
            }
        }
    }

    /// Remove the folder of parts.
    pub async fn remove(dir: &Path) {
        if let Err(err) = fs::remove_dir_all(dir).await
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %err, "could not remove export parts");
        }
    }
}

/// An entry being written.
struct Entry<'a> {
    path: &'a str,
    size: u64,
    mtime: u64,
    offset: u64,
    crc: crc32fast::Hasher,
}

/// How many records the first `len` bytes of a zip central directory part hold, read
/// as a stream (a million entries' records need not fit in memory).
async fn count_central(path: &Path, len: u64) -> io::Result<u64> {
    let mut file = tokio::io::BufReader::new(fs::File::open(path).await?);
    let (mut at, mut count) = (0u64, 0u64);
    let mut head = [0u8; 46];
    let mut skip = vec![0u8; 1024];
    while at < len {
        file.read_exact(&mut head).await?;
        let field = |i: usize| usize::from(u16::from_le_bytes([head[i], head[i + 1]]));
        let rest = field(28) + field(30) + field(32);
        if skip.len() < rest {
            skip.resize(rest, 0);
        }
        file.read_exact(&mut skip[..rest]).await?;
        at += (46 + rest) as u64;
        count += 1;
    }
    if at != len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the zip central directory part ends inside a record",
        ));
    }
    Ok(count)
}

/// The SHA-256 of a file's first `len` bytes (a resumed run's main part), read once.
async fn hash_prefix(file: &mut fs::File, len: u64) -> io::Result<Sha256> {
    let mut hash = Sha256::new();
    file.seek(io::SeekFrom::Start(0)).await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(buf.len()).min(buf.len());
        let n = file.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the export's main part is shorter than its checkpoint",
            ));
        }
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hash)
}

/// A ustar header for a regular file (paths here are short and ASCII: `{split}/{uuid}.ext`).
fn tar_header(path: &str, size: u64, mtime: u64) -> io::Result<[u8; 512]> {
    let mut header = tar::Header::new_ustar();
    header.set_path(path)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut block = [0u8; 512];
    block.copy_from_slice(header.as_bytes());
    Ok(block)
}

/// The bytes a tar entry of `size` bytes takes: its header, the bytes, the padding.
pub fn tar_entry_len(size: u64) -> u64 {
    512 + size + tar_padding(size) as u64
}

/// Zero bytes that bring an entry of `size` bytes to a whole block.
fn tar_padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tar_written_in_parts_reads_back_and_resumes() {
        let dir = std::env::temp_dir().join(format!("alta-parts-{}", uuid::Uuid::new_v4()));
        let names = vec![MAIN.to_owned(), "manifest".to_owned()];
        let (mut parts, resumed) = Parts::open(&dir, &names, None, None).await.unwrap();
        assert!(!resumed);
        parts
            .append_entry_bytes(Packaging::Tar, MAIN, "a.txt", b"hello", 0)
            .await
            .unwrap();
        parts.append("manifest", b"{\"id\":1}\n").await.unwrap();
        let checkpoint = parts.sync().await.unwrap();
        // Written after the checkpoint, then "crashed".
        parts
            .append_entry_bytes(Packaging::Tar, MAIN, "b.txt", b"lost", 0)
            .await
            .unwrap();
        parts.append("manifest", b"{\"id\":2}\n").await.unwrap();
        parts.sync().await.unwrap();
        drop(parts);

        let (mut parts, resumed) = Parts::open(&dir, &names, Some(&checkpoint), None)
            .await
            .unwrap();
        assert!(resumed);
        assert_eq!(parts.len("manifest"), 9);
        parts
            .append_entry_part(Packaging::Tar, MAIN, "manifest.jsonl", "manifest", 0)
            .await
            .unwrap();
        parts.end_archive(Packaging::Tar, MAIN).await.unwrap();
        parts.sync().await.unwrap();
        let bytes = std::fs::read(parts.path(MAIN)).unwrap();
        let digest = hex::encode(Sha256::digest(&bytes));
        assert_eq!(
            parts.main_sha256().unwrap(),
            digest,
            "the hash carried across the resumption"
        );
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut body = String::new();
            std::io::Read::read_to_string(&mut entry, &mut body).unwrap();
            seen.push((entry.path().unwrap().display().to_string(), body));
        }
        assert_eq!(
            seen,
            vec![
                ("a.txt".to_owned(), "hello".to_owned()),
                ("manifest.jsonl".to_owned(), "{\"id\":1}\n".to_owned()),
            ]
        );
        Parts::remove(&dir).await;
        assert!(!dir.exists());
    }

    /// A zip written in parts, cut back at a checkpoint and finished, is read by the
    /// `zip` crate (another implementation): names, bytes and CRCs.
    #[tokio::test]
    async fn a_zip_written_in_parts_reads_back_and_resumes() {
        let dir = std::env::temp_dir().join(format!("alta-parts-{}", uuid::Uuid::new_v4()));
        let names = vec![MAIN.to_owned(), CENTRAL.to_owned(), "manifest".to_owned()];
        let (mut parts, _) = Parts::open(&dir, &names, None, None).await.unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let stream: BlobStream = Box::pin(futures::stream::iter(
            big.chunks(65_536)
                .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        ));
        parts
            .append_entry_stream(
                Packaging::Zip,
                MAIN,
                "files/a.bin",
                big.len() as u64,
                1_764_000_000,
                stream,
            )
            .await
            .unwrap();
        parts.append("manifest", b"{\"id\":1}\n").await.unwrap();
        let checkpoint = parts.sync().await.unwrap();
        parts
            .append_entry_bytes(Packaging::Zip, MAIN, "files/lost.txt", b"lost", 0)
            .await
            .unwrap();
        parts.sync().await.unwrap();
        drop(parts);

        let (mut parts, resumed) = Parts::open(&dir, &names, Some(&checkpoint), None)
            .await
            .unwrap();
        assert!(resumed);
        parts
            .append_entry_part(Packaging::Zip, MAIN, "manifest.jsonl", "manifest", 0)
            .await
            .unwrap();
        parts
            .append_entry_bytes(Packaging::Zip, MAIN, "README.md", "# Café\n".as_bytes(), 0)
            .await
            .unwrap();
        parts.end_archive(Packaging::Zip, MAIN).await.unwrap();
        parts.sync().await.unwrap();
        let bytes = std::fs::read(parts.path(MAIN)).unwrap();
        let mut archive = ::zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut seen = Vec::new();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).unwrap();
            let mut body = Vec::new();
            // Reading to the end checks the entry's CRC.
            std::io::Read::read_to_end(&mut entry, &mut body).unwrap();
            seen.push((entry.name().unwrap().to_string(), body));
        }
        assert_eq!(
            seen,
            vec![
                ("files/a.bin".to_owned(), big),
                ("manifest.jsonl".to_owned(), b"{\"id\":1}\n".to_vec()),
                ("README.md".to_owned(), "# Café\n".as_bytes().to_vec()),
            ]
        );
        Parts::remove(&dir).await;
    }

    /// An entry whose size comes at its end (a WebDataset shard, a tar inside the
    /// archive), checkpointed while open and resumed: one header made right, the hash
    /// of the whole file, for tar and zip.
    #[tokio::test]
    async fn an_open_entry_written_in_place_resumes_and_ends_right() {
        for packaging in [Packaging::Tar, Packaging::Zip] {
            let dir = std::env::temp_dir().join(format!("alta-parts-{}", uuid::Uuid::new_v4()));
            let mut names = vec![MAIN.to_owned()];
            if packaging == Packaging::Zip {
                names.push(CENTRAL.to_owned());
            }
            let (mut parts, _) = Parts::open(&dir, &names, None, None).await.unwrap();
            parts
                .append_entry_bytes(packaging, MAIN, "before.txt", b"first", 0)
                .await
                .unwrap();
            let at = parts
                .begin_open_entry(packaging, MAIN, "shard-000000.tar", 0)
                .await
                .unwrap();
            parts
                .append_entry_bytes(Packaging::Tar, MAIN, "a.json", b"{\"a\":1}", 0)
                .await
                .unwrap();
            assert_eq!(parts.main_sha256(), None, "held while the entry is open");
            let checkpoint = parts.sync().await.unwrap();
            parts
                .append_entry_bytes(Packaging::Tar, MAIN, "lost.json", b"{}", 0)
                .await
                .unwrap();
            parts.sync().await.unwrap();
            drop(parts);

            let (mut parts, resumed) = Parts::open(&dir, &names, Some(&checkpoint), Some(at))
                .await
                .unwrap();
            assert!(resumed);
            parts
                .append_entry_bytes(Packaging::Tar, MAIN, "b.json", b"{\"b\":2}", 0)
                .await
                .unwrap();
            parts.end_archive(Packaging::Tar, MAIN).await.unwrap();
            parts
                .end_open_entry(packaging, MAIN, "shard-000000.tar", at, 0)
                .await
                .unwrap();
            parts
                .append_entry_bytes(packaging, MAIN, "after.txt", b"last", 0)
                .await
                .unwrap();
            parts.end_archive(packaging, MAIN).await.unwrap();
            parts.sync().await.unwrap();
            let bytes = std::fs::read(parts.path(MAIN)).unwrap();
            assert_eq!(
                parts.main_sha256().unwrap(),
                hex::encode(Sha256::digest(&bytes)),
                "{packaging:?}: the hash of the file as it is"
            );
            let outer: Vec<(String, Vec<u8>)> = match packaging {
                Packaging::Tar => {
                    let mut archive = tar::Archive::new(&bytes[..]);
                    archive
                        .entries()
                        .unwrap()
                        .map(|e| {
                            let mut e = e.unwrap();
                            let mut body = Vec::new();
                            std::io::Read::read_to_end(&mut e, &mut body).unwrap();
                            (e.path().unwrap().display().to_string(), body)
                        })
                        .collect()
                }
                Packaging::Zip => {
                    let mut archive =
                        ::zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
                    (0..archive.len())
                        .map(|i| {
                            let mut e = archive.by_index(i).unwrap();
                            let mut body = Vec::new();
                            std::io::Read::read_to_end(&mut e, &mut body).unwrap();
                            (e.name().unwrap().to_string(), body)
                        })
                        .collect()
                }
            };
            let names_of = |entries: &[(String, Vec<u8>)]| {
                entries.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
            };
            assert_eq!(
                names_of(&outer),
                ["before.txt", "shard-000000.tar", "after.txt"],
                "{packaging:?}"
            );
            let inner: Vec<(String, Vec<u8>)> = tar::Archive::new(&outer[1].1[..])
                .entries()
                .unwrap()
                .map(|e| {
                    let mut e = e.unwrap();
                    let mut body = Vec::new();
                    std::io::Read::read_to_end(&mut e, &mut body).unwrap();
                    (e.path().unwrap().display().to_string(), body)
                })
                .collect();
            assert_eq!(
                inner,
                vec![
                    ("a.json".to_owned(), b"{\"a\":1}".to_vec()),
                    ("b.json".to_owned(), b"{\"b\":2}".to_vec()),
                ],
                "{packaging:?}: the shard, without what came after its checkpoint"
            );
            Parts::remove(&dir).await;
        }
    }

    #[tokio::test]
    async fn a_missing_part_starts_over() {
        let dir = std::env::temp_dir().join(format!("alta-parts-{}", uuid::Uuid::new_v4()));
        let names = vec![MAIN.to_owned()];
        let checkpoint = BTreeMap::from([(MAIN.to_owned(), 100u64)]);
        let (parts, resumed) = Parts::open(&dir, &names, Some(&checkpoint), None)
            .await
            .unwrap();
        assert!(!resumed);
        assert_eq!(parts.len(MAIN), 0);
        Parts::remove(&dir).await;
    }
}
