//! The accounts part of the engine handle: validate, rate-limit, do the CPU work, then
//! one call to the accounts actor for the transition, or a plain read of the store.

use super::AccountService;
use crate::ErrorCode;
use uuid::Uuid;

use super::{
    AccountsMsg, AdminCreated, ApiTokenView, CreatedToken, SessionView, TOKEN_PREFIX, Tokens,
    UserListQuery, UserView, api_tokens, passwords, sessions,
    transition::{AccountTransition, Envelope},
};
use crate::{
    auth::throttle,
    authz::{self, Action},
    context::{Principal, RequestContext, TokenScope},
    domain::{Email, FullName, GlobalRole, NewPassword, PASSWORD_MAX_CHARS},
    error::EngineError,
    metrics as m,
    pagination::{Page, PageRequest},
    store,
};

/// Account management (tokens, passwords) needs a real sign-in, not an API token.
pub(super) fn require_session(principal: &Principal) -> Result<(), EngineError> {
    if principal.session_id.is_none() {
        metrics::counter!(m::AUTH_EVENTS_TOTAL, "method" => "api_token", "outcome" => "session_required")
            .increment(1);
        return Err(EngineError::Refused {
            code: ErrorCode::SessionRequired,
            message: "sign in to do this; an API token cannot".into(),
        });
    }
    Ok(())
}

fn wrong_current_password() -> EngineError {
    EngineError::validation(
        ErrorCode::WrongPassword,
        "current_password",
        "the current password is not correct",
    )
}

/// Count an authentication event by its outcome (`success`, or the refusal's code).
fn count_event<T>(method: &'static str, outcome: &Result<T, EngineError>) {
    let label = match outcome {
        Ok(_) => "success",
        Err(e) => e.code().as_str(),
    };
    metrics::counter!(m::AUTH_EVENTS_TOTAL, "method" => method, "outcome" => label).increment(1);
}

/// A sign-up request as received.
#[derive(Debug, Clone)]
pub struct RegisterInput {
    pub email: String,
    pub password: String,
    pub full_name: Option<String>,
}

impl AccountService {
    /// Run `transition` in the accounts actor; its outcome once committed.
    pub(crate) async fn apply_in_accounts<T: AccountTransition>(
        &self,
        transition: T,
        ctx: &RequestContext,
    ) -> Result<T::Out, EngineError> {
        let ctx = ctx.clone();
        self.ask(&self.accounts()?, |reply| {
            AccountsMsg::Apply(Box::new(Envelope {
                transition,
                ctx,
                reply: Some(reply),
            }))
        })
        .await?
    }

    /// Send `transition` to the accounts actor without waiting (a failure is logged):
    /// for mail whose sending must not show in the caller's answer.
    fn tell_accounts<T: AccountTransition>(
        &self,
        transition: T,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        let envelope = Envelope {
            transition,
            ctx: ctx.clone(),
            reply: None,
        };
        self.accounts()?
            .cast(crate::command::Command::internal(AccountsMsg::Apply(
                Box::new(envelope),
            )))?;
        Ok(())
    }

    /// Sign up. Answers the same whether or not the email is taken (the owner gets a mail).
    pub async fn register(
        &self,
        input: RegisterInput,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        self.limit_ip("register", ctx).await?;
        let email = Email::parse(&input.email)?;
        let full_name = input
            .full_name
            .as_deref()
            .map(FullName::parse)
            .transpose()?;
        let password = NewPassword::parse(&input.password, &[email.local_part()])?;
        // Is it the pending password of an unconfirmed account (a double submit)? The
        // check costs the same whether or not there is one, so timing tells nothing.
        let pending = store::users::find_by_email(&self.deps.db, email.as_str())
            .await?
            .filter(|u| !u.email_verified)
            .and_then(|u| u.password_hash);
        let same_as_pending = self
            .deps
            .hasher
            .verify(password.expose(), pending.as_deref())
            .await?
            .then_some(pending)
            .flatten();
        let password_hash = self.deps.hasher.hash(password.expose()).await?;
        let register = super::Register {
            email,
            full_name,
            password_hash,
            same_as_pending,
        };
        self.apply_in_accounts(register, ctx).await
    }

