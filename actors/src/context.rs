//! Who is asking and from where: carried into every engine call for the audit log,
//! rate limiting and log correlation.

use std::net::IpAddr;

use uuid::Uuid;

use crate::domain::GlobalRole;

/// Facts about the HTTP request that caused an engine call.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl RequestContext {
    /// For calls that do not come from HTTP (the CLI, workers).
    pub fn internal(what: &str) -> Self {
        Self {
            request_id: format!("internal-{what}-{}", Uuid::new_v4()),
            client_ip: None,
            user_agent: None,
        }
    }
}

/// An authenticated caller, as established from a valid access token and the
/// user's current state in the store.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub email: String,
    pub role: GlobalRole,
    /// The session of the access token (`None` for calls not made with one).
    pub session_id: Option<Uuid>,
    /// Set when the caller used a personal access token: what it may do.
    pub token_scope: Option<TokenScope>,
}

impl Principal {
    /// The engine itself, recording its own work on a project (processing outcomes):
    /// nobody's account, allowed everything. Never made from a request.
    pub(crate) fn system() -> Self {
        Self {
            user_id: Uuid::nil(),
            email: String::new(),
            role: GlobalRole::SuperAdmin,
            session_id: None,
            token_scope: None,
        }
    }
}

/// What a personal access token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    /// Reads only (`GET`, `HEAD`).
    Read,
    /// Reads and changes.
    Write,
}
