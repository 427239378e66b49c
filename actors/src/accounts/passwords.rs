//! Password reset and change, run by the accounts actor. A reset link is single use,
//! lives `RESET_TTL_MINUTES`, and using it ends every session; a change ends every
//! session but the one that made it. Each writes an audit row.

use crate::ErrorCode;
use serde_json::json;
use uuid::Uuid;

use super::transition::{AccountTransition, InAccounts};
use crate::{
    auth::secret_token,
    domain::MailJob,
    error::EngineError,
    store::{self, verification::Purpose},
};

/// How long a reset link works.
pub const RESET_TTL_MINUTES: i64 = 30;

/// Mail a reset link to a verified, active account (the caller has checked it exists;
/// the HTTP answer is the same either way, and nobody waits for this). A newer link
/// replaces older ones.
pub(super) struct RequestPasswordReset {
    pub user_id: Uuid,
}

impl AccountTransition for RequestPasswordReset {
    type Out = ();

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<(), EngineError> {
        let now = at.now;
        let Some(user) = store::users::find_by_id_tx(at.tx(), self.user_id)
            .await?
            .filter(|u| u.email_verified && u.disabled_at.is_none())
        else {
            return Ok(());
        };
        store::verification::spend_all(at.tx(), Purpose::PasswordReset, user.id, now).await?;
        let (token, token_hash) = secret_token::generate();
        let expires = now + chrono::Duration::minutes(RESET_TTL_MINUTES);
        store::verification::insert(
            at.tx(),
            Purpose::PasswordReset,
            user.id,
            &token_hash,
            expires,
            now,
        )
        .await?;
        let mail = MailJob {
            to: user.email.clone(),
            subject: "Reset your Alta Data password".into(),
            text: format!(
                "Hello,\n\nSomebody (maybe you) asked to reset the password of your Alta Data \
                 account. To choose a new one, open this link within {RESET_TTL_MINUTES} \
                 minutes:\n\n{}/reset-password?token={token}\n\nIt works once. Setting a new \
                 password signs you out everywhere.\n\nIf it was not you, ignore this mail: your \
                 password is unchanged.\n",
                at.deps.config.public_url
            ),
            template: "password_reset".into(),
        };
        at.enqueue_mail(mail)?;
        at.audit(None, "user.password_reset_requested", user.id, json!({}));
        Ok(())
    }
}

pub(super) fn invalid_reset_token() -> EngineError {
    EngineError::validation(
        ErrorCode::ResetTokenInvalid,
        "token",
        "this reset link is invalid, expired or already used; ask for a new one",
    )
}

/// Spend a reset token and set the new password (hashed by the caller); every session
/// of the account ends.
pub(super) struct ResetPassword {
    pub token: String,
    pub password_hash: String,
}

impl AccountTransition for ResetPassword {
    type Out = ();

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<(), EngineError> {
        let now = at.now;
        let row = store::verification::find_by_hash(
            at.tx(),
            Purpose::PasswordReset,
            &secret_token::hash(&self.token),
        )
        .await?
        .filter(|r| r.used_at.is_none() && r.expires_at > now)
        .ok_or_else(invalid_reset_token)?;
        // Conditional: of two uses of one link, one wins.
        if !store::verification::mark_used(at.tx(), Purpose::PasswordReset, row.id, now).await? {
            return Err(invalid_reset_token());
        }
        let user = store::users::find_by_id_tx(at.tx(), row.user_id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or_else(invalid_reset_token)?;
        store::users::set_password(at.tx(), row.user_id, &self.password_hash, now).await?;
        let ended =
            store::sessions::revoke_all(at.tx(), row.user_id, "password_reset", now).await?;
        // A reset is how an owner takes an account back: nothing made with the old access
        // (a token, a passkey planted from a hijacked session) outlives it.
        let tokens = store::api_tokens::revoke_all(at.tx(), row.user_id, now).await?;
        let passkeys = store::passkeys::delete_all(at.tx(), row.user_id).await?;
        let mail = MailJob {
            to: user.email.clone(),
            subject: "Your Alta Data password was reset".into(),
            text: format!(
                "Hello,\n\nThe password of your Alta Data account was just reset with a link \
                 sent to this address. Every session was signed out.\n\n{}{}\
                 If this was not you, reset your password again at {}/forgot-password and tell \
                 your project administrator.\n",
                removed_list("API tokens revoked", &tokens),
                removed_list(
                    "Passkeys removed (add them again once signed in)",
                    &passkeys
                ),
                at.deps.config.public_url
            ),
            template: "password_reset_done".into(),
        };
        at.enqueue_mail(mail)?;
        at.audit(
            Some(row.user_id),
            "user.password_reset",
            row.user_id,
            json!({
                "sessions_ended": ended,
                "api_tokens_revoked": tokens.len(),
                "passkeys_removed": passkeys.len(),
            }),
        );
        Ok(())
    }
}

/// A paragraph naming what was removed, or nothing when nothing was.
fn removed_list(title: &str, names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let lines: Vec<String> = names.iter().map(|n| format!("  - {n}")).collect();
    format!("{title}:\n{}\n\n", lines.join("\n"))
}

/// Set a new password (the caller checked the current one); every other session ends,
/// the account's owner gets a notice by mail.
pub(super) struct ChangePassword {
    pub user_id: Uuid,
    pub keep_session: Option<Uuid>,
    /// Leave the account's API tokens working (they are revoked otherwise).
    pub keep_api_tokens: bool,
    pub password_hash: String,
}

impl AccountTransition for ChangePassword {
    type Out = ();

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<(), EngineError> {
        let (user_id, now) = (self.user_id, at.now);
        let user = store::users::find_by_id_tx(at.tx(), user_id)
            .await?
            .ok_or(EngineError::NotFound { what: "user" })?;
        store::users::set_password(at.tx(), user_id, &self.password_hash, now).await?;
        let ended = store::sessions::revoke_all_but(
            at.tx(),
            user_id,
            self.keep_session,
            "password_changed",
            now,
        )
        .await?;
        // A reset link asked for earlier must not undo this change.
        store::verification::spend_all(at.tx(), Purpose::PasswordReset, user_id, now).await?;
        let tokens = if self.keep_api_tokens {
            Vec::new()
        } else {
            store::api_tokens::revoke_all(at.tx(), user_id, now).await?
        };
        let mail = MailJob {
            to: user.email.clone(),
            subject: "Your Alta Data password was changed".into(),
            text: format!(
                "Hello,\n\nThe password of your Alta Data account was just changed, and your \
                 other sessions were signed out.\n\n{}If this was not you, reset your password \
                 now at {}/forgot-password and tell your project administrator.\n",
                removed_list("API tokens revoked", &tokens),
                at.deps.config.public_url
            ),
            template: "password_changed".into(),
        };
        at.enqueue_mail(mail)?;
        at.audit(
            Some(user_id),
            "user.password_changed",
            user_id,
            json!({"sessions_ended": ended, "api_tokens_revoked": tokens.len()}),
        );
        Ok(())
    }
}
