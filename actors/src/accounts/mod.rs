//! The accounts actor owns every account state transition: registration, email
//! verification, sessions, passwords, API tokens, passkeys, Google sign-in. Each is a
//! type implementing [`transition::AccountTransition`], applied by the actor in one
//! transaction with its audit row and any mail job (docs/ARCHITECTURE.md, rules 2 and 3).
//!
//! CPU work (argon2, calls to Google) is done by the caller before the transition is
//! sent, so the actor only ever waits on its own commit.

mod api_tokens;
mod google;
mod messages;
mod passkeys;
mod passwords;
mod service;
mod sessions;
mod transition;
mod views;

use crate::ErrorCode;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use uuid::Uuid;

pub use self::api_tokens::{ApiTokenView, CreatedToken, TOKEN_PREFIX};
pub use self::google::{
    BINDING_COOKIE as GOOGLE_BINDING_COOKIE, GoogleCallbackInput, GoogleCookie, GoogleLoginStart,
    GoogleRedirect,
};
pub use self::messages::{AccountsMsg, AdminCreated};
pub use self::passkeys::{CeremonyStart, MAX_PASSKEYS_PER_USER, PasskeyView, relying_party};
pub use self::service::RegisterInput;
pub use self::sessions::{SessionView, Tokens};
pub(crate) use self::transition::{AccountTransition, InAccounts};
pub use self::views::{UserListQuery, UserView};
use crate::{
    auth::secret_token,
    deps::Deps,
    domain::MailJob,
    domain::{Email, FullName, GlobalRole},
    error::EngineError,
    metrics as m,
    store::{self, verification::Purpose},
};

