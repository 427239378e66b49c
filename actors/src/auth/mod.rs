//! Credentials: access tokens (JWT), password hashing, one-time random tokens.

pub mod jwt;
pub mod oidc;
pub mod password;
pub mod secret_token;
pub mod throttle;
