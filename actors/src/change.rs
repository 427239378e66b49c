//! A unit of work: one open transaction, and what must happen once it has committed
//! (waking the job workers, counting metrics). Several commands can share one change,
//! each inside a savepoint of its own ([`Change::savepoint`]), so that an actor commits
//! them together (group commit) while each command still succeeds or fails alone.
//!
//! A `Change` dereferences to the [`Tx`] it owns, so the store's functions take it as
//! they take a transaction.

use crate::{
    error::EngineError,
    store::{Db, StoreResult, Tx, with_tx},
};

type AfterCommit = Box<dyn FnOnce() + Send>;

pub struct Change {
    tx: Tx,
    after_commit: Vec<AfterCommit>,
}

/// Where a command began inside a shared change: rolling back to it undoes the
/// command's writes and forgets its after-commit work.
#[must_use = "a savepoint is released or rolled back"]
pub struct Savepoint {
    after_commit_len: usize,
}

impl Change {
    pub async fn begin(db: &Db) -> StoreResult<Self> {
        Ok(Self {
            tx: db.begin().await?,
            after_commit: Vec::new(),
        })
    }

    /// Run `work` once the change has committed (never if it does not).
    pub fn after_commit(&mut self, work: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(work));
    }

    /// Begin a command inside the change (`SAVEPOINT`).
    pub async fn savepoint(&mut self) -> StoreResult<Savepoint> {
        self.execute("SAVEPOINT command").await?;
        Ok(Savepoint {
            after_commit_len: self.after_commit.len(),
        })
    }

    /// The command succeeded: keep its writes in the change.
    pub async fn release(&mut self, _savepoint: Savepoint) -> StoreResult<()> {
        self.execute("RELEASE SAVEPOINT command").await
    }

    /// The command failed: undo its writes and its after-commit work, alone.
    pub async fn rollback_to(&mut self, savepoint: Savepoint) -> StoreResult<()> {
        self.after_commit.truncate(savepoint.after_commit_len);
        self.execute("ROLLBACK TO SAVEPOINT command").await?;
        self.execute("RELEASE SAVEPOINT command").await
    }

    /// Commit, then do what was waiting for it.
    pub async fn commit(self) -> Result<(), EngineError> {
        self.tx.commit().await?;
        for work in self.after_commit {
            work();
        }
        Ok(())
    }

    async fn execute(&mut self, sql: &'static str) -> StoreResult<()> {
        with_tx!(&mut self.tx, |conn| sqlx::query(sql)
            .execute(conn)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}

impl std::ops::Deref for Change {
    type Target = Tx;

    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl std::ops::DerefMut for Change {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

#[cfg(test)]
mod tests {
    /// Every write transaction begins as a `Change`, inside an actor. The places that
    /// still begin one by hand are listed with their reason; a new one fails here.
    #[test]
    fn transactions_begin_only_in_a_change() {
        const STILL_BY_HAND: &[(&str, &str)] = &[
            ("store/mod.rs", "defines Db::begin"),
            ("change.rs", "Change::begin"),
            (
                "jobs/service.rs",
                "retrying a failed job that has no item (queue bookkeeping)",
            ),
            (
                "processing/mod.rs",
                "handing a job over to the OCR lane (queue bookkeeping)",
            ),
            (
                "review/digest.rs",
                "the digest sweep marks notices sent (queue bookkeeping)",
            ),
        ];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read src") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("read file");
                    if text.contains(".begin().await") {
                        let rel = path.strip_prefix(&root).expect("under src");
                        found.push(rel.to_string_lossy().replace('\\', "/"));
                    }
                }
            }
        }
        found.sort();
        let unexpected: Vec<&String> = found
            .iter()
            .filter(|f| !STILL_BY_HAND.iter().any(|(allowed, _)| f == allowed))
            .collect();
        assert!(
            unexpected.is_empty(),
            "transactions begun by hand outside a Change: {unexpected:?}"
        );
        // The list shrinks as bookkeeping moves into actors: keep it honest.
        for (allowed, why) in STILL_BY_HAND {
            assert!(
                found.iter().any(|f| f == allowed),
                "{allowed} ({why}) no longer begins a transaction: remove it from the list"
            );
        }
    }
}
