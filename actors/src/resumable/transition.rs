//! A resumable upload's changes, as transitions of its project, applied by the
//! project's actor like every other write: it is opened, its committed offset moves
//! (with the chunk's part when nodes share uploads), it is settled (its item made, or
//! the file refused), or its owner removes it. The caller checks that the upload is
//! theirs before sending one; the bytes are stored before, and removed after, outside
//! the transaction.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::MAX_OPEN_PER_USER;
use crate::{
    ErrorCode,
    authz::ProjectAction,
    context::Principal,
    error::EngineError,
    project_actor::{Check, InProject, Transition},
    store::{
        self,
        resumable::{PartRow, ResumableRow},
    },
};

/// Open an upload: at most [`MAX_OPEN_PER_USER`] unfinished ones per account.
pub struct OpenUpload {
    pub row: Box<ResumableRow>,
}

impl Transition for OpenUpload {
    type Out = ();

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::Upload)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(), EngineError> {
        let (user, now) = (self.row.user_id, at.now);
        if store::resumable::count_receiving(at.tx(), user, now).await? >= MAX_OPEN_PER_USER {
            // 403, not 409 or 429: tus clients retry 409 (resending nothing useful),
            // and waiting does not help; finishing or deleting an upload does.
            return Err(EngineError::Refused {
                code: ErrorCode::TooManyOpenUploads,
                message: format!(
                    "at most {MAX_OPEN_PER_USER} unfinished uploads at once; finish or delete one"
                ),
            });
        }
        store::resumable::insert(at.tx(), &self.row).await?;
        Ok(())
    }
}

/// Commit a chunk: the offset moves from `from` to `to` (and the expiry out), with the
/// chunk's part when it is kept in the blob store. `false` (nothing written) when the
/// upload is no longer receiving at `from`: another writer, termination, expiry.
pub struct AdvanceUpload {
    pub id: Uuid,
    pub from: i64,
    pub to: i64,
    pub part: Option<PartRow>,
    pub expires_at: DateTime<Utc>,
}

impl Transition for AdvanceUpload {
    type Out = bool;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::Upload)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<bool, EngineError> {
        let now = at.now;
        Ok(match &self.part {
            Some(part) => {
                store::resumable::advance_with_part(at.tx(), self.id, part, now, self.expires_at)
                    .await?
            }
            None => {
                store::resumable::advance(
                    at.tx(),
                    self.id,
                    self.from,
                    self.to,
                    now,
                    self.expires_at,
                )
                .await?
            }
        })
    }
}

/// How a finished upload ended.
pub enum Settled {
    /// Its item was made.
    Completed { item_id: Uuid },
    /// The complete file was refused, with the refusal's code and detail.
    Failed { code: String, detail: String },
}

/// Every byte is in and the file was judged: the upload is completed (with its item)
/// or failed (kept with the reason so the client can ask), and its parts' rows go.
pub struct SettleUpload {
    pub id: Uuid,
    pub settled: Settled,
}

impl Transition for SettleUpload {
    type Out = ();

    fn check(&self, _: &Principal) -> Check {
        // The item is made (or refused) already; a project deleted since keeps the
        // upload's outcome.
        Check::Itself
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(), EngineError> {
        let now = at.now;
        match &self.settled {
            Settled::Completed { item_id } => {
                store::resumable::complete(at.tx(), self.id, *item_id, now).await?;
            }
            Settled::Failed { code, detail } => {
                store::resumable::fail(at.tx(), self.id, code, detail, now).await?;
            }
        }
        store::resumable::delete_parts_tx(at.tx(), self.id).await?;
        Ok(())
    }
}

/// Remove an upload and its parts' rows (`DELETE` by its owner); the bytes go after.
pub struct RemoveUpload {
    pub id: Uuid,
}

impl Transition for RemoveUpload {
    type Out = ();

    fn check(&self, _: &Principal) -> Check {
        // The owner may remove their upload from a project deleted since.
        Check::Itself
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(), EngineError> {
        store::resumable::delete_tx(at.tx(), self.id).await?;
        Ok(())
    }
}
