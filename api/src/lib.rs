//! The HTTP layer: poem-openapi services (one module per tag), the bearer security
//! scheme, problem-details errors and the middleware stack. Handlers are thin: they
//! authenticate, parse, make one engine call and map the reply (docs/ARCHITECTURE.md, rule 1).

mod admin;
mod analytics;
mod audit;
mod auth;
mod content;
mod document;
mod enums;
mod exports;
mod google;
mod health;
mod items;
mod jobs;
mod json_body;
mod labels;
mod middleware;
mod openapi_doc;
mod passkeys;
mod payload;
mod problem;
mod projects;
mod required;
mod review;
mod security;
mod tags;
mod uploads;
mod webhooks;

use std::{collections::HashMap, net::IpAddr, sync::Arc};

use alta_actors::Engine;
use poem::{
    Endpoint, EndpointExt, IntoResponse, Response, Route,
    endpoint::make_sync,
    get, handler,
    web::{Data, Html},
};
use poem_openapi::{OpenApi, OpenApiService};

pub use problem::{ApiError, Problem};

/// The OpenAPI title and version the spec is served with.
const API_TITLE: &str = "Alta Data API";

/// Renders the Prometheus exposition text.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// What the HTTP layer needs beyond the engine.
#[derive(Clone)]
pub struct ApiConfig {
    /// Origins allowed to call the API from a browser (`CORS_ORIGINS`).
    pub cors_origins: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest upload request body, in bytes (per-project limits apply within it).
    pub max_upload_bytes: usize,
    /// Peers whose `X-Forwarded-For` is believed (a load balancer). Nobody else's is.
    pub trusted_proxies: Vec<IpAddr>,
    /// The server's own origin (scheme://host[:port] of `PUBLIC_URL`), always allowed.
    pub public_origin: Option<String>,
    /// Send `Strict-Transport-Security` (when served over HTTPS).
    pub hsts: bool,
    /// Renders `/metrics`; `None` serves no `/metrics` on this app (not installed, or
    /// served on a listener of its own, `METRICS_ADDR`).
    pub metrics: Option<MetricsRender>,
    /// `METRICS_TOKEN`: `/metrics` answers only `Authorization: Bearer <token>`.
    pub metrics_token: Option<MetricsToken>,
}

/// The scrape token, kept as its SHA-256 (compared hash to hash, never logged).
#[derive(Clone)]
pub struct MetricsToken(String);

impl MetricsToken {
    pub fn new(token: &str) -> Self {
        Self(alta_actors::auth::secret_token::hash(token))
    }

    fn admits(&self, req: &poem::Request) -> bool {
        req.headers()
            .get(poem::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|token| alta_actors::auth::secret_token::hash(token.trim()) == self.0)
    }
}

/// `/metrics` alone (with `METRICS_TOKEN` when given), for a listener of its own.
pub fn metrics_app(
    render: MetricsRender,
    token: Option<MetricsToken>,
) -> impl Endpoint<Output = Response> {
    Route::new()
        .at("/metrics", get(metrics_endpoint).data(render))
        .data(token)
        .map_to_response()
}

/// Every service of the API, one per tag.
type Services = (
    auth::AuthApi,
    passkeys::PasskeysApi,
    google::GoogleApi,
    projects::ProjectsApi,
    items::DocumentsApi,
    items::VoiceApi,
    labels::LabelsApi,
    labels::DocumentAnnotationsApi,
    labels::VoiceAnnotationsApi,
    review::ReviewApi,
    analytics::AnalyticsApi,
    // poem-openapi implements OpenApi for tuples of at most 16: data out shares one.
    (exports::ExportsApi, webhooks::WebhooksApi),
    uploads::UploadsApi,
    jobs::JobsApi,
    admin::AdminApi,
    health::HealthApi,
);

fn service() -> OpenApiService<Services, ()> {
    OpenApiService::new(
        (
            auth::AuthApi,
            passkeys::PasskeysApi,
            google::GoogleApi,
            projects::ProjectsApi,
            items::DocumentsApi,
            items::VoiceApi,
            labels::LabelsApi,
            labels::DocumentAnnotationsApi,
            labels::VoiceAnnotationsApi,
            review::ReviewApi,
            analytics::AnalyticsApi,
            (exports::ExportsApi, webhooks::WebhooksApi),
            uploads::UploadsApi,
            jobs::JobsApi,
            admin::AdminApi,
            health::HealthApi,
        ),
        API_TITLE,
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Collection, processing and review of text and audio data. Every error is an RFC 9457 \
         problem document (`application/problem+json`) with a stable `code` and the `request_id` \
         to quote when asking for help.",
    )
}

/// The OpenAPI document, as served at `/api/openapi.json`.
pub fn openapi_json() -> String {
    document::document_text().to_owned()
}

/// A documentation page (Swagger UI, ReDoc) showing the served document: poem-openapi's
/// pages embed its own untightened spec, which is swapped for ours (per-operation error
/// statuses, error codes, exact schemas) so the page and `/api/openapi.json` agree.
fn documentation_page(api: &OpenApiService<impl OpenApi, ()>, html: String) -> Route {
    let html = html.replacen(&api.spec(), document::document_text(), 1);
    Route::new().at("/", get(make_sync(move |_| Html(html.clone()))))
}

