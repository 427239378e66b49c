//! The engine handle: what the HTTP layer and the CLI hold. Cheap to clone.

use std::sync::Arc;

use ractor::{Actor, ActorRef, RpcReplyPort};
use tokio::sync::{Mutex, Notify, Semaphore};

use crate::{
    accounts::AccountsMsg,
    auth::{jwt::JwtKeys, password::PasswordHasher},
    blob::BlobStore,
    clock::SharedClock,
    command::{self, AskError, Command, Commanded},
    config::{BlobConfig, EngineConfig, Rate},
    context::RequestContext,
    deps::Deps,
    domain::Email,
    error::EngineError,
    jobs,
    mailer::MailTransportImpl,
    metrics as m,
    project_actor::RegistryMsg,
    rate_limiter::{Decision, RateLimiterMsg, RedisGcra},
    root::{Root, RootArgs, RootMsg},
    slot::Slot,
    store::Db,
};

/// Which parts of the tree this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineRoles {
    /// Account transitions and rate limiting (needed to serve the API).
    pub api: bool,
    /// Job workers (mail now; OCR and transcription later).
    pub workers: bool,
}

impl EngineRoles {
    pub const SERVE: Self = Self {
        api: true,
        workers: true,
    };
    /// `alta serve` with `SERVE_WORKERS=false`: jobs run on `alta worker` processes.
    pub const API: Self = Self {
        api: true,
        workers: false,
    };
    pub const WORKER: Self = Self {
        api: false,
        workers: true,
    };
    /// The CLI's one-off commands: transitions, no workers.
    pub const ADMIN: Self = Self::API;
}

/// The actor slots the root supervisor keeps filled.
#[derive(Clone)]
pub(crate) struct Slots {
    pub accounts: Slot<Command<AccountsMsg>>,
    pub limiter: Slot<RateLimiterMsg>,
    pub projects: Slot<RegistryMsg>,
}

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

#[derive(Clone)]
pub struct Engine {
    pub(crate) deps: Arc<Deps>,
    pub(crate) slots: Slots,
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
            job_waker: Arc::new(Notify::new()),
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
            deps,
            slots,
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
        if let Some(redis) = &self.deps.redis {
            redis.quit().await;
        }
        self.deps.db.close().await;
    }

    pub async fn readiness(&self) -> Readiness {
        let database = self.deps.db.ping().await.map_err(|e| e.to_string());
        let redis = match &self.deps.redis {
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

    pub fn database_backend(&self) -> &'static str {
        self.deps.db.backend_name()
    }

    pub(crate) fn accounts(&self) -> Result<ActorRef<Command<AccountsMsg>>, EngineError> {
        self.slots.accounts.get()
    }

    /// When a command sent now must have begun (`ENGINE_CALL_TIMEOUT_MS` from now).
    pub(crate) fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.deps.config.call_timeout
    }

    /// Send a command to an actor that owns transitions, and wait for its outcome: a
    /// command that has not begun by its deadline never runs (503, nothing written);
    /// one that has begun is waited for (see [`crate::command`]).
    pub(crate) async fn ask<M, T>(
        &self,
        actor: &ActorRef<Command<M>>,
        build: impl FnOnce(RpcReplyPort<T>) -> M,
    ) -> Result<T, EngineError>
    where
        M: Commanded,
        T: Send + 'static,
    {
        self.ask_until(actor, self.deadline(), build)
            .await
            .map_err(EngineError::from)
    }

    /// [`Engine::ask`] with a given deadline, telling "not run" from "outcome unknown".
    pub(crate) async fn ask_until<M, T>(
        &self,
        actor: &ActorRef<Command<M>>,
        deadline: tokio::time::Instant,
        build: impl FnOnce(RpcReplyPort<T>) -> M,
    ) -> Result<T, AskError>
    where
        M: Commanded,
        T: Send + 'static,
    {
        command::ask(actor, deadline, build).await
    }

    /// Spend one unit of the per-IP budget of `op` (no-op for calls without an IP).
    pub(crate) async fn limit_ip(
        &self,
        op: &'static str,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        match ctx.client_ip {
            Some(ip) => {
                let rate = self.deps.config.rate_limits.auth_per_ip;
                self.limit(op, "ip", format!("{op}:ip:{ip}"), rate).await
            }
            None => Ok(()),
        }
    }

    /// Spend one unit of the per-account budget of `op`.
    pub(crate) async fn limit_account(
        &self,
        op: &'static str,
        email: &Email,
    ) -> Result<(), EngineError> {
        let rate = self.deps.config.rate_limits.auth_per_account;
        self.limit(op, "account", format!("{op}:acct:{email}"), rate)
            .await
    }

    async fn limit(
        &self,
        op: &'static str,
        by: &'static str,
        key: String,
        rate: Rate,
    ) -> Result<(), EngineError> {
        let limiter = self.slots.limiter.get()?;
        match command::query(&limiter, self.deadline(), |reply| RateLimiterMsg::Check {
            key,
            rate,
            reply,
        })
        .await?
        {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after } => {
                metrics::counter!(m::RATE_LIMIT_REJECTIONS_TOTAL, "scope" => format!("{op}_{by}"))
                    .increment(1);
                Err(EngineError::RateLimited { retry_after })
            }
        }
    }
}
