//! Passkeys over HTTP: full ceremonies with webauthn-authenticator-rs's software passkey
//! (real keys, real signatures, the origin a browser would report), and the refused
//! cases: a replayed assertion, another user's ceremony, a wrong origin, an expired
//! ceremony, a credential registered twice, a counter that went back, no user
//! verification. The browser test (headless Chromium's virtual authenticator) is in
//! `passkeys_browser.rs`.

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest;
use uuid::Uuid;
use webauthn_authenticator_rs::{
    prelude::{CreationChallengeResponse, RequestChallengeResponse, Url, WebauthnAuthenticator},
    softpasskey::SoftPasskey,
};

use crate::{
    backend_tests,
    helpers::{Backend, TestApp, TestAppBuilder, assert_problem},
};

backend_tests!(
    passkey_registration_and_login_work_end_to_end,
    refused_ceremonies_change_nothing,
    a_credential_belongs_to_one_account_and_needs_user_verification,
    a_counter_that_goes_back_is_refused_and_audited,
    passkeys_are_listed_renamed_and_removed,
    passkeys_are_off_without_an_allowed_origin,
    sign_in_start_does_not_tell_how_many_passkeys,
    a_password_reset_removes_passkeys_and_the_mail_says_which,
);

/// How many credential ids a sign-in started with an email lists, whoever asks.
const ALLOW_LIST_LEN: usize = 20;

/// The frontend's origin, allowed by the test server (`WEBAUTHN_ORIGINS`).
const ORIGIN: &str = "http://localhost:3000";

fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

