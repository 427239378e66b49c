//! The middleware stack, outermost first: observe (request id, client IP, span,
//! metrics, access log) → CORS → security headers → problem conversion → body limit.

mod body_limit;
mod observe;
pub mod problems;
pub mod request_id;
mod security_headers;

pub use body_limit::BodyLimit;
pub use observe::Observe;
pub use security_headers::SecurityHeaders;

use poem::{http::Method, middleware::Cors};

/// CORS for the configured origins. Bearer tokens, not cookies, so no credentials.
pub fn cors(origins: &[String]) -> Cors {
    let cors = Cors::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers(["authorization", "content-type", "idempotency-key", "x-request-id"])
        .expose_headers(["x-request-id", "retry-after", "location"])
        .max_age(600);
    if origins.is_empty() {
        // No origin configured: answer no cross-origin request (same-origin still works).
        cors.allow_origins_fn(|_| false)
    } else {
        cors.allow_origins(origins.iter().map(String::as_str))
    }
}
