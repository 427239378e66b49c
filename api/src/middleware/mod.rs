//! The middleware stack, outermost first: observe (request id, client IP, span,
//! metrics, access log) → security headers → `Vary: Origin` → CORS → the tus envelope of
//! `/api/uploads` → problem conversion (with `Allow` on a 405) → body limit.

pub mod allowed_methods;
mod body_limit;
mod observe;
pub mod problems;
pub mod request_id;
mod security_headers;
pub mod tus;
mod vary_origin;

pub use body_limit::BodyLimit;
pub use observe::Observe;
pub use security_headers::SecurityHeaders;
pub use vary_origin::VaryOrigin;

use poem::{http::Method, middleware::Cors};

/// CORS for the configured origins plus the server's own (`PUBLIC_URL`): browsers send
/// `Origin` on same-origin POSTs too, and those must not be refused. Bearer tokens, not
/// cookies, so no credentials.
pub fn cors(origins: &[String], own_origin: Option<String>) -> Cors {
    let cors = Cors::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
            Method::HEAD,
        ])
        .allow_headers([
            "authorization",
            "content-type",
            "idempotency-key",
            "x-request-id",
            // tus (resumable uploads)
            "tus-resumable",
            "upload-length",
            "upload-defer-length",
            "upload-metadata",
            "upload-offset",
            "upload-checksum",
            "x-http-method-override",
        ])
        .expose_headers([
            "x-request-id",
            "retry-after",
            "location",
            "tus-resumable",
            "tus-version",
            "tus-extension",
            "tus-max-size",
            "tus-checksum-algorithm",
            "upload-offset",
            "upload-length",
            "upload-metadata",
            "upload-expires",
            "alta-item-id",
        ])
        .max_age(600);
    let allowed: Vec<String> = origins.iter().cloned().chain(own_origin).collect();
    cors.allow_origins_fn(move |origin| allowed.iter().any(|o| o == origin))
}
