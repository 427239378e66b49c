//! Domain types. Each parses and validates its raw input once; code holding one
//! can trust it (zero-to-production's "parse, don't validate").

/// `TryFrom<String>` for an enum stored by its `as_str()` name with every variant in
/// `ALL`: rows carry the type, not the string (sqlx reads it through this).
macro_rules! stored_as_str {
    ($ty:ty, $what:literal) => {
        impl TryFrom<String> for $ty {
            type Error = String;

            fn try_from(s: String) -> Result<Self, String> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!(concat!("unknown ", $what, " {:?}"), s))
            }
        }
    };
}
pub(crate) use stored_as_str;

pub mod buckets;
mod email;
pub mod export;
mod invitation;
mod item;
mod job;
pub mod labels;
mod password;
mod project;
mod resumable;
mod role;
pub mod verdict_times;
pub mod webhook;

pub use email::Email;
pub use invitation::InvitationState;
pub use item::ItemStatus;
pub use job::{JobState, KIND_MAIL, MailJob};
pub use password::{NewPassword, PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS};
pub use project::{DataKind, ProjectName, ProjectRole, ProjectSettings, parse_description};
pub use resumable::ResumableState;
pub use role::GlobalRole;

use crate::ErrorCode;
use crate::error::EngineError;

/// A person's display name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullName(String);

impl FullName {
    pub fn parse(raw: &str) -> Result<Self, EngineError> {
        let name = raw.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > 200 {
            return Err(EngineError::validation(
                ErrorCode::InvalidFullName,
                "full_name",
                "full_name must be 1 to 200 characters",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(EngineError::validation(
                ErrorCode::InvalidFullName,
                "full_name",
                "full_name must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
