//! Forgotten passwords (a single-use, 30-minute link by mail that ends every session)
//! and password changes (the current password proves it; other sessions end).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    backend_tests,
    helpers::{Backend, PASSWORD, TestApp, TestAppBuilder, assert_problem, extract_link},
};

backend_tests!(
    a_reset_link_sets_a_new_password_once_and_ends_every_session,
    reset_links_expire_and_only_verified_accounts_get_one,
    changing_the_password_needs_the_current_one_and_ends_other_sessions,
);

const EMAIL: &str = "forgetful@example.org";
const NEW_PASSWORD: &str = "copper lantern meadow 77";

async fn forgot(app: &TestApp, email: &str) {
    let resp = app
        .post_json("/api/auth/password/forgot", &json!({"email": email}))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
}

/// The token of the newest reset mail to `email`.
async fn reset_token(app: &TestApp, email: &str, mails: usize) -> String {
    let all = app.wait_for_mails(email, mails).await;
    let link = all
        .iter()
        .rev()
        .find_map(|m| extract_link(m, "reset-password"))
        .expect("a reset link");
    link.split("token=").nth(1).unwrap().to_owned()
}

async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/auth/password/reset",
        &json!({"token": token, "new_password": password}),
    )
    .await
}

async fn a_reset_link_sets_a_new_password_once_and_ends_every_session(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let session = app.signed_up_user(EMAIL).await;
    let before = app.outbox_mails(EMAIL).len();
    forgot(&app, EMAIL).await;
    let token = reset_token(&app, EMAIL, before + 1).await;

    // A weak password is refused and the link still works afterwards.
    let resp = reset(&app, &token, "password").await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // Every session ended; the old password is gone, the new one works.
    assert_eq!(
        app.get_auth("/api/auth/me", &session).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login(EMAIL, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login(EMAIL, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );

    // Single use.
    assert_problem(
        reset(&app, &token, "another fine passphrase 12").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reset_token_invalid",
    )
    .await;
    // A newer link replaces an older one.
    let count = app.outbox_mails(EMAIL).len();
    forgot(&app, EMAIL).await;
    let first = reset_token(&app, EMAIL, count + 1).await;
    forgot(&app, EMAIL).await;
    let second = reset_token(&app, EMAIL, count + 2).await;
    assert_ne!(first, second);
    assert_problem(
        reset(&app, &first, "another fine passphrase 12").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reset_token_invalid",
    )
    .await;
    assert_eq!(
        reset(&app, &second, "another fine passphrase 12")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

async fn reset_links_expire_and_only_verified_accounts_get_one(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    app.signed_up_user(EMAIL).await;
    let before = app.outbox_mails(EMAIL).len();
    forgot(&app, EMAIL).await;
    let token = reset_token(&app, EMAIL, before + 1).await;
    app.advance_clock(chrono::Duration::minutes(31)).await;
    assert_problem(
        reset(&app, &token, NEW_PASSWORD).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reset_token_invalid",
    )
    .await;
    assert_eq!(app.login(EMAIL, PASSWORD).await.status(), StatusCode::OK);

    // Unknown and unverified addresses get the same 202, and no mail.
    forgot(&app, "nobody@example.org").await;
    let resp = app.register("unverified@example.org", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let verification = app.wait_for_mails("unverified@example.org", 1).await;
    forgot(&app, "unverified@example.org").await;
    // A mail to a verified account goes out through the same queue: once it has, the
    // others would have too.
    let count = app.outbox_mails(EMAIL).len();
    forgot(&app, EMAIL).await;
    app.wait_for_mails(EMAIL, count + 1).await;
    assert!(app.outbox_mails("nobody@example.org").is_empty());
    assert_eq!(
        app.outbox_mails("unverified@example.org").len(),
        verification.len()
    );
    // A malformed token is refused without a lookup.
    assert_problem(
        reset(&app, "", NEW_PASSWORD).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reset_token_invalid",
    )
    .await;
}

async fn change(app: &TestApp, token: &str, current: &str, new: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/password/change"))
        .bearer_auth(token)
        .json(&json!({"current_password": current, "new_password": new}))
        .send()
        .await
        .unwrap()
}

async fn changing_the_password_needs_the_current_one_and_ends_other_sessions(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let here = app.signed_up_user(EMAIL).await;
    let elsewhere = app.token(EMAIL, PASSWORD).await;

    assert_problem(
        change(&app, &here, "not my password at all", NEW_PASSWORD).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "wrong_password",
    )
    .await;
    let resp = change(&app, &here, PASSWORD, "short").await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let resp = change(&app, &here, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // This session stays, the other one ended; only the new password works.
    assert_eq!(
        app.get_auth("/api/auth/me", &here).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_auth("/api/auth/me", &elsewhere).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login(EMAIL, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login(EMAIL, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    let mails = app.wait_for_mails(EMAIL, 2).await;
    assert!(
        mails.iter().any(|m| m.contains("password was changed")),
        "the owner is told: {mails:?}"
    );
    // Audited.
    let root = app.super_admin("root@example.org").await;
    let log: Value = app
        .get_json("/api/admin/audit-log?action=user.password_changed", &root)
        .await;
    assert_eq!(log["items"].as_array().unwrap().len(), 1, "{log}");
}
