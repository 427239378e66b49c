//! A resumable (tus) upload's state, as rows and views carry it.

/// Where a resumable upload is: taking chunks, done (its item made), or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumableState {
    Receiving,
    Completed,
    Failed,
}

impl ResumableState {
    pub const ALL: [Self; 3] = [Self::Receiving, Self::Completed, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receiving => "receiving",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

crate::domain::stored_as_str!(ResumableState, "resumable upload state");
