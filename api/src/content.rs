//! Streaming a stored file: the real content type, `Range` requests (so long audio can
//! be seeked), and an RFC 6266 `Content-Disposition`.

use std::future::Future;

use alta_actors::{ErrorCode, media::detect::DetectedType};
use poem::{Body, IntoResponse, Response};
use poem_openapi::{
    ApiResponse,
    payload::{Binary, Json},
    registry::{MetaSchemaRef, Registry},
};

use crate::problem::{ApiResult, Problem};

/// A file body with its content type decided at run time.
pub struct FileBody {
    pub body: Body,
    pub content_type: String,
}

impl poem_openapi::payload::Payload for FileBody {
    const CONTENT_TYPE: &'static str = "application/octet-stream";

    fn schema_ref() -> MetaSchemaRef {
        <Binary<Body> as poem_openapi::payload::Payload>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        <Binary<Body> as poem_openapi::payload::Payload>::register(registry);
    }
}

impl IntoResponse for FileBody {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(self.content_type)
            .body(self.body)
    }
}

/// A table as CSV (RFC 4180, a header row first), for spreadsheets: the answer of the
/// analytics series and leaderboards to `Accept: text/csv`.
pub struct CsvBody(pub String);

impl CsvBody {
    /// Write `header` and `rows` (each as many fields as the header) as CSV.
    pub fn of<R, F>(header: &[&str], rows: R) -> Result<Self, alta_actors::EngineError>
    where
        R: IntoIterator<Item = Vec<F>>,
        F: AsRef<[u8]>,
    {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let io = |e: csv::Error| alta_actors::EngineError::internal(format!("writing CSV: {e}"));
        writer.write_record(header).map_err(io)?;
        for row in rows {
            writer.write_record(row).map_err(io)?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| alta_actors::EngineError::internal(format!("writing CSV: {e}")))?;
        Ok(Self(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

impl poem_openapi::payload::Payload for CsvBody {
    const CONTENT_TYPE: &'static str = "text/csv";

    fn schema_ref() -> MetaSchemaRef {
        <poem_openapi::payload::PlainText<String> as poem_openapi::payload::Payload>::schema_ref()
    }
}

impl IntoResponse for CsvBody {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type("text/csv; charset=utf-8")
            .body(self.0)
    }
}

/// The request prefers CSV to JSON (`Accept: text/csv`, without a higher JSON).
pub fn wants_csv(req: &poem::Request) -> bool {
    let Some(accept) = req.header("accept") else {
        return false;
    };
    let weight = |media: &str| {
        accept
            .split(',')
            .map(str::trim)
            .filter(|part| {
                part.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case(media))
            })
            .map(|part| {
                part.split(';')
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0)
            })
            .fold(0.0f32, f32::max)
    };
    let csv = weight("text/csv");
    csv > 0.0 && csv >= weight("application/json")
}

#[derive(ApiResponse)]
pub enum ContentResponse {
    /// The whole file.
    #[oai(status = 200)]
    Full(
        FileBody,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Accept-Ranges")] String,
        #[oai(header = "Content-Length")] u64,
    ),
    /// The requested byte range.
    #[oai(status = 206)]
    Partial(
        FileBody,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Content-Range")] String,
        #[oai(header = "Content-Length")] u64,
    ),
    /// The range lies outside the file.
    #[oai(status = 416, content_type = "application/problem+json")]
    RangeNotSatisfiable(Json<Problem>, #[oai(header = "Content-Range")] String),
}

/// Answer a download of `len` bytes as `range` asks: the whole file, the range (206), or
/// 416. `open(start, end_inclusive)` streams the bytes; `empty` is the body of a file
/// with none.
pub async fn ranged<F, Fut>(
    len: u64,
    range: Option<&str>,
    disposition: String,
    open: F,
    empty: impl FnOnce() -> FileBody,
) -> ApiResult<ContentResponse>
where
    F: Fn(u64, u64) -> Fut,
    Fut: Future<Output = Result<FileBody, alta_actors::EngineError>>,
{
    match parse_range(range, len) {
        RangeRequest::Full if len == 0 => Ok(ContentResponse::Full(
            empty(),
            disposition,
            "bytes".into(),
            len,
        )),
        RangeRequest::Full => Ok(ContentResponse::Full(
            open(0, len - 1).await?,
            disposition,
            "bytes".into(),
            len,
        )),
        RangeRequest::Partial(start, end) => Ok(ContentResponse::Partial(
            open(start, end).await?,
            disposition,
            format!("bytes {start}-{end}/{len}"),
            end - start + 1,
        )),
        RangeRequest::Unsatisfiable => Ok(ContentResponse::RangeNotSatisfiable(
            Json(Problem::new(
                poem::http::StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::RangeNotSatisfiable,
                format!("the file has {len} bytes"),
            )),
            format!("bytes */{len}"),
        )),
    }
}

/// The byte range asked for, resolved against the file length.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No (usable) Range header: the whole file.
    Full,
    /// Inclusive start and end.
    Partial(u64, u64),
    /// The range lies outside the file.
    Unsatisfiable,
}

/// One `bytes=` range (`a-b`, `a-`, `-n`). Several ranges or other units are ignored
/// (RFC 9110 lets a server answer those with the whole file).
pub fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((start, end)) = spec.split_once('-') else {
        return RangeRequest::Full;
    };
    let (start, end) = (start.trim(), end.trim());
    let parsed = match (start.parse::<u64>(), end.parse::<u64>()) {
        (Ok(s), Ok(e)) if s <= e => Some((s, e.min(len.saturating_sub(1)))),
        (Ok(s), Err(_)) if end.is_empty() => Some((s, len.saturating_sub(1))),
        (Err(_), Ok(n)) if start.is_empty() && n > 0 => {
            Some((len.saturating_sub(n), len.saturating_sub(1)))
        }
        _ => return RangeRequest::Full,
    };
    match parsed {
        Some((s, e)) if len > 0 && s < len && s <= e => RangeRequest::Partial(s, e),
        _ => RangeRequest::Unsatisfiable,
    }
}

