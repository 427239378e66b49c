//! Password hashing with argon2id (m=19456 KiB, t=2, p=1: the crate's defaults, which
//! are OWASP's recommendation). Hashing runs on the blocking pool, at most
//! `concurrency` at a time, so a login burst cannot starve the async threads or
//! exhaust memory.

use std::{sync::Arc, time::Instant};

use argon2::{Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::Semaphore;

use crate::{error::EngineError, metrics as m};

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A real hash of a random password: verified against when the account does not
    /// exist, so unknown emails take as long as wrong passwords.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub async fn new(concurrency: usize) -> Result<Self, EngineError> {
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let (random, _) = super::secret_token::generate();
        let dummy_hash = hash_blocking(&permits, random).await?;
        Ok(Self {
            permits,
            dummy_hash: dummy_hash.into(),
        })
    }

    pub async fn hash(&self, password: &str) -> Result<String, EngineError> {
        hash_blocking(&self.permits, password.to_owned()).await
    }

    /// True when `password` matches `stored`. With no stored hash (no such account,
    /// or no password set) the dummy hash is checked so the timing is the same.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, EngineError> {
        let (hash, real) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        let password = password.to_owned();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| EngineError::Unavailable("password hasher closed".into()))?;
        let matched = tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&hash) else {
                // A corrupt stored hash never matches; still spend the time.
                let _: Result<PasswordHash, _> =
                    Argon2::default().hash_password(password.as_bytes());
                return false;
            };
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .await
        .map_err(EngineError::internal)?;
        Ok(matched && real)
    }
}

async fn hash_blocking(permits: &Semaphore, password: String) -> Result<String, EngineError> {
    let _permit = permits
        .acquire()
        .await
        .map_err(|_| EngineError::Unavailable("password hasher closed".into()))?;
    let started = Instant::now();
    let hash = tokio::task::spawn_blocking(move || {
        let hash: Result<PasswordHash, _> = Argon2::default().hash_password(password.as_bytes());
        hash.map(|h| h.to_string())
    })
    .await
    .map_err(EngineError::internal)?
    .map_err(EngineError::internal)?;
    metrics::histogram!(m::PASSWORD_HASH_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_accounts_never_match() {
        let hasher = PasswordHasher::new(2).await.unwrap();
        let hash = hasher.hash("a long enough passphrase").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            hasher
                .verify("a long enough passphrase", Some(&hash))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("a long enough passphrasE", Some(&hash))
                .await
                .unwrap()
        );
        assert!(!hasher.verify("anything", None).await.unwrap());
        assert!(
            !hasher
                .verify("anything", Some("not a phc string"))
                .await
                .unwrap()
        );
    }
}
