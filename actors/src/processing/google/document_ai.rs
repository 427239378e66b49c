//! Document AI: online processing of one document (`projects.locations.processors.process`)
//! by an OCR processor.
//!
//! `POST {endpoint}/v1/{processor}:process` with the document inline (`rawDocument`,
//! base64) or in Cloud Storage (`gcsDocument`). The answer's `document.text` is the whole
//! text; each page's text is the part of it its `layout.textAnchor.textSegments` point
//! at (indices count Unicode code points, int64 sent as strings, a missing `startIndex`
//! is 0). The confidence is the mean of the pages' `layout.confidence`.
//!
//! The request asks only for `text` and the pages' `pageNumber` and `layout` (the
//! `fieldMask`): without it the answer carries every page's rendered image, tokens and
//! symbols, many times the size of the text.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::{
    API_DOCUMENT_AI, CODE_NO_TEXT_FOUND, GoogleAuth, JsonCall, RemoteError, base_url, mean,
};
use crate::processing::MachineText;

/// [`MachineText::engine`] of Document AI text.
pub const ENGINE_DOCUMENT_AI: &str = "google_document_ai";
/// The global endpoint; regional ones are `https://{location}-documentai.googleapis.com`
/// (`eu-documentai`, `us-documentai`) and must match the processor's location.
pub const DEFAULT_ENDPOINT: &str = "https://documentai.googleapis.com";
/// The parts of the `Document` asked for.
pub const FIELD_MASK: &str = "text,pages.pageNumber,pages.layout";
/// Default [`DocumentAi::timeout`]: online processing of a long document takes a while.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The document to read.
#[derive(Debug, Clone)]
pub enum DocSource {
    /// The file's bytes, sent base64 in the request (online limit: 20 MB or so).
    Inline { bytes: Bytes, mime: String },
    /// A `gs://bucket/object` the processor's service agent can read.
    Gcs { uri: String, mime: String },
}

/// A Document AI OCR processor.
#[derive(Debug, Clone)]
pub struct DocumentAi {
    pub http: reqwest::Client,
    /// `https://eu-documentai.googleapis.com` (no path).
    pub endpoint: String,
    /// `projects/P/locations/L/processors/ID` (or `.../processorVersions/V`).
    pub processor: String,
    pub auth: GoogleAuth,
    /// Budget of one HTTP request.
    pub timeout: Duration,
}

