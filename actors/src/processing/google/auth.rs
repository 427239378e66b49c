//! OAuth access tokens for Google APIs, from a service-account key file (the JSON that
//! `GOOGLE_APPLICATION_CREDENTIALS` names) by the JWT bearer grant (RFC 7523):
//!
//! 1. sign a JWT with the key's RSA private key (RS256): `iss` = `client_email`,
//!    `scope` = [`CLOUD_PLATFORM_SCOPE`], `aud` = `token_uri`, `iat` = now,
//!    `exp` = `iat` + 3600;
//! 2. POST it form-encoded to `token_uri`
//!    (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>`);
//! 3. keep the `access_token` it answers until [`REFRESH_MARGIN`] before its
//!    `expires_in` runs out.
//!
//! One token is shared by every clone of a [`GoogleAuth`]; a tokio mutex makes
//! concurrent callers wait for a single refresh instead of each asking for a token.
//!
//! Why not `google-cloud-auth` (already in the tree, for storage)? Its service-account
//! credentials mint self-signed JWTs locally and never call `token_uri`, so the token
//! exchange cannot be pointed at a test server, and the scope/audience choice is made
//! inside the crate. The exchange is small enough to own, and testable end to end.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{
    API_OAUTH, CODE_AUTH_FAILED, CODE_CREDENTIALS_INVALID, CODE_RATE_LIMITED, CODE_UNAVAILABLE,
    RemoteError, bad_response, clip, record_duration, record_error, transport_error,
};

/// The scope of every token: all Cloud APIs the service account's roles allow.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// `token_uri` when a key file has none.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The OAuth grant type of a signed JWT assertion (RFC 7523).
pub const JWT_BEARER_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// A cached token is replaced this long before it expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Lifetime of the signed assertion (Google's maximum).
pub const ASSERTION_LIFETIME_SECS: u64 = 3600;
/// Budget of one token request.
pub const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// `expires_in` assumed when the token endpoint leaves it out.
const DEFAULT_EXPIRES_IN_SECS: u64 = 3600;
/// [`JWT_BEARER_GRANT_TYPE`] form-encoded (`:` is `%3A`).
const GRANT_TYPE_FORM: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

/// A bearer token. Its `Debug` does not show it.
#[derive(Clone)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(Arc::from(token.into()))
    }

    /// The token itself, for an `Authorization: Bearer` header.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(..)")
    }
}

/// The parts of a service-account key file the token exchange needs. The private key is
/// parsed on load; its `Debug` shows only the account.
#[derive(Clone)]
pub struct ServiceAccountKey {
    client_email: String,
    private_key_id: Option<String>,
    token_uri: String,
    key: EncodingKey,
}

/// A key file as Google issues it (only the fields used here).
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

