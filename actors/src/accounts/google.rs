//! Google sign-in: the OpenID Connect authorization-code flow with PKCE.
//!
//! 1. `google_login` keeps a fresh `state` (its SHA-256), nonce and PKCE verifier on the
//!    server (10 minutes, single use), bound to the browser by a random cookie (its
//!    SHA-256 too), and sends the browser to the provider.
//! 2. `google_callback` spends the state (it must come back in the browser that started
//!    the sign-in: no login CSRF), exchanges the code at the provider's token endpoint
//!    (with the verifier and the client secret) and verifies the ID token, all outside
//!    the actor. The accounts actor then, in one transaction with its audit rows, signs
//!    in the account linked to (issuer, subject), or links the account with that email
//!    (both sides verified), or creates a verified account, and issues a one-time login
//!    code (256 bits, 60 seconds, stored hashed). The browser goes to the frontend with
//!    `#code=…`, or `#error=<code>` when anything failed.
//! 3. `google_exchange` spends the code and opens a session (method `google`) in one
//!    transaction: the same tokens as a password login.

use super::AccountService;
use crate::ErrorCode;
use serde_json::json;
use uuid::Uuid;

use super::{
    Tokens, sessions,
    transition::{AccountTransition, InAccounts},
};
use crate::{
    auth::{
        oidc::{CodeExchange, Expected, GoogleSignInConfig, IdClaims, OidcError, OidcProvider},
        secret_token,
    },
    context::RequestContext,
    domain::{Email, FullName},
    error::EngineError,
    metrics as m,
    store::{
        self,
        audit::AuditEntry,
        google::{IdentityRow, LoginCodeRow, LoginStateRow},
    },
};

/// The session method, audit and metric label of this way in.
pub const METHOD: &str = "google";
/// The cookie that binds a sign-in to the browser that started it.
pub const BINDING_COOKIE: &str = "alta_google_signin";
/// How long a started sign-in may take.
pub const STATE_TTL_SECS: i64 = 600;
/// How long the frontend has to exchange the one-time code.
pub const CODE_TTL_SECS: i64 = 60;

