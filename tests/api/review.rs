//! Review: submission, the reviewer's queue with leases, decisions with consensus,
//! fix-and-accept, the rework loop, the digest mail and who may do what, on both
//! backends.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::{
    backend_tests,
    helpers::{Backend, TestApp, TestAppBuilder, assert_problem},
    items::wav,
    processing::{settled, uploaded},
    projects::{create_project, join},
};

backend_tests!(
    a_reviewer_approves_a_submitted_item,
    decisions_reach_consensus,
    nobody_reviews_their_own_items,
    leases_keep_reviewers_apart,
    items_go_back_for_rework_until_rounds_run_out,
    a_reviewer_fixes_and_accepts,
    bad_decisions_and_submissions_change_nothing,
    concurrent_decisions_count_once,
    decisions_on_many_items_at_once_count_every_vote,
    contributors_get_one_digest_an_hour,
    opting_back_in_does_not_wait_for_a_digest_never_sent,
    roles_decide_who_reviews,
    review_is_blind_while_the_round_is_open,
);

const CONTRIBUTOR: &str = "c@example.org";

/// A project with its admin, one contributor and some reviewers (their tokens).
struct Team {
    project: String,
    admin: String,
    contributor: String,
    reviewers: Vec<String>,
}

/// `owner@example.org` creates a project and brings in `c@example.org` as contributor
/// and `r0@example.org`… as `reviewers` reviewers.
async fn team(app: &TestApp, reviewers: usize) -> Team {
    let admin = app.signed_up_user("owner@example.org").await;
    let project = create_project(app, &admin, "Review").await;
    let contributor = join(app, &admin, &project, CONTRIBUTOR, "contributor").await;
    let emails: Vec<String> = (0..reviewers)
        .map(|i| format!("r{i}@example.org"))
        .collect();
    let reviewers = join_all(
        emails
            .iter()
            .map(|email| join(app, &admin, &project, email, "reviewer")),
    )
    .await;
    Team {
        project,
        admin,
        contributor,
        reviewers,
    }
}

/// Set the project's review settings (the rest stays as it is).
async fn configure(app: &TestApp, admin: &str, project: &str, required: u32, rounds: u32) {
    let current = app
        .get_json(&format!("/api/projects/{project}"), admin)
        .await;
    let mut settings = current["settings"].clone();
    settings["reviews_required"] = json!(required);
    settings["max_rework_rounds"] = json!(rounds);
    let body = json!({
        "name": current["name"],
        "description": current["description"],
        "settings": settings,
    });
    let resp = send(
        app,
        Method::PUT,
        &format!("/api/projects/{project}"),
        admin,
        Some(body),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK, "settings of {project}");
}

/// A small text document uploaded by `token` and processed (`ready`); its id.
async fn ready_doc(app: &TestApp, token: &str, project: &str, text: &str) -> String {
    let bytes = text.as_bytes().to_vec();
    let endpoint = "/api/documents";
    let id = uploaded(
        app,
        token,
        endpoint,
        project,
        bytes,
        "page.txt",
        "text/plain",
    )
    .await;
    let item = settled(app, token, endpoint, &id).await;
    assert_eq!(item["status"], "ready", "{item}");
    id
}

