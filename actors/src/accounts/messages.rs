use ractor::RpcReplyPort;
use uuid::Uuid;

use super::{
    api_tokens::CreatedToken,
    passkeys::{CeremonyState, PasskeyView},
    sessions::Tokens,
};
use crate::{
    context::{RequestContext, TokenScope},
    domain::{Email, FullName},
    error::EngineError,
};

pub enum AccountsMsg {
    /// Create an account (or mail the owner of the existing one).
    Register {
        email: Email,
        full_name: Option<FullName>,
        password_hash: String,
        /// The pending (unconfirmed) password hash the new password was found to match,
        /// if it did: then the registration changes nothing.
        same_as_pending: Option<String>,
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
    /// Open a session for a user who just proved who they are: record the login and
    /// hand out the first tokens.
    StartSession {
        user_id: Uuid,
        method: &'static str,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<Tokens, EngineError>>,
    },
    /// Count a failed password login for the address (and audit it when it is an
    /// account's).
    RecordLoginFailure {
        email: Email,
        user_id: Option<Uuid>,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<(), EngineError>>,
    },
    /// Rotate a refresh token.
    Refresh {
        token: String,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<Tokens, EngineError>>,
    },
    /// Mail a password reset link (fire and forget: the caller answers the same whether
    /// or not the account exists).
    RequestPasswordReset { user_id: Uuid, ctx: RequestContext },
    /// Spend a reset link and set the new password (already hashed).
    ResetPassword {
        token: String,
        password_hash: String,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<(), EngineError>>,
    },
    /// Set a new password (the current one was checked); other sessions end.
    ChangePassword {
        user_id: Uuid,
        keep_session: Option<Uuid>,
        /// Leave the account's API tokens working (they are revoked otherwise).
        keep_api_tokens: bool,
        password_hash: String,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<(), EngineError>>,
    },
    CreateApiToken {
        user_id: Uuid,
        name: String,
        scope: TokenScope,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<CreatedToken, EngineError>>,
    },
    RevokeApiToken {
        user_id: Uuid,
        token_id: Uuid,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<(), EngineError>>,
    },
    /// Check a registration answer and keep the new passkey.
    AddPasskey {
        user_id: Uuid,
        name: String,
        state: Box<webauthn_rs::prelude::PasskeyRegistration>,
        credential: Box<webauthn_rs::prelude::RegisterPublicKeyCredential>,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<PasskeyView, EngineError>>,
    },
    /// Check a login answer against the stored passkey and open a session.
    PasskeyLogin {
        state: Box<CeremonyState>,
        credential: Box<webauthn_rs::prelude::PublicKeyCredential>,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<Tokens, EngineError>>,
    },
    RenamePasskey {
        user_id: Uuid,
        passkey_id: Uuid,
        name: String,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<PasskeyView, EngineError>>,
    },
    DeletePasskey {
        user_id: Uuid,
        passkey_id: Uuid,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<(), EngineError>>,
    },
    /// A step of a Google sign-in.
    Google(super::google::GoogleMsg),
    /// End one of the user's sessions, or all of them (`None`).
    EndSessions {
        user_id: Uuid,
        session_id: Option<Uuid>,
        reason: &'static str,
        /// Also revoke every API token of the user.
        revoke_api_tokens: bool,
        ctx: RequestContext,
        reply: RpcReplyPort<Result<u64, EngineError>>,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct AdminCreated {
    pub user_id: Uuid,
    /// False when an existing account was promoted.
    pub created: bool,
}

impl crate::command::Commanded for AccountsMsg {
    const ACTOR: &'static str = "accounts";
}
