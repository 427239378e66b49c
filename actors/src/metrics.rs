//! Names of the engine's metrics, in one place so dashboards and code agree.
//! (HTTP metrics live in the api crate.)

pub const AUTH_LOGIN_TOTAL: &str = "auth_login_total";
/// Every authentication outcome: `{method, outcome}` (method: password, refresh, …).
pub const AUTH_EVENTS_TOTAL: &str = "auth_events_total";
pub const AUTH_REGISTRATIONS_TOTAL: &str = "auth_registrations_total";
pub const RATE_LIMIT_REJECTIONS_TOTAL: &str = "rate_limit_rejections_total";
pub const RATE_LIMITER_BACKEND_ERRORS_TOTAL: &str = "rate_limiter_backend_errors_total";
/// Rate limit checks kept in-process because the Redis circuit breaker is open.
pub const RATE_LIMITER_SHORT_CIRCUITS_TOTAL: &str = "rate_limiter_short_circuits_total";
/// `{to}`: `open`, `half_open` (a probe goes out), `closed`.
pub const RATE_LIMITER_BREAKER_TRANSITIONS_TOTAL: &str = "rate_limiter_breaker_transitions_total";
/// 1 while the Redis circuit breaker is open (or probing), else 0.
pub const RATE_LIMITER_BREAKER_OPEN: &str = "rate_limiter_breaker_open";
/// `{dependency}`: 1 when the dependency answered the last readiness check, else 0.
pub const DEPENDENCY_UP: &str = "dependency_up";
pub const MAIL_SENT_TOTAL: &str = "mail_sent_total";
pub const JOBS_ENQUEUED_TOTAL: &str = "jobs_enqueued_total";
pub const JOBS_FINISHED_TOTAL: &str = "jobs_finished_total";
pub const JOB_DURATION_SECONDS: &str = "job_duration_seconds";
pub const JOBS_QUEUE_DEPTH: &str = "jobs_queue_depth";
pub const JOBS_OLDEST_QUEUED_AGE_SECONDS: &str = "jobs_oldest_queued_age_seconds";
pub const ACTOR_RESTARTS_TOTAL: &str = "actor_restarts_total";
pub const PASSWORD_HASH_DURATION_SECONDS: &str = "password_hash_duration_seconds";
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
pub const PROJECT_ACTORS_ACTIVE: &str = "project_actors_active";
/// Commands a project's actor committed in one transaction (group commit).
pub const PROJECT_GROUP_COMMANDS: &str = "project_group_commands";
/// How long one group took, from its opening (begin, lock) to the end of its commit.
pub const PROJECT_GROUP_COMMIT_SECONDS: &str = "project_group_commit_seconds";
/// How long a project's actor took over one group, from taking it to handing its commit
/// to a task of its own: what the actor waited for and did, without the commit that runs
/// beside its next group. Their sum over a run is how long the actor was busy.
pub const PROJECT_ACTOR_TURN_SECONDS: &str = "project_actor_turn_seconds";
/// How long each stage of a group took (label `stage`): `open` (begin, lock the project,
/// read the callers' roles and the items read ahead), `kept_writes` (a fast path's kept
/// rows, one statement on PostgreSQL) and `commit` (the `COMMIT`, with the kept rows of a
/// group that took no fast path). The transitions themselves are
/// [`PROJECT_TRANSITION_SECONDS`].
pub const PROJECT_GROUP_STAGE_SECONDS: &str = "project_group_stage_seconds";
/// Groups whose fast path (no savepoints) met a failing transition and started over
/// with a savepoint per transition.
pub const PROJECT_GROUP_RESTARTS_TOTAL: &str = "project_group_restarts_total";
/// How long one transition took inside its group, without the commit (label
/// `transition`: its type, e.g. `AddItem`); where a project actor's time goes.
pub const PROJECT_TRANSITION_SECONDS: &str = "project_transition_seconds";
/// How long a SQLite writer waited for the process's turn to write (`store::SqliteDb`):
/// the write contention of the embedded database. Not reported on PostgreSQL.
pub const SQLITE_WRITE_TURN_WAIT_SECONDS: &str = "sqlite_write_turn_wait_seconds";
pub const UPLOADS_TOTAL: &str = "uploads_total";
pub const ORPHAN_FILES_REMOVED_TOTAL: &str = "orphan_files_removed_total";
pub const UPLOAD_BYTES_TOTAL: &str = "upload_bytes_total";
pub const RESUMABLE_UPLOADS_TOTAL: &str = "resumable_uploads_total";
pub const RESUMABLE_BYTES_TOTAL: &str = "resumable_bytes_total";
pub const PROCESSING_OUTCOMES_TOTAL: &str = "processing_outcomes_total";
pub const REVIEW_DECISIONS_TOTAL: &str = "review_decisions_total";
pub const REVIEW_VERDICT_SECONDS: &str = "review_time_to_verdict_seconds";
pub const REVIEW_PENDING_ITEMS: &str = "review_pending_items";
pub const REVIEW_OLDEST_PENDING_AGE_SECONDS: &str = "review_oldest_pending_age_seconds";
pub const REVIEW_DIGESTS_TOTAL: &str = "review_digests_total";
/// Live items of live projects, platform-wide: `{kind, status}` (from the analytics
/// rollups, refreshed with the review gauges).
pub const COLLECTION_ITEMS: &str = "collection_items";
/// Recorded audio of live items, platform-wide, seconds: `{status}`.
pub const COLLECTION_AUDIO_SECONDS: &str = "collection_audio_seconds";
/// Files refused by text extraction for a limit: `{reason}` (resource_limit,
/// page_too_large, too_many_pages, page_timeout, extract_timeout, text_too_large,
/// extract_crashed).
pub const EXTRACT_REFUSALS_TOTAL: &str = "extract_refusals_total";
/// The extractor child could not be started or gave no answer: `{error}`.
pub const EXTRACT_CHILD_ERRORS_TOTAL: &str = "extract_child_errors_total";

