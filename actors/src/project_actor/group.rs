//! Group commit for a project's actor. The transitions that arrive while the actor is
//! busy committing are applied together on its next turn: one transaction, a savepoint
//! per transition (a failing one rolls back alone and gets its own error), one commit,
//! and only then does each caller get its answer. With one transition waiting, it runs
//! as it would alone; durability does not change (an answer still means committed).

use std::time::Instant;

use uuid::Uuid;

use super::{
    actor::Opened,
    transition::{Held, Pending, copy},
};
use crate::{change::Change, deps::Deps, error::EngineError, metrics as m};

/// Apply `group` in one transaction and answer every caller after its commit.
pub(super) async fn commit(deps: &Deps, id: Uuid, group: Vec<Box<dyn Pending>>) {
    let started = Instant::now();
    metrics::histogram!(m::PROJECT_GROUP_COMMANDS).record(group.len() as f64);
    let (held, committed) = match run(deps, id, group).await {
        Ok(ran) => ran,
        Err((group, err)) => {
            for command in group {
                command.refuse(copy(&err));
            }
            return;
        }
    };
    metrics::histogram!(m::PROJECT_GROUP_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
    for outcome in held {
        outcome.answer(&committed);
    }
}

type Ran = (Vec<Box<dyn Held>>, Result<(), EngineError>);

/// Run the group's commands and commit: their outcomes and the commit's. The group
/// comes back unrun when its change cannot begin or the project cannot be read.
async fn run(
    deps: &Deps,
    id: Uuid,
    group: Vec<Box<dyn Pending>>,
) -> Result<Ran, (Vec<Box<dyn Pending>>, EngineError)> {
    let mut change = match Change::begin(&deps.db).await {
        Ok(change) => change,
        Err(err) => return Err((group, err.into())),
    };
    // The project is locked and loaded once for the whole group.
    let mut opened = match Opened::lock(&mut change, id).await {
        Ok(opened) => opened,
        Err(err) => return Err((group, err)),
    };
    // A group of one needs no savepoint: if its command fails, nothing is committed.
    if group.len() == 1 {
        let command = group.into_iter().next().expect("one command");
        let outcome = command.run(&mut change, &mut opened, deps).await;
        let committed = if outcome.succeeded() {
            change.commit().await
        } else {
            // The command's own error stands, whatever the rollback says.
            if let Err(err) = change.rollback().await {
                tracing::warn!(error = %err, "rolling back a failed command");
            }
            Ok(())
        };
        return Ok((vec![outcome], committed));
    }
    let callers: Vec<Uuid> = group.iter().map(|c| c.caller()).collect();
    if let Err(err) = opened.read_roles(&mut change, &callers).await {
        return Err((group, err));
    }
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
        let outcome = command.run(&mut change, &mut opened, deps).await;
        let ended = if outcome.succeeded() {
            change.release(savepoint);
            Ok(())
        } else {
            change.rollback_to(savepoint).await
        };
        if let Err(err) = ended {
            broken = Some(EngineError::from(err));
        } else if let Err(err) = opened.refresh(&mut change).await {
            broken = Some(err);
        }
        held.push(outcome);
    }
    let committed = match broken {
        Some(err) => Err(err),
        None => change.commit().await,
    };
    Ok((held, committed))
}
