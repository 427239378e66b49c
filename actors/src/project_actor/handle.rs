//! The way to a project's actor, for any part of the engine that changes a project: the
//! API's engine handle, and the job workers that record processing outcomes. The
//! registry starts the project's actor on demand.

use std::time::Duration;

use ractor::{ActorRef, RpcReplyPort};
use uuid::Uuid;

use super::{
    ProjectMsg, RegistryMsg,
    transition::{Envelope, Transition},
};
use crate::{
    command::{self, AskError, Command},
    context::{Principal, RequestContext},
    error::EngineError,
    slot::Slot,
};

#[derive(Clone)]
pub struct Projects {
    registry: Slot<RegistryMsg>,
    /// How long a command may wait to begin (`ENGINE_CALL_TIMEOUT_MS`).
    call_timeout: Duration,
}

impl Projects {
    pub(crate) fn new(registry: Slot<RegistryMsg>, call_timeout: Duration) -> Self {
        Self {
            registry,
            call_timeout,
        }
    }

    /// Run `transition` in the project's actor as `principal`; its outcome once
    /// committed.
    pub(crate) async fn apply<T: Transition>(
        &self,
        project_id: Uuid,
        principal: &Principal,
        ctx: &RequestContext,
        transition: T,
    ) -> Result<T::Out, EngineError> {
        self.apply_tracked(project_id, principal, ctx, transition)
            .await?
    }

    /// [`Projects::apply`] for callers that clean up after a failure: an
    /// [`AskError::Unknown`] means the transition may have committed.
    pub(crate) async fn apply_tracked<T: Transition>(
        &self,
        project_id: Uuid,
        principal: &Principal,
        ctx: &RequestContext,
        transition: T,
    ) -> Result<Result<T::Out, EngineError>, AskError> {
        let (principal, ctx) = (principal.clone(), ctx.clone());
        self.ask(project_id, |reply| {
            ProjectMsg::Apply(Box::new(Envelope {
                command: transition,
                principal,
                ctx,
                reply,
                kept: None,
            }))
        })
        .await
    }

    async fn ask<T: Send + 'static>(
        &self,
        project_id: Uuid,
        build: impl FnOnce(RpcReplyPort<Result<T, EngineError>>) -> ProjectMsg,
    ) -> Result<Result<T, EngineError>, AskError> {
        let deadline = tokio::time::Instant::now() + self.call_timeout;
        let actor = self
            .actor(project_id, deadline)
            .await
            .map_err(|e| AskError::NotRun(e.to_string()))?;
        command::ask(&actor, deadline, build).await
    }

    async fn actor(
        &self,
        project_id: Uuid,
        deadline: tokio::time::Instant,
    ) -> Result<ActorRef<Command<ProjectMsg>>, EngineError> {
        let registry = self.registry.get()?;
        command::query(&registry, deadline, |reply| RegistryMsg::Get {
            project_id,
            reply,
        })
        .await
    }
}
