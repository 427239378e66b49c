//! Passkeys (WebAuthn, webauthn-rs): registration by a signed-in user, sign-in with an
//! email or with a discoverable credential, listing, renaming and removal.
//!
//! A ceremony's state stays on the server (`webauthn_ceremonies`): single use (taken,
//! that is deleted, before it is checked), five minutes long, and bound to the user who
//! started it. Checking the browser's answer and storing what it changes (a new passkey;
//! a login's counter and backup flags, and the session) happen in the accounts actor,
//! in one transaction with the audit row. The counter an authenticator reports must
//! have gone up from the one stored now (not the copy taken when the ceremony started),
//! and the write is conditional on the stored passkey being unchanged, so two sign-ins
//! with one passkey (a clone racing the original) cannot both pass.
//!
//! Adding or removing a passkey needs a recent sign-in (a stolen access token alone
//! cannot plant a lasting way in), and the owner is mailed when one is added.

use super::AccountService;
use crate::ErrorCode;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Webauthn, WebauthnBuilder, WebauthnError,
};

use super::{
    Tokens,
    service::require_session,
    sessions,
    transition::{AccountTransition, InAccounts},
};
use crate::{
    config::WebauthnConfig,
    context::{Principal, RequestContext},
    deps::Deps,
    domain::Email,
    domain::MailJob,
    error::EngineError,
    metrics as m,
    store::{
        self,
        passkeys::{CeremonyRow, PasskeyRow},
    },
};

/// How long a ceremony may take (the browser's timeout is the same).
const CEREMONY_TTL_SECS: i64 = 300;
/// Most passkeys one account may hold.
pub const MAX_PASSKEYS_PER_USER: i64 = 20;
const NAME_MAX_CHARS: usize = 100;
/// Adding or removing a passkey needs a session opened this recently (OWASP ASVS
/// V7.5.1: re-authenticate before changing how one signs in).
pub const RECENT_SIGN_IN_MINUTES: i64 = 10;

/// Build the relying party, or say which setting is wrong.
pub fn relying_party(config: &WebauthnConfig) -> Result<Option<Webauthn>, String> {
    let Some((first, rest)) = config.origins.split_first() else {
        return Ok(None);
    };
    let mut builder = WebauthnBuilder::new(&config.rp_id, first)
        .map_err(|e| format!("WEBAUTHN_RP_ID/WEBAUTHN_ORIGINS: {e}"))?
        .rp_name(&config.rp_name)
        .timeout(std::time::Duration::from_secs(CEREMONY_TTL_SECS as u64));
    for origin in rest {
        builder = builder.append_allowed_origin(origin);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| format!("WEBAUTHN_RP_ID/WEBAUTHN_ORIGINS: {e}"))
}

/// A passkey as its owner sees it.
#[derive(Debug, Clone)]
pub struct PasskeyView {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<PasskeyRow> for PasskeyView {
    fn from(r: PasskeyRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        }
    }
}

/// What the browser needs to run a ceremony: pass `options` to
/// `navigator.credentials.create()` / `.get()`, and send the answer back with the id.
#[derive(Debug, Clone)]
pub struct CeremonyStart {
    pub ceremony_id: Uuid,
    pub options: serde_json::Value,
    pub expires_at: DateTime<Utc>,
}

/// The server-side state of a ceremony, as stored.
#[derive(Serialize, Deserialize)]
pub enum CeremonyState {
    Register(PasskeyRegistration),
    /// A login for a known user: only their passkeys are allowed.
    Login(PasskeyAuthentication),
    /// A login without a user: the authenticator says whose passkey it is.
    Discoverable(DiscoverableAuthentication),
}

const KIND_REGISTER: &str = "register";
const KIND_LOGIN: &str = "login";

