//! Sign-up, verification, login and `/me`, on both backends.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    backend_tests,
    helpers::{Backend, PASSWORD, assert_problem, spawn_app},
};

backend_tests!(
    register_verify_login_me,
    registering_a_taken_email_looks_the_same_and_mails_the_owner,
    wrong_password_and_unknown_email_are_indistinguishable,
    unverified_account_with_wrong_password_gets_401_not_403,
    verification_links_expire,
    invalid_registrations_are_refused_and_change_nothing,
    bad_json_and_wrong_types_are_400_problems,
    resend_verification_always_202_and_mails_only_when_needed,
    bearer_tokens_are_checked,
);

async fn register_verify_login_me(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app
        .post_json(
            "/api/auth/register",
            &json!({"email": "Ada@Example.org", "password": PASSWORD, "full_name": "Ada Lovelace"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    // Before verification the right password gets 403 email_not_verified.
    assert_problem(
        app.login("ada@example.org", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    )
    .await;

    let link = app.verification_link("ada@example.org").await;
    assert!(
        link.starts_with("http://alta.test/verify-email?token="),
        "{link}"
    );
    assert_eq!(app.follow(&link).await.status(), StatusCode::OK);
    // Single use.
    assert_problem(
        app.follow(&link).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_token_invalid",
    )
    .await;

    let resp = app.login("ADA@example.org ", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3);

    // The login is recorded right after the answer (last_login_at, audit row).
    let mut me = Value::Null;
    for _ in 0..100 {
        let resp = app.get_auth("/api/auth/me", token).await;
        assert_eq!(resp.status(), StatusCode::OK);
        me = resp.json().await.unwrap();
        if me["last_login_at"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(me["email"], "ada@example.org");
    assert_eq!(me["full_name"], "Ada Lovelace");
    assert_eq!(me["role"], "user");
    assert_eq!(me["email_verified"], true);
    assert!(me["last_login_at"].is_string());
    assert!(
        me.get("password_hash").is_none(),
        "never expose the hash: {me}"
    );
}

async fn registering_a_taken_email_looks_the_same_and_mails_the_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signed_up_user("owner@example.org").await;
    // Past the sign-up mail interval of the verification mail just sent.
    app.advance_clock(chrono::Duration::minutes(6)).await;
    let fresh = app.register("someone-new@example.org", PASSWORD).await;
    let taken = app
        .register("owner@example.org", "another strong passphrase 7")
        .await;
    assert_eq!(fresh.status(), taken.status());
    let fresh: Value = fresh.json().await.unwrap();
    let taken: Value = taken.json().await.unwrap();
    assert_eq!(fresh, taken);
    let mails = app.wait_for_mails("owner@example.org", 2).await;
    assert!(
        mails[1].contains("Someone tried to sign up"),
        "{}",
        mails[1]
    );
    // The original password still works; the attempt changed nothing.
    assert_eq!(
        app.login("owner@example.org", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_problem(
        app.login("owner@example.org", "another strong passphrase 7")
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
}

async fn wrong_password_and_unknown_email_are_indistinguishable(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signed_up_user("known@example.org").await;
    let wrong = app
        .login("known@example.org", "not the password at all")
        .await;
    let unknown = app
        .login("nobody@example.org", "not the password at all")
        .await;
    assert_eq!(
        wrong.headers().get("www-authenticate"),
        unknown.headers().get("www-authenticate")
    );
    let mut wrong = assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let mut unknown =
        assert_problem(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    wrong["request_id"] = Value::Null;
    unknown["request_id"] = Value::Null;
    assert_eq!(wrong, unknown);
}

async fn unverified_account_with_wrong_password_gets_401_not_403(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        app.register("pending@example.org", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    assert_problem(
        app.login("pending@example.org", "a wrong but long password")
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
}

async fn verification_links_expire(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("late@example.org", PASSWORD).await;
    let link = app.verification_link("late@example.org").await;
    app.clock
        .advance(chrono::Duration::hours(24) + chrono::Duration::seconds(1));
    assert_problem(
        app.follow(&link).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_token_expired",
    )
    .await;
    assert_problem(
        app.login("late@example.org", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    )
    .await;
    // A fresh link works.
    let resp = app
        .post_json(
            "/api/auth/resend-verification",
            &json!({"email": "late@example.org"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    app.wait_for_mails("late@example.org", 2).await;
    let fresh = app.verification_link("late@example.org").await;
    assert_ne!(fresh, link);
    assert_eq!(app.follow(&fresh).await.status(), StatusCode::OK);
    assert_eq!(
        app.login("late@example.org", PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn invalid_registrations_are_refused_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    const CONTENT: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;
    let cases: &[(&str, &str, StatusCode, &str)] = &[
        ("not-an-email", PASSWORD, CONTENT, "invalid_email"),
        ("a@b", PASSWORD, CONTENT, "invalid_email"),
        ("x@example.org", "short-pw-1", CONTENT, "password_too_short"),
        (
            "x@example.org",
            "password1234",
            CONTENT,
            "password_too_weak",
        ),
        // Over the documented 128 characters: refused before the engine sees it.
        (
            "x@example.org",
            &"Zq9!".repeat(33),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ];
    for (email, password, status, code) in cases {
        let body = assert_problem(app.register(email, password).await, *status, code).await;
        assert!(body["field"].is_string(), "{body}");
    }
    // 64 characters of passphrase are fine.
    let long = "the quick brown fox jumps over the lazy dog, juggling 7 eggs!!!!";
    assert_eq!(long.chars().count(), 64);
    assert_eq!(
        app.register("x@example.org", long).await.status(),
        StatusCode::CREATED
    );
    // Only the valid attempt left a trace: exactly one mail.
    app.wait_for_mails("x@example.org", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.outbox_mails("x@example.org").len(), 1);
}

async fn bad_json_and_wrong_types_are_400_problems(backend: Backend) {
    let app = spawn_app(backend).await;
    let send = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/api/auth/login"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    for body in [
        "{",
        "[]",
        "{\"email\": [\"a@b.org\"], \"password\": {}}",
        "{\"email\": \"a@b.org\"}",
        "null",
        "\u{0}",
    ] {
        assert_problem(
            send(body, "application/json").await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        )
        .await;
    }
    let resp = send("email=a@b.org", "application/x-www-form-urlencoded")
        .await
        .unwrap();
    assert_problem(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    // A NUL byte inside a valid JSON string is bad input, not a crash.
    let resp = app.login("nul\u{0}@example.org", PASSWORD).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_email").await;
}

async fn resend_verification_always_202_and_mails_only_when_needed(backend: Backend) {
    let app = spawn_app(backend).await;
    app.signed_up_user("verified@example.org").await;
    app.register("pending@example.org", PASSWORD).await;
    app.wait_for_mails("pending@example.org", 1).await;
    for email in [
        "verified@example.org",
        "pending@example.org",
        "unknown@example.org",
    ] {
        let resp = app
            .post_json("/api/auth/resend-verification", &json!({"email": email}))
            .await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "{email}");
    }
    app.wait_for_mails("pending@example.org", 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.outbox_mails("verified@example.org").len(),
        1,
        "only the original verification mail"
    );
    assert!(app.outbox_mails("unknown@example.org").is_empty());
    assert_problem(
        app.post_json("/api/auth/resend-verification", &json!({"email": "nope"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_email",
    )
    .await;
}

async fn bearer_tokens_are_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.signed_up_user("bearer@example.org").await;
    let resp = app.get("/api/auth/me").await;
    assert_eq!(resp.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_problem(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_problem(
        app.get_auth("/api/auth/me", "garbage").await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let mut tampered = token.clone();
    tampered.push('x');
    assert_problem(
        app.get_auth("/api/auth/me", &tampered).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_eq!(
        app.get_auth("/api/auth/me", &token).await.status(),
        StatusCode::OK
    );
    // Access tokens live 15 minutes (on the server's clock).
    app.advance_clock(chrono::Duration::minutes(15)).await;
    assert_problem(
        app.get_auth("/api/auth/me", &token).await,
        StatusCode::UNAUTHORIZED,
        "token_expired",
    )
    .await;
}
