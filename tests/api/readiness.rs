//! Readiness and Redis outages: a node whose Redis stops answering stays ready (rate
//! limiting goes in-process), says so in `/health/ready`, and stops paying the Redis
//! command timeout on every rate-limited request once the circuit breaker opens.
//!
//! Redis "goes down" through a TCP proxy this test owns: the server connects through it
//! at startup (Redis must answer then), then the proxy closes its port and every
//! connection, so the server's Redis URL points at a closed port.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{Backend, TestApp, TestAppBuilder, assert_problem, redis_url},
    tcp_proxy::TcpProxy,
};

/// A proxy in front of the test Redis; the server's `REDIS_URL`.
async fn redis_proxy() -> (TcpProxy, String) {
    let upstream = redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let addr = tokio::net::lookup_host(&upstream)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = TcpProxy::start(addr).await;
    let url = format!("redis://127.0.0.1:{}", proxy.port());
    (proxy, url)
}

/// A server whose Redis is a proxy that is already shut.
async fn server_with_redis_down(backend: Backend, vars: &[(&str, &str)]) -> (TestApp, TcpProxy) {
    let (proxy, url) = redis_proxy().await;
    let mut builder = TestAppBuilder::new(backend).var("REDIS_URL", url);
    for (name, value) in vars {
        builder = builder.var(name, *value);
    }
    let app = builder.spawn().await;
    let ready: Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(
        ready["redis"], "ok",
        "Redis answers through the proxy first"
    );
    proxy.close().await;
    (app, proxy)
}

/// The value of an unlabelled counter on `/metrics` (0 when it was never written).
async fn counter(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|line| {
            let (series, value) = line.split_once(' ')?;
            (series == name).then(|| value.trim().parse::<f64>().ok())?
        })
        .unwrap_or(0.0)
}

async fn redis_down_keeps_the_node_ready_and_says_degraded(backend: Backend) {
    let (app, _proxy) = server_with_redis_down(backend, &[]).await;
    let resp = app.get("/health/ready").await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "Redis is not needed to serve"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "ready", "database": "ok", "redis": "degraded"})
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"dependency_up{dependency="redis"} 0"#)
            || metrics.contains(r#"dependency_up{dependency="redis"} 1"#),
        "the dependency gauge is exported:\n{metrics}"
    );
}

/// Not ready (the database is gone): the 503 body names what failed, it is not
/// rewritten into a generic problem.
async fn not_ready_body_names_the_failed_dependency(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    // Stopping the engine closes the database pool; the HTTP server still answers.
    app.engine.shutdown().await;
    let resp = app.get("/health/ready").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "not_ready", "database": "failed", "redis": "not_configured"})
    );
}

crate::backend_tests!(
    redis_down_keeps_the_node_ready_and_says_degraded,
    not_ready_body_names_the_failed_dependency,
);

/// With Redis refusing connections, rate-limited requests stop going to Redis after a
/// few failures (the breaker opens; counted in `rate_limiter_short_circuits_total`),
/// and the in-process limiter still enforces the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_breaker_opens_and_the_in_process_limit_still_applies() {
    let (app, _proxy) =
        server_with_redis_down(Backend::Sqlite, &[("RATE_LIMIT_AUTH_PER_IP", "20/min")]).await;
    let before = counter(&app, "rate_limiter_short_circuits_total").await;
    for _ in 0..20 {
        let resp = app
            .get("/api/auth/verify-email?token=not-a-real-token")
            .await;
        assert_ne!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    let resp = app
        .get("/api/auth/verify-email?token=not-a-real-token")
        .await;
    assert_problem(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Three failures open the breaker; the checks after it stay in-process (a probe
    // every few seconds may go out: hence a bound, not an exact count). Other tests in
    // this process only add to the counter.
    let short_circuited = counter(&app, "rate_limiter_short_circuits_total").await - before;
    assert!(
        short_circuited >= 10.0,
        "only {short_circuited} of 21 checks skipped the dead Redis"
    );
}
