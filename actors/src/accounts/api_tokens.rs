//! Personal access tokens, created and revoked by the accounts actor (with audit rows).
//! A token is `alta_pat_` and 256 random bits; only its SHA-256 is stored, and the
//! secret is shown once, at creation.

use crate::ErrorCode;
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::transition::{AccountTransition, InAccounts};
use crate::{
    auth::secret_token,
    context::TokenScope,
    domain::MailJob,
    error::EngineError,
    store::{self, api_tokens::ApiTokenRow},
};

/// What every personal access token starts with (tells it apart from a JWT).
pub const TOKEN_PREFIX: &str = "alta_pat_";
/// Most live tokens one account may hold.
pub const MAX_TOKENS_PER_USER: i64 = 50;

/// A token as its owner sees it (never the secret, but its first characters).
#[derive(Debug, Clone)]
pub struct ApiTokenView {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiTokenRow> for ApiTokenView {
    fn from(r: ApiTokenRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            scopes: r.scopes.split_whitespace().map(str::to_owned).collect(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
        }
    }
}

/// A new token: its secret, shown this once.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    pub token: ApiTokenView,
    pub secret: String,
}

pub fn scopes_str(scope: TokenScope) -> &'static str {
    match scope {
        TokenScope::Read => "read",
        TokenScope::Write => "read write",
    }
}

pub fn scope_of(scopes: &str) -> TokenScope {
    if scopes.split_whitespace().any(|s| s == "write") {
        TokenScope::Write
    } else {
        TokenScope::Read
    }
}

/// A new personal access token, and a notice to its owner.
pub(super) struct CreateApiToken {
    pub user_id: Uuid,
    pub name: String,
    pub scope: TokenScope,
    pub expires_at: Option<DateTime<Utc>>,
}

impl AccountTransition for CreateApiToken {
    type Out = CreatedToken;

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<CreatedToken, EngineError> {
        let CreateApiToken {
            user_id,
            name,
            scope,
            expires_at,
        } = self;
        let now = at.now;
        if store::api_tokens::count_live(at.tx(), user_id, now).await? >= MAX_TOKENS_PER_USER {
            return Err(EngineError::Conflict {
                code: ErrorCode::TooManyTokens,
                message: format!(
                    "an account may hold {MAX_TOKENS_PER_USER} tokens; revoke one you no longer use"
                ),
            });
        }
        let (raw, _) = secret_token::generate();
        let secret = format!("{TOKEN_PREFIX}{raw}");
        let row = ApiTokenRow {
            id: Uuid::now_v7(),
            user_id,
            name,
            prefix: secret.chars().take(TOKEN_PREFIX.len() + 6).collect(),
            scopes: scopes_str(scope).into(),
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        store::api_tokens::insert(at.tx(), &row, &secret_token::hash(&secret)).await?;
        at.audit(
            Some(user_id),
            "api_token.created",
            user_id,
            json!({"token_id": row.id, "name": row.name, "scopes": row.scopes, "expires_at": expires_at}),
        );
        if let Some(user) = store::users::find_by_id_tx(at.tx(), user_id).await? {
            let access = match scope {
                TokenScope::Read => "read",
                TokenScope::Write => "read and change",
            };
            let mail = MailJob {
                to: user.email,
                subject: "A personal access token was created for your Alta Data account".into(),
                text: format!(
                    "Hello,\n\nA personal access token named \"{}\" was just created for your \
                     Alta Data account; it can {access} your data without a password.\n\nIf \
                     this was not you, revoke it under your account's tokens, reset your \
                     password at {}/forgot-password (which revokes every token), and tell your \
                     project administrator.\n",
                    row.name, at.deps.config.public_url
                ),
                template: "api_token_created".into(),
            };
            at.enqueue_mail(mail)?;
        }
        Ok(CreatedToken {
            token: row.into(),
            secret,
        })
    }
}

pub(super) struct RevokeApiToken {
    pub user_id: Uuid,
    pub token_id: Uuid,
}

impl AccountTransition for RevokeApiToken {
    type Out = ();

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<(), EngineError> {
        let (user_id, token_id, now) = (self.user_id, self.token_id, at.now);
        if !store::api_tokens::revoke(at.tx(), token_id, user_id, now).await? {
            return Err(EngineError::NotFound { what: "token" });
        }
        at.audit(
            Some(user_id),
            "api_token.revoked",
            user_id,
            json!({"token_id": token_id}),
        );
        Ok(())
    }
}
