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
//! A group's commit is **under way while the next group opens** ([`Finishing`]): on
//! PostgreSQL the next group's begin and lock statement go out at once, and the lock
//! waits in the database for the commit before it, saving the actor those round trips.
//! Each caller still gets its answer only after its own group's commit. The lock
//! statement's reads (the callers' roles, the webhooks) see a snapshot from before that
//! commit; they are kept when the only commit in between was that group's, which
//! changed none of them ([`store::projects::Reading::trusted`]).
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
use crate::{
    change::Change,
    deps::Deps,
    error::EngineError,
    metrics as m,
    store::{self, Db},
};

/// Groups that take the careful path after a fast one had to start over.
pub(super) const CAREFUL_AFTER_RESTART: u32 = 16;

/// How a group went: whether its fast path had to start over, and its commit if that
/// is under way.
pub(super) struct Committed {
    pub restarted: bool,
    pub finishing: Option<Finishing>,
}

/// A group's commit under way: it answers the group's callers when it ends.
pub(super) struct Finishing {
    ended: tokio::task::JoinHandle<bool>,
    /// The lock count the group leaves ([`Opened::locks_left`]).
    locks: Option<i64>,
}

impl Finishing {
    /// Wait for the commit to end: the lock count it left, if it committed and changed
    /// nothing a lock statement reads.
    pub(super) async fn committed_as(self) -> Option<i64> {
        let committed = self.ended.await.unwrap_or(false);
        if committed { self.locks } else { None }
    }
}

/// Apply `group` in one transaction; its callers are answered after its commit, which
/// may still be under way when this returns ([`Committed::finishing`]). `fast`: try the
/// fast path first. `before`: the commit of the actor's group before, if under way.
pub(super) async fn commit(
    deps: &Deps,
    id: Uuid,
    group: Vec<Box<dyn Pending>>,
    fast: bool,
    before: Option<Finishing>,
) -> Committed {
    let started = Instant::now();
    metrics::histogram!(m::PROJECT_GROUP_COMMANDS).record(group.len() as f64);
    let (ran, restarted) = match run(deps, id, group, fast, before).await {
        Ok(ran) => ran,
        Err((group, err, restarted)) => {
            for command in group {
                command.refuse(copy(&err));
            }
            return Committed {
                restarted,
                finishing: None,
            };
        }
    };
    let (held, end) = ran;
    let answer = move |held: Vec<Box<dyn Held>>, committed: Result<(), EngineError>| {
        metrics::histogram!(m::PROJECT_GROUP_COMMIT_SECONDS)
            .record(started.elapsed().as_secs_f64());
        for outcome in held {
            outcome.answer(&committed);
        }
        committed.is_ok()
    };
    let finishing = match end {
        End::Commit { change, locks } => Some(Finishing {
            ended: tokio::spawn(async move { answer(held, commit_change(*change).await) }),
            locks,
        }),
        End::Ended(committed) => {
            answer(held, committed);
            None
        }
    };
    Committed {
        restarted,
        finishing,
    }
}

/// How a group's change ends once its commands ran.
enum End {
    /// Commit it; `locks` as [`Finishing::locks`].
    Commit {
        change: Box<Change>,
        locks: Option<i64>,
    },
    /// Already ended (rolled back, or broken): with this outcome for every command
    /// that succeeded.
    Ended(Result<(), EngineError>),
}

impl End {
    fn commit(change: Change, opened: &Opened) -> Self {
        End::Commit {
            change: Box::new(change),
            locks: opened.locks_left(),
        }
    }
}

type Ran = (Vec<Box<dyn Held>>, End);
/// The group, unrun, with why it could not run and whether a fast path started over.
type Unrun = (Vec<Box<dyn Pending>>, EngineError, bool);

/// Run the group's commands: their outcomes and how the change ends, and whether the
/// fast path started over. The group comes back unrun when its change cannot begin or
/// the project cannot be read.
async fn run(
    deps: &Deps,
    id: Uuid,
    mut group: Vec<Box<dyn Pending>>,
    fast: bool,
    before: Option<Finishing>,
) -> Result<(Ran, bool), Unrun> {
    let mut callers: Vec<Uuid> = group.iter().map(|c| c.caller()).collect();
    callers.sort_unstable();
    callers.dedup();
    let ahead = to_read_ahead(&group);
    let (mut change, mut opened) = match open(deps, id, &callers, &ahead, before).await {
        Ok(opened) => opened,
        Err(err) => return Err((group, err, false)),
    };
    // A group of one needs no savepoint: if its command fails, nothing is committed.
    if group.len() == 1 {
        let command = group.pop().expect("one command");
        let outcome = command.run(&mut change, &mut opened, deps).await;
        let end = if outcome.succeeded() {
            End::commit(change, &opened)
        } else {
            // The command's own error stands, whatever the rollback says.
            if let Err(err) = change.rollback().await {
                tracing::warn!(error = %err, "rolling back a failed command");
            }
            End::Ended(Ok(()))
        };
        return Ok(((vec![outcome], end), false));
    }
    let mut restarted = false;
    if fast && group.iter().all(|c| c.replayable()) {
        // New items and decisions go with the kept writes too: one that does not go
        // through starts the group over.
        change.defer_rows();
        if let Ok(true) = run_replicas(&mut change, &mut opened, deps, &mut group).await
            && let Ok(true) = timed(STAGE_KEPT_WRITES, change.write_kept()).await
        {
            let held = group.into_iter().map(|c| c.into_kept()).collect();
            return Ok(((held, End::commit(change, &opened)), false));
        }
        // A replica failed: nothing of the group stands. Start over, carefully.
        restarted = true;
        metrics::counter!(m::PROJECT_GROUP_RESTARTS_TOTAL).increment(1);
        if let Err(err) = change.rollback().await {
            tracing::warn!(error = %err, "rolling back a group to start over");
        }
        (change, opened) = match open(deps, id, &callers, &ahead, None).await {
            Ok(opened) => opened,
            Err(err) => return Err((group, err, true)),
        };
    }
    Ok((careful(change, opened, deps, group).await, restarted))
}

/// Begin the group's change, lock and load the project, read its callers' roles and the
/// items `ahead`. On PostgreSQL the begin and the lock go out while the commit `before`
/// is under way (the lock waits for it in the database); SQLite, one writer, waits for
/// that commit first.
async fn open(
    deps: &Deps,
    id: Uuid,
    callers: &[Uuid],
    ahead: &[(Uuid, Uuid)],
    before: Option<Finishing>,
) -> Result<(Change, Opened), EngineError> {
    timed(STAGE_OPEN, async {
        // The project is locked and loaded once for the whole group, with its callers'
        // roles (one read for all of them).
        let locking = async {
            let mut change = Change::begin(&deps.db).await?;
            let reading = store::projects::lock_reading(&mut change, id, callers).await?;
            Ok::<_, EngineError>((change, reading))
        };
        let (after, locked) = match before {
            Some(before) if matches!(deps.db, Db::Postgres(_)) => {
                tokio::join!(before.committed_as(), locking)
            }
            Some(before) => (before.committed_as().await, locking.await),
            None => (None, locking.await),
        };
        let (mut change, reading) = locked?;
        let mut opened = Opened::locked(id, callers, reading.trusted(after));
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
    let end = match broken {
        Some(err) => End::Ended(Err(err)),
        None => End::commit(change, &opened),
    };
    (held, end)
}
