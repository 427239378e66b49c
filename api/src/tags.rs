use poem_openapi::Tags;

#[derive(Tags)]
pub enum ApiTags {
    /// Sign-up, email verification, login and the current user.
    Auth,
    /// Projects, their members and their audit log.
    Projects,
    /// Documents and voice recordings: upload, list, read, download, delete.
    Data,
    /// Labelling: a project's label schema, and each item's annotation.
    Labels,
    /// Review: submit, the reviewer's queue and leases, decisions, the rework loop.
    Review,
    /// Analytics: a project's or the platform's figures, and one person's.
    Analytics,
    /// Dataset exports: approved items out as JSON Lines, CSV or a Hugging Face folder.
    Exports,
    /// Webhooks: signed deliveries of a project's events to its endpoints, retried.
    Webhooks,
    /// Resumable uploads (tus 1.0) for large files over flaky connections.
    Uploads,
    /// Background jobs: OCR, transcription and mail.
    Jobs,
    /// Platform administration (super admins only).
    Admin,
    /// Liveness and readiness probes.
    Health,
}
