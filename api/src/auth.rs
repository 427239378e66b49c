//! `/api/auth`: sign-up, email verification, login, the current user.

use alta_actors::{
    Engine,
    accounts::{ApiTokenView, RegisterInput, SessionView, Tokens, UserView},
    context::RequestContext,
};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use crate::{
    enums::{PlatformRole, SessionMethod, TokenScope, TokenType, Wire},
    json_body::JsonBody,
    problem::ApiResult,
    security::BearerAuth,
    tags::ApiTags,
};

pub struct AuthApi;

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct RegisterRequest {
    /// The address to sign in with; a verification link is sent to it.
    #[oai(validator(max_length = 254))]
    pub email: String,
    /// 12 to 128 characters; common or easily guessed passwords are refused.
    #[oai(validator(max_length = 128))]
    pub password: String,
    #[oai(validator(max_length = 200))]
    pub full_name: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct LoginRequest {
    #[oai(validator(max_length = 254))]
    pub email: String,
    #[oai(validator(max_length = 128))]
    pub password: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct EmailRequest {
    #[oai(validator(max_length = 254))]
    pub email: String,
}

/// Tokens of a session: a short-lived bearer access token, and a single-use refresh
/// token to get the next pair from `POST /api/auth/refresh`.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TokenResponse {
    pub access_token: String,
    /// Opaque and single use: each refresh returns a new one. Presenting a used one
    /// again ends the session.
    pub refresh_token: String,
    pub token_type: TokenType,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl From<Tokens> for TokenResponse {
    fn from(t: Tokens) -> Self {
        Self {
            access_token: t.access.token,
            refresh_token: t.refresh_token,
            token_type: TokenType::Bearer,
            expires_in: t.access.expires_in,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The `token` of the reset link.
    pub token: String,
    /// 12 to 128 characters; common or easily guessed passwords are refused.
    #[oai(validator(max_length = 128))]
    pub new_password: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[oai(validator(max_length = 128))]
    pub current_password: String,
    /// 12 to 128 characters; common or easily guessed passwords are refused.
    #[oai(validator(max_length = 128))]
    pub new_password: String,
    /// `true` leaves your personal access tokens working; by default they are revoked
    /// with the change.
    #[oai(default)]
    pub keep_api_tokens: bool,
}

#[derive(ApiResponse)]
pub enum PasswordSet {
    /// The new password is set.
    #[oai(status = 204)]
    NoContent,
}

/// A personal access token to create.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// What it is for, e.g. `nightly export` (1–100 characters).
    #[oai(validator(max_length = 100))]
    pub name: String,
    /// `["read"]` (GET and HEAD only) or `["read", "write"]`.
    #[oai(validator(min_items = 1, max_items = 2))]
    pub scopes: Vec<TokenScope>,
    /// When it stops working; never, if absent.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ApiTokenResponse {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the secret, to tell tokens apart.
    pub prefix: String,
    pub scopes: Vec<Wire<TokenScope>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Noted at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiTokenView> for ApiTokenResponse {
    fn from(t: ApiTokenView) -> Self {
        Self {
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            scopes: t.scopes.into_iter().map(Wire::new).collect(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// A new token, with its secret: shown this once, never again.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CreatedTokenResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    #[oai(flatten)]
    pub details: ApiTokenResponse,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ApiTokenList {
    pub items: Vec<ApiTokenResponse>,
}

#[derive(ApiResponse)]
pub enum TokenCreated {
    #[oai(status = 201)]
    Created(Json<CreatedTokenResponse>),
}

#[derive(ApiResponse)]
pub enum TokensOk {
    #[oai(status = 200)]
    Ok(Json<ApiTokenList>),
}

#[derive(ApiResponse)]
pub enum TokenRevoked {
    /// Revoked; it is refused from now on.
    #[oai(status = 204)]
    NoContent,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct RefreshRequest {
    /// (Not length-checked here: anything that is not a live refresh token is a 401.)
    pub refresh_token: String,
}

/// A signed-in device or browser.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SessionResponse {
    pub id: Uuid,
    /// How it began.
    pub method: Wire<SessionMethod>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// When it ends unless it is used (or at its absolute limit).
    pub expires_at: DateTime<Utc>,
    /// The session of the token that asked.
    pub current: bool,
}

impl From<SessionView> for SessionResponse {
    fn from(s: SessionView) -> Self {
        Self {
            id: s.id,
            method: Wire::new(s.method),
            user_agent: s.user_agent,
            ip: s.ip,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            current: s.current,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SessionList {
    pub items: Vec<SessionResponse>,
}

#[derive(ApiResponse)]
pub enum SessionsOk {
    #[oai(status = 200)]
    Ok(Json<SessionList>),
}

#[derive(ApiResponse)]
pub enum SessionEnded {
    /// Ended; its tokens are refused from now on.
    #[oai(status = 204)]
    NoContent,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MessageResponse {
    pub message: String,
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UserResponse {
    pub id: Uuid,
    pub email: String,
    pub full_name: Option<String>,
    /// Platform role.
    pub role: Wire<PlatformRole>,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<UserView> for UserResponse {
    fn from(u: UserView) -> Self {
        Self {
            id: u.id,
            email: u.email,
            full_name: u.full_name,
            role: Wire::new(u.role.as_str()),
            email_verified: u.email_verified,
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        }
    }
}

#[derive(ApiResponse)]
pub enum RegisterResponse {
    /// Accepted. A verification link is on its way (or, if the address already has an
    /// account, a note to its owner: the answer is the same either way).
    #[oai(status = 201)]
    Created(Json<MessageResponse>),
}

#[derive(ApiResponse)]
pub enum AcceptedResponse {
    /// Accepted; a mail is sent if there is anything to send.
    #[oai(status = 202)]
    Accepted(Json<MessageResponse>),
}

#[derive(ApiResponse)]
pub enum MessageOk {
    #[oai(status = 200)]
    Ok(Json<MessageResponse>),
}

#[derive(ApiResponse)]
pub enum LoginResponse {
    /// Signed in.
    #[oai(status = 200)]
    Ok(Json<TokenResponse>),
}

#[derive(ApiResponse)]
pub enum UserOk {
    #[oai(status = 200)]
    Ok(Json<UserResponse>),
}

fn message(text: &str) -> Json<MessageResponse> {
    Json(MessageResponse {
        message: text.to_owned(),
    })
}

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Sign up
    ///
    /// Creates an account and mails a verification link (valid 24 hours). Registering an
    /// address that already has an account gives the same answer; its owner is told by mail.
    #[oai(
        path = "/api/auth/register",
        method = "post",
        operation_id = "auth_register"
    )]
    async fn register(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        body: JsonBody<RegisterRequest>,
    ) -> ApiResult<RegisterResponse> {
        let JsonBody(body) = body;
        let input = RegisterInput {
            email: body.email,
            password: body.password,
            full_name: body.full_name,
        };
        engine.accounts().register(input, &ctx).await?;
        Ok(RegisterResponse::Created(message(
            "Check your inbox: we sent a link to confirm your email address.",
        )))
    }

    /// Verify an email address
    ///
    /// The page of the verification mail's link (`{PUBLIC_URL}/verify-email?token=…`,
    /// on the frontend) calls this with the link's token. Each link works once, and only
    /// the newest registration's link works. Confirming ends every session, API token
    /// and passkey the account had before.
    #[oai(
        path = "/api/auth/verify-email",
        method = "get",
        operation_id = "auth_verify_email"
    )]
    async fn verify_email(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        #[oai(validator(max_length = 256))] token: Query<String>,
    ) -> ApiResult<MessageOk> {
        engine.accounts().verify_email(&token, &ctx).await?;
        Ok(MessageOk::Ok(message(
            "Your email address is confirmed. You can sign in now.",
        )))
    }

    /// Send the verification link again
    ///
    /// Always answers 202, whether or not the address has an account that needs one.
    #[oai(
        path = "/api/auth/resend-verification",
        method = "post",
        operation_id = "auth_resend_verification"
    )]
    async fn resend_verification(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        body: JsonBody<EmailRequest>,
    ) -> ApiResult<AcceptedResponse> {
        engine
            .accounts()
            .resend_verification(&body.email, &ctx)
            .await?;
        Ok(AcceptedResponse::Accepted(message(
            "If that address has an account waiting for confirmation, a new link is on its way.",
        )))
    }

    /// Sign in with email and password
    ///
    /// A wrong password and an unknown email get the same 401. An account whose email is
    /// not yet confirmed gets 403 `email_not_verified` (only with the right password).
    /// Rate limited per client IP and per account (429 with `Retry-After`).
    #[oai(path = "/api/auth/login", method = "post", operation_id = "auth_login")]
    async fn login(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        body: JsonBody<LoginRequest>,
    ) -> ApiResult<LoginResponse> {
        let tokens = engine
            .accounts()
            .login(&body.email, &body.password, &ctx)
            .await?;
        Ok(LoginResponse::Ok(Json(tokens.into())))
    }

    /// Exchange a refresh token for new tokens
    ///
    /// Rotation: the token given dies and a new one comes back. A token exchanged a
    /// moment ago (a concurrent refresh) is 401 `refresh_token_rotated`; one exchanged
    /// earlier is a replay: 401 `refresh_token_reused` and the session ends. 401
    /// `session_ended` after logout, revocation, `REFRESH_TOKEN_IDLE_DAYS` without use or
    /// `REFRESH_TOKEN_ABSOLUTE_DAYS` after sign-in.
    #[oai(
        path = "/api/auth/refresh",
        method = "post",
        operation_id = "auth_refresh"
    )]
    async fn refresh(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        body: JsonBody<RefreshRequest>,
    ) -> ApiResult<LoginResponse> {
        let tokens = engine.accounts().refresh(&body.refresh_token, &ctx).await?;
        Ok(LoginResponse::Ok(Json(tokens.into())))
    }

    /// Ask for a password reset link
    ///
    /// Always 202: only a verified, active account gets the mail (a link to
    /// `{PUBLIC_URL}/reset-password?token=…`, valid 30 minutes, single use), and the
    /// answer does not say whether the address has an account. Rate limited per client
    /// IP and per address.
    #[oai(
        path = "/api/auth/password/forgot",
        method = "post",
        operation_id = "auth_password_forgot"
    )]
    async fn forgot_password(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        body: JsonBody<EmailRequest>,
    ) -> ApiResult<AcceptedResponse> {
        engine.accounts().forgot_password(&body.email, &ctx).await?;
        Ok(AcceptedResponse::Accepted(message(
            "if the address has an account, a reset link is on its way",
        )))
    }

    /// Set a new password with a reset link
    ///
    /// The link works once and for 30 minutes (400 `reset_token_invalid` otherwise).
    /// Every session of the account ends: sign in again with the new password.
    #[oai(
        path = "/api/auth/password/reset",
        method = "post",
        operation_id = "auth_password_reset"
    )]
    async fn reset_password(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        body: JsonBody<ResetPasswordRequest>,
    ) -> ApiResult<PasswordSet> {
        engine
            .accounts()
            .reset_password(&body.token, &body.new_password, &ctx)
            .await?;
        Ok(PasswordSet::NoContent)
    }

    /// Change your password
    ///
    /// Needs the current password (400 `wrong_password`). Your other sessions end; this
    /// one stays. Your personal access tokens are revoked too, unless the body says
    /// `keep_api_tokens: true`. A notice goes to your address.
    #[oai(
        path = "/api/auth/password/change",
        method = "post",
        operation_id = "auth_password_change"
    )]
    async fn change_password(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        body: JsonBody<ChangePasswordRequest>,
    ) -> ApiResult<PasswordSet> {
        engine
            .accounts()
            .change_password(
                &auth.0,
                &body.current_password,
                &body.new_password,
                body.keep_api_tokens,
                &ctx,
            )
            .await?;
        Ok(PasswordSet::NoContent)
    }

    /// Create a personal access token
    ///
    /// For scripts and data pipelines: send it as a bearer token. The secret is in this
    /// answer only; it is stored hashed. Needs a session begun within the last 10
    /// minutes (403 `reauthentication_required`: sign in again; 403 `session_required`
    /// with an API token); at most 50 live tokens per account. The owner is mailed.
    #[oai(
        path = "/api/auth/tokens",
        method = "post",
        operation_id = "auth_token_create"
    )]
    async fn create_token(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        body: JsonBody<CreateTokenRequest>,
    ) -> ApiResult<TokenCreated> {
        let body = body.0;
        let scopes: Vec<String> = body.scopes.iter().map(|s| s.as_str().to_owned()).collect();
        let created = engine
            .accounts()
            .create_api_token(&auth.0, &body.name, &scopes, body.expires_at, &ctx)
            .await?;
        Ok(TokenCreated::Created(Json(CreatedTokenResponse {
            token: created.secret,
            details: created.token.into(),
        })))
    }

    /// Your personal access tokens
    ///
    /// Those that still work, newest first (never their secrets). Needs a session (403
    /// `session_required` with an API token).
    #[oai(
        path = "/api/auth/tokens",
        method = "get",
        operation_id = "auth_token_list"
    )]
    async fn tokens(&self, engine: Data<&Engine>, auth: BearerAuth) -> ApiResult<TokensOk> {
        let tokens = engine.accounts().api_tokens(&auth.0).await?;
        Ok(TokensOk::Ok(Json(ApiTokenList {
            items: tokens.into_iter().map(Into::into).collect(),
        })))
    }

    /// Revoke a personal access token
    ///
    /// Needs a session (403 `session_required` with an API token).
    #[oai(
        path = "/api/auth/tokens/:id",
        method = "delete",
        operation_id = "auth_token_revoke"
    )]
    async fn revoke_token(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> ApiResult<TokenRevoked> {
        engine
            .accounts()
            .revoke_api_token(&auth.0, id.0, &ctx)
            .await?;
        Ok(TokenRevoked::NoContent)
    }

    /// Sign out
    ///
    /// Ends the session of this access token: it and the session's refresh token are
    /// refused from now on.
    #[oai(
        path = "/api/auth/logout",
        method = "post",
        operation_id = "auth_logout"
    )]
    async fn logout(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
    ) -> ApiResult<SessionEnded> {
        engine.accounts().logout(&auth.0, &ctx).await?;
        Ok(SessionEnded::NoContent)
    }

    /// Sign out everywhere
    ///
    /// Ends every session of the caller, this one included, and revokes their personal
    /// access tokens unless `keep_api_tokens=true`.
    #[oai(
        path = "/api/auth/logout-all",
        method = "post",
        operation_id = "auth_logout_all"
    )]
    async fn logout_all(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        /// `true` leaves your personal access tokens working.
        keep_api_tokens: Query<Option<bool>>,
    ) -> ApiResult<SessionEnded> {
        engine
            .accounts()
            .logout_all(&auth.0, keep_api_tokens.0.unwrap_or(false), &ctx)
            .await?;
        Ok(SessionEnded::NoContent)
    }

    /// Your sessions
    ///
    /// Live sign-ins, newest first: how each began, from which browser, when last used.
    /// Needs a session (403 `session_required` with an API token).
    #[oai(
        path = "/api/auth/sessions",
        method = "get",
        operation_id = "auth_sessions"
    )]
    async fn sessions(&self, engine: Data<&Engine>, auth: BearerAuth) -> ApiResult<SessionsOk> {
        let sessions = engine.accounts().sessions(&auth.0).await?;
        Ok(SessionsOk::Ok(Json(SessionList {
            items: sessions.into_iter().map(Into::into).collect(),
        })))
    }

    /// End one of your sessions
    ///
    /// Another device, say. Someone else's session is 404.
    #[oai(
        path = "/api/auth/sessions/:id",
        method = "delete",
        operation_id = "auth_revoke_session"
    )]
    async fn revoke_session(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> ApiResult<SessionEnded> {
        engine
            .accounts()
            .revoke_session(&auth.0, id.0, &ctx)
            .await?;
        Ok(SessionEnded::NoContent)
    }

    /// The current user
    #[oai(path = "/api/auth/me", method = "get", operation_id = "auth_me")]
    async fn me(&self, engine: Data<&Engine>, auth: BearerAuth) -> ApiResult<UserOk> {
        let user = engine.accounts().me(&auth.0).await?;
        Ok(UserOk::Ok(Json(user.into())))
    }

    /// Your mail settings
    #[oai(
        path = "/api/auth/me/notifications",
        method = "get",
        operation_id = "auth_notifications"
    )]
    async fn notifications(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
    ) -> ApiResult<NotificationsOk> {
        let review_mail = engine.review().review_mail(&auth.0).await?;
        Ok(NotificationsOk::Ok(Json(Notifications { review_mail })))
    }

    /// Change your mail settings
    ///
    /// `review_mail`: the digest of your items that reviewers sent back for changes (at
    /// most one mail an hour). On by default.
    #[oai(
        path = "/api/auth/me/notifications",
        method = "put",
        operation_id = "auth_set_notifications"
    )]
    async fn set_notifications(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        body: JsonBody<Notifications>,
    ) -> ApiResult<NotificationsOk> {
        let review_mail = engine
            .accounts()
            .set_review_mail(&auth.0, body.0.review_mail, &ctx)
            .await?;
        Ok(NotificationsOk::Ok(Json(Notifications { review_mail })))
    }
}

/// Which mails you get.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct Notifications {
    /// The changes-requested digest.
    pub review_mail: bool,
}

#[derive(ApiResponse)]
pub enum NotificationsOk {
    #[oai(status = 200)]
    Ok(Json<Notifications>),
}
