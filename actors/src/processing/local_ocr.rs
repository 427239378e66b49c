//! Local text extraction: the engine behind the OCR actor.
//!
//! [`extract`] turns one stored upload into text, by the type decided from its bytes at
//! upload ([`crate::media::detect`]):
//! - `plain_text` / `markdown`: the file as it is (invalid UTF-8 replaced, a leading BOM
//!   dropped), one page;
//! - `pdf`: the text layer of each page (lopdf). A PDF without any text (a scan) is
//!   rendered page by page with `pdftoppm` and read by `tesseract`, when both are
//!   available;
//! - `docx`: the text runs of `word/document.xml`, one page;
//! - `png` / `jpeg` / `tiff` / `webp`: `tesseract`, one page per image page.
//!
//! Every call is bounded: [`LocalOcrConfig::timeout`] is the budget of the whole call
//! (all renders and OCR runs of a scanned PDF share it), external programs are killed
//! when it runs out, and [`LocalOcrConfig::max_text_bytes`] bounds the text. An empty
//! result is an error ([`ExtractError::NoTextFound`]), never a silent empty success.
//!
//! CPU-bound parsing runs on tokio's blocking pool. Such a thread cannot be stopped from
//! outside: on timeout the caller gets its error at once and the PDF page loop stops at
//! its next page, but a single lopdf call runs to its end.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lopdf::content::Content;
use lopdf::{DecompressError, Document, Encoding, Object, ObjectId};
use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::{Namespace, QName, ResolveResult};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::Instant;

/// [`Extraction::engine`] of plain text and Markdown.
pub const ENGINE_PLAIN_TEXT: &str = "plain_text";
/// [`Extraction::engine`] of a PDF read from its text layer.
pub const ENGINE_PDF_TEXT_LAYER: &str = "pdf_text_layer";
/// [`Extraction::engine`] of a DOCX.
pub const ENGINE_DOCX: &str = "docx";
/// [`Extraction::engine`] of an image, or of a scanned PDF, read by tesseract.
pub const ENGINE_TESSERACT: &str = "tesseract";

/// What joins the pages in [`Extraction::text`].
pub const PAGE_SEPARATOR: &str = "\n\n";
/// Most bytes of `word/document.xml` read from a DOCX.
pub const MAX_DOCX_XML_BYTES: u64 = 64 * 1024 * 1024;
/// Resolution scanned PDF pages are rendered at for OCR.
pub const RENDER_DPI: f64 = 300.0;
/// Longest side, in pixels, of a rendered PDF page: a page too large for [`RENDER_DPI`]
/// is rendered at a lower resolution instead (a PDF page may be 200 inches wide).
pub const MAX_RENDER_SIDE_PIXELS: f64 = 6000.0;

/// Longest stderr tail kept in an error message, in characters.
const STDERR_TAIL_CHARS: usize = 500;
/// Most stderr bytes kept from a child (the rest is read and dropped).
const STDERR_KEEP_BYTES: usize = 16 * 1024;
/// Tesseract's TSV output is much longer than the text it holds (a row of numbers per
/// word): its stdout is read up to this many times `max_text_bytes` (plus 1 MiB).
const TSV_BYTES_PER_TEXT_BYTE: usize = 32;
/// pdftoppm writes its image to a file; its stdout holds at most some messages.
const PDFTOPPM_STDOUT_BYTES: usize = 64 * 1024;
/// How far up the page tree a page's `MediaBox` is looked for.
const MAX_PAGE_TREE_DEPTH: usize = 64;
/// Most bytes any single stream may decompress to while a PDF is loaded (object and
/// cross-reference streams; lopdf's own default is 256 MiB).
const PDF_LOAD_MAX_DECOMPRESSED_BYTES: usize = 32 * 1024 * 1024;
/// Longest client-influenced string (a type, a language list) quoted in an error.
const MAX_QUOTED_CHARS: usize = 100;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// WordprocessingML main namespaces: transitional and strict OOXML.
const WML_NAMESPACES: [&[u8]; 2] = [
    b"http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    b"http://purl.oclc.org/ooxml/wordprocessingml/main",
];

/// The text of one document.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    /// All the text: the pages joined by [`PAGE_SEPARATOR`]. Never empty after trimming.
    pub text: String,
    /// The text of each page, in order (one page for text, DOCX and single images).
    /// Trailing whitespace of PDF and OCR pages is trimmed; a page may be empty.
    pub pages: Vec<String>,
    /// What produced the text: [`ENGINE_PLAIN_TEXT`], [`ENGINE_PDF_TEXT_LAYER`],
    /// [`ENGINE_DOCX`] or [`ENGINE_TESSERACT`].
    pub engine: &'static str,
    /// Mean word confidence, 0..=1; only for tesseract, `None` if it rated no word.
    pub confidence: Option<f64>,
}

/// Why no text came out. [`ExtractError::code`] is the stable, machine-readable reason.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("no text extraction for type {0:?}")]
    UnsupportedType(String),
    #[error("cannot read the stored file: {0}")]
    Io(#[source] io::Error),
    #[error("unreadable PDF: {0}")]
    UnreadablePdf(String),
    #[error("scanned PDF and no OCR engine ({0})")]
    NoTextLayer(&'static str),
    #[error("unreadable DOCX: {0}")]
    UnreadableDocx(String),
    #[error("no OCR engine: tesseract is not available")]
    NoOcrEngine,
    #[error("invalid OCR languages {0:?} (expected names like \"eng\" or \"eng+deu\")")]
    BadLanguages(String),
    #[error("OCR failed: {0}")]
    OcrFailed(String),
    #[error("OCR did not finish within {0:?}")]
    OcrTimeout(Duration),
    #[error("text extraction did not finish within {0:?}")]
    Timeout(Duration),
    #[error("no text found in the document")]
    NoTextFound,
    #[error("the extracted text is over the limit of {limit} bytes")]
    TextTooLarge { limit: usize },
    #[error("text extraction failed: {0}")]
    Internal(String),
    #[error("the PDF has {pages} pages, over the limit of {limit}")]
    TooManyPages { pages: usize, limit: usize },
    #[error("page {page} has over {limit} bytes of content")]
    PageTooLarge { page: u32, limit: usize },
    #[error("page {page} took longer than {limit:?}")]
    PageTimeout { page: u32, limit: Duration },
    #[error("the extraction went over its resource limits: {0}")]
    ResourceLimit(String),
    #[error("the extractor crashed: {0}")]
    Crashed(String),
    /// An error reported by the extractor child process (see `processing::sandbox`).
    #[error("{message}")]
    Reported { code: &'static str, message: String },
}

impl ExtractError {
    /// A stable `snake_case` code for the reason, for storage and API responses.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedType(_) => "unsupported_type",
            Self::Io(_) => "io",
            Self::UnreadablePdf(_) => "unreadable_pdf",
            Self::NoTextLayer(_) => "no_text_layer",
            Self::UnreadableDocx(_) => "unreadable_docx",
            Self::NoOcrEngine => "no_ocr_engine",
            Self::BadLanguages(_) => "bad_ocr_languages",
            Self::OcrFailed(_) => "ocr_failed",
            Self::OcrTimeout(_) => "ocr_timeout",
            Self::Timeout(_) => "extract_timeout",
            Self::NoTextFound => "no_text_found",
            Self::TextTooLarge { .. } => "text_too_large",
            Self::Internal(_) => "internal",
            Self::TooManyPages { .. } => "too_many_pages",
            Self::PageTooLarge { .. } => "page_too_large",
            Self::PageTimeout { .. } => "page_timeout",
            Self::ResourceLimit(_) => "resource_limit",
            Self::Crashed(_) => "extract_crashed",
            Self::Reported { code, .. } => code,
        }
    }

    /// Every code [`ExtractError::code`] gives (but that of `Reported`, which is one of them).
    pub const CODES: [&'static str; 18] = [
        "unsupported_type",
        "io",
        "unreadable_pdf",
        "no_text_layer",
        "unreadable_docx",
        "no_ocr_engine",
        "bad_ocr_languages",
        "ocr_failed",
        "ocr_timeout",
        "extract_timeout",
        "no_text_found",
        "text_too_large",
        "internal",
        "too_many_pages",
        "page_too_large",
        "page_timeout",
        "resource_limit",
        "extract_crashed",
    ];

    /// Rebuilds an error from its code and message (as reported by another process);
    /// an unknown code is `internal`.
    pub fn reported(code: &str, message: String) -> Self {
        let code = Self::CODES
            .iter()
            .copied()
            .find(|c| *c == code)
            .unwrap_or("internal");
        Self::Reported { code, message }
    }

    /// Worth another attempt: the disk, a crashed task. The rest are the file's own.
    pub fn is_transient(&self) -> bool {
        matches!(self.code(), "io" | "internal")
    }
}

