//! What every domain's service shares, below them all: the ports (`Deps`), the slots of
//! the actors that own transitions, and how to ask them (with the caller's deadline),
//! spend a rate-limit budget, or run a transition in a project's actor. Each domain's
//! part of the engine is a service over a `Handle` (`items::ItemService`,
//! `review::ReviewService`, …, made with [`service!`]); the engine (`engine.rs`, the
//! top) hands them out. This module imports no domain.

use std::sync::Arc;

use ractor::{ActorRef, RpcReplyPort};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::{
    account_mailbox::AccountsMsg,
    authz::ProjectAction,
    command::{self, AskError, Command, Commanded},
    config::Rate,
    context::{Principal, RequestContext},
    deps::Deps,
    domain::{DataKind, Email},
    error::EngineError,
    idempotency::{self, Begin, Claim},
    metrics as m,
    project_access::{self, ProjectView},
    project_actor::{Projects, RegistryMsg, Transition},
    rate_limiter::{Decision, RateLimiterMsg},
    slot::Slot,
    store::items::ItemRow,
};

/// The actor slots the root supervisor keeps filled.
#[derive(Clone)]
pub(crate) struct Slots {
    pub accounts: Slot<Command<AccountsMsg>>,
    pub limiter: Slot<RateLimiterMsg>,
    pub projects: Slot<RegistryMsg>,
}

/// The shared half of every domain service. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    pub(crate) deps: Arc<Deps>,
    pub(crate) slots: Slots,
}

/// A domain's part of the engine: a service over the shared [`Handle`] (which it
/// dereferences to, for the ports and the ways to the actors), made from any other.
macro_rules! service {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name($crate::handle::Handle);

        impl std::ops::Deref for $name {
            type Target = $crate::handle::Handle;
            fn deref(&self) -> &$crate::handle::Handle {
                &self.0
            }
        }

        impl From<&$crate::handle::Handle> for $name {
            fn from(handle: &$crate::handle::Handle) -> Self {
                Self(handle.clone())
            }
        }
    };
}
pub(crate) use service;

impl Handle {
    /// Another domain's service over the same handle (a domain that uses another one's
    /// reads or checks; never the other way round, see `layers.rs`).
    pub(crate) fn service<S: for<'a> From<&'a Handle>>(&self) -> S {
        S::from(self)
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

    /// [`Handle::ask`] with a given deadline, telling "not run" from "outcome unknown".
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

    /// The way to project actors (started on demand). Callers check first that the
    /// project exists and that the caller may see it, so no actor is started for a
    /// project that is not there.
    pub(crate) fn projects(&self) -> Projects {
        Projects::new(self.slots.projects.clone(), self.deps.config.call_timeout)
    }

    /// Run `transition` in the project's actor as `principal`; its outcome once committed.
    pub(crate) async fn apply_in_project<T: Transition>(
        &self,
        project_id: Uuid,
        principal: &Principal,
        ctx: &RequestContext,
        transition: T,
    ) -> Result<T::Out, EngineError> {
        self.projects()
            .apply(project_id, principal, ctx, transition)
            .await
    }

    /// [`Handle::apply_in_project`] for callers that clean up after a failure: an
    /// [`AskError::Unknown`] means the transition may have committed.
    pub(crate) async fn apply_in_project_tracked<T: Transition>(
        &self,
        project_id: Uuid,
        principal: &Principal,
        ctx: &RequestContext,
        transition: T,
    ) -> Result<Result<T::Out, EngineError>, AskError> {
        self.projects()
            .apply_tracked(project_id, principal, ctx, transition)
            .await
    }

    /// The project as the caller sees it, after checking they may do `action` there
    /// (404 for a project they may not see).
    pub(crate) async fn check_project(
        &self,
        principal: &Principal,
        project_id: Uuid,
        action: ProjectAction,
    ) -> Result<ProjectView, EngineError> {
        project_access::check(&self.deps, principal, project_id, action).await
    }

    /// A live item (of `kind`, when given) the caller may see (404 otherwise).
    pub(crate) async fn visible_item(
        &self,
        principal: &Principal,
        id: Uuid,
        kind: Option<DataKind>,
    ) -> Result<ItemRow, EngineError> {
        project_access::visible_item(&self.deps, principal, id, kind).await
    }

    /// Claim an idempotency key for this request, or find the answer to replay, or
    /// refuse ([`idempotency::begin`]).
    pub(crate) async fn begin_idempotent<T: DeserializeOwned>(
        &self,
        principal: &Principal,
        route: &str,
        key: Option<&str>,
        fingerprint: &str,
    ) -> Result<Begin<T>, EngineError> {
        idempotency::begin(&self.deps, principal, route, key, fingerprint).await
    }

    /// Release or keep a claim once its request ended ([`idempotency::end`]).
    pub(crate) async fn end_idempotent(&self, claim: &Option<Claim>, maybe_written: bool) {
        idempotency::end(&self.deps, claim, maybe_written).await
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
