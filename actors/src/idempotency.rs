//! Idempotency keys for creating POSTs (IETF draft-ietf-httpapi-idempotency-key-header,
//! with Stripe's semantics):
//! - keys are scoped per user; 1 to 255 printable ASCII characters;
//! - the request is fingerprinted from its validated input; the same key with a
//!   different request is refused (422), and while the first is still running (409);
//! - the first response is stored in the same transaction as the effect and replayed
//!   for 24 hours; a request that fails changes nothing and frees its key for a retry.

use crate::ErrorCode;
use std::{sync::Arc, time::Duration};

use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{context::Principal, deps::Deps, error::EngineError, store};

/// How long a completed response is replayed.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How long an in-flight claim holds unless renewed: a crashed request's key can be
/// taken over this long after its last renewal.
const CLAIM_LEASE: Duration = Duration::from_secs(10);
/// How often a live claim is renewed (well within its lease).
const CLAIM_RENEW_EVERY: Duration = Duration::from_secs(3);

/// The result of a creating call: done now, or the stored answer to an earlier request.
#[derive(Debug, Clone)]
pub enum Idempotent<T> {
    Fresh(T),
    Replayed(T),
}

impl<T> Idempotent<T> {
    pub fn replayed(&self) -> bool {
        matches!(self, Self::Replayed(_))
    }

    pub fn into_inner(self) -> T {
        match self {
            Self::Fresh(t) | Self::Replayed(t) => t,
        }
    }
}

/// A key held by the request performing the effect; completed in the effect's transaction.
/// Its lease is renewed while any copy of it lives (the caller's, or the one travelling
/// with the command to its actor), so only a dead process lets it lapse.
#[derive(Debug, Clone)]
pub struct Claim {
    pub user_id: Uuid,
    pub key: String,
    _lease: Option<Arc<Lease>>,
}

/// Renews a claim's lock until dropped.
#[derive(Debug)]
struct Lease(tokio::task::AbortHandle);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) enum Begin<T> {
    Proceed(Option<Claim>),
    Replay(T),
}

fn parse_key(key: &str) -> Result<&str, EngineError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(EngineError::validation(
            ErrorCode::InvalidIdempotencyKey,
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
        ));
    }
    Ok(key)
}

/// SHA-256 of the canonical (validated, serialised) request.
pub(crate) fn fingerprint(request: &impl Serialize) -> Result<String, EngineError> {
    let canonical = serde_json::to_vec(request).map_err(EngineError::internal)?;
    Ok(hex::encode(Sha256::digest(canonical)))
}

/// Claim `key` for this request, or find the answer to replay, or refuse.
pub(crate) async fn begin<T: DeserializeOwned>(
    deps: &Arc<Deps>,
    principal: &Principal,
    route: &str,
    key: Option<&str>,
    fingerprint: &str,
) -> Result<Begin<T>, EngineError> {
    let Some(key) = key else {
        return Ok(Begin::Proceed(None));
    };
    let key = parse_key(key)?;
    let db = &deps.db;
    let user = principal.user_id;
    let now = deps.clock.now();
    let lock = chrono::Duration::from_std(CLAIM_LEASE).unwrap_or(chrono::Duration::seconds(10));
    let retention = chrono::Duration::from_std(RETENTION).unwrap_or(chrono::Duration::hours(24));
    if store::idempotency::try_insert(db, user, key, route, fingerprint, now, now + lock).await? {
        return Ok(Begin::Proceed(Some(leased_claim(deps, user, key))));
    }
    let Some(row) = store::idempotency::find(db, user, key).await? else {
        // Released between our insert and read: the caller may simply retry.
        return Err(in_progress());
    };
    let expired = row.created_at + retention <= now;
    let abandoned = row.state == "in_progress" && row.locked_until <= now;
    if expired || abandoned {
        return if store::idempotency::take_over(
            db,
            user,
            key,
            row.locked_until,
            fingerprint,
            route,
            now,
            now + lock,
        )
        .await?
        {
            Ok(Begin::Proceed(Some(leased_claim(deps, user, key))))
        } else {
            Err(in_progress())
        };
    }
    if row.fingerprint != fingerprint || row.route != route {
        return Err(EngineError::Unprocessable {
            code: ErrorCode::IdempotencyKeyReused,
            message: "this Idempotency-Key was used with a different request".into(),
        });
    }
    match (row.state.as_str(), row.response) {
        ("completed", Some(body)) => {
            let value = serde_json::from_str(&body).map_err(EngineError::internal)?;
            Ok(Begin::Replay(value))
        }
        _ => Err(in_progress()),
    }
}

/// A claim just taken, with a task renewing its lock while the claim lives.
fn leased_claim(deps: &Arc<Deps>, user_id: Uuid, key: &str) -> Claim {
    let deps = Arc::clone(deps);
    let owned_key = key.to_owned();
    let task = tokio::spawn(async move {
        let lease =
            chrono::Duration::from_std(CLAIM_LEASE).unwrap_or(chrono::Duration::seconds(10));
        let mut every = tokio::time::interval(CLAIM_RENEW_EVERY);
        every.tick().await;
        loop {
            every.tick().await;
            let until = deps.clock.now() + lease;
            if let Err(err) = store::idempotency::renew(&deps.db, user_id, &owned_key, until).await
            {
                tracing::warn!(error = %err, "could not renew an idempotency key's claim");
            }
        }
    });
    Claim {
        user_id,
        key: key.to_owned(),
        _lease: Some(Arc::new(Lease(task.abort_handle()))),
    }
}

/// After the call: a request that wrote nothing frees its key. One that may have
/// written (`maybe_written`) keeps it: completed in the effect's transaction, or,
/// when the outcome is unknown, held until its lock runs out.
pub(crate) async fn end(deps: &Deps, claim: &Option<Claim>, maybe_written: bool) {
    if let (Some(claim), false) = (claim, maybe_written)
        && let Err(err) = store::idempotency::release(&deps.db, claim.user_id, &claim.key).await
    {
        tracing::warn!(
            error = %err,
            "could not release an idempotency key; it frees itself when its lock expires"
        );
    }
}
/// Store the response of a fresh request in the effect's transaction.
pub(crate) async fn record(
    tx: &mut store::Tx,
    claim: &Option<Claim>,
    status: i32,
    response: &impl Serialize,
) -> Result<(), EngineError> {
    if let Some(claim) = claim {
        let body = serde_json::to_string(response).map_err(EngineError::internal)?;
        store::idempotency::complete(tx, claim.user_id, &claim.key, status, &body).await?;
    }
    Ok(())
}

fn in_progress() -> EngineError {
    EngineError::Conflict {
        code: ErrorCode::IdempotencyKeyInProgress,
        message: "a request with this Idempotency-Key is still being processed; retry shortly"
            .into(),
    }
}
