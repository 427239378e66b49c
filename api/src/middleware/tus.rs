//! The tus protocol's envelope for `/api/uploads`: every request but `OPTIONS` (and
//! our JSON `GET`) must say `Tus-Resumable: 1.0.0` (412 otherwise), every response says
//! it back (`OPTIONS` too), a 460 gets the reason phrase `Checksum Mismatch`, and `X-HTTP-Method-Override` lets clients behind proxies that only pass
//! GET and POST send `PATCH`, `DELETE` and `HEAD`.

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    http::{HeaderValue, Method, StatusCode},
};

use alta_actors::ErrorCode;

use super::problems::problem_response;
use crate::problem::Problem;

pub const TUS_VERSION: &str = "1.0.0";
pub const TUS_EXTENSIONS: &str = "creation,termination,checksum,expiration";

const PREFIX: &str = "/api/uploads";

/// The tus checksum extension's status for a chunk that does not match its checksum.
pub const CHECKSUM_MISMATCH: u16 = 460;

fn is_tus_path(path: &str) -> bool {
    path == PREFIX
        || path
            .strip_prefix(PREFIX)
            .is_some_and(|rest| rest.starts_with('/'))
}

pub struct Tus;

impl<E: Endpoint> Middleware<E> for Tus {
    type Output = TusEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        TusEndpoint { inner: ep }
    }
}

pub struct TusEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for TusEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        if !is_tus_path(req.uri().path()) {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        if req.method() == Method::POST {
            let target = req
                .headers()
                .get("x-http-method-override")
                .and_then(|v| v.to_str().ok())
                .map(|m| m.trim().to_ascii_uppercase());
            match target.as_deref() {
                Some("PATCH") => req.set_method(Method::PATCH),
                Some("DELETE") => req.set_method(Method::DELETE),
                Some("HEAD") => req.set_method(Method::HEAD),
                _ => {}
            }
        }
        let method = req.method().clone();
        // The tus requests (creation on the collection; HEAD, PATCH and DELETE on an
        // upload) need the version; any other method goes on to the router, whose 405
        // (with `Allow`) is the right answer, not 412.
        let needs_version = if req.uri().path() == PREFIX {
            method == Method::POST
        } else {
            [Method::HEAD, Method::PATCH, Method::DELETE].contains(&method)
        };
        let version = req
            .headers()
            .get("tus-resumable")
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let mut resp = if needs_version && version != Some(TUS_VERSION) {
            let mut resp = problem_response(Problem::new(
                StatusCode::PRECONDITION_FAILED,
                ErrorCode::UnsupportedTusVersion,
                format!("send Tus-Resumable: {TUS_VERSION} (the only version this server speaks)"),
            ));
            resp.headers_mut()
                .insert("tus-version", HeaderValue::from_static(TUS_VERSION));
            resp
        } else {
            match self.inner.call(req).await {
                Ok(resp) => resp.into_response(),
                Err(err) => err.into_response(),
            }
        };
        // Every tus answer says the version, discovery (`OPTIONS`) included.
        resp.headers_mut()
            .insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
        if resp.status().as_u16() == CHECKSUM_MISMATCH {
            // 460 has no standard reason phrase: give the status line one (HTTP/1.1).
            resp.extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(b"Checksum Mismatch"));
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::is_tus_path;

    #[test]
    fn paths() {
        assert!(is_tus_path("/api/uploads"));
        assert!(is_tus_path("/api/uploads/0190"));
        assert!(!is_tus_path("/api/uploadsx"));
        assert!(!is_tus_path("/api/documents"));
    }
}
