//! `Vary: Origin` on every answer: the CORS headers depend on the request's `Origin`
//! (and preflight answers, which poem's CORS layer builds without it, too), so a shared
//! cache must not hand one origin's answer to another.

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    http::{HeaderValue, header},
};

use super::problems;

pub struct VaryOrigin;

impl<E: Endpoint> Middleware<E> for VaryOrigin {
    type Output = VaryOriginEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        VaryOriginEndpoint { inner: ep }
    }
}

pub struct VaryOriginEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for VaryOriginEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        // CORS refusals arrive as errors: they vary by origin too.
        let mut resp = match self.inner.call(req).await {
            Ok(resp) => resp.into_response(),
            Err(err) => problems::error_response(err),
        };
        let varies = resp.headers().get_all(header::VARY).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|name| name.trim().eq_ignore_ascii_case("origin") || name.trim() == "*")
            })
        });
        if !varies {
            resp.headers_mut()
                .append(header::VARY, HeaderValue::from_static("Origin"));
        }
        Ok(resp)
    }
}