/// Where the external programs are and how far extraction may go.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalOcrConfig {
    /// The tesseract binary; `None`: no OCR (images and scanned PDFs fail).
    pub tesseract: Option<PathBuf>,
    /// The pdftoppm binary (poppler-utils), to render scanned PDF pages for OCR;
    /// `None`: scanned PDFs fail with `no_text_layer`.
    pub pdftoppm: Option<PathBuf>,
    /// Tesseract languages, `+`-separated (`"eng"`, `"eng+deu"`).
    pub languages: String,
    /// Budget of one [`extract`] call, all steps together.
    pub timeout: Duration,
    /// Most bytes of text one document may yield.
    pub max_text_bytes: usize,
    /// Most pages of a PDF (more: `too_many_pages`).
    pub max_pages: usize,
    /// Most decompressed content bytes of one PDF page (more: `page_too_large`).
    pub max_page_content_bytes: usize,
    /// Budget of one page: reading its text layer, or rendering and OCR of a scan.
    pub page_timeout: Duration,
}

impl LocalOcrConfig {
    /// Default [`LocalOcrConfig::timeout`].
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
    /// Default [`LocalOcrConfig::max_text_bytes`].
    pub const DEFAULT_MAX_TEXT_BYTES: usize = 16 * 1024 * 1024;
    /// Default [`LocalOcrConfig::max_pages`].
    pub const DEFAULT_MAX_PAGES: usize = 2000;
    /// Default [`LocalOcrConfig::max_page_content_bytes`] (real pages hold KiB).
    pub const DEFAULT_MAX_PAGE_CONTENT_BYTES: usize = 4 * 1024 * 1024;
    /// Default [`LocalOcrConfig::page_timeout`].
    pub const DEFAULT_PAGE_TIMEOUT: Duration = Duration::from_secs(60);

    /// The defaults, with tesseract and pdftoppm looked up on `PATH` (blocking, cheap:
    /// call it once at startup).
    pub fn discover() -> Self {
        Self {
            tesseract: find_tesseract(),
            pdftoppm: find_pdftoppm(),
            languages: "eng".to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
            max_text_bytes: Self::DEFAULT_MAX_TEXT_BYTES,
            max_pages: Self::DEFAULT_MAX_PAGES,
            max_page_content_bytes: Self::DEFAULT_MAX_PAGE_CONTENT_BYTES,
            page_timeout: Self::DEFAULT_PAGE_TIMEOUT,
        }
    }
}

/// The `tesseract` executable on `PATH`, if any.
pub fn find_tesseract() -> Option<PathBuf> {
    find_on_path("tesseract")
}

/// The `pdftoppm` executable on `PATH`, if any.
pub fn find_pdftoppm() -> Option<PathBuf> {
    find_on_path("pdftoppm")
}

/// An executable file `name` in an absolute `PATH` directory (relative entries are
/// skipped: they would depend on the working directory).
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Plain text or Markdown: text read as it is, with no format to parse.
pub fn is_plain_text(detected_type: &str) -> bool {
    matches!(detected_type, "plain_text" | "markdown")
}

/// Extracts the text of the file at `path`, whose type (a
/// [`crate::media::detect::DetectedType`] in `snake_case`) is `detected_type`.
pub async fn extract(
    path: &Path,
    detected_type: &str,
    cfg: &LocalOcrConfig,
) -> Result<Extraction, ExtractError> {
    let started = Instant::now();
    // A huge timeout means "no timeout"; tokio's own far future is 30 years.
    let deadline = started
        .checked_add(cfg.timeout)
        .unwrap_or_else(|| started + Duration::from_secs(30 * 365 * 86_400));
    let result = match detected_type {
        t if is_plain_text(t) => plain_text(path, cfg.max_text_bytes).await,
        "pdf" => pdf(path, cfg, deadline).await,
        "docx" => docx(path, cfg, deadline).await,
        "png" | "jpeg" | "tiff" | "webp" => image(path, cfg, deadline).await,
        other => Err(ExtractError::UnsupportedType(quoted(other))),
    };
    match &result {
        Ok(x) => tracing::debug!(
            detected_type,
            engine = x.engine,
            pages = x.pages.len(),
            bytes = x.text.len(),
            confidence = x.confidence,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "text extracted"
        ),
        Err(e) => tracing::debug!(
            detected_type,
            code = e.code(),
            error = %e,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "no text extracted"
        ),
    }
    result
}

/// The result of an engine, checked: not empty, not too large.
fn finish(
    pages: Vec<String>,
    engine: &'static str,
    confidence: Option<f64>,
    max_text_bytes: usize,
) -> Result<Extraction, ExtractError> {
    let text = pages.join(PAGE_SEPARATOR);
    if text.len() > max_text_bytes {
        return Err(ExtractError::TextTooLarge {
            limit: max_text_bytes,
        });
    }
    if text.trim().is_empty() {
        return Err(ExtractError::NoTextFound);
    }
    Ok(Extraction {
        text,
        pages,
        engine,
        confidence,
    })
}

fn quoted(s: &str) -> String {
    s.chars().take(MAX_QUOTED_CHARS).collect()
}

fn limit_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------
// Plain text

async fn plain_text(path: &Path, max_text_bytes: usize) -> Result<Extraction, ExtractError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(ExtractError::Io)?;
    let mut bytes = Vec::new();
    file.take(limit_u64(max_text_bytes).saturating_add(1))
        .read_to_end(&mut bytes)
        .await
        .map_err(ExtractError::Io)?;
    if bytes.len() > max_text_bytes {
        return Err(ExtractError::TextTooLarge {
            limit: max_text_bytes,
        });
    }
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(&bytes);
    let text = String::from_utf8_lossy(body).into_owned();
    finish(vec![text], ENGINE_PLAIN_TEXT, None, max_text_bytes)
}

// ---------------------------------------------------------------------------------------
// Blocking work with a deadline

/// Runs `work` on the blocking pool until `deadline`. `work` is handed a flag that is set
/// when the deadline passes, to stop early (its result is dropped then anyway).
async fn run_blocking<T, F>(
    deadline: Instant,
    timeout: Duration,
    work: F,
) -> Result<T, ExtractError>
where
    T: Send + 'static,
    F: FnOnce(&AtomicBool) -> Result<T, ExtractError> + Send + 'static,
{
    let cancelled = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancelled);
    let handle = tokio::task::spawn_blocking(move || work(&flag));
    match tokio::time::timeout_at(deadline, handle).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(ExtractError::Internal(format!(
            "extraction task failed: {join}"
        ))),
        Err(_) => {
            cancelled.store(true, Ordering::Relaxed);
            Err(ExtractError::Timeout(timeout))
        }
    }
}

// ---------------------------------------------------------------------------------------
// PDF

/// One page of a PDF as read from its text layer.
#[derive(Debug)]
struct PdfPage {
    text: String,
    /// Longest side of the page's media box, in points, if it could be read.
    max_side_points: Option<f64>,
}

async fn pdf(
    path: &Path,
    cfg: &LocalOcrConfig,
    deadline: Instant,
) -> Result<Extraction, ExtractError> {
    let owned = path.to_owned();
    let max = cfg.max_text_bytes;
    let timeout = cfg.timeout;
    let limits = cfg.clone();
    let pages = run_blocking(deadline, timeout, move |cancelled| {
        pdf_text_layer(&owned, &limits, cancelled)
    })
    .await?;
    if pages.iter().any(|p| !p.text.trim().is_empty()) {
        let texts = pages.into_iter().map(|p| p.text).collect();
        return finish(texts, ENGINE_PDF_TEXT_LAYER, None, max);
    }
    // No text at all: a scan (or blank pages). OCR it if we can.
    let (tesseract, pdftoppm) = match (&cfg.tesseract, &cfg.pdftoppm) {
        (Some(t), Some(p)) => (t, p),
        (None, _) => return Err(ExtractError::NoTextLayer("tesseract is not available")),
        (Some(_), None) => {
            return Err(ExtractError::NoTextLayer(
                "pdftoppm is not available to render the pages",
            ));
        }
    };
    validate_languages(&cfg.languages)?;
    ocr_pdf(path, &pages, tesseract, pdftoppm, cfg, deadline).await
}

