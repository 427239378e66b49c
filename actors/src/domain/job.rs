//! Where a background job is, and the mail job's payload (queued by transitions of
//! every domain, sent by the mailer).

use serde::{Deserialize, Serialize};

/// A job's state: `queued` (waiting for its run time), `running` (a worker holds its
/// lease), `done`, or `failed` (attempts used up; a super admin may retry it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobState {
    pub const ALL: [JobState; 4] = [Self::Queued, Self::Running, Self::Done, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

crate::domain::stored_as_str!(JobState, "job state");

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const KIND_MAIL: &str = "mail";

/// A mail to send: the payload of a `mail` job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MailJob {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// A short tag for metrics and logs, e.g. `verify_email`.
    pub template: String,
}
