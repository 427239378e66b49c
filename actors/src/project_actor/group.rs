//! Group commit for a project's actor. The transitions that arrive while the actor is
//! busy committing are applied together on its next turn: one transaction, one commit,
//! and only then does each caller get its answer. With one transition waiting, it runs
//! as it would alone; durability does not change (an answer still means committed).
//!
//! Each transition must succeed or fail alone. Two ways to that:
//! - **Fast path**: when every transition of the group can be replayed
//!   ([`super::Transition::replica`]), replicas run one after another with no savepoint
//!   at all (a savepoint is a round trip per transition, which the actor waits for).
//!   New items, plain review decisions and processing outcomes are kept for the commit
//!   like the audit rows ([`Change::keep_new_item`], [`Change::keep_decision`],
//!   [`Change::keep_outcome`]): a group of uploads, decisions or outcomes writes them all
//!   in its one statement of kept writes (before a transition that may read them, they
//!   are written first). If every replica succeeds and every kept row goes through (the
//!   unique indexes take each item, each verdict finds its item pending review, each
//!   outcome its job held by its worker and its item waiting for it), the group commits. If one fails, the whole change is rolled
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
//!
//! A group's **commit overlaps the next group's opening** on PostgreSQL: the actor hands
//! the commit (and the answers after it) to a task of its own, and the transitions that
//! arrive meanwhile gather into the next group, as before. As soon as one arrives, a
//! second task begins that group's change on another connection and takes the project's
//! lock ([`begin_behind`]); the lock waits for the commit, so the two cannot interleave,
//! and the next group starts the moment the commit ends, its begin and lock already
//! done. Each caller still hears only after its own group committed. Only a group that
//! changed neither the project, its members nor its webhooks is followed that way
//! ([`Follow`]); after any other, and on SQLite, the next group begins after the commit.

use std::{collections::HashMap, future::Future, time::Instant};

use uuid::Uuid;

use super::{
    actor::Opened,
    transition::{Held, Pending, Touches, copy},
};
use crate::{change::Change, deps::Deps, error::EngineError, metrics as m};

/// Groups that take the careful path after a fast one had to start over.
pub(super) const CAREFUL_AFTER_RESTART: u32 = 16;

/// A group applied and not yet committed: its outcomes, and the change to commit. The
/// actor starts on its next group while this one commits ([`Prepared::finish`]).
pub(super) struct Prepared {
    held: Vec<Box<dyn Held>>,
    ending: Ending,
    started: Instant,
    /// The fast path had to start over.
    pub restarted: bool,
    /// The next group may open before this one has committed: see [`Follow`].
    pub follow: Option<Follow>,
    /// Who called, each once.
    pub callers: Vec<Uuid>,
}

/// What ends a group: its commit, or what its callers are told without one.
enum Ending {
    /// Boxed: a change holds its kept writes, far larger than an error.
    Commit(Box<Change>),
    Done(Result<(), EngineError>),
}

/// A group that the next one may follow before it has committed (PostgreSQL only). The
/// next group's lock waits for this one's commit, so everything it reads after the lock
/// sees this group's writes; what its locking statement read with the project (the
/// callers' roles, the webhooks) is from before, and stands because this group changed
/// none of it. `locks` is the project's lock count this group left: the next one's
/// statement checks that nothing else locked the project in between.
#[derive(Clone, Copy)]
pub(super) struct Follow {
    pub locks: i64,
}

/// Apply `group` in one transaction, up to its commit. `fast`: try the fast path first.
/// `begun`: the change, begun and locked while the group before committed
/// ([`begin_behind`]); `None` begins one now.
pub(super) async fn prepare(
    deps: &Deps,
    id: Uuid,
    group: Vec<Box<dyn Pending>>,
    fast: bool,
    begun: Option<(Change, Opened)>,
) -> Prepared {
    let started = Instant::now();
    metrics::histogram!(m::PROJECT_GROUP_COMMANDS).record(group.len() as f64);
    let mut callers: Vec<Uuid> = group.iter().map(|c| c.caller()).collect();
    callers.sort_unstable();
    callers.dedup();
    match run(deps, id, group, &callers, fast, begun).await {
        Ok((ran, restarted)) => Prepared {
            held: ran.held,
            follow: ran.follow, // `Ran::done` follows nothing
            ending: ran.ending,
            started,
            restarted,
            callers,
        },
        Err((group, err, restarted)) => {
            for command in group {
                command.refuse(copy(&err));
            }
            Prepared {
                held: Vec::new(),
                ending: Ending::Done(Err(err)),
                started,
                restarted,
                follow: None,
                callers,
            }
        }
    }
}

impl Prepared {
    /// Commit, then answer every caller.
    pub(super) async fn finish(self) {
        let committed = match self.ending {
            Ending::Commit(change) => commit_change(*change).await,
            Ending::Done(result) => result,
        };
        if !self.held.is_empty() {
            metrics::histogram!(m::PROJECT_GROUP_COMMIT_SECONDS)
                .record(self.started.elapsed().as_secs_f64());
        }
        for outcome in self.held {
            outcome.answer(&committed);
        }
    }
}

