//! `GET /api/admin/users`: who may call it, its filters and its keyset pagination,
//! on both backends.

use std::collections::HashSet;

use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::{
    backend_tests,
    helpers::{Backend, PASSWORD, TestApp, assert_problem, spawn_app},
};

backend_tests!(
    only_super_admins_list_users,
    items_never_expose_the_password_hash,
    email_filter_is_a_case_insensitive_literal_substring,
    role_filter_selects_and_rejects_unknown_roles,
    pages_cover_every_user_once_newest_first,
    bad_paging_parameters_are_400_problems,
);

const ROOT: &str = "root@example.org";

/// `GET /api/admin/users` with these query parameters (URL-encoded).
async fn list(app: &TestApp, token: &str, query: &[(&str, &str)]) -> Response {
    // reqwest is built without its `query` feature: encode with `url`.
    let url = url::Url::parse_with_params(&app.url("/api/admin/users"), query).unwrap();
    app.client.get(url).bearer_auth(token).send().await.unwrap()
}

/// A 200 page: its items and its next cursor (`None` when absent or null).
async fn page(resp: Response) -> (Vec<Value>, Option<String>) {
    assert_eq!(resp.status(), StatusCode::OK, "listing users failed");
    let body: Value = resp.json().await.unwrap();
    let items = body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items array: {body}"))
        .clone();
    let next = match body.get("next_cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => panic!("next_cursor is neither a string nor absent: {other}"),
    };
    (items, next)
}

fn emails(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect()
}

async fn listed_emails(app: &TestApp, token: &str, query: &[(&str, &str)]) -> Vec<String> {
    let (items, _) = page(list(app, token, query).await).await;
    let mut emails = emails(&items);
    emails.sort();
    emails
}

