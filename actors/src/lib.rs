//! The Alta Data engine: the supervised actor tree that owns every state transition,
//! the domain types that validate on parse, and the ports (store, mail, rate-limit
//! backends) the actors use.
//!
//! The HTTP layer talks to [`Engine`] only, through its domain services
//! (`engine.items()`, `engine.review()`, …): transitions go through the owning actor,
//! plain reads go straight to the store (docs/ARCHITECTURE.md, rules 2 and 7).

mod account_mailbox;
pub mod accounts;
pub mod analytics;
pub mod auth;
pub mod authz;
pub mod blob;
mod busy_uploads;
mod change;
pub mod clock;
mod command;
pub mod config;
pub mod context;
mod deps;
pub mod domain;
mod engine;
pub mod error;
pub mod error_code;
pub mod exports;
pub mod handle;
pub mod idempotency;
pub mod items;
pub mod job_control;
mod job_waker;
pub mod jobs;
pub mod labels;
#[cfg(test)]
mod layers;
pub mod mailer;
pub mod media;
pub mod metrics;
pub mod pagination;
pub mod processing;
mod project_access;
mod project_actor;
pub mod projects;
pub mod rate_limiter;
pub mod resumable;
pub mod review;
mod root;
mod slot;
pub mod store;
pub mod sweeper;
pub mod webhooks;

pub use engine::Engine;
pub use error::EngineError;
pub use error_code::ErrorCode;
pub use root::EngineRoles;
