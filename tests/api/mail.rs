//! Mail end to end over a real SMTP conversation, and the retry path when SMTP fails.

use alta_actors::store;
use reqwest::StatusCode;

use crate::{
    backend_tests,
    helpers::{Backend, PASSWORD, TestAppBuilder, extract_link},
    smtp_sink::SmtpSink,
};

backend_tests!(
    smtp_register_verify_login,
    smtp_failures_are_retried_then_delivered
);

async fn smtp_register_verify_login(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = TestAppBuilder::new(backend)
        .var("SMTP_HOST", "127.0.0.1")
        .var("SMTP_PORT", sink.port.to_string())
        .var("SMTP_FROM", "Alta Data <no-reply@alta.test>")
        .spawn()
        .await;
    assert_eq!(
        app.register("smtp@example.org", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let messages = sink.wait_for(1).await;
    let mail = &messages[0];
    assert!(mail.contains("To: smtp@example.org"), "{mail}");
    assert!(
        mail.contains("From: \"Alta Data\" <no-reply@alta.test>")
            || mail.contains("From: Alta Data <no-reply@alta.test>"),
        "{mail}"
    );
    assert!(
        mail.contains("Subject: Verify your email for Alta Data"),
        "{mail}"
    );
    let link = extract_link(mail, "verify-email").expect("the mail carries the link");
    assert_eq!(app.follow(&link).await.status(), StatusCode::OK);
    assert_eq!(
        app.login("smtp@example.org", PASSWORD).await.status(),
        StatusCode::OK
    );
    // Nothing went to the outbox: SMTP is the configured transport.
    assert!(app.outbox_mails("smtp@example.org").is_empty());

    // The sent job is done, and its payload (which held the live link) is scrubbed.
    let db = app.db().await;
    let jobs = store::jobs::list_by_kind(&db, "mail").await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, alta_actors::domain::JobState::Done);
    assert_eq!(jobs[0].attempts, 1);
}

async fn smtp_failures_are_retried_then_delivered(backend: Backend) {
    // Nothing listens on the port yet: every attempt fails until the sink starts.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let app = TestAppBuilder::new(backend)
        .var("SMTP_HOST", "127.0.0.1")
        .var("SMTP_PORT", port.to_string())
        .var("SMTP_TIMEOUT_SECONDS", "2")
        .spawn()
        .await;
    assert_eq!(
        app.register("retry@example.org", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let db = app.db().await;
    // The first attempt fails and the job goes back to the queue with its error and a backoff.
    let mut job = None;
    for _ in 0..200 {
        let jobs = store::jobs::list_by_kind(&db, "mail").await.unwrap();
        if let Some(j) = jobs
            .into_iter()
            .find(|j| j.attempts >= 1 && j.state == alta_actors::domain::JobState::Queued)
        {
            job = Some(j);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let job = job.expect("the failed mail job is queued again");
    assert!(job.last_error.as_deref().is_some_and(|e| !e.is_empty()));

    // Start the SMTP server on that port and let the backoff pass on the server's clock.
    let sink = SmtpSink::start_on(port).await;
    app.advance_clock(chrono::Duration::minutes(5)).await;
    let messages = sink.wait_for(1).await;
    assert!(messages[0].contains("To: retry@example.org"));
    let mut done = false;
    for _ in 0..200 {
        let jobs = store::jobs::list_by_kind(&db, "mail").await.unwrap();
        if jobs
            .iter()
            .all(|j| j.state == alta_actors::domain::JobState::Done)
        {
            assert!(jobs[0].attempts >= 2);
            done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(done, "the retried job is marked done");
}
