//! Group commit: a project's actor commits the uploads (and review decisions) that
//! arrive together in one transaction, a savepoint each. Seen from outside, nothing
//! may change: every success is committed and visible, every refusal wrote nothing,
//! even when refusals and successes share a group.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    backend_tests,
    helpers::{Backend, TestAppBuilder},
    items::upload,
    projects::{create_project, join},
};

backend_tests!(
    uploads_committed_together_succeed_or_fail_alone,
    a_removed_member_commits_nothing_after_the_removal_in_its_group
);

async fn uploads_committed_together_succeed_or_fail_alone(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Crowd").await;
    // 24 distinct texts, each sent twice at once: 48 uploads in flight, of which
    // exactly one of each pair can win (the other is a duplicate of it).
    let texts: Vec<String> = (0..24)
        .map(|i| format!("Document number {i} of the crowd, with its own words."))
        .collect();
    let sends = texts.iter().chain(texts.iter()).map(|text| {
        upload(
            &app,
            &owner,
            "/api/documents",
            &project,
            text.clone().into_bytes(),
            "crowd.txt",
            "text/plain",
        )
    });
    let answers = join_all(sends).await;
    let mut created = Vec::new();
    let mut duplicates = 0;
    for resp in answers {
        match resp.status() {
            StatusCode::CREATED => {
                let body: Value = resp.json().await.unwrap();
                created.push(body["id"].as_str().unwrap().to_owned());
            }
            StatusCode::CONFLICT => {
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["code"], "duplicate_content", "{body}");
                duplicates += 1;
            }
            other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
        }
    }
    assert_eq!(created.len(), 24, "one of each pair is created");
    assert_eq!(duplicates, 24, "the other is refused");

    // Every success is there; no refusal left an item or an audit row behind.
    let list = app
        .get_json(
            &format!("/api/documents?project_id={project}&limit=200"),
            &owner,
        )
        .await;
    let mut listed: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    created.sort();
    assert_eq!(listed, created);
    let audit = app
        .get_json(
            &format!("/api/projects/{project}/audit-log?action=item.uploaded&limit=200"),
            &owner,
        )
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 24, "{audit}");
    // Each success's processing job was written with its group (jobs are kept until the
    // group's commit and written together) and ran: every item ends ready.
    for id in &created {
        let item = crate::processing::settled(&app, &owner, "/api/documents", id).await;
        assert_eq!(item["status"], "ready", "{item}");
    }
}

/// A transition that changes the members (here, removing one) takes effect for the
/// transitions after it in the same group: the group reads the roles again. A member's
/// uploads sent around their removal are either committed before it or refused.
async fn a_removed_member_commits_nothing_after_the_removal_in_its_group(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Turnover").await;
    let member = join(&app, &owner, &project, "leaver@example.org", "contributor").await;
    let me: Value = app.get_json("/api/auth/me", &member).await;
    let member_id = me["id"].as_str().unwrap().to_owned();

    let uploads = (0..32).map(|i| {
        upload(
            &app,
            &member,
            "/api/documents",
            &project,
            format!("Upload {i} from a member who is leaving.").into_bytes(),
            "leaving.txt",
            "text/plain",
        )
    });
    let removal = async {
        // Let the first uploads reach the actor, so that the removal lands among them.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        app.client
            .delete(app.url(&format!("/api/projects/{project}/members/{member_id}")))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap()
    };
    let (answers, removed) = tokio::join!(join_all(uploads), removal);
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let mut created = 0;
    for resp in answers {
        match resp.status() {
            StatusCode::CREATED => created += 1,
            // Refused once the member is gone: the project is not theirs to see.
            StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => {}
            other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
        }
    }

    let audit = |action: &'static str| {
        let (app, owner, project) = (&app, &owner, &project);
        async move {
            let page = app
                .get_json(
                    &format!("/api/projects/{project}/audit-log?action={action}&limit=200"),
                    owner,
                )
                .await;
            page["items"].as_array().unwrap().clone()
        }
    };
    let uploaded = audit("item.uploaded").await;
    assert_eq!(
        uploaded.len(),
        created,
        "every 201, and only those, is audited"
    );
    // Audit ids are UUIDv7, issued in order by the server: they order its writes (the
    // tests' clock stands still, so the rows' times cannot).
    let removed = audit("member.removed").await;
    let removal_id = removed[0]["id"].as_str().unwrap();
    for row in &uploaded {
        let id = row["id"].as_str().unwrap();
        assert!(
            id < removal_id,
            "an upload committed after the removal: {row}"
        );
    }
}

