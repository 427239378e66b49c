//! Where the engine handle finds a child actor. The supervisor replaces the actor
//! on restart and updates the slot, so handles never hold a dead reference.

use std::sync::{Arc, RwLock};

use ractor::{ActorRef, Message};

use crate::error::EngineError;

pub struct Slot<M: Message> {
    name: &'static str,
    current: Arc<RwLock<Option<ActorRef<M>>>>,
}

impl<M: Message> Clone for Slot<M> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            current: Arc::clone(&self.current),
        }
    }
}

impl<M: Message> Slot<M> {
    pub fn empty(name: &'static str) -> Self {
        Self {
            name,
            current: Arc::new(RwLock::new(None)),
        }
    }

    pub fn get(&self) -> Result<ActorRef<M>, EngineError> {
        self.current
            .read()
            .ok()
            .and_then(|slot| slot.clone())
            .ok_or_else(|| {
                EngineError::Unavailable(format!("the {} actor is restarting", self.name))
            })
    }

    pub fn set(&self, actor: Option<ActorRef<M>>) {
        if let Ok(mut slot) = self.current.write() {
            *slot = actor;
        }
    }
}