/// A group run up to its commit.
struct Ran {
    held: Vec<Box<dyn Held>>,
    ending: Ending,
    follow: Option<Follow>,
}

impl Ran {
    /// The group ran, and its change is to be committed.
    fn to_commit(held: Vec<Box<dyn Held>>, change: Change, opened: &Opened) -> Self {
        Self {
            held,
            ending: Ending::Commit(Box::new(change)),
            follow: opened.followable(),
        }
    }

    /// The group ran, and `result` ends it without a commit.
    fn done(held: Vec<Box<dyn Held>>, result: Result<(), EngineError>) -> Self {
        Self {
            held,
            ending: Ending::Done(result),
            follow: None,
        }
    }
}

/// The group, unrun, with why it could not run and whether a fast path started over.
type Unrun = (Vec<Box<dyn Pending>>, EngineError, bool);

/// Run the group's commands up to the commit: their outcomes and the change to commit
/// (or why nothing will be), and whether the fast path started over. The group comes
/// back unrun when its change cannot begin or the project cannot be read.
async fn run(
    deps: &Deps,
    id: Uuid,
    mut group: Vec<Box<dyn Pending>>,
    callers: &[Uuid],
    fast: bool,
    begun: Option<(Change, Opened)>,
) -> Result<(Ran, bool), Unrun> {
    let ahead = to_read_ahead(&group);
    let (mut change, mut opened) = match open(deps, id, callers, &ahead, begun).await {
        Ok(opened) => opened,
        Err(err) => return Err((group, err, false)),
    };
    // A group of one needs no savepoint: if its command fails, nothing is committed.
    if group.len() == 1 {
        let command = group.pop().expect("one command");
        let outcome = command.run(&mut change, &mut opened, deps).await;
        if outcome.succeeded() {
            return Ok((Ran::to_commit(vec![outcome], change, &opened), false));
        }
        // The command's own error stands, whatever the rollback says.
        if let Err(err) = change.rollback().await {
            tracing::warn!(error = %err, "rolling back a failed command");
        }
        return Ok((Ran::done(vec![outcome], Ok(())), false));
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
            return Ok((Ran::to_commit(held, change, &opened), false));
        }
        // A replica failed: nothing of the group stands. Start over, carefully.
        restarted = true;
        metrics::counter!(m::PROJECT_GROUP_RESTARTS_TOTAL).increment(1);
        if let Err(err) = change.rollback().await {
            tracing::warn!(error = %err, "rolling back a group to start over");
        }
        (change, opened) = match open(deps, id, callers, &ahead, None).await {
            Ok(opened) => opened,
            Err(err) => return Err((group, err, true)),
        };
    }
    Ok((careful(change, opened, deps, group).await, restarted))
}

/// Begin the group's change, lock and load the project (unless `begun` did), read its
/// callers' roles and the items `ahead`.
async fn open(
    deps: &Deps,
    id: Uuid,
    callers: &[Uuid],
    ahead: &[(Uuid, Uuid)],
    begun: Option<(Change, Opened)>,
) -> Result<(Change, Opened), EngineError> {
    timed(STAGE_OPEN, async {
        // The project is locked and loaded once for the whole group, with its callers'
        // roles (one read for all of them).
        let (mut change, mut opened) = match begun {
            Some(begun) => begun,
            None => begin_locked(deps, id, callers, None).await?,
        };
        // The callers the lock did not read (all of them on SQLite; those who joined
        // a group begun early).
        opened.read_roles(&mut change, callers).await?;
        if !ahead.is_empty() {
            opened.read_ahead(&mut change, ahead).await?;
        }
        Ok((change, opened))
    })
    .await
}

/// Begin the next group's change while the group `after` commits: its lock on the
/// project waits for that commit, so this returns once it has ended. `callers`: whose
/// roles to read with the lock (those expected in the group).
pub(super) async fn begin_behind(
    deps: &Deps,
    id: Uuid,
    callers: &[Uuid],
    after: Follow,
) -> Result<(Change, Opened), EngineError> {
    begin_locked(deps, id, callers, Some(after)).await
}

/// Begin a change and lock the project in it ([`Opened::lock`]).
async fn begin_locked(
    deps: &Deps,
    id: Uuid,
    callers: &[Uuid],
    after: Option<Follow>,
) -> Result<(Change, Opened), EngineError> {
    let mut change = Change::begin(&deps.db).await?;
    let opened = Opened::lock(&mut change, id, callers, after).await?;
    Ok((change, opened))
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
            Touches::Item { id, .. } => change.keeps_row_on(id),
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
    match broken {
        Some(err) => Ran::done(held, Err(err)),
        None => Ran::to_commit(held, change, &opened),
    }
}