/// Two nodes' actors of one project: a group that opens while another node's group
/// holds the project's lock waits for it, and must not then trust the roles its lock
/// statement read (PostgreSQL reads them in that statement's snapshot, taken before the
/// wait). Here the other group removed a member: the waiting group must not see the
/// member's old role. A group that did not wait still reads the roles with its lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_waited_for_another_nodes_lock_reads_the_roles_again() {
    use alta_actors::store::projects::{lock_with, remove_member};
    let (app, project, member) = project_with_a_contributor("leaver@example.org").await;
    let db = app.db().await;

    // Alone, the lock reads the callers' roles in the same statement.
    let mut alone = db.begin().await.unwrap();
    let locked = lock_with(&mut alone, project, &[member], None)
        .await
        .unwrap();
    assert_eq!(
        locked.roles,
        Some(vec![(member, "contributor".to_owned())]),
        "a lock that did not wait reads the roles"
    );
    alone.commit().await.unwrap();

    // "Another node" locks the project and removes the member, and has not committed.
    let mut other = db.begin().await.unwrap();
    lock_with(&mut other, project, &[member], None)
        .await
        .unwrap();
    assert!(remove_member(&mut other, project, member).await.unwrap());
    // This node's group opens: its lock waits.
    let waiting = lock_behind(&app, project, vec![member], None).await;
    other.commit().await.unwrap();
    let locked = waiting.await.unwrap();
    let roles = locked.roles.unwrap_or_default();
    assert!(
        !roles.iter().any(|(user, _)| *user == member),
        "the waiting group saw the removed member's role: {roles:?}"
    );
    assert!(locked.project.is_some());
}

/// A PostgreSQL server with a project and one contributor, `email`: the server, the
/// project's id and the contributor's.
async fn project_with_a_contributor(
    email: &str,
) -> (crate::helpers::TestApp, uuid::Uuid, uuid::Uuid) {
    crate::helpers::init_test_env();
    let app = TestAppBuilder::new(Backend::Postgres).spawn().await;
    let owner = app.signed_up_user("owner@example.org").await;
    let project = create_project(&app, &owner, "Locks").await;
    let member = join(&app, &owner, &project, email, "contributor").await;
    let me: Value = app.get_json("/api/auth/me", &member).await;
    let member = me["id"].as_str().unwrap().parse().unwrap();
    (app, project.parse().unwrap(), member)
}

/// In a task of its own, begin a transaction and lock `project`, which another
/// transaction holds locked; return once the lock statement waits (the handle gives
/// what it locked).
async fn lock_behind(
    app: &crate::helpers::TestApp,
    project: uuid::Uuid,
    users: Vec<uuid::Uuid>,
    left_alone: Option<i64>,
) -> tokio::task::JoinHandle<alta_actors::store::projects::Locked> {
    let (pid_tx, pid_rx) = tokio::sync::oneshot::channel::<i32>();
    let db = app.db().await;
    let handle = tokio::spawn(async move {
        let mut tx = db.begin().await.unwrap();
        let alta_actors::store::Tx::Postgres(t) = &mut tx else {
            unreachable!("a PostgreSQL test")
        };
        let (pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
            .fetch_one(&mut **t)
            .await
            .unwrap();
        pid_tx.send(pid).unwrap();
        let locked = alta_actors::store::projects::lock_with(&mut tx, project, &users, left_alone)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        locked
    });
    let pid = pid_rx.await.unwrap();
    let watcher = app.db().await;
    let alta_actors::store::Db::Postgres(pool) = &watcher else {
        unreachable!("a PostgreSQL test")
    };
    for _ in 0..200 {
        let (waits,): (bool,) = sqlx::query_as(
            "SELECT COALESCE(bool_or(wait_event_type = 'Lock'), false) \
             FROM pg_stat_activity WHERE pid = $1",
        )
        .bind(pid)
        .fetch_one(pool)
        .await
        .unwrap();
        if waits {
            return handle;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the second lock never waited for the first");
}

/// This node's actor opens its next group while the group before is still committing
/// (PostgreSQL). That group changed neither members nor webhooks, so the roles the next
/// group's lock read before it waited still stand, and it must not read them again: the
/// lock says they are fresh when the only lock between its snapshot and its own is the
/// one the actor says it left (`left_alone`). When another lock came in between (the
/// actor's count is not the one before), they are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_follows_its_actors_last_group_keeps_the_roles_its_lock_read() {
    use alta_actors::store::projects::lock_with;
    let (app, project, member) = project_with_a_contributor("stayer@example.org").await;
    let db = app.db().await;
    let contributor = Some(vec![(member, "contributor".to_owned())]);

    // Once for the group that follows this actor's own committing one, once for a group
    // whose actor's last lock is not the one just before (another node's came between).
    for (follows_the_last, fresh) in [(true, true), (false, false)] {
        let mut earlier = db.begin().await.unwrap();
        let first = lock_with(&mut earlier, project, &[member], None)
            .await
            .unwrap();
        earlier.commit().await.unwrap();
        // The actor's last group: locked, changed nothing of the roles, not committed.
        let mut last = db.begin().await.unwrap();
        let locked = lock_with(&mut last, project, &[member], None)
            .await
            .unwrap();
        let left = locked.locks.expect("PostgreSQL counts its locks");
        assert_eq!(Some(left), first.locks.map(|n| n + 1));
        let left_alone = if follows_the_last { left } else { left - 1 };
        let next = lock_behind(&app, project, vec![member], Some(left_alone)).await;
        last.commit().await.unwrap();
        let locked = next.await.unwrap();
        assert_eq!(locked.locks, Some(left + 1));
        assert!(locked.project.is_some());
        if fresh {
            assert_eq!(
                locked.roles, contributor,
                "the roles read before the wait stand"
            );
            assert_eq!(locked.subscribers, Some(Vec::new()));
        } else {
            assert_eq!(locked.roles, None, "the roles must be read again");
            assert_eq!(locked.subscribers, None);
        }
    }
}