/// `ready_doc`, then submitted for review by its uploader; its id.
async fn pending_doc(app: &TestApp, token: &str, project: &str, text: &str) -> String {
    let id = ready_doc(app, token, project, text).await;
    let resp = submit(app, token, project, &[&id]).await;
    assert_eq!(resp.status(), StatusCode::OK, "submit {id}");
    id
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Response {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn submit(app: &TestApp, token: &str, project: &str, ids: &[&str]) -> Response {
    let path = format!("/api/projects/{project}/review");
    send(
        app,
        Method::POST,
        &path,
        token,
        Some(json!({ "item_ids": ids })),
    )
    .await
}

async fn decide(app: &TestApp, token: &str, id: &str, body: Value) -> Response {
    send(
        app,
        Method::PATCH,
        &format!("/api/review/{id}"),
        token,
        Some(body),
    )
    .await
}

/// A decision that must succeed; the answer (`decision` and `item`).
async fn decided(app: &TestApp, token: &str, id: &str, body: Value) -> Value {
    let resp = decide(app, token, id, body.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK, "decision {body} on {id}");
    resp.json().await.unwrap()
}

fn approve() -> Value {
    json!({"decision": "approve"})
}

fn reject(reason: &str) -> Value {
    json!({"decision": "reject", "reason_code": reason})
}

/// The ids in the caller's review queue, in order.
async fn queue(app: &TestApp, token: &str, project: &str) -> Vec<String> {
    let resp = app
        .get_auth(&format!("/api/review?project_id={project}"), token)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page: Value = resp.json().await.unwrap();
    entry_ids(&page["items"])
}

fn entry_ids(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["item"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Claim the head of the caller's queue: the entry, or `None` on 204.
async fn next(app: &TestApp, token: &str, project: &str) -> Option<Value> {
    let path = format!("/api/review/next?project_id={project}");
    let resp = send(app, Method::POST, &path, token, None).await;
    match resp.status() {
        StatusCode::OK => Some(resp.json().await.unwrap()),
        StatusCode::NO_CONTENT => None,
        other => panic!("next: {other} {}", resp.text().await.unwrap()),
    }
}

async fn next_id(app: &TestApp, token: &str, project: &str) -> String {
    let entry = next(app, token, project).await.expect("an item to review");
    entry["item"]["id"].as_str().unwrap().to_owned()
}

async fn item(app: &TestApp, token: &str, id: &str) -> Value {
    app.get_json(&format!("/api/documents/{id}"), token).await
}

/// Every decision on a document, oldest first.
async fn history(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let resp = app
        .get_auth(&format!("/api/documents/{id}/reviews"), token)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .parse()
        .unwrap()
}

/// `reviewers[i]` decides the item by the i-th letter of `votes` (`A`pprove or
/// `R`eject); the outcome after each decision.
async fn votes(app: &TestApp, reviewers: &[String], id: &str, letters: &str) -> Vec<String> {
    let mut outcomes = Vec::new();
    for (token, vote) in reviewers.iter().zip(letters.chars()) {
        let body = if vote == 'A' {
            approve()
        } else {
            reject("noise")
        };
        let answer = decided(app, token, id, body).await;
        outcomes.push(answer["decision"]["outcome"].as_str().unwrap().to_owned());
    }
    assert_eq!(outcomes.len(), letters.len(), "enough reviewers");
    outcomes
}

async fn a_reviewer_approves_a_submitted_item(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app, 1).await;
    let reviewer = &t.reviewers[0];
    let first = ready_doc(&app, &t.contributor, &t.project, "Mvua ilinyesha jana.").await;
    let second = ready_doc(&app, &t.contributor, &t.project, "Jua liliwaka leo.").await;
    assert!(
        queue(&app, reviewer, &t.project).await.is_empty(),
        "ready items are not in review yet"
    );

    let resp = submit(&app, &t.contributor, &t.project, &[&first, &second]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let submitted = body["items"].as_array().unwrap();
    assert_eq!(submitted.len(), 2);
    for it in submitted {
        assert_eq!(it["status"], "pending_review", "{it}");
        assert_eq!(it["review_round"], 0);
        time(&it["submitted_at"]);
        assert!(it["decided_at"].is_null());
    }

    // The reviewer's queue, oldest upload first, with text and (empty) history; the
    // contributor has none.
    let path = format!("/api/review?project_id={}", t.project);
    let resp = app.get_auth(&path, &t.contributor).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let page = app.get_json(&path, reviewer).await;
    assert_eq!(entry_ids(&page["items"]), [first.as_str(), second.as_str()]);
    let head = &page["items"][0];
    assert_eq!(head["text"]["text"], "Mvua ilinyesha jana.");
    assert_eq!(head["item"]["status"], "pending_review");
    assert!(head["history"].as_array().unwrap().is_empty());
    assert!(head["lease_until"].is_null(), "nobody claimed it");
    assert!(page["next_cursor"].is_null());
    // One at a time.
    let page = app.get_json(&format!("{path}&limit=1"), reviewer).await;
    assert_eq!(entry_ids(&page["items"]), [first.as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let page = app
        .get_json(&format!("{path}&limit=1&cursor={cursor}"), reviewer)
        .await;
    assert_eq!(entry_ids(&page["items"]), [second.as_str()]);
    assert!(page["next_cursor"].is_null());

    let answer = decided(&app, reviewer, &first, approve()).await;
    let decision = &answer["decision"];
    assert_eq!(decision["decision"], "approve");
    assert_eq!(decision["outcome"], "approved");
    assert_eq!(decision["round"], 0);
    assert_eq!(decision["item_id"], first.as_str());
    assert_eq!(
        decision["reviewer_id"],
        app.user_id(reviewer).await.as_str()
    );
    assert!(decision["reason_code"].is_null() && decision["text_revision"].is_null());
    assert_eq!(answer["item"]["status"], "approved");
    time(&answer["item"]["decided_at"]);

    let doc = item(&app, &t.contributor, &first).await;
    assert_eq!(doc["status"], "approved");
    assert_eq!(doc["decided_at"], answer["item"]["decided_at"]);
    assert_eq!(doc["review_round"], 0);
    let decisions = history(&app, &t.contributor, &first).await;
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0]["id"], decision["id"]);
    assert_eq!(decisions[0]["outcome"], "approved");

    // It left the queue; it is decided for good.
    assert_eq!(queue(&app, reviewer, &t.project).await, [second.as_str()]);
    let resp = decide(&app, reviewer, &first, approve()).await;
    assert_problem(resp, StatusCode::CONFLICT, "item_not_pending").await;
    let listed = app
        .get_json(
            &format!("/api/documents?project_id={}&status=approved", t.project),
            &t.contributor,
        )
        .await;
    let approved: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(approved, [first.as_str()]);
    assert_eq!(
        item(&app, reviewer, &second).await["status"],
        "pending_review"
    );
}

async fn decisions_reach_consensus(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app, 7).await;
    let r = &t.reviewers;
    let mut docs = Vec::new();
    for text in ["a", "b", "c", "d", "e", "f"] {
        docs.push(pending_doc(&app, &t.contributor, &t.project, &format!("Page {text}.")).await);
    }
    let [a, b, c, d, e, f] = &docs[..] else {
        unreachable!()
    };

    // N = 2: a tie waits for a third voice.
    configure(&app, &t.admin, &t.project, 2, 3).await;
    assert_eq!(
        votes(&app, r, a, "ARA").await,
        ["pending", "pending", "approved"]
    );
    assert_eq!(item(&app, &t.admin, a).await["status"], "approved");

    assert_eq!(votes(&app, r, b, "R").await, ["pending"]);
    assert_eq!(item(&app, &t.admin, b).await["status"], "pending_review");
    // Once per reviewer and round; the item leaves that reviewer's queue only.
    let resp = decide(&app, &r[0], b, approve()).await;
    assert_problem(resp, StatusCode::CONFLICT, "already_decided").await;
    assert!(!queue(&app, &r[0], &t.project).await.contains(b));
    assert!(queue(&app, &r[1], &t.project).await.contains(b));
    assert_eq!(votes(&app, &r[1..], b, "R").await, ["changes_requested"]);
    let doc = item(&app, &t.admin, b).await;
    assert_eq!(doc["status"], "changes_requested");
    assert_eq!(doc["review_round"], 1);
    assert!(doc["decided_at"].is_null(), "not final: {doc}");

    assert_eq!(
        votes(&app, r, c, "RAR").await,
        ["pending", "pending", "changes_requested"]
    );

    // N = 3.
    configure(&app, &t.admin, &t.project, 3, 3).await;
    assert_eq!(
        votes(&app, r, d, "AAA").await,
        ["pending", "pending", "approved"]
    );
    assert_eq!(
        votes(&app, r, e, "RARAR").await,
        [
            "pending",
            "pending",
            "pending",
            "pending",
            "changes_requested"
        ]
    );

    // (3, 3) waits; the next rejection sends it back. With N = 3 every path to (3, 3)
    // passes (3, 2) or (2, 3), which already settle, so this row needs N = 4.
    configure(&app, &t.admin, &t.project, 4, 3).await;
    let outcomes = votes(&app, r, f, "ARARARR").await;
    assert_eq!(outcomes[..6], ["pending"; 6]);
    assert_eq!(outcomes[6], "changes_requested");
    let decisions = history(&app, &t.contributor, f).await;
    let recorded: Vec<&str> = decisions
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(recorded, outcomes);
    assert!(decisions.iter().all(|d| d["round"] == 0));
    assert_eq!(item(&app, &t.admin, f).await["status"], "changes_requested");
}

async fn nobody_reviews_their_own_items(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app, 1).await;
    let reviewer = &t.reviewers[0];
    let own = pending_doc(&app, &t.admin, &t.project, "The admin's page.").await;
    let theirs = pending_doc(&app, &t.contributor, &t.project, "A contributor's page.").await;

    assert_eq!(queue(&app, &t.admin, &t.project).await, [theirs.as_str()]);
    for body in [approve(), reject("noise")] {
        let resp = decide(&app, &t.admin, &own, body).await;
        assert_problem(resp, StatusCode::FORBIDDEN, "self_review").await;
    }
    assert_eq!(next_id(&app, &t.admin, &t.project).await, theirs);
    let answer = decided(&app, &t.admin, &theirs, approve()).await;
    assert_eq!(answer["decision"]["outcome"], "approved");
    assert!(
        next(&app, &t.admin, &t.project).await.is_none(),
        "only their own item is left"
    );
    assert!(queue(&app, &t.admin, &t.project).await.is_empty());

    // Another reviewer decides it; the refused attempts left nothing.
    assert_eq!(queue(&app, reviewer, &t.project).await, [own.as_str()]);
    assert!(history(&app, &t.admin, &own).await.is_empty());
    let answer = decided(&app, reviewer, &own, approve()).await;
    assert_eq!(answer["item"]["status"], "approved");
    assert_eq!(history(&app, &t.admin, &own).await.len(), 1);
}

async fn leases_keep_reviewers_apart(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .var("REVIEW_LEASE_SECONDS", "60")
        .spawn()
        .await;
    let t = team(&app, 3).await;
    let (a, b, c) = (&t.reviewers[0], &t.reviewers[1], &t.reviewers[2]);
    let p = &t.project;
    let mut docs = Vec::new();
    for text in ["one", "two", "three"] {
        docs.push(pending_doc(&app, &t.contributor, p, &format!("Page {text}.")).await);
    }
    let (one, two, three) = (&docs[0], &docs[1], &docs[2]);
    let lease = |id: &str| format!("/api/review/{id}/lease");
    let skip = |id: &str| format!("/api/review/{id}/skip");

    let claimed = next(&app, a, p).await.unwrap();
    assert_eq!(claimed["item"]["id"], one.as_str());
    let first_lease = time(&claimed["lease_until"]);
    assert_eq!(claimed["text"]["text"], "Page one.");
    assert_eq!(next_id(&app, b, p).await, *two, "B gets the next one");
    assert_eq!(
        next_id(&app, a, p).await,
        *one,
        "asking again: the same item"
    );
    assert_eq!(
        queue(&app, c, p).await,
        [three.as_str()],
        "held items are hidden"
    );
    let page = app
        .get_json(&format!("/api/review?project_id={p}"), a)
        .await;
    assert_eq!(entry_ids(&page["items"]), [one.as_str(), three.as_str()]);
    time(&page["items"][0]["lease_until"]);
    assert!(page["items"][1]["lease_until"].is_null());

    let resp = decide(&app, b, one, approve()).await;
    assert_problem(resp, StatusCode::CONFLICT, "review_claimed").await;
    let resp = send(&app, Method::POST, &lease(one), b, None).await;
    assert_problem(resp, StatusCode::CONFLICT, "lease_lost").await;

    app.clock.advance(chrono::Duration::seconds(30));
    let resp = send(&app, Method::POST, &lease(one), a, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let renewed: Value = resp.json().await.unwrap();
    assert_eq!(renewed["item_id"], one.as_str());
    assert!(time(&renewed["lease_until"]) > first_lease);

    // Both leases run out: the items are back in every queue; B takes the oldest.
    app.advance_clock(chrono::Duration::seconds(61)).await;
    assert_eq!(
        queue(&app, c, p).await,
        [one.as_str(), two.as_str(), three.as_str()]
    );
    assert_eq!(next_id(&app, b, p).await, *one);
    let resp = send(&app, Method::POST, &lease(one), a, None).await;
    assert_problem(resp, StatusCode::CONFLICT, "lease_lost").await;
    assert_eq!(next_id(&app, a, p).await, *two);

    // A skip leaves the skipper's queue only, and gives the lease back.
    let resp = send(&app, Method::POST, &skip(two), a, None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(queue(&app, a, p).await, [three.as_str()]);
    assert_eq!(queue(&app, c, p).await, [two.as_str(), three.as_str()]);
    let resp = send(&app, Method::POST, &skip(three), c, None).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(queue(&app, c, p).await, [two.as_str()]);
    assert_eq!(queue(&app, a, p).await, [three.as_str()]);

    decided(&app, b, one, approve()).await;
    assert_eq!(next_id(&app, c, p).await, *two);
    decided(&app, c, two, approve()).await;
    assert!(next(&app, c, p).await.is_none(), "nothing left for C");
    assert_eq!(next_id(&app, a, p).await, *three);
    decided(&app, a, three, approve()).await;
    assert!(next(&app, b, p).await.is_none());
    let resp = send(&app, Method::POST, &skip(three), b, None).await;
    assert_problem(resp, StatusCode::CONFLICT, "item_not_pending").await;
}

async fn items_go_back_for_rework_until_rounds_run_out(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app, 2).await;
    let (r0, r1) = (&t.reviewers[0], &t.reviewers[1]);
    let c = &t.contributor;
    let doc = pending_doc(&app, c, &t.project, "Mvua ilinyesha jana.").await;
    let text_path = format!("/api/documents/{doc}/text");

    // r1 passes in round 0; that holds for round 0 only.
    let resp = send(
        &app,
        Method::POST,
        &format!("/api/review/{doc}/skip"),
        r1,
        None,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let comment = "The scan says juzi, not jana.";
    let body = json!({"decision": "reject", "reason_code": "wrong_text", "comment": comment});
    let answer = decided(&app, r0, &doc, body).await;
    assert_eq!(answer["decision"]["outcome"], "changes_requested");
    assert_eq!(answer["item"]["status"], "changes_requested");
    assert_eq!(answer["item"]["review_round"], 1);
    assert!(answer["item"]["decided_at"].is_null());
    assert!(queue(&app, r1, &t.project).await.is_empty());

    // The contributor reads why, corrects the text and submits again.
    let decisions = history(&app, c, &doc).await;
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0]["decision"], "reject");
    assert_eq!(decisions[0]["reason_code"], "wrong_text");
    assert_eq!(decisions[0]["comment"], comment);
    assert_eq!(decisions[0]["round"], 0);
    let fixed = json!({"text": "Mvua ilinyesha juzi."});
    let resp = send(&app, Method::PUT, &text_path, c, Some(fixed.clone())).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text: Value = resp.json().await.unwrap();
    assert_eq!(text["item"]["status"], "ready");
    let resp = submit(&app, c, &t.project, &[&doc]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["items"][0]["status"], "pending_review");
    assert_eq!(body["items"][0]["review_round"], 1);
    let resp = send(&app, Method::PUT, &text_path, c, Some(fixed)).await;
    assert_problem(resp, StatusCode::CONFLICT, "item_in_review").await;

    // Round 1 counts afresh: the reviewer who rejected may decide again, and sees why.
    let page = app
        .get_json(&format!("/api/review?project_id={}", t.project), r0)
        .await;
    assert_eq!(entry_ids(&page["items"]), [doc.as_str()]);
    assert_eq!(page["items"][0]["text"]["text"], "Mvua ilinyesha juzi.");
    assert_eq!(page["items"][0]["history"][0]["reason_code"], "wrong_text");
    assert_eq!(queue(&app, r1, &t.project).await, [doc.as_str()]);
    let answer = decided(&app, r0, &doc, approve()).await;
    assert_eq!(answer["decision"]["round"], 1);
    assert_eq!(answer["decision"]["outcome"], "approved");
    assert_eq!(answer["item"]["status"], "approved");
    assert_eq!(answer["item"]["review_round"], 1);
    let rounds: Vec<(i64, String)> = history(&app, c, &doc)
        .await
        .iter()
        .map(|d| {
            let decision = d["decision"].as_str().unwrap().to_owned();
            (d["round"].as_i64().unwrap(), decision)
        })
        .collect();
    assert_eq!(
        rounds,
        [(0, "reject".to_owned()), (1, "approve".to_owned())]
    );

    // One rework round only: the second rejection is final. A recording this time.
    configure(&app, &t.admin, &t.project, 1, 1).await;
    let take = uploaded(
        &app,
        c,
        "/api/voice",
        &t.project,
        wav(0.5, 8_000, 440.0),
        "take.wav",
        "audio/wav",
    )
    .await;
    let it = settled(&app, c, "/api/voice", &take).await;
    assert_eq!(it["status"], "processing_failed", "{it}");
    let transcript = format!("/api/voice/{take}/transcript");
    let words = json!({"text": "Habari za asubuhi"});
    let resp = send(&app, Method::PUT, &transcript, c, Some(words.clone())).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(submit(&app, c, &t.project, &[&take]).await.status(), 200);
    let answer = decided(&app, r1, &take, reject("noise")).await;
    assert_eq!(answer["decision"]["outcome"], "changes_requested");
    // Resubmitting unchanged is allowed (the contributor may disagree).
    assert_eq!(submit(&app, c, &t.project, &[&take]).await.status(), 200);
    let answer = decided(&app, r0, &take, reject("clipped")).await;
    assert_eq!(answer["decision"]["outcome"], "rejected");
    assert_eq!(answer["decision"]["round"], 1);
    assert_eq!(answer["item"]["status"], "rejected");
    assert_eq!(answer["item"]["review_round"], 1);
    time(&answer["item"]["decided_at"]);
    let reviews = app.get_json(&format!("/api/voice/{take}/reviews"), c).await;
    let outcomes: Vec<&str> = reviews["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["changes_requested", "rejected"]);
    let resp = submit(&app, c, &t.project, &[&take]).await;
    assert_problem(resp, StatusCode::CONFLICT, "item_not_ready").await;
    let resp = send(&app, Method::PUT, &transcript, c, Some(words)).await;
    assert_problem(resp, StatusCode::CONFLICT, "item_in_review").await;
    let it = app.get_json(&format!("/api/voice/{take}"), c).await;
    assert_eq!(it["status"], "rejected");
}

async fn a_reviewer_fixes_and_accepts(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app, 1).await;
    let reviewer = &t.reviewers[0];
    let doc = pending_doc(&app, &t.contributor, &t.project, "Mvua ilinyesha jana.").await;

    let body = json!({
        "decision": "approve",
        "corrected_text": "Mvua ilinyesha juzi.",
        "comment": "Fixed the day.",
    });
    let answer = decided(&app, reviewer, &doc, body).await;
    assert_eq!(answer["decision"]["outcome"], "approved");
    assert_eq!(answer["decision"]["text_revision"], 2);
    assert_eq!(answer["decision"]["comment"], "Fixed the day.");
    assert_eq!(answer["item"]["status"], "approved");

    let text = app
        .get_json(&format!("/api/documents/{doc}/text"), &t.contributor)
        .await;
    let revisions = text["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 2);
    assert_eq!(revisions[0]["text"], "Mvua ilinyesha jana.");
    assert_eq!(text["current"]["revision"], 2);
    assert_eq!(text["current"]["text"], "Mvua ilinyesha juzi.");
    assert_eq!(text["current"]["source"], "human");
    assert_eq!(
        text["current"]["author_id"],
        app.user_id(reviewer).await.as_str()
    );
    assert_eq!(
        history(&app, &t.contributor, &doc).await[0]["text_revision"],
        2
    );
}

async fn bad_decisions_and_submissions_change_nothing(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app, 1).await;
    let reviewer = &t.reviewers[0];
    let c = &t.contributor;
    let doc = pending_doc(&app, c, &t.project, "Mvua ilinyesha jana.").await;

    for (body, code) in [
        (json!({"decision": "reject"}), "reason_required"),
        (reject("blurry"), "invalid_reason"),
        (reject(""), "invalid_reason"),
        (
            json!({"decision": "approve", "reason_code": "noise"}),
            "reason_not_allowed",
        ),
        (
            json!({"decision": "reject", "reason_code": "noise", "corrected_text": "Better."}),
            "correction_not_allowed",
        ),
        (
            json!({"decision": "approve", "corrected_text": " \n "}),
            "empty_text",
        ),
        (
            json!({"decision": "approve", "comment": "x".repeat(2001)}),
            "invalid_body",
        ),
        (json!({"decision": "approve", "score": 5}), "invalid_body"),
        (json!({"decision": "maybe"}), "invalid_body"),
        (json!({}), "invalid_body"),
    ] {
        let resp = decide(&app, reviewer, &doc, body.clone()).await;
        // What the schema states is 400; a rule between fields, or text of only
        // spaces, is refused content (422).
        let status = if code == "invalid_body" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let problem = assert_problem(resp, status, code).await;
        assert_eq!(problem["code"], code, "for {body}");
    }
    assert_eq!(item(&app, c, &doc).await["status"], "pending_review");
    assert!(history(&app, c, &doc).await.is_empty());
    let text = app.get_json(&format!("/api/documents/{doc}/text"), c).await;
    assert_eq!(text["revisions"].as_array().unwrap().len(), 1);
    // The limit counts characters, not bytes.
    let long = "é".repeat(2000);
    let body = json!({"decision": "approve", "comment": long});
    let answer = decided(&app, reviewer, &doc, body).await;
    assert_eq!(answer["decision"]["comment"], long.as_str());

    // Submissions: all or nothing, ready items only.
    let ready = ready_doc(&app, c, &t.project, "Ready page.").await;
    let pending = pending_doc(&app, c, &t.project, "Pending page.").await;
    let elsewhere = create_project(&app, &t.admin, "Elsewhere").await;
    let foreign = ready_doc(&app, &t.admin, &elsewhere, "Another project's page.").await;
    let stuck = ready_doc(&app, c, &t.project, "Stuck page.").await;
    // Reprocessing `stuck` fails (its file is gone) and waits for a retry on the
    // test's clock, which stands still from here: it stays in processing.
    let blob = app.data_dir().join("blobs").join(&t.project).join(&stuck);
    std::fs::remove_file(blob).unwrap();
    let path = format!("/api/documents/{stuck}/reprocess");
    let resp = send(&app, Method::POST, &path, &t.admin, None).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let status = item(&app, c, &stuck).await["status"].clone();
    assert!(status == "uploaded" || status == "processing", "{status}");

    for other in [&pending, &stuck] {
        let resp = submit(&app, c, &t.project, &[&ready, other]).await;
        assert_problem(resp, StatusCode::CONFLICT, "item_not_ready").await;
        assert_eq!(item(&app, c, &ready).await["status"], "ready");
    }
    assert_eq!(item(&app, c, &pending).await["status"], "pending_review");
    let status = item(&app, c, &stuck).await["status"].clone();
    assert!(status == "uploaded" || status == "processing", "{status}");
    let review = format!("/api/projects/{}/review", t.project);
    for (body, status, code) in [
        (json!({"item_ids": []}), 422, "invalid_item_ids"),
        (json!({}), 422, "invalid_item_ids"),
        (
            json!({"item_ids": [ready], "priority": 1}),
            400,
            "invalid_body",
        ),
        (
            json!({"item_ids": [uuid::Uuid::now_v7()]}),
            422,
            "unknown_item",
        ),
    ] {
        let resp = send(&app, Method::POST, &review, c, Some(body)).await;
        assert_problem(resp, StatusCode::from_u16(status).unwrap(), code).await;
    }
    // An item of another project is not this project's.
    let resp = submit(&app, &t.admin, &t.project, &[&foreign]).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "unknown_item").await;
    assert_eq!(item(&app, &t.admin, &foreign).await["status"], "ready");
    assert_eq!(item(&app, c, &ready).await["status"], "ready");
    assert_eq!(queue(&app, reviewer, &t.project).await, [pending.as_str()]);
    // The original frontend's single `document_id`.
    let resp = send(
        &app,
        Method::POST,
        &review,
        c,
        Some(json!({"document_id": ready})),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(item(&app, c, &ready).await["status"], "pending_review");
}

/// Send the same request as each of `tokens`, all at once; the status and body (null
/// when empty) of each answer.
async fn at_once(
    app: &TestApp,
    method: Method,
    path: &str,
    tokens: &[String],
    body: Option<Value>,
) -> Vec<(u16, Value)> {
    let handles: Vec<_> = tokens
        .iter()
        .map(|token| {
            let mut request = app
                .client
                .request(method.clone(), app.url(path))
                .bearer_auth(token);
            if let Some(body) = &body {
                request = request.json(body);
            }
            tokio::spawn(async move {
                let resp = request.send().await.unwrap();
                let status = resp.status().as_u16();
                (status, resp.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(handles.len());
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    answers
}

async fn concurrent_decisions_count_once(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app, 20).await;
    let doc = pending_doc(&app, &t.contributor, &t.project, "Page one.").await;

    let path = format!("/api/review/{doc}");
    let answers = at_once(&app, Method::PATCH, &path, &t.reviewers, Some(approve())).await;
    let ok: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ok.len(), 1, "exactly one decision wins: {answers:?}");
    assert_eq!(ok[0]["decision"]["outcome"], "approved");
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 409)
        .map(|(_, b)| &b["code"])
        .collect();
    assert_eq!(refused.len(), 19, "{answers:?}");
    assert!(refused.iter().all(|code| *code == "item_not_pending"));
    let decisions = history(&app, &t.contributor, &doc).await;
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0]["id"], ok[0]["decision"]["id"]);
    assert_eq!(item(&app, &t.contributor, &doc).await["status"], "approved");

    // One reviewer's double click with N = 2: one decision, one 409.
    configure(&app, &t.admin, &t.project, 2, 3).await;
    let doc = pending_doc(&app, &t.contributor, &t.project, "Page two.").await;
    let twice = vec![t.reviewers[0].clone(), t.reviewers[0].clone()];
    let path = format!("/api/review/{doc}");
    let mut answers = at_once(&app, Method::PATCH, &path, &twice, Some(approve())).await;
    answers.sort_by_key(|(s, _)| *s);
    assert_eq!(answers[0].0, 200, "{answers:?}");
    assert_eq!(answers[0].1["decision"]["outcome"], "pending");
    assert_eq!(answers[1].0, 409, "{answers:?}");
    assert_eq!(answers[1].1["code"], "already_decided");
    // The round is open: only its voter sees the vote (blind review).
    assert_eq!(history(&app, &t.reviewers[0], &doc).await.len(), 1);
    assert_eq!(
        item(&app, &t.contributor, &doc).await["status"],
        "pending_review"
    );

    // Eight reviewers ask for the next item at once: six items, six different claims.
    let mut pending = vec![doc];
    for n in 0..5 {
        let text = format!("Page {}.", n + 3);
        pending.push(pending_doc(&app, &t.contributor, &t.project, &text).await);
    }
    let path = format!("/api/review/next?project_id={}", t.project);
    let answers = at_once(&app, Method::POST, &path, &t.reviewers[1..9], None).await;
    let mut claimed: Vec<String> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b["item"]["id"].as_str().unwrap().to_owned())
        .collect();
    claimed.sort();
    pending.sort();
    assert_eq!(claimed, pending, "each item to one reviewer: {answers:?}");
    let empty = answers.iter().filter(|(s, _)| *s == 204).count();
    assert_eq!(empty, 2, "{answers:?}");
}

/// Many decisions at once land in the same groups of the project's actor, which reads
/// their items ahead in one statement. With two votes required and both reviewers
/// deciding every item at once, each item's second vote must count the first, whichever
/// group each lands in: every item ends approved, after one pending and one approving
/// decision.
async fn decisions_on_many_items_at_once_count_every_vote(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app, 3).await;
    configure(&app, &t.admin, &t.project, 2, 3).await;
    let mut docs = Vec::new();
    for n in 0..8 {
        let text = format!("Page {n} of the crowd.");
        docs.push(pending_doc(&app, &t.contributor, &t.project, &text).await);
    }
    // Each item gets the votes of two reviewers (of three, so that the pairs differ),
    // all sent at once.
    let sends = docs.iter().enumerate().flat_map(|(n, doc)| {
        let pair = [&t.reviewers[n % 3], &t.reviewers[(n + 1) % 3]];
        pair.map(|token| decide(&app, token, doc, approve()))
    });
    let answers = join_all(sends).await;
    for resp in answers {
        assert_eq!(resp.status(), StatusCode::OK);
    }
    for doc in &docs {
        let decisions = history(&app, &t.contributor, doc).await;
        let mut outcomes: Vec<&str> = decisions
            .iter()
            .map(|d| d["outcome"].as_str().unwrap())
            .collect();
        outcomes.sort_unstable();
        assert_eq!(outcomes, ["approved", "pending"], "{doc}: {decisions:?}");
        assert_eq!(item(&app, &t.contributor, doc).await["status"], "approved");
    }
}