impl ServiceAccountKey {
    /// Parses a service-account key file's JSON. The private key is checked by signing a
    /// throwaway assertion, so a bad key fails here rather than on the first request.
    pub fn from_json(json: &str) -> Result<Self, RemoteError> {
        let invalid = |why: String| RemoteError::rejected(CODE_CREDENTIALS_INVALID, why);
        let file: KeyFile = serde_json::from_str(json)
            .map_err(|err| invalid(format!("the key file is not valid JSON: {err}")))?;
        if let Some(kind) = file.kind.as_deref()
            && kind != "service_account"
        {
            return Err(invalid(format!(
                "the key file is of type {:?}, not \"service_account\"",
                clip(kind)
            )));
        }
        let client_email = file
            .client_email
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("the key file has no client_email".into()))?;
        let pem = file
            .private_key
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("the key file has no private_key".into()))?;
        let key = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|err| invalid(format!("the private_key is not an RSA PEM key: {err}")))?;
        let parsed = Self {
            client_email,
            private_key_id: file.private_key_id.filter(|s| !s.is_empty()),
            token_uri: file
                .token_uri
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned()),
            key,
        };
        parsed.assertion(unix_now())?;
        Ok(parsed)
    }

    /// Reads and parses a key file.
    pub async fn from_file(path: impl AsRef<Path>) -> Result<Self, RemoteError> {
        let path = path.as_ref();
        let json = tokio::fs::read_to_string(path).await.map_err(|err| {
            RemoteError::rejected(
                CODE_CREDENTIALS_INVALID,
                format!("cannot read the key file {}: {err}", path.display()),
            )
        })?;
        Self::from_json(&json)
    }

    /// Another token endpoint (an emulator, a test server).
    pub fn with_token_uri(mut self, token_uri: impl Into<String>) -> Self {
        self.token_uri = token_uri.into();
        self
    }

    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The signed JWT asking for a [`CLOUD_PLATFORM_SCOPE`] token, issued at `iat`.
    fn assertion(&self, iat: u64) -> Result<String, RemoteError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.private_key_id.clone();
        let claims = AssertionClaims {
            iss: &self.client_email,
            scope: CLOUD_PLATFORM_SCOPE,
            aud: &self.token_uri,
            iat,
            exp: iat + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|err| {
            RemoteError::rejected(
                CODE_CREDENTIALS_INVALID,
                format!("cannot sign with the service account's private key: {err}"),
            )
        })
    }
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// Where access tokens come from. Cheap to clone; clones share the cached token.
#[derive(Clone)]
pub struct GoogleAuth {
    source: Arc<Source>,
}

enum Source {
    Static(AccessToken),
    ServiceAccount(ServiceAccountTokens),
}

struct ServiceAccountTokens {
    http: reqwest::Client,
    key: ServiceAccountKey,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// The token endpoint's error (RFC 6749 §5.2).
#[derive(Default, Deserialize)]
#[serde(default)]
struct TokenError {
    error: String,
    error_description: String,
}

impl GoogleAuth {
    /// Always the same token (tests, or a token minted elsewhere).
    pub fn static_token(token: impl Into<String>) -> Self {
        Self {
            source: Arc::new(Source::Static(AccessToken::new(token))),
        }
    }

    /// Tokens exchanged for the service account's signed assertions, over `http`.
    pub fn service_account(http: reqwest::Client, key: ServiceAccountKey) -> Self {
        Self {
            source: Arc::new(Source::ServiceAccount(ServiceAccountTokens {
                http,
                key,
                cached: Mutex::new(None),
            })),
        }
    }

    /// [`GoogleAuth::service_account`] with the key read from a key file.
    pub async fn from_key_file(
        http: reqwest::Client,
        path: impl AsRef<Path>,
    ) -> Result<Self, RemoteError> {
        Ok(Self::service_account(
            http,
            ServiceAccountKey::from_file(path).await?,
        ))
    }

    /// A token valid for at least [`REFRESH_MARGIN`] more (the cached one, or a new one).
    pub async fn access_token(&self) -> Result<AccessToken, RemoteError> {
        match &*self.source {
            Source::Static(token) => Ok(token.clone()),
            Source::ServiceAccount(tokens) => tokens.token().await,
        }
    }

    /// Forgets the cached token (an API refused it); the next call fetches a new one.
    pub async fn invalidate(&self) {
        if let Source::ServiceAccount(tokens) = &*self.source {
            *tokens.cached.lock().await = None;
        }
    }

    /// Whether [`GoogleAuth::invalidate`] can lead to a different token.
    pub(super) fn renewable(&self) -> bool {
        matches!(&*self.source, Source::ServiceAccount(_))
    }
}

impl fmt::Debug for GoogleAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.source {
            Source::Static(_) => f.write_str("GoogleAuth::Static(..)"),
            Source::ServiceAccount(tokens) => f
                .debug_tuple("GoogleAuth::ServiceAccount")
                .field(&tokens.key)
                .finish(),
        }
    }
}

