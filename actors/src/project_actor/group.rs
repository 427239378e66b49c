//! Group commit for a project's actor. The transitions that arrive while the actor is
//! busy committing are applied together on its next turn: one transaction, one commit,
//! and only then does each caller get its answer. With one transition waiting, it runs
//! as it would alone; durability does not change (an answer still means committed).
//!
//! Each transition must succeed or fail alone. Two ways to that:
//! - **Fast path**: when every transition of the group can be replayed
//!   ([`super::Transition::replica`]), replicas run one after another with no savepoint
//!   at all (a savepoint is a round trip per transition, which the actor waits for).
//!   New items and plain review decisions are kept for the commit like the audit rows
//!   ([`Change::keep_new_item`], [`Change::keep_decision`]): a group of uploads or
//!   decisions writes them all in its one statement of kept writes (before a
//!   transition that may read them, they are written first). If every replica succeeds
//!   and every kept row goes through (the unique indexes take each item, each verdict
//!   finds its item pending review), the group commits. If one fails, the whole change is rolled
//!   back and the group starts over on the careful path, from the kept originals; the
//!   actor then stays careful for a while ([`CAREFUL_AFTER_RESTART`] groups), so a
//!   workload that fails often does not pay twice.
//! - **Careful path**: a savepoint per transition (a failing one rolls back alone and
//!   gets its own error), one commit.
//!
//! Either way the group **reads ahead**: the items that exactly one of its transitions
//! says it touches ([`super::Touches`]) are read, with their votes, in one statement
//! after the lock, instead of one read each (a review decision's first read). A
//! transition that may change any item makes the group forget them before it runs.

use std::{collections::HashMap, future::Future, time::Instant};

use uuid::Uuid;

use super::{
    actor::Opened,
    transition::{Held, Pending, Touches, copy},
};
use crate::{change::Change, deps::Deps, error::EngineError, metrics as m};

/// Groups that take the careful path after a fast one had to start over.
pub(super) const CAREFUL_AFTER_RESTART: u32 = 16;

/// How a group went: whether its fast path had to start over.
pub(super) struct Committed {
    pub restarted: bool,
}

