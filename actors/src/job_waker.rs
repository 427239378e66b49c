//! Waking this node's job workers, one kind at a time. Low (below every domain): the
//! unit of work wakes the worker of the kind it queued once it commits, and the workers
//! (`jobs/`) wait on it.

use std::sync::Arc;

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
        if let Some(waker) = kinds.get(kind) {
            return waker.clone();
        }
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