/// What the server kept for a sign-in, handed back once.
#[derive(Debug, Clone)]
pub struct PendingSignIn {
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Where to send the browser to sign in, and the cookie that binds the sign-in to it.
#[derive(Debug, Clone)]
pub struct GoogleLoginStart {
    /// The provider's authorization URL.
    pub location: String,
    /// The value of the [`BINDING_COOKIE`].
    pub browser_binding: String,
    pub cookie: GoogleCookie,
}

/// Where the binding cookie is sent back to, and for how long.
#[derive(Debug, Clone)]
pub struct GoogleCookie {
    pub name: &'static str,
    /// The callback's path (`GOOGLE_REDIRECT_URI`'s).
    pub path: String,
    pub max_age_secs: i64,
    /// Set on https only.
    pub secure: bool,
}

/// What the provider sent back to the callback, and the browser's binding cookie.
#[derive(Debug, Clone, Default)]
pub struct GoogleCallbackInput {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub browser_binding: Option<String>,
}

/// Where the callback sends the browser (the frontend, with `#code=…` or `#error=…`).
#[derive(Debug, Clone)]
pub struct GoogleRedirect {
    pub location: String,
    /// The binding cookie, to clear.
    pub cookie: GoogleCookie,
    /// The code of the failure, when it failed (also in the location).
    pub error: Option<&'static str>,
}

fn disabled() -> EngineError {
    EngineError::NotImplemented {
        code: ErrorCode::GoogleSigninDisabled,
        message: "Google sign-in is not enabled on this server: set GOOGLE_CLIENT_ID and \
                  GOOGLE_CLIENT_SECRET"
            .into(),
    }
}

fn invalid_state() -> EngineError {
    EngineError::validation(
        ErrorCode::InvalidState,
        "state",
        "this sign-in is unknown, has expired or was already used; start again",
    )
}

fn invalid_login_code() -> EngineError {
    EngineError::unauthenticated(
        ErrorCode::InvalidLoginCode,
        "this sign-in code is invalid, has expired or was already used; sign in again",
    )
}

fn account_disabled() -> EngineError {
    EngineError::Refused {
        code: ErrorCode::AccountDisabled,
        message: "this account is disabled".into(),
    }
}

/// Count a Google sign-in event (`outcome`: what happened, or the refusal's code).
fn count(outcome: &'static str) {
    metrics::counter!(m::AUTH_EVENTS_TOTAL, "method" => METHOD, "outcome" => outcome).increment(1);
}

fn count_result<T>(ok: &'static str, result: &Result<T, EngineError>) {
    count(match result {
        Ok(_) => ok,
        Err(e) => e.code().as_str(),
    });
}

/// An OpenID provider failure as the engine reports it (the cause goes to the log).
fn provider_failure(err: OidcError) -> EngineError {
    match err {
        OidcError::Unavailable(cause) => {
            tracing::warn!(%cause, "Google sign-in: the provider is unavailable");
            EngineError::Unavailable(format!("the sign-in provider is unavailable: {cause}"))
        }
        OidcError::CodeRejected(cause) => {
            tracing::warn!(%cause, "Google sign-in: the token endpoint refused the code");
            EngineError::unauthenticated(
                ErrorCode::TokenExchangeFailed,
                "Google did not accept this sign-in; start again",
            )
        }
        OidcError::InvalidToken(cause) => {
            tracing::warn!(%cause, "Google sign-in: the ID token was refused");
            EngineError::unauthenticated(
                ErrorCode::InvalidIdToken,
                "Google's answer could not be verified; start again",
            )
        }
    }
}

/// `frontend` with these pairs, form-encoded, as its fragment.
fn with_fragment(frontend: &str, pairs: &[(&str, &str)]) -> String {
    fn encode(out: &mut String, s: &str) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(char::from(b));
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut location = frontend.split('#').next().unwrap_or_default().to_owned();
    for (i, (k, v)) in pairs.iter().enumerate() {
        location.push(if i == 0 { '#' } else { '&' });
        encode(&mut location, k);
        location.push('=');
        encode(&mut location, v);
    }
    location
}

fn cookie(g: &GoogleSignInConfig, max_age_secs: i64) -> GoogleCookie {
    let path = reqwest::Url::parse(&g.redirect_uri)
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|_| "/api/auth/google/callback".into());
    GoogleCookie {
        name: BINDING_COOKIE,
        path,
        max_age_secs,
        secure: g.redirect_uri.starts_with("https://"),
    }
}

impl AccountService {
    fn google(&self) -> Result<&GoogleSignInConfig, EngineError> {
        self.deps.config.google_signin.as_ref().ok_or_else(disabled)
    }

    /// Start a Google sign-in: where to send the browser, and the cookie to set.
    pub async fn google_login(
        &self,
        ctx: &RequestContext,
    ) -> Result<GoogleLoginStart, EngineError> {
        let outcome = self.google_login_inner(ctx).await;
        count_result("started", &outcome);
        outcome
    }

    async fn google_login_inner(
        &self,
        ctx: &RequestContext,
    ) -> Result<GoogleLoginStart, EngineError> {
        let g = self.google()?;
        self.limit_ip("google_login", ctx).await?;
        let discovery = g
            .provider
            .discovery(&g.issuer)
            .await
            .map_err(provider_failure)?;
        let state = crate::auth::oidc::random_token();
        let nonce = crate::auth::oidc::random_token();
        let pkce_verifier = crate::auth::oidc::random_token();
        let (browser_binding, browser_hash) = secret_token::generate();
        let location = OidcProvider::authorization_url(
            &discovery,
            &g.client_id,
            &g.redirect_uri,
            &state,
            &nonce,
            &pkce_verifier,
        )
        .map_err(provider_failure)?;
        let now = self.deps.clock.now();
        let row = LoginStateRow {
            id: Uuid::now_v7(),
            state_hash: secret_token::hash(&state),
            nonce,
            pkce_verifier,
            browser_hash,
            created_at: now,
            expires_at: now + chrono::Duration::seconds(STATE_TTL_SECS),
            used_at: None,
        };
        self.apply_in_accounts(SaveState { row }, ctx).await?;
        Ok(GoogleLoginStart {
            location,
            browser_binding,
            cookie: cookie(g, STATE_TTL_SECS),
        })
    }

