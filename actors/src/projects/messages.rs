use ractor::RpcReplyPort;
use uuid::Uuid;

use super::{InvitationView, MemberView, ProjectView, group::Grouped};
use crate::{
    context::{Principal, RequestContext},
    domain::{Email, ProjectName, ProjectRole, ProjectSettings},
    error::EngineError,
    idempotency::Claim,
    items::ItemView,
    store::{items::ItemRow, texts::TextRow},
};

pub(super) type Reply<T> = RpcReplyPort<Result<T, EngineError>>;

/// Transitions of one project. Each carries the caller, checked against the permission
/// matrix inside the transition's transaction.
pub enum ProjectMsg {
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
    Update {
        principal: Principal,
        name: ProjectName,
        description: String,
        settings: ProjectSettings,
        ctx: RequestContext,
        reply: Reply<ProjectView>,
    },
    Delete {
        principal: Principal,
        ctx: RequestContext,
        reply: Reply<()>,
    },
    Restore {
        principal: Principal,
        ctx: RequestContext,
        reply: Reply<ProjectView>,
    },
    ChangeRole {
        principal: Principal,
        user_id: Uuid,
        role: ProjectRole,
        ctx: RequestContext,
        reply: Reply<MemberView>,
    },
    RemoveMember {
        principal: Principal,
        user_id: Uuid,
        ctx: RequestContext,
        reply: Reply<()>,
    },
    Invite {
        principal: Principal,
        idempotency: Option<Claim>,
        email: Email,
        role: ProjectRole,
        ctx: RequestContext,
        reply: Reply<InvitationView>,
    },
    ResendInvitation {
        principal: Principal,
        invitation_id: Uuid,
        ctx: RequestContext,
        reply: Reply<InvitationView>,
    },
    RevokeInvitation {
        principal: Principal,
        invitation_id: Uuid,
        ctx: RequestContext,
        reply: Reply<()>,
    },
    /// The caller accepts the invitation whose token hashes to `token_hash`.
    AcceptInvitation {
        principal: Principal,
        token_hash: String,
        ctx: RequestContext,
        reply: Reply<(ProjectView, ProjectRole)>,
    },
    /// An upload or a review decision: committed together with the others waiting
    /// (group commit, [`super::group`]).
    Grouped(Grouped),
    /// Rework: put a new file (its blob is stored) in place of an item's file.
    ReplaceFile {
        principal: Principal,
        idempotency: Option<Claim>,
        item_id: Uuid,
        row: Box<ItemRow>,
        ctx: RequestContext,
        reply: Reply<ItemView>,
    },
    DeleteItem {
        principal: Principal,
        item_id: Uuid,
        ctx: RequestContext,
        reply: Reply<()>,
    },
    /// Write a new revision of an item's text (a person's correction or transcript).
    EditText {
        principal: Principal,
        item_id: Uuid,
        text: String,
        ctx: RequestContext,
        reply: Reply<TextRow>,
    },
    /// Queue processing again for an item that finished (either way).
    Reprocess {
        principal: Principal,
        item_id: Uuid,
        ctx: RequestContext,
        reply: Reply<ItemView>,
    },
    /// Send items to review.
    SubmitForReview {
        principal: Principal,
        item_ids: Vec<Uuid>,
        ctx: RequestContext,
        reply: Reply<Vec<ItemView>>,
    },
    /// Lease the next item of the caller's review queue (or the one they hold).
    ClaimReview {
        principal: Principal,
        reply: Reply<Option<ItemRow>>,
    },
    RenewReview {
        principal: Principal,
        item_id: Uuid,
        reply: Reply<ItemRow>,
    },
    SkipReview {
        principal: Principal,
        item_id: Uuid,
        reply: Reply<()>,
    },
    /// Timer: stop when idle.
    CheckIdle,
    /// Commit the commands waiting in the actor's group (sent by the actor to itself
    /// behind the messages already in its mailbox).
    CommitGroup,
}
