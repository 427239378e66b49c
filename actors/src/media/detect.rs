//! What an uploaded file is, decided from its bytes (issue 4; security checklist §8,
//! ASVS V5.2.2/V5.2.3).
//!
//! The client's file name and declared `Content-Type` are never trusted: the type comes
//! from the content. The declared type is only checked for contradictions, and the file
//! name only tells Markdown from plain text (both are "UTF-8 text" by content).
//!
//! Everything here is synchronous and bounded; callers run [`detect`] on a blocking
//! thread after the upload has been written to disk and its size limit enforced.
//!
//! Documented limits (V5.1.1):
//! - signatures are read from the first [`SNIFF_BYTES`] bytes;
//! - text must be valid UTF-8 over the whole file, without NUL bytes;
//! - a DOCX (a ZIP) is inspected from its central directory only, nothing is
//!   decompressed or extracted: at most [`DOCX_MAX_ENTRIES`] entries, at most
//!   [`DOCX_MAX_UNCOMPRESSED_BYTES`] declared uncompressed bytes in total, no entry
//!   compressed more than [`DOCX_MAX_RATIO`]:1, no absolute / `..` / backslash / NUL
//!   entry names, no encryption, only the stored and deflate methods (the only ones
//!   OPC allows), no duplicate names and no overlapping entries.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use serde::{Deserialize, Serialize};
use zip::CompressionMethod;

use crate::domain::DataKind;

/// How many leading bytes are read to recognise a binary signature.
pub const SNIFF_BYTES: usize = 8 * 1024;
/// Most entries a DOCX may have.
pub const DOCX_MAX_ENTRIES: usize = 2000;
/// Most uncompressed bytes (sum of the declared sizes of all entries) a DOCX may hold.
pub const DOCX_MAX_UNCOMPRESSED_BYTES: u64 = 200 * 1024 * 1024;
/// Highest uncompressed:compressed ratio of any single DOCX entry.
pub const DOCX_MAX_RATIO: u64 = 100;

/// Read size when streaming a whole file (text validation, ZIP pre-scan).
const CHUNK_BYTES: usize = 64 * 1024;
/// Before the zip crate parses the central directory (and allocates per entry), the
/// raw central-header signatures in the file are counted: the crate cannot parse more
/// entries than there are signatures. The bound is generous (nested, stored archives
/// and chance matches in compressed data also count); the exact entry limit
/// ([`DOCX_MAX_ENTRIES`]) is checked on the parsed archive.
const MAX_CENTRAL_SIGNATURES: usize = 10 * DOCX_MAX_ENTRIES;
/// Longest declared type kept in an error (it is client input).
const MAX_DECLARED_CHARS: usize = 100;

const ZIP_LOCAL_HEADER: &[u8; 4] = b"PK\x03\x04";
const ZIP_CENTRAL_HEADER: &[u8; 4] = b"PK\x01\x02";
const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
const DOCX_MIME: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

/// What a stored file is, decided from its bytes (never the client's name or declared type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectedType {
    Pdf,
    Png,
    Jpeg,
    Tiff,
    Webp,
    PlainText,
    Markdown,
    Docx,
    Wav,
    Flac,
    Mp3,
    Ogg,
    M4a,
    Webm,
}

impl DetectedType {
    /// Every type, documents first.
    pub const ALL: [DetectedType; 14] = [
        Self::Pdf,
        Self::Png,
        Self::Jpeg,
        Self::Tiff,
        Self::Webp,
        Self::PlainText,
        Self::Markdown,
        Self::Docx,
        Self::Wav,
        Self::Flac,
        Self::Mp3,
        Self::Ogg,
        Self::M4a,
        Self::Webm,
    ];

    /// The kind of data this type belongs to.
    pub fn kind(self) -> DataKind {
        match self {
            Self::Pdf
            | Self::Png
            | Self::Jpeg
            | Self::Tiff
            | Self::Webp
            | Self::PlainText
            | Self::Markdown
            | Self::Docx => DataKind::Document,
            Self::Wav | Self::Flac | Self::Mp3 | Self::Ogg | Self::M4a | Self::Webm => {
                DataKind::Audio
            }
        }
    }

    /// The media type the content is served with.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Tiff => "image/tiff",
            Self::Webp => "image/webp",
            Self::PlainText => "text/plain; charset=utf-8",
            Self::Markdown => "text/markdown; charset=utf-8",
            Self::Docx => DOCX_MIME,
            Self::Wav => "audio/wav",
            Self::Flac => "audio/flac",
            Self::Mp3 => "audio/mpeg",
            Self::Ogg => "audio/ogg",
            Self::M4a => "audio/mp4",
            Self::Webm => "audio/webm",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Tiff => "tiff",
            Self::Webp => "webp",
            Self::PlainText => "txt",
            Self::Markdown => "md",
            Self::Docx => "docx",
            Self::Wav => "wav",
            Self::Flac => "flac",
            Self::Mp3 => "mp3",
            Self::Ogg => "ogg",
            Self::M4a => "m4a",
            Self::Webm => "webm",
        }
    }

    /// Stable snake_case name, as stored in the database (same as the serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Tiff => "tiff",
            Self::Webp => "webp",
            Self::PlainText => "plain_text",
            Self::Markdown => "markdown",
            Self::Docx => "docx",
            Self::Wav => "wav",
            Self::Flac => "flac",
            Self::Mp3 => "mp3",
            Self::Ogg => "ogg",
            Self::M4a => "m4a",
            Self::Webm => "webm",
        }
    }

    /// Inverse of [`DetectedType::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Human name used in error messages.
    fn label(self) -> &'static str {
        match self {
            Self::Pdf => "a PDF document",
            Self::Png => "a PNG image",
            Self::Jpeg => "a JPEG image",
            Self::Tiff => "a TIFF image",
            Self::Webp => "a WebP image",
            Self::PlainText => "plain text",
            Self::Markdown => "Markdown text",
            Self::Docx => "a DOCX document",
            Self::Wav => "WAV audio",
            Self::Flac => "FLAC audio",
            Self::Mp3 => "MP3 audio",
            Self::Ogg => "Ogg audio",
            Self::M4a => "M4A audio",
            Self::Webm => "WebM audio",
        }
    }

    /// Declared types (normalised by [`normalise_mime`]: lowercase, no parameters, no
    /// `x-` subtype prefix) that do not contradict this type. Text types also accept
    /// any `text/*` (see [`declared_compatible`]).
    ///
    /// - DOCX: also `application/zip` and `application/x-zip-compressed`, which some
    ///   browsers send for any ZIP-based file.
    /// - M4A: also `audio/aac` (the codec) and `video/mp4` (the container, as some
    ///   systems label `.mp4` audio recordings).
    /// - WebM: also `video/webm` (browsers label `.webm` that way).
    /// - Ogg: also `audio/opus`, `audio/vorbis` and `application/ogg`.
    fn declared_aliases(self) -> &'static [&'static str] {
        match self {
            Self::Pdf => &["application/pdf"],
            Self::Png => &["image/png"],
            Self::Jpeg => &["image/jpeg", "image/jpg", "image/pjpeg"],
            Self::Tiff => &["image/tiff", "image/tif"],
            Self::Webp => &["image/webp"],
            Self::PlainText | Self::Markdown => &["text/plain", "text/markdown"],
            Self::Docx => &[DOCX_MIME, "application/zip", "application/zip-compressed"],
            Self::Wav => &["audio/wav", "audio/wave", "audio/vnd.wave", "audio/pn-wav"],
            Self::Flac => &["audio/flac"],
            Self::Mp3 => &["audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/mpg"],
            Self::Ogg => &["audio/ogg", "audio/opus", "audio/vorbis", "application/ogg"],
            Self::M4a => &[
                "audio/mp4",
                "audio/m4a",
                "audio/aac",
                "audio/mp4a-latm",
                "video/mp4",
            ],
            Self::Webm => &["audio/webm", "video/webm"],
        }
    }
}

