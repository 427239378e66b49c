//! Commands that keep their word.
//!
//! A caller that gives up on an actor must know whether its command ran. Each command
//! therefore travels with a [`Ticket`] holding its deadline and one state, moved once:
//! the actor *begins* it (pending → started) right before running it, or the caller
//! *abandons* it (pending → abandoned) when its deadline passes first. Whoever moves
//! the state first decides: an abandoned command is dropped unrun by the actor (and
//! counted), and a begun one is waited for by its caller, whatever its deadline said.
//! So a 503 for a timed-out command always means "nothing was written", and the
//! caller's clean-up (a blob, an idempotency key) is safe exactly then.

use std::sync::{
    Arc,
    atomic::{AtomicU8, Ordering},
};

use ractor::{ActorRef, RpcReplyPort};
use tokio::time::Instant;

use crate::{error::EngineError, metrics as m};

const PENDING: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

/// The shared fate of one command.
#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    state: Arc<AtomicU8>,
    deadline: Instant,
}

impl Ticket {
    pub(crate) fn new(deadline: Instant) -> Self {
        Self {
            state: Arc::new(AtomicU8::new(PENDING)),
            deadline,
        }
    }

    fn swap(&self, to: u8) -> bool {
        self.state
            .compare_exchange(PENDING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The actor, right before running the command: true when it may run. A command
    /// whose deadline has passed is abandoned here, even if its caller has not yet
    /// noticed (the caller's own `abandon` then fails, and it reads the state).
    fn begin(&self) -> bool {
        if Instant::now() >= self.deadline {
            self.swap(ABANDONED);
            return false;
        }
        self.swap(STARTED)
    }

    /// The caller, giving up: true when the command will never run.
    fn abandon(&self) -> bool {
        self.swap(ABANDONED) || self.state.load(Ordering::Acquire) == ABANDONED
    }

    fn started(&self) -> bool {
        self.state.load(Ordering::Acquire) == STARTED
    }
}

/// The message type of an actor that takes commands through [`ask`]; `ACTOR` labels
/// its metrics.
pub trait Commanded: Send + 'static {
    const ACTOR: &'static str;
}

/// Counts a caller's command in `engine_commands_waiting` from its sending until its
/// actor takes it from the mailbox, or the mailbox goes away with it.
struct Waiting(&'static str);

impl Waiting {
    fn new(actor: &'static str) -> Self {
        metrics::gauge!(m::ENGINE_COMMANDS_WAITING, "actor" => actor).increment(1.0);
        Self(actor)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        metrics::gauge!(m::ENGINE_COMMANDS_WAITING, "actor" => self.0).decrement(1.0);
    }
}

/// A message to an actor that takes commands, with the ticket of its caller (none for
/// the actor's own timers and fire-and-forget casts).
pub struct Command<M> {
    ticket: Option<Ticket>,
    msg: M,
    /// Callers' commands are counted while they wait in the mailbox.
    _waiting: Option<Waiting>,
}

impl<M: Commanded> Command<M> {
    /// A message nobody waits for with a deadline (timers, casts): always runs.
    pub(crate) fn internal(msg: M) -> Self {
        Self {
            ticket: None,
            msg,
            _waiting: None,
        }
    }

    /// The actor's first step: the message to run, or `None` when its caller has
    /// stopped waiting (counted in `engine_commands_dropped_total`).
    pub(crate) fn open(self) -> Option<M> {
        // Taken from the mailbox: no longer waiting, whatever comes next.
        let Command {
            ticket,
            msg,
            _waiting,
        } = self;
        drop(_waiting);
        match &ticket {
            Some(ticket) if !ticket.begin() => {
                metrics::counter!(m::ENGINE_COMMANDS_DROPPED_TOTAL, "actor" => M::ACTOR)
                    .increment(1);
                tracing::debug!(
                    actor = M::ACTOR,
                    "dropped a command whose caller stopped waiting"
                );
                None
            }
            _ => Some(msg),
        }
    }
}

/// Why an asked command has no answer.
#[derive(Debug)]
pub(crate) enum AskError {
    /// The command did not run and never will: nothing was written.
    NotRun(String),
    /// The command began, and its actor stopped before answering: it may or may not
    /// have committed. Clean nothing up.
    Unknown(String),
}

impl From<AskError> for EngineError {
    fn from(err: AskError) -> Self {
        match err {
            AskError::NotRun(msg) | AskError::Unknown(msg) => Self::Unavailable(msg),
        }
    }
}

/// The answer to a transition whose caller cleans up after a failure, and whether it
/// may have written: true for a success, and for a command that began but whose
/// outcome is unknown. A transition that answers with an error wrote nothing (its
/// transaction did not commit), and neither did a command that never ran.
pub(crate) fn settle<T>(
    asked: Result<Result<T, EngineError>, AskError>,
) -> (Result<T, EngineError>, bool) {
    match asked {
        Ok(Ok(value)) => (Ok(value), true),
        Ok(Err(err)) => (Err(err), false),
        Err(err @ AskError::NotRun(_)) => (Err(err.into()), false),
        Err(err @ AskError::Unknown(_)) => (Err(err.into()), true),
    }
}

/// Abandons the command when the caller goes away (a dropped request future)
/// before it has an answer: a command nobody waits for does not start.
struct AbandonOnDrop<'a>(&'a Ticket);

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

/// Send a command and wait for its answer: until `deadline` for it to begin, then
/// for as long as it runs.
pub(crate) async fn ask<M, T>(
    actor: &ActorRef<Command<M>>,
    deadline: Instant,
    build: impl FnOnce(RpcReplyPort<T>) -> M,
) -> Result<T, AskError>
where
    M: Commanded,
    T: Send + 'static,
{
    let actor_name = M::ACTOR;
    let ticket = Ticket::new(deadline);
    let (tx, mut rx) = ractor::concurrency::oneshot();
    let command = Command {
        ticket: Some(ticket.clone()),
        msg: build(tx.into()),
        _waiting: Some(Waiting::new(actor_name)),
    };
    if let Err(err) = actor.send_message(command) {
        return Err(AskError::NotRun(format!(
            "the {actor_name} actor did not take the command: {err}"
        )));
    }
    let _guard = AbandonOnDrop(&ticket);
    let answer = match tokio::time::timeout_at(deadline, &mut rx).await {
        Ok(answer) => answer,
        Err(_elapsed) => {
            if ticket.abandon() {
                metrics::counter!(m::ENGINE_CALL_TIMEOUTS_TOTAL, "actor" => actor_name)
                    .increment(1);
                return Err(AskError::NotRun(format!(
                    "the {actor_name} actor is busy; try again"
                )));
            }
            // Begun before the deadline: its outcome is what counts.
            rx.await
        }
    };
    answer.map_err(|_| {
        if ticket.started() {
            AskError::Unknown(format!(
                "the {actor_name} actor stopped while running the command"
            ))
        } else {
            AskError::NotRun(format!("the {actor_name} actor dropped the command"))
        }
    })
}

/// Ask an actor that changes nothing a caller must know about (a lookup, a rate limit
/// check), waiting until `deadline` at most.
pub(crate) async fn query<M, T>(
    actor: &ActorRef<M>,
    deadline: Instant,
    build: impl FnOnce(RpcReplyPort<T>) -> M,
) -> Result<T, EngineError>
where
    M: ractor::Message,
    T: Send + 'static,
{
    let wait = deadline.saturating_duration_since(Instant::now());
    match actor.call(build, Some(wait)).await {
        Ok(ractor::rpc::CallResult::Success(value)) => Ok(value),
        Ok(ractor::rpc::CallResult::Timeout) => Err(EngineError::Unavailable(
            "the engine is busy; try again".into(),
        )),
        Ok(ractor::rpc::CallResult::SenderError) => Err(EngineError::Unavailable(
            "the engine dropped the request".into(),
        )),
        Err(err) => Err(EngineError::Unavailable(format!(
            "engine actor unavailable: {err}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn begin_and_abandon_exclude_each_other() {
        let t = Ticket::new(Instant::now() + Duration::from_secs(60));
        assert!(t.begin());
        assert!(!t.abandon());
        assert!(t.started());

        let t = Ticket::new(Instant::now() + Duration::from_secs(60));
        assert!(t.abandon());
        assert!(!t.begin());
        assert!(t.abandon(), "abandoning twice still says it never runs");
    }

    #[test]
    fn a_command_past_its_deadline_does_not_begin() {
        let t = Ticket::new(Instant::now());
        assert!(!t.begin());
        assert!(t.abandon());
        assert!(!t.started());
    }
}
