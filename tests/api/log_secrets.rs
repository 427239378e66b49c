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
