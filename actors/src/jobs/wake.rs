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