    /// Finish a Google sign-in at the callback. Whatever happens (but a server without
    /// Google sign-in), the answer is where to send the browser: the frontend with
    /// `#code=…`, or `#error=<code>&request_id=…`.
    pub async fn google_callback(
        &self,
        input: GoogleCallbackInput,
        ctx: &RequestContext,
    ) -> Result<GoogleRedirect, EngineError> {
        let g = self.google()?;
        let outcome = self.google_callback_inner(g, input, ctx).await;
        count_result("verified", &outcome);
        let (location, error) = match outcome {
            Ok(code) => (with_fragment(&g.frontend_url, &[("code", &code)]), None),
            Err(err) => {
                let code = err.code().as_str();
                if let EngineError::Internal(cause) = &err {
                    tracing::error!(%cause, "Google sign-in failed");
                } else {
                    tracing::info!(code, reason = %err, "Google sign-in refused");
                }
                let location = with_fragment(
                    &g.frontend_url,
                    &[("error", code), ("request_id", &ctx.request_id)],
                );
                (location, Some(code))
            }
        };
        Ok(GoogleRedirect {
            location,
            cookie: cookie(g, 0),
            error,
        })
    }

    async fn google_callback_inner(
        &self,
        g: &GoogleSignInConfig,
        input: GoogleCallbackInput,
        ctx: &RequestContext,
    ) -> Result<String, EngineError> {
        self.limit_ip("google_callback", ctx).await?;
        if let Some(error) = input.error.as_deref() {
            let error: String = error.chars().take(64).collect();
            tracing::info!(provider_error = %error, "the provider answered the sign-in with an error");
            return Err(if error == "access_denied" {
                EngineError::unauthenticated(
                    ErrorCode::AccessDenied,
                    "the sign-in was cancelled at Google, or Google refused it",
                )
            } else {
                EngineError::unauthenticated(
                    ErrorCode::ProviderError,
                    "Google could not complete the sign-in; start again",
                )
            });
        }
        let bounded = |v: Option<String>, max: usize| v.filter(|s| !s.is_empty() && s.len() <= max);
        let state = bounded(input.state, 128).ok_or_else(invalid_state)?;
        let binding = bounded(input.browser_binding, 128).ok_or_else(invalid_state)?;
        let code = bounded(input.code, 2048).ok_or_else(|| {
            EngineError::unauthenticated(
                ErrorCode::ProviderError,
                "Google sent no authorization code; start again",
            )
        })?;
        let (state_hash, browser_hash) = (secret_token::hash(&state), secret_token::hash(&binding));
        let consume = ConsumeState {
            state_hash,
            browser_hash,
        };
        let pending = self.apply_in_accounts(consume, ctx).await?;
        let discovery = g
            .provider
            .discovery(&g.issuer)
            .await
            .map_err(provider_failure)?;
        let id_token = g
            .provider
            .exchange_code(
                &discovery,
                CodeExchange {
                    code: &code,
                    pkce_verifier: &pending.pkce_verifier,
                    redirect_uri: &g.redirect_uri,
                    client_id: &g.client_id,
                    client_secret: secrecy::ExposeSecret::expose_secret(&g.client_secret),
                },
            )
            .await
            .map_err(provider_failure)?;
        let expected = Expected {
            issuer: &g.issuer,
            client_id: &g.client_id,
            nonce: &pending.nonce,
        };
        let claims = g
            .provider
            .verify_id_token(
                &discovery,
                &id_token,
                &expected,
                self.deps.clock.now().timestamp(),
            )
            .await
            .map_err(provider_failure)?;
        self.apply_in_accounts(Complete { claims }, ctx).await
    }

    /// Exchange the one-time code of a Google sign-in for tokens (a new session).
    pub async fn google_exchange(
        &self,
        code: &str,
        ctx: &RequestContext,
    ) -> Result<Tokens, EngineError> {
        let outcome = self.google_exchange_inner(code, ctx).await;
        count_result("success", &outcome);
        outcome
    }

