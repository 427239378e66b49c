//! Projects, members and invitations, on both backends.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    backend_tests,
    helpers::{Backend, PASSWORD, TestApp, TestAppBuilder, assert_problem, extract_link},
};

backend_tests!(
    project_lifecycle_with_soft_delete_and_restore,
    server_owned_fields_are_refused,
    invitations_cover_the_edge_cases,
    the_last_admin_survives_concurrent_demotions,
    one_invitation_is_accepted_once,
    audit_log_records_and_filters_changes,
    project_actors_come_back_after_idling,
);

pub async fn create_project(app: &TestApp, token: &str, name: &str) -> String {
    let resp = app
        .client
        .post(app.url("/api/projects"))
        .bearer_auth(token)
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// Invite `email` with `role` (as `admin_token`), sign them up, accept; their token.
pub async fn join(
    app: &TestApp,
    admin_token: &str,
    project: &str,
    email: &str,
    role: &str,
) -> String {
    let resp = invite(app, admin_token, project, email, role).await;
    assert_eq!(resp.status(), StatusCode::CREATED, "invite {email}");
    let token = app.signed_up_user(email).await;
    let invitation = invitation_token(app, email).await;
    let resp = accept(app, &token, &invitation).await;
    assert_eq!(resp.status(), StatusCode::OK, "accept by {email}");
    token
}

async fn invite(
    app: &TestApp,
    token: &str,
    project: &str,
    email: &str,
    role: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/projects/{project}/invite")))
        .bearer_auth(token)
        .json(&json!({"email": email, "role": role}))
        .send()
        .await
        .unwrap()
}

async fn accept(app: &TestApp, token: &str, invitation: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/projects/invitations/{invitation}/accept")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The token of the newest invitation mail to `email`.
async fn invitation_token(app: &TestApp, email: &str) -> String {
    for _ in 0..200 {
        if let Some(link) = app
            .outbox_mails(email)
            .iter()
            .rev()
            .find_map(|m| extract_link(m, "invitations/accept"))
        {
            return link.rsplit("token=").next().unwrap().to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no invitation mail to {email}");
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn project_lifecycle_with_soft_delete_and_restore(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let root = app.super_admin("root@example.org").await;
    let owner = app.signed_up_user("owner@example.org").await;
    let id = create_project(&app, &owner, "Swahili News").await;
    create_project(&app, &owner, "Yoruba radio").await;

    let got: Value = app
        .get_auth(&format!("/api/projects/{id}"), &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["name"], "Swahili News");
    assert_eq!(got["my_role"], "admin");
    assert_eq!(got["settings"]["reviews_required"], 1);
    assert_eq!(got["settings"]["max_document_bytes"], 50 * 1024 * 1024);

    // List, search (case-insensitive), role filter, and a stranger sees nothing.
    let list: Value = app
        .get_auth("/api/projects?search=swahili", &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let list: Value = app
        .get_auth("/api/projects?role=admin&limit=1", &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["next_cursor"].is_string());
    let stranger = app.signed_up_user("stranger@example.org").await;
    let list: Value = app
        .get_auth("/api/projects", &stranger)
        .await
        .json()
        .await
        .unwrap();
    assert!(list["items"].as_array().unwrap().is_empty());
    assert_problem(
        app.get_auth(&format!("/api/projects/{id}"), &stranger)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // A super admin sees every project.
    let list: Value = app
        .get_auth("/api/projects", &root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // Update: name, description, settings (validated).
    let mut settings = got["settings"].clone();
    settings["reviews_required"] = json!(2);
    let resp = send(&app, reqwest::Method::PUT, &format!("/api/projects/{id}"), &owner,
        Some(json!({"name": "Swahili news 2026", "description": "Radio bulletins", "settings": settings}))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let updated: Value = resp.json().await.unwrap();
    assert_eq!(updated["settings"]["reviews_required"], 2);
    assert_eq!(updated["description"], "Radio bulletins");
    settings["reviews_required"] = json!(0);
    let resp = send(
        &app,
        reqwest::Method::PUT,
        &format!("/api/projects/{id}"),
        &owner,
        Some(json!({"name": "x", "settings": settings})),
    )
    .await;
    // Out of the documented range: refused before the engine sees it.
    let problem = assert_problem(resp, StatusCode::BAD_REQUEST, "invalid_body").await;
    assert_eq!(problem["field"], "settings.reviews_required");
    let resp = send(
        &app,
        reqwest::Method::PUT,
        &format!("/api/projects/{id}"),
        &owner,
        Some(json!({"name": "  "})),
    )
    .await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_name").await;

    // Soft delete: gone from every read, GET after DELETE is 404.
    let resp = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/projects/{id}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get_auth(&format!("/api/projects/{id}"), &owner).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_problem(
        app.get_auth(&format!("/api/projects/{id}"), &root).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let list: Value = app
        .get_auth("/api/projects", &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let resp = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/projects/{id}"),
        &owner,
        None,
    )
    .await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;

    // Only a super admin restores; the owner gets 404 (no hint).
    let resp = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/projects/{id}/restore"),
        &owner,
        None,
    )
    .await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/projects/{id}/restore"),
        &root,
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        app.get_auth(&format!("/api/projects/{id}"), &owner)
            .await
            .status(),
        StatusCode::OK
    );
    let resp = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/projects/{id}/restore"),
        &root,
        None,
    )
    .await;
    assert_problem(resp, StatusCode::CONFLICT, "project_not_deleted").await;

    // Past the retention window (30 days) a deletion is final.
    send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/projects/{id}"),
        &owner,
        None,
    )
    .await;
    app.advance_clock(chrono::Duration::days(31)).await;
    let root = app.token("root@example.org", PASSWORD).await;
    let resp = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/projects/{id}/restore"),
        &root,
        None,
    )
    .await;
    assert_problem(resp, StatusCode::CONFLICT, "restore_window_passed").await;
    // Unknown ids and malformed ids (tokens issued before the clock jump have expired).
    let owner = app.token("owner@example.org", PASSWORD).await;
    assert_problem(
        app.get_auth("/api/projects/01a21dfa-fd50-7659-9e31-e98325662310", &owner)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_problem(
        app.get_auth("/api/projects/not-a-uuid", &owner).await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;
}

/// Mass assignment: fields the server owns are refused (400), never applied.
async fn server_owned_fields_are_refused(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let id = create_project(&app, &owner, "Corpus").await;
    for extra in [
        json!({"name": "x", "id": "01a21dfa-fd50-7659-9e31-e98325662310"}),
        json!({"name": "x", "created_by": "01a21dfa-fd50-7659-9e31-e98325662310"}),
        json!({"name": "x", "deleted_at": "2026-01-01T00:00:00Z"}),
        json!({"name": "x", "my_role": "admin"}),
        json!({"name": "x", "settings": {"accepted_kinds": ["audio"], "max_document_bytes": 1, "max_audio_bytes": 1,
            "reviews_required": 1, "reject_reasons": ["noise"], "max_rework_rounds": 1, "owner": "me"}}),
    ] {
        let resp = send(
            &app,
            reqwest::Method::PUT,
            &format!("/api/projects/{id}"),
            &owner,
            Some(extra.clone()),
        )
        .await;
        assert_problem(resp, StatusCode::BAD_REQUEST, "invalid_body").await;
        let resp = send(
            &app,
            reqwest::Method::POST,
            "/api/projects",
            &owner,
            Some(extra),
        )
        .await;
        assert_problem(resp, StatusCode::BAD_REQUEST, "invalid_body").await;
    }
    let got: Value = app
        .get_auth(&format!("/api/projects/{id}"), &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["name"], "Corpus");
    let list: Value = app
        .get_auth("/api/projects", &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "no refused create made a project"
    );
    // A role change body with extra fields is refused too.
    let me = app.user_id(&owner).await;
    let resp = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/projects/{id}/members/{me}"),
        &owner,
        Some(json!({"role": "admin", "project_id": id})),
    )
    .await;
    assert_problem(resp, StatusCode::BAD_REQUEST, "invalid_body").await;
}

async fn invitations_cover_the_edge_cases(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Invites").await;

    // Inviting an address with no account works; the link leads to sign-up first.
    assert_eq!(
        invite(&app, &owner, &project, "New@Example.org", "contributor")
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_problem(
        invite(&app, &owner, &project, "new@example.org", "reviewer").await,
        StatusCode::CONFLICT,
        "invitation_pending",
    )
    .await;
    assert_problem(
        invite(&app, &owner, &project, "owner@example.org", "reviewer").await,
        StatusCode::CONFLICT,
        "already_member",
    )
    .await;
    assert_problem(
        invite(&app, &owner, &project, "x@example.org", "owner").await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;
    assert_problem(
        invite(&app, &owner, &project, "not-an-email", "reviewer").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_email",
    )
    .await;
    let first = invitation_token(&app, "new@example.org").await;

    // Resend: a fresh link, and the old one stops working.
    let list: Value = app
        .get_auth(&format!("/api/projects/{project}/invitations"), &owner)
        .await
        .json()
        .await
        .unwrap();
    let invitation_id = list["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list["items"][0]["email"], "new@example.org");
    let resp = send(
        &app,
        reqwest::Method::POST,
        &format!("/api/projects/{project}/invitations/{invitation_id}/resend"),
        &owner,
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    app.wait_for_mails("new@example.org", 2).await;
    let second = invitation_token(&app, "new@example.org").await;
    assert_ne!(first, second);

    // Someone else signed in cannot use it; the invitee can, once.
    let other = app.signed_up_user("other@example.org").await;
    assert_problem(
        accept(&app, &other, &second).await,
        StatusCode::FORBIDDEN,
        "invitation_email_mismatch",
    )
    .await;
    let newbie = app.signed_up_user("new@example.org").await;
    assert_problem(
        accept(&app, &newbie, &first).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let resp = accept(&app, &newbie, &second).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let joined: Value = resp.json().await.unwrap();
    assert_eq!(joined["role"], "contributor");
    assert_eq!(joined["project"]["my_role"], "contributor");
    assert_problem(
        accept(&app, &newbie, &second).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // Revoked and expired invitations do not work.
    invite(&app, &owner, &project, "revoked@example.org", "reviewer").await;
    let revoked_token = invitation_token(&app, "revoked@example.org").await;
    let list: Value = app
        .get_auth(&format!("/api/projects/{project}/invitations"), &owner)
        .await
        .json()
        .await
        .unwrap();
    let revoked_id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let resp = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/projects/{project}/invitations/{revoked_id}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let revoked_user = app.signed_up_user("revoked@example.org").await;
    assert_problem(
        accept(&app, &revoked_user, &revoked_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let list: Value = app
        .get_auth(
            &format!("/api/projects/{project}/invitations?state=revoked"),
            &owner,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    invite(&app, &owner, &project, "late@example.org", "reviewer").await;
    let late_token = invitation_token(&app, "late@example.org").await;
    app.signed_up_user("late@example.org").await;
    app.clock
        .advance(chrono::Duration::days(7) + chrono::Duration::seconds(1));
    let late = app.token("late@example.org", PASSWORD).await;
    assert_problem(
        accept(&app, &late, &late_token).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invitation_expired",
    )
    .await;

    // Members see each other; contributors cannot invite.
    let newbie = app.token("new@example.org", PASSWORD).await;
    let members: Value = app
        .get_auth(&format!("/api/projects/{project}/members"), &newbie)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(members["items"].as_array().unwrap().len(), 2);
    assert_problem(
        invite(&app, &newbie, &project, "z@example.org", "reviewer").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

/// Two admins demoting each other at the same moment: exactly one wins; the project
/// keeps an admin. The last admin cannot leave either.
async fn the_last_admin_survives_concurrent_demotions(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Race").await;
    let second = join(&app, &owner, &project, "second@example.org", "admin").await;
    let (owner_id, second_id) = (app.user_id(&owner).await, app.user_id(&second).await);
    let body = json!({"role": "contributor"});
    let (path_a, path_b) = (
        format!("/api/projects/{project}/members/{second_id}"),
        format!("/api/projects/{project}/members/{owner_id}"),
    );
    let (a, b) = tokio::join!(
        send(
            &app,
            reqwest::Method::PATCH,
            &path_a,
            &owner,
            Some(body.clone())
        ),
        send(
            &app,
            reqwest::Method::PATCH,
            &path_b,
            &second,
            Some(body.clone())
        ),
    );
    let statuses = [a.status(), b.status()];
    // The loser either hits the last-admin rule (409) or has just lost its admin role (403).
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| [StatusCode::OK, StatusCode::CONFLICT, StatusCode::FORBIDDEN].contains(s)),
        "{statuses:?}"
    );
    let members: Value = app
        .get_auth(&format!("/api/projects/{project}/members"), &owner)
        .await
        .json()
        .await
        .unwrap();
    let admins: Vec<&Value> = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "admin")
        .collect();
    assert_eq!(admins.len(), 1, "{members}");

    let last = admins[0]["user_id"].as_str().unwrap().to_owned();
    let last_token = if last == owner_id { &owner } else { &second };
    let resp = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/projects/{project}/members/{last}"),
        last_token,
        None,
    )
    .await;
    assert_problem(resp, StatusCode::CONFLICT, "last_admin").await;
    // The other (now contributor) may leave.
    let (other, other_token) = if last == owner_id {
        (&second_id, &second)
    } else {
        (&owner_id, &owner)
    };
    let resp = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/projects/{project}/members/{other}"),
        other_token,
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.get_auth(&format!("/api/projects/{project}"), other_token)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn one_invitation_is_accepted_once(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Accepts").await;
    invite(&app, &owner, &project, "twice@example.org", "reviewer").await;
    let token = invitation_token(&app, "twice@example.org").await;
    let user = app.signed_up_user("twice@example.org").await;
    let results = futures::future::join_all((0..8).map(|_| accept(&app, &user, &token))).await;
    let ok = results
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        results.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    assert!(results.iter().all(|r| {
        [StatusCode::OK, StatusCode::NOT_FOUND, StatusCode::CONFLICT].contains(&r.status())
    }));
    let members: Value = app
        .get_auth(&format!("/api/projects/{project}/members"), &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(members["items"].as_array().unwrap().len(), 2);
}

async fn audit_log_records_and_filters_changes(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let root = app.super_admin("root@example.org").await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Audited").await;
    let other = create_project(&app, &root, "Elsewhere").await;
    let reviewer = join(&app, &owner, &project, "rev@example.org", "reviewer").await;
    let rev_id = app.user_id(&reviewer).await;
    send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/projects/{project}/members/{rev_id}"),
        &owner,
        Some(json!({"role": "contributor"})),
    )
    .await;

    let log: Value = app
        .get_auth(&format!("/api/projects/{project}/audit-log"), &owner)
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "member.role_changed",
            "invitation.accepted",
            "invitation.created",
            "project.created"
        ]
    );
    let change = &log["items"][0];
    assert_eq!(
        change["details"],
        json!({"from": "reviewer", "to": "contributor"})
    );
    assert_eq!(change["target_id"], rev_id.as_str());
    assert!(change["request_id"].is_string() && change["ip"] == "127.0.0.1");
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["project_id"] == project.as_str())
    );
    // Not visible to a non-admin member; the other project's log is another project's.
    assert_problem(
        app.get_auth(&format!("/api/projects/{project}/audit-log"), &reviewer)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_problem(
        app.get_auth(&format!("/api/projects/{other}/audit-log"), &owner)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // The platform log: super admins only, filters by action and actor and time.
    assert_problem(
        app.get_auth("/api/admin/audit-log", &owner).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let all: Value = app
        .get_auth("/api/admin/audit-log?action=user.registered", &root)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        2,
        "owner and reviewer registered: {all}"
    );
    let owner_id = app.user_id(&owner).await;
    let mine: Value = app
        .get_auth(
            &format!("/api/admin/audit-log?actor_id={owner_id}&limit=200"),
            &root,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        mine["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor_id"] == owner_id.as_str())
    );
    let future = (chrono::Utc::now() + chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let none: Value = app
        .get_auth(&format!("/api/admin/audit-log?from={future}"), &root)
        .await
        .json()
        .await
        .unwrap();
    assert!(none["items"].as_array().unwrap().is_empty());
    let resp = app
        .get_auth(
            &format!("/api/admin/audit-log?from={future}&to={future}"),
            &root,
        )
        .await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_time_range").await;
    // Nothing secret is ever logged.
    let everything = app
        .get_auth("/api/admin/audit-log?limit=200", &root)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !everything.contains(PASSWORD)
            && !everything.contains("$argon2")
            && !everything.contains("token_hash")
    );
}

async fn project_actors_come_back_after_idling(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .var("PROJECT_ACTOR_IDLE_SECONDS", "1")
        .spawn()
        .await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Sleepy").await;
    // Long enough for the idle actor to be stopped; the next transition starts a new one.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let resp = send(
        &app,
        reqwest::Method::PUT,
        &format!("/api/projects/{project}"),
        &owner,
        Some(json!({"name": "Awake"})),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let got: Value = app
        .get_auth(&format!("/api/projects/{project}"), &owner)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["name"], "Awake");
}