/// The whole HTTP application.
pub fn app(engine: Engine, config: ApiConfig) -> impl Endpoint<Output = Response> {
    let api = service();
    let spec = openapi_json();
    let route_templates = Arc::new(operation_routes(&spec));
    let allowed = Arc::new(middleware::allowed_methods::AllowedMethods::from_spec(
        document::document(),
    ));
    let docs = documentation_page(&api, api.swagger_ui_html());
    let redoc = documentation_page(&api, api.redoc_html());
    let mut routes = Route::new()
        .nest("/", api)
        .at(
            "/api/openapi.json",
            get(openapi_endpoint).data(Arc::new(spec)),
        )
        .nest("/docs", docs)
        .nest("/redoc", redoc);
    if let Some(render) = config.metrics.clone() {
        routes = routes.at(
            "/metrics",
            get(metrics_endpoint)
                .data(render)
                .data(config.metrics_token.clone()),
        );
    }
    routes
        // `GET /` before the routes: the API nested at "/" would take it (and 404).
        .around(|next, req| async move {
            if req.method() == poem::http::Method::GET && req.uri().path() == "/" {
                return Ok(index(&req));
            }
            next.call(req).await.map(IntoResponse::into_response)
        })
        .with(middleware::BodyLimit::new(
            config.max_body_bytes,
            config.max_upload_bytes,
        ))
        .around(move |next, req| {
            middleware::problems::convert_errors(next, req, Arc::clone(&allowed))
        })
        // Outside the conversion, so it sees (and stamps) every answer as a problem.
        .with(middleware::tus::Tus)
        .with(middleware::cors(
            &config.cors_origins,
            config.public_origin.clone(),
        ))
        .with(middleware::VaryOrigin)
        .with(middleware::SecurityHeaders { hsts: config.hsts })
        .with(middleware::Observe::new(
            route_templates,
            config.trusted_proxies.clone(),
        ))
        .data(engine)
        .data(uploads::MaxUploadBytes(config.max_upload_bytes as u64))
        .map_to_response()
}

/// `GET /`: where things are, for a person who opened the server's address in a
/// browser (a page) or a program (JSON).
fn index(req: &poem::Request) -> Response {
    const LINKS: [(&str, &str); 4] = [
        (
            "/docs",
            "API documentation (Swagger UI: try every operation)",
        ),
        ("/redoc", "API documentation (ReDoc)"),
        ("/api/openapi.json", "the OpenAPI 3 document"),
        ("/health", "liveness; /health/ready for readiness"),
    ];
    let wants_html = req
        .header("accept")
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html {
        let items: String = LINKS
            .iter()
            .map(|(href, what)| format!("<li><a href=\"{href}\">{href}</a>: {what}</li>"))
            .collect();
        Response::builder()
            .content_type("text/html; charset=utf-8")
            .body(format!(
                "<!doctype html><meta charset=\"utf-8\"><title>{API_TITLE}</title>\
                 <h1>{API_TITLE}</h1><ul>{items}</ul>"
            ))
    } else {
        let body = serde_json::json!({
            "name": API_TITLE,
            "version": env!("CARGO_PKG_VERSION"),
            "docs": "/docs",
            "redoc": "/redoc",
            "openapi": "/api/openapi.json",
            "health": "/health",
        });
        Response::builder()
            .content_type("application/json")
            .body(body.to_string())
    }
}

#[handler]
fn openapi_endpoint(spec: Data<&Arc<String>>) -> impl IntoResponse {
    Response::builder()
        .content_type("application/json")
        .body(spec.0.as_str().to_owned())
}

#[handler]
fn metrics_endpoint(
    req: &poem::Request,
    render: Data<&MetricsRender>,
    token: Data<&Option<MetricsToken>>,
) -> Response {
    if let Some(token) = token.0
        && !token.admits(req)
    {
        metrics::counter!(METRICS_SCRAPES_REFUSED_TOTAL).increment(1);
        let mut resp = middleware::problems::problem_response(Problem::new(
            poem::http::StatusCode::UNAUTHORIZED,
            alta_actors::ErrorCode::Unauthorized,
            "the metrics scrape token is required (Authorization: Bearer …)",
        ));
        resp.headers_mut().insert(
            poem::http::header::WWW_AUTHENTICATE,
            poem::http::HeaderValue::from_static("Bearer"),
        );
        return resp;
    }
    Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(render.0())
}

/// Scrapes of `/metrics` refused for a missing or wrong `METRICS_TOKEN`.
pub const METRICS_SCRAPES_REFUSED_TOTAL: &str = "metrics_scrapes_refused_total";

/// operationId → path template, read from the spec: the `route` label of HTTP metrics.
fn operation_routes(spec: &str) -> HashMap<String, String> {
    let mut routes = HashMap::new();
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(spec) else {
        return routes;
    };
    if let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) {
        for (path, ops) in paths {
            for op in ops.as_object().into_iter().flat_map(|o| o.values()) {
                if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                    routes.insert(id.to_owned(), path.clone());
                }
            }
        }
    }
    routes
}