fn credential_key(id: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

fn invalid_ceremony() -> EngineError {
    EngineError::validation(
        ErrorCode::InvalidCeremony,
        "ceremony_id",
        "this ceremony is unknown, already used or expired; start again",
    )
}

fn login_rejected() -> EngineError {
    EngineError::unauthenticated(ErrorCode::PasskeyRejected, "the passkey was not accepted")
}

fn valid_name(name: Option<&str>) -> Result<String, EngineError> {
    let name = name.map(str::trim).unwrap_or("Passkey");
    if name.is_empty()
        || name.chars().count() > NAME_MAX_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(EngineError::validation(
            ErrorCode::InvalidName,
            "name",
            format!("name must be 1 to {NAME_MAX_CHARS} characters without control characters"),
        ));
    }
    Ok(name.to_owned())
}

fn parse_credential<T: serde::de::DeserializeOwned>(
    credential: serde_json::Value,
) -> Result<T, EngineError> {
    serde_json::from_value(credential).map_err(|e| {
        EngineError::validation(
            ErrorCode::InvalidCredential,
            "credential",
            format!("credential is not a WebAuthn response: {e}"),
        )
    })
}

/// `auth_events_total{method="passkey"|"passkey_register", outcome}`, outcomes bounded.
fn count(method: &'static str, outcome: &Result<impl Sized, EngineError>) {
    let outcome = match outcome {
        Ok(_) => "success",
        Err(EngineError::RateLimited { .. }) => "rate_limited",
        Err(e) => match e.code().as_str() {
            "invalid_ceremony" => "invalid_ceremony",
            "invalid_credential" => "invalid_credential",
            "passkey_rejected" => "rejected",
            "credential_registered" => "duplicate_credential",
            _ => "error",
        },
    };
    metrics::counter!(m::AUTH_EVENTS_TOTAL, "method" => method, "outcome" => outcome).increment(1);
}

impl AccountService {
    fn relying_party(&self) -> Result<&Webauthn, EngineError> {
        self.deps
            .webauthn
            .as_ref()
            .ok_or_else(|| EngineError::NotImplemented {
                code: ErrorCode::PasskeysDisabled,
                message: "passkeys are off: no WEBAUTHN_ORIGINS falls under WEBAUTHN_RP_ID".into(),
            })
    }

    /// The caller's session must have begun within [`RECENT_SIGN_IN_MINUTES`] (adding
    /// or removing a passkey, creating an API token).
    pub(super) async fn require_recent_sign_in(
        &self,
        principal: &Principal,
    ) -> Result<(), EngineError> {
        require_session(principal)?;
        let recent = match principal.session_id {
            Some(id) => {
                let session = store::sessions::find(&self.deps.db, id).await?;
                session.is_some_and(|s| {
                    s.created_at
                        > self.deps.clock.now() - chrono::Duration::minutes(RECENT_SIGN_IN_MINUTES)
                })
            }
            None => false,
        };
        if !recent {
            return Err(EngineError::Refused {
                code: ErrorCode::ReauthenticationRequired,
                message: format!(
                    "sign in again to do this (it needs a sign-in within the last \
                     {RECENT_SIGN_IN_MINUTES} minutes)"
                ),
            });
        }
        Ok(())
    }

    async fn store_ceremony(
        &self,
        kind: &'static str,
        user_id: Option<Uuid>,
        state: &CeremonyState,
        options: serde_json::Value,
    ) -> Result<CeremonyStart, EngineError> {
        let now = self.deps.clock.now();
        let row = CeremonyRow {
            id: Uuid::new_v4(),
            kind: kind.into(),
            user_id,
            state: serde_json::to_string(state)
                .map_err(|e| EngineError::Internal(format!("ceremony state: {e}")))?,
            created_at: now,
            expires_at: now + chrono::Duration::seconds(CEREMONY_TTL_SECS),
        };
        let (ceremony_id, expires_at) = (row.id, row.expires_at);
        self.apply_in_accounts(
            SaveCeremony { row },
            &RequestContext::internal("passkey_ceremony"),
        )
        .await?;
        Ok(CeremonyStart {
            ceremony_id,
            options,
            expires_at,
        })
    }