crate::handle::service!(
    /// The accounts part of the engine: sign-up, sign-in, sessions, passwords, passkeys,
    /// API tokens and users.
    AccountService
);

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
        // A failed transition is an answer to the caller, never a reason to stop the actor.
        if let Some(AccountsMsg::Apply(pending)) = message.open() {
            pending.run(&state.deps).await;
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
pub(super) struct Register {
    pub email: Email,
    pub full_name: Option<FullName>,
    pub password_hash: String,
    /// The pending (unconfirmed) password hash the new password was found to match,
    /// if it did: then the registration changes nothing.
    pub same_as_pending: Option<String>,
}

impl AccountTransition for Register {
    type Out = ();

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<(), EngineError> {
        let Register {
            email,
            full_name,
            password_hash,
            same_as_pending,
        } = self;
        let (deps, now) = (at.deps, at.now);
        match store::users::find_by_email_tx(at.tx(), email.as_str()).await? {
            Some(existing) if !existing.email_verified => {
                // The same password as the pending one (a double submit, a lost mail)
                // changes nothing; another one replaces it and kills the older links.
                let unchanged = same_as_pending.is_some()
                    && existing.password_hash.as_deref() == same_as_pending.as_deref();
                if !unchanged {
                    store::users::replace_pending_registration(
                        at.tx(),
                        existing.id,
                        &password_hash,
                        full_name.as_ref().map(FullName::as_str),
                        now,
                    )
                    .await?;
                    store::verification::spend_all(
                        at.tx(),
                        Purpose::EmailVerification,
                        existing.id,
                        now,
                    )
                    .await?;
                    at.audit(None, "user.registration_replaced", existing.id, json!({}));
                }
                if signup_mail_allowed(at, existing.id).await? {
                    enqueue_verification(at, existing.id, &email).await?;
                    metrics::counter!(m::AUTH_REGISTRATIONS_TOTAL, "outcome" => "pending_email")
                        .increment(1);
                } else {
                    metrics::counter!(m::AUTH_REGISTRATIONS_TOTAL, "outcome" => "mail_throttled")
                        .increment(1);
                }
            }
            Some(existing) => {
                if signup_mail_allowed(at, existing.id).await? {
                    let mail = MailJob {
                        to: email.to_string(),
                        subject: "Someone tried to sign up with your email".into(),
                        text: format!(
                            "Hello,\n\nSomebody (maybe you) tried to create an Alta Data account \
                             with this address, which already has one. If it was you, sign in at \
                             {}.\n\nIf it was not you, you can ignore this message; your account \
                             is unchanged.\n",
                            deps.config.public_url
                        ),
                        template: "account_exists".into(),
                    };
                    at.enqueue_mail(mail)?;
                    at.audit(
                        Some(existing.id),
                        "user.register_existing",
                        existing.id,
                        json!({}),
                    );
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
                    at.tx(),
                    &store::users::NewUser {
                        id: user_id,
                        email: email.as_str(),
                        full_name: full_name.as_ref().map(FullName::as_str),
                        password_hash: &password_hash,
                        role: GlobalRole::User.as_str(),
                        email_verified: false,
                        now,
                    },
                )
                .await?;
                at.audit(
                    Some(user_id),
                    "user.registered",
                    user_id,
                    json!({"role": "user"}),
                );
                enqueue_verification(at, user_id, &email).await?;
                metrics::counter!(m::AUTH_REGISTRATIONS_TOTAL, "outcome" => "created").increment(1);
            }
        }
        Ok(())
    }
}

/// No sign-up mail went to this user within `REGISTER_MAIL_INTERVAL_SECONDS`.
async fn signup_mail_allowed(at: &mut InAccounts<'_>, user_id: Uuid) -> Result<bool, EngineError> {
    let interval = chrono::Duration::from_std(at.deps.config.register_mail_interval)
        .unwrap_or(chrono::Duration::minutes(5));
    if interval <= chrono::Duration::zero() {
        return Ok(true);
    }
    let since = at.now - interval;
    Ok(!store::users::signup_mail_since(at.tx(), user_id, since).await?)
}

/// Spend a verification token; the verified user's id.
pub(super) struct VerifyEmail {
    pub token: String,
}

impl AccountTransition for VerifyEmail {
    type Out = Uuid;

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<Uuid, EngineError> {
        let invalid = || EngineError::Validation {
            code: ErrorCode::VerificationTokenInvalid,
            field: Some("token".into()),
            message: "this verification link is invalid or has already been used".into(),
        };
        let now = at.now;
        let row = store::verification::find_by_hash(
            at.tx(),
            Purpose::EmailVerification,
            &secret_token::hash(&self.token),
        )
        .await?
        .ok_or_else(invalid)?;
        if row.used_at.is_some() {
            return Err(invalid());
        }
        if row.expires_at <= now {
            return Err(EngineError::Validation {
                code: ErrorCode::VerificationTokenExpired,
                field: Some("token".into()),
                message: "this verification link has expired; ask for a new one".into(),
            });
        }
        // Conditional writes: a concurrent use of the same token loses here.
        if !store::verification::mark_used(at.tx(), Purpose::EmailVerification, row.id, now).await?
        {
            return Err(invalid());
        }
        let changed = store::users::mark_email_verified(at.tx(), row.user_id, now).await?;
        if changed {
            // Whatever was made before the address was confirmed was not made by its
            // confirmed owner: it ends here.
            let sessions =
                store::sessions::revoke_all(at.tx(), row.user_id, "email_verified", now).await?;
            let tokens = store::api_tokens::revoke_all(at.tx(), row.user_id, now).await?;
            let passkeys = store::passkeys::delete_all(at.tx(), row.user_id).await?;
            at.audit(
                Some(row.user_id),
                "user.email_verified",
                row.user_id,
                json!({
                    "sessions_ended": sessions,
                    "api_tokens_revoked": tokens.len(),
                    "passkeys_removed": passkeys.len(),
                }),
            );
        }
        Ok(row.user_id)
    }
}

/// Send a fresh verification link, if the account still needs one (sent without
/// waiting, so the caller's answer does not depend on whether the account exists).
pub(super) struct ResendVerification {
    pub user_id: Uuid,
}

impl AccountTransition for ResendVerification {
    type Out = ();

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<(), EngineError> {
        let Some(user) = store::users::find_by_id_tx(at.tx(), self.user_id).await? else {
            return Ok(());
        };
        if user.email_verified {
            return Ok(());
        }
        let email = Email::parse(&user.email)?;
        enqueue_verification(at, user.id, &email).await
    }
}

/// Create a verified super admin, or promote an existing account.
pub(super) struct CreateSuperAdmin {
    pub email: Email,
    pub password_hash: String,
}

impl AccountTransition for CreateSuperAdmin {
    type Out = AdminCreated;

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<AdminCreated, EngineError> {
        let now = at.now;
        let outcome = match store::users::find_by_email_tx(at.tx(), self.email.as_str()).await? {
            Some(existing) => {
                store::users::promote_to_super_admin(
                    at.tx(),
                    existing.id,
                    &self.password_hash,
                    now,
                )
                .await?;
                at.audit(
                    None,
                    "user.promoted_super_admin",
                    existing.id,
                    json!({"from_role": existing.role, "to_role": "super_admin"}),
                );
                AdminCreated {
                    user_id: existing.id,
                    created: false,
                }
            }
            None => {
                let user_id = Uuid::now_v7();
                store::users::insert(
                    at.tx(),
                    &store::users::NewUser {
                        id: user_id,
                        email: self.email.as_str(),
                        full_name: None,
                        password_hash: &self.password_hash,
                        role: GlobalRole::SuperAdmin.as_str(),
                        email_verified: true,
                        now,
                    },
                )
                .await?;
                at.audit(
                    None,
                    "user.created_super_admin",
                    user_id,
                    json!({"role": "super_admin"}),
                );
                AdminCreated {
                    user_id,
                    created: true,
                }
            }
        };
        Ok(outcome)
    }
}

/// A fresh single-use verification token, stored hashed, and the mail carrying it.
async fn enqueue_verification(
    at: &mut InAccounts<'_>,
    user_id: Uuid,
    email: &Email,
) -> Result<(), EngineError> {
    let now = at.now;
    let (token, token_hash) = secret_token::generate();
    let ttl = chrono::Duration::from_std(at.deps.config.email_verification_ttl)
        .unwrap_or(chrono::Duration::hours(24));
    store::verification::insert(
        at.tx(),
        Purpose::EmailVerification,
        user_id,
        &token_hash,
        now + ttl,
        now,
    )
    .await?;
    // A page of the frontend, which posts the token to the API: a mail scanner that
    // fetches every link confirms nothing.
    let link = format!("{}/verify-email?token={token}", at.deps.config.public_url);
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
    at.enqueue_mail(mail)?;
    at.audit(Some(user_id), "user.verification_sent", user_id, json!({}));
    Ok(())
}

/// Turn the changes-requested digest mail on or off for a user.
pub(super) struct SetReviewMail {
    pub user_id: Uuid,
    pub on: bool,
}

impl AccountTransition for SetReviewMail {
    type Out = bool;

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<bool, EngineError> {
        store::reviews::set_review_mail(at.tx(), self.user_id, self.on).await?;
        at.audit(
            Some(self.user_id),
            "user.notifications_changed",
            self.user_id,
            json!({"review_mail": self.on}),
        );
        Ok(self.on)
    }
}
