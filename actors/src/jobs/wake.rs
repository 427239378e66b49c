//! Waking workers on every node: on PostgreSQL, a committed job sends `NOTIFY
//! alta_jobs` (from its own transaction, so only once it commits), and each node
//! listens and nudges its local workers. On SQLite there is one node; the in-process
//! waker already covers it. The poll timer stays as the safety net either way.

use std::{sync::Arc, time::Duration};

use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

use crate::{
    deps::Deps,
    store::{self, Db},
};

/// The channel jobs are announced on (its payload is the job kind).
const CHANNEL: &str = store::jobs::NOTIFY_CHANNEL;

/// Listen for jobs committed by any node; `None` on SQLite.
pub(crate) fn listen(deps: Arc<Deps>) -> Option<JoinHandle<()>> {
    let Db::Postgres(pool) = deps.db.clone() else {
        return None;
    };
    Some(tokio::spawn(async move {
        let mut backoff = Duration::from_millis(500);
        loop {
            let listener = async {
                let mut l = PgListener::connect_with(&pool).await?;
                l.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(l)
            }
            .await;
            match listener {
                Ok(mut l) => {
                    backoff = Duration::from_millis(500);
                    // `recv` reconnects by itself after a lost connection; jobs sent
                    // meanwhile are found by the poll.
                    while let Ok(notification) = l.recv().await {
                        deps.job_waker.wake(notification.payload());
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot LISTEN for jobs; relying on polling");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }))
}

/// Wakes this node's job workers, one kind at a time: a committed job of one kind wakes
/// the worker of that kind only. (One waker for every kind made each kind's worker claim
/// on every commit that queued anything; on PostgreSQL most of those claims found
/// nothing, about a third of all the statements an upload benchmark ran.)
#[derive(Default)]
pub struct JobWaker {
    kinds: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
}

impl JobWaker {
    /// What the worker of `kind` waits on.
    pub fn of(&self, kind: &str) -> Arc<tokio::sync::Notify> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        kinds.entry(kind.to_owned()).or_default().clone()
    }

    /// Wake the worker of `kind` (if it waits).
    pub fn wake(&self, kind: &str) {
        self.of(kind).notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::JobWaker;

    /// A wake-up reaches the worker of its kind, and only that one.
    #[tokio::test]
    async fn a_job_wakes_the_worker_of_its_kind_only() {
        let waker = JobWaker::default();
        let (ocr, mail) = (waker.of("ocr"), waker.of("mail"));
        let (ocr_woken, mail_woken) = (ocr.notified(), mail.notified());
        tokio::pin!(ocr_woken, mail_woken);
        // Registered as waiting before the wake-up, as a worker's loop is.
        ocr_woken.as_mut().enable();
        mail_woken.as_mut().enable();
        waker.wake("ocr");
        let wait = Duration::from_millis(50);
        assert!(tokio::time::timeout(wait, ocr_woken).await.is_ok());
        assert!(tokio::time::timeout(wait, mail_woken).await.is_err());
    }
}
