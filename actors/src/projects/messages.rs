use ractor::RpcReplyPort;

use super::{ProjectView, transition::Pending};
use crate::{
    context::{Principal, RequestContext},
    domain::{ProjectName, ProjectRole, ProjectSettings},
    error::EngineError,
    idempotency::Claim,
};

pub(super) type Reply<T> = RpcReplyPort<Result<T, EngineError>>;

/// What a project's actor is asked to do.
///
/// Almost every transition is an [`Apply`](ProjectMsg::Apply): a type implementing
/// [`super::Transition`], which the actor runs the same way for all (group commit,
/// [`super::group`]). Three are their own messages because they do not act on a live
/// project as one of its members: creating it, restoring it, joining it.
pub enum ProjectMsg {
    /// A transition of the live project, with its caller.
    Apply(Box<dyn Pending>),
    /// Create this (new) project with the caller as its admin.
    Create {
        principal: Principal,
        idempotency: Option<Claim>,
        name: ProjectName,
        description: String,
        settings: ProjectSettings,
        ctx: RequestContext,
        reply: Reply<ProjectView>,
    },
    /// Bring a deleted project back (super admins, within the retention window).
    Restore {
        principal: Principal,
        ctx: RequestContext,
        reply: Reply<ProjectView>,
    },
    /// The caller accepts the invitation whose token hashes to `token_hash`.
    AcceptInvitation {
        principal: Principal,
        token_hash: String,
        ctx: RequestContext,
        reply: Reply<(ProjectView, ProjectRole)>,
    },
    /// Timer: stop when idle.
    CheckIdle,
    /// Commit the transitions waiting in the actor's group (sent by the actor to itself
    /// behind the messages already in its mailbox).
    CommitGroup,
}

impl crate::command::Commanded for ProjectMsg {
    const ACTOR: &'static str = "project";
}
