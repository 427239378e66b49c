//! Issue 13: an address belongs to whoever confirms it (no pre-hijacking), credentials
//! do not outlive recovery (reset, change, sign-out everywhere), API tokens need a
//! recent sign-in and cannot manage the account, sign-up mail is not a mail cannon,
//! and auth bodies refuse unknown fields.

use alta_actors::store::{
    self, api_tokens::ApiTokenRow, passkeys::PasskeyRow, sessions::SessionRow,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    backend_tests,
    helpers::{Backend, PASSWORD, TestApp, TestAppBuilder, assert_problem, extract_link},
};

backend_tests!(
    a_newer_registration_replaces_the_pending_password_and_kills_older_links,
    the_mailed_link_is_a_frontend_page_so_scanners_confirm_nothing,
    confirming_an_address_ends_credentials_made_before,
    a_reset_revokes_api_tokens_and_the_mail_says_which,
    change_and_logout_all_revoke_api_tokens_unless_kept,
    creating_an_api_token_needs_a_recent_sign_in_and_mails_the_owner,
    api_tokens_cannot_manage_the_account,
    sign_up_mails_an_address_at_most_once_per_interval,
    auth_bodies_refuse_unknown_fields,
);

const ATTACKER_PASSWORD: &str = "marble falcon quarry 19";
const NEW_PASSWORD: &str = "copper lantern meadow 77";

fn verification_links(app: &TestApp, to: &str) -> Vec<String> {
    app.outbox_mails(to)
        .iter()
        .filter_map(|m| extract_link(m, "verify-email"))
        .collect()
}

