//! Rate limiting: 429 with Retry-After, per account and per IP, in-process and in Redis.

use reqwest::StatusCode;

use crate::helpers::{Backend, PASSWORD, TestAppBuilder, assert_problem, redis_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_limited_per_account_with_retry_after() {
    let app = TestAppBuilder::new(Backend::Sqlite)
        .var("RATE_LIMIT_AUTH_PER_ACCOUNT", "3/min")
        .spawn()
        .await;
    for _ in 0..3 {
        assert_eq!(
            app.login("victim@example.org", "wrong password guess")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let resp = app
        .login("victim@example.org", "wrong password guess")
        .await;
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "retry after {retry_after}");
    assert_problem(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Another account is not affected.
    assert_eq!(
        app.login("other@example.org", "wrong password guess")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarded_for_does_not_reset_the_ip_limit() {
    let app = TestAppBuilder::new(Backend::Sqlite)
        .var("RATE_LIMIT_AUTH_PER_IP", "2/min")
        .spawn()
        .await;
    for i in 0..2 {
        let resp = app
            .client
            .post(app.url("/api/auth/register"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&serde_json::json!({"email": format!("u{i}@example.org"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let resp = app
        .client
        .post(app.url("/api/auth/register"))
        .header("x-forwarded-for", "198.51.100.77")
        .json(&serde_json::json!({"email": "u9@example.org", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// Two servers sharing one Redis share one budget: the limit is global, not per node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_limiter_is_shared_between_nodes() {
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let node = |backend| {
        TestAppBuilder::new(backend)
            .var("REDIS_URL", redis_url())
            .var("REDIS_KEY_PREFIX", prefix.clone())
            .var("RATE_LIMIT_AUTH_PER_ACCOUNT", "4/min")
            .spawn()
    };
    let a = node(Backend::Sqlite).await;
    let b = node(Backend::Sqlite).await;
    let ready: serde_json::Value = a.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["redis"], "ok");
    for app in [&a, &b, &a, &b] {
        assert_eq!(
            app.login("shared@example.org", "wrong password guess")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_problem(
        b.login("shared@example.org", "wrong password guess").await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    assert_problem(
        a.login("shared@example.org", "wrong password guess").await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
}

/// The Redis limiter is exercised on PostgreSQL too (the multi-node configuration).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_limiter_on_postgres_answers_429() {
    let app = TestAppBuilder::new(Backend::Postgres)
        .var("REDIS_URL", redis_url())
        .var("RATE_LIMIT_AUTH_PER_IP", "2/min")
        .var("MULTI_NODE", "true")
        .spawn()
        .await;
    for _ in 0..2 {
        assert_eq!(
            app.login("pg@example.org", "wrong password guess")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let resp = app.login("pg@example.org", "wrong password guess").await;
    assert!(resp.headers().contains_key("retry-after"));
    assert_problem(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// Behind a trusted proxy that writes `ip:port` (or `[v6]:port`), the address it wrote
/// is the client's, whatever the client put to its left; an entry the proxy wrote that
/// is not an address makes the proxy itself the client. Either way rotating the
/// spoofed part does not reset the per-IP limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_entries_with_ports_are_the_client() {
    let app = TestAppBuilder::new(Backend::Sqlite)
        .var("RATE_LIMIT_AUTH_PER_IP", "2/min")
        .var("TRUSTED_PROXIES", "127.0.0.1")
        .spawn()
        .await;
    let verify = |forwarded: String| {
        app.client
            .get(app.url("/api/auth/verify-email?token=not-a-real-token"))
            .header("x-forwarded-for", forwarded)
            .send()
    };
    for (round, written_by_proxy) in ["203.0.113.7:5555", "[2001:db8::7]:443", "unknown"]
        .into_iter()
        .enumerate()
    {
        for i in 0..2 {
            let resp = verify(format!("198.51.100.{round}{i}, {written_by_proxy}"))
                .await
                .unwrap();
            assert_ne!(
                resp.status(),
                StatusCode::TOO_MANY_REQUESTS,
                "{written_by_proxy}: request {i} is within the limit"
            );
        }
        let resp = verify(format!("198.51.100.{round}9, {written_by_proxy}"))
            .await
            .unwrap();
        assert_problem(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }
}
