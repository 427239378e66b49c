//! Secrets stay out of the log: a token in a URL path (an invitation's) is redacted
//! in the request span every log line of that request carries.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::Value;

use crate::{child_server::Site, helpers::Backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitation_tokens_in_paths_are_not_logged() {
    let site = Site::new(
        Backend::Sqlite,
        &[("SECRET_KEY", "log-secrets-test-key-0123456789abcdef")],
    )
    .await;
    let server = site.serve("run", &[]).await;
    let token = "InvitationTokenZGVhZGJlZWZkZWFkYmVlZg";
    let path = format!("/api/projects/invitations/{token}/accept");
    let resp = Client::new()
        .post(server.url(&path))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // The access log line is written once the answer is out: wait for it (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    let access_line = loop {
        let found = server.log_lines().into_iter().find(|line| {
            line["fields"]["message"] == "request"
                && line["fields"]["route"]
                    .as_str()
                    .is_some_and(|route| route.ends_with("/accept"))
        });
        if let Some(line) = found {
            break line;
        }
        assert!(Instant::now() < deadline, "no access log line");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        access_line["span"]["path"], "/api/projects/invitations/{redacted}/accept",
        "{access_line}"
    );
    let log: Vec<String> = server.log_lines().iter().map(Value::to_string).collect();
    assert!(
        log.iter().all(|line| !line.contains(token)),
        "the token is in the log:\n{}",
        log.join("\n")
    );
}

/// The embedded mail outbox logs each mail's link for a developer; in production (where
/// the outbox must be asked for) the link is a credential: the mail is written, and the
/// log says so without the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_links_are_logged_in_development_only() {
    for (app_env, logs_link) in [("development", true), ("production", false)] {
        let site = Site::new(
            Backend::Sqlite,
            &[
                (
                    "SECRET_KEY",
                    "outbox-links-test-secret-key-0123456789abcdef",
                ),
                ("APP_ENV", app_env),
                ("PUBLIC_URL", "http://127.0.0.1:1"),
                ("MAIL_OUTBOX_IN_PRODUCTION", "true"),
                ("METRICS_TOKEN", "outbox-links-test-scrape-token"),
            ],
        )
        .await;
        let server = site.serve("run", &[]).await;
        let email = "newcomer@example.org";
        let resp = Client::new()
            .post(server.url("/api/auth/register"))
            .json(&serde_json::json!({"email": email, "password": crate::helpers::PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{app_env}");

        // The verification mail is sent by a job: wait for its file (bounded).
        let outbox = site.data_dir.path().join("outbox");
        let deadline = Instant::now() + Duration::from_secs(30);
        let link = loop {
            let link = crate::helpers::files_under(&outbox)
                .into_iter()
                .filter(|file| file.extension().is_some_and(|x| x == "eml"))
                .filter_map(|file| std::fs::read_to_string(file).ok())
                .find_map(|mail| crate::helpers::extract_link(&mail, "verify-email"));
            if let Some(link) = link {
                break link;
            }
            assert!(Instant::now() < deadline, "{app_env}: no verification mail");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let token = link
            .split("token=")
            .nth(1)
            .expect("the link carries a token");
        let deadline = Instant::now() + Duration::from_secs(30);
        let log = loop {
            let log: Vec<String> = server.log_lines().iter().map(Value::to_string).collect();
            if log
                .iter()
                .any(|line| line.contains("mail written to the outbox"))
            {
                break log;
            }
            assert!(
                Instant::now() < deadline,
                "{app_env}: the outbox write is not logged"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            log.iter().any(|line| line.contains(token)),
            logs_link,
            "{app_env}: the link is {} in the log:\n{}",
            if logs_link { "not" } else { "" },
            log.join("\n")
        );
    }
}