fn kind_label(kind: &DataKind) -> &'static str {
    match kind {
        DataKind::Document => "document",
        DataKind::Audio => "audio",
    }
}

fn type_label(found: &DetectedType) -> &'static str {
    found.label()
}

/// Why a file was refused. [`DetectError::code`] gives the stable machine code.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("the file is empty")]
    Empty,
    #[error(
        "unsupported file type: documents must be PDF, PNG, JPEG, TIFF, WebP, UTF-8 plain \
         text, Markdown or DOCX; audio must be WAV, FLAC, MP3, Ogg (Vorbis/Opus), M4A (AAC) \
         or WebM"
    )]
    Unrecognised,
    #[error(
        "expected {} content but the file is {}",
        kind_label(.expected),
        type_label(.found)
    )]
    KindMismatch {
        expected: DataKind,
        found: DetectedType,
    },
    #[error(
        "the declared content type {declared:?} does not match the file, which is {}",
        type_label(.found)
    )]
    DeclaredTypeMismatch {
        declared: String,
        found: DetectedType,
    },
    #[error("refused DOCX archive: {0}")]
    UnsafeArchive(String),
    #[error("could not read the uploaded file: {0}")]
    Io(#[from] io::Error),
}

impl DetectError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_file",
            Self::Unrecognised => "unsupported_type",
            Self::KindMismatch { .. } => "kind_mismatch",
            Self::DeclaredTypeMismatch { .. } => "declared_type_mismatch",
            Self::UnsafeArchive(_) => "unsafe_archive",
            Self::Io(_) => "io_error",
        }
    }
}

fn unsafe_archive(reason: impl Into<String>) -> DetectError {
    DetectError::UnsafeArchive(reason.into())
}

/// Decide the type of the file at `path` for an upload to `expected` kind.
///
/// `declared` is the client's declared Content-Type of the part (`None`, empty and
/// `application/octet-stream` never conflict). `file_name` is the client's file name,
/// used ONLY to tell Markdown (`.md`, `.markdown`) from plain text.
///
/// Order: type from content, then [`DetectError::KindMismatch`], then
/// [`DetectError::DeclaredTypeMismatch`].
pub fn detect(
    path: &Path,
    expected: DataKind,
    declared: Option<&str>,
    file_name: Option<&str>,
) -> Result<DetectedType, DetectError> {
    let mut file = File::open(path)?;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    (&file).take(SNIFF_BYTES as u64).read_to_end(&mut head)?;
    if head.is_empty() {
        return Err(DetectError::Empty);
    }

    let found = match sniff(&head, expected) {
        Sniffed::Found(found) => found,
        Sniffed::Unsupported => return Err(DetectError::Unrecognised),
        Sniffed::Zip => {
            check_docx(&mut file)?;
            DetectedType::Docx
        }
        Sniffed::Nothing => {
            let is_text = match expected {
                DataKind::Document => {
                    file.rewind()?;
                    is_utf8_text(&file)?
                }
                // Text sent to the audio endpoint is refused either way; do not read up
                // to an audio-sized file just to name it precisely.
                DataKind::Audio => head_is_text(&head, head.len() < SNIFF_BYTES),
            };
            if !is_text {
                return Err(DetectError::Unrecognised);
            }
            if file_name.is_some_and(is_markdown_name) {
                DetectedType::Markdown
            } else {
                DetectedType::PlainText
            }
        }
    };

    if found.kind() != expected {
        return Err(DetectError::KindMismatch { expected, found });
    }
    check_declared(declared, found)?;
    Ok(found)
}

/// Result of looking at the leading bytes.
#[derive(Debug, PartialEq, Eq)]
enum Sniffed {
    /// A supported binary signature.
    Found(DetectedType),
    /// A ZIP local header: a DOCX candidate, decided by [`check_docx`].
    Zip,
    /// A binary format we recognise and do not accept here.
    Unsupported,
    /// No supported signature: may be text.
    Nothing,
}

fn sniff(head: &[u8], expected: DataKind) -> Sniffed {
    if head.starts_with(ZIP_LOCAL_HEADER) {
        return Sniffed::Zip;
    }
    // ISO BMFF (MP4 family): decided on the major brand. Only the audio-specific brands
    // are M4A everywhere; generic brands are taken as M4A only on the audio endpoint
    // (audio is then decoded and analysed; a video there fails that step).
    if let Some(brand) = ftyp_major_brand(head) {
        return match &brand {
            b"M4A " | b"M4B " => Sniffed::Found(DetectedType::M4a),
            b"mp42" | b"isom" | b"dash" if expected == DataKind::Audio => {
                Sniffed::Found(DetectedType::M4a)
            }
            _ => Sniffed::Unsupported,
        };
    }
    // EBML (Matroska family): WebM only, and only as audio.
    if head.starts_with(b"\x1a\x45\xdf\xa3") {
        let header = &head[..head.len().min(256)];
        return if expected == DataKind::Audio && contains(header, b"\x42\x82\x84webm") {
            Sniffed::Found(DetectedType::Webm)
        } else {
            Sniffed::Unsupported
        };
    }
    // infer's MP3 test accepts any text starting with "ID3" and misses some frame
    // headers; this one checks the ID3v2 header fields and the MPEG layer III frame.
    if is_mp3(head) {
        return Sniffed::Found(DetectedType::Mp3);
    }
    let Some(inferred) = infer::get(head) else {
        return Sniffed::Nothing;
    };
    // Weak infer matchers (PDF marker anywhere in the first KiB, WebP without RIFF) are
    // tightened so that text mentioning them is not mistaken for them.
    let found = match inferred.mime_type() {
        "application/pdf" if head.starts_with(b"%PDF-") => DetectedType::Pdf,
        "image/png" if head.starts_with(PNG_SIGNATURE) => DetectedType::Png,
        "image/jpeg" => DetectedType::Jpeg,
        "image/tiff" => DetectedType::Tiff,
        "image/webp" if head.starts_with(b"RIFF") => DetectedType::Webp,
        "audio/x-wav" => DetectedType::Wav,
        "audio/x-flac" => DetectedType::Flac,
        "audio/ogg" | "audio/opus" => DetectedType::Ogg,
        "audio/m4a" => DetectedType::M4a,
        // Anything else (including infer's text matchers: HTML, XML, scripts, PEM) is
        // accepted only if it passes the text rules.
        _ => return Sniffed::Nothing,
    };
    Sniffed::Found(found)
}

