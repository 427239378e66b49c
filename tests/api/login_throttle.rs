//! Failed logins slow down the next attempt on that address (a growing delay, not a
//! lockout), the same for addresses with and without an account, and a success starts
//! afresh. There is no hourly cap an attacker could use to lock the owner out. The delay
//! schedule is unit-tested in `auth::throttle`.

use reqwest::StatusCode;

use crate::{
    backend_tests,
    helpers::{Backend, PASSWORD, TestApp, TestAppBuilder, assert_problem},
};

backend_tests!(
    failed_logins_delay_the_next_attempt_without_locking_the_owner_out,
    many_failures_in_an_hour_never_lock_the_owner_out,
);

const WRONG: &str = "not the password at all";

/// Seconds of a 429's `Retry-After`.
async fn throttled(app: &TestApp, email: &str, password: &str) -> i64 {
    let resp = app.login(email, password).await;
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    assert_problem(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    retry
}

async fn failed_logins_delay_the_next_attempt_without_locking_the_owner_out(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    app.signed_up_user("owner@example.org").await;

    for email in ["owner@example.org", "nobody@example.org"] {
        // Three typos are free; the fourth attempt must wait, whatever the password.
        for _ in 0..3 {
            assert_eq!(
                app.login(email, WRONG).await.status(),
                StatusCode::UNAUTHORIZED
            );
        }
        assert_eq!(throttled(&app, email, WRONG).await, 1, "{email}");
        assert_eq!(
            throttled(&app, email, PASSWORD).await,
            1,
            "not even checked"
        );
        // After the delay it is checked again; the next delay is longer.
        app.clock.advance(chrono::Duration::seconds(1));
        assert_eq!(
            app.login(email, WRONG).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(throttled(&app, email, WRONG).await, 2, "{email}");
    }

    // The owner waits the delay out and signs in; the run of failures is over.
    app.clock.advance(chrono::Duration::seconds(2));
    assert_eq!(
        app.login("owner@example.org", PASSWORD).await.status(),
        StatusCode::OK
    );
    for _ in 0..3 {
        assert_eq!(
            app.login("owner@example.org", WRONG).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Failures of the account are audited.
    let root = app.super_admin("root@example.org").await;
    let log = app
        .get_json("/api/admin/audit-log?action=user.login_failed", &root)
        .await;
    assert_eq!(log["items"].as_array().unwrap().len(), 7, "{log}");
}

/// An attacker failing logins for the owner's address all hour long only ever makes
/// the owner wait the longest delay (30 s), never the rest of the hour.
async fn many_failures_in_an_hour_never_lock_the_owner_out(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    app.signed_up_user("owner@example.org").await;
    for _ in 0..110 {
        assert_eq!(
            app.login("owner@example.org", WRONG).await.status(),
            StatusCode::UNAUTHORIZED
        );
        app.clock.advance(chrono::Duration::seconds(30));
    }
    // Well within the hour of the first failure, and past the last delay: the owner
    // signs in.
    assert_eq!(
        app.login("owner@example.org", PASSWORD).await.status(),
        StatusCode::OK
    );
}
