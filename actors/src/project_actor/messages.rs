use ractor::RpcReplyPort;

use super::transition::Pending;
use crate::error::EngineError;

pub(super) type Reply<T> = RpcReplyPort<Result<T, EngineError>>;

/// What a project's actor is asked to do.
///
/// Every transition is an [`Apply`](ProjectMsg::Apply): a type implementing
/// [`super::Transition`], which the actor runs the same way for all (group commit,
/// [`super::group`]). The other messages are the actor's own timers.
pub enum ProjectMsg {
    /// A transition of the project, with its caller.
    Apply(Box<dyn Pending>),
    /// Timer: stop when idle.
    CheckIdle,
    /// Commit the transitions waiting in the actor's group (sent by the actor to itself
    /// behind the messages already in its mailbox).
    CommitGroup,
    /// The commit of the group the actor numbered so has ended (sent by its task, also
    /// when it fails): the group that gathered meanwhile may go.
    Committed(u64),
    /// The change begun behind a commit, numbered so, has taken the project's lock or
    /// failed to (sent by its task): the group that gathered meanwhile may go.
    Opened(u64),
}

impl crate::command::Commanded for ProjectMsg {
    const ACTOR: &'static str = "project";
}