fn ftyp_major_brand(head: &[u8]) -> Option<[u8; 4]> {
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        let mut brand = [0u8; 4];
        brand.copy_from_slice(&head[8..12]);
        Some(brand)
    } else {
        None
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An ID3v2 tag header (version 2 to 4, syncsafe size) or an MPEG audio layer III
/// frame header at the start.
fn is_mp3(head: &[u8]) -> bool {
    if let [b'I', b'D', b'3', major, minor, _flags, s0, s1, s2, s3, ..] = *head {
        return (2..=4).contains(&major)
            && minor != 0xFF
            && [s0, s1, s2, s3].iter().all(|b| b & 0x80 == 0);
    }
    let [a, b, c, ..] = *head else {
        return false;
    };
    let sync = a == 0xFF && b & 0xE0 == 0xE0;
    let version_ok = (b >> 3) & 0b11 != 0b01; // 01 is reserved
    let layer_three = (b >> 1) & 0b11 == 0b01; // excludes ADTS AAC (layer 00)
    let bitrate = c >> 4;
    let bitrate_ok = bitrate != 0 && bitrate != 0xF; // free format and invalid
    let sample_rate_ok = (c >> 2) & 0b11 != 0b11; // reserved
    sync && version_ok && layer_three && bitrate_ok && sample_rate_ok
}

fn is_markdown_name(name: &str) -> bool {
    let lower = name.trim_end().to_ascii_lowercase();
    lower.ends_with(".md") || lower.ends_with(".markdown")
}

/// Text check on the leading bytes only. `complete` says they are the whole file (a
/// character cut at the end is then invalid).
fn head_is_text(head: &[u8], complete: bool) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && !complete,
    }
}

/// Valid UTF-8 without NUL over the whole stream, read in chunks; a multi-byte
/// character split across reads is carried over to the next one.
fn is_utf8_text<R: Read>(mut reader: R) -> io::Result<bool> {
    // At most 3 bytes of an incomplete character are carried.
    let mut buf = vec![0u8; CHUNK_BYTES + 3];
    let mut carried = 0usize;
    loop {
        let n = read_retrying(&mut reader, &mut buf[carried..carried + CHUNK_BYTES])?;
        if n == 0 {
            return Ok(carried == 0);
        }
        let filled = carried + n;
        if buf[carried..filled].contains(&0) {
            return Ok(false);
        }
        match std::str::from_utf8(&buf[..filled]) {
            Ok(_) => carried = 0,
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                buf.copy_within(valid..filled, 0);
                carried = filled - valid;
            }
            Err(_) => return Ok(false),
        }
    }
}

fn read_retrying<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Occurrences of `needle` in the stream, stopping early once above `stop_above`.
fn count_occurrences<R: Read>(
    mut reader: R,
    needle: &[u8; 4],
    stop_above: usize,
) -> io::Result<usize> {
    const KEEP: usize = 3; // a match may straddle two reads
    let mut buf = vec![0u8; CHUNK_BYTES + KEEP];
    let mut kept = 0usize;
    let mut count = 0usize;
    loop {
        let n = read_retrying(&mut reader, &mut buf[kept..kept + CHUNK_BYTES])?;
        if n == 0 {
            return Ok(count);
        }
        let filled = kept + n;
        count += buf[..filled]
            .windows(needle.len())
            .filter(|w| w == needle)
            .count();
        if count > stop_above {
            return Ok(count);
        }
        let keep = filled.min(KEEP);
        buf.copy_within(filled - keep..filled, 0);
        kept = keep;
    }
}

fn zip_error(e: zip::result::ZipError) -> DetectError {
    match e {
        zip::result::ZipError::Io(e) => DetectError::Io(e),
        other => unsafe_archive(format!("not a valid ZIP archive ({other})")),
    }
}

/// Validate a ZIP as a DOCX from its metadata alone (nothing is decompressed). A safe
/// ZIP without the DOCX parts is [`DetectError::Unrecognised`]; a malformed or unsafe
/// one is [`DetectError::UnsafeArchive`].
fn check_docx(file: &mut File) -> Result<(), DetectError> {
    let len = file.metadata()?.len();
    // Entries are stored or deflated, so a DOCX within the uncompressed limit is
    // smaller than it (deflate's worst-case growth is negligible at this scale).
    if len > DOCX_MAX_UNCOMPRESSED_BYTES {
        return Err(unsafe_archive(format!(
            "archive larger than {} MiB",
            DOCX_MAX_UNCOMPRESSED_BYTES / (1024 * 1024)
        )));
    }

    file.rewind()?;
    let signatures = count_occurrences(&*file, ZIP_CENTRAL_HEADER, MAX_CENTRAL_SIGNATURES)?;
    if signatures > MAX_CENTRAL_SIGNATURES {
        return Err(too_many_entries());
    }

    file.rewind()?;
    let mut archive = zip::ZipArchive::new(BufReader::new(&*file)).map_err(zip_error)?;
    if archive.len() > DOCX_MAX_ENTRIES {
        return Err(too_many_entries());
    }
    if archive.has_duplicate_names() {
        return Err(unsafe_archive("duplicate entry names"));
    }

    let mut total: u64 = 0;
    let mut has_content_types = false;
    let mut has_document = false;
    for index in 0..archive.len() {
        let entry = archive.by_index_data(index).map_err(zip_error)?;
        let name = entry.name_raw();
        check_entry_name(name)?;
        if entry.encrypted() {
            return Err(unsafe_archive("encrypted entries are not accepted"));
        }
        let method = entry.compression();
        if !matches!(
            method,
            CompressionMethod::Stored | CompressionMethod::Deflated
        ) {
            return Err(unsafe_archive(format!(
                "entry {} uses compression method {method}, not allowed in a DOCX",
                printable_name(name)
            )));
        }
        let size = entry.size();
        let compressed = entry.compressed_size();
        total = total.saturating_add(size);
        if total > DOCX_MAX_UNCOMPRESSED_BYTES {
            return Err(unsafe_archive(format!(
                "uncompressed size over {} MiB",
                DOCX_MAX_UNCOMPRESSED_BYTES / (1024 * 1024)
            )));
        }
        let consistent = match method {
            CompressionMethod::Stored => size == compressed,
            _ => compressed > 0 || size == 0,
        };
        if !consistent {
            return Err(unsafe_archive(format!(
                "entry {} declares inconsistent sizes",
                printable_name(name)
            )));
        }
        if compressed > 0 && size > compressed.saturating_mul(DOCX_MAX_RATIO) {
            return Err(unsafe_archive(format!(
                "entry {} has a compression ratio over {DOCX_MAX_RATIO}:1",
                printable_name(name)
            )));
        }
        has_content_types |= name.eq_ignore_ascii_case(b"[Content_Types].xml");
        has_document |= name.eq_ignore_ascii_case(b"word/document.xml");
    }

    // Reads only local headers: entries sharing bytes are the overlapping-file zip bomb.
    if archive.has_overlapping_entries().map_err(zip_error)? {
        return Err(unsafe_archive("overlapping entries"));
    }
    if !(has_content_types && has_document) {
        return Err(DetectError::Unrecognised);
    }
    Ok(())
}

