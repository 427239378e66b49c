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
        // Never the raw path: secrets ride in some (an invitation's token).
        let path = redacted_path(req.uri().path());
        let span = tracing::info_span!("http", request_id = %id, method = %method, path = %path);
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

/// What stands in for a secret path segment in logs.
const REDACTED: &str = "{redacted}";

/// The path as logged: the token of `/api/projects/invitations/{token}/accept` is
/// replaced, and so is any other segment that looks like an opaque secret (24 or more
/// URL-safe characters that are not a UUID), in case a route with one is added.
pub fn redacted_path(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    segments
        .iter()
        .enumerate()
        .map(|(i, segment)| {
            let invitation_token =
                i > 0 && segments[i - 1] == "invitations" && segments.get(i + 1) == Some(&"accept");
            if invitation_token || looks_secret(segment) {
                REDACTED
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn looks_secret(segment: &str) -> bool {
    segment.len() >= 24
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'%')
        && uuid::Uuid::parse_str(segment).is_err()
}

/// The peer address, unless the peer is a trusted proxy: then the nearest address in
/// `X-Forwarded-For` that is not itself a trusted proxy. A client cannot choose its
/// own IP (and so reset its rate limit) by sending the header.
///
/// Entries are `ip`, `ip:port` or `[v6]:port` (some proxies add the port). An entry
/// that is none of these stops the walk and the address it was reached from counts:
/// skipping it would let the client's own entries further left be believed.
fn client_ip(req: &Request, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    let headers: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    Some(client_ip_from(peer, &headers, trusted))
}

fn client_ip_from(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpAddr]) -> IpAddr {
    let mut client = peer;
    let entries: Vec<&str> = forwarded_for.iter().flat_map(|v| v.split(',')).collect();
    // Right to left: each hop was added by the one after it.
    for entry in entries.into_iter().rev() {
        if !trusted.contains(&client) {
            break;
        }
        match parse_forwarded_entry(entry) {
            Some(ip) => client = ip,
            // Garbage (or a non-UTF-8 header) from the hop we trust: that hop is the client.
            None => break,
        }
    }
    client
}

/// `ip`, `ip:port` (v4) or `[v6]:port` / `[v6]`.
fn parse_forwarded_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<std::net::SocketAddr>() {
        return Some(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|v6| v6.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_entries_with_ports_parse() {
        assert_eq!(
            parse_forwarded_entry(" 203.0.113.7 "),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            parse_forwarded_entry("203.0.113.7:4711"),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(
            parse_forwarded_entry("[2001:db8::1]:4711"),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(
            parse_forwarded_entry("[2001:db8::1]"),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(
            parse_forwarded_entry("2001:db8::1"),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(parse_forwarded_entry("unknown"), None);
        assert_eq!(parse_forwarded_entry("_hidden"), None);
        assert_eq!(parse_forwarded_entry(""), None);
    }

    #[test]
    fn the_walk_stops_at_garbage() {
        let proxy = ip("10.0.0.1");
        let trusted = [proxy];
        // The proxy appended the client with a port: that is the client.
        assert_eq!(
            client_ip_from(proxy, &["198.51.100.9, 203.0.113.7:5000"], &trusted),
            ip("203.0.113.7")
        );
        // An unparsable last entry: the proxy's own address, never the spoofable
        // entries to its left.
        assert_eq!(
            client_ip_from(proxy, &["198.51.100.9, garbage"], &trusted),
            proxy
        );
        // An untrusted peer's header is ignored.
        assert_eq!(
            client_ip_from(ip("192.0.2.5"), &["198.51.100.9"], &trusted),
            ip("192.0.2.5")
        );
        // Through two trusted proxies.
        let two = [proxy, ip("10.0.0.2")];
        assert_eq!(
            client_ip_from(proxy, &["198.51.100.9, [2001:db8::7]:1, 10.0.0.2"], &two),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn secrets_in_paths_are_redacted() {
        assert_eq!(
            redacted_path("/api/projects/invitations/abc/accept"),
            "/api/projects/invitations/{redacted}/accept"
        );
        assert_eq!(
            redacted_path("/api/x/Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eA"),
            "/api/x/{redacted}"
        );
        let id = "0190f1c2-5a6b-7c8d-9e0f-112233445566";
        assert_eq!(
            redacted_path(&format!("/api/documents/{id}/content")),
            format!("/api/documents/{id}/content")
        );
        assert_eq!(redacted_path("/health/ready"), "/health/ready");
    }
}