/// The newest verification link to `to` other than `old`, once it is in the outbox.
/// Mail is sent at least once: the clock the test moves on can end the lease of the job
/// that sent `old` before that job is marked done, and it may then send `old` again.
async fn newer_verification_link(app: &TestApp, to: &str, old: &str) -> String {
    for _ in 0..200 {
        let links = verification_links(app, to);
        if let Some(newer) = links.into_iter().rev().find(|link| link != old) {
            return newer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no verification link to {to} but {old}");
}

async fn create_token(app: &TestApp, bearer: &str, name: &str, scopes: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/tokens"))
        .bearer_auth(bearer)
        .json(&json!({"name": name, "scopes": scopes}))
        .send()
        .await
        .unwrap()
}

/// (secret, id) of a new token.
async fn token(app: &TestApp, bearer: &str, name: &str, scopes: Value) -> (String, String) {
    let resp = create_token(app, bearer, name, scopes).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    (
        body["token"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    )
}

async fn status_of_me(app: &TestApp, bearer: &str) -> StatusCode {
    app.get_auth("/api/auth/me", bearer).await.status()
}

async fn a_newer_registration_replaces_the_pending_password_and_kills_older_links(
    backend: Backend,
) {
    let app = TestAppBuilder::new(backend).spawn().await;
    // The attacker registers the victim's address first.
    assert_eq!(
        app.register("victim@example.org", ATTACKER_PASSWORD)
            .await
            .status(),
        StatusCode::CREATED
    );
    let attackers = app.verification_link("victim@example.org").await;
    // Later the victim signs up with their own password.
    app.advance_clock(chrono::Duration::minutes(10)).await;
    assert_eq!(
        app.register("victim@example.org", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let victims = newer_verification_link(&app, "victim@example.org", &attackers).await;

    // The attacker's link died with the newer registration.
    assert_problem(
        app.follow(&attackers).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verification_token_invalid",
    )
    .await;
    assert_eq!(app.follow(&victims).await.status(), StatusCode::OK);
    assert_problem(
        app.login("victim@example.org", ATTACKER_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        app.login("victim@example.org", PASSWORD).await.status(),
        StatusCode::OK
    );

    // A double submit (the same password again) does not kill the link it sent.
    assert_eq!(
        app.register("twice@example.org", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let first = app.verification_link("twice@example.org").await;
    assert_eq!(
        app.register("twice@example.org", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(app.follow(&first).await.status(), StatusCode::OK);
}

async fn the_mailed_link_is_a_frontend_page_so_scanners_confirm_nothing(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    app.register("scanned@example.org", PASSWORD).await;
    let link = app.verification_link("scanned@example.org").await;
    assert!(
        link.starts_with("http://alta.test/verify-email?token="),
        "{link}"
    );
    // A mail scanner fetches the link as it is: the API serves no such page, and the
    // address stays unconfirmed.
    let path = link.strip_prefix("http://alta.test").unwrap();
    assert_ne!(app.get(path).await.status(), StatusCode::OK);
    assert_problem(
        app.login("scanned@example.org", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    )
    .await;
    // The page posts the token to the API, which confirms it.
    let token = link.split("token=").nth(1).unwrap();
    let resp = app
        .get(&format!("/api/auth/verify-email?token={token}"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        app.login("scanned@example.org", PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn confirming_an_address_ends_credentials_made_before(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    app.register("early@example.org", PASSWORD).await;
    let link = app.verification_link("early@example.org").await;
    // Credentials of the unconfirmed account (no API path makes them today; they are
    // written as the store would, to prove confirmation ends whatever exists).
    let db = app.db().await;
    let user = store::users::find_by_email(&db, "early@example.org")
        .await
        .unwrap()
        .unwrap();
    let now = chrono::Utc::now();
    let secret = format!("alta_pat_{}", "B".repeat(43));
    let session_id = Uuid::now_v7();
    let mut tx = db.begin().await.unwrap();
    store::api_tokens::insert(
        &mut tx,
        &ApiTokenRow {
            id: Uuid::now_v7(),
            user_id: user.id,
            name: "planted".into(),
            prefix: secret.chars().take(15).collect(),
            scopes: "read write".into(),
            created_at: now,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        },
        &alta_actors::auth::secret_token::hash(&secret),
    )
    .await
    .unwrap();
    store::sessions::insert(
        &mut tx,
        &SessionRow {
            id: session_id,
            user_id: user.id,
            method: "password".into(),
            user_agent: None,
            ip: None,
            created_at: now,
            last_used_at: now,
            idle_expires_at: now + chrono::Duration::days(30),
            absolute_expires_at: now + chrono::Duration::days(90),
            revoked_at: None,
            revoked_reason: None,
        },
    )
    .await
    .unwrap();
    store::passkeys::insert(
        &mut tx,
        &PasskeyRow {
            id: Uuid::now_v7(),
            user_id: user.id,
            credential_id: "planted-credential".into(),
            name: "planted".into(),
            passkey: "{}".into(),
            created_at: now,
            last_used_at: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(status_of_me(&app, &secret).await, StatusCode::OK);

    assert_eq!(app.follow(&link).await.status(), StatusCode::OK);

    assert_eq!(status_of_me(&app, &secret).await, StatusCode::UNAUTHORIZED);
    let mut tx = db.begin().await.unwrap();
    let session = store::sessions::find_tx(&mut tx, session_id)
        .await
        .unwrap()
        .unwrap();
    let passkeys = store::passkeys::count_of_user(&mut tx, user.id)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(session.revoked_at.is_some(), "{session:?}");
    assert_eq!(passkeys, 0);
}

async fn a_reset_revokes_api_tokens_and_the_mail_says_which(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let session = app.signed_up_user("owner@example.org").await;
    let (pipeline, _) = token(&app, &session, "nightly pipeline", json!(["read", "write"])).await;
    assert_eq!(status_of_me(&app, &pipeline).await, StatusCode::OK);

    // The "token created" notice is sent by a job: count the mails once it is out.
    app.wait_for_mail_containing("owner@example.org", "personal access token")
        .await;
    let before = app.outbox_mails("owner@example.org").len();
    app.post_json(
        "/api/auth/password/forgot",
        &json!({"email": "owner@example.org"}),
    )
    .await;
    let mails = app.wait_for_mails("owner@example.org", before + 1).await;
    let link = mails
        .iter()
        .rev()
        .find_map(|m| extract_link(m, "reset-password"))
        .unwrap();
    let reset_token = link.split("token=").nth(1).unwrap();
    let resp = app
        .post_json(
            "/api/auth/password/reset",
            &json!({"token": reset_token, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    assert_eq!(
        status_of_me(&app, &pipeline).await,
        StatusCode::UNAUTHORIZED
    );
    // Mail goes out at least once: wait for the notice itself, not for a count (a
    // mail job whose lease ran out under load may send its mail twice).
    let notice = app
        .wait_for_mail_containing("owner@example.org", "was reset")
        .await;
    assert!(notice.contains("nightly pipeline"), "{notice}");
}

async fn change_password(app: &TestApp, bearer: &str, from: &str, to: &str, keep: Option<bool>) {
    let mut body = json!({"current_password": from, "new_password": to});
    if let Some(keep) = keep {
        body["keep_api_tokens"] = json!(keep);
    }
    let resp = app
        .client
        .post(app.url("/api/auth/password/change"))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

async fn logout_all(app: &TestApp, bearer: &str, query: &str) {
    let resp = app
        .client
        .post(app.url(&format!("/api/auth/logout-all{query}")))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

async fn change_and_logout_all_revoke_api_tokens_unless_kept(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let email = "careful@example.org";
    let session = app.signed_up_user(email).await;
    let (kept, _) = token(&app, &session, "kept", json!(["read"])).await;

    // Asked to keep them: they keep working.
    change_password(&app, &session, PASSWORD, NEW_PASSWORD, Some(true)).await;
    assert_eq!(status_of_me(&app, &kept).await, StatusCode::OK);
    // By default a change revokes them.
    change_password(&app, &session, NEW_PASSWORD, PASSWORD, None).await;
    assert_eq!(status_of_me(&app, &kept).await, StatusCode::UNAUTHORIZED);

    let (survivor, _) = token(&app, &session, "survivor", json!(["read"])).await;
    logout_all(&app, &session, "?keep_api_tokens=true").await;
    assert_eq!(status_of_me(&app, &survivor).await, StatusCode::OK);
    let session = app.token(email, PASSWORD).await;
    let (doomed, _) = token(&app, &session, "doomed", json!(["read"])).await;
    logout_all(&app, &session, "").await;
    assert_eq!(status_of_me(&app, &doomed).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status_of_me(&app, &survivor).await,
        StatusCode::UNAUTHORIZED
    );
}

async fn creating_an_api_token_needs_a_recent_sign_in_and_mails_the_owner(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let email = "scripts@example.org";
    let old_session = app.signed_up_user(email).await;
    app.advance_clock(chrono::Duration::minutes(11)).await;
    assert_problem(
        create_token(&app, &old_session, "late", json!(["read"])).await,
        StatusCode::FORBIDDEN,
        "reauthentication_required",
    )
    .await;
    let before = app.outbox_mails(email).len();
    let fresh = app.token(email, PASSWORD).await;
    let (secret, _) = token(&app, &fresh, "export job", json!(["read"])).await;
    assert_eq!(status_of_me(&app, &secret).await, StatusCode::OK);
    let mails = app.wait_for_mails(email, before + 1).await;
    let notice = mails.last().unwrap();
    assert!(notice.contains("personal access token"), "{notice}");
    assert!(notice.contains("export job"), "{notice}");
    // The refused attempt made nothing.
    let list = app.get_json("/api/auth/tokens", &fresh).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
}

async fn api_tokens_cannot_manage_the_account(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let session = app.signed_up_user("owner@example.org").await;
    let (reader, _) = token(&app, &session, "reader", json!(["read"])).await;
    let (writer, _) = token(&app, &session, "writer", json!(["read", "write"])).await;
    let (_, other_id) = token(&app, &session, "other", json!(["read"])).await;

    for path in ["/api/auth/sessions", "/api/auth/tokens"] {
        for bearer in [&reader, &writer] {
            assert_problem(
                app.get_auth(path, bearer).await,
                StatusCode::FORBIDDEN,
                "session_required",
            )
            .await;
        }
    }
    let resp = app
        .client
        .delete(app.url(&format!("/api/auth/tokens/{other_id}")))
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::FORBIDDEN, "session_required").await;
    // The session still manages them all.
    let list = app.get_json("/api/auth/tokens", &session).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3, "{list}");
    assert_eq!(
        app.get_auth("/api/auth/sessions", &session).await.status(),
        StatusCode::OK
    );
}

async fn sign_up_mails_an_address_at_most_once_per_interval(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .var("REGISTER_MAIL_INTERVAL_SECONDS", "300")
        .spawn()
        .await;
    // An unconfirmed address: one link, however often it is registered.
    for _ in 0..4 {
        assert_eq!(
            app.register("pending@example.org", PASSWORD).await.status(),
            StatusCode::CREATED
        );
    }
    app.wait_for_mails("pending@example.org", 1).await;
    // A confirmed address: one "someone tried to sign up" notice.
    app.signed_up_user("taken@example.org").await;
    app.advance_clock(chrono::Duration::seconds(301)).await;
    for _ in 0..4 {
        assert_eq!(
            app.register("taken@example.org", "another strong passphrase 7")
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    app.wait_for_mails("taken@example.org", 2).await;
    // Once the interval has passed, the next attempt mails again.
    app.advance_clock(chrono::Duration::seconds(301)).await;
    app.register("pending@example.org", PASSWORD).await;
    app.register("taken@example.org", "another strong passphrase 7")
        .await;
    app.wait_for_mails("pending@example.org", 2).await;
    app.wait_for_mails("taken@example.org", 3).await;
    // Let the queue drain: nothing more arrives.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.outbox_mails("pending@example.org").len(), 2);
    assert_eq!(app.outbox_mails("taken@example.org").len(), 3);
}

async fn auth_bodies_refuse_unknown_fields(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    for (path, body) in [
        (
            "/api/auth/register",
            json!({"email": "x@example.org", "password": PASSWORD, "role": "super_admin"}),
        ),
        (
            "/api/auth/login",
            json!({"email": "x@example.org", "password": PASSWORD, "role": "super_admin"}),
        ),
        (
            "/api/auth/password/forgot",
            json!({"email": "x@example.org", "role": "super_admin"}),
        ),
        (
            "/api/auth/resend-verification",
            json!({"email": "x@example.org", "role": "super_admin"}),
        ),
    ] {
        let problem = assert_problem(
            app.post_json(path, &body).await,
            StatusCode::BAD_REQUEST,
            "invalid_body",
        )
        .await;
        assert!(
            problem["detail"].as_str().unwrap().contains("role"),
            "{path}: {problem}"
        );
    }
    // An item's text body too (parsed before the item is looked up: 400, not 404).
    let bearer = app.signed_up_user("writer@example.org").await;
    let resp = app
        .client
        .put(app.url(&format!("/api/documents/{}/text", Uuid::now_v7())))
        .bearer_auth(&bearer)
        .json(&json!({"text": "hello", "status": "approved"}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(resp, StatusCode::BAD_REQUEST, "invalid_body").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("status"),
        "{problem}"
    );
    // The refused registration made nothing.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(app.outbox_mails("x@example.org").is_empty());
}