/// The changes-requested digests in `mails`.
fn digests(mails: &[String]) -> Vec<&String> {
    mails
        .iter()
        .filter(|m| m.contains("need changes") || m.contains("needs changes"))
        .collect()
}

async fn contributors_get_one_digest_an_hour(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .var("REVIEW_DIGEST_INTERVAL_SECONDS", "1")
        // The test moves the clock an hour on; tokens outlive that.
        .var("ACCESS_TOKEN_TTL_SECONDS", "86400")
        .spawn()
        .await;
    let t = team(&app, 1).await;
    let reviewer = &t.reviewers[0];
    let quiet_mail = "d@example.org";
    let quiet = join(&app, &t.admin, &t.project, quiet_mail, "contributor").await;
    let settings = "/api/auth/me/notifications";

    // On by default; the second contributor turns it off.
    let mine = app.get_json(settings, &t.contributor).await;
    assert_eq!(mine, json!({"review_mail": true}));
    let off = json!({"review_mail": false});
    let resp = send(&app, Method::PUT, settings, &quiet, Some(off.clone())).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap(), off);
    assert_eq!(app.get_json(settings, &quiet).await, off);
    let body = json!({"review_mail": false, "digest": "daily"});
    let resp = send(&app, Method::PUT, settings, &quiet, Some(body)).await;
    assert_problem(resp, StatusCode::BAD_REQUEST, "invalid_body").await;

    let mut docs = Vec::new();
    for text in ["one", "two", "three"] {
        let text = format!("Page {text}.");
        docs.push(pending_doc(&app, &t.contributor, &t.project, &text).await);
    }
    let muted = pending_doc(&app, &quiet, &t.project, "Page four.").await;
    let before = app.outbox_mails(CONTRIBUTOR).len();
    let quiet_before = app.outbox_mails(quiet_mail).len();

    // The first item sent back: a digest soon after, with the reason and comment.
    let body = json!({"decision": "reject", "reason_code": "wrong_text", "comment": "Line two is misspelt."});
    decided(&app, reviewer, &docs[0], body).await;
    let mails = app.wait_for_mails(CONTRIBUTOR, before + 1).await;
    let first = digests(&mails);
    assert_eq!(first.len(), 1, "{mails:?}");
    assert!(
        first[0].contains("Subject: 1 item needs changes"),
        "{}",
        first[0]
    );
    assert!(first[0].contains(&format!("/api/documents/{}/reviews", docs[0])));
    assert!(first[0].contains("wrong_text: Line two is misspelt."));

    // Two more within the hour (and one for who opted out): no mail yet.
    decided(&app, reviewer, &docs[1], reject("noise")).await;
    decided(&app, reviewer, &docs[2], reject("clipped")).await;
    decided(&app, reviewer, &muted, reject("unreadable")).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.engine.review().send_review_digests().await.unwrap(), 0);
    assert_eq!(app.outbox_mails(CONTRIBUTOR).len(), before + 1);

    // An hour later: one mail listing both.
    app.advance_clock(chrono::Duration::minutes(61)).await;
    let mails = app.wait_for_mails(CONTRIBUTOR, before + 2).await;
    let all = digests(&mails);
    assert_eq!(all.len(), 2, "{mails:?}");
    let second = all
        .iter()
        .find(|m| m.contains("Subject: 2 items need changes"))
        .unwrap_or_else(|| panic!("a digest of two: {all:?}"));
    for (doc, reason) in [(&docs[1], "noise"), (&docs[2], "clipped")] {
        assert!(second.contains(&format!("/api/documents/{doc}/reviews")));
        assert!(second.contains(&format!("Reasons: {reason}")), "{second}");
    }
    assert!(
        !second.contains(docs[0].as_str()),
        "item one went out already"
    );

    // Who opted out got nothing, and their notice was dropped, not kept for later.
    let on = json!({"review_mail": true});
    let resp = send(&app, Method::PUT, settings, &quiet, Some(on.clone())).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(app.get_json(settings, &quiet).await, on);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.engine.review().send_review_digests().await.unwrap(), 0);
    assert_eq!(app.outbox_mails(quiet_mail).len(), quiet_before);
    assert_eq!(app.outbox_mails(CONTRIBUTOR).len(), before + 2);
}

