//! The permission matrix: one place that says which role may do what (DESIGN.md rule 6).
//! Every engine operation that needs more than "signed in" asks [`authorize`].
//! Project roles join this table with the projects actor.

use crate::{context::Principal, domain::GlobalRole, error::EngineError};

/// Platform-level actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read one's own profile.
    ReadOwnProfile,
    /// List every user on the platform.
    ListUsers,
}

/// The matrix itself: `true` when `role` may perform `action`.
pub const fn permits(role: GlobalRole, action: Action) -> bool {
    match (role, action) {
        (_, Action::ReadOwnProfile) => true,
        (GlobalRole::SuperAdmin, Action::ListUsers) => true,
        (GlobalRole::User, Action::ListUsers) => false,
    }
}

pub fn authorize(principal: &Principal, action: Action) -> Result<(), EngineError> {
    if permits(principal.role, action) {
        Ok(())
    } else {
        Err(EngineError::Forbidden)
    }
}

/// Rows of the matrix, for documentation and tests.
pub const MATRIX: &[(Action, &str)] = &[
    (Action::ReadOwnProfile, "GET /api/auth/me"),
    (Action::ListUsers, "GET /api/admin/users"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_super_admins_list_users() {
        assert!(permits(GlobalRole::SuperAdmin, Action::ListUsers));
        assert!(!permits(GlobalRole::User, Action::ListUsers));
        for (action, _) in MATRIX {
            assert!(permits(GlobalRole::SuperAdmin, *action));
        }
    }
}