/// Loads the PDF and reads the text layer of every page (blocking). Time and memory
/// grow linearly with the pages: the page tree is walked once, and each page's content
/// is bounded ([`LocalOcrConfig::max_page_content_bytes`]) and read one operation at a
/// time rather than parsed whole.
fn pdf_text_layer(
    path: &Path,
    cfg: &LocalOcrConfig,
    cancelled: &AtomicBool,
) -> Result<Vec<PdfPage>, ExtractError> {
    let max_text_bytes = cfg.max_text_bytes;
    let bytes = std::fs::read(path).map_err(ExtractError::Io)?;
    let options = lopdf::LoadOptions {
        max_decompressed_size: Some(PDF_LOAD_MAX_DECOMPRESSED_BYTES),
        ..lopdf::LoadOptions::default()
    };
    let doc = Document::load_mem_with_options(&bytes, options)
        .map_err(|e| ExtractError::UnreadablePdf(e.to_string()))?;
    drop(bytes);
    // lopdf decrypts a document whose user password is empty while loading it; one that
    // is still encrypted needs a password we do not have.
    if doc.is_encrypted() {
        return Err(ExtractError::UnreadablePdf(
            "encrypted, a password is needed".to_owned(),
        ));
    }
    let page_ids = doc.get_pages();
    if page_ids.is_empty() {
        return Err(ExtractError::UnreadablePdf("no pages".to_owned()));
    }
    if page_ids.len() > cfg.max_pages {
        return Err(ExtractError::TooManyPages {
            pages: page_ids.len(),
            limit: cfg.max_pages,
        });
    }
    let mut pages = Vec::with_capacity(page_ids.len());
    let mut total = 0usize;
    let mut problems = PageProblems::default();
    for (&number, &page_id) in &page_ids {
        if cancelled.load(Ordering::Relaxed) {
            return Err(ExtractError::Timeout(cfg.timeout));
        }
        let started = std::time::Instant::now();
        let mut text = page_text(&doc, page_id, number, cfg, &mut problems)?;
        if started.elapsed() > cfg.page_timeout {
            return Err(ExtractError::PageTimeout {
                page: number,
                limit: cfg.page_timeout,
            });
        }
        text.truncate(text.trim_end().len());
        total = total
            .saturating_add(text.len())
            .saturating_add(PAGE_SEPARATOR.len());
        if total > max_text_bytes.saturating_add(PAGE_SEPARATOR.len()) {
            return Err(ExtractError::TextTooLarge {
                limit: max_text_bytes,
            });
        }
        pages.push(PdfPage {
            text,
            max_side_points: page_max_side(&doc, page_id),
        });
    }
    if let Some(error) = problems.first {
        tracing::warn!(
            failed_chunks = problems.count,
            %error,
            "part of a PDF text layer could not be decoded"
        );
    }
    Ok(pages)
}

/// Parts of a text layer that could not be decoded (a font, a string): skipped, counted.
#[derive(Debug, Default)]
struct PageProblems {
    count: usize,
    first: Option<String>,
}

impl PageProblems {
    fn note(&mut self, error: impl std::fmt::Display) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(error.to_string());
        }
    }
}

/// The text of one page: its content streams (at most
/// [`LocalOcrConfig::max_page_content_bytes`] decompressed) read one operation at a time,
/// each string shown in the font's encoding (as lopdf's `extract_text` does, without
/// holding every operation of the page). One undecodable font or string does not lose
/// the rest of the page.
fn page_text(
    doc: &Document,
    page_id: ObjectId,
    number: u32,
    cfg: &LocalOcrConfig,
    problems: &mut PageProblems,
) -> Result<String, ExtractError> {
    let limit = cfg.max_page_content_bytes;
    let content = match doc.get_page_content_with_limit(page_id, limit) {
        Ok(content) => content,
        Err(lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded { .. })) => {
            return Err(ExtractError::PageTooLarge {
                page: number,
                limit,
            });
        }
        Err(e) => {
            problems.note(e);
            return Ok(String::new());
        }
    };
    let mut encodings: std::collections::BTreeMap<Vec<u8>, Encoding<'_>> =
        std::collections::BTreeMap::new();
    match doc.get_page_fonts(page_id) {
        Ok(fonts) => {
            for (name, font) in fonts {
                match font.get_font_encoding_with_limit(doc, limit) {
                    Ok(encoding) => {
                        encodings.insert(name, encoding);
                    }
                    Err(e) => problems.note(e),
                }
            }
        }
        Err(e) => problems.note(e),
    }
    let mut text = String::new();
    let mut encoding: Option<&Encoding<'_>> = None;
    for operation in Content::decode_iter(&content) {
        let operation = match operation {
            Ok(op) => op,
            Err(e) => {
                problems.note(e);
                break;
            }
        };
        match operation.operator.as_str() {
            "Tf" => {
                encoding = operation
                    .operands
                    .first()
                    .and_then(|font| font.as_name().ok())
                    .and_then(|font| encodings.get(font));
            }
            "Tj" | "TJ" => show_text(&mut text, encoding, &operation.operands, problems),
            // `'` is `T* Tj`; `"` is `aw ac string "`: next line, then the string.
            "'" | "\"" => {
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                let string = if operation.operator == "'" {
                    operation.operands.first()
                } else {
                    operation.operands.get(2)
                };
                show_text(&mut text, encoding, string, problems);
            }
            "T*" | "ET" if !text.is_empty() && !text.ends_with('\n') => text.push('\n'),
            _ => {}
        }
        if text.len() > cfg.max_text_bytes {
            break;
        }
    }
    Ok(text)
}

/// Appends the strings of a text-showing operation's operands (an array's large negative
/// kerning is a space between words).
fn show_text<'a, I>(
    text: &mut String,
    encoding: Option<&Encoding<'_>>,
    operands: I,
    problems: &mut PageProblems,
) where
    I: IntoIterator<Item = &'a Object>,
{
    let Some(encoding) = encoding else {
        return;
    };
    for operand in operands {
        match operand {
            Object::String(bytes, _) => match Document::decode_text(encoding, bytes) {
                Ok(s) => text.push_str(&s),
                Err(e) => problems.note(e),
            },
            Object::Array(items) => {
                show_text(text, Some(encoding), items, problems);
                text.push(' ');
            }
            Object::Integer(i) if *i < -100 => text.push(' '),
            _ => {}
        }
    }
}

/// The longest side of a page's `MediaBox` (inherited from the page tree), in points.
fn page_max_side(doc: &Document, page_id: ObjectId) -> Option<f64> {
    let mut id = page_id;
    for _ in 0..MAX_PAGE_TREE_DEPTH {
        let node = doc.get_dictionary(id).ok()?;
        if let Ok(mbox) = node.get_deref(b"MediaBox", doc) {
            let mut coords = [0f64; 4];
            let items = mbox.as_array().ok()?;
            if items.len() != 4 {
                return None;
            }
            for (slot, item) in coords.iter_mut().zip(items) {
                let (_, value) = doc.dereference(item).ok()?;
                *slot = f64::from(value.as_float().ok()?);
            }
            let side = (coords[2] - coords[0])
                .abs()
                .max((coords[3] - coords[1]).abs());
            return (side.is_finite() && side > 0.0).then_some(side);
        }
        id = node.get(b"Parent").ok()?.as_reference().ok()?;
    }
    None
}

/// Render resolution for a page whose longest side is `max_side_points`.
fn render_dpi(max_side_points: Option<f64>) -> u32 {
    let dpi = match max_side_points {
        Some(side) => RENDER_DPI.min(MAX_RENDER_SIDE_PIXELS * 72.0 / side),
        None => RENDER_DPI,
    };
    // In range by construction (1..=300); the cast cannot truncate meaningfully.
    dpi.clamp(1.0, RENDER_DPI).round() as u32
}