/// Commands an actor dropped unrun because their caller had stopped waiting: `{actor}`.
pub const ENGINE_COMMANDS_DROPPED_TOTAL: &str = "engine_commands_dropped_total";
/// Commands sent to an actor and not yet taken from its mailbox: `{actor}` (its mailbox
/// depth; a project's actors summed).
pub const ENGINE_COMMANDS_WAITING: &str = "engine_commands_waiting";
/// Calls answered 503 because their command had not begun by its deadline: `{actor}`.
pub const ENGINE_CALL_TIMEOUTS_TOTAL: &str = "engine_call_timeouts_total";
/// Uploads that had to wait for a permit (`UPLOAD_CONCURRENCY`).
pub const UPLOAD_PERMIT_WAITS_TOTAL: &str = "upload_permit_waits_total";
/// Uploads refused with 503 after waiting `UPLOAD_PERMIT_WAIT_MS` for a permit.
pub const UPLOAD_PERMIT_REFUSALS_TOTAL: &str = "upload_permit_refusals_total";

/// The `reason` label of a review decision. Projects choose their own reason codes,
/// so only the default ones become label values; the rest count as `other`, keeping
/// the number of series bounded.
pub fn review_reason_label(code: &str) -> &'static str {
    match code {
        "unreadable" => "unreadable",
        "wrong_text" => "wrong_text",
        "noise" => "noise",
        "clipped" => "clipped",
        "off_topic" => "off_topic",
        _ => "other",
    }
}

/// Exports ended: `{format, outcome}` (`finished`, `retried`: an attempt failed and the
/// job will run again, `failed`: it gave up).
pub const EXPORTS_TOTAL: &str = "exports_total";
/// Items written into exports.
pub const EXPORT_ITEMS_TOTAL: &str = "export_items_total";
/// Bytes written into export files.
pub const EXPORT_BYTES_TOTAL: &str = "export_bytes_total";
/// How long a finished export took, `{format}` (a resumed one: its last run).
pub const EXPORT_DURATION_SECONDS: &str = "export_duration_seconds";

/// Deliveries written to the outbox, `{event}` (one per subscribed webhook).
pub const WEBHOOK_EVENTS_TOTAL: &str = "webhook_events_total";
/// Attempts to deliver, `{outcome}`: `delivered` (2xx), `failed_status` (an answer that
/// is not 2xx), `timeout`, `refused` (the address is not allowed), `error` (no
/// answer: DNS, connection, TLS).
pub const WEBHOOK_ATTEMPTS_TOTAL: &str = "webhook_attempts_total";
/// How long an attempt took, to the answer's end or the timeout.
pub const WEBHOOK_ATTEMPT_SECONDS: &str = "webhook_attempt_duration_seconds";
/// Deliveries that used up their attempts.
pub const WEBHOOK_DELIVERIES_FAILED_TOTAL: &str = "webhook_deliveries_failed_total";
/// Webhooks deactivated because every attempt failed for too long.
pub const WEBHOOKS_DEACTIVATED_TOTAL: &str = "webhooks_deactivated_total";
