//! The job queue under concurrent workers, on both backends: every job is claimed by
//! exactly one worker and finished once.

use std::collections::HashSet;

use alta_actors::store::jobs;
use serde_json::json;

use crate::{
    backend_tests,
    helpers::{Backend, TestAppBuilder, assert_problem},
};

backend_tests!(
    concurrent_workers_never_take_the_same_job,
    a_failed_job_without_an_item_is_retried_once_with_its_audit_row
);

async fn concurrent_workers_never_take_the_same_job(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let db = app.db().await;
    let now = chrono::Utc::now() - chrono::Duration::minutes(1);
    const JOBS: usize = 300;
    let mut tx = db.begin().await.unwrap();
    for n in 0..JOBS {
        jobs::enqueue(&mut tx, "queue_test", json!({ "n": n }), 3, now, now)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let workers: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                let worker = format!("test-worker-{w}");
                let mut taken = Vec::new();
                loop {
                    let now = chrono::Utc::now();
                    let lease = now + chrono::Duration::minutes(5);
                    let claimed = match jobs::claim(&db, "queue_test", &worker, now, lease, 7).await
                    {
                        Ok(c) => c,
                        // SQLite may be busy under four writers: try again.
                        Err(alta_actors::store::StoreError::Unavailable(_)) => continue,
                        Err(e) => panic!("claim: {e}"),
                    };
                    if claimed.is_empty() {
                        break;
                    }
                    for job in claimed {
                        assert!(
                            jobs::complete(&db, job.id, &worker, chrono::Utc::now(), false)
                                .await
                                .unwrap(),
                            "the claimer finishes its own job"
                        );
                        taken.push(job.id);
                    }
                }
                taken
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut busy_workers = 0;
    for handle in workers {
        let taken = handle.await.unwrap();
        busy_workers += usize::from(!taken.is_empty());
        all.extend(taken);
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), JOBS, "every job claimed once, none twice");
    assert_eq!(unique.len(), JOBS);
    assert!(busy_workers >= 2, "the workers really competed");
    let states = jobs::list_by_kind(&db, "queue_test").await.unwrap();
    assert_eq!(states.len(), JOBS);
    assert!(
        states
            .iter()
            .all(|j| j.state == alta_actors::domain::JobState::Done && j.attempts == 1)
    );

    // Finished jobs go after their retention (14 days by default), at the next sweep.
    app.engine
        .sweep_orphans(std::time::Duration::from_secs(3600))
        .await;
    assert_eq!(
        jobs::list_by_kind(&db, "queue_test").await.unwrap().len(),
        JOBS
    );
    app.advance_clock(chrono::Duration::days(15)).await;
    app.engine
        .sweep_orphans(std::time::Duration::from_secs(3600))
        .await;
    assert!(
        jobs::list_by_kind(&db, "queue_test")
            .await
            .unwrap()
            .is_empty()
    );
}

/// A super admin retries a failed job that processes no item (a mail, say): it is
/// queued again with a `job.retried` audit row (written by the accounts actor, the
/// platform's writer), and a second retry is 409 `job_not_failed` and writes nothing.
async fn a_failed_job_without_an_item_is_retried_once_with_its_audit_row(backend: Backend) {
    let app = TestAppBuilder::new(backend).spawn().await;
    let root = app.super_admin("root@example.org").await;
    let db = app.db().await;
    // Due in a day: no worker of this node takes it meanwhile.
    let now = chrono::Utc::now();
    let later = now + chrono::Duration::days(1);
    let mut tx = db.begin().await.unwrap();
    let id = jobs::enqueue(&mut tx, "queue_test", json!({"n": 1}), 1, now, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let claimed = jobs::claim(&db, "queue_test", "test-worker", now, later, 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        jobs::park_failed(&db, id, "test-worker", "the test failed it", now)
            .await
            .unwrap()
    );
    let retry = |token: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url(&format!("/api/admin/jobs/{id}/retry")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let resp = retry(root.clone()).await;
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let job: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(job["state"], "queued", "{job}");
    let resp = retry(root.clone()).await;
    assert_problem(resp, reqwest::StatusCode::CONFLICT, "job_not_failed").await;
    let audit = app
        .get_json("/api/admin/audit-log?action=job.retried", &root)
        .await;
    let rows = audit["items"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "one retry, one audit row: {audit}");
    assert_eq!(rows[0]["target_id"], id.to_string());
    db.close().await;
}