/// `ProcessResponse`, the parts read.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ProcessResponse {
    document: Document,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Document {
    text: String,
    pages: Vec<Page>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Page {
    layout: Layout,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Layout {
    text_anchor: TextAnchor,
    confidence: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct TextAnchor {
    text_segments: Vec<TextSegment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct TextSegment {
    #[serde(deserialize_with = "int64")]
    start_index: u64,
    #[serde(deserialize_with = "int64")]
    end_index: u64,
}

/// A proto3 int64: a JSON string (`"42"`) as Google sends it, or a number.
fn int64<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int64 {
        Text(String),
        Number(u64),
    }
    match Int64::deserialize(de)? {
        Int64::Number(n) => Ok(n),
        Int64::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

impl DocumentAi {
    pub fn new(
        http: reqwest::Client,
        endpoint: impl Into<String>,
        processor: impl Into<String>,
        auth: GoogleAuth,
    ) -> Self {
        Self {
            http,
            endpoint: endpoint.into(),
            processor: processor.into(),
            auth,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// `{endpoint}/v1/{processor}:process`.
    pub fn process_url(&self) -> String {
        format!(
            "{}/v1/{}:process",
            base_url(&self.endpoint),
            self.processor.trim_matches('/')
        )
    }

    /// The text of one document. An answer without any text is `no_text_found` (final).
    pub async fn process(&self, source: DocSource) -> Result<MachineText, RemoteError> {
        let body = request_body(&source);
        let call = JsonCall {
            http: &self.http,
            auth: &self.auth,
            api: API_DOCUMENT_AI,
            service: "Document AI",
            timeout: self.timeout,
        };
        let response: ProcessResponse = call
            .send(Method::POST, &self.process_url(), Some(&body))
            .await?;
        machine_text(response.document)
    }
}

/// The `ProcessRequest` JSON.
fn request_body(source: &DocSource) -> Value {
    let mut body = json!({
        "skipHumanReview": true,
        "fieldMask": FIELD_MASK,
    });
    match source {
        DocSource::Inline { bytes, mime } => {
            body["rawDocument"] = json!({"content": STANDARD.encode(bytes), "mimeType": mime});
        }
        DocSource::Gcs { uri, mime } => {
            body["gcsDocument"] = json!({"gcsUri": uri, "mimeType": mime});
        }
    }
    body
}

fn machine_text(document: Document) -> Result<MachineText, RemoteError> {
    if document.text.trim().is_empty() {
        return Err(RemoteError::rejected(
            CODE_NO_TEXT_FOUND,
            "Document AI found no text in the document",
        ));
    }
    let confidence = mean(document.pages.iter().filter_map(|p| p.layout.confidence));
    let pages = if document.pages.is_empty() {
        vec![document.text.trim_end().to_owned()]
    } else {
        let mut index = CharIndex::new(&document.text);
        document
            .pages
            .iter()
            .map(|page| {
                let mut text = String::new();
                for segment in &page.layout.text_anchor.text_segments {
                    text.push_str(index.slice(segment.start_index, segment.end_index));
                }
                text.truncate(text.trim_end().len());
                text
            })
            .collect()
    };
    Ok(MachineText {
        engine: ENGINE_DOCUMENT_AI,
        text: document.text.trim_end().to_owned(),
        pages: Some(pages),
        words: None,
        confidence,
    })
}

/// Slices a string by code-point indices. Segments come mostly in order, so a cursor
/// walks forward from the last position instead of from the start.
struct CharIndex<'a> {
    text: &'a str,
    /// ASCII text: code points are bytes.
    ascii: bool,
    /// Code-point index and byte offset of the cursor.
    chars: u64,
    byte: usize,
}

impl<'a> CharIndex<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            ascii: text.is_ascii(),
            chars: 0,
            byte: 0,
        }
    }

    /// The byte offset of code point `index`, or the end of the text past it.
    fn byte_at(&mut self, index: u64) -> usize {
        if self.ascii {
            return usize::try_from(index).map_or(self.text.len(), |i| i.min(self.text.len()));
        }
        if index < self.chars {
            self.chars = 0;
            self.byte = 0;
        }
        for (offset, _) in self.text[self.byte..].char_indices() {
            if self.chars == index {
                self.byte += offset;
                return self.byte;
            }
            self.chars += 1;
        }
        // Past the end: park the cursor at the end.
        self.byte = self.text.len();
        self.byte
    }

    /// The text between code points `start` and `end` (clamped to the text; a sharded
    /// document's indices may point past it).
    fn slice(&mut self, start: u64, end: u64) -> &'a str {
        if end <= start {
            return "";
        }
        let from = self.byte_at(start);
        let to = self.byte_at(end);
        &self.text[from..to.max(from)]
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::fake::{self, FakeServer, Reply};
    use super::super::{CODE_QUOTA_EXCEEDED, CODE_RATE_LIMITED, CODE_REJECTED, CODE_UNAVAILABLE};
    use super::*;

    const PROCESSOR: &str = "projects/alta-test/locations/eu/processors/abc123";
    const PROCESS_PATH: &str = "/v1/projects/alta-test/locations/eu/processors/abc123:process";

    /// A documented `ProcessResponse` of two pages; the first page's anchor has no
    /// `startIndex` (0) and two segments.
    fn two_pages() -> Value {
        json!({
            "document": {
                "uri": "",
                "mimeType": "application/pdf",
                "text": "Invoice 4711\nTotal: 99.50 EUR\nPage two: Grüße\n",
                "pages": [
                    {
                        "pageNumber": 1,
                        "dimension": {"width": 1224, "height": 1584, "unit": "pixels"},
                        "layout": {
                            "textAnchor": {"textSegments": [
                                {"endIndex": "13"},
                                {"startIndex": "13", "endIndex": "30"}
                            ]},
                            "confidence": 0.9,
                            "boundingPoly": {"normalizedVertices": [{}, {"x": 1}, {"x": 1, "y": 1}, {"y": 1}]},
                            "orientation": "PAGE_UP"
                        }
                    },
                    {
                        "pageNumber": 2,
                        "layout": {
                            "textAnchor": {"textSegments": [{"startIndex": "30", "endIndex": "46"}]},
                            "confidence": 0.7,
                            "orientation": "PAGE_UP"
                        }
                    }
                ]
            },
            "humanReviewStatus": {"state": "SKIPPED"}
        })
    }

    fn engine(server: &FakeServer, auth: GoogleAuth) -> DocumentAi {
        DocumentAi::new(
            reqwest::Client::new(),
            format!("{}/", server.base()),
            PROCESSOR,
            auth,
        )
    }

    fn inline_pdf() -> DocSource {
        DocSource::Inline {
            bytes: Bytes::from_static(b"%PDF-1.7 fake"),
            mime: "application/pdf".into(),
        }
    }

    #[tokio::test]
    async fn processes_an_inline_document_with_two_pages() {
        let server = FakeServer::start(|_| Reply::json(200, two_pages())).await;
        let ai = engine(&server, GoogleAuth::static_token("test-token"));
        let text = ai.process(inline_pdf()).await.unwrap();

        assert_eq!(text.engine, ENGINE_DOCUMENT_AI);
        assert_eq!(text.text, "Invoice 4711\nTotal: 99.50 EUR\nPage two: Grüße");
        assert_eq!(
            text.pages.unwrap(),
            vec!["Invoice 4711\nTotal: 99.50 EUR", "Page two: Grüße"]
        );
        assert!((text.confidence.unwrap() - 0.8).abs() < 1e-9);
        assert!(text.words.is_none());

        let req = &server.requests()[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, PROCESS_PATH);
        assert_eq!(req.authorization.as_deref(), Some("Bearer test-token"));
        let body = req.json();
        assert_eq!(
            body["rawDocument"],
            json!({"content": STANDARD.encode(b"%PDF-1.7 fake"), "mimeType": "application/pdf"})
        );
        assert_eq!(body["skipHumanReview"], true);
        assert_eq!(body["fieldMask"], FIELD_MASK);
        assert!(body.get("gcsDocument").is_none());
    }

    #[tokio::test]
    async fn sends_a_gcs_document_with_a_service_account_token() {
        let server = FakeServer::start(|req| match req.path.as_str() {
            "/token" => fake::token_reply(req, "ya29.sa-token", 3600),
            _ => Reply::json(200, two_pages()),
        })
        .await;
        let ai = engine(&server, fake::service_account_auth(&server));
        let source = DocSource::Gcs {
            uri: "gs://alta-bucket/items/1.pdf".into(),
            mime: "application/pdf".into(),
        };
        ai.process(source.clone()).await.unwrap();
        ai.process(source).await.unwrap();

        assert_eq!(server.count("/token"), 1, "the token is cached");
        let calls: Vec<_> = server
            .requests()
            .into_iter()
            .filter(|r| r.path == PROCESS_PATH)
            .collect();
        assert_eq!(calls.len(), 2);
        for call in &calls {
            assert_eq!(call.authorization.as_deref(), Some("Bearer ya29.sa-token"));
            assert_eq!(
                call.json()["gcsDocument"],
                json!({"gcsUri": "gs://alta-bucket/items/1.pdf", "mimeType": "application/pdf"})
            );
        }
    }

    #[tokio::test]
    async fn rate_limit_is_retryable_and_the_retry_succeeds() {
        let n = Arc::new(AtomicUsize::new(0));
        let counter = n.clone();
        let server = FakeServer::start(move |_| match counter.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::text(429, "Too Many Requests"),
            _ => Reply::json(200, two_pages()),
        })
        .await;
        let ai = engine(&server, GoogleAuth::static_token("t"));
        let err = ai.process(inline_pdf()).await.unwrap_err();
        assert_eq!(
            (err.code, err.retryable),
            (CODE_RATE_LIMITED, true),
            "{err}"
        );
        let text = ai.process(inline_pdf()).await.unwrap();
        assert_eq!(text.pages.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn invalid_argument_is_final_with_googles_message() {
        let server = FakeServer::start(|_| {
            Reply::google_error(
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
            )
        })
        .await;
        let ai = engine(&server, GoogleAuth::static_token("t"));
        let err = ai.process(inline_pdf()).await.unwrap_err();
        assert_eq!((err.code, err.retryable), (CODE_REJECTED, false));
        assert_eq!(
            err.message,
            "Document AI answered 400 Bad Request INVALID_ARGUMENT: \
             Request contains an invalid argument."
        );
    }

    #[tokio::test]
    async fn resource_exhausted_is_quota() {
        let server = FakeServer::start(|_| {
            Reply::google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Number of process requests'.",
            )
        })
        .await;
        let ai = engine(&server, GoogleAuth::static_token("t"));
        let err = ai.process(inline_pdf()).await.unwrap_err();
        assert_eq!((err.code, err.retryable), (CODE_QUOTA_EXCEEDED, true));
        assert!(err.message.contains("Quota exceeded"), "{err}");
    }

    #[tokio::test]
    async fn server_errors_and_bad_bodies_are_retryable() {
        let n = Arc::new(AtomicUsize::new(0));
        let counter = n.clone();
        let server = FakeServer::start(move |_| match counter.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::google_error(503, "UNAVAILABLE", "The service is currently unavailable."),
            _ => Reply::text(200, "<html>not json</html>"),
        })
        .await;
        let ai = engine(&server, GoogleAuth::static_token("t"));
        let err = ai.process(inline_pdf()).await.unwrap_err();
        assert_eq!((err.code, err.retryable), (CODE_UNAVAILABLE, true));
        let err = ai.process(inline_pdf()).await.unwrap_err();
        assert_eq!(
            (err.code, err.retryable),
            (super::super::CODE_BAD_RESPONSE, true)
        );
    }

    #[tokio::test]
    async fn refused_token_is_renewed_once() {
        let n = Arc::new(AtomicUsize::new(0));
        let tokens = n.clone();
        let server = FakeServer::start(move |req| match req.path.as_str() {
            "/token" => {
                let i = tokens.fetch_add(1, Ordering::SeqCst);
                fake::token_reply(req, &format!("ya29.t{i}"), 3600)
            }
            _ if req.authorization.as_deref() == Some("Bearer ya29.t0") => {
                Reply::google_error(401, "UNAUTHENTICATED", "Request had invalid credentials.")
            }
            _ => Reply::json(200, two_pages()),
        })
        .await;
        let ai = engine(&server, fake::service_account_auth(&server));
        ai.process(inline_pdf()).await.unwrap();
        assert_eq!(server.count("/token"), 2);
        assert_eq!(server.count(PROCESS_PATH), 2);
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_retryable() {
        let ai = DocumentAi::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9",
            PROCESSOR,
            GoogleAuth::static_token("t"),
        );
        let err = ai.process(inline_pdf()).await.unwrap_err();
        assert_eq!((err.code, err.retryable), (CODE_UNAVAILABLE, true), "{err}");
    }

    #[tokio::test]
    async fn empty_text_is_no_text_found() {
        let server = FakeServer::start(|_| {
            Reply::json(
                200,
                json!({"document": {"mimeType": "image/png", "pages": [{"pageNumber": 1}]}}),
            )
        })
        .await;
        let ai = engine(&server, GoogleAuth::static_token("t"));
        let err = ai.process(inline_pdf()).await.unwrap_err();
        assert_eq!((err.code, err.retryable), (CODE_NO_TEXT_FOUND, false));
    }

    #[test]
    fn segments_index_code_points_and_clamp() {
        let text = "añb€c😀d";
        let mut index = CharIndex::new(text);
        assert_eq!(index.slice(0, 2), "añ");
        assert_eq!(index.slice(2, 5), "b€c");
        assert_eq!(index.slice(5, 7), "😀d");
        assert_eq!(index.slice(1, 3), "ñb", "going back works");
        assert_eq!(index.slice(6, 100), "d", "clamped to the end");
        assert_eq!(index.slice(50, 100), "");
        assert_eq!(index.slice(3, 3), "");
        let mut ascii = CharIndex::new("hello");
        assert_eq!(ascii.slice(1, 99), "ello");
    }

    #[test]
    fn int64_accepts_strings_and_numbers() {
        let s: TextSegment =
            serde_json::from_value(json!({"startIndex": "7", "endIndex": 9})).unwrap();
        assert_eq!((s.start_index, s.end_index), (7, 9));
        assert!(serde_json::from_value::<TextSegment>(json!({"endIndex": "x"})).is_err());
    }

    #[test]
    fn document_without_pages_is_one_page() {
        let doc = Document {
            text: "hello\n".into(),
            pages: vec![],
        };
        let text = machine_text(doc).unwrap();
        assert_eq!(text.pages.unwrap(), vec!["hello"]);
        assert_eq!(text.confidence, None);
    }
}
