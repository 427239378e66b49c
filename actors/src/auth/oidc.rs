//! The OpenID Connect relying party behind Google sign-in: discovery, the provider's
//! signing keys (JWKS), the authorization-code exchange, and ID token verification.
//!
//! Everything here is I/O and checks; no state transition. The engine calls it outside
//! the accounts actor (docs/ARCHITECTURE.md, rule 9) and hands the verified claims to the actor.
//!
//! The ID token is checked as OpenID Connect Core §3.1.3.7 asks: an RS256 signature by
//! a key of the provider's JWKS (fetched on first use, cached for an hour, fetched again
//! once when a token names an unknown `kid`: the provider rotated its keys), `iss` equal
//! to the configured issuer, `aud` containing our client id (and `azp`, when present or
//! when there are several audiences, equal to it), `exp` in the future and `iat` not in
//! it (by the injected clock, with a minute of leeway), and `nonce` equal to the one
//! kept for this sign-in. No other algorithm verifies: `none`, HMAC (the classic
//! public-key-as-secret confusion) and every other are refused before the key is used.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, DecodingKey, Validation, decode, decode_header,
    jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OnceCell};

/// What we ask the provider for.
pub const SCOPES: &str = "openid email profile";
/// How long the discovery document is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long the signing keys are reused (an unknown `kid` fetches them sooner).
const JWKS_TTL: Duration = Duration::from_secs(3600);
/// Budget of one request to the provider.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Tolerance for the provider's clock and ours.
const CLOCK_SKEW_SECS: i64 = 60;
/// Google's ID tokens name their issuer with or without the scheme.
const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const GOOGLE_ISSUER_BARE: &str = "accounts.google.com";

/// Google sign-in: the OAuth client and where browsers go (`EngineConfig::google_signin`).
#[derive(Debug, Clone)]
pub struct GoogleSignInConfig {
    /// `GOOGLE_CLIENT_ID`.
    pub client_id: String,
    /// `GOOGLE_CLIENT_SECRET`.
    pub client_secret: secrecy::SecretString,
    /// `GOOGLE_ISSUER_URL` (no trailing slash); discovery is at
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// `GOOGLE_REDIRECT_URI`: our callback, as registered with the provider.
    pub redirect_uri: String,
    /// `GOOGLE_SIGNIN_REDIRECT_URL`: the frontend page the browser is sent to afterwards,
    /// with `#code=…` or `#error=…`.
    pub frontend_url: String,
    /// The provider's discovery document and keys, fetched on first use; shared by
    /// clones of this configuration.
    pub provider: OidcProvider,
}

/// Why talking to the provider failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached, or answered something unusable: try later.
    #[error("the sign-in provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the authorization code (`invalid_grant`, a wrong secret, a
    /// PKCE verifier that does not match).
    #[error("the sign-in provider refused the authorization code: {0}")]
    CodeRejected(String),
    /// The ID token failed a check.
    #[error("the ID token is not valid: {0}")]
    InvalidToken(String),
}

/// The parts of the provider's discovery document we use.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// What to expect of an ID token.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The configured issuer (`GOOGLE_ISSUER_URL`).
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce sent with this sign-in's authorization request.
    pub nonce: &'a str,
}

/// Who the provider says signed in, from a verified ID token.
#[derive(Debug, Clone)]
pub struct IdClaims {
    /// The configured issuer (normalised: Google's bare `accounts.google.com` too).
    pub issuer: String,
    /// The provider's stable id of the person's account.
    pub subject: String,
    pub email: Option<String>,
    /// Whether the provider vouches that the person controls `email`.
    pub email_verified: bool,
    pub name: Option<String>,
}

/// A random URL-safe string of 256 bits: a state, a nonce, or a PKCE verifier (43
/// characters of the verifier's alphabet, RFC 7636 §4.1).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE `S256` challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The provider's endpoints and keys, fetched on first use and shared by clones (one
/// per configured provider, held in the engine's configuration).
#[derive(Clone, Default)]
pub struct OidcProvider(Arc<Inner>);

#[derive(Default)]
struct Inner {
    http: OnceCell<reqwest::Client>,
    discovery: Mutex<Option<(Discovery, Instant)>>,
    jwks: Mutex<Option<(JwkSet, Instant)>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OidcProvider")
    }
}

