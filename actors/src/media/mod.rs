//! Media: what a file is, and what is in a recording.

pub mod audio;
pub mod detect;
