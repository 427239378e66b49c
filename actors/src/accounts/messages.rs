use uuid::Uuid;

pub use crate::account_mailbox::AccountsMsg;

#[derive(Debug, Clone, Copy)]
pub struct AdminCreated {
    pub user_id: Uuid,
    /// False when an existing account was promoted.
    pub created: bool,
}