/// A software passkey that reports user verification (`SoftPasskey::new(true)`).
fn authenticator() -> SoftPasskey {
    SoftPasskey::new(true)
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = app.client.post(app.url(path)).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

async fn ok_json(resp: reqwest::Response, status: StatusCode) -> Value {
    let got = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    body
}

/// Start a registration: the ceremony id and the options for the authenticator.
async fn start_registration(app: &TestApp, token: &str) -> (String, Value) {
    let body = ok_json(
        post(app, "/api/auth/passkeys/register", Some(token), &json!({})).await,
        StatusCode::OK,
    )
    .await;
    (
        body["ceremony_id"].as_str().unwrap().to_owned(),
        body["options"].clone(),
    )
}

/// Register a passkey for the user of `token` with `key`, as a browser at `origin` would.
async fn register_with(
    app: &TestApp,
    token: &str,
    key: &mut SoftPasskey,
    origin: Url,
) -> reqwest::Response {
    let (ceremony, options) = start_registration(app, token).await;
    let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = key.do_registration(origin, options).unwrap();
    post(
        app,
        "/api/auth/passkeys/register/verify",
        Some(token),
        &json!({"ceremony_id": ceremony, "credential": credential, "name": "laptop"}),
    )
    .await
}

/// Start a login (with an email, or a discoverable one).
async fn start_login(app: &TestApp, email: Option<&str>) -> (String, Value) {
    let body = ok_json(
        post(
            app,
            "/api/auth/passkeys/login",
            None,
            &json!({"email": email}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    (
        body["ceremony_id"].as_str().unwrap().to_owned(),
        body["options"].clone(),
    )
}

/// The authenticator's answer to a login ceremony.
fn assertion(key: &mut SoftPasskey, options: Value, origin: Url) -> Value {
    let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    serde_json::to_value(key.do_authentication(origin, options).unwrap()).unwrap()
}

async fn finish_login(app: &TestApp, ceremony: &str, credential: &Value) -> reqwest::Response {
    post(
        app,
        "/api/auth/passkeys/login/verify",
        None,
        &json!({"ceremony_id": ceremony, "credential": credential}),
    )
    .await
}

async fn passkey_count(app: &TestApp) -> i64 {
    let db = app.db().await;
    alta_actors::with_db!(&db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM passkeys"
    )
    .fetch_one(pool)
    .await)
    .unwrap()
}

async fn passkey_registration_and_login_work_end_to_end(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let token = app.signed_up_user("pia@example.org").await;
    let mut key = authenticator();

    // Registration: options exclude nothing yet, ask for user verification, and name
    // our relying party.
    let (ceremony, options) = start_registration(&app, &token).await;
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    let parsed: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = key.do_registration(origin(), parsed).unwrap();
    let created = ok_json(
        post(
            &app,
            "/api/auth/passkeys/register/verify",
            Some(&token),
            &json!({"ceremony_id": ceremony, "credential": credential, "name": "laptop"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["name"], "laptop");
    assert!(created["last_used_at"].is_null());

    // A second registration excludes the passkey the user has.
    let (_, options) = start_registration(&app, &token).await;
    let excluded = options["publicKey"]["excludeCredentials"]
        .as_array()
        .unwrap();
    assert_eq!(excluded.len(), 1);
    assert_eq!(excluded[0]["id"], credential.id.as_str());

    // Login with the email: this user's passkey is among those allowed.
    let (ceremony, options) = start_login(&app, Some("pia@example.org")).await;
    assert!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == credential.id.as_str()),
        "{options}"
    );
    let answer = assertion(&mut key, options, origin());
    let tokens = ok_json(finish_login(&app, &ceremony, &answer).await, StatusCode::OK).await;
    assert_eq!(tokens["token_type"], "bearer");
    assert!(tokens["refresh_token"].as_str().unwrap().len() > 20);
    let access = tokens["access_token"].as_str().unwrap();
    let me = app.get_json("/api/auth/me", access).await;
    assert_eq!(me["email"], "pia@example.org");
    let sessions = app.get_json("/api/auth/sessions", access).await;
    let current: Vec<&Value> = sessions["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["current"] == true)
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["method"], "passkey");
    let listed = app.get_json("/api/auth/passkeys", access).await;
    assert!(listed["items"][0]["last_used_at"].is_string());

    // The same assertion again: its ceremony is spent.
    let replay = finish_login(&app, &ceremony, &answer).await;
    assert_problem(replay, StatusCode::UNPROCESSABLE_ENTITY, "invalid_ceremony").await;
    // ... and under a fresh ceremony its challenge is the wrong one.
    let (fresh, _) = start_login(&app, Some("pia@example.org")).await;
    let replay = finish_login(&app, &fresh, &answer).await;
    assert_problem(replay, StatusCode::UNAUTHORIZED, "passkey_rejected").await;

    // An address without passkeys, known or not, gets stand-in credential ids that
    // look like real ones, the same each time: the answer does not tell who has
    // passkeys (nor how many: see `sign_in_start_does_not_tell_how_many_passkeys`).
    let (_, unknown) = start_login(&app, Some("nobody@example.org")).await;
    let (_, again) = start_login(&app, Some("nobody@example.org")).await;
    app.signed_up_user("nokeys@example.org").await;
    let (_, no_keys) = start_login(&app, Some("nokeys@example.org")).await;
    let ids = |options: &Value| -> Vec<String> {
        options["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&unknown).len(), ALLOW_LIST_LEN, "{unknown}");
    assert!(
        ids(&unknown)
            .iter()
            .all(|id| id.len() == credential.id.len())
    );
    assert_eq!(ids(&unknown), ids(&again));
    assert_eq!(ids(&no_keys).len(), ALLOW_LIST_LEN);
    assert_ne!(ids(&no_keys), ids(&unknown));
    assert_eq!(unknown["publicKey"]["userVerification"], "required");
    // Without an email: the authenticator chooses (discoverable credentials).
    let (_, discoverable) = start_login(&app, None).await;
    let allowed = &discoverable["publicKey"]["allowCredentials"];
    assert!(
        allowed.is_null() || allowed.as_array().is_some_and(Vec::is_empty),
        "{discoverable}"
    );

    // Audited: the registration, and the sign-in with its method. The owner was told.
    let root = app.super_admin("root@example.org").await;
    let audit = app
        .get_json("/api/admin/audit-log?action=passkey.registered", &root)
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    let logins = app
        .get_json("/api/admin/audit-log?action=user.login", &root)
        .await;
    assert!(
        logins["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row["details"]["method"] == "passkey"),
        "{logins}"
    );
    let mails = app.wait_for_mails("pia@example.org", 2).await;
    assert!(
        mails.iter().any(|m| m.contains("A passkey was added")),
        "{mails:?}"
    );
}

async fn refused_ceremonies_change_nothing(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let ann = app.signed_up_user("ann@example.org").await;
    let bob = app.signed_up_user("bob@example.org").await;
    let mut key = authenticator();

    // Bob cannot finish Ann's registration; it stays Ann's to finish.
    let (ceremony, options) = start_registration(&app, &ann).await;
    let parsed: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = key.do_registration(origin(), parsed).unwrap();
    let body = json!({"ceremony_id": ceremony, "credential": credential});
    let stolen = post(
        &app,
        "/api/auth/passkeys/register/verify",
        Some(&bob),
        &body,
    )
    .await;
    assert_problem(stolen, StatusCode::UNPROCESSABLE_ENTITY, "invalid_ceremony").await;
    assert_eq!(passkey_count(&app).await, 0);
    let own = post(
        &app,
        "/api/auth/passkeys/register/verify",
        Some(&ann),
        &body,
    )
    .await;
    assert_eq!(own.status(), StatusCode::CREATED);
    // ... once.
    let again = post(
        &app,
        "/api/auth/passkeys/register/verify",
        Some(&ann),
        &body,
    )
    .await;
    assert_problem(again, StatusCode::UNPROCESSABLE_ENTITY, "invalid_ceremony").await;

    // A page on another origin (another port is another origin).
    let elsewhere = Url::parse("http://localhost:4000").unwrap();
    let resp = register_with(&app, &ann, &mut authenticator(), elsewhere.clone()).await;
    let problem = assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "passkey_rejected").await;
    assert_eq!(problem["field"], "credential");
    assert_eq!(passkey_count(&app).await, 1);
    let (ceremony, options) = start_login(&app, Some("ann@example.org")).await;
    let answer = assertion(&mut key, options, elsewhere);
    let resp = finish_login(&app, &ceremony, &answer).await;
    assert_problem(resp, StatusCode::UNAUTHORIZED, "passkey_rejected").await;

    // An expired ceremony (five minutes).
    let (ceremony, options) = start_login(&app, Some("ann@example.org")).await;
    let answer = assertion(&mut key, options, origin());
    app.advance_clock(chrono::Duration::seconds(301)).await;
    let resp = finish_login(&app, &ceremony, &answer).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_ceremony").await;

    // A registration ceremony is not a login ceremony, and garbage is a 400.
    let (ceremony, _) = start_registration(&app, &ann).await;
    let resp = finish_login(&app, &ceremony, &answer).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_ceremony").await;
    let (ceremony, _) = start_login(&app, None).await;
    let resp = finish_login(&app, &ceremony, &json!({"id": "nope"})).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_credential").await;
    let resp = finish_login(&app, &Uuid::new_v4().to_string(), &answer).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_ceremony").await;

    // An API token cannot register passkeys.
    let pat = ok_json(
        post(
            &app,
            "/api/auth/tokens",
            Some(&ann),
            &json!({"name": "script", "scopes": ["read", "write"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let resp = post(
        &app,
        "/api/auth/passkeys/register",
        pat["token"].as_str(),
        &json!({}),
    )
    .await;
    assert_problem(resp, StatusCode::FORBIDDEN, "session_required").await;

    // Through all that, one passkey and no sessions but the password ones.
    assert_eq!(passkey_count(&app).await, 1);
    let sessions = app.get_json("/api/auth/sessions", &ann).await;
    assert!(
        sessions["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["method"] == "password"),
        "{sessions}"
    );
}

/// A registration answer with `none` attestation, made by hand: no signature covers
/// it, so one credential id can be offered for any challenge (what a malicious client
/// could send). `flags`: 0x45 is user present + verified + attested credential data.
fn none_attestation(template: &Value, options: &Value, cred_id: &[u8], flags: u8) -> Value {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref(); // 0x04 || x || y
    let mut cose = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
    cose.extend_from_slice(&point[1..33]);
    cose.extend_from_slice(&[0x22, 0x58, 0x20]);
    cose.extend_from_slice(&point[33..65]);
    let mut auth_data = sha2::Sha256::digest(b"localhost").to_vec();
    auth_data.push(flags);
    auth_data.extend_from_slice(&[0, 0, 0, 0]); // counter
    auth_data.extend_from_slice(&[0; 16]); // AAGUID
    auth_data.extend_from_slice(&(cred_id.len() as u16).to_be_bytes());
    auth_data.extend_from_slice(cred_id);
    auth_data.extend_from_slice(&cose);
    // {"fmt": "none", "attStmt": {}, "authData": bytes}
    let mut object = vec![0xa3, 0x63];
    object.extend_from_slice(b"fmt");
    object.push(0x64);
    object.extend_from_slice(b"none");
    object.push(0x67);
    object.extend_from_slice(b"attStmt");
    object.push(0xa0);
    object.push(0x68);
    object.extend_from_slice(b"authData");
    object.push(0x59);
    object.extend_from_slice(&(auth_data.len() as u16).to_be_bytes());
    object.extend_from_slice(&auth_data);
    let client_data = json!({
        "type": "webauthn.create",
        "challenge": options["publicKey"]["challenge"],
        "origin": ORIGIN,
        "crossOrigin": false,
    });
    let mut credential = template.clone();
    credential["id"] = json!(B64.encode(cred_id));
    credential["rawId"] = json!(B64.encode(cred_id));
    credential["response"]["attestationObject"] = json!(B64.encode(&object));
    credential["response"]["clientDataJSON"] =
        json!(B64.encode(client_data.to_string().as_bytes()));
    credential
}

async fn a_credential_belongs_to_one_account_and_needs_user_verification(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let ann = app.signed_up_user("ann@example.org").await;
    let bob = app.signed_up_user("bob@example.org").await;
    // The shape of a real answer, to fill with hand-made bytes.
    let (ceremony, options) = start_registration(&app, &ann).await;
    let parsed: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let template =
        serde_json::to_value(authenticator().do_registration(origin(), parsed).unwrap()).unwrap();
    drop(ceremony);

    let cred_id = [7_u8; 32];
    let finish = |token: String, ceremony: String, credential: Value| {
        let app = &app;
        async move {
            post(
                app,
                "/api/auth/passkeys/register/verify",
                Some(&token),
                &json!({"ceremony_id": ceremony, "credential": credential}),
            )
            .await
        }
    };
    // Without user verification: refused.
    let (ceremony, options) = start_registration(&app, &ann).await;
    let unverified = none_attestation(&template, &options, &cred_id, 0x41);
    let resp = finish(ann.clone(), ceremony, unverified).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "passkey_rejected").await;
    assert_eq!(passkey_count(&app).await, 0);

    // With it: Ann's.
    let (ceremony, options) = start_registration(&app, &ann).await;
    let resp = finish(
        ann.clone(),
        ceremony,
        none_attestation(&template, &options, &cred_id, 0x45),
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "{}",
        resp.text().await.unwrap()
    );

    // The same credential id for Bob: refused. For Ann again it is among the excluded
    // credentials of her ceremony, which webauthn-rs refuses itself.
    for (token, status, code) in [
        (&bob, StatusCode::CONFLICT, "credential_registered"),
        (&ann, StatusCode::UNPROCESSABLE_ENTITY, "passkey_rejected"),
    ] {
        let (ceremony, options) = start_registration(&app, token).await;
        let resp = finish(
            token.clone(),
            ceremony,
            none_attestation(&template, &options, &cred_id, 0x45),
        )
        .await;
        assert_problem(resp, status, code).await;
    }
    assert_eq!(passkey_count(&app).await, 1);
    let bobs = app.get_json("/api/auth/passkeys", &bob).await;
    assert!(bobs["items"].as_array().unwrap().is_empty());
}

async fn a_counter_that_goes_back_is_refused_and_audited(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let ann = app.signed_up_user("ann@example.org").await;
    let mut key = authenticator();
    let resp = register_with(&app, &ann, &mut key, origin()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    // One good login moves the stored counter to the authenticator's.
    let (ceremony, options) = start_login(&app, Some("ann@example.org")).await;
    let answer = assertion(&mut key, options, origin());
    assert_eq!(
        finish_login(&app, &ceremony, &answer).await.status(),
        StatusCode::OK
    );

    // The next sign-in starts (with the email, so the ceremony holds the passkey as it
    // is now)...
    let (ceremony, options) = start_login(&app, Some("ann@example.org")).await;
    // ... and meanwhile a clone of this authenticator signs in 100 times: the answer
    // of the original carries a lower counter than the server has seen since.
    let db = app.db().await;
    let stored: String = alta_actors::with_db!(&db, |pool| sqlx::query_scalar::<_, String>(
        "SELECT passkey FROM passkeys"
    )
    .fetch_one(pool)
    .await)
    .unwrap();
    let mut passkey: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(passkey["cred"]["counter"], 1, "{passkey}");
    passkey["cred"]["counter"] = json!(100);
    let updated = passkey.to_string();
    alta_actors::with_db!(&db, |pool| sqlx::query("UPDATE passkeys SET passkey = $1")
        .bind(updated.as_str())
        .execute(pool)
        .await
        .map(|_| ()))
    .unwrap();

    let answer = assertion(&mut key, options, origin());
    let resp = finish_login(&app, &ceremony, &answer).await;
    assert_problem(resp, StatusCode::UNAUTHORIZED, "passkey_rejected").await;
    let audit = app
        .get_json(
            "/api/admin/audit-log?action=passkey.login_rejected",
            &app.super_admin("root@example.org").await,
        )
        .await;
    let rows = audit["items"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{audit}");
    assert!(
        rows[0]["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("compromised"),
        "{audit}"
    );
    // The stored counter was not moved back.
    let after: String = alta_actors::with_db!(&db, |pool| sqlx::query_scalar::<_, String>(
        "SELECT passkey FROM passkeys"
    )
    .fetch_one(pool)
    .await)
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&after).unwrap()["cred"]["counter"],
        100
    );
}

async fn passkeys_are_listed_renamed_and_removed(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let ann = app.signed_up_user("ann@example.org").await;
    let bob = app.signed_up_user("bob@example.org").await;
    let mut key = authenticator();
    let created = ok_json(
        register_with(&app, &ann, &mut key, origin()).await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/auth/passkeys/{id}");

    // Renamed by its owner; to anyone else it does not exist.
    let rename = |token: &str, name: &str| {
        app.client
            .patch(app.url(&path))
            .bearer_auth(token)
            .json(&json!({"name": name}))
            .send()
    };
    let renamed = ok_json(rename(&ann, "phone").await.unwrap(), StatusCode::OK).await;
    assert_eq!(renamed["name"], "phone");
    assert_problem(
        rename(&bob, "mine").await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let blank = rename(&ann, "  ").await.unwrap();
    assert_problem(blank, StatusCode::UNPROCESSABLE_ENTITY, "invalid_name").await;
    let listed = app.get_json("/api/auth/passkeys", &ann).await;
    assert_eq!(listed["items"][0]["name"], "phone");
    assert!(
        app.get_json("/api/auth/passkeys", &bob).await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A login started before the passkey is removed cannot finish after.
    let (ceremony, options) = start_login(&app, Some("ann@example.org")).await;
    let answer = assertion(&mut key, options, origin());
    let delete = |token: &str| app.client.delete(app.url(&path)).bearer_auth(token).send();
    assert_problem(
        delete(&bob).await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(delete(&ann).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_problem(
        delete(&ann).await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let resp = finish_login(&app, &ceremony, &answer).await;
    assert_problem(resp, StatusCode::UNAUTHORIZED, "passkey_rejected").await;
    assert_eq!(passkey_count(&app).await, 0);

    // Adding or removing a passkey needs a recent sign-in: a stolen access token of an
    // older session cannot plant one. Listing and renaming do not.
    let created = ok_json(
        register_with(&app, &ann, &mut authenticator(), origin()).await,
        StatusCode::CREATED,
    )
    .await;
    let path = format!("/api/auth/passkeys/{}", created["id"].as_str().unwrap());
    let (ceremony, options) = start_registration(&app, &ann).await;
    app.advance_clock(chrono::Duration::minutes(11)).await;
    let old = post(&app, "/api/auth/passkeys/register", Some(&ann), &json!({})).await;
    assert_problem(old, StatusCode::FORBIDDEN, "reauthentication_required").await;
    let parsed: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = authenticator().do_registration(origin(), parsed).unwrap();
    let finish = post(
        &app,
        "/api/auth/passkeys/register/verify",
        Some(&ann),
        &json!({"ceremony_id": ceremony, "credential": credential}),
    )
    .await;
    assert_problem(finish, StatusCode::FORBIDDEN, "reauthentication_required").await;
    let removal = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_problem(removal, StatusCode::FORBIDDEN, "reauthentication_required").await;
    assert_eq!(
        app.get_auth("/api/auth/passkeys", &ann).await.status(),
        StatusCode::OK
    );
    assert_eq!(passkey_count(&app).await, 1);
    // Signing in again opens the way.
    let fresh = app.token("ann@example.org", crate::helpers::PASSWORD).await;
    let removal = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(removal.status(), StatusCode::NO_CONTENT);
    // An API token may not even list them.
    let pat = ok_json(
        post(
            &app,
            "/api/auth/tokens",
            Some(&fresh),
            &json!({"name": "script", "scopes": ["read"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let listed = app
        .get_auth("/api/auth/passkeys", pat["token"].as_str().unwrap())
        .await;
    assert_problem(listed, StatusCode::FORBIDDEN, "session_required").await;
}

async fn passkeys_are_off_without_an_allowed_origin(backend: Backend) {
    // The RP is PUBLIC_URL's host, and no https origin falls under it.
    let app = TestAppBuilder::new(backend)
        .var("WEBAUTHN_RP_ID", "alta.test")
        .var("WEBAUTHN_ORIGINS", "")
        .spawn()
        .await;
    let ann = app.signed_up_user("ann@example.org").await;
    let resp = post(&app, "/api/auth/passkeys/register", Some(&ann), &json!({})).await;
    let problem = assert_problem(resp, StatusCode::NOT_IMPLEMENTED, "passkeys_disabled").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("WEBAUTHN_ORIGINS")
    );
    let resp = post(&app, "/api/auth/passkeys/login", None, &json!({})).await;
    assert_problem(resp, StatusCode::NOT_IMPLEMENTED, "passkeys_disabled").await;
}

async fn sign_in_start_does_not_tell_how_many_passkeys(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let one = app.signed_up_user("one@example.org").await;
    let two = app.signed_up_user("two@example.org").await;
    app.signed_up_user("none@example.org").await;
    let (mut a, mut b, mut c) = (authenticator(), authenticator(), authenticator());
    for (token, key) in [(&one, &mut a), (&two, &mut b), (&two, &mut c)] {
        let resp = register_with(&app, token, key, origin()).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let allowed = |options: &Value| -> Vec<(String, Value)> {
        options["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let mut rest = c.clone();
                let id = rest.as_object_mut().unwrap().remove("id").unwrap();
                (id.as_str().unwrap().to_owned(), rest)
            })
            .collect()
    };
    let mut shapes = Vec::new();
    for email in [
        "one@example.org",
        "two@example.org",
        "none@example.org",
        "nobody@example.org",
    ] {
        let (_, options) = start_login(&app, Some(email)).await;
        let list = allowed(&options);
        assert_eq!(list.len(), ALLOW_LIST_LEN, "{email}: {options}");
        // Every entry looks the same apart from its id (no transports on real ones).
        assert!(
            list.iter()
                .all(|(_, rest)| *rest == json!({"type": "public-key"})),
            "{email}: {options}"
        );
        let mut ids: Vec<String> = list.into_iter().map(|(id, _)| id).collect();
        let sorted = {
            let mut s = ids.clone();
            s.sort();
            s
        };
        assert_eq!(ids, sorted, "in id order, not real ones first");
        let (_, again) = start_login(&app, Some(email)).await;
        let mut ids_again: Vec<String> = allowed(&again).into_iter().map(|(id, _)| id).collect();
        ids.sort();
        ids_again.sort();
        assert_eq!(ids, ids_again, "{email}: the same each time");
        shapes.push(ids.len());
    }
    assert!(shapes.iter().all(|n| *n == ALLOW_LIST_LEN));

    // The account with two passkeys signs in with either.
    for key in [&mut b, &mut c] {
        let (ceremony, options) = start_login(&app, Some("two@example.org")).await;
        let answer = assertion(key, options, origin());
        let resp = finish_login(&app, &ceremony, &answer).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

async fn a_password_reset_removes_passkeys_and_the_mail_says_which(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let email = "hijacked@example.org";
    let token = app.signed_up_user(email).await;
    // A passkey planted from a hijacked session.
    let mut planted = authenticator();
    let resp = register_with(&app, &token, &mut planted, origin()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    // Its holder's sign-in, answered before the reset and sent after it.
    let (ceremony, options) = start_login(&app, Some(email)).await;
    let answer = assertion(&mut planted, options, origin());

    // The "passkey added" notice is sent by a job: count the mails once it is out.
    app.wait_for_mail_containing(email, "A passkey was added")
        .await;
    let before = app.outbox_mails(email).len();
    let resp = app
        .post_json("/api/auth/password/forgot", &json!({"email": email}))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let mails = app.wait_for_mails(email, before + 1).await;
    let link = mails
        .iter()
        .rev()
        .find_map(|m| crate::helpers::extract_link(m, "reset-password"))
        .unwrap();
    let reset = link.split("token=").nth(1).unwrap();
    let resp = app
        .post_json(
            "/api/auth/password/reset",
            &json!({"token": reset, "new_password": "copper lantern meadow 77"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    assert_eq!(passkey_count(&app).await, 0);
    let resp = finish_login(&app, &ceremony, &answer).await;
    assert_problem(resp, StatusCode::UNAUTHORIZED, "passkey_rejected").await;
    let mails = app.wait_for_mails(email, before + 2).await;
    let notice = mails.last().unwrap();
    assert!(notice.contains("Passkeys removed"), "{notice}");
    assert!(notice.contains("laptop"), "{notice}");
}
