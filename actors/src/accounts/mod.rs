//! The accounts actor owns every account state transition: registration, email
//! verification, creating the first administrator. Each happens in one transaction
//! with its audit row and any mail job (docs/ARCHITECTURE.md, rules 2 and 3).
//!
//! CPU work (argon2) is done by the caller before the message is sent, so the actor
//! only ever waits on its own commit.

mod api_tokens;
mod google;
mod messages;
mod passkeys;
mod passwords;
mod service;
mod sessions;
mod views;

use crate::ErrorCode;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use uuid::Uuid;

pub use self::api_tokens::{ApiTokenView, CreatedToken, TOKEN_PREFIX};
pub use self::google::{
    BINDING_COOKIE as GOOGLE_BINDING_COOKIE, GoogleCallbackInput, GoogleCookie, GoogleLoginStart,
    GoogleMsg, GoogleRedirect,
};
pub use self::messages::{AccountsMsg, AdminCreated};
pub use self::passkeys::{CeremonyStart, MAX_PASSKEYS_PER_USER, PasskeyView, relying_party};
pub use self::service::RegisterInput;
pub use self::sessions::{SessionView, Tokens};
pub use self::views::{UserListQuery, UserView};
use crate::{
    auth::secret_token,
    context::RequestContext,
    deps::Deps,
    domain::{Email, FullName, GlobalRole},
    error::EngineError,
    jobs::{MailJob, enqueue_mail},
    metrics as m,
    store::{self, Tx, audit::AuditEntry, verification::Purpose},
};

pub struct Accounts;

pub struct AccountsState {
    deps: Arc<Deps>,
}

impl Actor for Accounts {
    type Msg = crate::command::Command<AccountsMsg>;
    type State = AccountsState;
    type Arguments = Arc<Deps>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        deps: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(AccountsState { deps })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(message) = message.open() else {
            return Ok(());
        };
        // A failed transition is an answer to the caller, never a reason to stop the actor.
        match message {
            AccountsMsg::Register {
                email,
                full_name,
                password_hash,
                same_as_pending,
                ctx,
                reply,
            } => {
                let result = register(
                    &state.deps,
                    &email,
                    full_name.as_ref(),
                    &password_hash,
                    same_as_pending.as_deref(),
                    &ctx,
                )
                .await;
                let _ = reply.send(result);
            }
            AccountsMsg::VerifyEmail { token, ctx, reply } => {
                let _ = reply.send(verify_email(&state.deps, &token, &ctx).await);
            }
            AccountsMsg::ResendVerification { user_id, ctx } => {
                if let Err(err) = resend_verification(&state.deps, user_id, &ctx).await {
                    tracing::warn!(error = %err, %user_id, "could not resend the verification mail");
                }
            }
            AccountsMsg::CreateSuperAdmin {
                email,
                password_hash,
                ctx,
                reply,
            } => {
                let _ =
                    reply.send(create_super_admin(&state.deps, &email, &password_hash, &ctx).await);
            }
            AccountsMsg::StartSession {
                user_id,
                method,
                ctx,
                reply,
            } => {
                let _ = reply.send(sessions::start(&state.deps, user_id, method, &ctx).await);
            }
            AccountsMsg::RecordLoginFailure {
                email,
                user_id,
                ctx,
                reply,
            } => {
                let result = sessions::record_failure(&state.deps, &email, user_id, &ctx).await;
                let _ = reply.send(result);
            }
            AccountsMsg::Refresh { token, ctx, reply } => {
                let _ = reply.send(sessions::refresh(&state.deps, &token, &ctx).await);
            }
            AccountsMsg::RequestPasswordReset { user_id, ctx } => {
                if let Err(err) = passwords::request_reset(&state.deps, user_id, &ctx).await {
                    tracing::warn!(error = %err, %user_id, "could not send a password reset link");
                }
            }
            AccountsMsg::ResetPassword {
                token,
                password_hash,
                ctx,
                reply,
            } => {
                let _ =
                    reply.send(passwords::reset(&state.deps, &token, &password_hash, &ctx).await);
            }
            AccountsMsg::ChangePassword {
                user_id,
                keep_session,
                keep_api_tokens,
                password_hash,
                ctx,
                reply,
            } => {
                let result = passwords::change(
                    &state.deps,
                    user_id,
                    keep_session,
                    keep_api_tokens,
                    &password_hash,
                    &ctx,
                )
                .await;
                let _ = reply.send(result);
            }
            AccountsMsg::CreateApiToken {
                user_id,
                name,
                scope,
                expires_at,
                ctx,
                reply,
            } => {
                let result =
                    api_tokens::create(&state.deps, user_id, &name, scope, expires_at, &ctx).await;
                let _ = reply.send(result);
            }
            AccountsMsg::RevokeApiToken {
                user_id,
                token_id,
                ctx,
                reply,
            } => {
                let _ = reply.send(api_tokens::revoke(&state.deps, user_id, token_id, &ctx).await);
            }
            AccountsMsg::AddPasskey {
                user_id,
                name,
                state: ceremony,
                credential,
                ctx,
                reply,
            } => {
                let result =
                    passkeys::add(&state.deps, user_id, name, &ceremony, &credential, &ctx).await;
                let _ = reply.send(result);
            }
            AccountsMsg::PasskeyLogin {
                state: ceremony,
                credential,
                ctx,
                reply,
            } => {
                let _ =
                    reply.send(passkeys::login(&state.deps, *ceremony, &credential, &ctx).await);
            }
            AccountsMsg::RenamePasskey {
                user_id,
                passkey_id,
                name,
                ctx,
                reply,
            } => {
                let result = passkeys::rename(&state.deps, user_id, passkey_id, &name, &ctx).await;
                let _ = reply.send(result);
            }
            AccountsMsg::DeletePasskey {
                user_id,
                passkey_id,
                ctx,
                reply,
            } => {
                let _ = reply.send(passkeys::delete(&state.deps, user_id, passkey_id, &ctx).await);
            }
            AccountsMsg::Google(msg) => google::handle(&state.deps, msg).await,
            AccountsMsg::EndSessions {
                user_id,
                session_id,
                reason,
                revoke_api_tokens,
                ctx,
                reply,
            } => {
                let result = sessions::end(
                    &state.deps,
                    user_id,
                    session_id,
                    reason,
                    revoke_api_tokens,
                    &ctx,
                )
                .await;
                let _ = reply.send(result);
            }
        }
        Ok(())
    }
}