    async fn google_exchange_inner(
        &self,
        code: &str,
        ctx: &RequestContext,
    ) -> Result<Tokens, EngineError> {
        self.google()?;
        // 256 random bits: guessing is hopeless, and a wrong code changes nothing.
        if code.is_empty() || code.len() > 128 {
            return Err(invalid_login_code());
        }
        let code = code.to_owned();
        self.apply_in_accounts(Exchange { code }, ctx).await
    }
}

/// Keep a started sign-in's state. It belongs to no account yet: kept, not audited (its
/// use is).
struct SaveState {
    row: LoginStateRow,
}

impl AccountTransition for SaveState {
    type Out = ();

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<(), EngineError> {
        store::google::insert_state(at.tx(), &self.row).await?;
        Ok(())
    }
}

/// Spend a sign-in's state (the browser's binding must match); its nonce and verifier.
struct ConsumeState {
    state_hash: String,
    browser_hash: String,
}

impl AccountTransition for ConsumeState {
    type Out = PendingSignIn;

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<PendingSignIn, EngineError> {
        let now = at.now;
        let row = store::google::find_state(at.tx(), &self.state_hash)
            .await?
            .ok_or_else(invalid_state)?;
        // Another browser's callback (login CSRF), a replay or a late one change nothing.
        if row.used_at.is_some() || row.expires_at <= now || row.browser_hash != self.browser_hash {
            return Err(invalid_state());
        }
        if !store::google::use_state(at.tx(), &self.state_hash, now).await? {
            return Err(invalid_state());
        }
        at.audit_entry(AuditEntry {
            actor_id: None,
            action: "google.signin_state_used",
            target_type: "oidc_login",
            target_id: Some(row.id.to_string()),
            project_id: None,
            details: json!({"started_at": row.created_at}),
        });
        Ok(PendingSignIn {
            nonce: row.nonce,
            pkce_verifier: row.pkce_verifier,
        })
    }
}

/// Sign in, link or create the account of verified claims, and issue a one-time login
/// code.
struct Complete {
    claims: IdClaims,
}

impl AccountTransition for Complete {
    type Out = String;

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<String, EngineError> {
        let (claims, now) = (&self.claims, at.now);
        let linked =
            match store::google::find_identity(at.tx(), &claims.issuer, &claims.subject).await? {
                Some(identity) => {
                    match store::users::find_by_id_tx(at.tx(), identity.user_id).await? {
                        Some(user) => Some((identity, user)),
                        None => {
                            // Its account was deleted: the identity is free to be linked
                            // afresh.
                            store::google::delete_identity(at.tx(), identity.id).await?;
                            None
                        }
                    }
                }
                None => None,
            };
        let user_id = match linked {
            Some((identity, user)) => {
                if user.disabled_at.is_some() {
                    return Err(account_disabled());
                }
                let email = claims.email.as_deref().unwrap_or(&identity.email);
                store::google::touch_identity(at.tx(), identity.id, email, now).await?;
                user.id
            }
            None => link_or_create(at, claims).await?,
        };
        let (code, code_hash) = secret_token::generate();
        let row = LoginCodeRow {
            id: Uuid::now_v7(),
            code_hash,
            user_id,
            method: METHOD.into(),
            created_at: now,
            expires_at: now + chrono::Duration::seconds(CODE_TTL_SECS),
            used_at: None,
            session_id: None,
        };
        store::google::insert_code(at.tx(), &row).await?;
        at.audit(
            Some(user_id),
            "user.login_code_issued",
            user_id,
            json!({"method": METHOD, "code_id": row.id}),
        );
        Ok(code)
    }
}

