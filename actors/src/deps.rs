//! What every actor and domain shares: the ports and the configuration. It sits below
//! every domain (it imports none), and the engine handle (`engine.rs`) sits above them.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::{
    auth::{jwt::JwtKeys, password::PasswordHasher},
    blob::BlobStore,
    busy_uploads::BusyUploads,
    clock::SharedClock,
    config::EngineConfig,
    rate_limiter::RedisGcra,
    store::Db,
};

/// What every actor shares: the ports and the configuration.
pub struct Deps {
    pub db: Db,
    pub clock: SharedClock,
    pub config: EngineConfig,
    pub hasher: PasswordHasher,
    pub jwt: JwtKeys,
    pub redis: Option<RedisGcra>,
    pub blobs: BlobStore,
    /// Bounds concurrent uploads (memory, disk and CPU stay bounded).
    pub upload_permits: Semaphore,
    /// Resumable uploads a request is writing to right now.
    pub resumable_busy: BusyUploads,
    /// Written into job leases.
    pub worker_id: String,
    /// Nudged after a commit that enqueued a job, so the local worker of its kind starts
    /// at once.
    pub job_waker: Arc<crate::job_waker::JobWaker>,
    /// The passkey relying party; `None` when no allowed origin is configured.
    pub webauthn: Option<webauthn_rs::Webauthn>,
}
