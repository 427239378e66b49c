//! Access tokens: short-lived JWTs signed with HMAC (`JWT_ALG`, pinned).
//!
//! Checked on every use (RFC 8725): the algorithm is the configured one and nothing
//! else (`none` and public-key algorithms never verify), the header says `at+jwt`,
//! `iss`/`aud` match, every registered claim is present with its proper type (a
//! string `exp` fails to parse), `token_use` is `access`, and `exp`/`nbf` are
//! compared with the injected clock so tests can move time.

use crate::ErrorCode;
use chrono::{DateTime, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, decode, encode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

use crate::error::EngineError;

/// How access tokens are signed and how long sessions last (`JWT_*`, `REFRESH_TOKEN_*`).
#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub secret: SecretString,
    /// One of HS256, HS384, HS512 (checked at startup).
    pub algorithm: jsonwebtoken::Algorithm,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    /// A session unused for this long ends (`REFRESH_TOKEN_IDLE_DAYS`).
    pub refresh_idle: Duration,
    /// A session ends this long after sign-in however it is used
    /// (`REFRESH_TOKEN_ABSOLUTE_DAYS`).
    pub refresh_absolute: Duration,
}

/// The `typ` header of our access tokens (RFC 9068).
const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Tolerance for clocks of other nodes running slightly behind the issuer's.
const NBF_LEEWAY_SECS: i64 = 30;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: Uuid,
    /// Distinguishes access tokens from any other token we may sign later.
    pub token_use: String,
    /// The session (sign-in) it belongs to: revoking the session refuses the token.
    pub sid: Uuid,
}

/// An issued access token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    header: Header,
    issuer: String,
    audience: String,
    ttl_secs: i64,
}

