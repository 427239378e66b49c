use uuid::Uuid;

use super::transition::Pending;

/// What the accounts actor receives: a transition with its caller
/// ([`super::transition::AccountTransition`]).
pub enum AccountsMsg {
    Apply(Box<dyn Pending>),
}

#[derive(Debug, Clone, Copy)]
pub struct AdminCreated {
    pub user_id: Uuid,
    /// False when an existing account was promoted.
    pub created: bool,
}

impl crate::command::Commanded for AccountsMsg {
    const ACTOR: &'static str = "accounts";
}
