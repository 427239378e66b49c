use ractor::RpcReplyPort;
use uuid::Uuid;

use crate::{
    context::RequestContext,
    domain::{Email, FullName},
    error::EngineError,
};

pub enum AccountsMsg {
    /// Create an account (or mail the owner of the existing one).
    Register {
        email: Email,
        full_name: Option<FullName>,
        password_hash: String,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<(), EngineError>>,
    },
    /// Spend a verification token; replies with the verified user's id.
    VerifyEmail {
        token: String,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<Uuid, EngineError>>,
    },
    /// Send a fresh verification link, if the account still needs one. Fire and forget,
    /// so the caller's answer does not depend on whether the account exists.
    ResendVerification { user_id: Uuid, ctx: RequestContext },
    /// Create a verified super admin, or promote an existing account.
    CreateSuperAdmin {
        email: Email,
        password_hash: String,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<AdminCreated, EngineError>>,
    },
    /// Note a successful login (last login time, audit row).
    RecordLogin { user_id: Uuid, ctx: RequestContext },
}

#[derive(Debug, Clone, Copy)]
pub struct AdminCreated {
    pub user_id: Uuid,
    /// False when an existing account was promoted.
    pub created: bool,
}
