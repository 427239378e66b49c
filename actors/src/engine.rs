//! The engine: what the HTTP layer and the CLI hold. It starts and stops the actor tree
//! and hands out each domain's service (`engine.items()`, `engine.review()`, …), all
//! over one shared [`Handle`]. The top of the crate: no domain imports it.

use std::sync::Arc;

use ractor::{Actor, ActorRef};
use tokio::sync::{Mutex, Semaphore};

use crate::{
    auth::{jwt::JwtKeys, password::PasswordHasher},
    blob::BlobStore,
    clock::SharedClock,
    config::{BlobConfig, EngineConfig},
    deps::Deps,
    error::EngineError,
    handle::{Handle, Slots},
    jobs,
    mailer::MailTransportImpl,
    metrics as m,
    rate_limiter::RedisGcra,
    root::{EngineRoles, Root, RootArgs, RootMsg},
    slot::Slot,
    store::Db,
};

/// Readiness of the parts the engine depends on.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub database: Result<(), String>,
    /// `None` when Redis is not configured.
    pub redis: Option<Result<(), String>>,
}

impl Readiness {
    /// Ready when the node can serve: the database answers. Redis is not needed for
    /// that (the rate limiter falls back to in-process), so a Redis outage only
    /// degrades the node ([`Readiness::is_degraded`]).
    pub fn is_ready(&self) -> bool {
        self.database.is_ok()
    }

    /// A configured dependency the node can serve without does not answer.
    pub fn is_degraded(&self) -> bool {
        self.redis.as_ref().is_some_and(Result::is_err)
    }
}

/// The engine (see the module's comment). Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    handle: Handle,
    root: ActorRef<RootMsg>,
    root_task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Engine {
    /// Build the ports, then the actor tree. The database must be migrated already.
    pub async fn start(
        config: EngineConfig,
        db: Db,
        clock: SharedClock,
        roles: EngineRoles,
    ) -> Result<Self, EngineError> {
        // Fail at startup, naming the setting, rather than on the first mail.
        if roles.workers {
            MailTransportImpl::new(&config.mail)
                .await
                .map_err(EngineError::Internal)?;
        }
        let redis = match &config.redis_url {
            Some(url) => Some(
                RedisGcra::connect(url, &config.redis_key_prefix)
                    .await
                    .map_err(|e| EngineError::Unavailable(format!("REDIS_URL: {e}")))?,
            ),
            None => None,
        };
        let blobs = BlobStore::from_config(&config.blobs, &config.blob_root)
            .await
            .map_err(|e| match &config.blobs {
                BlobConfig::Local { .. } => {
                    EngineError::Internal(format!("DATA_DIR: cannot create the blob folder: {e}"))
                }
                BlobConfig::Gcs { .. } => EngineError::Internal(format!(
                    "GCS_BUCKET_NAME: cannot set up the blob store: {e}"
                )),
            })?;
        let webauthn =
            crate::accounts::relying_party(&config.webauthn).map_err(EngineError::Internal)?;
        if webauthn.is_none() {
            tracing::warn!(
                rp_id = %config.webauthn.rp_id,
                "passkeys are off: no WEBAUTHN_ORIGINS falls under WEBAUTHN_RP_ID"
            );
        }
        let deps = Arc::new(Deps {
            webauthn,
            blobs,
            upload_permits: Semaphore::new(config.upload_concurrency.max(1)),
            resumable_busy: Default::default(),
            hasher: PasswordHasher::new(config.password_hash_concurrency).await?,
            jwt: JwtKeys::new(&config.jwt),
            db,
            clock,
            redis,
            worker_id: jobs::worker_id(),
            job_waker: Default::default(),
            config,
        });
        let slots = Slots {
            accounts: Slot::empty("accounts"),
            limiter: Slot::empty("rate_limiter"),
            projects: Slot::empty("projects"),
        };
        let args = RootArgs {
            deps: Arc::clone(&deps),
            slots: slots.clone(),
            roles,
        };
        let (root, task) = Actor::spawn(None, Root, args)
            .await
            .map_err(|e| EngineError::Internal(format!("cannot start the actor tree: {e}")))?;
        Ok(Self {
            handle: Handle { deps, slots },
            root,
            root_task: Arc::new(Mutex::new(Some(task))),
        })
    }

    /// Stop the actor tree: children finish the message in hand, then stop.
    pub async fn shutdown(&self) {
        let _ = ractor::call_t!(self.root, RootMsg::Shutdown, 30_000);
        self.root.stop(None);
        if let Some(task) = self.root_task.lock().await.take() {
            let _ = task.await;
        }
        if let Some(redis) = &self.handle.deps.redis {
            redis.quit().await;
        }
        self.handle.deps.db.close().await;
    }

    pub async fn readiness(&self) -> Readiness {
        let database = self.handle.deps.db.ping().await.map_err(|e| e.to_string());
        let redis = match &self.handle.deps.redis {
            Some(redis) => Some(redis.ping().await.map_err(|e| e.to_string())),
            None => None,
        };
        let up = |ok: bool| if ok { 1.0 } else { 0.0 };
        metrics::gauge!(m::DEPENDENCY_UP, "dependency" => "database").set(up(database.is_ok()));
        if let Some(redis) = &redis {
            metrics::gauge!(m::DEPENDENCY_UP, "dependency" => "redis").set(up(redis.is_ok()));
        }
        Readiness { database, redis }
    }

    /// Run one sweep of the blob store now, removing leftovers older than `grace` (the
    /// periodic sweep uses an hour). Returns how many files were removed.
    pub async fn sweep_orphans(&self, grace: std::time::Duration) -> usize {
        crate::sweeper::sweep(&self.handle.deps, grace).await
    }

    pub fn database_backend(&self) -> &'static str {
        self.handle.deps.db.backend_name()
    }

    /// Sign-up, sign-in, sessions, passwords, passkeys, API tokens, users.
    pub fn accounts(&self) -> crate::accounts::AccountService {
        self.handle.service()
    }

    /// Projects, members, invitations, the audit log.
    pub fn projects(&self) -> crate::projects::ProjectService {
        self.handle.service()
    }

    /// Uploads, items, their files and texts, reprocessing.
    pub fn items(&self) -> crate::items::ItemService {
        self.handle.service()
    }

    /// Resumable (tus) uploads.
    pub fn resumable(&self) -> crate::resumable::ResumableService {
        self.handle.service()
    }

    /// The review queue, claims, decisions, review mail.
    pub fn review(&self) -> crate::review::ReviewService {
        self.handle.service()
    }

    /// Label schemas, annotations, suggestions.
    pub fn labels(&self) -> crate::labels::LabelService {
        self.handle.service()
    }

    /// Summaries, series, leaderboards, recounts.
    pub fn analytics(&self) -> crate::analytics::AnalyticsService {
        self.handle.service()
    }

    /// Dataset exports and their downloads.
    pub fn exports(&self) -> crate::exports::ExportService {
        self.handle.service()
    }

    /// Webhooks and their deliveries.
    pub fn webhooks(&self) -> crate::webhooks::WebhookService {
        self.handle.service()
    }

    /// The job queue: reading jobs, retrying a failed one.
    pub fn jobs(&self) -> crate::job_control::JobService {
        self.handle.service()
    }
}
