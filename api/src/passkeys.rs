//! `/api/auth/passkeys`: WebAuthn registration and sign-in, and managing one's passkeys.
//!
//! A ceremony is two calls: the first answers `{ceremony_id, options}`; the browser
//! passes `options` to `navigator.credentials.create()` (registration) or `.get()`
//! (sign-in), and the second call sends the credential it returns, as JSON (base64url
//! for binary fields, as `PublicKeyCredential.toJSON()` gives), with the ceremony id.

use alta_actors::{
    Engine,
    accounts::{CeremonyStart, PasskeyView},
    context::RequestContext,
};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use uuid::Uuid;

use crate::{
    auth::LoginResponse, json_body::JsonBody, problem::ApiResult, security::BearerAuth,
    tags::ApiTags,
};

pub struct PasskeysApi;

/// A ceremony has started: run it in the browser within five minutes.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CeremonyResponse {
    /// Send it back with the browser's answer. Single use.
    pub ceremony_id: Uuid,
    /// For `navigator.credentials.create()` (registration) or `.get()` (sign-in): a
    /// `{publicKey: …}` object whose binary fields (`challenge`, `user.id`, credential
    /// ids) are base64url strings to decode into ArrayBuffers, as
    /// `PublicKeyCredential.parseCreationOptionsFromJSON()` /
    /// `parseRequestOptionsFromJSON()` do with `options.publicKey`.
    pub options: serde_json::Value,
    pub expires_at: DateTime<Utc>,
}

