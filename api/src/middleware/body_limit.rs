//! Caps the request body. A declared `Content-Length` over the cap is refused at once;
//! a body without one (chunked) is counted as it streams and cut off at the cap, so
//! the limit holds either way (poem's `SizeLimit` only reads the header).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use futures::StreamExt;
use poem::{
    Body, Endpoint, IntoResponse, Middleware, Request, Response, Result,
    http::{StatusCode, header},
};

use super::problems::problem_response;
use alta_actors::ErrorCode;

use crate::problem::Problem;

pub struct BodyLimit {
    max: usize,
    max_upload: usize,
}

/// Routes that receive files (and `/api/uploads/{id}` chunks): their cap is the upload limit (per-project limits apply
/// within it, while the file streams to disk).
const UPLOAD_PATHS: [&str; 2] = ["/api/documents", "/api/voice"];

impl BodyLimit {
    pub fn new(max: usize, max_upload: usize) -> Self {
        Self { max, max_upload }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            max: self.max,
            max_upload: self.max_upload,
        }
    }
}

pub struct BodyLimitEndpoint<E> {
    inner: E,
    max: usize,
    max_upload: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let path = req.uri().path();
        let limit = if UPLOAD_PATHS.contains(&path) || path.starts_with("/api/uploads/") {
            self.max_upload
        } else {
            self.max
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Ok(too_large(limit));
        }
        let exceeded = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&exceeded);
        let max = limit;
        let mut seen = 0usize;
        let stream = req.take_body().into_bytes_stream().map(move |chunk| {
            let chunk = chunk?;
            seen += chunk.len();
            if seen > max {
                flag.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other("request body too large"));
            }
            Ok(chunk)
        });
        req.set_body(Body::from_bytes_stream(stream));
        let result = self.inner.call(req).await;
        if exceeded.load(Ordering::Relaxed) {
            return Ok(too_large(limit));
        }
        result.map(IntoResponse::into_response)
    }
}

/// The body was not read to its end, so the connection cannot carry another request:
/// `Connection: close` tells the client not to reuse it (else its next request on that
/// connection fails).
fn too_large(max: usize) -> Response {
    let mut resp = problem_response(Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than {max} bytes"),
    ));
    resp.headers_mut().insert(
        header::CONNECTION,
        poem::http::HeaderValue::from_static("close"),
    );
    resp
}