impl ServiceAccountTokens {
    async fn token(&self) -> Result<AccessToken, RemoteError> {
        // Held across the exchange: concurrent callers wait for this one refresh.
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let asked_at = Instant::now();
        let (token, lifetime) = self.exchange().await.inspect_err(|err| {
            record_error(API_OAUTH, err);
        })?;
        *cached = Some(Cached {
            token: token.clone(),
            refresh_at: asked_at + lifetime.saturating_sub(REFRESH_MARGIN),
        });
        Ok(token)
    }

    /// One JWT-bearer exchange at `token_uri`: the token and how long it lives.
    async fn exchange(&self) -> Result<(AccessToken, Duration), RemoteError> {
        const SERVICE: &str = "the OAuth token endpoint";
        let assertion = self.key.assertion(unix_now())?;
        // A JWT is base64url segments and dots: nothing in it needs form-encoding.
        let body = format!("grant_type={GRANT_TYPE_FORM}&assertion={assertion}");
        let started = Instant::now();
        let answer = match self
            .http
            .post(&self.key.token_uri)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .timeout(TOKEN_REQUEST_TIMEOUT)
            .body(body)
            .send()
            .await
        {
            Ok(response) => {
                let status = response.status();
                response.bytes().await.map(|bytes| (status, bytes))
            }
            Err(err) => Err(err),
        };
        record_duration(API_OAUTH, started);
        let (status, bytes) = answer.map_err(|err| transport_error(SERVICE, &err))?;
        if !status.is_success() {
            return Err(token_error(status, &bytes));
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|err| bad_response(SERVICE, &err))?;
        if parsed.access_token.is_empty() {
            return Err(RemoteError::transient(
                super::CODE_BAD_RESPONSE,
                "the OAuth token endpoint answered an empty access_token",
            ));
        }
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(DEFAULT_EXPIRES_IN_SECS));
        Ok((AccessToken::new(parsed.access_token), lifetime))
    }
}

