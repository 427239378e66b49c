//! The outermost layer: establishes the request context (id, client IP, user agent),
//! opens the tracing span every log line of the request carries, records RED metrics
//! labelled by route template, and writes the access log line.

use std::{collections::HashMap, net::IpAddr, sync::Arc, time::Instant};

use alta_actors::context::RequestContext;
use poem::{
    Endpoint, IntoResponse, Middleware, PathPattern, Request, Response, Result, http::HeaderValue,
};
use tracing::Instrument;

use super::{problems, request_id};

pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
pub const HTTP_REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";

pub struct Observe {
    /// operationId → path template.
    routes: Arc<HashMap<String, String>>,
    trusted_proxies: Arc<[IpAddr]>,
}

impl Observe {
    pub fn new(routes: Arc<HashMap<String, String>>, trusted_proxies: Vec<IpAddr>) -> Self {
        Self {
            routes,
            trusted_proxies: trusted_proxies.into(),
        }
    }
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint {
            inner: ep,
            routes: Arc::clone(&self.routes),
            trusted_proxies: Arc::clone(&self.trusted_proxies),
        }
    }
}

pub struct ObserveEndpoint<E> {
    inner: E,
    routes: Arc<HashMap<String, String>>,
    trusted_proxies: Arc<[IpAddr]>,
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let started = Instant::now();
        let id = request_id::accept_or_generate(
            req.headers()
                .get(request_id::HEADER)
                .and_then(|v| v.to_str().ok()),
        );
        let ctx = RequestContext {
            request_id: id.clone(),
            client_ip: client_ip(&req, &self.trusted_proxies),
            user_agent: req
                .headers()
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .map(|ua| ua.chars().take(256).collect()),
        };
        let method = req.method().to_string();
        let span = tracing::info_span!("http", request_id = %id, method = %method, path = %req.uri().path());
        req.extensions_mut().insert(ctx);

        let in_flight = metrics::gauge!(HTTP_REQUESTS_IN_FLIGHT);
        in_flight.increment(1.0);
        let result =
            request_id::scope(id.clone(), self.inner.call(req).instrument(span.clone())).await;
        in_flight.decrement(1.0);

        // Errors that escaped the inner layers (CORS refusals) become problems here.
        let mut resp = match result {
            Ok(resp) => resp.into_response(),
            Err(err) => {
                request_id::scope(id.clone(), async { problems::error_response(err) }).await
            }
        };
        let route = self.route_of(&resp);
        let status = resp.status().as_u16();
        let elapsed = started.elapsed().as_secs_f64();
        metrics::counter!(HTTP_REQUESTS_TOTAL, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
            .increment(1);
        metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, "method" => method.clone(), "route" => route.clone())
            .record(elapsed);
        span.in_scope(|| {
            tracing::info!(status, route = %route, latency_ms = (elapsed * 1000.0).round() as u64, "request");
        });
        if let Ok(value) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert(request_id::HEADER, value);
        }
        Ok(resp)
    }
}

impl<E> ObserveEndpoint<E> {
    /// The route template: the operation's path for API calls, the matched pattern for
    /// other routes, `unmatched` otherwise (never the raw path: unbounded cardinality).
    fn route_of(&self, resp: &Response) -> String {
        if let Some(op) = resp.data::<poem_openapi::OperationId>()
            && let Some(path) = self.routes.get(op.0)
        {
            return path.clone();
        }
        match resp.data::<PathPattern>() {
            // A 404 under the API's nest carries the nest's empty pattern.
            Some(pattern)
                if !pattern.0.is_empty() && resp.status() != poem::http::StatusCode::NOT_FOUND =>
            {
                pattern.0.to_string()
            }
            _ => "unmatched".to_owned(),
        }
    }
}

/// The peer address, unless the peer is a trusted proxy: then the nearest address in
/// `X-Forwarded-For` that is not itself a trusted proxy. A client cannot choose its
/// own IP (and so reset its rate limit) by sending the header.
fn client_ip(req: &Request, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .unwrap_or(peer),
    )
}
