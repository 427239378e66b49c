use crate::ErrorCode;
use std::{fmt, str::FromStr};

use crate::error::EngineError;

/// A user's platform-wide role. Project roles come with projects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlobalRole {
    SuperAdmin,
    User,
}

impl GlobalRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SuperAdmin => "super_admin",
            Self::User => "user",
        }
    }
}

impl FromStr for GlobalRole {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "super_admin" => Ok(Self::SuperAdmin),
            "user" => Ok(Self::User),
            other => Err(EngineError::validation(
                ErrorCode::InvalidRole,
                "role",
                format!("unknown role {other:?}; expected super_admin or user"),
            )),
        }
    }
}

impl fmt::Display for GlobalRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