    /// Take a ceremony for checking: it cannot be used again, whatever the outcome.
    async fn take_ceremony(
        &self,
        id: Uuid,
        kind: &'static str,
        user_id: Option<Uuid>,
    ) -> Result<CeremonyState, EngineError> {
        let take = TakeCeremony { id, kind, user_id };
        let row = self
            .apply_in_accounts(take, &RequestContext::internal("passkey_ceremony"))
            .await?
            .filter(|row| row.expires_at > self.deps.clock.now())
            .ok_or_else(invalid_ceremony)?;
        serde_json::from_str(&row.state)
            .map_err(|e| EngineError::Internal(format!("stored ceremony state: {e}")))
    }

    /// Start registering a passkey for the signed-in caller. Their passkeys are
    /// excluded, so an authenticator that holds one says so instead of making another.
    pub async fn start_passkey_registration(
        &self,
        principal: &Principal,
    ) -> Result<CeremonyStart, EngineError> {
        let webauthn = self.relying_party()?;
        self.require_recent_sign_in(principal).await?;
        let user = store::users::find_by_id(&self.deps.db, principal.user_id)
            .await?
            .ok_or(EngineError::NotFound { what: "user" })?;
        let existing = store::passkeys::of_user(&self.deps.db, user.id).await?;
        if existing.len() as i64 >= MAX_PASSKEYS_PER_USER {
            return Err(EngineError::Conflict {
                code: ErrorCode::TooManyPasskeys,
                message: format!(
                    "an account may hold {MAX_PASSKEYS_PER_USER} passkeys; remove one first"
                ),
            });
        }
        let exclude = existing
            .iter()
            .filter_map(|row| serde_json::from_str::<Passkey>(&row.passkey).ok())
            .map(|pk| pk.cred_id().clone())
            .collect();
        let display = user.full_name.as_deref().unwrap_or(&user.email);
        let (options, state) = webauthn
            .start_passkey_registration(user.id, &user.email, display, Some(exclude))
            .map_err(|e| EngineError::Internal(format!("passkey registration: {e}")))?;
        let mut options = serde_json::to_value(&options)
            .map_err(|e| EngineError::Internal(format!("registration options: {e}")))?;
        // Ask for a discoverable credential where the authenticator can make one, so
        // the user can later sign in without typing their email (webauthn-rs says
        // "discouraged"; the registration state does not depend on it).
        if let Some(sel) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(serde_json::Value::as_object_mut)
        {
            sel.insert("residentKey".into(), json!("preferred"));
        }
        self.store_ceremony(
            KIND_REGISTER,
            Some(user.id),
            &CeremonyState::Register(state),
            options,
        )
        .await
    }