/// Renders each page with pdftoppm (one at a time, so one page image is on disk at once)
/// and reads it with tesseract.
async fn ocr_pdf(
    path: &Path,
    pages: &[PdfPage],
    tesseract: &Path,
    pdftoppm: &Path,
    cfg: &LocalOcrConfig,
    deadline: Instant,
) -> Result<Extraction, ExtractError> {
    let dir = tempfile::Builder::new()
        .prefix("alta-ocr-")
        .tempdir()
        .map_err(ExtractError::Io)?;
    let input = safe_arg(path);
    let mut texts = Vec::with_capacity(pages.len());
    let mut confidence = Confidence::default();
    let mut total = 0usize;
    for (index, page) in pages.iter().enumerate() {
        let number = (index + 1).to_string();
        let prefix = dir.path().join(format!("page-{number}"));
        let mut render = Command::new(pdftoppm);
        render
            .arg("-r")
            .arg(render_dpi(page.max_side_points).to_string())
            .arg("-png")
            .arg("-singlefile")
            .arg("-f")
            .arg(&number)
            .arg("-l")
            .arg(&number)
            .arg(&*input)
            .arg(&prefix);
        // Each page has its own budget within the document's.
        let page_number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let page_deadline = Instant::now()
            .checked_add(cfg.page_timeout)
            .map_or(deadline, |d| d.min(deadline));
        let timed_out = |now: Instant| {
            if now >= deadline {
                ExtractError::OcrTimeout(cfg.timeout)
            } else {
                ExtractError::PageTimeout {
                    page: page_number,
                    limit: cfg.page_timeout,
                }
            }
        };
        run_tool(render, page_deadline, PDFTOPPM_STDOUT_BYTES)
            .await
            .map_err(|e| match e {
                ToolError::Timeout => timed_out(Instant::now()),
                ToolError::Killed(signal) => ExtractError::ResourceLimit(format!(
                    "pdftoppm, page {number}: stopped by signal {signal}"
                )),
                other => ExtractError::OcrFailed(format!("pdftoppm, page {number}: {other}")),
            })?;
        let image = prefix.with_extension("png");
        let ocr = tesseract_tsv(tesseract, &image, cfg, page_deadline)
            .await
            .map_err(|e| match e {
                ExtractError::OcrTimeout(_) => timed_out(Instant::now()),
                other => other,
            });
        // Best effort: the directory goes anyway when `dir` is dropped.
        let _ = tokio::fs::remove_file(&image).await;
        let ocr = ocr?;
        confidence.add(&ocr.confidence);
        let text = ocr.pages.join(PAGE_SEPARATOR);
        total = total
            .saturating_add(text.len())
            .saturating_add(PAGE_SEPARATOR.len());
        if total > cfg.max_text_bytes.saturating_add(PAGE_SEPARATOR.len()) {
            return Err(ExtractError::TextTooLarge {
                limit: cfg.max_text_bytes,
            });
        }
        texts.push(text);
    }
    finish(
        texts,
        ENGINE_TESSERACT,
        confidence.mean(),
        cfg.max_text_bytes,
    )
}

// ---------------------------------------------------------------------------------------
// DOCX

async fn docx(
    path: &Path,
    cfg: &LocalOcrConfig,
    deadline: Instant,
) -> Result<Extraction, ExtractError> {
    let owned = path.to_owned();
    let max = cfg.max_text_bytes;
    let text = run_blocking(deadline, cfg.timeout, move |_| docx_text(&owned, max)).await?;
    finish(vec![text], ENGINE_DOCX, None, max)
}

/// Reads `word/document.xml` out of the DOCX and extracts its text (blocking).
fn docx_text(path: &Path, max_text_bytes: usize) -> Result<String, ExtractError> {
    let file = File::open(path).map_err(ExtractError::Io)?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| ExtractError::UnreadableDocx(e.to_string()))?;
    // Upload detection matches this name case-insensitively, so do the same.
    let index = archive
        .file_names_raw()
        .position(|n| n.eq_ignore_ascii_case(b"word/document.xml"))
        .ok_or_else(|| ExtractError::UnreadableDocx("no word/document.xml".to_owned()))?;
    let name = "word/document.xml";
    let entry = archive
        .by_index(index)
        .map_err(|e| ExtractError::UnreadableDocx(format!("{name}: {e}")))?;
    let mut xml = Vec::new();
    entry
        .take(MAX_DOCX_XML_BYTES.saturating_add(1))
        .read_to_end(&mut xml)
        .map_err(|e| ExtractError::UnreadableDocx(format!("{name}: {e}")))?;
    if limit_u64(xml.len()) > MAX_DOCX_XML_BYTES {
        return Err(ExtractError::UnreadableDocx(format!(
            "{name} is over {MAX_DOCX_XML_BYTES} bytes"
        )));
    }
    let xml = std::str::from_utf8(&xml)
        .map_err(|e| ExtractError::UnreadableDocx(format!("{name} is not UTF-8: {e}")))?;
    wml_text(xml, max_text_bytes)
}

/// The WordprocessingML elements that matter for text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wml {
    /// `w:t`, a run of text.
    Text,
    /// `w:tab` (a tab character in a run, or a tab stop inside `w:tabs`) and `w:ptab`.
    Tab,
    /// `w:tabs`, the tab stops of a paragraph (no text).
    TabStops,
    /// `w:br` and `w:cr`.
    Break,
    /// `w:p`, a paragraph.
    Paragraph,
    Other,
}

/// What a resolved element name is. Elements in the WordprocessingML namespace count,
/// and so do `w:` elements whose prefix is not declared (hand-made documents).
fn wml(ns: &ResolveResult<'_>, name: QName<'_>) -> Wml {
    let is_wml = match ns {
        ResolveResult::Bound(Namespace(uri)) => WML_NAMESPACES.contains(uri),
        ResolveResult::Unknown(prefix) => prefix.as_slice() == b"w",
        ResolveResult::Unbound => false,
    };
    if !is_wml {
        return Wml::Other;
    }
    match name.local_name().as_ref() {
        b"t" => Wml::Text,
        b"tab" | b"ptab" => Wml::Tab,
        b"tabs" => Wml::TabStops,
        b"br" | b"cr" => Wml::Break,
        b"p" => Wml::Paragraph,
        _ => Wml::Other,
    }
}

/// The text of a `word/document.xml`: `w:t` text, `w:tab` → tab, `w:br`/`w:cr` → line
/// break, end of `w:p` → line break. Deleted text (`w:delText`) and field codes
/// (`w:instrText`) are not text. Trailing line breaks are dropped.
fn wml_text(xml: &str, max_text_bytes: usize) -> Result<String, ExtractError> {
    let mut reader = NsReader::from_str(xml);
    let mut out = String::new();
    let mut text_depth = 0usize;
    let mut tab_stops_depth = 0usize;
    loop {
        let position = reader.buffer_position();
        let (ns, event) = reader.read_resolved_event().map_err(|e| {
            ExtractError::UnreadableDocx(format!("word/document.xml near byte {position}: {e}"))
        })?;
        match event {
            Event::Start(e) => match wml(&ns, e.name()) {
                Wml::Text => text_depth += 1,
                Wml::TabStops => tab_stops_depth += 1,
                Wml::Tab if tab_stops_depth == 0 => out.push('\t'),
                Wml::Break => out.push('\n'),
                _ => {}
            },
            Event::Empty(e) => match wml(&ns, e.name()) {
                Wml::Tab if tab_stops_depth == 0 => out.push('\t'),
                Wml::Break | Wml::Paragraph => out.push('\n'),
                _ => {}
            },
            Event::End(e) => match wml(&ns, e.name()) {
                Wml::Text => text_depth = text_depth.saturating_sub(1),
                Wml::TabStops => tab_stops_depth = tab_stops_depth.saturating_sub(1),
                Wml::Paragraph => out.push('\n'),
                _ => {}
            },
            Event::Text(t) if text_depth > 0 => {
                let s = t.unescape().map_err(|e| {
                    ExtractError::UnreadableDocx(format!(
                        "word/document.xml near byte {position}: {e}"
                    ))
                })?;
                out.push_str(&s);
            }
            Event::CData(c) if text_depth > 0 => out.push_str(&String::from_utf8_lossy(&c)),
            Event::Eof => break,
            _ => {}
        }
        if out.len() > max_text_bytes {
            return Err(ExtractError::TextTooLarge {
                limit: max_text_bytes,
            });
        }
    }
    out.truncate(out.trim_end_matches(['\n', '\r']).len());
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Images (tesseract)

async fn image(
    path: &Path,
    cfg: &LocalOcrConfig,
    deadline: Instant,
) -> Result<Extraction, ExtractError> {
    let Some(tesseract) = &cfg.tesseract else {
        return Err(ExtractError::NoOcrEngine);
    };
    validate_languages(&cfg.languages)?;
    let ocr = tesseract_tsv(tesseract, path, cfg, deadline).await?;
    finish(
        ocr.pages,
        ENGINE_TESSERACT,
        ocr.confidence.mean(),
        cfg.max_text_bytes,
    )
}

/// Tesseract language names: `eng`, `chi_sim`, `eng+deu`, `script/Latin`. Nothing that
/// could be an option or leave the tessdata directory.
fn validate_languages(languages: &str) -> Result<(), ExtractError> {
    let ok = !languages.is_empty()
        && languages.len() <= 200
        && languages.split('+').all(|lang| {
            lang.starts_with(|c: char| c.is_ascii_alphanumeric())
                && lang
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/'))
        });
    if ok {
        Ok(())
    } else {
        Err(ExtractError::BadLanguages(quoted(languages)))
    }
}

/// A path that a program cannot take for an option.
fn safe_arg(path: &Path) -> Cow<'_, Path> {
    if path.is_relative() && path.as_os_str().as_encoded_bytes().starts_with(b"-") {
        Cow::Owned(Path::new(".").join(path))
    } else {
        Cow::Borrowed(path)
    }
}