    pub async fn verify_email(&self, token: &str, ctx: &RequestContext) -> Result<(), EngineError> {
        self.limit_ip("verify_email", ctx).await?;
        if token.is_empty() || token.len() > 128 {
            return Err(EngineError::validation(
                ErrorCode::VerificationTokenInvalid,
                "token",
                "this verification link is invalid or has already been used",
            ));
        }
        let token = token.to_owned();
        self.apply_in_accounts(super::VerifyEmail { token }, ctx)
            .await
            .map(|_| ())
    }

    /// Always succeeds for a well-formed email: whether a mail goes out is nobody's business.
    pub async fn resend_verification(
        &self,
        email: &str,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        self.limit_ip("resend_verification", ctx).await?;
        let email = Email::parse(email)?;
        self.limit_account("resend_verification", &email).await?;
        if let Some(user) = store::users::find_by_email(&self.deps.db, email.as_str()).await?
            && !user.email_verified
        {
            self.tell_accounts(super::ResendVerification { user_id: user.id }, ctx)?;
        }
        Ok(())
    }

    /// Password login. Unknown email and wrong password are indistinguishable (same
    /// error, same argon2 work); "email not verified" is said only after the password
    /// checked out.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        ctx: &RequestContext,
    ) -> Result<Tokens, EngineError> {
        let outcome = self.login_inner(email, password, ctx).await;
        let label = match &outcome {
            Ok(_) => "success",
            Err(EngineError::RateLimited { .. }) => "rate_limited",
            Err(e) if e.code() == "email_not_verified" => "email_not_verified",
            Err(e) if e.code() == "invalid_credentials" => "invalid_credentials",
            Err(_) => "error",
        };
        metrics::counter!(m::AUTH_LOGIN_TOTAL, "outcome" => label).increment(1);
        metrics::counter!(m::AUTH_EVENTS_TOTAL, "method" => "password", "outcome" => label)
            .increment(1);
        outcome
    }

    async fn login_inner(
        &self,
        email: &str,
        password: &str,
        ctx: &RequestContext,
    ) -> Result<Tokens, EngineError> {
        self.limit_ip("login", ctx).await?;
        let email = Email::parse(email)?;
        if password.is_empty() || password.chars().count() > PASSWORD_MAX_CHARS {
            return Err(EngineError::validation(
                ErrorCode::InvalidPassword,
                "password",
                format!("password must be 1 to {PASSWORD_MAX_CHARS} characters"),
            ));
        }
        self.limit_account("login", &email).await?;
        // Recent failures for this address (known or not) delay the next check.
        if let Some(row) = store::login_throttle::find(&self.deps.db, email.as_str()).await?
            && let Some(wait) = throttle::wait(&row, self.deps.clock.now())
        {
            return Err(EngineError::RateLimited {
                retry_after: wait
                    .to_std()
                    .unwrap_or_default()
                    .max(std::time::Duration::from_secs(1)),
            });
        }
        let user = store::users::find_by_email(&self.deps.db, email.as_str()).await?;
        let stored = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let matched = self.deps.hasher.verify(password, stored).await?;
        let user = match user {
            Some(user) if matched && user.disabled_at.is_none() => user,
            user => {
                let user_id = user.map(|u| u.id);
                self.apply_in_accounts(sessions::RecordLoginFailure { email, user_id }, ctx)
                    .await?;
                return Err(EngineError::unauthenticated(
                    ErrorCode::InvalidCredentials,
                    "the email or password is not correct",
                ));
            }
        };
        if !user.email_verified {
            return Err(EngineError::Refused {
                code: ErrorCode::EmailNotVerified,
                message: "confirm your email address first; we can send the link again".into(),
            });
        }
        let start = sessions::StartSession {
            user_id: user.id,
            method: "password",
        };
        self.apply_in_accounts(start, ctx).await
    }

    /// Exchange a refresh token for new tokens (rotation with reuse detection). Not
    /// rate limited: the token is 256 random bits, and a wrong one changes nothing.
    pub async fn refresh(&self, token: &str, ctx: &RequestContext) -> Result<Tokens, EngineError> {
        if token.is_empty() || token.len() > 128 {
            return Err(EngineError::unauthenticated(
                ErrorCode::InvalidRefreshToken,
                "the refresh token is invalid",
            ));
        }
        let token = token.to_owned();
        self.apply_in_accounts(sessions::Refresh { token }, ctx)
            .await
    }

    /// End the caller's current session; how many ended.
    pub async fn logout(
        &self,
        principal: &Principal,
        ctx: &RequestContext,
    ) -> Result<u64, EngineError> {
        require_session(principal)?;
        self.end_sessions(principal, principal.session_id, "logout", false, ctx)
            .await
    }

    /// End every session of the caller, and revoke their API tokens unless
    /// `keep_api_tokens`; how many sessions ended.
    pub async fn logout_all(
        &self,
        principal: &Principal,
        keep_api_tokens: bool,
        ctx: &RequestContext,
    ) -> Result<u64, EngineError> {
        require_session(principal)?;
        self.end_sessions(principal, None, "logout_all", !keep_api_tokens, ctx)
            .await
    }

    /// End one of the caller's sessions (another device, say).
    pub async fn revoke_session(
        &self,
        principal: &Principal,
        session_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        require_session(principal)?;
        self.end_sessions(principal, Some(session_id), "revoked", false, ctx)
            .await
            .map(|_| ())
    }

    async fn end_sessions(
        &self,
        principal: &Principal,
        session_id: Option<Uuid>,
        reason: &'static str,
        revoke_api_tokens: bool,
        ctx: &RequestContext,
    ) -> Result<u64, EngineError> {
        let end = sessions::EndSessions {
            user_id: principal.user_id,
            session_id,
            reason,
            revoke_api_tokens,
        };
        self.apply_in_accounts(end, ctx).await
    }

    /// Ask for a password reset link. Always succeeds for a well-formed email: only a
    /// verified, active account gets the mail, and nobody learns which.
    pub async fn forgot_password(
        &self,
        email: &str,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        let outcome = self.forgot_password_inner(email, ctx).await;
        count_event("password_forgot", &outcome);
        outcome
    }

    async fn forgot_password_inner(
        &self,
        email: &str,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        self.limit_ip("password_forgot", ctx).await?;
        let email = Email::parse(email)?;
        self.limit_account("password_forgot", &email).await?;
        if let Some(user) = store::users::find_by_email(&self.deps.db, email.as_str()).await?
            && user.email_verified
            && user.disabled_at.is_none()
        {
            self.tell_accounts(passwords::RequestPasswordReset { user_id: user.id }, ctx)?;
        }
        Ok(())
    }

    /// Set a new password with a reset link's token; every session of the account ends.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        let outcome = self.reset_password_inner(token, new_password, ctx).await;
        count_event("password_reset", &outcome);
        outcome
    }

    async fn reset_password_inner(
        &self,
        token: &str,
        new_password: &str,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        self.limit_ip("password_reset", ctx).await?;
        if token.is_empty() || token.len() > 128 {
            return Err(super::passwords::invalid_reset_token());
        }
        // A read first, for the password's hints (the account's email); the actor checks
        // the token again when it spends it.
        let row = store::verification::peek(
            &self.deps.db,
            store::verification::Purpose::PasswordReset,
            &crate::auth::secret_token::hash(token),
        )
        .await?
        .ok_or_else(super::passwords::invalid_reset_token)?;
        let user = store::users::find_by_id(&self.deps.db, row.user_id)
            .await?
            .ok_or_else(super::passwords::invalid_reset_token)?;
        let email = Email::parse(&user.email)?;
        let password = NewPassword::parse(new_password, &[email.local_part()])?;
        let password_hash = self.deps.hasher.hash(password.expose()).await?;
        let reset = passwords::ResetPassword {
            token: token.to_owned(),
            password_hash,
        };
        self.apply_in_accounts(reset, ctx).await
    }

    /// Change one's password, proving the current one. Other sessions end, and the API
    /// tokens are revoked unless `keep_api_tokens`.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current_password: &str,
        new_password: &str,
        keep_api_tokens: bool,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        let outcome = self
            .change_password_inner(
                principal,
                current_password,
                new_password,
                keep_api_tokens,
                ctx,
            )
            .await;
        count_event("password_change", &outcome);
        outcome
    }

    async fn change_password_inner(
        &self,
        principal: &Principal,
        current_password: &str,
        new_password: &str,
        keep_api_tokens: bool,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        require_session(principal)?;
        let email = Email::parse(&principal.email)?;
        self.limit_account("password_change", &email).await?;
        if current_password.chars().count() > PASSWORD_MAX_CHARS {
            return Err(wrong_current_password());
        }
        let user = store::users::find_by_id(&self.deps.db, principal.user_id)
            .await?
            .ok_or(EngineError::NotFound { what: "user" })?;
        if !self
            .deps
            .hasher
            .verify(current_password, user.password_hash.as_deref())
            .await?
        {
            return Err(wrong_current_password());
        }
        let password = NewPassword::parse(new_password, &[email.local_part()])?;
        let password_hash = self.deps.hasher.hash(password.expose()).await?;
        let change = passwords::ChangePassword {
            user_id: principal.user_id,
            keep_session: principal.session_id,
            keep_api_tokens,
            password_hash,
        };
        self.apply_in_accounts(change, ctx).await
    }

    /// A personal access token's caller, with its scope; its use is noted.
    async fn authenticate_api_token(
        &self,
        bearer: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Principal, EngineError> {
        let invalid =
            || EngineError::unauthenticated(ErrorCode::InvalidToken, "the access token is invalid");
        if bearer.len() > 128 {
            return Err(invalid());
        }
        let hash = crate::auth::secret_token::hash(bearer);
        let (token, email, role) = store::api_tokens::active_caller(&self.deps.db, &hash, now)
            .await?
            .ok_or_else(invalid)?;
        store::api_tokens::touch(&self.deps.db, token.id, now).await?;
        metrics::counter!(m::AUTH_EVENTS_TOTAL, "method" => "api_token", "outcome" => "success")
            .increment(1);
        Ok(Principal {
            user_id: token.user_id,
            role: role.parse().unwrap_or(GlobalRole::User),
            email,
            session_id: None,
            token_scope: Some(api_tokens::scope_of(&token.scopes)),
        })
    }

    /// Create a personal access token. Only from a session begun in the last ten
    /// minutes (a token cannot make more tokens, and a stolen access token cannot mint a
    /// lasting one); the owner is mailed.
    pub async fn create_api_token(
        &self,
        principal: &Principal,
        name: &str,
        scopes: &[String],
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        ctx: &RequestContext,
    ) -> Result<CreatedToken, EngineError> {
        let outcome = self
            .create_api_token_inner(principal, name, scopes, expires_at, ctx)
            .await;
        count_event("api_token_create", &outcome);
        outcome
    }

    async fn create_api_token_inner(
        &self,
        principal: &Principal,
        name: &str,
        scopes: &[String],
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        ctx: &RequestContext,
    ) -> Result<CreatedToken, EngineError> {
        self.require_recent_sign_in(principal).await?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(EngineError::validation(
                ErrorCode::InvalidName,
                "name",
                "name must be 1 to 100 characters without control characters",
            ));
        }
        let scope = match scopes {
            [] => None,
            list if list.iter().all(|s| s == "read") => Some(TokenScope::Read),
            // `write` comes with `read`: a token that may change things may see them.
            list if list.iter().any(|s| s == "read")
                && list.iter().all(|s| s == "read" || s == "write") =>
            {
                Some(TokenScope::Write)
            }
            _ => None,
        }
        .ok_or_else(|| {
            EngineError::validation(
                ErrorCode::InvalidScopes,
                "scopes",
                "scopes is [\"read\"] or [\"read\", \"write\"]",
            )
        })?;
        if expires_at.is_some_and(|t| t <= self.deps.clock.now()) {
            return Err(EngineError::validation(
                ErrorCode::InvalidExpiry,
                "expires_at",
                "expires_at must be in the future",
            ));
        }
        let create = api_tokens::CreateApiToken {
            user_id: principal.user_id,
            name: name.to_owned(),
            scope,
            expires_at,
        };
        self.apply_in_accounts(create, ctx).await
    }

    /// The caller's tokens that still work (from a session: an API token cannot see
    /// the account's other tokens).
    pub async fn api_tokens(
        &self,
        principal: &Principal,
    ) -> Result<Vec<ApiTokenView>, EngineError> {
        require_session(principal)?;
        let rows =
            store::api_tokens::live_of(&self.deps.db, principal.user_id, self.deps.clock.now())
                .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Revoke one of the caller's tokens (someone else's is 404).
    pub async fn revoke_api_token(
        &self,
        principal: &Principal,
        token_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        require_session(principal)?;
        let revoke = api_tokens::RevokeApiToken {
            user_id: principal.user_id,
            token_id,
        };
        self.apply_in_accounts(revoke, ctx).await
    }

    /// The caller's live sessions, newest first.
    pub async fn sessions(&self, principal: &Principal) -> Result<Vec<SessionView>, EngineError> {
        require_session(principal)?;
        let rows =
            store::sessions::live_of(&self.deps.db, principal.user_id, self.deps.clock.now())
                .await?;
        Ok(rows
            .into_iter()
            .map(|r| SessionView::from_row(r, principal.session_id))
            .collect())
    }

    /// Turn a bearer token into a principal, checking the user's and the session's
    /// current state (one query): a deleted or disabled user, or an ended session, is
    /// refused at once, not when the token expires.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, EngineError> {
        let now = self.deps.clock.now();
        if bearer.starts_with(TOKEN_PREFIX) {
            return self.authenticate_api_token(bearer, now).await;
        }
        let claims = self.deps.jwt.verify(bearer, now)?;
        let (user_id, email, role) =
            store::sessions::active_caller(&self.deps.db, claims.sid, claims.sub, now)
                .await?
                .ok_or_else(|| {
                    EngineError::unauthenticated(
                        ErrorCode::InvalidToken,
                        "the access token is invalid",
                    )
                })?;
        Ok(Principal {
            user_id,
            role: role.parse().unwrap_or(GlobalRole::User),
            email,
            session_id: Some(claims.sid),
            token_scope: None,
        })
    }

    pub async fn me(&self, principal: &Principal) -> Result<UserView, EngineError> {
        authz::authorize(principal, Action::ReadOwnProfile)?;
        self.user(principal.user_id).await
    }

    async fn user(&self, id: Uuid) -> Result<UserView, EngineError> {
        store::users::find_by_id(&self.deps.db, id)
            .await?
            .map(UserView::from)
            .ok_or(EngineError::NotFound { what: "user" })
    }

    pub async fn list_users(
        &self,
        principal: &Principal,
        query: UserListQuery,
    ) -> Result<Page<UserView>, EngineError> {
        authz::authorize(principal, Action::ListUsers)?;
        let page = PageRequest::parse(query.limit, query.cursor.as_deref())?;
        let role = query
            .role
            .as_deref()
            .map(str::parse::<GlobalRole>)
            .transpose()?;
        let email = query
            .email
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty());
        if email.as_ref().is_some_and(|e| e.len() > 254) {
            return Err(EngineError::validation(
                ErrorCode::InvalidEmail,
                "email",
                "email filter is too long",
            ));
        }
        let rows = store::users::list(
            &self.deps.db,
            &store::users::UserFilter {
                email_contains: email,
                role: role.map(|r| r.as_str().to_owned()),
                after: page.after,
                limit: page.fetch_limit(),
            },
        )
        .await?;
        Ok(page.page(rows, |r| r.id, UserView::from))
    }

    /// Create a verified super admin, or promote an existing account (the CLI's bootstrap).
    pub async fn create_super_admin(
        &self,
        email: &str,
        password: &str,
        ctx: &RequestContext,
    ) -> Result<AdminCreated, EngineError> {
        let email = Email::parse(email)?;
        let password = NewPassword::parse(password, &[email.local_part()])?;
        let password_hash = self.deps.hasher.hash(password.expose()).await?;
        let create = super::CreateSuperAdmin {
            email,
            password_hash,
        };
        self.apply_in_accounts(create, ctx).await
    }

    /// Turn the changes-requested digest on or off for the caller.
    pub async fn set_review_mail(
        &self,
        principal: &Principal,
        on: bool,
        ctx: &RequestContext,
    ) -> Result<bool, EngineError> {
        let set = super::SetReviewMail {
            user_id: principal.user_id,
            on,
        };
        self.apply_in_accounts(set, ctx).await
    }
}
