//! Security headers on every response. The API answers JSON only, so its policy is
//! "load nothing"; the documentation pages (Swagger UI, ReDoc) need scripts and
//! styles, and get the same headers minus the content policy.

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result, http::HeaderValue};

use super::problems;

pub struct SecurityHeaders {
    pub hsts: bool,
}

impl<E: Endpoint> Middleware<E> for SecurityHeaders {
    type Output = SecurityHeadersEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        SecurityHeadersEndpoint {
            inner: ep,
            hsts: self.hsts,
        }
    }
}

pub struct SecurityHeadersEndpoint<E> {
    inner: E,
    hsts: bool,
}

impl<E: Endpoint> Endpoint for SecurityHeadersEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let path = req.uri().path().to_owned();
        // Refusals from the CORS layer arrive as errors: they get the headers too.
        let mut resp = match self.inner.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => problems::error_response(err),
        };
        let headers = resp.headers_mut();
        headers.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
        headers.insert(
            "cross-origin-opener-policy",
            HeaderValue::from_static("same-origin"),
        );
        let is_docs = path.starts_with("/docs") || path.starts_with("/redoc");
        if !is_docs {
            headers.insert(
                "content-security-policy",
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
            );
        }
        if path.starts_with("/api/") {
            headers.insert("cache-control", HeaderValue::from_static("no-store"));
        }
        if self.hsts {
            headers.insert(
                "strict-transport-security",
                HeaderValue::from_static("max-age=31536000; includeSubDomains"),
            );
        }
        Ok(resp)
    }
}