fn too_many_entries() -> DetectError {
    unsafe_archive(format!("more than {DOCX_MAX_ENTRIES} entries"))
}

fn check_entry_name(name: &[u8]) -> Result<(), DetectError> {
    let problem = if name.is_empty() {
        Some("an empty entry name")
    } else if name.contains(&0) {
        Some("a NUL byte in an entry name")
    } else if name.contains(&b'\\') {
        Some("a backslash in an entry name")
    } else if name.starts_with(b"/")
        || (name.len() >= 2 && name[1] == b':' && name[0].is_ascii_alphabetic())
    {
        Some("an absolute entry path")
    } else if name.split(|b| *b == b'/').any(|part| part == b"..") {
        Some("a `..` component in an entry path")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(unsafe_archive(format!(
            "{problem}: {}",
            printable_name(name)
        ))),
        None => Ok(()),
    }
}

/// An entry name for an error message: lossy, escaped, at most 100 characters.
fn printable_name(name: &[u8]) -> String {
    let lossy: String = String::from_utf8_lossy(name).chars().take(100).collect();
    format!("{lossy:?}")
}

/// Lowercase essence (no parameters), with an `x-` subtype prefix removed.
fn normalise_mime(raw: &str) -> String {
    let essence = raw
        .split_once(';')
        .map_or(raw, |(essence, _)| essence)
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some((top, sub)) => {
            let sub = sub.trim();
            let sub = sub.strip_prefix("x-").unwrap_or(sub);
            format!("{}/{sub}", top.trim())
        }
        None => essence,
    }
}

/// Declared types that say nothing about the content.
const NEUTRAL_DECLARED: &[&str] = &["application/octet-stream", "binary/octet-stream"];

fn declared_compatible(essence: &str, found: DetectedType) -> bool {
    if matches!(found, DetectedType::PlainText | DetectedType::Markdown)
        && essence.starts_with("text/")
    {
        // Any text/* (csv, markdown, plain...) is text; the content decides which.
        return true;
    }
    found.declared_aliases().contains(&essence)
}