/// Create the account, or, when the email is taken, mail its owner instead. The caller
/// sees the same answer either way (no account enumeration).
///
/// An address nobody has confirmed yet belongs to whoever confirms it: a newer
/// registration with another password replaces the pending password (and name) and
/// kills the older links, so a link only ever confirms the password set with it. At
/// most one sign-up mail goes to an address per `REGISTER_MAIL_INTERVAL_SECONDS`.
async fn register(
    deps: &Deps,
    email: &Email,
    full_name: Option<&FullName>,
    password_hash: &str,
    same_as_pending: Option<&str>,
    ctx: &RequestContext,
) -> Result<(), EngineError> {
    let now = deps.clock.now();
    let mut tx = deps.db.begin().await?;
    match store::users::find_by_email_tx(&mut tx, email.as_str()).await? {
        Some(existing) if !existing.email_verified => {
            // The same password as the pending one (a double submit, a lost mail)
            // changes nothing; another one replaces it and kills the older links.
            let unchanged =
                same_as_pending.is_some() && existing.password_hash.as_deref() == same_as_pending;
            if !unchanged {
                store::users::replace_pending_registration(
                    &mut tx,
                    existing.id,
                    password_hash,
                    full_name.map(FullName::as_str),
                    now,
                )
                .await?;
                store::verification::spend_all(
                    &mut tx,
                    Purpose::EmailVerification,
                    existing.id,
                    now,
                )
                .await?;
                audit(
                    &mut tx,
                    deps,
                    ctx,
                    None,
                    "user.registration_replaced",
                    existing.id,
                    json!({}),
                )
                .await?;
            }
            if signup_mail_allowed(deps, &mut tx, existing.id).await? {
                enqueue_verification(deps, &mut tx, existing.id, email, ctx).await?;
                metrics::counter!(m::AUTH_REGISTRATIONS_TOTAL, "outcome" => "pending_email")
                    .increment(1);
            } else {
                metrics::counter!(m::AUTH_REGISTRATIONS_TOTAL, "outcome" => "mail_throttled")
                    .increment(1);
            }
        }
        Some(existing) => {
            if signup_mail_allowed(deps, &mut tx, existing.id).await? {
                let mail = MailJob {
                    to: email.to_string(),
                    subject: "Someone tried to sign up with your email".into(),
                    text: format!(
                        "Hello,\n\nSomebody (maybe you) tried to create an Alta Data account with \
                         this address, which already has one. If it was you, sign in at {}.\n\n\
                         If it was not you, you can ignore this message; your account is \
                         unchanged.\n",
                        deps.config.public_url
                    ),
                    template: "account_exists".into(),
                };
                enqueue_mail(deps, &mut tx, mail).await?;
                audit(
                    &mut tx,
                    deps,
                    ctx,
                    Some(existing.id),
                    "user.register_existing",
                    existing.id,
                    json!({}),
                )
                .await?;
                metrics::counter!(m::AUTH_REGISTRATIONS_TOTAL, "outcome" => "existing_email")
                    .increment(1);
            } else {
                metrics::counter!(m::AUTH_REGISTRATIONS_TOTAL, "outcome" => "mail_throttled")
                    .increment(1);
            }
        }
        None => {
            let user_id = Uuid::now_v7();
            store::users::insert(
                &mut tx,
                &store::users::NewUser {
                    id: user_id,
                    email: email.as_str(),
                    full_name: full_name.map(FullName::as_str),
                    password_hash,
                    role: GlobalRole::User.as_str(),
                    email_verified: false,
                    now,
                },
            )
            .await?;
            audit(
                &mut tx,
                deps,
                ctx,
                Some(user_id),
                "user.registered",
                user_id,
                json!({"role": "user"}),
            )
            .await?;
            enqueue_verification(deps, &mut tx, user_id, email, ctx).await?;
            metrics::counter!(m::AUTH_REGISTRATIONS_TOTAL, "outcome" => "created").increment(1);
        }
    }
    tx.commit().await?;
    deps.job_waker.notify_waiters();
    Ok(())
}