async fn opting_back_in_does_not_wait_for_a_digest_never_sent(backend: Backend) {
    let app = TestAppBuilder::new(backend)
        .var("REVIEW_DIGEST_INTERVAL_SECONDS", "1")
        .spawn()
        .await;
    let t = team(&app, 1).await;
    let reviewer = &t.reviewers[0];
    let c = &t.contributor;
    let settings = "/api/auth/me/notifications";
    let first = pending_doc(&app, c, &t.project, "Page one.").await;
    let second = pending_doc(&app, c, &t.project, "Page two.").await;
    let before = app.outbox_mails(CONTRIBUTOR).len();

    // Opted out: the notice is dropped (by the monitor, or by this direct run).
    let off = json!({"review_mail": false});
    let resp = send(&app, Method::PUT, settings, c, Some(off)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    decided(&app, reviewer, &first, reject("noise")).await;
    assert_eq!(app.engine.review().send_review_digests().await.unwrap(), 0);

    // Back on, with no digest sent in the last hour: the next one goes out now.
    let on = json!({"review_mail": true});
    let resp = send(&app, Method::PUT, settings, c, Some(on)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    decided(&app, reviewer, &second, reject("clipped")).await;
    let mut digest = Vec::new();
    for _ in 0..200 {
        let mails = app.outbox_mails(CONTRIBUTOR);
        digest = digests(&mails[before..]).into_iter().cloned().collect();
        if !digest.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        digest.len(),
        1,
        "no digest within 5 s (the monitor ticks every second) although none was sent \
         this hour: dropping the opted-out notices used up the contributor's hourly slot"
    );
    assert!(digest[0].contains("Subject: 1 item needs changes"));
    assert!(digest[0].contains(second.as_str()));
    assert!(!digest[0].contains(first.as_str()), "dropped, not kept");
}

async fn roles_decide_who_reviews(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app, 1).await;
    let reviewer = &t.reviewers[0];
    let c = &t.contributor;
    let other = join(&app, &t.admin, &t.project, "d@example.org", "contributor").await;
    let stranger = app.signed_up_user("stranger@example.org").await;
    let p = &t.project;
    let doc = pending_doc(&app, c, p, "Page one.").await;
    let others = ready_doc(&app, &other, p, "Page two.").await;
    let queue_path = format!("/api/review?project_id={p}");
    let next_path = format!("/api/review/next?project_id={p}");

    // Contributors do not review, their own items or others'.
    let resp = app.get_auth(&queue_path, c).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let resp = send(&app, Method::POST, &next_path, c, None).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let resp = decide(&app, c, &doc, approve()).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    // Someone else's item does not exist for a contributor.
    let resp = decide(&app, &other, &doc, approve()).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = send(
        &app,
        Method::POST,
        &format!("/api/review/{doc}/skip"),
        &other,
        None,
    )
    .await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;

    // Outsiders do not learn the project exists.
    let resp = app.get_auth(&queue_path, &stranger).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = send(&app, Method::POST, &next_path, &stranger, None).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = decide(&app, &stranger, &doc, approve()).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = submit(&app, &stranger, p, &[&others]).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = app
        .get_auth(&format!("/api/documents/{doc}/reviews"), &stranger)
        .await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;

    // Someone else's item: a reviewer does not submit it.
    let resp = submit(&app, reviewer, p, &[&others]).await;
    assert_problem(resp, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(item(&app, &other, &others).await["status"], "ready");
    let resp = app.get_auth("/api/review", reviewer).await;
    assert_problem(resp, StatusCode::BAD_REQUEST, "missing_project_id").await;

    // A reviewer reviews, and reads the history; a project admin submits anyone's.
    assert_eq!(queue(&app, reviewer, p).await, [doc.as_str()]);
    decided(&app, reviewer, &doc, approve()).await;
    assert_eq!(history(&app, reviewer, &doc).await.len(), 1);

    // Another contributor's item does not exist for a contributor: in a submit (whose
    // resource is the project) it is an unknown item (422), as for an id that was never
    // used, not 403.
    let resp = submit(&app, c, p, &[&uuid::Uuid::now_v7().to_string()]).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "unknown_item").await;
    let resp = submit(&app, c, p, &[&others]).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "unknown_item").await;
    assert_eq!(item(&app, &other, &others).await["status"], "ready");

    let resp = submit(&app, &t.admin, p, &[&others]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(queue(&app, reviewer, p).await, [others.as_str()]);
}

/// Blind review: while a round is open its votes are shown to their own reviewer
/// only (not to the next reviewer, an admin, a super admin or the contributor), as the
/// queue hides them; once the round ends, everyone who sees the item sees them all.
async fn review_is_blind_while_the_round_is_open(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let t = team(&app, 3).await;
    let root = app.super_admin("root@example.org").await;
    configure(&app, &t.admin, &t.project, 2, 3).await;
    let doc = pending_doc(&app, &t.contributor, &t.project, "Page blind.").await;
    let first = decided(&app, &t.reviewers[0], &doc, reject("noise")).await;
    assert_eq!(first["decision"]["outcome"], "pending");

    let mine = history(&app, &t.reviewers[0], &doc).await;
    assert_eq!(mine.len(), 1, "a reviewer sees their own vote");
    assert_eq!(mine[0]["id"], first["decision"]["id"]);
    for (who, token) in [
        ("the next reviewer", &t.reviewers[1]),
        ("the project admin", &t.admin),
        ("a super admin", &root),
        ("the contributor", &t.contributor),
    ] {
        assert!(
            history(&app, token, &doc).await.is_empty(),
            "{who} must not see the open round's votes"
        );
    }
    let resp = app
        .get_auth(&format!("/api/documents/{doc}/reviews"), &t.reviewers[1])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    // The second reviewer votes blind; the round ends (1:1 with N = 2 waits, so a
    // third vote settles it) and every vote shows.
    decided(&app, &t.reviewers[1], &doc, approve()).await;
    assert_eq!(history(&app, &t.reviewers[1], &doc).await.len(), 1);
    assert!(history(&app, &t.admin, &doc).await.is_empty());
    let last = decided(&app, &t.reviewers[2], &doc, reject("noise")).await;
    assert_eq!(last["decision"]["outcome"], "changes_requested");
    for token in [&t.contributor, &t.admin, &root, &t.reviewers[1]] {
        assert_eq!(history(&app, token, &doc).await.len(), 3);
    }
}