impl From<CeremonyStart> for CeremonyResponse {
    fn from(c: CeremonyStart) -> Self {
        Self {
            ceremony_id: c.ceremony_id,
            options: c.options,
            expires_at: c.expires_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct RegisterVerifyRequest {
    pub ceremony_id: Uuid,
    /// The `PublicKeyCredential` from `navigator.credentials.create()`, as JSON
    /// (`credential.toJSON()`).
    pub credential: serde_json::Value,
    /// A name to tell it apart, e.g. `laptop` (1–100 characters; `Passkey` if absent).
    #[oai(validator(max_length = 100))]
    pub name: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct PasskeyLoginRequest {
    /// The account's email: only its passkeys are offered (an address without
    /// passkeys gets a stand-in id no authenticator holds). Without it the browser
    /// offers any discoverable passkey it holds for this site.
    #[oai(validator(max_length = 254))]
    pub email: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct LoginVerifyRequest {
    pub ceremony_id: Uuid,
    /// The `PublicKeyCredential` from `navigator.credentials.get()`, as JSON
    /// (`credential.toJSON()`).
    pub credential: serde_json::Value,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct RenamePasskeyRequest {
    /// 1–100 characters.
    #[oai(validator(max_length = 100))]
    pub name: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PasskeyResponse {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<PasskeyView> for PasskeyResponse {
    fn from(p: PasskeyView) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PasskeyList {
    pub items: Vec<PasskeyResponse>,
}

#[derive(ApiResponse)]
pub enum CeremonyStarted {
    #[oai(status = 200)]
    Ok(Json<CeremonyResponse>),
}

#[derive(ApiResponse)]
pub enum PasskeyCreated {
    /// The passkey is registered.
    #[oai(status = 201)]
    Created(Json<PasskeyResponse>),
}

#[derive(ApiResponse)]
pub enum PasskeyOk {
    #[oai(status = 200)]
    Ok(Json<PasskeyResponse>),
}

#[derive(ApiResponse)]
pub enum PasskeysOk {
    #[oai(status = 200)]
    Ok(Json<PasskeyList>),
}

#[derive(ApiResponse)]
pub enum PasskeyDeleted {
    /// It no longer signs anyone in.
    #[oai(status = 204)]
    NoContent,
}

#[OpenApi(tag = "ApiTags::Auth")]
impl PasskeysApi {
    /// Start registering a passkey
    ///
    /// For the signed-in user (403 `session_required` with an API token), within 10
    /// minutes of signing in (403 `reauthentication_required`). The options exclude
    /// the passkeys they already have and ask for user verification.
    /// 501 `passkeys_disabled` when the server has no allowed origin
    /// (`WEBAUTHN_ORIGINS`); 409 `too_many_passkeys` beyond 20.
    #[oai(
        path = "/api/auth/passkeys/register",
        method = "post",
        operation_id = "auth_passkey_register"
    )]
    async fn register(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
    ) -> ApiResult<CeremonyStarted> {
        let started = engine
            .accounts()
            .start_passkey_registration(&auth.0)
            .await?;
        Ok(CeremonyStarted::Ok(Json(started.into())))
    }

    /// Finish registering a passkey
    ///
    /// 400 `invalid_ceremony` when the ceremony is unknown, used, expired or another
    /// user's; 400 `passkey_rejected` when the authenticator's answer does not check out
    /// (wrong origin, no user verification, another challenge); 409
    /// `credential_registered` when the credential is already registered.
    #[oai(
        path = "/api/auth/passkeys/register/verify",
        method = "post",
        operation_id = "auth_passkey_register_verify"
    )]
    async fn register_verify(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        body: JsonBody<RegisterVerifyRequest>,
    ) -> ApiResult<PasskeyCreated> {
        let body = body.0;
        let passkey = engine
            .accounts()
            .finish_passkey_registration(
                &auth.0,
                body.ceremony_id,
                body.credential,
                body.name.as_deref(),
                &ctx,
            )
            .await?;
        Ok(PasskeyCreated::Created(Json(passkey.into())))
    }

    /// Start signing in with a passkey
    ///
    /// No sign-in needed. The answer does not tell whether the email has an account
    /// or passkeys. Rate limited per client IP.
    #[oai(
        path = "/api/auth/passkeys/login",
        method = "post",
        operation_id = "auth_passkey_login"
    )]
    async fn login(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        body: JsonBody<PasskeyLoginRequest>,
    ) -> ApiResult<CeremonyStarted> {
        let started = engine
            .accounts()
            .start_passkey_login(body.email.as_deref(), &ctx)
            .await?;
        Ok(CeremonyStarted::Ok(Json(started.into())))
    }

    /// Finish signing in with a passkey
    ///
    /// Tokens, as for a password login. 400 `invalid_ceremony` when the ceremony is
    /// unknown, used or expired (an assertion replayed); 401 `passkey_rejected` when
    /// the assertion does not check out (unknown credential, wrong origin, no user
    /// verification, a counter that went back, a disabled account).
    #[oai(
        path = "/api/auth/passkeys/login/verify",
        method = "post",
        operation_id = "auth_passkey_login_verify"
    )]
    async fn login_verify(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        body: JsonBody<LoginVerifyRequest>,
    ) -> ApiResult<LoginResponse> {
        let body = body.0;
        let tokens = engine
            .accounts()
            .finish_passkey_login(body.ceremony_id, body.credential, &ctx)
            .await?;
        Ok(LoginResponse::Ok(Json(tokens.into())))
    }

    /// Your passkeys
    ///
    /// Oldest first.
    #[oai(
        path = "/api/auth/passkeys",
        method = "get",
        operation_id = "auth_passkey_list"
    )]
    async fn list(&self, engine: Data<&Engine>, auth: BearerAuth) -> ApiResult<PasskeysOk> {
        let items = engine.accounts().passkeys(&auth.0).await?;
        Ok(PasskeysOk::Ok(Json(PasskeyList {
            items: items.into_iter().map(Into::into).collect(),
        })))
    }

    /// Rename a passkey
    #[oai(
        path = "/api/auth/passkeys/:id",
        method = "patch",
        operation_id = "auth_passkey_rename"
    )]
    async fn rename(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        id: Path<Uuid>,
        body: JsonBody<RenamePasskeyRequest>,
    ) -> ApiResult<PasskeyOk> {
        let passkey = engine
            .accounts()
            .rename_passkey(&auth.0, id.0, &body.name, &ctx)
            .await?;
        Ok(PasskeyOk::Ok(Json(passkey.into())))
    }

    /// Remove a passkey
    ///
    /// Within 10 minutes of signing in (403 `reauthentication_required`). It signs no
    /// one in from now on; sessions it opened stay (end them with
    /// `DELETE /api/auth/sessions/{id}`).
    #[oai(
        path = "/api/auth/passkeys/:id",
        method = "delete",
        operation_id = "auth_passkey_delete"
    )]
    async fn delete(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> ApiResult<PasskeyDeleted> {
        engine
            .accounts()
            .delete_passkey(&auth.0, id.0, &ctx)
            .await?;
        Ok(PasskeyDeleted::NoContent)
    }
}
