//! Projects: the project's own transitions (create, update, delete, restore, members,
//! invitations), run by its actor ([`crate::project_actor`]), and their reads.

mod invitations;
mod project;
mod service;
mod views;

pub use self::service::{ProjectInput, ProjectListQuery};
pub use self::views::{AuditQuery, AuditView, InvitationView, MemberView, ProjectView};

crate::handle::service!(
    /// The projects part of the engine: projects, members, invitations, the audit log.
    ProjectService
);