    /// Finish a registration the caller started.
    pub async fn finish_passkey_registration(
        &self,
        principal: &Principal,
        ceremony_id: Uuid,
        credential: serde_json::Value,
        name: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<PasskeyView, EngineError> {
        let outcome = self
            .finish_passkey_registration_inner(principal, ceremony_id, credential, name, ctx)
            .await;
        count("passkey_register", &outcome);
        outcome
    }

    async fn finish_passkey_registration_inner(
        &self,
        principal: &Principal,
        ceremony_id: Uuid,
        credential: serde_json::Value,
        name: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<PasskeyView, EngineError> {
        self.relying_party()?;
        self.require_recent_sign_in(principal).await?;
        let name = valid_name(name)?;
        let CeremonyState::Register(state) = self
            .take_ceremony(ceremony_id, KIND_REGISTER, Some(principal.user_id))
            .await?
        else {
            return Err(invalid_ceremony());
        };
        let credential: RegisterPublicKeyCredential = parse_credential(credential)?;
        let add = AddPasskey {
            user_id: principal.user_id,
            name,
            state: Box::new(state),
            credential: Box::new(credential),
        };
        self.apply_in_accounts(add, ctx).await
    }

    /// Start a passkey sign-in. With the email of an account that has passkeys, only
    /// those are allowed; otherwise (no email, an unknown one, or one without passkeys)
    /// the authenticator offers whichever discoverable passkey it holds for this site.
    /// The answer looks the same either way, so it does not tell who has an account.
    pub async fn start_passkey_login(
        &self,
        email: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<CeremonyStart, EngineError> {
        let webauthn = self.relying_party()?;
        self.limit_ip("passkey_login", ctx).await?;
        let email = email.map(Email::parse).transpose()?;
        // No per-account limit here: starting costs nothing, and a limit keyed on the
        // address alone would let anyone lock its owner out.
        let mut known = None;
        if let Some(email) = &email
            && let Some(user) = store::users::find_by_email(&self.deps.db, email.as_str()).await?
            && user.email_verified
            && user.disabled_at.is_none()
        {
            let keys: Vec<Passkey> = store::passkeys::of_user(&self.deps.db, user.id)
                .await?
                .iter()
                .filter_map(|row| serde_json::from_str(&row.passkey).ok())
                .collect();
            if !keys.is_empty() {
                known = Some((user.id, keys));
            }
        }
        // With an email, the answer always lists MAX_PASSKEYS_PER_USER credential ids:
        // the account's passkeys (if any) and stable, secret-keyed stand-ins that no
        // authenticator holds, in id order, so it tells neither whether the address has
        // passkeys nor how many.
        let allow = email.as_ref().map(|e| {
            let real: Vec<Vec<u8>> = known
                .as_ref()
                .map(|(_, keys)| keys.iter().map(|k| k.cred_id().to_vec()).collect())
                .unwrap_or_default();
            self.padded_allow_list(e, &real)
        });
        let (user_id, state, options) = match known {
            Some((user_id, keys)) => {
                let (options, state) = webauthn
                    .start_passkey_authentication(&keys)
                    .map_err(|e| EngineError::Internal(format!("passkey login: {e}")))?;
                (Some(user_id), CeremonyState::Login(state), options)
            }
            None => {
                let (mut options, state) = webauthn
                    .start_discoverable_authentication()
                    .map_err(|e| EngineError::Internal(format!("passkey login: {e}")))?;
                // webauthn-rs asks for conditional mediation (autofill); a sign-in button
                // needs the modal prompt. The frontend may still ask for autofill.
                options.mediation = None;
                (None, CeremonyState::Discoverable(state), options)
            }
        };
        let mut options = serde_json::to_value(&options)
            .map_err(|e| EngineError::Internal(format!("login options: {e}")))?;
        if let (Some(allow), Some(public_key)) = (allow, options.get_mut("publicKey")) {
            public_key["allowCredentials"] = allow;
        }
        self.store_ceremony(KIND_LOGIN, user_id, &state, options)
            .await
    }

    /// Finish a passkey sign-in: tokens, as for a password login.
    pub async fn finish_passkey_login(
        &self,
        ceremony_id: Uuid,
        credential: serde_json::Value,
        ctx: &RequestContext,
    ) -> Result<Tokens, EngineError> {
        let outcome = self
            .finish_passkey_login_inner(ceremony_id, credential, ctx)
            .await;
        count("passkey", &outcome);
        outcome
    }

    async fn finish_passkey_login_inner(
        &self,
        ceremony_id: Uuid,
        credential: serde_json::Value,
        ctx: &RequestContext,
    ) -> Result<Tokens, EngineError> {
        self.relying_party()?;
        self.limit_ip("passkey_login", ctx).await?;
        let state = self.take_ceremony(ceremony_id, KIND_LOGIN, None).await?;
        if matches!(state, CeremonyState::Register(_)) {
            return Err(invalid_ceremony());
        }
        let credential: PublicKeyCredential = parse_credential(credential)?;
        let login = PasskeyLogin {
            state: Box::new(state),
            credential: Box::new(credential),
        };
        self.apply_in_accounts(login, ctx).await
    }

    /// `allowCredentials` for a sign-in with `email`: its real credential ids padded
    /// with stand-ins to [`MAX_PASSKEYS_PER_USER`] entries, sorted, without transports
    /// (which would tell real entries apart). Stand-ins are as long as the real ids
    /// (32 bytes for an address without passkeys), and the same each time.
    fn padded_allow_list(&self, email: &Email, real: &[Vec<u8>]) -> serde_json::Value {
        // The length of most platform passkeys' ids.
        const TYPICAL_LENGTH: usize = 32;
        let missing = usize::try_from(MAX_PASSKEYS_PER_USER)
            .unwrap_or(20)
            .saturating_sub(real.len());
        let mut ids: Vec<String> = real.iter().map(|id| credential_key(id)).collect();
        for i in 0..missing {
            let len = real
                .get(i % real.len().max(1))
                .map_or(TYPICAL_LENGTH, Vec::len);
            ids.push(credential_key(&self.decoy_bytes(email, i, len)));
        }
        ids.sort();
        serde_json::Value::Array(
            ids.into_iter()
                .map(|id| json!({"type": "public-key", "id": id}))
                .collect(),
        )
    }

    /// `len` stable, secret-keyed bytes for stand-in `index` of an address.
    fn decoy_bytes(&self, email: &Email, index: usize, len: usize) -> Vec<u8> {
        use secrecy::ExposeSecret;
        use sha2::Digest;
        let mut out = Vec::with_capacity(len + 32);
        let mut block: u32 = 0;
        while out.len() < len {
            let mut hash = sha2::Sha256::new();
            hash.update(b"alta passkey decoy\0");
            hash.update(self.deps.config.jwt.secret.expose_secret().as_bytes());
            hash.update(b"\0");
            hash.update(email.as_str().as_bytes());
            hash.update(b"\0");
            hash.update(index.to_le_bytes());
            hash.update(block.to_le_bytes());
            out.extend_from_slice(&hash.finalize());
            block += 1;
        }
        out.truncate(len);
        out
    }

    /// The caller's passkeys, oldest first.
    pub async fn passkeys(&self, principal: &Principal) -> Result<Vec<PasskeyView>, EngineError> {
        require_session(principal)?;
        let rows = store::passkeys::of_user(&self.deps.db, principal.user_id).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Rename one of the caller's passkeys (someone else's is 404).
    pub async fn rename_passkey(
        &self,
        principal: &Principal,
        passkey_id: Uuid,
        name: &str,
        ctx: &RequestContext,
    ) -> Result<PasskeyView, EngineError> {
        require_session(principal)?;
        let name = valid_name(Some(name))?;
        let rename = RenamePasskey {
            user_id: principal.user_id,
            passkey_id,
            name,
        };
        self.apply_in_accounts(rename, ctx).await
    }

    /// Remove one of the caller's passkeys (someone else's is 404).
    pub async fn delete_passkey(
        &self,
        principal: &Principal,
        passkey_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        self.require_recent_sign_in(principal).await?;
        let delete = DeletePasskey {
            user_id: principal.user_id,
            passkey_id,
        };
        self.apply_in_accounts(delete, ctx).await
    }
}

fn rp(deps: &Deps) -> Result<&Webauthn, EngineError> {
    deps.webauthn
        .as_ref()
        .ok_or_else(|| EngineError::Internal("passkeys are off".into()))
}

fn rejected_registration(e: WebauthnError) -> EngineError {
    EngineError::validation(
        ErrorCode::PasskeyRejected,
        "credential",
        format!("the new passkey was not accepted: {e}"),
    )
}

/// A ceremony begun: its state waits for the browser's answer. Not audited (its use is).
struct SaveCeremony {
    row: CeremonyRow,
}

impl AccountTransition for SaveCeremony {
    type Out = ();

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<(), EngineError> {
        store::passkeys::insert_ceremony(at.tx(), &self.row).await?;
        Ok(())
    }
}

/// Take (delete) a ceremony for checking: it cannot be used again, whatever the outcome.
struct TakeCeremony {
    id: Uuid,
    kind: &'static str,
    user_id: Option<Uuid>,
}

impl AccountTransition for TakeCeremony {
    type Out = Option<CeremonyRow>;

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<Option<CeremonyRow>, EngineError> {
        Ok(store::passkeys::take_ceremony(at.tx(), self.id, self.kind, self.user_id).await?)
    }
}

/// Check the authenticator's answer to a registration and keep the passkey. A
/// credential already registered to anyone is refused (webauthn-rs leaves that check
/// to us).
struct AddPasskey {
    user_id: Uuid,
    name: String,
    state: Box<PasskeyRegistration>,
    credential: Box<RegisterPublicKeyCredential>,
}

impl AccountTransition for AddPasskey {
    type Out = PasskeyView;

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<PasskeyView, EngineError> {
        let AddPasskey {
            user_id,
            name,
            state,
            credential,
        } = self;
        let passkey = rp(at.deps)?
            .finish_passkey_registration(&credential, &state)
            .map_err(rejected_registration)?;
        let credential_id = credential_key(passkey.cred_id().as_ref());
        let duplicate = || EngineError::Conflict {
            code: ErrorCode::CredentialRegistered,
            message: "this passkey is already registered".into(),
        };
        if store::passkeys::credential_exists(at.tx(), &credential_id).await? {
            return Err(duplicate());
        }
        if store::passkeys::count_of_user(at.tx(), user_id).await? >= MAX_PASSKEYS_PER_USER {
            return Err(EngineError::Conflict {
                code: ErrorCode::TooManyPasskeys,
                message: format!(
                    "an account may hold {MAX_PASSKEYS_PER_USER} passkeys; remove one first"
                ),
            });
        }
        let row = PasskeyRow {
            id: Uuid::now_v7(),
            user_id,
            credential_id,
            name,
            passkey: serde_json::to_string(&passkey)
                .map_err(|e| EngineError::Internal(format!("passkey: {e}")))?,
            created_at: at.now,
            last_used_at: None,
        };
        store::passkeys::insert(at.tx(), &row)
            .await
            .map_err(|e| match e {
                store::StoreError::Conflict { .. } => duplicate(),
                e => e.into(),
            })?;
        at.audit(
            Some(user_id),
            "passkey.registered",
            user_id,
            json!({"passkey_id": row.id, "name": row.name}),
        );
        if let Some(user) = store::users::find_by_id_tx(at.tx(), user_id).await? {
            let mail = MailJob {
                to: user.email,
                subject: "A passkey was added to your Alta Data account".into(),
                text: format!(
                    "Hello,\n\nA passkey named \"{}\" was just added to your Alta Data \
                     account; it can sign you in without a password.\n\nIf this was not you, \
                     remove it under your account's passkeys, reset your password at \
                     {}/forgot-password, and tell your project administrator.\n",
                    row.name, at.deps.config.public_url
                ),
                template: "passkey_added".into(),
            };
            at.enqueue_mail(mail)?;
        }
        Ok(row.into())
    }
}

/// Check a login answer against the stored passkey (signature, user verification,
/// counter, backup flags), store the passkey's new counter and flags, and open a
/// session: one transaction.
struct PasskeyLogin {
    state: Box<CeremonyState>,
    credential: Box<PublicKeyCredential>,
}

impl AccountTransition for PasskeyLogin {
    type Out = Tokens;

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<Tokens, EngineError> {
        let (credential, now) = (&*self.credential, at.now);
        let webauthn = rp(at.deps)?;
        let credential_id = credential_key(credential.get_credential_id());
        let row = store::passkeys::find_by_credential_tx(at.tx(), &credential_id)
            .await?
            .ok_or_else(login_rejected)?;
        let mut passkey: Passkey = serde_json::from_str(&row.passkey)
            .map_err(|e| EngineError::Internal(format!("stored passkey: {e}")))?;
        let result = match *self.state {
            CeremonyState::Login(state) => {
                webauthn.finish_passkey_authentication(credential, &state)
            }
            CeremonyState::Discoverable(state) => {
                // The user handle the authenticator returns must name the passkey's owner.
                match webauthn.identify_discoverable_authentication(credential) {
                    Ok((user, _)) if user == row.user_id => {
                        webauthn.finish_discoverable_authentication_v2(credential, state, &passkey)
                    }
                    Ok(_) => Err(WebauthnError::InvalidUserUniqueId),
                    Err(e) => Err(e),
                }
            }
            CeremonyState::Register(_) => return Err(invalid_ceremony()),
        }
        // A ceremony started with an email holds the passkeys as they were then; the
        // counter must also have gone up from the one stored now.
        .and_then(|result| {
            let stored = stored_counter(&row.passkey);
            if (result.counter() > 0 || stored > 0) && result.counter() <= stored {
                Err(WebauthnError::CredentialPossibleCompromise)
            } else {
                Ok(result)
            }
        });
        let result = match result {
            Ok(result) => result,
            Err(e) => {
                // Worth an audit row: a cloned authenticator shows up as a counter that
                // went back.
                at.audit(
                    None,
                    "passkey.login_rejected",
                    row.user_id,
                    json!({"passkey_id": row.id, "reason": e.to_string()}),
                );
                at.keep_so_far().await?;
                return Err(login_rejected());
            }
        };
        let user = store::users::find_by_id_tx(at.tx(), row.user_id).await?;
        if !user.is_some_and(|u| u.disabled_at.is_none() && u.email_verified) {
            return Err(login_rejected());
        }
        passkey.update_credential(&result);
        let stored = serde_json::to_string(&passkey)
            .map_err(|e| EngineError::Internal(format!("passkey: {e}")))?;
        // Conditional on the passkey read above: another sign-in with it that committed in
        // between (another process) wins, and this one is refused.
        if !store::passkeys::record_use(at.tx(), row.id, &row.passkey, &stored, now).await? {
            return Err(login_rejected());
        }
        sessions::start_in(at, row.user_id, "passkey").await
    }
}

/// The signature counter of a stored passkey (webauthn-rs keeps it private; its JSON
/// has it at `cred.counter`).
fn stored_counter(passkey_json: &str) -> u32 {
    serde_json::from_str::<serde_json::Value>(passkey_json)
        .ok()
        .and_then(|v| {
            v.pointer("/cred/counter")
                .and_then(serde_json::Value::as_u64)
        })
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(0)
}

struct RenamePasskey {
    user_id: Uuid,
    passkey_id: Uuid,
    name: String,
}

impl AccountTransition for RenamePasskey {
    type Out = PasskeyView;

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<PasskeyView, EngineError> {
        let RenamePasskey {
            user_id,
            passkey_id,
            name,
        } = self;
        if !store::passkeys::rename(at.tx(), user_id, passkey_id, &name).await? {
            return Err(EngineError::NotFound { what: "passkey" });
        }
        let row = store::passkeys::find_tx(at.tx(), passkey_id)
            .await?
            .ok_or(EngineError::NotFound { what: "passkey" })?;
        at.audit(
            Some(user_id),
            "passkey.renamed",
            user_id,
            json!({"passkey_id": passkey_id, "name": name}),
        );
        Ok(row.into())
    }
}

struct DeletePasskey {
    user_id: Uuid,
    passkey_id: Uuid,
}

impl AccountTransition for DeletePasskey {
    type Out = ();

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<(), EngineError> {
        let (user_id, passkey_id) = (self.user_id, self.passkey_id);
        if !store::passkeys::delete(at.tx(), user_id, passkey_id).await? {
            return Err(EngineError::NotFound { what: "passkey" });
        }
        at.audit(
            Some(user_id),
            "passkey.deleted",
            user_id,
            json!({"passkey_id": passkey_id}),
        );
        Ok(())
    }
}