/// An `https` URL, or `http` on a loopback host (a local provider in tests).
pub fn acceptable_url(raw: &str) -> bool {
    reqwest::Url::parse(raw).is_ok_and(|u| match (u.scheme(), u.host_str()) {
        ("https", Some(_)) => true,
        ("http", Some(host)) => matches!(host, "localhost" | "127.0.0.1" | "[::1]"),
        _ => false,
    })
}

impl OidcProvider {
    async fn http(&self) -> Result<&reqwest::Client, OidcError> {
        self.0
            .http
            .get_or_try_init(|| async {
                reqwest::Client::builder()
                    .timeout(HTTP_TIMEOUT)
                    .connect_timeout(HTTP_TIMEOUT)
                    // The provider's endpoints answer directly; a redirect is not followed.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| {
                        OidcError::Unavailable(format!("cannot build an HTTP client: {e}"))
                    })
            })
            .await
    }

    /// The discovery document of `issuer` (`{issuer}/.well-known/openid-configuration`),
    /// cached for a day. Its `issuer` must be the configured one, and its endpoints
    /// `https` (or loopback `http`).
    pub async fn discovery(&self, issuer: &str) -> Result<Discovery, OidcError> {
        let mut cached = self.0.discovery.lock().await;
        if let Some((doc, at)) = cached.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(doc.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc: Discovery = self.get_json(&url).await?;
        if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(OidcError::Unavailable(format!(
                "the discovery document names issuer {:?}, not {issuer:?}",
                clip(&doc.issuer)
            )));
        }
        for (name, value) in [
            ("authorization_endpoint", &doc.authorization_endpoint),
            ("token_endpoint", &doc.token_endpoint),
            ("jwks_uri", &doc.jwks_uri),
        ] {
            if !acceptable_url(value) {
                return Err(OidcError::Unavailable(format!(
                    "the discovery document's {name} is not an https URL: {:?}",
                    clip(value)
                )));
            }
        }
        *cached = Some((doc.clone(), Instant::now()));
        Ok(doc)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let resp = self
            .http()
            .await?
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| OidcError::Unavailable(format!("GET {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(OidcError::Unavailable(format!(
                "GET {url}: status {}",
                resp.status()
            )));
        }
        resp.json()
            .await
            .map_err(|e| OidcError::Unavailable(format!("GET {url}: unreadable answer: {e}")))
    }

    /// The URL of the provider's sign-in page for this sign-in.
    pub fn authorization_url(
        discovery: &Discovery,
        client_id: &str,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<String, OidcError> {
        let mut url = reqwest::Url::parse(&discovery.authorization_endpoint)
            .map_err(|e| OidcError::Unavailable(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", SCOPES)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &pkce_challenge(pkce_verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Exchange an authorization code at the token endpoint; the raw ID token.
    pub async fn exchange_code(
        &self,
        discovery: &Discovery,
        exchange: CodeExchange<'_>,
    ) -> Result<String, OidcError> {
        #[derive(Deserialize)]
        struct TokenAnswer {
            id_token: Option<String>,
        }
        #[derive(Deserialize)]
        struct ErrorAnswer {
            error: Option<String>,
        }
        let form = [
            ("grant_type", "authorization_code"),
            ("code", exchange.code),
            ("redirect_uri", exchange.redirect_uri),
            ("client_id", exchange.client_id),
            ("client_secret", exchange.client_secret),
            ("code_verifier", exchange.pkce_verifier),
        ];
        let resp = self
            .http()
            .await?
            .post(&discovery.token_endpoint)
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| OidcError::Unavailable(format!("token endpoint: {e}")))?;
        let status = resp.status();
        if status == reqwest::StatusCode::BAD_REQUEST || status == reqwest::StatusCode::UNAUTHORIZED
        {
            let error = resp
                .json::<ErrorAnswer>()
                .await
                .ok()
                .and_then(|a| a.error)
                .unwrap_or_else(|| status.to_string());
            return Err(OidcError::CodeRejected(clip(&error)));
        }
        if !status.is_success() {
            return Err(OidcError::Unavailable(format!(
                "token endpoint: status {status}"
            )));
        }
        let answer: TokenAnswer = resp.json().await.map_err(|e| {
            OidcError::Unavailable(format!("token endpoint: unreadable answer: {e}"))
        })?;
        answer.id_token.filter(|t| !t.is_empty()).ok_or_else(|| {
            OidcError::InvalidToken("the token endpoint returned no id_token".into())
        })
    }

    /// Verify an ID token (see the module documentation); `now` is the injected clock's
    /// Unix time.
    pub async fn verify_id_token(
        &self,
        discovery: &Discovery,
        token: &str,
        expected: &Expected<'_>,
        now: i64,
    ) -> Result<IdClaims, OidcError> {
        let header =
            decode_header(token).map_err(|e| OidcError::InvalidToken(format!("header: {e}")))?;
        if header.alg != Algorithm::RS256 {
            return Err(OidcError::InvalidToken(format!(
                "algorithm {:?} is not RS256",
                header.alg
            )));
        }
        let kid = header.kid.as_deref();
        let key = match select_key(&self.keys(discovery, false).await?, kid) {
            Some(key) => key,
            // Unknown key: the provider may have rotated its keys since we fetched them.
            None => select_key(&self.keys(discovery, true).await?, kid).ok_or_else(|| {
                OidcError::InvalidToken(format!(
                    "no signing key {:?} in the provider's JWKS",
                    kid.map(clip)
                ))
            })?,
        };
        check_token(token, &key, expected, now)
    }

    /// The provider's keys: cached for an hour, or fetched now (`refresh`).
    async fn keys(&self, discovery: &Discovery, refresh: bool) -> Result<JwkSet, OidcError> {
        let mut cached = self.0.jwks.lock().await;
        if !refresh
            && let Some((keys, at)) = cached.as_ref()
            && at.elapsed() < JWKS_TTL
        {
            return Ok(keys.clone());
        }
        let raw: serde_json::Value = self.get_json(&discovery.jwks_uri).await?;
        // Keys of kinds this library cannot read are skipped, not a reason to fail.
        let keys = JwkSet {
            keys: raw
                .get("keys")
                .and_then(serde_json::Value::as_array)
                .ok_or_else(|| OidcError::Unavailable("the JWKS has no keys array".into()))?
                .iter()
                .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
                .collect(),
        };
        *cached = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }
}

/// The inputs of an authorization-code exchange.
#[derive(Debug, Clone, Copy)]
pub struct CodeExchange<'a> {
    pub code: &'a str,
    pub pkce_verifier: &'a str,
    pub redirect_uri: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
}

/// The RSA signing key `kid` of the set (the only usable one when the token names none).
pub fn select_key(keys: &JwkSet, kid: Option<&str>) -> Option<DecodingKey> {
    let usable: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| matches!(k.algorithm, AlgorithmParameters::RSA(_)))
        .filter(|k| {
            matches!(
                k.common.public_key_use,
                None | Some(PublicKeyUse::Signature)
            )
        })
        .filter(|k| matches!(k.common.key_algorithm, None | Some(KeyAlgorithm::RS256)))
        .collect();
    let jwk = match kid {
        Some(kid) => usable
            .into_iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid))?,
        None if usable.len() == 1 => usable[0],
        None => return None,
    };
    DecodingKey::from_jwk(jwk).ok()
}

