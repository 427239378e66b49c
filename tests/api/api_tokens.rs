//! Personal access tokens: created from a signed-in session, shown once, stored hashed,
//! usable as bearer tokens within their scope and lifetime, listed and revoked.

use alta_actors::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    backend_tests,
    helpers::{Backend, TestApp, TestAppBuilder, assert_problem},
};

backend_tests!(
    a_token_works_within_its_scope_until_revoked,
    tokens_are_checked_when_made_and_expire,
);

async fn create(app: &TestApp, bearer: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/tokens"))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// (secret, id) of a new token.
async fn created(app: &TestApp, bearer: &str, body: Value) -> (String, String) {
    let resp = create(app, bearer, body).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    let secret = body["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("alta_pat_"), "{secret}");
    assert!(secret.starts_with(body["prefix"].as_str().unwrap()));
    (secret, body["id"].as_str().unwrap().to_owned())
}

async fn create_project(app: &TestApp, bearer: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/projects"))
        .bearer_auth(bearer)
        .json(&json!({"name": format!("via token {}", uuid::Uuid::new_v4())}))
        .send()
        .await
        .unwrap()
}

async fn a_token_works_within_its_scope_until_revoked(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let session = app.signed_up_user("scripts@example.org").await;
    let (reader, reader_id) = created(
        &app,
        &session,
        json!({"name": "dashboards", "scopes": ["read"]}),
    )
    .await;
    let (writer, _) = created(
        &app,
        &session,
        json!({"name": "pipeline", "scopes": ["read", "write"]}),
    )
    .await;

    // Both read; only the writer changes things.
    let me = app.get_json("/api/auth/me", &reader).await;
    assert_eq!(me["email"], "scripts@example.org");
    assert_problem(
        create_project(&app, &reader).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    )
    .await;
    assert_eq!(
        create_project(&app, &writer).await.status(),
        StatusCode::CREATED
    );

    // A token cannot make tokens, change the password or end sessions.
    let resp = create(&app, &writer, json!({"name": "more", "scopes": ["read"]})).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "session_required").await;

    // Listed without secrets, with their last use.
    let list = app.get_json("/api/auth/tokens", &session).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert!(items.iter().all(|t| t.get("token").is_none()), "{list}");
    let dashboards = items.iter().find(|t| t["name"] == "dashboards").unwrap();
    assert!(dashboards["last_used_at"].is_string(), "{dashboards}");
    assert_eq!(dashboards["scopes"], json!(["read"]));

    // Someone else cannot revoke it; its owner can, and it stops working at once.
    let stranger = app.signed_up_user("stranger@example.org").await;
    let path = format!("/api/auth/tokens/{reader_id}");
    let resp = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get_auth("/api/auth/me", &reader).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_eq!(
        app.get_auth("/api/auth/me", &writer).await.status(),
        StatusCode::OK
    );
    // A made-up token of the right shape is refused.
    let fake = format!("alta_pat_{}", "A".repeat(43));
    assert_eq!(
        app.get_auth("/api/auth/me", &fake).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn tokens_are_checked_when_made_and_expire(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let session = app.signed_up_user("scripts@example.org").await;
    for (body, code) in [
        (json!({"name": "", "scopes": ["read"]}), "invalid_name"),
        // Outside the documented enum and bounds: refused before the engine.
        (json!({"name": "x", "scopes": []}), "invalid_body"),
        (json!({"name": "x", "scopes": ["admin"]}), "invalid_body"),
        (json!({"name": "x", "scopes": ["write"]}), "invalid_scopes"),
        (
            json!({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}),
            "invalid_expiry",
        ),
    ] {
        // The schema refuses what it can state (400); the rest is refused content (422).
        let status = if code == "invalid_body" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        assert_problem(create(&app, &session, body).await, status, code).await;
    }
    let resp = create(
        &app,
        &session,
        json!({"name": "x", "scopes": ["read"], "user_id": "y"}),
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "unknown fields are refused"
    );
    let list = app.get_json("/api/auth/tokens", &session).await;
    assert!(
        list["items"].as_array().unwrap().is_empty(),
        "nothing was made: {list}"
    );

    let expires = (app.clock.now() + chrono::Duration::days(1)).to_rfc3339();
    let (token, _) = created(
        &app,
        &session,
        json!({"name": "a day", "scopes": ["read"], "expires_at": expires}),
    )
    .await;
    assert_eq!(
        app.get_auth("/api/auth/me", &token).await.status(),
        StatusCode::OK
    );
    app.advance_clock(chrono::Duration::days(2)).await;
    assert_eq!(
        app.get_auth("/api/auth/me", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