/// No sign-up mail went to this user within `REGISTER_MAIL_INTERVAL_SECONDS`.
async fn signup_mail_allowed(deps: &Deps, tx: &mut Tx, user_id: Uuid) -> Result<bool, EngineError> {
    let interval = chrono::Duration::from_std(deps.config.register_mail_interval)
        .unwrap_or(chrono::Duration::minutes(5));
    if interval <= chrono::Duration::zero() {
        return Ok(true);
    }
    let since = deps.clock.now() - interval;
    Ok(!store::users::signup_mail_since(tx, user_id, since).await?)
}

async fn verify_email(deps: &Deps, token: &str, ctx: &RequestContext) -> Result<Uuid, EngineError> {
    let invalid = || EngineError::Validation {
        code: ErrorCode::VerificationTokenInvalid,
        field: Some("token"),
        message: "this verification link is invalid or has already been used".into(),
    };
    let now = deps.clock.now();
    let mut tx = deps.db.begin().await?;
    let row = store::verification::find_by_hash(
        &mut tx,
        Purpose::EmailVerification,
        &secret_token::hash(token),
    )
    .await?
    .ok_or_else(invalid)?;
    if row.used_at.is_some() {
        return Err(invalid());
    }
    if row.expires_at <= now {
        return Err(EngineError::Validation {
            code: ErrorCode::VerificationTokenExpired,
            field: Some("token"),
            message: "this verification link has expired; ask for a new one".into(),
        });
    }
    // Conditional writes: a concurrent use of the same token loses here.
    if !store::verification::mark_used(&mut tx, Purpose::EmailVerification, row.id, now).await? {
        return Err(invalid());
    }
    let changed = store::users::mark_email_verified(&mut tx, row.user_id, now).await?;
    if changed {
        // Whatever was made before the address was confirmed was not made by its
        // confirmed owner: it ends here.
        let sessions =
            store::sessions::revoke_all(&mut tx, row.user_id, "email_verified", now).await?;
        let tokens = store::api_tokens::revoke_all(&mut tx, row.user_id, now).await?;
        let passkeys = store::passkeys::delete_all(&mut tx, row.user_id).await?;
        audit(
            &mut tx,
            deps,
            ctx,
            Some(row.user_id),
            "user.email_verified",
            row.user_id,
            json!({
                "sessions_ended": sessions,
                "api_tokens_revoked": tokens.len(),
                "passkeys_removed": passkeys.len(),
            }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(row.user_id)
}

async fn resend_verification(
    deps: &Deps,
    user_id: Uuid,
    ctx: &RequestContext,
) -> Result<(), EngineError> {
    let Some(user) = store::users::find_by_id(&deps.db, user_id).await? else {
        return Ok(());
    };
    if user.email_verified {
        return Ok(());
    }
    let email = Email::parse(&user.email)?;
    let mut tx = deps.db.begin().await?;
    enqueue_verification(deps, &mut tx, user.id, &email, ctx).await?;
    tx.commit().await?;
    deps.job_waker.notify_waiters();
    Ok(())
}

async fn create_super_admin(
    deps: &Deps,
    email: &Email,
    password_hash: &str,
    ctx: &RequestContext,
) -> Result<AdminCreated, EngineError> {
    let now = deps.clock.now();
    let mut tx = deps.db.begin().await?;
    let outcome = match store::users::find_by_email_tx(&mut tx, email.as_str()).await? {
        Some(existing) => {
            store::users::promote_to_super_admin(&mut tx, existing.id, password_hash, now).await?;
            audit(
                &mut tx,
                deps,
                ctx,
                None,
                "user.promoted_super_admin",
                existing.id,
                json!({"from_role": existing.role, "to_role": "super_admin"}),
            )
            .await?;
            AdminCreated {
                user_id: existing.id,
                created: false,
            }
        }
        None => {
            let user_id = Uuid::now_v7();
            store::users::insert(
                &mut tx,
                &store::users::NewUser {
                    id: user_id,
                    email: email.as_str(),
                    full_name: None,
                    password_hash,
                    role: GlobalRole::SuperAdmin.as_str(),
                    email_verified: true,
                    now,
                },
            )
            .await?;
            audit(
                &mut tx,
                deps,
                ctx,
                None,
                "user.created_super_admin",
                user_id,
                json!({"role": "super_admin"}),
            )
            .await?;
            AdminCreated {
                user_id,
                created: true,
            }
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// A fresh single-use verification token, stored hashed, and the mail carrying it.
async fn enqueue_verification(
    deps: &Deps,
    tx: &mut Tx,
    user_id: Uuid,
    email: &Email,
    ctx: &RequestContext,
) -> Result<(), EngineError> {
    let now = deps.clock.now();
    let (token, token_hash) = secret_token::generate();
    let ttl = chrono::Duration::from_std(deps.config.email_verification_ttl)
        .unwrap_or(chrono::Duration::hours(24));
    store::verification::insert(
        tx,
        Purpose::EmailVerification,
        user_id,
        &token_hash,
        now + ttl,
        now,
    )
    .await?;
    // A page of the frontend, which posts the token to the API: a mail scanner that
    // fetches every link confirms nothing.
    let link = format!("{}/verify-email?token={token}", deps.config.public_url);
    let hours = ttl.num_hours();
    let mail = MailJob {
        to: email.to_string(),
        subject: "Verify your email for Alta Data".into(),
        text: format!(
            "Welcome to Alta Data!\n\nConfirm your email address by opening this link:\n\n{link}\n\n\
             The link works once and expires in {hours} hours. If you did not sign up, ignore this message.\n"
        ),
        template: "verify_email".into(),
    };
    enqueue_mail(deps, tx, mail).await?;
    audit(
        tx,
        deps,
        ctx,
        Some(user_id),
        "user.verification_sent",
        user_id,
        json!({}),
    )
    .await?;
    Ok(())
}

async fn audit(
    tx: &mut Tx,
    deps: &Deps,
    ctx: &RequestContext,
    actor_id: Option<Uuid>,
    action: &str,
    user_id: Uuid,
    details: serde_json::Value,
) -> Result<(), EngineError> {
    let entry = AuditEntry {
        actor_id,
        action,
        target_type: "user",
        target_id: Some(user_id.to_string()),
        project_id: None,
        details,
    };
    store::audit::record(tx, entry, ctx, deps.clock.now()).await?;
    Ok(())
}