impl JwtKeys {
    pub fn new(cfg: &JwtConfig) -> Self {
        let secret = cfg.secret.expose_secret().as_bytes();
        let mut validation = Validation::new(cfg.algorithm);
        validation.algorithms = vec![cfg.algorithm];
        validation.set_audience(&[&cfg.audience]);
        validation.set_issuer(&[&cfg.issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]);
        // exp and nbf are checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let mut header = Header::new(cfg.algorithm);
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            header,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            ttl_secs: i64::try_from(cfg.access_ttl.as_secs()).unwrap_or(900),
        }
    }

    pub fn issue(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, EngineError> {
        let iat = now.timestamp();
        let claims = AccessClaims {
            sub: user_id,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: iat + self.ttl_secs,
            nbf: iat,
            iat,
            jti: Uuid::new_v4(),
            token_use: "access".into(),
            sid: session_id,
        };
        let token = encode(&self.header, &claims, &self.encoding).map_err(EngineError::internal)?;
        Ok(IssuedToken {
            token,
            expires_in: self.ttl_secs.unsigned_abs(),
        })
    }

    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, EngineError> {
        let invalid =
            || EngineError::unauthenticated(ErrorCode::InvalidToken, "the access token is invalid");
        let data = decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| invalid())?;
        if data.header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) || data.claims.token_use != "access"
        {
            return Err(invalid());
        }
        let now = now.timestamp();
        if now >= data.claims.exp {
            return Err(EngineError::unauthenticated(
                ErrorCode::TokenExpired,
                "the access token has expired",
            ));
        }
        if now + NBF_LEEWAY_SECS < data.claims.nbf {
            return Err(invalid());
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    use jsonwebtoken::Algorithm;
    use serde_json::json;

    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(&JwtConfig {
            secret: "0123456789abcdef0123456789abcdef".to_string().into(),
            algorithm: Algorithm::HS256,
            issuer: "alta-test".into(),
            audience: "alta-api".into(),
            access_ttl: Duration::from_secs(900),
            refresh_idle: Duration::from_secs(30 * 86_400),
            refresh_absolute: Duration::from_secs(90 * 86_400),
        })
    }

    fn forge(header: serde_json::Value, claims: serde_json::Value, secret: &[u8]) -> String {
        use hmac_sign::sign;
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let sig = sign(secret, format!("{h}.{c}").as_bytes());
        format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// HMAC-SHA256 by hand (RFC 2104), so tests can forge tokens the library would refuse to make.
    mod hmac_sign {
        use sha2::{Digest, Sha256};
        pub fn sign(key: &[u8], msg: &[u8]) -> Vec<u8> {
            let mut k = [0u8; 64];
            k[..key.len()].copy_from_slice(key);
            let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
            let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
            let ih = Sha256::new()
                .chain_update(&inner)
                .chain_update(msg)
                .finalize();
            Sha256::new()
                .chain_update(&outer)
                .chain_update(ih)
                .finalize()
                .to_vec()
        }
    }

    fn claims(now: i64) -> serde_json::Value {
        json!({"sub": Uuid::nil(), "iss": "alta-test", "aud": "alta-api", "exp": now + 60,
               "nbf": now, "iat": now, "jti": Uuid::nil(), "token_use": "access", "sid": Uuid::nil()})
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip_and_expiry() {
        let keys = keys();
        let now = Utc::now();
        let issued = keys.issue(Uuid::nil(), Uuid::nil(), now).unwrap();
        assert_eq!(issued.expires_in, 900);
        assert_eq!(keys.verify(&issued.token, now).unwrap().sub, Uuid::nil());
        let later = now + chrono::Duration::seconds(900);
        assert_eq!(
            keys.verify(&issued.token, later).unwrap_err().code(),
            "token_expired"
        );
    }

    #[test]
    fn hand_forged_token_with_our_secret_verifies() {
        // Proves the forging helper is right, so the refusals below mean something.
        let now = Utc::now().timestamp();
        let token = forge(
            json!({"alg": "HS256", "typ": "at+jwt"}),
            claims(now),
            SECRET,
        );
        assert!(keys().verify(&token, Utc::now()).is_ok());
    }

    #[test]
    fn refuses_the_token_suite() {
        let keys = keys();
        let now = Utc::now().timestamp();
        let typ = json!({"alg": "HS256", "typ": "at+jwt"});
        let mut cases: Vec<(&str, String)> = Vec::new();
        let good = forge(typ.clone(), claims(now), SECRET);
        let (unsigned, _) = good.rsplit_once('.').unwrap();
        cases.push((
            "alg none",
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "at+jwt"}).to_string()),
                unsigned.split('.').nth(1).unwrap()
            ),
        ));
        cases.push((
            "wrong key",
            forge(typ.clone(), claims(now), b"another secret another secret!!"),
        ));
        cases.push((
            "HS384 header",
            forge(
                json!({"alg": "HS384", "typ": "at+jwt"}),
                claims(now),
                SECRET,
            ),
        ));
        cases.push((
            "no typ",
            forge(json!({"alg": "HS256"}), claims(now), SECRET),
        ));
        let mut c = claims(now);
        c["aud"] = json!("someone-else");
        cases.push(("wrong aud", forge(typ.clone(), c, SECRET)));
        let mut c = claims(now);
        c["iss"] = json!("evil");
        cases.push(("wrong iss", forge(typ.clone(), c, SECRET)));
        let mut c = claims(now);
        c.as_object_mut().unwrap().remove("exp");
        cases.push(("missing exp", forge(typ.clone(), c, SECRET)));
        let mut c = claims(now);
        c["exp"] = json!((now + 60).to_string());
        cases.push(("string exp", forge(typ.clone(), c, SECRET)));
        let mut c = claims(now);
        c["nbf"] = json!((now + 60).to_string());
        cases.push(("string nbf", forge(typ.clone(), c, SECRET)));
        let mut c = claims(now);
        c["nbf"] = json!(now + 3600);
        cases.push(("future nbf", forge(typ.clone(), c, SECRET)));
        let mut c = claims(now);
        c["exp"] = json!(now - 1);
        cases.push(("expired", forge(typ.clone(), c, SECRET)));
        let mut c = claims(now);
        c.as_object_mut().unwrap().remove("sid");
        cases.push(("no session", forge(typ.clone(), c, SECRET)));
        let mut c = claims(now);
        c["token_use"] = json!("refresh");
        cases.push(("refresh token", forge(typ.clone(), c, SECRET)));
        let mut tampered = good.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        cases.push(("flipped signature", String::from_utf8(tampered).unwrap()));
        for (name, token) in cases {
            assert!(
                keys.verify(&token, Utc::now()).is_err(),
                "{name} must be refused"
            );
        }
    }
}