/// Classifies a failed token request: the server's trouble is retryable, a refused
/// assertion (`invalid_grant`, a deleted key, a wrong clock) is final.
fn token_error(status: StatusCode, body: &[u8]) -> RemoteError {
    let parsed: TokenError = serde_json::from_slice(body).unwrap_or_default();
    let detail = match (parsed.error.is_empty(), parsed.error_description.is_empty()) {
        (false, false) => format!("{}: {}", parsed.error, parsed.error_description),
        (false, true) => parsed.error,
        (true, false) => parsed.error_description,
        (true, true) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    let message = if detail.is_empty() {
        format!("the OAuth token endpoint answered {status}")
    } else {
        format!(
            "the OAuth token endpoint answered {status}: {}",
            clip(&detail)
        )
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        RemoteError::transient(CODE_RATE_LIMITED, message)
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        RemoteError::transient(CODE_UNAVAILABLE, message)
    } else {
        RemoteError::rejected(CODE_AUTH_FAILED, message)
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::super::fake::{self, FakeServer, Reply, TEST_CLIENT_EMAIL};
    use super::*;

    #[tokio::test]
    async fn token_is_exchanged_once_and_cached() {
        let server = FakeServer::start(|req| {
            assert_eq!(req.path, "/token");
            fake::token_reply(req, "ya29.first", 3600)
        })
        .await;
        let auth = fake::service_account_auth(&server);
        let a = auth.access_token().await.unwrap();
        let b = auth.clone().access_token().await.unwrap();
        assert_eq!(a.secret(), "ya29.first");
        assert_eq!(b.secret(), "ya29.first");
        assert_eq!(server.count("/token"), 1);

        // The request is the documented form with a valid assertion.
        let req = &server.requests()[0];
        assert_eq!(req.method, "POST");
        assert_eq!(
            req.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        let claims = fake::verify_assertion(req, &server.url("/token"));
        assert_eq!(claims["iss"], TEST_CLIENT_EMAIL);
        assert_eq!(claims["scope"], CLOUD_PLATFORM_SCOPE);
        assert_eq!(claims["aud"], server.url("/token"));
        let iat = claims["iat"].as_u64().unwrap();
        assert_eq!(claims["exp"].as_u64().unwrap(), iat + 3600);
        assert!(iat.abs_diff(unix_now()) < 60);
    }

    #[tokio::test]
    async fn short_lived_token_is_refreshed() {
        let n = Arc::new(AtomicUsize::new(0));
        let counter = n.clone();
        let server = FakeServer::start(move |req| {
            let i = counter.fetch_add(1, Ordering::SeqCst);
            // Lives less than the refresh margin: never reused.
            fake::token_reply(req, &format!("ya29.t{i}"), 30)
        })
        .await;
        let auth = fake::service_account_auth(&server);
        assert_eq!(auth.access_token().await.unwrap().secret(), "ya29.t0");
        assert_eq!(auth.access_token().await.unwrap().secret(), "ya29.t1");
        auth.invalidate().await;
        assert_eq!(auth.access_token().await.unwrap().secret(), "ya29.t2");
    }

    #[tokio::test]
    async fn refused_assertion_is_final_and_outage_retryable() {
        let n = Arc::new(AtomicUsize::new(0));
        let counter = n.clone();
        let server = FakeServer::start(move |_| match counter.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::json(
                400,
                json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
            ),
            _ => Reply::text(503, "try later"),
        })
        .await;
        let auth = fake::service_account_auth(&server);
        let err = auth.access_token().await.unwrap_err();
        assert_eq!((err.code, err.retryable), (CODE_AUTH_FAILED, false));
        assert!(
            err.message
                .contains("invalid_grant: Invalid JWT Signature."),
            "{err}"
        );
        let err = auth.access_token().await.unwrap_err();
        assert_eq!((err.code, err.retryable), (CODE_UNAVAILABLE, true));
    }

    #[tokio::test]
    async fn unreachable_token_endpoint_is_retryable() {
        let key =
            ServiceAccountKey::from_json(&fake::key_file_json("http://127.0.0.1:9/token")).unwrap();
        let auth = GoogleAuth::service_account(reqwest::Client::new(), key);
        let err = auth.access_token().await.unwrap_err();
        assert_eq!((err.code, err.retryable), (CODE_UNAVAILABLE, true), "{err}");
    }

    #[tokio::test]
    async fn key_files_are_checked_on_load() {
        let good = fake::key_file_json("https://oauth2.googleapis.com/token");
        let key = ServiceAccountKey::from_json(&good).unwrap();
        assert_eq!(key.client_email(), TEST_CLIENT_EMAIL);
        assert!(!format!("{key:?}").contains("PRIVATE"));

        let mut no_uri: serde_json::Value = serde_json::from_str(&good).unwrap();
        no_uri.as_object_mut().unwrap().remove("token_uri");
        let key = ServiceAccountKey::from_json(&no_uri.to_string()).unwrap();
        assert_eq!(key.token_uri(), DEFAULT_TOKEN_URI);

        let user = json!({"type": "authorized_user", "client_id": "x"}).to_string();
        let err = ServiceAccountKey::from_json(&user).unwrap_err();
        assert_eq!((err.code, err.retryable), (CODE_CREDENTIALS_INVALID, false));

        let bad_key = json!({
            "type": "service_account",
            "client_email": "a@b",
            "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        })
        .to_string();
        let err = ServiceAccountKey::from_json(&bad_key).unwrap_err();
        assert_eq!(err.code, CODE_CREDENTIALS_INVALID);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(&path, &good).unwrap();
        let auth = GoogleAuth::from_key_file(reqwest::Client::new(), &path)
            .await
            .unwrap();
        assert!(auth.renewable());
        let err = ServiceAccountKey::from_file(dir.path().join("missing.json"))
            .await
            .unwrap_err();
        assert_eq!(err.code, CODE_CREDENTIALS_INVALID);
    }

    #[tokio::test]
    async fn static_token_is_returned_as_is() {
        let auth = GoogleAuth::static_token("abc");
        assert_eq!(auth.access_token().await.unwrap().secret(), "abc");
        assert!(!auth.renewable());
        assert_eq!(format!("{auth:?}"), "GoogleAuth::Static(..)");
    }
}