/// Running sum of tesseract word confidences (0..=100).
#[derive(Debug, Default, Clone, PartialEq)]
struct Confidence {
    sum: f64,
    words: usize,
}

impl Confidence {
    fn add(&mut self, other: &Confidence) {
        self.sum += other.sum;
        self.words += other.words;
    }

    /// The mean, scaled to 0..=1; `None` without rated words.
    fn mean(&self) -> Option<f64> {
        (self.words > 0).then(|| (self.sum / self.words as f64 / 100.0).clamp(0.0, 1.0))
    }
}

/// What tesseract read from one image file.
#[derive(Debug, Default, PartialEq)]
struct OcrOutput {
    /// One entry per image page (multi-page TIFF), blank pages included.
    pages: Vec<String>,
    confidence: Confidence,
}

/// Runs `tesseract <image> stdout -l <languages> tsv` once: the TSV gives the words with
/// their layout (to rebuild lines and paragraphs) and their confidences.
async fn tesseract_tsv(
    tesseract: &Path,
    image: &Path,
    cfg: &LocalOcrConfig,
    deadline: Instant,
) -> Result<OcrOutput, ExtractError> {
    let mut cmd = Command::new(tesseract);
    cmd.arg(&*safe_arg(image))
        .arg("stdout")
        .arg("-l")
        .arg(&cfg.languages)
        .arg("tsv");
    let stdout_limit = cfg
        .max_text_bytes
        .saturating_mul(TSV_BYTES_PER_TEXT_BYTE)
        .saturating_add(1024 * 1024);
    let stdout = run_tool(cmd, deadline, stdout_limit)
        .await
        .map_err(|e| match e {
            ToolError::Spawn(e) if e.kind() == io::ErrorKind::NotFound => ExtractError::NoOcrEngine,
            ToolError::Timeout => ExtractError::OcrTimeout(cfg.timeout),
            ToolError::Killed(signal) => {
                ExtractError::ResourceLimit(format!("tesseract: stopped by signal {signal}"))
            }
            ToolError::StdoutTooLarge => ExtractError::TextTooLarge {
                limit: cfg.max_text_bytes,
            },
            other => ExtractError::OcrFailed(format!("tesseract: {other}")),
        })?;
    let ocr = parse_tsv(&String::from_utf8_lossy(&stdout));
    let total: usize = ocr.pages.iter().map(String::len).sum();
    if total > cfg.max_text_bytes {
        return Err(ExtractError::TextTooLarge {
            limit: cfg.max_text_bytes,
        });
    }
    Ok(ocr)
}

/// Rebuilds text from tesseract TSV rows (`level page_num block_num par_num line_num
/// word_num left top width height conf text`): words of a line joined by spaces, lines
/// by `\n`, paragraphs and blocks by a blank line. Confidences of `-1` (no rating) are
/// left out of the mean.
fn parse_tsv(tsv: &str) -> OcrOutput {
    let mut out = OcrOutput::default();
    // (page, block, paragraph, line) of the previous word.
    let mut last: Option<(usize, u32, u32, u32)> = None;
    for row in tsv.lines() {
        let cols: Vec<&str> = row.split('\t').collect();
        let &[
            level,
            page,
            block,
            par,
            line,
            _word,
            _l,
            _t,
            _w,
            _h,
            conf,
            text,
        ] = cols.as_slice()
        else {
            continue;
        };
        // Pages are numbered from 1; the header row does not parse.
        let Ok(page) = page.parse::<usize>() else {
            continue;
        };
        let Some(index) = page.checked_sub(1) else {
            continue;
        };
        // Every level (page, block, ..) names its page: blank pages are kept. A page
        // number far past the rows seen would be a broken output; bound the padding.
        if index >= out.pages.len() {
            if index > out.pages.len().saturating_add(10_000) {
                continue;
            }
            out.pages.resize(index + 1, String::new());
        }
        let word = text.trim();
        if level != "5" || word.is_empty() {
            continue;
        }
        let (Ok(block), Ok(par), Ok(line)) = (
            block.parse::<u32>(),
            par.parse::<u32>(),
            line.parse::<u32>(),
        ) else {
            continue;
        };
        if let Ok(conf) = conf.parse::<f64>()
            && conf.is_finite()
            && conf >= 0.0
        {
            out.confidence.sum += conf.min(100.0);
            out.confidence.words += 1;
        }
        let Some(page_text) = out.pages.get_mut(index) else {
            continue;
        };
        match last {
            Some((p, b, pa, _)) if p == index && (b, pa) != (block, par) => {
                page_text.push_str("\n\n");
            }
            Some((p, _, _, l)) if p == index && l != line => page_text.push('\n'),
            Some((p, ..)) if p == index => page_text.push(' '),
            _ => {}
        }
        page_text.push_str(word);
        last = Some((index, block, par, line));
    }
    for page in &mut out.pages {
        page.truncate(page.trim_end().len());
    }
    out
}

// ---------------------------------------------------------------------------------------
// External programs

#[derive(Debug, thiserror::Error)]
enum ToolError {
    #[error("cannot start: {0}")]
    Spawn(#[source] io::Error),
    #[error("did not finish in time")]
    Timeout,
    #[error("output over the limit")]
    StdoutTooLarge,
    #[error("{0}")]
    Io(#[source] io::Error),
    #[error("exited with {status}: {stderr}")]
    Failed { status: String, stderr: String },
    /// Killed by a signal: a resource limit it inherited (memory, CPU) or an abort.
    #[error("stopped by signal {0}")]
    Killed(i32),
}

/// Runs `cmd` (no stdin) until `deadline`, returning its stdout (at most `stdout_limit`
/// bytes). The child is killed on timeout, on an output over the limit, and if this
/// future is dropped.
async fn run_tool(
    mut cmd: Command,
    deadline: Instant,
    stdout_limit: usize,
) -> Result<Vec<u8>, ToolError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(ToolError::Spawn)?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ToolError::Io(io::Error::other("child pipes missing")));
    };
    let run = async {
        let (out, err) = tokio::try_join!(read_capped(stdout, stdout_limit), async {
            read_tail(stderr, STDERR_KEEP_BYTES)
                .await
                .map_err(ToolError::Io)
        },)?;
        let status = child.wait().await.map_err(ToolError::Io)?;
        Ok::<_, ToolError>((status, out, err))
    };
    let outcome = tokio::time::timeout_at(deadline, run).await;
    let (status, out, err) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            let _ = child.kill().await;
            return Err(e);
        }
        Err(_) => {
            let _ = child.kill().await;
            return Err(ToolError::Timeout);
        }
    };
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return Err(ToolError::Killed(signal));
    }
    if status.success() {
        Ok(out)
    } else {
        Err(ToolError::Failed {
            status: status.to_string(),
            stderr: stderr_tail(&err),
        })
    }
}

/// Reads all of `reader`, failing once it is over `limit` bytes.
async fn read_capped<R: AsyncRead + Unpin>(reader: R, limit: usize) -> Result<Vec<u8>, ToolError> {
    let mut buf = Vec::new();
    reader
        .take(limit_u64(limit).saturating_add(1))
        .read_to_end(&mut buf)
        .await
        .map_err(ToolError::Io)?;
    if buf.len() > limit {
        return Err(ToolError::StdoutTooLarge);
    }
    Ok(buf)
}

/// Reads all of `reader` (so the writer never blocks), keeping the last `keep` bytes.
async fn read_tail<R: AsyncRead + Unpin>(mut reader: R, keep: usize) -> io::Result<Vec<u8>> {
    let mut tail = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = reader.read(&mut chunk).await?;
        let Some(read) = chunk.get(..n).filter(|r| !r.is_empty()) else {
            return Ok(tail);
        };
        tail.extend_from_slice(read);
        if tail.len() > keep {
            tail.drain(..tail.len() - keep);
        }
    }
}

