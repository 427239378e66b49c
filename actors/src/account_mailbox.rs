//! The accounts actor's mailbox, below the domains: a transition with its caller, boxed
//! (the transitions and the actor are in `accounts/`), so that the shared handle can
//! hold the actor's slot without importing the accounts domain.

use std::{future::Future, pin::Pin};

use crate::deps::Deps;

pub(crate) type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the accounts actor receives: a transition with its caller
/// (`accounts::AccountTransition` in an envelope).
pub enum AccountsMsg {
    Apply(Box<dyn Pending>),
}

impl crate::command::Commanded for AccountsMsg {
    const ACTOR: &'static str = "accounts";
}

/// Any transition envelope, as the actor's mailbox holds it: run it and answer its caller.
pub trait Pending: Send {
    fn run<'a>(self: Box<Self>, deps: &'a Deps) -> Boxed<'a, ()>;
}