/// No account is linked to the identity: link the account with its (verified) email,
/// or create one. Linking needs both sides verified: the provider's `email_verified`,
/// and the local account's confirmed address (else whoever registered the address
/// first, without owning it, would get the Google user's sign-ins: pre-account takeover).
async fn link_or_create(at: &mut InAccounts<'_>, claims: &IdClaims) -> Result<Uuid, EngineError> {
    let now = at.now;
    if !claims.email_verified {
        return Err(EngineError::Refused {
            code: ErrorCode::GoogleEmailNotVerified,
            message: "Google has not verified this account's email address".into(),
        });
    }
    let email = Email::parse(claims.email.as_deref().unwrap_or_default())?;
    let identity = |user_id| IdentityRow {
        id: Uuid::now_v7(),
        user_id,
        issuer: claims.issuer.clone(),
        subject: claims.subject.clone(),
        email: email.to_string(),
        created_at: now,
        last_login_at: now,
    };
    match store::users::find_by_email_tx(at.tx(), email.as_str()).await? {
        Some(user) => {
            if !user.email_verified {
                return Err(EngineError::Refused {
                    code: ErrorCode::AccountNotVerified,
                    message: "an account with this email exists but has not confirmed its \
                              address: confirm it with the link we mailed (or sign in with \
                              the password), then sign in with Google again"
                        .into(),
                });
            }
            if user.disabled_at.is_some() {
                return Err(account_disabled());
            }
            let row = identity(user.id);
            store::google::insert_identity(at.tx(), &row).await?;
            at.audit(
                Some(user.id),
                "user.identity_linked",
                user.id,
                json!({"provider": METHOD, "issuer": row.issuer, "identity_id": row.id}),
            );
            count("linked");
            Ok(user.id)
        }
        None => {
            let user_id = Uuid::now_v7();
            let full_name = claims.name.as_deref().and_then(|n| FullName::parse(n).ok());
            store::google::insert_user(
                at.tx(),
                user_id,
                email.as_str(),
                full_name.as_ref().map(FullName::as_str),
                now,
            )
            .await?;
            let row = identity(user_id);
            store::google::insert_identity(at.tx(), &row).await?;
            at.audit(
                Some(user_id),
                "user.registered",
                user_id,
                json!({"role": "user", "method": METHOD, "identity_id": row.id}),
            );
            metrics::counter!(m::AUTH_REGISTRATIONS_TOTAL, "outcome" => METHOD).increment(1);
            Ok(user_id)
        }
    }
}

/// Spend a one-time login code and open the session, in one transaction.
struct Exchange {
    code: String,
}

impl AccountTransition for Exchange {
    type Out = Tokens;

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<Tokens, EngineError> {
        let now = at.now;
        let code_hash = secret_token::hash(&self.code);
        let row = store::google::find_code(at.tx(), &code_hash)
            .await?
            .ok_or_else(invalid_login_code)?;
        if row.used_at.is_some() {
            // Presented again: whoever has a copy may have used it first. End the session
            // it opened (RFC 6749 §4.1.2 asks the same of a reused authorization code).
            if let Some(session) = row.session_id
                && store::sessions::revoke(at.tx(), session, "login_code_reused", now).await?
            {
                at.audit(
                    None,
                    "session.login_code_reused",
                    row.user_id,
                    json!({"session_id": session, "code_id": row.id}),
                );
                at.keep_so_far().await?;
            }
            return Err(invalid_login_code());
        }
        if row.expires_at <= now {
            return Err(invalid_login_code());
        }
        let user = store::users::find_by_id_tx(at.tx(), row.user_id)
            .await?
            .ok_or_else(invalid_login_code)?;
        if user.disabled_at.is_some() {
            return Err(account_disabled());
        }
        if !store::google::use_code(at.tx(), &code_hash, now).await? {
            return Err(invalid_login_code());
        }
        at.audit(
            Some(user.id),
            "user.login_code_used",
            user.id,
            json!({"method": METHOD, "code_id": row.id}),
        );
        let tokens = sessions::start_in(at, user.id, METHOD).await?;
        store::google::set_code_session(at.tx(), &code_hash, tokens.session_id).await?;
        Ok(tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::with_fragment;

    #[test]
    fn fragments_are_form_encoded_and_replace_any_other() {
        assert_eq!(
            with_fragment("https://app.example.org/", &[("code", "abc-_9")]),
            "https://app.example.org/#code=abc-_9"
        );
        assert_eq!(
            with_fragment(
                "http://localhost:3000/signin?x=1",
                &[("error", "invalid_state"), ("request_id", "a b&c")]
            ),
            "http://localhost:3000/signin?x=1#error=invalid_state&request_id=a+b%26c"
        );
    }
}