/// The name a download is saved under: the client's name with the extension of the
/// type detected from the content (`x.html` holding plain text is saved as
/// `x.html.txt`, never as HTML). A name whose extension already fits is kept.
pub fn download_name(file_name: &str, detected_type: &str) -> String {
    let Some(detected) = DetectedType::parse(detected_type) else {
        return file_name.to_owned();
    };
    let wanted = detected.extension();
    let current = file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    let fits = current.as_deref().is_some_and(|ext| {
        ext == wanted
            || matches!(
                (detected, ext),
                (DetectedType::Jpeg, "jpeg" | "jpe")
                    | (DetectedType::Tiff, "tif")
                    | (DetectedType::Markdown, "markdown")
                    | (DetectedType::PlainText, "text")
                    | (DetectedType::Ogg, "oga" | "opus")
                    | (DetectedType::M4a, "mp4" | "aac")
            )
    });
    if fits {
        file_name.to_owned()
    } else {
        format!("{file_name}.{wanted}")
    }
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266 / 8187).
pub fn content_disposition(file_name: &str) -> String {
    let ascii: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in file_name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), RangeRequest::Full);
        assert_eq!(
            parse_range(Some("bytes=0-9"), 100),
            RangeRequest::Partial(0, 9)
        );
        assert_eq!(
            parse_range(Some("bytes=90-"), 100),
            RangeRequest::Partial(90, 99)
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 100),
            RangeRequest::Partial(90, 99)
        );
        assert_eq!(
            parse_range(Some("bytes=50-500"), 100),
            RangeRequest::Partial(50, 99)
        );
        assert_eq!(
            parse_range(Some("bytes=100-"), 100),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), RangeRequest::Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), RangeRequest::Full);
        assert_eq!(parse_range(Some("bytes=9-1"), 100), RangeRequest::Full);
    }

    #[test]
    fn download_names_carry_the_detected_extension() {
        assert_eq!(download_name("x.html", "plain_text"), "x.html.txt");
        assert_eq!(download_name("page.txt", "plain_text"), "page.txt");
        assert_eq!(download_name("scan.JPEG", "jpeg"), "scan.JPEG");
        assert_eq!(download_name("scan", "png"), "scan.png");
        assert_eq!(download_name("take.svg", "wav"), "take.svg.wav");
        assert_eq!(download_name("odd", "not_a_type"), "odd");
    }

    #[test]
    fn disposition_is_safe_and_keeps_unicode() {
        let d = content_disposition("résumé \"final\".pdf");
        assert!(
            d.starts_with("attachment; filename=\"r_sum_ _final_.pdf\""),
            "{d}"
        );
        assert!(
            d.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"),
            "{d}"
        );
    }
}
