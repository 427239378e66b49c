//! Webhooks against a real receiver (`scripts/clients/webhook_receiver.py`), which
//! verifies every delivery with the PyPI `standardwebhooks` package: the lifecycle of an
//! item in order, retries on 500 and on a timeout, a delivery that fails for good and
//! its redelivery, secret rotation, deactivation with mail to the admins, refusals of
//! private addresses (at creation and at delivery), and the real binary killed between
//! commit and delivery.

use std::{
    collections::{BTreeSet, HashMap},
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    backend_tests,
    child_server::Site,
    helpers::{Backend, TestApp, TestAppBuilder, assert_problem, init_test_env},
    processing::{settled, uploaded},
    projects::{create_project, join},
};

backend_tests!(
    an_item_s_life_arrives_signed_and_in_order,
    a_later_change_waits_for_an_earlier_delivery_that_failed,
    failures_are_retried_then_given_up_and_redelivered,
    a_rotated_secret_signs_for_a_day_and_a_failing_webhook_is_deactivated,
    private_addresses_are_refused_when_made_and_when_sent,
    a_deleted_project_s_deliveries_stop,
    a_killed_server_delivers_every_committed_event_after_restart,
);

/// The receiver, as a child process; killed when dropped.
struct Receiver {
    child: Child,
    port: u16,
    client: Client,
}