/// Apply `group` in one transaction and answer every caller after its commit. `fast`:
/// try the fast path first.
pub(super) async fn commit(
    deps: &Deps,
    id: Uuid,
    group: Vec<Box<dyn Pending>>,
    fast: bool,
) -> Committed {
    let started = Instant::now();
    metrics::histogram!(m::PROJECT_GROUP_COMMANDS).record(group.len() as f64);
    let (ran, restarted) = match run(deps, id, group, fast).await {
        Ok(ran) => ran,
        Err((group, err, restarted)) => {
            for command in group {
                command.refuse(copy(&err));
            }
            return Committed { restarted };
        }
    };
    let (held, committed) = ran;
    metrics::histogram!(m::PROJECT_GROUP_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
    for outcome in held {
        outcome.answer(&committed);
    }
    Committed { restarted }
}

type Ran = (Vec<Box<dyn Held>>, Result<(), EngineError>);
/// The group, unrun, with why it could not run and whether a fast path started over.
type Unrun = (Vec<Box<dyn Pending>>, EngineError, bool);

/// Run the group's commands and commit: their outcomes and the commit's, and whether
/// the fast path started over. The group comes back unrun when its change cannot begin
/// or the project cannot be read.
async fn run(
    deps: &Deps,
    id: Uuid,
    mut group: Vec<Box<dyn Pending>>,
    fast: bool,
) -> Result<(Ran, bool), Unrun> {
    let mut callers: Vec<Uuid> = group.iter().map(|c| c.caller()).collect();
    callers.sort_unstable();
    callers.dedup();
    let ahead = to_read_ahead(&group);
    let (mut change, mut opened) = match open(deps, id, &callers, &ahead).await {
        Ok(opened) => opened,
        Err(err) => return Err((group, err, false)),
    };
    // A group of one needs no savepoint: if its command fails, nothing is committed.
    if group.len() == 1 {
        let command = group.pop().expect("one command");
        let outcome = command.run(&mut change, &mut opened, deps).await;
        let committed = if outcome.succeeded() {
            commit_change(change).await
        } else {
            // The command's own error stands, whatever the rollback says.
            if let Err(err) = change.rollback().await {
                tracing::warn!(error = %err, "rolling back a failed command");
            }
            Ok(())
        };
        return Ok(((vec![outcome], committed), false));
    }
    let mut restarted = false;
    if fast && group.iter().all(|c| c.replayable()) {
        // New items and decisions go with the kept writes too: one that does not go
        // through starts the group over.
        change.defer_rows();
        if let Ok(true) = run_replicas(&mut change, &mut opened, deps, &mut group).await
            && let Ok(true) = timed(STAGE_KEPT_WRITES, change.write_kept()).await
        {
            let committed = commit_change(change).await;
            let held = group.into_iter().map(|c| c.into_kept()).collect();
            return Ok(((held, committed), false));
        }
        // A replica failed: nothing of the group stands. Start over, carefully.
        restarted = true;
        metrics::counter!(m::PROJECT_GROUP_RESTARTS_TOTAL).increment(1);
        if let Err(err) = change.rollback().await {
            tracing::warn!(error = %err, "rolling back a group to start over");
        }
        (change, opened) = match open(deps, id, &callers, &ahead).await {
            Ok(opened) => opened,
            Err(err) => return Err((group, err, true)),
        };
    }
    Ok((careful(change, opened, deps, group).await, restarted))
}

/// Begin the group's change, lock and load the project, read its callers' roles and the
/// items `ahead`.
async fn open(
    deps: &Deps,
    id: Uuid,
    callers: &[Uuid],
    ahead: &[(Uuid, Uuid)],
) -> Result<(Change, Opened), EngineError> {
    timed(STAGE_OPEN, async {
        let mut change = Change::begin(&deps.db).await?;
        // The project is locked and loaded once for the whole group, with its callers'
        // roles (one read for all of them).
        let mut opened = Opened::lock(&mut change, id, callers).await?;
        opened.read_roles(&mut change, callers).await?;
        if !ahead.is_empty() {
            opened.read_ahead(&mut change, ahead).await?;
        }
        Ok((change, opened))
    })
    .await
}

/// Stages of a group, timed in `project_group_stage_seconds` (where the time between
/// the transitions goes).
const STAGE_OPEN: &str = "open";
const STAGE_KEPT_WRITES: &str = "kept_writes";
const STAGE_COMMIT: &str = "commit";

/// `work`, timed as the group's `stage`.
async fn timed<T>(stage: &'static str, work: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let done = work.await;
    metrics::histogram!(m::PROJECT_GROUP_STAGE_SECONDS, "stage" => stage)
        .record(started.elapsed().as_secs_f64());
    done
}

/// Commit the group's change (with what it kept and has not written yet), timed.
async fn commit_change(change: Change) -> Result<(), EngineError> {
    timed(STAGE_COMMIT, change.commit()).await
}

/// The items to read ahead for `group`, with who reads each: those that exactly one of
/// its commands touches ([`Touches::Item`]). Fewer than two cost no round trip less.
fn to_read_ahead(group: &[Box<dyn Pending>]) -> Vec<(Uuid, Uuid)> {
    let mut touched: HashMap<Uuid, Option<Uuid>> = HashMap::new();
    for command in group {
        if let Touches::Item { id, read_ahead } = command.touches() {
            let reader = read_ahead.then(|| command.caller());
            touched
                .entry(id)
                .and_modify(|reader| *reader = None) // two touch it: neither reads ahead
                .or_insert(reader);
        }
    }
    let wanted: Vec<(Uuid, Uuid)> = touched
        .into_iter()
        .filter_map(|(item, reader)| Some((item, reader?)))
        .collect();
    if wanted.len() < 2 { Vec::new() } else { wanted }
}

/// The fast path: every command's replica in turn, no savepoints. `Ok(true)` when all
/// succeeded; anything else leaves the change to be rolled back.
async fn run_replicas(
    change: &mut Change,
    opened: &mut Opened,
    deps: &Deps,
    group: &mut [Box<dyn Pending>],
) -> Result<bool, EngineError> {
    for command in group.iter_mut() {
        // A command that may read what the group kept so far sees it written first.
        let sees_kept = match command.touches() {
            Touches::AnyItem => true,
            Touches::NoExistingItem => false,
            Touches::Item { id, .. } => change.keeps_decision_on(id),
        };
        if sees_kept && !change.flush_kept_rows().await? {
            return Ok(false);
        }
        if !command.run_replica(change, opened, deps).await {
            return Ok(false);
        }
        opened.refresh(change).await?;
    }
    Ok(true)
}

/// The careful path: a savepoint per command, one commit.
async fn careful(
    mut change: Change,
    mut opened: Opened,
    deps: &Deps,
    group: Vec<Box<dyn Pending>>,
) -> Ran {
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
        None => commit_change(change).await,
    };
    (held, committed)
}
