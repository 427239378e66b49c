use poem_openapi::Tags;

#[derive(Tags)]
pub enum ApiTags {
    /// Sign-up, email verification, login and the current user.
    Auth,
    /// Platform administration (super admins only).
    Admin,
    /// Liveness and readiness probes.
    Health,
}