/// The last [`STDERR_TAIL_CHARS`] characters of a program's stderr, on one line.
fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let skip = text.chars().count().saturating_sub(STDERR_TAIL_CHARS);
    let tail: String = text.chars().skip(skip).collect();
    let tail = tail.split_whitespace().collect::<Vec<_>>().join(" ");
    if tail.is_empty() {
        "no message".to_owned()
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write;

    use lopdf::content::{Content, Operation};
    use lopdf::{Object, Stream, dictionary};

    const CT: &[u8] = br#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;

    fn cfg(tesseract: Option<PathBuf>, pdftoppm: Option<PathBuf>) -> LocalOcrConfig {
        LocalOcrConfig {
            tesseract,
            pdftoppm,
            languages: "eng".to_owned(),
            timeout: Duration::from_secs(120),
            max_text_bytes: 1024 * 1024,
            max_pages: 100,
            max_page_content_bytes: 1024 * 1024,
            page_timeout: Duration::from_secs(60),
        }
    }

    fn no_tools() -> LocalOcrConfig {
        cfg(None, None)
    }

    fn write_tmp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Builds a PDF (lopdf README style) from page content streams, with font F1 =
    /// Helvetica and, optionally, image XObjects in the shared resources.
    fn pdf_with(pages: Vec<Content>, image: Option<Stream>) -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "Type1",
            "BaseFont" => "Helvetica",
        });
        let mut resources = dictionary! {
            "Font" => dictionary! { "F1" => font_id },
        };
        if let Some(image) = image {
            let image_id = doc.add_object(image);
            resources.set("XObject", dictionary! { "Im1" => image_id });
        }
        let resources_id = doc.add_object(resources);
        let mut kids: Vec<Object> = Vec::new();
        for content in pages {
            let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
            let page_id = doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "Contents" => content_id,
            });
            kids.push(page_id.into());
        }
        let count = i64::try_from(kids.len()).unwrap();
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages",
                "Kids" => kids,
                "Count" => count,
                "Resources" => resources_id,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            }),
        );
        let catalog_id = doc.add_object(dictionary! {
            "Type" => "Catalog",
            "Pages" => pages_id,
        });
        doc.trailer.set("Root", catalog_id);
        doc.compress();
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        bytes
    }

    fn text_page(lines: &[&str]) -> Content {
        let mut operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 14.into()]),
            Operation::new("Td", vec![60.into(), 700.into()]),
            Operation::new("TL", vec![20.into()]),
        ];
        for line in lines {
            operations.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
            operations.push(Operation::new("T*", vec![]));
        }
        operations.push(Operation::new("ET", vec![]));
        Content { operations }
    }

    fn text_pdf(pages: &[&[&str]]) -> Vec<u8> {
        pdf_with(pages.iter().map(|lines| text_page(lines)).collect(), None)
    }

    fn blank_pdf(pages: usize) -> Vec<u8> {
        pdf_with(
            (0..pages).map(|_| Content { operations: vec![] }).collect(),
            None,
        )
    }

    fn docx_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            zip.start_file(*name, options).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn docx(body: &str) -> Vec<u8> {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><w:body>{body}<w:sectPr/></w:body></w:document>"#
        );
        docx_with(&[
            ("[Content_Types].xml", CT),
            ("word/document.xml", xml.as_bytes()),
        ])
    }

    /// Renders page 1 of `pdf` with pdftoppm; `gray` gives a PGM, else a PNG.
    fn render(pdftoppm: &Path, pdf: &Path, out_prefix: &Path, dpi: u32, gray: bool) -> PathBuf {
        let status = std::process::Command::new(pdftoppm)
            .arg("-r")
            .arg(dpi.to_string())
            .arg(if gray { "-gray" } else { "-png" })
            .args(["-singlefile", "-f", "1", "-l", "1"])
            .arg(pdf)
            .arg(out_prefix)
            .status()
            .unwrap();
        assert!(status.success(), "pdftoppm failed: {status}");
        out_prefix.with_extension(if gray { "pgm" } else { "png" })
    }

    /// A "scanned" PDF: one page holding only an image of rendered text.
    fn scanned_pdf(pdftoppm: &Path, dir: &tempfile::TempDir, lines: &[&str]) -> Vec<u8> {
        let source = write_tmp(dir, "source.pdf", &text_pdf(&[lines]));
        let pgm = std::fs::read(render(
            pdftoppm,
            &source,
            &dir.path().join("scan"),
            150,
            true,
        ))
        .unwrap();
        // Binary PGM: "P5" width height maxval, each followed by one whitespace byte.
        let mut fields = Vec::new();
        let mut at = 0;
        while fields.len() < 4 {
            while pgm[at].is_ascii_whitespace() {
                at += 1;
            }
            let start = at;
            while !pgm[at].is_ascii_whitespace() {
                at += 1;
            }
            fields.push(std::str::from_utf8(&pgm[start..at]).unwrap().to_owned());
        }
        assert_eq!(fields[0], "P5");
        let width: i64 = fields[1].parse().unwrap();
        let height: i64 = fields[2].parse().unwrap();
        let pixels = pgm[at + 1..].to_vec();
        assert_eq!(pixels.len() as i64, width * height);
        let image = Stream::new(
            dictionary! {
                "Type" => "XObject",
                "Subtype" => "Image",
                "Width" => width,
                "Height" => height,
                "ColorSpace" => "DeviceGray",
                "BitsPerComponent" => 8,
            },
            pixels,
        );
        let page = Content {
            operations: vec![
                Operation::new("q", vec![]),
                Operation::new(
                    "cm",
                    vec![
                        595.into(),
                        0.into(),
                        0.into(),
                        842.into(),
                        0.into(),
                        0.into(),
                    ],
                ),
                Operation::new("Do", vec!["Im1".into()]),
                Operation::new("Q", vec![]),
            ],
        };
        pdf_with(vec![page], Some(image))
    }

    async fn code_of(path: &Path, detected_type: &str, cfg: &LocalOcrConfig) -> &'static str {
        match extract(path, detected_type, cfg).await {
            Ok(x) => panic!("expected an error for {detected_type}, got {x:?}"),
            Err(e) => e.code(),
        }
    }

    #[tokio::test]
    async fn pdf_text_layer_per_page() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_tmp(
            &dir,
            "two.pdf",
            &text_pdf(&[
                &["Invoice number 4711", "total 99.50 EUR"],
                &["Second page here"],
            ]),
        );
        let x = extract(&path, "pdf", &no_tools()).await.unwrap();
        assert_eq!(x.engine, "pdf_text_layer");
        assert_eq!(x.confidence, None);
        assert_eq!(x.pages.len(), 2);
        assert!(x.pages[0].contains("Invoice number 4711"), "{:?}", x.pages);
        assert!(x.pages[0].contains("total 99.50 EUR"), "{:?}", x.pages);
        assert!(!x.pages[0].contains("Second"), "{:?}", x.pages);
        assert!(x.pages[1].contains("Second page here"), "{:?}", x.pages);
        assert!(!x.pages[1].contains("Invoice"), "{:?}", x.pages);
        assert_eq!(x.text, x.pages.join(PAGE_SEPARATOR));
    }

    #[tokio::test]
    async fn pdf_without_text_and_without_ocr_is_no_text_layer() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_tmp(&dir, "blank.pdf", &blank_pdf(2));
        assert_eq!(code_of(&path, "pdf", &no_tools()).await, "no_text_layer");
        // tesseract without pdftoppm cannot read a scan either.
        let only_tesseract = cfg(Some(PathBuf::from("/nonexistent/tesseract")), None);
        assert_eq!(
            code_of(&path, "pdf", &only_tesseract).await,
            "no_text_layer"
        );
    }

    #[tokio::test]
    async fn scanned_pdf_is_read_by_ocr_when_the_tools_exist() {
        let dir = tempfile::tempdir().unwrap();
        let config = cfg(find_tesseract(), find_pdftoppm());
        match (&config.tesseract, &config.pdftoppm) {
            (Some(_), Some(pdftoppm)) => {
                let path = write_tmp(
                    &dir,
                    "scan.pdf",
                    &scanned_pdf(pdftoppm, &dir, &["Invoice number 4711", "Scanned receipt"]),
                );
                // The fixture has no text layer of its own.
                assert_eq!(code_of(&path, "pdf", &no_tools()).await, "no_text_layer");
                let x = extract(&path, "pdf", &config).await.unwrap();
                assert_eq!(x.engine, "tesseract");
                assert_eq!(x.pages.len(), 1);
                let lower = x.text.to_lowercase();
                for word in ["invoice", "4711", "scanned", "receipt"] {
                    assert!(lower.contains(word), "{word:?} not in {:?}", x.text);
                }
                let confidence = x.confidence.unwrap();
                assert!(confidence > 0.5 && confidence <= 1.0, "{confidence}");
            }
            _ => {
                let path = write_tmp(&dir, "blank.pdf", &blank_pdf(1));
                assert_eq!(code_of(&path, "pdf", &config).await, "no_text_layer");
            }
        }
    }

    #[tokio::test]
    async fn a_page_over_the_content_cap_and_a_pdf_over_the_page_cap_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        // 1.2 MB of nested `q` against the 1 MiB cap of `no_tools()`.
        let bomb = Content {
            operations: (0..600_000).map(|_| Operation::new("q", vec![])).collect(),
        };
        let path = write_tmp(
            &dir,
            "bomb.pdf",
            &pdf_with(vec![text_page(&["Fine page"]), bomb], None),
        );
        match extract(&path, "pdf", &no_tools()).await {
            Err(e @ ExtractError::PageTooLarge { page: 2, .. }) => {
                assert_eq!(e.code(), "page_too_large")
            }
            other => panic!("expected page_too_large on page 2, got {other:?}"),
        }
        // Under a higher cap the page is read (one operation at a time) and the text of
        // the other page comes out.
        let mut roomy = no_tools();
        roomy.max_page_content_bytes = 8 * 1024 * 1024;
        let x = extract(&path, "pdf", &roomy).await.unwrap();
        assert_eq!(x.pages, vec!["Fine page".to_owned(), String::new()]);

        let many = write_tmp(&dir, "many.pdf", &blank_pdf(101));
        assert_eq!(code_of(&many, "pdf", &no_tools()).await, "too_many_pages");
        let enough = write_tmp(&dir, "enough.pdf", &blank_pdf(100));
        assert_eq!(code_of(&enough, "pdf", &no_tools()).await, "no_text_layer");
    }

    #[tokio::test]
    async fn text_operators_of_every_kind_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let page = Content {
            operations: vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
                Operation::new(
                    "TJ",
                    vec![Object::Array(vec![
                        Object::string_literal("Hel"),
                        Object::Integer(-20),
                        Object::string_literal("lo"),
                        Object::Integer(-300),
                        Object::string_literal("world"),
                    ])],
                ),
                Operation::new("'", vec![Object::string_literal("next line")]),
                Operation::new(
                    "\"",
                    vec![1.into(), 2.into(), Object::string_literal("third")],
                ),
                Operation::new("ET", vec![]),
            ],
        };
        let path = write_tmp(&dir, "ops.pdf", &pdf_with(vec![page], None));
        let x = extract(&path, "pdf", &no_tools()).await.unwrap();
        assert_eq!(x.pages, vec!["Hello world \nnext line\nthird".to_owned()]);
    }

    #[tokio::test]
    async fn corrupt_pdf_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = write_tmp(
            &dir,
            "garbage.pdf",
            b"%PDF-1.7\nthis is not a PDF at all\n%%EOF\n",
        );
        assert_eq!(
            code_of(&garbage, "pdf", &no_tools()).await,
            "unreadable_pdf"
        );
        let noise = write_tmp(&dir, "noise.pdf", &[0x42u8; 500]);
        assert_eq!(code_of(&noise, "pdf", &no_tools()).await, "unreadable_pdf");
    }

    fn encrypted_pdf(user_password: &str) -> Vec<u8> {
        let mut doc = Document::load_mem(&text_pdf(&[&["Secret text inside"]])).unwrap();
        // Encryption keys derive from the file identifier.
        let id = Object::String(
            b"0123456789abcdef".to_vec(),
            lopdf::StringFormat::Hexadecimal,
        );
        doc.trailer.set("ID", vec![id.clone(), id]);
        let state = lopdf::EncryptionState::try_from(lopdf::EncryptionVersion::V2 {
            document: &doc,
            owner_password: "owner",
            user_password,
            key_length: 128,
            permissions: lopdf::Permissions::all(),
        })
        .unwrap();
        doc.encrypt(&state).unwrap();
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        bytes
    }

    #[tokio::test]
    async fn encrypted_pdf_needs_a_password_unless_it_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let locked = write_tmp(&dir, "locked.pdf", &encrypted_pdf("secret"));
        assert_eq!(code_of(&locked, "pdf", &no_tools()).await, "unreadable_pdf");
        let open = write_tmp(&dir, "open.pdf", &encrypted_pdf(""));
        let x = extract(&open, "pdf", &no_tools()).await.unwrap();
        assert!(x.text.contains("Secret text inside"), "{:?}", x.text);
    }

    #[tokio::test]
    async fn docx_paragraphs_tabs_and_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let body = concat!(
            // The tab stop in the paragraph properties is not text.
            r#"<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>"#,
            r#"<w:r><w:t>Name</w:t></w:r><w:r><w:tab/><w:t xml:space="preserve">Tom &amp; Jerry</w:t></w:r></w:p>"#,
            r#"<w:p><w:r><w:t>Second</w:t><w:br/><w:t>paragraph</w:t></w:r>"#,
            r#"<w:del><w:r><w:delText>deleted</w:delText></w:r></w:del></w:p>"#,
        );
        let path = write_tmp(&dir, "doc.docx", &docx(body));
        let x = extract(&path, "docx", &no_tools()).await.unwrap();
        assert_eq!(x.engine, "docx");
        assert_eq!(x.text, "Name\tTom & Jerry\nSecond\nparagraph");
        assert_eq!(x.pages, vec![x.text.clone()]);
        assert_eq!(x.confidence, None);
    }

    #[test]
    fn wml_without_namespace_declaration_still_reads() {
        let xml = "<w:document><w:body><w:p><w:r><w:t>Hello</w:t></w:r></w:p><w:p/><w:p><w:r><w:t>World</w:t></w:r></w:p></w:body></w:document>";
        assert_eq!(wml_text(xml, 1000).unwrap(), "Hello\n\nWorld");
        // Text in another namespace's `t` (DrawingML) is not body text of this kind.
        let other = r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:a="urn:other"><w:p><a:t>skip</a:t><w:r><w:t>keep</w:t></w:r></w:p></w:document>"#;
        assert_eq!(wml_text(other, 1000).unwrap(), "keep");
        assert_eq!(
            wml_text("<w:p><w:t>a</w:t><w:t>bcdef</w:t></w:p>", 3)
                .unwrap_err()
                .code(),
            "text_too_large"
        );
    }

    #[tokio::test]
    async fn broken_docx_is_unreadable_and_empty_docx_has_no_text() {
        let dir = tempfile::tempdir().unwrap();
        let not_zip = write_tmp(&dir, "a.docx", b"PK\x03\x04 nothing useful");
        assert_eq!(
            code_of(&not_zip, "docx", &no_tools()).await,
            "unreadable_docx"
        );
        let no_doc = write_tmp(&dir, "b.docx", &docx_with(&[("[Content_Types].xml", CT)]));
        assert_eq!(
            code_of(&no_doc, "docx", &no_tools()).await,
            "unreadable_docx"
        );
        let bad_xml = write_tmp(
            &dir,
            "c.docx",
            &docx_with(&[("word/document.xml", b"<w:document><w:p></w:document>")]),
        );
        assert_eq!(
            code_of(&bad_xml, "docx", &no_tools()).await,
            "unreadable_docx"
        );
        let empty = write_tmp(
            &dir,
            "d.docx",
            &docx("<w:p/><w:p><w:r><w:t>  </w:t></w:r></w:p>"),
        );
        assert_eq!(code_of(&empty, "docx", &no_tools()).await, "no_text_found");
    }

    #[tokio::test]
    async fn plain_text_and_markdown_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let text = "Hello\n\n  world: caf\u{e9}\n";
        let path = write_tmp(&dir, "a.txt", text.as_bytes());
        for kind in ["plain_text", "markdown"] {
            let x = extract(&path, kind, &no_tools()).await.unwrap();
            assert_eq!(x.text, text);
            assert_eq!(x.pages, vec![text.to_owned()]);
            assert_eq!(x.engine, "plain_text");
            assert_eq!(x.confidence, None);
        }
        let bom = write_tmp(&dir, "bom.txt", b"\xEF\xBB\xBFhi");
        assert_eq!(
            extract(&bom, "plain_text", &no_tools()).await.unwrap().text,
            "hi"
        );
        let latin1 = write_tmp(&dir, "latin1.txt", b"caf\xe9 au lait");
        assert_eq!(
            extract(&latin1, "plain_text", &no_tools())
                .await
                .unwrap()
                .text,
            "caf\u{fffd} au lait"
        );
    }

    #[tokio::test]
    async fn empty_text_is_no_text_found() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [("empty.txt", &b""[..]), ("blank.md", &b" \n\t \r\n"[..])] {
            let path = write_tmp(&dir, name, bytes);
            assert_eq!(
                code_of(&path, "plain_text", &no_tools()).await,
                "no_text_found"
            );
        }
    }

    #[tokio::test]
    async fn text_over_the_limit_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut small = no_tools();
        small.max_text_bytes = 10;
        let txt = write_tmp(&dir, "long.txt", b"eleven byte");
        assert_eq!(code_of(&txt, "plain_text", &small).await, "text_too_large");
        let exact = write_tmp(&dir, "ten.txt", b"ten bytes!");
        assert_eq!(
            extract(&exact, "plain_text", &small).await.unwrap().text,
            "ten bytes!"
        );
        let pdf = write_tmp(&dir, "long.pdf", &text_pdf(&[&["Invoice number 4711"]]));
        assert_eq!(code_of(&pdf, "pdf", &small).await, "text_too_large");
        let docx_path = write_tmp(
            &dir,
            "long.docx",
            &docx("<w:p><w:r><w:t>Eleven bytes</w:t></w:r></w:p>"),
        );
        assert_eq!(code_of(&docx_path, "docx", &small).await, "text_too_large");
    }

    #[tokio::test]
    async fn image_ocr_or_no_ocr_engine() {
        let dir = tempfile::tempdir().unwrap();
        match find_tesseract() {
            Some(tesseract) => {
                let pdftoppm = find_pdftoppm()
                    .expect("tesseract is installed but pdftoppm (poppler-utils) is not: the test renders its PNG with it");
                let pdf = write_tmp(
                    &dir,
                    "words.pdf",
                    &text_pdf(&[&["Invoice number 4711", "Hello OCR world"]]),
                );
                let png = render(&pdftoppm, &pdf, &dir.path().join("words"), 300, false);
                let x = extract(&png, "png", &cfg(Some(tesseract), None))
                    .await
                    .unwrap();
                assert_eq!(x.engine, "tesseract");
                assert_eq!(x.pages.len(), 1);
                let lower = x.text.to_lowercase();
                for word in ["invoice", "number", "4711", "hello", "ocr", "world"] {
                    assert!(lower.contains(word), "{word:?} not in {:?}", x.text);
                }
                // Two lines of text stay two lines.
                assert!(x.text.contains('\n'), "{:?}", x.text);
                let confidence = x.confidence.unwrap();
                assert!(confidence > 0.5 && confidence <= 1.0, "{confidence}");
            }
            None => {
                let png = write_tmp(&dir, "a.png", b"\x89PNG\r\n\x1a\nnot really");
                for kind in ["png", "jpeg", "tiff", "webp"] {
                    assert_eq!(code_of(&png, kind, &no_tools()).await, "no_ocr_engine");
                }
            }
        }
    }

    #[tokio::test]
    async fn ocr_errors() {
        let dir = tempfile::tempdir().unwrap();
        let png = write_tmp(&dir, "a.png", b"\x89PNG\r\n\x1a\nnot really an image");
        // A configured binary that is gone is no engine.
        let gone = cfg(Some(PathBuf::from("/nonexistent/tesseract")), None);
        assert_eq!(code_of(&png, "png", &gone).await, "no_ocr_engine");
        let mut bad_lang = gone.clone();
        for languages in ["", "../../etc", "-psm", "eng+", "eng deu"] {
            bad_lang.languages = languages.to_owned();
            assert_eq!(
                code_of(&png, "png", &bad_lang).await,
                "bad_ocr_languages",
                "{languages:?}"
            );
        }
        match find_tesseract() {
            Some(tesseract) => {
                let real = cfg(Some(tesseract), None);
                // Not an image: tesseract fails, and says why.
                match extract(&png, "png", &real).await {
                    Err(e @ ExtractError::OcrFailed(_)) => {
                        assert_eq!(e.code(), "ocr_failed");
                        assert!(e.to_string().contains("exited with"), "{e}");
                    }
                    other => panic!("expected ocr_failed, got {other:?}"),
                }
                let mut hurried = real.clone();
                hurried.timeout = Duration::from_nanos(1);
                assert_eq!(code_of(&png, "png", &hurried).await, "ocr_timeout");
            }
            None => assert_eq!(code_of(&png, "png", &no_tools()).await, "no_ocr_engine"),
        }
    }

    #[tokio::test]
    async fn other_types_are_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_tmp(&dir, "a.wav", b"RIFF");
        assert_eq!(code_of(&path, "wav", &no_tools()).await, "unsupported_type");
        let missing = dir.path().join("missing.txt");
        assert_eq!(code_of(&missing, "plain_text", &no_tools()).await, "io");
        assert_eq!(code_of(&missing, "pdf", &no_tools()).await, "io");
        assert_eq!(code_of(&missing, "docx", &no_tools()).await, "io");
    }

    #[test]
    fn tsv_rebuilds_lines_paragraphs_and_pages() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n\