/// An ID token's claims as they arrive.
#[derive(Deserialize)]
struct RawClaims {
    sub: String,
    aud: serde_json::Value,
    exp: i64,
    iat: Option<i64>,
    nonce: Option<String>,
    azp: Option<String>,
    email: Option<String>,
    /// Google has sent it as a string (`"true"`) at times.
    email_verified: Option<serde_json::Value>,
    name: Option<String>,
}

/// Check an ID token's signature with `key`, then its claims.
pub fn check_token(
    token: &str,
    key: &DecodingKey,
    expected: &Expected<'_>,
    now: i64,
) -> Result<IdClaims, OidcError> {
    let invalid = |why: String| OidcError::InvalidToken(why);
    let issuer = expected.issuer.trim_end_matches('/');
    let mut issuers = vec![issuer];
    if issuer == GOOGLE_ISSUER {
        issuers.push(GOOGLE_ISSUER_BARE);
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.algorithms = vec![Algorithm::RS256];
    validation.set_issuer(&issuers);
    validation.set_audience(&[expected.client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Time is checked below with the injected clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let claims = decode::<RawClaims>(token, key, &validation)
        .map_err(|e| invalid(format!("{e}")))?
        .claims;
    if now > claims.exp + CLOCK_SKEW_SECS {
        return Err(invalid("expired".into()));
    }
    match claims.iat {
        Some(iat) if iat <= now + CLOCK_SKEW_SECS => {}
        Some(_) => return Err(invalid("issued in the future".into())),
        None => return Err(invalid("no iat".into())),
    }
    if claims.nonce.as_deref() != Some(expected.nonce) {
        return Err(invalid("the nonce is not this sign-in's".into()));
    }
    let audiences = match &claims.aud {
        serde_json::Value::Array(list) => list.len(),
        _ => 1,
    };
    match claims.azp.as_deref() {
        Some(azp) if azp != expected.client_id => {
            return Err(invalid("azp is another client".into()));
        }
        None if audiences > 1 => return Err(invalid("several audiences and no azp".into())),
        _ => {}
    }
    if claims.sub.is_empty() || claims.sub.len() > 255 {
        return Err(invalid("sub is empty or too long".into()));
    }
    let email_verified = match &claims.email_verified {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    Ok(IdClaims {
        issuer: issuer.to_owned(),
        subject: claims.sub,
        email: claims.email,
        email_verified,
        name: claims.name,
    })
}

/// A provider's text, shortened for messages and logs.
fn clip(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    };

    use aws_lc_rs::{
        encoding::{AsDer, Pkcs8V1Der},
        rsa::{KeyPair, KeySize},
        signature::KeyPair as _,
    };
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::{Value, json};

    use super::*;

    const ISSUER: &str = "https://accounts.google.com";
    const CLIENT: &str = "client-1.apps.googleusercontent.com";
    const NONCE: &str = "nonce-of-this-sign-in";
    const NOW: i64 = 1_800_000_000;

    struct Key {
        encoding: EncodingKey,
        jwk: Value,
    }

    fn key(kid: &str) -> Key {
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let der: Pkcs8V1Der = pair.as_der().unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD
                .encode(der.as_ref())
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        );
        let public = pair.public_key();
        Key {
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            jwk: json!({
                "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            }),
        }
    }

    /// Two keys, made once: "k1" (the provider's) and "k2" (someone else's).
    fn keys() -> &'static (Key, Key) {
        static KEYS: OnceLock<(Key, Key)> = OnceLock::new();
        KEYS.get_or_init(|| (key("k1"), key("k2")))
    }

    fn set(keys: &[&Key]) -> JwkSet {
        serde_json::from_value(
            json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}),
        )
        .unwrap()
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": CLIENT, "azp": CLIENT, "sub": "1234567890",
            "email": "ada@example.org", "email_verified": true, "name": "Ada",
            "nonce": NONCE, "iat": NOW - 10, "exp": NOW + 3590,
        })
    }

    fn sign(claims: &Value, key: &Key, kid: &str) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        encode(&header, claims, &key.encoding).unwrap()
    }

    fn expected() -> Expected<'static> {
        Expected {
            issuer: ISSUER,
            client_id: CLIENT,
            nonce: NONCE,
        }
    }

    fn check(claims: &Value) -> Result<IdClaims, OidcError> {
        let (k1, _) = keys();
        let token = sign(claims, k1, "k1");
        let key = select_key(&set(&[k1]), Some("k1")).unwrap();
        check_token(&token, &key, &expected(), NOW)
    }

    fn with(change: &[(&str, Value)]) -> Value {
        let mut c = claims();
        for (k, v) in change {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(*k);
            } else {
                c[*k] = v.clone();
            }
        }
        c
    }

    #[test]
    fn pkce_challenge_is_rfc_7636_s256() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let verifier = random_token();
        assert_eq!(verifier.len(), 43);
        assert!(
            verifier
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(verifier, random_token());
    }

    #[test]
    fn a_good_id_token_verifies() {
        let c = check(&claims()).unwrap();
        assert_eq!(c.subject, "1234567890");
        assert_eq!(c.issuer, ISSUER);
        assert_eq!(c.email.as_deref(), Some("ada@example.org"));
        assert!(c.email_verified);
        assert_eq!(c.name.as_deref(), Some("Ada"));
        // Google's bare issuer, a string email_verified, several audiences with azp.
        let c = check(&with(&[
            ("iss", json!("accounts.google.com")),
            ("email_verified", json!("true")),
            ("aud", json!([CLIENT, "other"])),
        ]))
        .unwrap();
        assert!(c.email_verified);
        assert_eq!(c.issuer, ISSUER);
        let c = check(&with(&[("email_verified", json!(false))])).unwrap();
        assert!(!c.email_verified);
    }

    #[test]
    fn id_tokens_failing_a_check_are_refused() {
        let cases = [
            ("wrong nonce", with(&[("nonce", json!("another"))])),
            ("no nonce", with(&[("nonce", Value::Null)])),
            ("wrong audience", with(&[("aud", json!("other-client"))])),
            (
                "wrong issuer",
                with(&[("iss", json!("https://evil.example"))]),
            ),
            ("expired", with(&[("exp", json!(NOW - 61))])),
            ("no exp", with(&[("exp", Value::Null)])),
            ("string exp", with(&[("exp", json!("2100000000"))])),
            ("issued in the future", with(&[("iat", json!(NOW + 600))])),
            ("no iat", with(&[("iat", Value::Null)])),
            ("azp of another client", with(&[("azp", json!("other"))])),
            (
                "several audiences, no azp",
                with(&[("aud", json!([CLIENT, "other"])), ("azp", Value::Null)]),
            ),
            ("no sub", with(&[("sub", Value::Null)])),
            ("empty sub", with(&[("sub", json!(""))])),
        ];
        for (what, claims) in cases {
            assert!(
                matches!(check(&claims), Err(OidcError::InvalidToken(_))),
                "{what} was accepted"
            );
        }
    }

    #[test]
    fn only_rs256_signatures_by_the_named_key_verify() {
        let (k1, k2) = keys();
        let key = select_key(&set(&[k1]), Some("k1")).unwrap();
        // Signed by another key under k1's id.
        let forged = sign(&claims(), k2, "k1");
        assert!(check_token(&forged, &key, &expected(), NOW).is_err());
        // HS256 with the public modulus as the secret (algorithm confusion), and `none`.
        let n = k1.jwk["n"].as_str().unwrap();
        let hs = encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(n.as_bytes()),
        )
        .unwrap();
        assert!(check_token(&hs, &key, &expected(), NOW).is_err());
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        let none = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
        assert!(check_token(&none, &key, &expected(), NOW).is_err());
        // Tampered claims.
        let good = sign(&claims(), k1, "k1");
        let parts: Vec<&str> = good.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(with(&[("sub", json!("victim"))]).to_string());
        let tampered = format!("{}.{evil}.{}", parts[0], parts[2]);
        assert!(check_token(&tampered, &key, &expected(), NOW).is_err());
    }

    #[test]
    fn keys_are_chosen_by_kid_and_use() {
        let (k1, k2) = keys();
        let both = set(&[k1, k2]);
        assert!(select_key(&both, Some("k1")).is_some());
        assert!(select_key(&both, Some("k3")).is_none());
        // Without a kid, only a single candidate will do.
        assert!(select_key(&both, None).is_none());
        assert!(select_key(&set(&[k1]), None).is_some());
        // An encryption key is not a signing key.
        let mut enc = k1.jwk.clone();
        enc["use"] = json!("enc");
        let enc: JwkSet = serde_json::from_value(json!({"keys": [enc]})).unwrap();
        assert!(select_key(&enc, Some("k1")).is_none());
    }

    #[test]
    fn only_https_or_loopback_http_urls_are_acceptable() {
        assert!(acceptable_url("https://accounts.google.com"));
        assert!(acceptable_url("http://127.0.0.1:8080/token"));
        assert!(acceptable_url("http://localhost/x"));
        assert!(acceptable_url("http://[::1]:9/x"));
        assert!(!acceptable_url("http://accounts.google.com"));
        assert!(!acceptable_url("http://127.0.0.1.nip.io/"));
        assert!(!acceptable_url("ftp://localhost/"));
        assert!(!acceptable_url("not a url"));
    }

    #[test]
    fn the_authorization_url_carries_every_parameter() {
        let d = Discovery {
            issuer: ISSUER.into(),
            authorization_endpoint: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            token_endpoint: "https://oauth2.googleapis.com/token".into(),
            jwks_uri: "https://www.googleapis.com/oauth2/v3/certs".into(),
        };
        let url = OidcProvider::authorization_url(
            &d,
            CLIENT,
            "https://data.example.org/api/auth/google/callback",
            "st",
            "no",
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        )
        .unwrap();
        let parsed = reqwest::Url::parse(&url).unwrap();
        let q: std::collections::HashMap<String, String> =
            parsed.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], CLIENT);
        assert_eq!(q["scope"], "openid email profile");
        assert_eq!(q["state"], "st");
        assert_eq!(q["nonce"], "no");
        assert_eq!(
            q["code_challenge"],
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(
            q["redirect_uri"],
            "https://data.example.org/api/auth/google/callback"
        );
        assert!(!url.contains("code_verifier"));
    }

    /// A provider on loopback serving discovery and a JWKS that can be rotated.
    async fn provider(
        issuer_claim: Option<&str>,
        jwks: Arc<std::sync::Mutex<Value>>,
        fetches: Arc<AtomicUsize>,
    ) -> String {
        use poem::{
            EndpointExt, Route, Server, get, handler,
            listener::{Acceptor, Listener, TcpListener},
            web::Data,
        };
        #[derive(Clone)]
        struct S {
            issuer: String,
            jwks: Arc<std::sync::Mutex<Value>>,
            fetches: Arc<AtomicUsize>,
        }
        #[handler]
        fn discovery(s: Data<&S>) -> poem::web::Json<Value> {
            let i = &s.issuer;
            poem::web::Json(json!({
                "issuer": i, "authorization_endpoint": format!("{i}/auth"),
                "token_endpoint": format!("{i}/token"), "jwks_uri": format!("{i}/jwks"),
            }))
        }
        #[handler]
        fn key_set(s: Data<&S>) -> poem::web::Json<Value> {
            s.fetches.fetch_add(1, Ordering::SeqCst);
            poem::web::Json(s.jwks.lock().unwrap().clone())
        }
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
        let base = format!("http://{addr}");
        let state = S {
            issuer: issuer_claim.map_or_else(|| base.clone(), str::to_owned),
            jwks,
            fetches,
        };
        let app = Route::new()
            .at("/.well-known/openid-configuration", get(discovery))
            .at("/jwks", get(key_set))
            .data(state);
        tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        base
    }

    #[tokio::test]
    async fn keys_are_cached_and_fetched_again_once_for_an_unknown_kid() {
        let (k1, k2) = keys();
        let jwks = Arc::new(std::sync::Mutex::new(json!({"keys": [k1.jwk.clone()]})));
        let fetches = Arc::new(AtomicUsize::new(0));
        let issuer = provider(None, Arc::clone(&jwks), Arc::clone(&fetches)).await;
        let p = OidcProvider::default();
        let d = p.discovery(&issuer).await.unwrap();
        let expected = Expected {
            issuer: &issuer,
            client_id: CLIENT,
            nonce: NONCE,
        };
        let claims = with(&[("iss", json!(issuer))]);
        for _ in 0..2 {
            let token = sign(&claims, k1, "k1");
            p.verify_id_token(&d, &token, &expected, NOW).await.unwrap();
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "cached");
        // The provider rotates to k2: the unknown kid fetches the keys again.
        *jwks.lock().unwrap() = json!({"keys": [k2.jwk.clone()]});
        let token = sign(&claims, k2, "k2");
        p.verify_id_token(&d, &token, &expected, NOW).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        // A kid nobody publishes: one more fetch, then a refusal.
        let token = sign(&claims, k1, "k9");
        assert!(matches!(
            p.verify_id_token(&d, &token, &expected, NOW).await,
            Err(OidcError::InvalidToken(_))
        ));
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_discovery_document_of_another_issuer_is_refused() {
        let jwks = Arc::new(std::sync::Mutex::new(json!({"keys": []})));
        let issuer = provider(
            Some("https://accounts.google.com"),
            jwks,
            Arc::new(AtomicUsize::new(0)),
        )
        .await;
        assert!(matches!(
            OidcProvider::default().discovery(&issuer).await,
            Err(OidcError::Unavailable(_))
        ));
        assert!(matches!(
            OidcProvider::default()
                .discovery("http://127.0.0.1:9")
                .await,
            Err(OidcError::Unavailable(_))
        ));
    }
}
