//! A project invitation's state, as rows and views carry it.

use serde::{Deserialize, Serialize};

/// Where an invitation is: waiting for its addressee, taken up, or withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationState {
    Pending,
    Accepted,
    Revoked,
}

impl InvitationState {
    pub const ALL: [Self; 3] = [Self::Pending, Self::Accepted, Self::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Revoked => "revoked",
        }
    }
}

crate::domain::stored_as_str!(InvitationState, "invitation state");
