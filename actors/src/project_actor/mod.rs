//! The project actor, below every domain: a registry that keeps one actor per *active*
//! project, spawning it on demand and stopping it when idle (memory stays bounded however
//! many projects exist), and the actor, the one writer of its project. It knows no
//! transition: each domain writes its own as types implementing [`Transition`] (items,
//! review, labels, exports, webhooks, the project's own) and sends them through
//! [`Projects::apply`]; the actor commits them in groups ([`group`]).

mod actor;
mod group;
mod handle;
mod messages;
mod transition;

use std::{collections::HashMap, sync::Arc};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use uuid::Uuid;

use self::actor::{ProjectActor, ProjectArgs};
pub use self::handle::Projects;
pub use self::messages::ProjectMsg;
pub use self::transition::{Check, InProject, Touches, Transition};
use crate::{command::Command, deps::Deps};

pub enum RegistryMsg {
    /// The actor of `project_id`, started if it is not running.
    Get {
        project_id: Uuid,
        reply: RpcReplyPort<ActorRef<Command<ProjectMsg>>>,
    },
    /// A project actor has been idle long enough; stop it if it is still the current one.
    Idle { project_id: Uuid, actor: ActorId },
}

pub struct ProjectRegistry;

pub struct RegistryState {
    deps: Arc<Deps>,
    active: HashMap<Uuid, ActorRef<Command<ProjectMsg>>>,
    by_actor: HashMap<ActorId, Uuid>,
}

impl Actor for ProjectRegistry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = Arc<Deps>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        deps: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(RegistryState {
            deps,
            active: HashMap::new(),
            by_actor: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RegistryMsg::Get { project_id, reply } => {
                if let Some(actor) = state.active.get(&project_id) {
                    let _ = reply.send(actor.clone());
                    return Ok(());
                }
                let args = ProjectArgs {
                    deps: Arc::clone(&state.deps),
                    project_id,
                    registry: myself.clone(),
                };
                match Actor::spawn_linked(None, ProjectActor, args, myself.get_cell()).await {
                    Ok((actor, _)) => {
                        state.by_actor.insert(actor.get_id(), project_id);
                        state.active.insert(project_id, actor.clone());
                        metrics::gauge!(crate::metrics::PROJECT_ACTORS_ACTIVE)
                            .set(state.active.len() as f64);
                        let _ = reply.send(actor);
                    }
                    // Dropping the reply port makes the caller's call fail: a 503, retried by the client.
                    Err(err) => {
                        tracing::error!(%project_id, error = %err, "cannot start a project actor")
                    }
                }
            }
            RegistryMsg::Idle { project_id, actor } => {
                if state
                    .active
                    .get(&project_id)
                    .is_some_and(|a| a.get_id() == actor)
                    && let Some(actor) = state.active.remove(&project_id)
                {
                    state.by_actor.remove(&actor.get_id());
                    actor.stop(Some("idle".into()));
                    metrics::gauge!(crate::metrics::PROJECT_ACTORS_ACTIVE)
                        .set(state.active.len() as f64);
                }
            }
        }
        Ok(())
    }

    /// A project actor that stops or fails is forgotten; the next request starts a fresh
    /// one from the database (the database is the truth). The registry itself carries on.
    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let cell = match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                tracing::error!(error = %err, "project actor failed");
                metrics::counter!(crate::metrics::ACTOR_RESTARTS_TOTAL, "actor" => "project")
                    .increment(1);
                cell
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => cell,
            _ => return Ok(()),
        };
        if let Some(project_id) = state.by_actor.remove(&cell.get_id())
            && state
                .active
                .get(&project_id)
                .is_some_and(|a| a.get_id() == cell.get_id())
        {
            state.active.remove(&project_id);
            metrics::gauge!(crate::metrics::PROJECT_ACTORS_ACTIVE).set(state.active.len() as f64);
        }
        Ok(())
    }
}