impl Receiver {
    fn start() -> Self {
        let python = std::env::var("ALTA_WEBHOOKS_PYTHON").unwrap_or_else(|_| {
            panic!(
                "ALTA_WEBHOOKS_PYTHON is not set: run the tests with scripts/test, which \
                 installs standardwebhooks (scripts/clients/datasets.lock) into a venv"
            )
        });
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts/clients/webhook_receiver.py");
        let mut child = Command::new(&python)
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the webhook receiver with {python}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!("the receiver did not start (is standardwebhooks installed?): {line:?}")
            });
        Self {
            child,
            port,
            client: Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn configure(&self, path: &str, secrets: &[&str], mode: &str) {
        let resp = self
            .client
            .post(self.url("/_config"))
            .json(&json!({"path": path, "secrets": secrets, "mode": mode}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    async fn log(&self, path: &str) -> Vec<Value> {
        self.client
            .get(self.url("/_log"))
            .query(&[("path", path)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Wait (up to 30 s) until `done` holds for the log of `path`, advancing the
    /// server's clock by `tick` each round (retries are scheduled on its clock).
    async fn wait_for(
        &self,
        app: Option<&TestApp>,
        path: &str,
        tick: chrono::Duration,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log(path).await;
            if done(&log) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver never saw {what}; it saw {}",
                serde_json::to_string_pretty(&log).unwrap()
            );
            if let Some(app) = app {
                app.clock.advance(tick);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests that got a 200 and were verified, by type.
fn delivered<'a>(log: &'a [Value], kind: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|r| r["type"] == kind && r["answered"] == 200)
        .collect()
}

async fn make_webhook(
    app: &TestApp,
    token: &str,
    project: &str,
    url: &str,
    events: &[&str],
) -> Value {
    let path = format!("/api/projects/{project}/webhooks");
    let body = json!({"url": url, "events": events, "description": "test receiver"});
    let resp = app.send(token, Method::POST, &path, Some(body)).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let hook: Value = resp.json().await.unwrap();
    assert!(
        hook["secret"].as_str().unwrap().starts_with("whsec_"),
        "{hook}"
    );
    hook
}

async fn deliveries(app: &TestApp, token: &str, project: &str, hook: &str) -> Vec<Value> {
    let path = format!("/api/projects/{project}/webhooks/{hook}/deliveries?limit=200");
    let page = app.get_json(&path, token).await;
    page["items"].as_array().unwrap().clone()
}

/// Private addresses allowed (the receiver is on loopback). The tests move the
/// server's clock ahead to reach retries; a lease of a day keeps an attempt in flight
/// from looking abandoned meanwhile.
/// The webhook's newest delivery once it has settled (the receiver may have answered
/// a moment before the server records the attempt).
async fn settled_delivery(app: &TestApp, token: &str, project: &str, hook: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = deliveries(app, token, project, hook).await;
        if listed[0]["state"] != "pending" {
            return listed[0].clone();
        }
        assert!(Instant::now() < deadline, "never settled: {listed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn private_app(backend: Backend) -> TestAppBuilder {
    TestAppBuilder::new(backend)
        .var("WEBHOOK_ALLOW_PRIVATE", "true")
        .var("JOB_LEASE_SECONDS", "86400")
        .var("ACCESS_TOKEN_TTL_SECONDS", "86400")
}

/// An item's uploaded, ready, submitted and approved events arrive in that order, each
/// verified by `standardwebhooks`, with the item as the API shows it; a new member is
/// announced without an email; the deliveries list shows each with its attempt.
async fn an_item_s_life_arrives_signed_and_in_order(backend: Backend) {
    let receiver = Receiver::start();
    let app = private_app(backend).spawn().await;
    let admin = app.signed_up_user("admin@example.org").await;
    let project = create_project(&app, &admin, "Mawimbi").await;
    let events = [
        "item.uploaded",
        "item.ready",
        "item.submitted",
        "item.approved",
        "member.added",
    ];
    let hook = make_webhook(&app, &admin, &project, &receiver.url("/life"), &events).await;
    let secret = hook["secret"].as_str().unwrap();
    receiver.configure("/life", &[secret], "ok").await;
    // The secret is shown once: reads do not carry it.
    let path = format!(
        "/api/projects/{project}/webhooks/{}",
        hook["id"].as_str().unwrap()
    );
    let read = app.get_json(&path, &admin).await;
    assert!(read.get("secret").is_none(), "{read}");

    let reviewer = join(&app, &admin, &project, "r@example.org", "reviewer").await;
    let reviewer_id = app.user_id(&reviewer).await;
    let text = b"Habari ya asubuhi, dunia.".to_vec();
    let id = uploaded(
        &app,
        &admin,
        "/api/documents",
        &project,
        text,
        "a.txt",
        "text/plain",
    )
    .await;
    let item = settled(&app, &admin, "/api/documents", &id).await;
    assert_eq!(item["status"], "ready");
    let resp = app
        .send(
            &admin,
            Method::POST,
            &format!("/api/projects/{project}/review"),
            Some(json!({"item_ids": [id]})),
        )
        .await;
    assert!(resp.status().is_success(), "submit: {}", resp.status());
    let resp = app
        .send(
            &reviewer,
            Method::PATCH,
            &format!("/api/review/{id}"),
            Some(json!({"decision": "approve"})),
        )
        .await;
    assert!(resp.status().is_success(), "decide: {}", resp.status());

    let log = receiver
        .wait_for(
            None,
            "/life",
            chrono::Duration::zero(),
            "the item approved",
            |log| !delivered(log, "item.approved").is_empty(),
        )
        .await;
    let order: Vec<&str> = log
        .iter()
        .filter(|r| r["body"]["data"]["item"]["id"] == id.as_str())
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "item.uploaded",
            "item.ready",
            "item.submitted",
            "item.approved"
        ],
        "one delivery per change, in the order of the changes"
    );
    for record in &log {
        assert_eq!(
            record["verified"], true,
            "standardwebhooks refused: {record}"
        );
        assert!(
            record["user_agent"]
                .as_str()
                .unwrap()
                .starts_with("alta-data-webhooks/"),
            "{record}"
        );
        let body = &record["body"];
        assert_eq!(body["data"]["project_id"], project.as_str());
        assert!(body["timestamp"].is_string());
        let text = body.to_string();
        assert!(
            !text.contains("@example.org"),
            "no email in a payload: {text}"
        );
        assert!(
            !text.contains("blob_key"),
            "no storage path in a payload: {text}"
        );
    }
    let approved = delivered(&log, "item.approved")[0];
    assert_eq!(approved["body"]["data"]["item"]["status"], "approved");
    assert_eq!(approved["body"]["data"]["item"]["sha256"], item["sha256"]);
    let joined: Vec<&Value> = delivered(&log, "member.added");
    assert_eq!(joined.len(), 1);
    assert_eq!(
        joined[0]["body"]["data"]["member"]["user_id"],
        reviewer_id.as_str()
    );
    assert_eq!(joined[0]["body"]["data"]["member"]["role"], "reviewer");

    // The deliveries list: each delivered once, with the receiver's answer (recorded
    // just after the receiver answered).
    let hook_id = hook["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let listed = deliveries(&app, &admin, &project, hook_id).await;
        if listed.iter().all(|d| d["state"] == "delivered") {
            break listed;
        }
        assert!(Instant::now() < deadline, "not all delivered: {listed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listed.len(), 5, "{listed:?}");
    let by_message: HashMap<&str, &Value> = listed
        .iter()
        .map(|d| (d["message_id"].as_str().unwrap(), d))
        .collect();
    for record in &log {
        let delivery = by_message[record["webhook_id"].as_str().unwrap()];
        assert_eq!(delivery["state"], "delivered");
        assert_eq!(delivery["attempts"][0]["status_code"], 200);
        assert_eq!(delivery["attempts"][0]["response"], "received");
        assert!(delivery["attempts"][0]["latency_ms"].as_i64().unwrap() >= 0);
    }

    // A test ping reaches the same endpoint.
    let resp = app
        .send(
            &admin,
            Method::POST,
            &format!("/api/projects/{project}/webhooks/{hook_id}/test"),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    receiver
        .wait_for(None, "/life", chrono::Duration::zero(), "a ping", |log| {
            delivered(log, "ping").len() == 1
        })
        .await;

    // A bad request changes nothing: an unknown event, no events, a bad scheme.
    let path = format!("/api/projects/{project}/webhooks");
    for (body, field) in [
        (
            json!({"url": receiver.url("/x"), "events": ["item.ping"]}),
            None,
        ),
        (json!({"url": receiver.url("/x"), "events": []}), None),
        (
            json!({"url": "ftp://example.org/x", "events": ["item.ready"]}),
            Some("/url"),
        ),
        (
            json!({"url": receiver.url("/x"), "events": ["ping"]}),
            Some("/events/0"),
        ),
    ] {
        let resp = app
            .send(&admin, Method::POST, &path, Some(body.clone()))
            .await;
        if let Some(field) = field {
            let problem =
                assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_webhook").await;
            assert_eq!(problem["field"], field, "{body}");
        } else {
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        }
    }
    let page = app.get_json(&path, &admin).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

/// Per item, in the order of the changes: while an item's `item.uploaded` waits for
/// its retry, its `item.ready` (committed meanwhile) is not sent; once the first is
/// delivered, the second follows. Another item's deliveries do not wait.
async fn a_later_change_waits_for_an_earlier_delivery_that_failed(backend: Backend) {
    let receiver = Receiver::start();
    let app = private_app(backend).spawn().await;
    let admin = app.signed_up_user("admin@example.org").await;
    let project = create_project(&app, &admin, "Foleni").await;
    let hook = make_webhook(
        &app,
        &admin,
        &project,
        &receiver.url("/order"),
        &["item.uploaded", "item.ready"],
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    // The first request fails: the first item's `item.uploaded`.
    receiver
        .configure("/order", &[hook["secret"].as_str().unwrap()], "fail:1")
        .await;
    let first = uploaded(
        &app,
        &admin,
        "/api/documents",
        &project,
        b"Kwanza".to_vec(),
        "1.txt",
        "text/plain",
    )
    .await;
    receiver
        .wait_for(
            None,
            "/order",
            chrono::Duration::zero(),
            "the failed first attempt",
            |log| !log.is_empty(),
        )
        .await;
    // Processed meanwhile: its `item.ready` is committed, and must wait.
    let item = settled(&app, &admin, "/api/documents", &first).await;
    assert_eq!(item["status"], "ready");
    // A second item's events are not held up by the first's.
    let second = uploaded(
        &app,
        &admin,
        "/api/documents",
        &project,
        b"Pili".to_vec(),
        "2.txt",
        "text/plain",
    )
    .await;
    let of = |log: &[Value], id: &str, kind: &str| -> Vec<i64> {
        log.iter()
            .filter(|r| r["type"] == kind && r["body"]["data"]["item"]["id"] == id)
            .map(|r| r["answered"].as_i64().unwrap_or(0))
            .collect()
    };
    receiver
        .wait_for(
            None,
            "/order",
            chrono::Duration::zero(),
            "the second item's events",
            |log| of(log, &second, "item.ready") == [200],
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = receiver.log("/order").await;
    assert_eq!(of(&log, &first, "item.uploaded"), [500], "{log:?}");
    assert!(
        of(&log, &first, "item.ready").is_empty(),
        "item.ready went out before item.uploaded was delivered: {log:?}"
    );
    // The retry is due: delivered, and then the ready that waited.
    let log = receiver
        .wait_for(
            Some(&app),
            "/order",
            chrono::Duration::seconds(2),
            "the first item's ready",
            |log| of(log, &first, "item.ready") == [200],
        )
        .await;
    let position = |kind: &str, answered: i64| {
        log.iter()
            .position(|r| {
                r["type"] == kind
                    && r["body"]["data"]["item"]["id"] == first.as_str()
                    && r["answered"] == answered
            })
            .unwrap()
    };
    assert!(
        position("item.uploaded", 200) < position("item.ready", 200),
        "{log:?}"
    );
    let listed = deliveries(&app, &admin, &project, &hook_id).await;
    assert_eq!(listed.len(), 4, "{listed:?}");
}

/// 500 twice, then a 200: three attempts of one message. A timeout is an attempt that
/// failed. A delivery whose attempts run out is `failed`, and a redelivery sends the
/// same message again.
async fn failures_are_retried_then_given_up_and_redelivered(backend: Backend) {
    let receiver = Receiver::start();
    let app = private_app(backend)
        .var("WEBHOOK_TIMEOUT_MS", "500")
        .var("WEBHOOK_MAX_ATTEMPTS", "3")
        .spawn()
        .await;
    let admin = app.signed_up_user("admin@example.org").await;
    let project = create_project(&app, &admin, "Mvua").await;
    let minute = chrono::Duration::seconds(10);

    // Two failures, then success: the same webhook-id three times.
    let hook = make_webhook(
        &app,
        &admin,
        &project,
        &receiver.url("/flaky"),
        &["item.uploaded"],
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    receiver
        .configure("/flaky", &[hook["secret"].as_str().unwrap()], "fail:2")
        .await;
    let ping = format!("/api/projects/{project}/webhooks/{hook_id}/test");
    assert_eq!(
        app.send(&admin, Method::POST, &ping, None).await.status(),
        StatusCode::ACCEPTED
    );
    let log = receiver
        .wait_for(
            Some(&app),
            "/flaky",
            minute,
            "a ping after two failures",
            |log| !delivered(log, "ping").is_empty(),
        )
        .await;
    assert_eq!(log.len(), 3, "{log:?}");
    let ids: BTreeSet<&str> = log
        .iter()
        .map(|r| r["webhook_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one message, retried: {log:?}");
    assert!(log.iter().all(|r| r["verified"] == true));
    let delivery = settled_delivery(&app, &admin, &project, &hook_id).await;
    let statuses: Vec<i64> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 200]);
    assert_eq!(delivery["state"], "delivered");

    // An answer slower than WEBHOOK_TIMEOUT_MS: a failed attempt, then delivered.
    let slow = make_webhook(
        &app,
        &admin,
        &project,
        &receiver.url("/slow"),
        &["item.uploaded"],
    )
    .await;
    let slow_id = slow["id"].as_str().unwrap().to_owned();
    receiver
        .configure("/slow", &[slow["secret"].as_str().unwrap()], "slow_first:3")
        .await;
    let ping = format!("/api/projects/{project}/webhooks/{slow_id}/test");
    assert_eq!(
        app.send(&admin, Method::POST, &ping, None).await.status(),
        StatusCode::ACCEPTED
    );
    receiver
        .wait_for(
            Some(&app),
            "/slow",
            minute,
            "a ping after a timeout",
            |log| log.len() == 2 && log[1]["answered"] == 200,
        )
        .await;
    let delivery = settled_delivery(&app, &admin, &project, &slow_id).await;
    let first = &delivery["attempts"][0];
    assert_eq!(first["error"], "timed out", "{first}");
    assert!(first.get("status_code").is_none());
    assert_eq!(delivery["state"], "delivered");

    // Always 500: three attempts, then failed for good.
    let down = make_webhook(
        &app,
        &admin,
        &project,
        &receiver.url("/down"),
        &["item.uploaded"],
    )
    .await;
    let down_id = down["id"].as_str().unwrap().to_owned();
    receiver
        .configure("/down", &[down["secret"].as_str().unwrap()], "always:500")
        .await;
    let id = uploaded(
        &app,
        &admin,
        "/api/documents",
        &project,
        b"Mvua".to_vec(),
        "m.txt",
        "text/plain",
    )
    .await;
    receiver
        .wait_for(Some(&app), "/down", minute, "three attempts", |log| {
            log.len() == 3
        })
        .await;
    let failed = settled_delivery(&app, &admin, &project, &down_id).await;
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(failed["payload"]["data"]["item"]["id"], id.as_str());
    // No fourth attempt, however long we wait.
    app.advance_clock(chrono::Duration::hours(6)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.log("/down").await.len(), 3);

    // Redelivered once the receiver is back: the same message, delivered.
    receiver
        .configure("/down", &[down["secret"].as_str().unwrap()], "ok")
        .await;
    let delivery_id = failed["id"].as_str().unwrap();
    let redeliver =
        format!("/api/projects/{project}/webhooks/{down_id}/deliveries/{delivery_id}/redeliver");
    let resp = app.send(&admin, Method::POST, &redeliver, None).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let again: Value = resp.json().await.unwrap();
    assert_eq!(again["state"], "pending");
    assert_eq!(again["message_id"], failed["message_id"]);
    let log = receiver
        .wait_for(Some(&app), "/down", minute, "the redelivery", |log| {
            log.len() == 4 && log[3]["answered"] == 200
        })
        .await;
    assert_eq!(log[3]["webhook_id"], failed["message_id"]);
    assert_eq!(log[3]["verified"], true);
    let again = settled_delivery(&app, &admin, &project, &down_id).await;
    assert_eq!(again["state"], "delivered");
    // While a delivery is being tried it cannot be redelivered.
    receiver.configure("/down", &[], "slow:2").await;
    let resp = app.send(&admin, Method::POST, &redeliver, None).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = app.send(&admin, Method::POST, &redeliver, None).await;
    assert_problem(resp, StatusCode::CONFLICT, "delivery_pending").await;
}

/// After a rotation both secrets sign for 24 hours, then only the new one. A webhook
/// that fails for longer than WEBHOOK_DEACTIVATE_AFTER_HOURS is deactivated, its
/// admins are mailed, it gets nothing more, and activating it again clears that.
async fn a_rotated_secret_signs_for_a_day_and_a_failing_webhook_is_deactivated(backend: Backend) {
    let receiver = Receiver::start();
    let app = private_app(backend)
        .var("WEBHOOK_DEACTIVATE_AFTER_HOURS", "1")
        .spawn()
        .await;
    let admin = app.signed_up_user("admin@example.org").await;
    let project = create_project(&app, &admin, "Jua").await;
    let hook = make_webhook(
        &app,
        &admin,
        &project,
        &receiver.url("/rot"),
        &["item.uploaded"],
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let old = hook["secret"].as_str().unwrap().to_owned();
    let rotate = format!("/api/projects/{project}/webhooks/{hook_id}/rotate-secret");
    let resp = app.send(&admin, Method::POST, &rotate, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rotated: Value = resp.json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    assert!(rotated["previous_secret_expires_at"].is_string());
    let ping = format!("/api/projects/{project}/webhooks/{hook_id}/test");

    // Within the day: a receiver with either secret alone verifies the message.
    receiver.configure("/rot", &[&old], "ok").await;
    app.send(&admin, Method::POST, &ping, None).await;
    let log = receiver
        .wait_for(None, "/rot", chrono::Duration::zero(), "a ping", |log| {
            log.len() == 1
        })
        .await;
    assert_eq!(log[0]["verified"], true, "the old secret still signs");
    receiver.configure("/rot", &[&new], "ok").await;
    app.send(&admin, Method::POST, &ping, None).await;
    let log = receiver
        .wait_for(None, "/rot", chrono::Duration::zero(), "a ping", |log| {
            log.len() == 2
        })
        .await;
    assert_eq!(log[1]["verified"], true, "the new secret signs");
    // A day later, only the new one.
    app.advance_clock(chrono::Duration::hours(25)).await;
    let admin = app
        .token("admin@example.org", crate::helpers::PASSWORD)
        .await;
    receiver.configure("/rot", &[&old, &new], "ok").await;
    app.send(&admin, Method::POST, &ping, None).await;
    let log = receiver
        .wait_for(None, "/rot", chrono::Duration::zero(), "a ping", |log| {
            log.len() == 3
        })
        .await;
    assert_eq!(
        log[2]["verified_by"], 1,
        "only the new secret signs: {}",
        log[2]
    );

    // Failing for more than an hour: deactivated, and the admin is told.
    receiver.configure("/rot", &[&new], "always:500").await;
    uploaded(
        &app,
        &admin,
        "/api/documents",
        &project,
        b"Jua kali".to_vec(),
        "j.txt",
        "text/plain",
    )
    .await;
    let path = format!("/api/projects/{project}/webhooks/{hook_id}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let read = app.get_json(&path, &admin).await;
        if read["active"] == false {
            assert!(read["deactivated_at"].is_string(), "{read}");
            assert!(read["failing_since"].is_string(), "{read}");
            break;
        }
        assert!(Instant::now() < deadline, "never deactivated: {read}");
        app.advance_clock(chrono::Duration::minutes(20)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mail = app
        .wait_for_mail_containing("admin@example.org", "deactivated")
        .await;
    assert!(mail.contains(&receiver.url("/rot")), "{mail}");
    // Deactivated: new events make no delivery.
    let before = deliveries(&app, &admin, &project, &hook_id).await.len();
    uploaded(
        &app,
        &admin,
        "/api/documents",
        &project,
        b"Jua tena".to_vec(),
        "k.txt",
        "text/plain",
    )
    .await;
    assert_eq!(
        deliveries(&app, &admin, &project, &hook_id).await.len(),
        before
    );
    // Active again: failures forgotten, events flow.
    receiver.configure("/rot", &[&new], "ok").await;
    let resp = app
        .send(&admin, Method::PATCH, &path, Some(json!({"active": true})))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let read: Value = resp.json().await.unwrap();
    assert_eq!(read["active"], true);
    assert!(
        read.get("failing_since").is_none() && read.get("deactivated_at").is_none(),
        "{read}"
    );
    let seen = receiver.log("/rot").await.len();
    uploaded(
        &app,
        &admin,
        "/api/documents",
        &project,
        b"Jua la tatu".to_vec(),
        "l.txt",
        "text/plain",
    )
    .await;
    receiver
        .wait_for(
            Some(&app),
            "/rot",
            chrono::Duration::seconds(1),
            "an upload",
            |log| log.len() > seen && log.last().unwrap()["answered"] == 200,
        )
        .await;
}

/// Without WEBHOOK_ALLOW_PRIVATE, loopback, private, link-local and metadata
/// addresses (and a name that resolves to one) are refused when a webhook is made,
/// and a webhook made while they were allowed is refused when it would be sent.
async fn private_addresses_are_refused_when_made_and_when_sent(backend: Backend) {
    let receiver = Receiver::start();
    let app = TestAppBuilder::new(backend).spawn().await;
    let admin = app.signed_up_user("admin@example.org").await;
    let project = create_project(&app, &admin, "Ngome").await;
    let path = format!("/api/projects/{project}/webhooks");
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://localhost/hook",
        "http://0.0.0.0/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        let body = json!({"url": url, "events": ["item.uploaded"]});
        let resp = app.send(&admin, Method::POST, &path, Some(body)).await;
        let problem =
            assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_webhook").await;
        assert_eq!(problem["field"], "/url", "{url}: {problem}");
    }
    let page = app.get_json(&path, &admin).await;
    assert!(
        page["items"].as_array().unwrap().is_empty(),
        "nothing was made: {page}"
    );

    // Made while allowed (a development setting), refused once it is not: the check at
    // sending time is what stops DNS rebinding.
    let app = {
        let mut app = app;
        app.vars
            .insert("WEBHOOK_ALLOW_PRIVATE".into(), "true".into());
        app.restart().await
    };
    let hook = make_webhook(
        &app,
        &admin,
        &project,
        &receiver.url("/inside"),
        &["item.uploaded"],
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let app = {
        let mut app = app;
        app.vars
            .insert("WEBHOOK_ALLOW_PRIVATE".into(), "false".into());
        app.restart().await
    };
    let ping = format!("/api/projects/{project}/webhooks/{hook_id}/test");
    assert_eq!(
        app.send(&admin, Method::POST, &ping, None).await.status(),
        StatusCode::ACCEPTED
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let attempt = loop {
        let listed = deliveries(&app, &admin, &project, &hook_id).await;
        if let Some(attempt) = listed[0]["attempts"].get(0) {
            break attempt.clone();
        }
        assert!(Instant::now() < deadline, "never attempted: {listed:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let error = attempt["error"].as_str().unwrap();
    assert!(error.starts_with("refused"), "{attempt}");
    assert!(
        receiver.log("/inside").await.is_empty(),
        "nothing reached the receiver"
    );
}

/// Once a project is deleted, its pending deliveries are not sent again: they fail,
/// saying why, without a request.
async fn a_deleted_project_s_deliveries_stop(backend: Backend) {
    let receiver = Receiver::start();
    let app = private_app(backend).spawn().await;
    let admin = app.signed_up_user("admin@example.org").await;
    let project = create_project(&app, &admin, "Kwaheri").await;
    let hook = make_webhook(
        &app,
        &admin,
        &project,
        &receiver.url("/gone"),
        &["item.uploaded"],
    )
    .await;
    receiver
        .configure("/gone", &[hook["secret"].as_str().unwrap()], "always:500")
        .await;
    uploaded(
        &app,
        &admin,
        "/api/documents",
        &project,
        b"Kwaheri".to_vec(),
        "k.txt",
        "text/plain",
    )
    .await;
    receiver
        .wait_for(
            None,
            "/gone",
            chrono::Duration::zero(),
            "the first attempt",
            |log| log.len() == 1 && log[0]["answered"] == 500,
        )
        .await;
    let path = format!("/api/projects/{project}");
    let resp = app.send(&admin, Method::DELETE, &path, None).await;
    assert!(resp.status().is_success(), "delete: {}", resp.status());
    // The retry comes due, and is not sent.
    let db = app.db().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (state, error) = loop {
        app.clock.advance(chrono::Duration::seconds(10));
        let row: (String, Option<String>) = alta_actors::store::with_db!(&db, |pool| {
            sqlx::query_as("SELECT state, last_error FROM webhook_deliveries")
                .fetch_one(pool)
                .await
        })
        .unwrap();
        if row.0 != "pending" {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "the delivery stayed pending: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(state, "failed");
    assert_eq!(error.as_deref(), Some("the project is deleted"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.log("/gone").await.len(),
        1,
        "nothing more was sent"
    );
}

/// The real binary is killed (SIGKILL) while deliveries are in flight and queued; the
/// restarted server delivers every event whose change was acknowledged, each verified,
/// and the receiver's dedup by `webhook-id` finds each exactly once.
async fn a_killed_server_delivers_every_committed_event_after_restart(backend: Backend) {
    const UPLOADS: usize = 12;
    init_test_env();
    let receiver = Receiver::start();
    let env = [
        ("SECRET_KEY", "webhook-crash-test-secret-key-0123456789"),
        ("JOB_POLL_INTERVAL_MS", "100"),
        ("JOB_LEASE_SECONDS", "2"),
        ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ("JOB_CONCURRENCY_WEBHOOK", "2"),
    ];
    let site = Site::new(backend, &env).await;
    site.admin_create(&[]);
    let client = Client::new();
    let mut server = site.serve("first", &[]).await;
    let token = server.token(&client).await;
    let project = server.create_project(&client, &token, "Dhoruba").await;
    let resp = client
        .post(server.url(&format!("/api/projects/{project}/webhooks")))
        .bearer_auth(&token)
        .json(&json!({"url": receiver.url("/crash"), "events": ["item.uploaded"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let hook: Value = resp.json().await.unwrap();
    // The receiver holds every answer for 3 s: deliveries are in flight, and others
    // queued, when the server dies.
    receiver
        .configure("/crash", &[hook["secret"].as_str().unwrap()], "slow:3")
        .await;
    let mut acknowledged = BTreeSet::new();
    for i in 0..UPLOADS {
        let form = reqwest::multipart::Form::new()
            .text("project_id", project.clone())
            .part(
                "file",
                reqwest::multipart::Part::bytes(format!("Hati ya dhoruba {i}").into_bytes())
                    .file_name(format!("d{i}.txt"))
                    .mime_str("text/plain")
                    .unwrap(),
            );
        let resp = client
            .post(server.url("/api/documents"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let item: Value = resp.json().await.unwrap();
        acknowledged.insert(item["id"].as_str().unwrap().to_owned());
    }
    receiver
        .wait_for(
            None,
            "/crash",
            chrono::Duration::zero(),
            "deliveries in flight",
            |log| !log.is_empty(),
        )
        .await;
    server.kill_9();
    receiver
        .configure("/crash", &[hook["secret"].as_str().unwrap()], "ok")
        .await;
    let _server = site.serve("second", &[]).await;
    let log = receiver
        .wait_for(
            None,
            "/crash",
            chrono::Duration::zero(),
            "every upload",
            |log| {
                let got: BTreeSet<&str> = log
                    .iter()
                    .filter(|r| r["answered"] == 200)
                    .filter_map(|r| r["body"]["data"]["item"]["id"].as_str())
                    .collect();
                got.len() == UPLOADS
            },
        )
        .await;
    assert!(log.iter().all(|r| r["verified"] == true), "{log:?}");
    // Deduplicated by webhook-id: exactly one message per acknowledged upload.
    let mut by_message: HashMap<&str, &str> = HashMap::new();
    for record in &log {
        let item = record["body"]["data"]["item"]["id"].as_str().unwrap();
        let previous = by_message.insert(record["webhook_id"].as_str().unwrap(), item);
        assert!(
            previous.is_none_or(|p| p == item),
            "one webhook-id, one event"
        );
    }
    let items: BTreeSet<String> = by_message.values().map(|s| s.to_string()).collect();
    assert_eq!(items, acknowledged);
    assert_eq!(by_message.len(), UPLOADS);
}
