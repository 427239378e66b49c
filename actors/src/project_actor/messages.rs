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
    /// The last group's commit has ended (sent by its task): the group that gathered
    /// meanwhile may go.
    Committed,
    /// The next group's change has begun and taken the project's lock while the group
    /// before committed (sent by the task that opened it): that group may go.
    Opened,
}

impl crate::command::Commanded for ProjectMsg {
    const ACTOR: &'static str = "project";
}