fn check_declared(declared: Option<&str>, found: DetectedType) -> Result<(), DetectError> {
    let Some(raw) = declared else {
        return Ok(());
    };
    let essence = normalise_mime(raw);
    if essence.is_empty()
        || NEUTRAL_DECLARED.contains(&essence.as_str())
        || declared_compatible(&essence, found)
    {
        return Ok(());
    }
    Err(DetectError::DeclaredTypeMismatch {
        declared: raw.chars().take(MAX_DECLARED_CHARS).collect(),
        found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;
    use tempfile::TempDir;

    fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn detect_bytes(
        bytes: &[u8],
        expected: DataKind,
        declared: Option<&str>,
        file_name: Option<&str>,
    ) -> Result<DetectedType, DetectError> {
        let dir = TempDir::new().unwrap();
        let path = write(&dir, "upload.bin", bytes);
        detect(&path, expected, declared, file_name)
    }

    fn doc(bytes: &[u8]) -> Result<DetectedType, DetectError> {
        detect_bytes(bytes, DataKind::Document, None, None)
    }

    fn audio(bytes: &[u8]) -> Result<DetectedType, DetectError> {
        detect_bytes(bytes, DataKind::Audio, None, None)
    }

    fn code(result: Result<DetectedType, DetectError>) -> &'static str {
        match result {
            Ok(t) => panic!("expected an error, got {t:?}"),
            Err(e) => e.code(),
        }
    }

    // ---- sample files ----

    fn pdf() -> Vec<u8> {
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
            .to_vec()
    }

    fn png() -> Vec<u8> {
        let mut v = PNG_SIGNATURE.to_vec();
        v.extend_from_slice(&13u32.to_be_bytes());
        v.extend_from_slice(b"IHDR");
        v.extend_from_slice(&1u32.to_be_bytes()); // width
        v.extend_from_slice(&1u32.to_be_bytes()); // height
        v.extend_from_slice(&[8, 6, 0, 0, 0]); // depth, colour type, methods
        v.extend_from_slice(&[0x1f, 0x15, 0xc4, 0x89]); // CRC
        v
    }

    fn jpeg() -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        v.extend_from_slice(b"JFIF\0");
        v.extend_from_slice(&[1, 1, 0, 0, 1, 0, 1, 0, 0, 0xFF, 0xD9]);
        v
    }

    fn tiff(little_endian: bool) -> Vec<u8> {
        let mut v = if little_endian {
            b"II*\0\x08\0\0\0".to_vec()
        } else {
            b"MM\0*\0\0\0\x08".to_vec()
        };
        v.extend_from_slice(&[0u8; 8]); // an empty IFD
        v
    }

    fn webp() -> Vec<u8> {
        let mut v = b"RIFF".to_vec();
        v.extend_from_slice(&26u32.to_le_bytes());
        v.extend_from_slice(b"WEBPVP8 ");
        v.extend_from_slice(&[0u8; 18]);
        v
    }

    /// A real 44-byte PCM header (mono, 16-bit, 16 kHz) and four samples.
    fn wav() -> Vec<u8> {
        let samples: [i16; 4] = [0, 1000, -1000, 0];
        let data_len = (samples.len() * 2) as u32;
        let mut v = b"RIFF".to_vec();
        v.extend_from_slice(&(36 + data_len).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes()); // PCM
        v.extend_from_slice(&1u16.to_le_bytes()); // channels
        v.extend_from_slice(&16_000u32.to_le_bytes()); // sample rate
        v.extend_from_slice(&32_000u32.to_le_bytes()); // byte rate
        v.extend_from_slice(&2u16.to_le_bytes()); // block align
        v.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
        v.extend_from_slice(b"data");
        v.extend_from_slice(&data_len.to_le_bytes());
        assert_eq!(v.len(), 44);
        for s in samples {
            v.extend_from_slice(&s.to_le_bytes());
        }
        v
    }

    fn flac() -> Vec<u8> {
        let mut v = b"fLaC".to_vec();
        v.extend_from_slice(&[0x80, 0, 0, 34]); // last metadata block: STREAMINFO, 34 bytes
        v.extend_from_slice(&[0u8; 34]);
        v
    }

    fn ogg() -> Vec<u8> {
        let mut v = b"OggS\0\x02".to_vec();
        v.extend_from_slice(&[0u8; 22]);
        v.extend_from_slice(b"\x01\x13OpusHead\x01\x01");
        v.extend_from_slice(&[0u8; 16]);
        v
    }

    fn ftyp(brand: &[u8; 4]) -> Vec<u8> {
        let mut v = 24u32.to_be_bytes().to_vec();
        v.extend_from_slice(b"ftyp");
        v.extend_from_slice(brand);
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(brand);
        v.extend_from_slice(b"mp41");
        v.extend_from_slice(&8u32.to_be_bytes());
        v.extend_from_slice(b"mdat");
        v
    }

    fn webm(doc_type: &[u8; 4]) -> Vec<u8> {
        let mut v = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F];
        v.extend_from_slice(&[0x42, 0x86, 0x81, 0x01]); // EBMLVersion 1
        v.extend_from_slice(&[0x42, 0x82, 0x84]); // DocType, 4 bytes
        v.extend_from_slice(doc_type);
        v.extend_from_slice(&[0x42, 0x87, 0x81, 0x04]);
        v.extend_from_slice(&[0u8; 300]);
        v
    }

    fn docx_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated);
        for (name, data) in entries {
            zip.start_file(*name, options).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn docx() -> Vec<u8> {
        docx_with(&[
            (
                "[Content_Types].xml",
                br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#,
            ),
            ("_rels/.rels", b"<?xml version=\"1.0\"?><Relationships/>"),
            (
                "word/document.xml",
                b"<?xml version=\"1.0\"?><w:document><w:body><w:p><w:r><w:t>Hello</w:t></w:r></w:p></w:body></w:document>",
            ),
        ])
    }

    /// One hand-built ZIP entry: the header fields are written as given, whatever the
    /// data really is.
    struct RawEntry<'a> {
        name: &'a [u8],
        method: u16,
        flags: u16,
        compressed: u32,
        uncompressed: u32,
        data: &'a [u8],
    }

    impl<'a> RawEntry<'a> {
        fn stored(name: &'a [u8], data: &'a [u8]) -> Self {
            RawEntry {
                name,
                method: 0,
                flags: 0,
                compressed: data.len() as u32,
                uncompressed: data.len() as u32,
                data,
            }
        }
    }

    fn raw_zip(entries: &[RawEntry<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for e in entries {
            let offset = out.len() as u32;
            let crc = 0u32; // never checked: nothing is decompressed
            out.extend_from_slice(ZIP_LOCAL_HEADER);
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&e.flags.to_le_bytes());
            out.extend_from_slice(&e.method.to_le_bytes());
            out.extend_from_slice(&[0, 0, 0x21, 0]); // time, date
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&e.compressed.to_le_bytes());
            out.extend_from_slice(&e.uncompressed.to_le_bytes());
            out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(e.name);
            out.extend_from_slice(e.data);

            central.extend_from_slice(ZIP_CENTRAL_HEADER);
            central.extend_from_slice(&20u16.to_le_bytes()); // made by
            central.extend_from_slice(&20u16.to_le_bytes()); // needed
            central.extend_from_slice(&e.flags.to_le_bytes());
            central.extend_from_slice(&e.method.to_le_bytes());
            central.extend_from_slice(&[0, 0, 0x21, 0]);
            central.extend_from_slice(&crc.to_le_bytes());
            central.extend_from_slice(&e.compressed.to_le_bytes());
            central.extend_from_slice(&e.uncompressed.to_le_bytes());
            central.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0u8; 8]); // extra, comment, disk, internal attrs
            central.extend_from_slice(&0u32.to_le_bytes()); // external attrs
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(e.name);
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(b"PK\x05\x06");
        out.extend_from_slice(&[0u8; 4]); // disk numbers
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    const CT: &[u8] = b"<Types/>";
    const DOC: &[u8] = b"<w:document/>";

    fn unsafe_reason(result: Result<DetectedType, DetectError>) -> String {
        match result {
            Err(DetectError::UnsafeArchive(reason)) => reason,
            other => panic!("expected UnsafeArchive, got {other:?}"),
        }
    }

    // ---- names ----

    #[test]
    fn names_round_trip_and_match_serde() {
        for t in DetectedType::ALL {
            assert_eq!(DetectedType::parse(t.as_str()), Some(t));
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::Value::String(t.as_str().to_owned())
            );
            assert!(!t.mime().is_empty() && !t.extension().is_empty());
        }
        assert_eq!(DetectedType::parse("exe"), None);
        assert_eq!(DetectedType::parse("PDF"), None);
        assert_eq!(DetectedType::M4a.mime(), "audio/mp4");
        assert_eq!(
            DetectedType::Markdown.mime(),
            "text/markdown; charset=utf-8"
        );
        assert_eq!(DetectedType::Webm.kind(), DataKind::Audio);
        assert_eq!(DetectedType::Docx.kind(), DataKind::Document);
    }

    // ---- documents ----

    #[test]
    fn recognises_document_signatures() {
        assert_eq!(doc(&pdf()).unwrap(), DetectedType::Pdf);
        assert_eq!(doc(&png()).unwrap(), DetectedType::Png);
        assert_eq!(doc(&jpeg()).unwrap(), DetectedType::Jpeg);
        assert_eq!(doc(&tiff(true)).unwrap(), DetectedType::Tiff);
        assert_eq!(doc(&tiff(false)).unwrap(), DetectedType::Tiff);
        assert_eq!(doc(&webp()).unwrap(), DetectedType::Webp);
        assert_eq!(doc(&docx()).unwrap(), DetectedType::Docx);
    }

    #[test]
    fn empty_file_is_refused() {
        assert_eq!(code(doc(b"")), "empty_file");
        assert_eq!(code(audio(b"")), "empty_file");
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let dir = TempDir::new().unwrap();
        let result = detect(&dir.path().join("nope"), DataKind::Document, None, None);
        assert_eq!(code(result), "io_error");
    }

    #[test]
    fn text_with_a_character_across_the_sniff_and_chunk_boundaries() {
        // "é" (2 bytes) across the 8 KiB boundary, "€" (3 bytes) across the 64 KiB one.
        let mut text = "a".repeat(SNIFF_BYTES - 1);
        text.push('é');
        while text.len() < CHUNK_BYTES - 1 {
            text.push('b');
        }
        text.push('€');
        text.push_str("\nend\n");
        assert_eq!(text.as_bytes()[SNIFF_BYTES - 1], 0xC3);
        assert_eq!(text.as_bytes()[CHUNK_BYTES - 1], 0xE2);
        assert_eq!(doc(text.as_bytes()).unwrap(), DetectedType::PlainText);
    }

    #[test]
    fn streaming_check_handles_any_split() {
        /// Hands out at most `step` bytes per read.
        struct Trickle<'a> {
            data: &'a [u8],
            step: usize,
        }
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.step.min(buf.len()).min(self.data.len());
                buf[..n].copy_from_slice(&self.data[..n]);
                self.data = &self.data[n..];
                Ok(n)
            }
        }
        let good = "héllo wörld € 𝄞 ok".as_bytes();
        for step in 1..=5 {
            assert!(
                is_utf8_text(Trickle { data: good, step }).unwrap(),
                "step {step}"
            );
            // A character cut at the very end is not text.
            let truncated = "ok 𝄞".as_bytes();
            let truncated = &truncated[..truncated.len() - 1];
            assert!(
                !is_utf8_text(Trickle {
                    data: truncated,
                    step
                })
                .unwrap()
            );
            let invalid = b"ok \xC3\x28 no";
            assert!(
                !is_utf8_text(Trickle {
                    data: invalid,
                    step
                })
                .unwrap()
            );
        }
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let mut bytes = "a".repeat(20_000).into_bytes();
        bytes.extend_from_slice(b"\xff\xfe");
        assert_eq!(code(doc(&bytes)), "unsupported_type");
        // UTF-16 is not accepted either.
        assert_eq!(code(doc(b"\xff\xfeh\0i\0")), "unsupported_type");
        // A character truncated at the end of the file.
        assert_eq!(
            code(doc("fin €".as_bytes().split_last().unwrap().1)),
            "unsupported_type"
        );
    }

    #[test]
    fn nul_byte_is_refused() {
        let mut bytes = "a".repeat(10_000).into_bytes();
        bytes.push(0);
        bytes.extend_from_slice(b"more text");
        assert_eq!(code(doc(&bytes)), "unsupported_type");
    }

    #[test]
    fn markdown_only_by_name_hint() {
        let text = b"# Title\n\nSome *text*.\n";
        let md = |name: &str| detect_bytes(text, DataKind::Document, None, Some(name)).unwrap();
        assert_eq!(md("notes.md"), DetectedType::Markdown);
        assert_eq!(md("NOTES.MARKDOWN"), DetectedType::Markdown);
        assert_eq!(md("notes.txt"), DetectedType::PlainText);
        assert_eq!(md("md"), DetectedType::PlainText);
        assert_eq!(doc(text).unwrap(), DetectedType::PlainText);
        // The name never makes binary content text.
        assert_eq!(
            detect_bytes(&png(), DataKind::Document, None, Some("x.md")).unwrap(),
            DetectedType::Png
        );
    }

    #[test]
    fn text_resembling_weak_signatures_is_still_text() {
        // infer would call these BMP, PDF (marker in the first KiB), MP3 (ID3) and XML.
        assert_eq!(
            doc(b"BMW drivers were surveyed.\n").unwrap(),
            DetectedType::PlainText
        );
        assert_eq!(
            doc(b"A note on the %PDF-1.7 header.\n").unwrap(),
            DetectedType::PlainText
        );
        assert_eq!(
            doc(b"ID3 tags explained\n").unwrap(),
            DetectedType::PlainText
        );
        assert_eq!(
            doc(b"<?xml version=\"1.0\"?><a/>").unwrap(),
            DetectedType::PlainText
        );
    }

    #[test]
    fn other_binary_formats_are_refused() {
        assert_eq!(code(doc(b"GIF89a\x01\0\x01\0\x80\0\0")), "unsupported_type");
        assert_eq!(
            code(doc(b"\x7fELF\x02\x01\x01\0\0\0\0\0")),
            "unsupported_type"
        );
        // An MP4 video is not a document, and not audio under a generic brand elsewhere.
        assert_eq!(code(doc(&ftyp(b"isom"))), "unsupported_type");
        assert_eq!(code(doc(&ftyp(b"qt  "))), "unsupported_type");
        assert_eq!(code(audio(&ftyp(b"avc1"))), "unsupported_type");
        // Matroska that is not WebM; WebM on the document endpoint.
        assert_eq!(code(audio(&webm(b"mkv_"))), "unsupported_type");
        assert_eq!(code(doc(&webm(b"webm"))), "unsupported_type");
        // ADTS AAC (no container) is not accepted.
        assert_eq!(
            code(audio(b"\xff\xf1\x50\x80\x02\x1f\xfc")),
            "unsupported_type"
        );
    }

    // ---- audio ----

    #[test]
    fn recognises_audio_signatures() {
        assert_eq!(audio(&wav()).unwrap(), DetectedType::Wav);
        assert_eq!(audio(&flac()).unwrap(), DetectedType::Flac);
        assert_eq!(audio(&ogg()).unwrap(), DetectedType::Ogg);
        assert_eq!(
            audio(b"ID3\x04\0\0\0\0\0\x0aTIT2\0\0\0\0").unwrap(),
            DetectedType::Mp3
        );
        // MPEG-1 layer III frame headers with and without CRC, and MPEG-2.
        for frame in [
            b"\xff\xfb\x90\x64",
            b"\xff\xfa\x90\x64",
            b"\xff\xf3\x48\xc4",
        ] {
            assert_eq!(audio(frame).unwrap(), DetectedType::Mp3);
        }
        assert_eq!(audio(&ftyp(b"M4A ")).unwrap(), DetectedType::M4a);
        assert_eq!(audio(&ftyp(b"M4B ")).unwrap(), DetectedType::M4a);
        assert_eq!(audio(&ftyp(b"mp42")).unwrap(), DetectedType::M4a);
        assert_eq!(audio(&ftyp(b"isom")).unwrap(), DetectedType::M4a);
        assert_eq!(audio(&ftyp(b"dash")).unwrap(), DetectedType::M4a);
        assert_eq!(audio(&webm(b"webm")).unwrap(), DetectedType::Webm);
    }

    #[test]
    fn audio_uploaded_as_document_is_a_kind_mismatch() {
        match doc(&wav()) {
            Err(DetectError::KindMismatch { expected, found }) => {
                assert_eq!(expected, DataKind::Document);
                assert_eq!(found, DetectedType::Wav);
            }
            other => panic!("expected KindMismatch, got {other:?}"),
        }
        assert_eq!(code(doc(&ftyp(b"M4A "))), "kind_mismatch");
        assert_eq!(code(audio(&pdf())), "kind_mismatch");
        assert_eq!(code(audio(&docx())), "kind_mismatch");
        assert_eq!(code(audio(b"just some text\n")), "kind_mismatch");
    }

    // ---- declared type ----

    #[test]
    fn declared_type_contradicting_content_is_refused() {
        let result = detect_bytes(&pdf(), DataKind::Document, Some("image/png"), None);
        match result {
            Err(
                ref e @ DetectError::DeclaredTypeMismatch {
                    ref declared,
                    found,
                },
            ) => {
                assert_eq!(declared, "image/png");
                assert_eq!(found, DetectedType::Pdf);
                assert_eq!(e.code(), "declared_type_mismatch");
            }
            other => panic!("expected DeclaredTypeMismatch, got {other:?}"),
        }
        let mismatch = |bytes: &[u8], kind, declared| {
            code(detect_bytes(bytes, kind, Some(declared), None)) == "declared_type_mismatch"
        };
        assert!(mismatch(&wav(), DataKind::Audio, "audio/mpeg"));
        assert!(mismatch(b"text", DataKind::Document, "application/pdf"));
        assert!(mismatch(&docx(), DataKind::Document, "application/msword"));
        assert!(mismatch(&png(), DataKind::Document, "nonsense"));
    }

    #[test]
    fn neutral_or_compatible_declared_types_are_accepted() {
        let ok =
            |bytes: &[u8], kind, declared| detect_bytes(bytes, kind, Some(declared), None).unwrap();
        assert_eq!(
            ok(&pdf(), DataKind::Document, "application/octet-stream"),
            DetectedType::Pdf
        );
        assert_eq!(ok(&pdf(), DataKind::Document, ""), DetectedType::Pdf);
        assert_eq!(
            ok(&pdf(), DataKind::Document, "Application/PDF; name=x"),
            DetectedType::Pdf
        );
        for declared in ["audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"] {
            assert_eq!(ok(&wav(), DataKind::Audio, declared), DetectedType::Wav);
        }
        for declared in ["audio/mp4", "audio/x-m4a", "audio/aac", "video/mp4"] {
            assert_eq!(
                ok(&ftyp(b"M4A "), DataKind::Audio, declared),
                DetectedType::M4a
            );
        }
        assert_eq!(
            ok(&jpeg(), DataKind::Document, "image/jpg"),
            DetectedType::Jpeg
        );
        assert_eq!(
            ok(&png(), DataKind::Document, "image/x-png"),
            DetectedType::Png
        );
        assert_eq!(ok(&ogg(), DataKind::Audio, "audio/opus"), DetectedType::Ogg);
        assert_eq!(
            ok(&webm(b"webm"), DataKind::Audio, "video/webm"),
            DetectedType::Webm
        );
        assert_eq!(
            ok(&docx(), DataKind::Document, "application/zip"),
            DetectedType::Docx
        );
        assert_eq!(
            ok(&docx(), DataKind::Document, DOCX_MIME),
            DetectedType::Docx
        );
        let md = detect_bytes(
            b"# hi\n",
            DataKind::Document,
            Some("text/plain"),
            Some("a.md"),
        );
        assert_eq!(md.unwrap(), DetectedType::Markdown);
        let txt = detect_bytes(b"hi\n", DataKind::Document, Some("text/markdown"), None);
        assert_eq!(txt.unwrap(), DetectedType::PlainText);
        let csv = detect_bytes(b"a,b\n1,2\n", DataKind::Document, Some("text/csv"), None);
        assert_eq!(csv.unwrap(), DetectedType::PlainText);
    }

    #[test]
    fn long_declared_type_is_truncated_in_the_error() {
        let declared = format!("image/{}", "p".repeat(500));
        match detect_bytes(&pdf(), DataKind::Document, Some(&declared), None) {
            Err(DetectError::DeclaredTypeMismatch { declared, .. }) => {
                assert_eq!(declared.chars().count(), MAX_DECLARED_CHARS);
            }
            other => panic!("expected DeclaredTypeMismatch, got {other:?}"),
        }
    }

    // ---- DOCX / ZIP ----

    #[test]
    fn hand_built_minimal_docx_is_accepted() {
        let bytes = raw_zip(&[
            RawEntry::stored(b"[Content_Types].xml", CT),
            RawEntry::stored(b"word/", b""),
            RawEntry::stored(b"word/document.xml", DOC),
        ]);
        assert_eq!(doc(&bytes).unwrap(), DetectedType::Docx);
    }

    #[test]
    fn zip_that_is_not_a_docx_is_unrecognised() {
        let bytes = docx_with(&[("readme.txt", b"hello"), ("[Content_Types].xml", CT)]);
        assert_eq!(code(doc(&bytes)), "unsupported_type");
        let xlsx = docx_with(&[("[Content_Types].xml", CT), ("xl/workbook.xml", b"<w/>")]);
        assert_eq!(code(doc(&xlsx)), "unsupported_type");
    }

    #[test]
    fn zip_bomb_by_ratio_is_refused() {
        // A real deflated entry: 2 MiB of zeros compress about 1000:1.
        let zeros = vec![0u8; 2 * 1024 * 1024];
        let bytes = docx_with(&[
            ("[Content_Types].xml", CT),
            ("word/document.xml", DOC),
            ("word/media/bomb.bin", &zeros),
        ]);
        let reason = unsafe_reason(doc(&bytes));
        assert!(reason.contains("ratio"), "{reason}");
    }

    #[test]
    fn zip_bomb_by_declared_size_is_refused() {
        // Declared sizes only (the ratio stays under 100:1): 3 x 90 MiB > 200 MiB.
        let big = 90 * 1024 * 1024;
        let entry = |name: &'static [u8]| RawEntry {
            name,
            method: 8,
            flags: 0,
            compressed: big / 50,
            uncompressed: big,
            data: b"",
        };
        let bytes = raw_zip(&[
            RawEntry::stored(b"[Content_Types].xml", CT),
            RawEntry::stored(b"word/document.xml", DOC),
            entry(b"a.bin"),
            entry(b"b.bin"),
            entry(b"c.bin"),
        ]);
        let reason = unsafe_reason(doc(&bytes));
        assert!(reason.contains("uncompressed size"), "{reason}");
    }

    #[test]
    fn single_entry_with_huge_declared_ratio_is_refused() {
        let bytes = raw_zip(&[
            RawEntry::stored(b"[Content_Types].xml", CT),
            RawEntry::stored(b"word/document.xml", DOC),
            RawEntry {
                name: b"word/bomb.xml",
                method: 8,
                flags: 0,
                compressed: 10,
                uncompressed: 100 * 1024 * 1024,
                data: &[0u8; 10],
            },
        ]);
        let reason = unsafe_reason(doc(&bytes));
        assert!(reason.contains("ratio"), "{reason}");
    }

    #[test]
    fn path_traversal_and_odd_names_are_refused() {
        for name in [
            &b"../evil"[..],
            b"word/../../evil",
            b"/etc/passwd",
            b"C:/evil",
            b"word\\evil.xml",
            b"word/evil\0.xml",
        ] {
            let bytes = raw_zip(&[
                RawEntry::stored(b"[Content_Types].xml", CT),
                RawEntry::stored(b"word/document.xml", DOC),
                RawEntry::stored(name, b"x"),
            ]);
            let reason = unsafe_reason(doc(&bytes));
            assert!(reason.contains("entry"), "{reason}");
        }
    }

    #[test]
    fn encrypted_entries_are_refused() {
        let bytes = raw_zip(&[
            RawEntry::stored(b"[Content_Types].xml", CT),
            RawEntry {
                flags: 1,
                ..RawEntry::stored(b"word/document.xml", DOC)
            },
        ]);
        let reason = unsafe_reason(doc(&bytes));
        assert!(reason.contains("encrypted"), "{reason}");
    }

    #[test]
    fn other_compression_methods_and_inconsistent_sizes_are_refused() {
        let bzip2 = raw_zip(&[
            RawEntry::stored(b"[Content_Types].xml", CT),
            RawEntry {
                method: 12,
                ..RawEntry::stored(b"word/document.xml", DOC)
            },
        ]);
        let reason = unsafe_reason(doc(&bzip2));
        assert!(reason.contains("compression method"), "{reason}");
        let stored_lie = raw_zip(&[
            RawEntry::stored(b"[Content_Types].xml", CT),
            RawEntry {
                uncompressed: 5000,
                ..RawEntry::stored(b"word/document.xml", DOC)
            },
        ]);
        let reason = unsafe_reason(doc(&stored_lie));
        assert!(reason.contains("inconsistent sizes"), "{reason}");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let bytes = raw_zip(&[
            RawEntry::stored(b"[Content_Types].xml", CT),
            RawEntry::stored(b"word/document.xml", DOC),
            RawEntry::stored(b"word/document.xml", b"<other/>"),
        ]);
        let reason = unsafe_reason(doc(&bytes));
        assert!(reason.contains("duplicate"), "{reason}");
    }

    #[test]
    fn overlapping_entries_are_refused() {
        // Two central entries pointing at the same local entry.
        let mut bytes = raw_zip(&[
            RawEntry::stored(b"[Content_Types].xml", CT),
            RawEntry::stored(b"word/document.xml", DOC),
            RawEntry::stored(b"word/a.xml", b"<a/>"),
        ]);
        // Point the third central entry's local-header offset at the second entry.
        let second_offset = (30 + b"[Content_Types].xml".len() + CT.len()) as u32;
        let cd = find_all(&bytes, ZIP_CENTRAL_HEADER);
        assert_eq!(cd.len(), 3);
        let third = cd[2];
        bytes[third + 42..third + 46].copy_from_slice(&second_offset.to_le_bytes());
        let reason = unsafe_reason(doc(&bytes));
        assert!(reason.contains("overlapping"), "{reason}");
    }

    fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
        haystack
            .windows(needle.len())
            .enumerate()
            .filter(|(_, w)| *w == needle)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn too_many_entries_are_refused() {
        let names: Vec<String> = (0..=DOCX_MAX_ENTRIES)
            .map(|i| format!("word/p{i}.xml"))
            .collect();
        let mut entries: Vec<RawEntry<'_>> = names
            .iter()
            .map(|n| RawEntry::stored(n.as_bytes(), b""))
            .collect();
        entries.push(RawEntry::stored(b"[Content_Types].xml", CT));
        entries.push(RawEntry::stored(b"word/document.xml", DOC));
        let reason = unsafe_reason(doc(&raw_zip(&entries)));
        assert!(reason.contains("entries"), "{reason}");
    }

    #[test]
    fn central_signature_prescan_stops_early() {
        let mut bytes = Vec::new();
        for _ in 0..50 {
            bytes.extend_from_slice(ZIP_CENTRAL_HEADER);
        }
        assert_eq!(
            count_occurrences(&bytes[..], ZIP_CENTRAL_HEADER, 100).unwrap(),
            50
        );
        assert!(count_occurrences(&bytes[..], ZIP_CENTRAL_HEADER, 10).unwrap() > 10);
        // A signature straddling two reads is counted once.
        let mut long = vec![b'x'; CHUNK_BYTES - 2];
        long.extend_from_slice(ZIP_CENTRAL_HEADER);
        long.extend_from_slice(b"yy");
        assert_eq!(
            count_occurrences(&long[..], ZIP_CENTRAL_HEADER, 100).unwrap(),
            1
        );
    }

    #[test]
    fn truncated_zip_is_refused() {
        let mut bytes = docx();
        bytes.truncate(bytes.len() - 30); // cut into the end of central directory
        let reason = unsafe_reason(doc(&bytes));
        assert!(reason.contains("not a valid ZIP"), "{reason}");
    }

    #[test]
    fn error_codes_are_stable() {
        let io = DetectError::from(io::Error::other("x"));
        assert_eq!(io.code(), "io_error");
        assert_eq!(DetectError::Empty.code(), "empty_file");
        assert_eq!(DetectError::Unrecognised.code(), "unsupported_type");
        assert_eq!(unsafe_archive("x").code(), "unsafe_archive");
        let message = DetectError::KindMismatch {
            expected: DataKind::Document,
            found: DetectedType::Wav,
        }
        .to_string();
        assert_eq!(
            message,
            "expected document content but the file is WAV audio"
        );
        assert!(DetectError::Unrecognised.to_string().contains("DOCX"));
    }
}
