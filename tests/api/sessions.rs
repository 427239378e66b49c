//! Sessions and refresh tokens: rotation, reuse detection, concurrent refreshes,
//! logout (one, all, another device), idle and absolute lifetimes, and the refusal of
//! each kind of token where the other is expected.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    backend_tests,
    helpers::{Backend, PASSWORD, TestApp, TestAppBuilder, assert_problem},
};

backend_tests!(
    refresh_rotates_and_a_replayed_token_ends_the_session,
    concurrent_refreshes_with_one_token_make_one_pair,
    logout_ends_sessions_at_once,
    sessions_expire_when_idle_and_at_their_absolute_limit,
    tokens_are_refused_in_each_others_place,
);

const EMAIL: &str = "session@example.org";

/// Sign in; (access token, refresh token).
async fn sign_in(app: &TestApp) -> (String, String) {
    let resp = app.login(EMAIL, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/api/auth/refresh", &json!({"refresh_token": token}))
        .await
}

/// The new pair from a successful refresh.
async fn refreshed(app: &TestApp, token: &str) -> (String, String) {
    let resp = refresh(app, token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn me_status(app: &TestApp, access: &str) -> StatusCode {
    app.get_auth("/api/auth/me", access).await.status()
}

async fn post_auth(app: &TestApp, path: &str, access: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
}

async fn app_with_user(backend: Backend) -> TestApp {
    let app = TestAppBuilder::new(backend).spawn().await;
    app.signed_up_user(EMAIL).await;
    app
}

async fn refresh_rotates_and_a_replayed_token_ends_the_session(backend: Backend) {
    let app = app_with_user(backend).await;
    let (access0, refresh0) = sign_in(&app).await;
    let (access1, refresh1) = refreshed(&app, &refresh0).await;
    assert_ne!(refresh0, refresh1, "each refresh hands out a new token");
    assert_eq!(me_status(&app, &access1).await, StatusCode::OK);
    assert_eq!(
        me_status(&app, &access0).await,
        StatusCode::OK,
        "same session"
    );

    // Right after the exchange, the old token is refused but the session lives on (a
    // concurrent duplicate, not necessarily an attack).
    assert_problem(
        refresh(&app, &refresh0).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_rotated",
    )
    .await;
    let (access2, refresh2) = refreshed(&app, &refresh1).await;

    // Later, an exchanged token coming back is a replay: the whole family ends.
    app.clock.advance(chrono::Duration::seconds(60));
    assert_problem(
        refresh(&app, &refresh1).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    )
    .await;
    assert_problem(
        refresh(&app, &refresh2).await,
        StatusCode::UNAUTHORIZED,
        "session_ended",
    )
    .await;
    assert_eq!(me_status(&app, &access2).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&app, &access0).await, StatusCode::UNAUTHORIZED);

    // The revocation is audited.
    let root = app.super_admin("root@example.org").await;
    let log = app
        .get_json("/api/admin/audit-log?action=session.reuse_detected", &root)
        .await;
    assert_eq!(log["items"].as_array().unwrap().len(), 1, "{log}");
}

async fn concurrent_refreshes_with_one_token_make_one_pair(backend: Backend) {
    let app = app_with_user(backend).await;
    let (_, token) = sign_in(&app).await;
    let tasks: Vec<_> = (0..8).map(|_| refresh(&app, &token)).collect();
    let statuses: Vec<StatusCode> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "exactly one refresh wins: {statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
}

async fn logout_ends_sessions_at_once(backend: Backend) {
    let app = app_with_user(backend).await;
    let (laptop, laptop_refresh) = sign_in(&app).await;
    let (phone, phone_refresh) = sign_in(&app).await;

    // Both are listed (with the sign-in of the account's set-up), the asking one
    // marked current.
    let list = app.get_json("/api/auth/sessions", &laptop).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{list}");
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(items.iter().all(|s| s["method"] == "password"));
    let phone_id = app.get_json("/api/auth/sessions", &phone).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Someone else cannot end it.
    let stranger = app.signed_up_user("stranger@example.org").await;
    let resp = app
        .client
        .delete(app.url(&format!("/api/auth/sessions/{phone_id}")))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(me_status(&app, &phone).await, StatusCode::OK);

    // The laptop ends the phone's session: its tokens stop working at once.
    let resp = app
        .client
        .delete(app.url(&format!("/api/auth/sessions/{phone_id}")))
        .bearer_auth(&laptop)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(me_status(&app, &phone).await, StatusCode::UNAUTHORIZED);
    assert_problem(
        refresh(&app, &phone_refresh).await,
        StatusCode::UNAUTHORIZED,
        "session_ended",
    )
    .await;
    assert_eq!(me_status(&app, &laptop).await, StatusCode::OK);

    // Logout ends the caller's own session.
    let resp = post_auth(&app, "/api/auth/logout", &laptop).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(me_status(&app, &laptop).await, StatusCode::UNAUTHORIZED);
    assert_problem(
        refresh(&app, &laptop_refresh).await,
        StatusCode::UNAUTHORIZED,
        "session_ended",
    )
    .await;

    // Logout everywhere ends all of them.
    let (a, _) = sign_in(&app).await;
    let (b, b_refresh) = sign_in(&app).await;
    let resp = post_auth(&app, "/api/auth/logout-all", &a).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(me_status(&app, &a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me_status(&app, &b).await, StatusCode::UNAUTHORIZED);
    assert_problem(
        refresh(&app, &b_refresh).await,
        StatusCode::UNAUTHORIZED,
        "session_ended",
    )
    .await;
    let (c, _) = sign_in(&app).await;
    let list = app.get_json("/api/auth/sessions", &c).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "only the new one: {list}"
    );
}

async fn sessions_expire_when_idle_and_at_their_absolute_limit(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .var("REFRESH_TOKEN_IDLE_DAYS", "10")
        .var("REFRESH_TOKEN_ABSOLUTE_DAYS", "25")
        .spawn()
        .await;
    app.signed_up_user(EMAIL).await;

    // Unused for longer than the idle limit: over.
    let (_, idle) = sign_in(&app).await;
    app.advance_clock(chrono::Duration::days(11)).await;
    assert_problem(
        refresh(&app, &idle).await,
        StatusCode::UNAUTHORIZED,
        "session_ended",
    )
    .await;

    // Used every 8 days it lives on, until the absolute limit.
    let (_, mut token) = sign_in(&app).await;
    for _ in 0..3 {
        app.advance_clock(chrono::Duration::days(8)).await;
        token = refreshed(&app, &token).await.1;
    }
    app.advance_clock(chrono::Duration::days(2)).await;
    assert_problem(
        refresh(&app, &token).await,
        StatusCode::UNAUTHORIZED,
        "session_ended",
    )
    .await;
}

async fn tokens_are_refused_in_each_others_place(backend: Backend) {
    let app = app_with_user(backend).await;
    let (access, refresh_token) = sign_in(&app).await;
    // A refresh token is not a bearer token.
    let resp = app.get_auth("/api/auth/me", &refresh_token).await;
    assert_problem(resp, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // An access token does not refresh.
    assert_problem(
        refresh(&app, &access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    // Nor does garbage, or an empty token.
    for bad in ["", "x", "not-a-token-we-issued"] {
        let resp = refresh(&app, bad).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
    }
    // An unknown field is refused (mass assignment).
    let resp = app
        .post_json(
            "/api/auth/refresh",
            &json!({"refresh_token": refresh_token, "user_id": "x"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Nothing above spent the real token.
    refreshed(&app, &refresh_token).await;
}
