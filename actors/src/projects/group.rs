//! Group commit for a project's actor. The commands that arrive while the actor is
//! busy committing are applied together on its next turn: one transaction, a savepoint
//! per command (a failing command rolls back alone and gets its own error), one commit,
//! and only then does each caller get its answer. With one command waiting, it runs as
//! it would alone; durability does not change (an answer still means committed).
//!
//! Uploads and review decisions go through the group today: they are the writes that
//! come in crowds (a batch upload, a team reviewing). The project's other transitions
//! commit one by one, after the group that was waiting before them.

use std::time::Instant;

use uuid::Uuid;

use super::{messages::Reply, project::Opened};
use crate::{
    change::Change,
    context::{Principal, RequestContext},
    engine::Deps,
    error::EngineError,
    idempotency::Claim,
    items::ItemView,
    metrics as m,
    review::DecisionInput,
    store::{items::ItemRow, reviews::DecisionRow},
};

/// A command that waits for the group's commit.
pub enum Grouped {
    AddItem {
        principal: Principal,
        idempotency: Option<Claim>,
        row: Box<ItemRow>,
        ctx: RequestContext,
        reply: Reply<ItemView>,
    },
    Decide {
        principal: Principal,
        item_id: Uuid,
        input: Box<DecisionInput>,
        ctx: RequestContext,
        reply: Reply<(ItemRow, DecisionRow)>,
    },
}

/// A command's outcome, held until the group's commit says whether it stands.
enum Held {
    Item(Reply<ItemView>, Result<ItemView, EngineError>),
    Decision(
        Reply<(ItemRow, DecisionRow)>,
        Result<(ItemRow, DecisionRow), EngineError>,
    ),
}

impl Held {
    fn succeeded(&self) -> bool {
        match self {
            Self::Item(_, r) => r.is_ok(),
            Self::Decision(_, r) => r.is_ok(),
        }
    }

    /// Answer the caller: a success stands only if the group committed.
    fn answer(self, committed: &Result<(), EngineError>) {
        fn settle<T>(
            result: Result<T, EngineError>,
            committed: &Result<(), EngineError>,
        ) -> Result<T, EngineError> {
            match (result, committed) {
                (Ok(_), Err(err)) => Err(copy(err)),
                (result, _) => result,
            }
        }
        match self {
            Self::Item(reply, r) => {
                let _ = reply.send(settle(r, committed));
            }
            Self::Decision(reply, r) => {
                let _ = reply.send(settle(r, committed));
            }
        }
    }
}

/// The group's failure, for each of its callers.
fn copy(err: &EngineError) -> EngineError {
    match err {
        EngineError::Unavailable(msg) => EngineError::Unavailable(msg.clone()),
        EngineError::NotFound { what } => EngineError::NotFound { what },
        other => EngineError::Internal(other.to_string()),
    }
}

/// Apply `group` in one transaction and answer every caller after its commit.
pub(super) async fn commit(deps: &Deps, id: Uuid, group: Vec<Grouped>) {
    let started = Instant::now();
    metrics::histogram!(m::PROJECT_GROUP_COMMANDS).record(group.len() as f64);
    let mut change = match Change::begin(&deps.db).await {
        Ok(change) => change,
        Err(err) => {
            let err = EngineError::from(err);
            for command in group {
                command.refuse(copy(&err));
            }
            return;
        }
    };
    // The project is locked and loaded once for the whole group.
    let mut opened = match Opened::lock(&mut change, id).await {
        Ok(opened) => opened,
        Err(err) => {
            for command in group {
                command.refuse(copy(&err));
            }
            return;
        }
    };
    let mut held = Vec::with_capacity(group.len());
    // A savepoint that cannot be set or undone leaves the transaction unusable: the
    // whole group then fails (nothing of it is written).
    let mut broken: Option<EngineError> = None;
    for command in group {
        if let Some(err) = &broken {
            command.refuse(copy(err));
            continue;
        }
        let savepoint = match change.savepoint().await {
            Ok(savepoint) => savepoint,
            Err(err) => {
                let err = EngineError::from(err);
                command.refuse(copy(&err));
                broken = Some(err);
                continue;
            }
        };
        let outcome = command.apply(&mut change, &mut opened, deps).await;
        let ended = if outcome.succeeded() {
            change.release(savepoint).await
        } else {
            change.rollback_to(savepoint).await
        };
        if let Err(err) = ended {
            broken = Some(EngineError::from(err));
        }
        held.push(outcome);
    }
    let committed = match broken {
        Some(err) => Err(err),
        None => change.commit().await,
    };
    metrics::histogram!(m::PROJECT_GROUP_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
    for outcome in held {
        outcome.answer(&committed);
    }
}

impl Grouped {
    async fn apply(self, change: &mut Change, opened: &mut Opened, deps: &Deps) -> Held {
        match self {
            Self::AddItem {
                principal,
                idempotency,
                row,
                ctx,
                reply,
            } => {
                let result =
                    super::items::add(change, opened, deps, &principal, &row, &ctx, &idempotency)
                        .await;
                Held::Item(reply, result)
            }
            Self::Decide {
                principal,
                item_id,
                input,
                ctx,
                reply,
            } => {
                let result =
                    super::review::decide(change, opened, deps, &principal, item_id, &input, &ctx)
                        .await;
                Held::Decision(reply, result)
            }
        }
    }

    fn refuse(self, err: EngineError) {
        match self {
            Self::AddItem { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Self::Decide { reply, .. } => {
                let _ = reply.send(Err(err));
            }
        }
    }
}
