//! Project names, roles and settings.

use crate::ErrorCode;
use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// A member's role within one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectRole {
    /// Everything in the project.
    Admin,
    /// Uploads and manages their own data.
    Contributor,
    /// Reviews other people's submissions.
    Reviewer,
}

impl ProjectRole {
    pub const ALL: [ProjectRole; 3] = [Self::Admin, Self::Contributor, Self::Reviewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Contributor => "contributor",
            Self::Reviewer => "reviewer",
        }
    }
}

impl FromStr for ProjectRole {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Self::Admin),
            "contributor" => Ok(Self::Contributor),
            "reviewer" => Ok(Self::Reviewer),
            other => Err(EngineError::validation(
                ErrorCode::InvalidRole,
                "role",
                format!("unknown project role {other:?}; expected admin, contributor or reviewer"),
            )),
        }
    }
}

impl fmt::Display for ProjectRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A project name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectName(String);

impl ProjectName {
    pub fn parse(raw: &str) -> Result<Self, EngineError> {
        let name = raw.trim();
        let chars = name.chars().count();
        if chars == 0 || chars > 200 || name.chars().any(char::is_control) {
            return Err(EngineError::validation(
                ErrorCode::InvalidName,
                "name",
                "name must be 1 to 200 characters without control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A project description: up to 5000 characters; newlines and tabs allowed.
pub fn parse_description(raw: &str) -> Result<String, EngineError> {
    let text = raw.trim();
    if text.chars().count() > 5000
        || text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(EngineError::validation(
            ErrorCode::InvalidDescription,
            "description",
            "description must be at most 5000 characters without control characters",
        ));
    }
    Ok(text.to_owned())
}

/// The kinds of data a project collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataKind {
    Document,
    Audio,
}

impl DataKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Document => "document",
            Self::Audio => "audio",
        }
    }
}

impl std::fmt::Display for DataKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for DataKind {
    type Error = String;

    /// A stored kind (rows carry the type, not the string).
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "document" => Ok(Self::Document),
            "audio" => Ok(Self::Audio),
            _ => Err(format!("unknown data kind {s:?}")),
        }
    }
}

/// Per-project settings that uploads and review read. Stored as JSON; every field has
/// a default so older rows stay valid as fields are added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectSettings {
    pub accepted_kinds: Vec<DataKind>,
    /// Largest document upload, bytes.
    pub max_document_bytes: u64,
    /// Largest audio upload, bytes.
    pub max_audio_bytes: u64,
    /// Decisions needed for an item to be approved or rejected.
    pub reviews_required: u32,
    /// Reason codes a reviewer may give when rejecting.
    pub reject_reasons: Vec<String>,
    /// Rework rounds before a rejected item is rejected for good.
    pub max_rework_rounds: u32,
}

pub const MIB: u64 = 1024 * 1024;

impl Default for ProjectSettings {
    fn default() -> Self {
        Self {
            accepted_kinds: vec![DataKind::Document, DataKind::Audio],
            max_document_bytes: 50 * MIB,
            max_audio_bytes: 1024 * MIB,
            reviews_required: 1,
            reject_reasons: ["unreadable", "wrong_text", "noise", "clipped", "off_topic"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            max_rework_rounds: 3,
        }
    }
}

impl ProjectSettings {
    pub fn validate(self) -> Result<Self, EngineError> {
        let bad = |field: &'static str, message: &str| {
            Err(EngineError::validation(
                ErrorCode::InvalidSettings,
                field,
                message.to_owned(),
            ))
        };
        if self.accepted_kinds.is_empty() {
            return bad(
                "settings.accepted_kinds",
                "accept at least one kind of data",
            );
        }
        if !(1..=1024 * MIB).contains(&self.max_document_bytes) {
            return bad(
                "settings.max_document_bytes",
                "must be between 1 byte and 1 GiB",
            );
        }
        if !(1..=8 * 1024 * MIB).contains(&self.max_audio_bytes) {
            return bad(
                "settings.max_audio_bytes",
                "must be between 1 byte and 8 GiB",
            );
        }
        if !(1..=10).contains(&self.reviews_required) {
            return bad("settings.reviews_required", "must be between 1 and 10");
        }
        if self.max_rework_rounds > 20 {
            return bad("settings.max_rework_rounds", "must be at most 20");
        }
        let code_ok = |c: &String| {
            (1..=64).contains(&c.len())
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if self.reject_reasons.is_empty()
            || self.reject_reasons.len() > 50
            || !self.reject_reasons.iter().all(code_ok)
        {
            return bad(
                "settings.reject_reasons",
                "give 1 to 50 reason codes of lowercase letters, digits and underscores",
            );
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_validation_bites() {
        assert!(ProjectSettings::default().validate().is_ok());
        let none_required = ProjectSettings {
            reviews_required: 0,
            ..Default::default()
        };
        assert!(none_required.validate().is_err());
        let bad_reason = ProjectSettings {
            reject_reasons: vec!["Bad Reason".into()],
            ..Default::default()
        };
        assert!(bad_reason.validate().is_err());
        assert!(ProjectName::parse("  ").is_err());
        assert_eq!(
            ProjectName::parse(" Swahili news ").unwrap().as_str(),
            "Swahili news"
        );
        assert_eq!(
            "reviewer".parse::<ProjectRole>().unwrap(),
            ProjectRole::Reviewer
        );
        assert!("owner".parse::<ProjectRole>().is_err());
    }
}