async fn only_super_admins_list_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.signed_up_user("plain@example.org").await;
    let root = app.super_admin(ROOT).await;

    let resp = app.get("/api/admin/users").await;
    assert_eq!(resp.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_problem(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_problem(
        app.get_auth("/api/admin/users", "not-a-jwt").await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_problem(
        app.get_auth("/api/admin/users", &user).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    let resp = app.get_auth("/api/admin/users", &root).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body.get("next_cursor").is_none_or(Value::is_null),
        "one page only: {body}"
    );
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{body}");
    let admin = items.iter().find(|u| u["email"] == ROOT).unwrap();
    assert_eq!(admin["role"], "super_admin");
    assert_eq!(admin["email_verified"], true);
    let plain = items
        .iter()
        .find(|u| u["email"] == "plain@example.org")
        .unwrap();
    assert_eq!(plain["role"], "user");
    assert!(
        plain["id"]
            .as_str()
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()),
        "{plain}"
    );
    assert!(plain["created_at"].is_string(), "{plain}");
}

async fn items_never_expose_the_password_hash(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.super_admin(ROOT).await;
    app.signed_up_user("verified@example.org").await;
    assert_eq!(
        app.register("pending@example.org", PASSWORD).await.status(),
        StatusCode::CREATED
    );

    let resp = list(&app, &root, &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains("password"),
        "no password field of any kind: {text}"
    );
    assert!(!text.contains("$argon2"), "no hash value: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "unverified users are listed too: {text}");
    for item in items {
        assert!(item.get("password_hash").is_none(), "{item}");
    }
    let pending = items
        .iter()
        .find(|u| u["email"] == "pending@example.org")
        .unwrap();
    assert_eq!(pending["email_verified"], false);
}

async fn email_filter_is_a_case_insensitive_literal_substring(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.super_admin(ROOT).await;
    for email in [
        "Grace.Hopper@Example.ORG",
        "a%c@example.org",
        "a_c@example.org",
        "abc@example.org",
    ] {
        assert_eq!(
            app.register(email, PASSWORD).await.status(),
            StatusCode::CREATED,
            "{email}"
        );
    }

    // Stored lower-case, so any case of the filter finds it.
    assert_eq!(
        listed_emails(&app, &root, &[("email", "HOPPER@EXAMPLE")]).await,
        ["grace.hopper@example.org"]
    );
    assert_eq!(
        listed_emails(&app, &root, &[("email", "grace.hopper")]).await,
        ["grace.hopper@example.org"]
    );
    // LIKE wildcards in the filter are literal characters.
    assert_eq!(
        listed_emails(&app, &root, &[("email", "a%c")]).await,
        ["a%c@example.org"]
    );
    assert_eq!(
        listed_emails(&app, &root, &[("email", "a_c")]).await,
        ["a_c@example.org"]
    );
    assert_eq!(
        listed_emails(&app, &root, &[("email", "%")]).await,
        ["a%c@example.org"]
    );
    assert_eq!(
        listed_emails(&app, &root, &[("email", "_")]).await,
        ["a_c@example.org"]
    );
    assert_eq!(
        listed_emails(&app, &root, &[("email", "\\")]).await,
        Vec::<String>::new()
    );
    // A substring anywhere, not a prefix.
    assert_eq!(
        listed_emails(&app, &root, &[("email", "c@EXAMPLE.org")]).await,
        ["a%c@example.org", "a_c@example.org", "abc@example.org"]
    );
    assert_eq!(
        listed_emails(&app, &root, &[("email", "nobody-has-this")]).await,
        Vec::<String>::new()
    );
    // Every user, including the admin, without a filter.
    assert_eq!(listed_emails(&app, &root, &[]).await.len(), 5);
}

async fn role_filter_selects_and_rejects_unknown_roles(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.super_admin(ROOT).await;
    app.signed_up_user("verified@example.org").await;
    assert_eq!(
        app.register("pending@example.org", PASSWORD).await.status(),
        StatusCode::CREATED
    );

    assert_eq!(
        listed_emails(&app, &root, &[("role", "super_admin")]).await,
        [ROOT]
    );
    assert_eq!(
        listed_emails(&app, &root, &[("role", "user")]).await,
        ["pending@example.org", "verified@example.org"]
    );
    // Filters combine.
    assert_eq!(
        listed_emails(&app, &root, &[("role", "user"), ("email", "pend")]).await,
        ["pending@example.org"]
    );
    assert_eq!(
        listed_emails(&app, &root, &[("role", "super_admin"), ("email", "pend")]).await,
        Vec::<String>::new()
    );

    for bogus in ["bogus", "SUPER_ADMIN", "admin"] {
        let body = assert_problem(
            list(&app, &root, &[("role", bogus)]).await,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        )
        .await;
        assert_eq!(body["field"], "role", "{body}");
    }
}

async fn pages_cover_every_user_once_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.super_admin(ROOT).await;
    let mut created = vec![ROOT.to_owned()];
    for i in 1..=6 {
        let email = format!("user{i}@example.org");
        assert_eq!(
            app.register(&email, PASSWORD).await.status(),
            StatusCode::CREATED,
            "{email}"
        );
        created.push(email);
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let mut seen = Vec::new();
    let mut created_at = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("limit", "2".to_owned())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (items, next) = page(list(&app, &root, &query).await).await;
        pages += 1;
        assert!(pages <= 10, "pagination does not end");
        assert!(items.len() <= 2, "limit is honoured: {items:?}");
        if next.is_some() {
            assert_eq!(items.len(), 2, "only the last page may be short");
        }
        seen.extend(emails(&items));
        created_at.extend(
            items
                .iter()
                .map(|u| u["created_at"].as_str().unwrap().to_owned()),
        );
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 4, "7 users in pages of 2");
    assert_eq!(seen, newest_first, "each user exactly once, newest first");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len());
    let parsed: Vec<chrono::DateTime<chrono::Utc>> =
        created_at.iter().map(|t| t.parse().unwrap()).collect();
    assert!(
        parsed.windows(2).all(|w| w[0] >= w[1]),
        "created_at never increases: {created_at:?}"
    );

    // A cursor keeps its place when newer users arrive: the next page is unchanged.
    let (first, next) = page(list(&app, &root, &[("limit", "2")]).await).await;
    assert_eq!(emails(&first), newest_first[..2]);
    let next = next.unwrap();
    assert_eq!(
        app.register("latecomer@example.org", PASSWORD)
            .await
            .status(),
        StatusCode::CREATED
    );
    let (second, _) = page(list(&app, &root, &[("limit", "2"), ("cursor", &next)]).await).await;
    assert_eq!(emails(&second), newest_first[2..4]);
    // Filters and cursors combine.
    let (users, next) = page(list(&app, &root, &[("limit", "3"), ("role", "user")]).await).await;
    assert_eq!(
        emails(&users),
        [
            "latecomer@example.org",
            "user6@example.org",
            "user5@example.org"
        ]
    );
    let (more, _) = page(
        list(
            &app,
            &root,
            &[("limit", "3"), ("role", "user"), ("cursor", &next.unwrap())],
        )
        .await,
    )
    .await;
    assert_eq!(
        emails(&more),
        [
            "user4@example.org",
            "user3@example.org",
            "user2@example.org"
        ]
    );
}

async fn bad_paging_parameters_are_400_problems(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.super_admin(ROOT).await;
    for limit in ["0", "201"] {
        let body = assert_problem(
            list(&app, &root, &[("limit", limit)]).await,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        )
        .await;
        assert_eq!(body["field"], "limit", "{body}");
    }
    // The bounds themselves are fine.
    for limit in ["1", "200"] {
        let (items, _) = page(list(&app, &root, &[("limit", limit)]).await).await;
        assert_eq!(items.len(), 1);
    }
    for cursor in ["garbage", "AAAA", "%%%"] {
        let body = assert_problem(
            list(&app, &root, &[("cursor", cursor)]).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_cursor",
        )
        .await;
        assert_eq!(body["field"], "cursor", "{body}");
    }
    for limit in ["abc", "-1", "1.5", "99999999999"] {
        assert_problem(
            list(&app, &root, &[("limit", limit)]).await,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        )
        .await;
    }
}
