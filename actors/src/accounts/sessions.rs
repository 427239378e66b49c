//! Sessions, run by the accounts actor: a sign-in opens one (a refresh-token family),
//! each refresh rotates its token, and a rotated token presented again revokes the whole
//! session (RFC 9700 §4.14.2 reuse detection). Every transition writes an audit row.

use crate::ErrorCode;
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::transition::{AccountTransition, InAccounts};
use crate::{
    auth::{jwt::IssuedToken, secret_token},
    domain::Email,
    error::EngineError,
    metrics as m,
    store::{self, sessions::SessionRow},
};

/// A refresh arriving this soon after its token was rotated is taken for a concurrent
/// duplicate (two tabs, a retried request): refused, without ending the session. Later
/// it is a replay, and the session ends.
const CONCURRENT_REFRESH_GRACE_SECS: i64 = 10;

/// What a sign-in or a refresh hands out.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: IssuedToken,
    /// Opaque, single use: exchange it at `POST /api/auth/refresh`.
    pub refresh_token: String,
    pub session_id: Uuid,
}

fn duration(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(30))
}

/// Open a session for a user who just proved who they are (`method`: password, passkey,
/// google), record the login, and hand out the first tokens.
pub(super) struct StartSession {
    pub user_id: Uuid,
    pub method: &'static str,
}

impl AccountTransition for StartSession {
    type Out = Tokens;

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<Tokens, EngineError> {
        start_in(at, self.user_id, self.method).await
    }
}

/// [`StartSession`] inside another transition (a sign-in that changes more, such as a
/// passkey's counter, commits both at once).
pub(super) async fn start_in(
    at: &mut InAccounts<'_>,
    user_id: Uuid,
    method: &'static str,
) -> Result<Tokens, EngineError> {
    let (deps, ctx, now) = (at.deps, at.ctx, at.now);
    let absolute = now + duration(deps.config.jwt.refresh_absolute);
    let session = SessionRow {
        id: Uuid::now_v7(),
        user_id,
        method: method.into(),
        user_agent: ctx
            .user_agent
            .as_deref()
            .map(|ua| ua.chars().take(300).collect()),
        ip: ctx.client_ip.map(|ip| ip.to_string()),
        created_at: now,
        last_used_at: now,
        idle_expires_at: (now + duration(deps.config.jwt.refresh_idle)).min(absolute),
        absolute_expires_at: absolute,
        revoked_at: None,
        revoked_reason: None,
    };
    let (refresh_token, refresh_hash) = secret_token::generate();
    store::sessions::insert(at.tx(), &session).await?;
    store::sessions::add_refresh(at.tx(), &refresh_hash, session.id, now).await?;
    store::users::record_login_tx(at.tx(), user_id, now).await?;
    if let Some(user) = store::users::find_by_id_tx(at.tx(), user_id).await? {
        store::login_throttle::clear_failures(at.tx(), &user.email).await?;
    }
    at.audit(
        Some(user_id),
        "user.login",
        user_id,
        json!({"method": method, "session_id": session.id}),
    );
    Ok(Tokens {
        access: deps.jwt.issue(user_id, session.id, now)?,
        refresh_token,
        session_id: session.id,
    })
}

/// A failed password login: count it for the address (the throttle), and audit it when
/// the address is an account's.
pub(super) struct RecordLoginFailure {
    pub email: Email,
    pub user_id: Option<Uuid>,
}

impl AccountTransition for RecordLoginFailure {
    type Out = ();

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<(), EngineError> {
        let now = at.now;
        store::login_throttle::record_failure(
            at.tx(),
            self.email.as_str(),
            now,
            now - chrono::Duration::hours(1),
        )
        .await?;
        if let Some(user_id) = self.user_id {
            at.audit(
                None,
                "user.login_failed",
                user_id,
                json!({"method": "password"}),
            );
        }
        Ok(())
    }
}

fn refused(code: ErrorCode, message: &str) -> EngineError {
    EngineError::unauthenticated(code, message)
}

/// Exchange a refresh token for new tokens; the old one dies.
pub(super) struct Refresh {
    pub token: String,
}

impl AccountTransition for Refresh {
    type Out = Tokens;

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<Tokens, EngineError> {
        let outcome = refresh(at, &self.token).await;
        let label = match &outcome {
            Ok(_) => "success",
            Err(e) => e.code().as_str(),
        };
        metrics::counter!(m::AUTH_EVENTS_TOTAL, "method" => "refresh", "outcome" => label)
            .increment(1);
        outcome
    }
}