5\t1\t1\t1\t1\t1\t0\t0\t1\t1\t90\tHello\n\
5\t1\t1\t1\t1\t2\t0\t0\t1\t1\t80\tworld\n\
5\t1\t1\t1\t2\t1\t0\t0\t1\t1\t70\tagain\n\
5\t1\t2\t1\t1\t1\t0\t0\t1\t1\t-1\tNew\n\
5\t1\t2\t1\t1\t2\t0\t0\t1\t1\t60\t \n\
1\t2\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n\
1\t3\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n\
5\t3\t1\t1\t1\t1\t0\t0\t1\t1\t100\tLast\n";
        let out = parse_tsv(tsv);
        assert_eq!(out.pages, vec!["Hello world\nagain\n\nNew", "", "Last"]);
        assert_eq!(
            out.confidence,
            Confidence {
                sum: 340.0,
                words: 4
            }
        );
        assert_eq!(out.confidence.mean(), Some(0.85));
        assert_eq!(parse_tsv("").pages, Vec::<String>::new());
    }

    #[test]
    fn render_dpi_is_bounded() {
        assert_eq!(render_dpi(None), 300);
        assert_eq!(render_dpi(Some(842.0)), 300);
        // A 200-inch page is rendered at 6000 pixels.
        assert_eq!(render_dpi(Some(14_400.0)), 30);
        assert_eq!(render_dpi(Some(f64::MAX)), 1);
    }

    #[test]
    fn helpers() {
        assert_eq!(&*safe_arg(Path::new("-x.png")), Path::new("./-x.png"));
        assert_eq!(
            &*safe_arg(Path::new("/tmp/-x.png")),
            Path::new("/tmp/-x.png")
        );
        assert!(validate_languages("eng+deu+chi_sim+script/Latin").is_ok());
        assert_eq!(stderr_tail(b""), "no message");
        let long = "x".repeat(2000) + "\nError: the end";
        let tail = stderr_tail(long.as_bytes());
        assert!(tail.ends_with("x Error: the end"), "{tail}");
        assert_eq!(tail.chars().count(), STDERR_TAIL_CHARS);
        // Codes are distinct.
        let errors = [
            ExtractError::UnsupportedType(String::new()),
            ExtractError::Io(io::Error::other("x")),
            ExtractError::UnreadablePdf(String::new()),
            ExtractError::NoTextLayer(""),
            ExtractError::UnreadableDocx(String::new()),
            ExtractError::NoOcrEngine,
            ExtractError::BadLanguages(String::new()),
            ExtractError::OcrFailed(String::new()),
            ExtractError::OcrTimeout(Duration::ZERO),
            ExtractError::Timeout(Duration::ZERO),
            ExtractError::NoTextFound,
            ExtractError::TextTooLarge { limit: 0 },
            ExtractError::Internal(String::new()),
            ExtractError::TooManyPages { pages: 0, limit: 0 },
            ExtractError::PageTooLarge { page: 0, limit: 0 },
            ExtractError::PageTimeout {
                page: 0,
                limit: Duration::ZERO,
            },
            ExtractError::ResourceLimit(String::new()),
            ExtractError::Crashed(String::new()),
        ];
        let codes: std::collections::HashSet<_> = errors.iter().map(ExtractError::code).collect();
        assert_eq!(codes.len(), errors.len());
        // Every code survives the trip through another process.
        for code in &codes {
            assert!(ExtractError::CODES.contains(code), "{code}");
            assert_eq!(ExtractError::reported(code, String::new()).code(), *code);
        }
        assert_eq!(ExtractError::CODES.len(), codes.len());
        assert_eq!(
            ExtractError::reported("nope", String::new()).code(),
            "internal"
        );
    }
}