async fn refresh(at: &mut InAccounts<'_>, token: &str) -> Result<Tokens, EngineError> {
    let invalid = || {
        refused(
            ErrorCode::InvalidRefreshToken,
            "the refresh token is invalid",
        )
    };
    let (deps, now) = (at.deps, at.now);
    let hash = secret_token::hash(token);
    let row = store::sessions::find_refresh(at.tx(), &hash)
        .await?
        .ok_or_else(invalid)?;
    let session = store::sessions::find_tx(at.tx(), row.session_id)
        .await?
        .ok_or_else(invalid)?;
    if !session.live(now) {
        return Err(refused(
            ErrorCode::SessionEnded,
            "this session has ended; sign in again",
        ));
    }
    if let Some(rotated_at) = row.rotated_at {
        if now - rotated_at < chrono::Duration::seconds(CONCURRENT_REFRESH_GRACE_SECS) {
            return Err(refused(
                ErrorCode::RefreshTokenRotated,
                "this refresh token was just exchanged; use the new one",
            ));
        }
        // A token exchanged long ago is back: it was copied. End the whole family.
        store::sessions::revoke(at.tx(), session.id, "reuse_detected", now).await?;
        at.audit(
            None,
            "session.reuse_detected",
            session.user_id,
            json!({"session_id": session.id}),
        );
        at.keep_so_far().await?;
        tracing::warn!(session_id = %session.id, user_id = %session.user_id, "refresh token reuse: session revoked");
        return Err(refused(
            ErrorCode::RefreshTokenReused,
            "this refresh token was already used; the session has been ended for safety",
        ));
    }
    if !store::sessions::rotate(at.tx(), &hash, now).await? {
        return Err(refused(
            ErrorCode::RefreshTokenRotated,
            "this refresh token was just exchanged; use the new one",
        ));
    }
    let user = store::users::find_by_id_tx(at.tx(), session.user_id)
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or_else(invalid)?;
    let (next, next_hash) = secret_token::generate();
    store::sessions::add_refresh(at.tx(), &next_hash, session.id, now).await?;
    let idle_until =
        (now + duration(deps.config.jwt.refresh_idle)).min(session.absolute_expires_at);
    store::sessions::touch(at.tx(), session.id, now, idle_until).await?;
    at.audit(
        Some(user.id),
        "session.refreshed",
        user.id,
        json!({"session_id": session.id}),
    );
    Ok(Tokens {
        access: deps.jwt.issue(user.id, session.id, now)?,
        refresh_token: next,
        session_id: session.id,
    })
}

/// End the user's session `session_id`, or all their sessions when `None`. A session
/// of someone else is 404. How many ended.
pub(super) struct EndSessions {
    pub user_id: Uuid,
    pub session_id: Option<Uuid>,
    pub reason: &'static str,
    /// Also revoke every API token of the user.
    pub revoke_api_tokens: bool,
}

impl AccountTransition for EndSessions {
    type Out = u64;

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<u64, EngineError> {
        let EndSessions {
            user_id,
            session_id,
            reason,
            revoke_api_tokens,
        } = self;
        let now = at.now;
        let ended = match session_id {
            Some(id) => {
                let session = store::sessions::find_tx(at.tx(), id)
                    .await?
                    .filter(|s| s.user_id == user_id)
                    .ok_or(EngineError::NotFound { what: "session" })?;
                u64::from(store::sessions::revoke(at.tx(), session.id, reason, now).await?)
            }
            None => store::sessions::revoke_all(at.tx(), user_id, reason, now).await?,
        };
        let tokens = if revoke_api_tokens {
            store::api_tokens::revoke_all(at.tx(), user_id, now).await?
        } else {
            Vec::new()
        };
        at.audit(
            Some(user_id),
            "session.revoked",
            user_id,
            json!({"session_id": session_id, "reason": reason, "ended": ended,
                   "api_tokens_revoked": tokens.len()}),
        );
        Ok(ended)
    }
}

/// A live session as its owner sees it.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub id: Uuid,
    pub method: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The session of the access token that asked.
    pub current: bool,
}

impl SessionView {
    pub(super) fn from_row(r: SessionRow, current: Option<Uuid>) -> Self {
        Self {
            current: current == Some(r.id),
            id: r.id,
            method: r.method,
            user_agent: r.user_agent,
            ip: r.ip,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.idle_expires_at.min(r.absolute_expires_at),
        }
    }
}
