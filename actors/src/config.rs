//! What the engine needs to know, built by the binary from its settings.

use std::{path::PathBuf, time::Duration};

use secrecy::SecretString;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Base URL for links in mail, e.g. `https://data.example.org` (no trailing slash).
    pub public_url: String,
    pub jwt: JwtConfig,
    pub mail: MailConfig,
    pub rate_limits: RateLimits,
    /// `redis://…` for the shared rate limiter; `None` keeps it in-process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this server writes (lets tests and tenants share a Redis).
    pub redis_key_prefix: String,
    /// How many argon2 hashes may run at once (each takes ~19 MiB).
    pub password_hash_concurrency: usize,
    pub email_verification_ttl: Duration,
    pub jobs: JobsConfig,
    /// A project actor with no message for this long is stopped (and restarted on demand).
    pub project_actor_idle: Duration,
    /// Most commands a project's actor commits in one transaction (group commit; 1: each
    /// alone).
    pub project_group_max: usize,
    /// How long a soft-deleted project can still be restored.
    pub project_restore_retention: Duration,
    /// The local blob folder (`$DATA_DIR/blobs`); uploads are received in its
    /// `.incoming` folder whichever store keeps the blobs.
    pub blob_root: PathBuf,
    /// Where blobs are kept.
    pub blobs: BlobConfig,
    /// Uploads processed at once; more get 503 with Retry-After.
    pub upload_concurrency: usize,
    /// Longest recording accepted, seconds.
    pub max_audio_seconds: f64,
    /// Budget for analysing one recording.
    pub audio_analysis_timeout: Duration,
    /// How long a resumable (tus) upload may stay unfinished before it is removed.
    pub resumable_upload_expiry: Duration,
    /// Resumable uploads keep their chunks in the blob store, so that any node can
    /// continue one (`MULTI_NODE`); else in a local file on the node that received them.
    pub shared_resumable_parts: bool,
    /// How often the sweeper runs.
    pub sweep_interval: Duration,
    /// How old a leftover file must be before the sweeper removes it (uploads in
    /// flight are younger).
    pub orphan_grace: Duration,
    pub processing: ProcessingConfig,
    pub review: ReviewConfig,
    pub exports: ExportsConfig,
    pub webhooks: WebhooksConfig,
    pub webauthn: WebauthnConfig,
    /// Google sign-in (OpenID Connect); `None` when `GOOGLE_CLIENT_ID` is not set.
    pub google_signin: Option<GoogleSignInConfig>,
    /// At most one sign-up mail (verification link, "this address has an account") per
    /// address in this time; registrations in between send none.
    pub register_mail_interval: Duration,
    /// How long a command may wait for its actor to begin it (`ENGINE_CALL_TIMEOUT_MS`);
    /// one that has not begun by then is dropped unrun and its caller gets a 503.
    pub call_timeout: Duration,
    /// How long an upload waits for a permit before a 503 (`UPLOAD_PERMIT_WAIT_MS`).
    pub upload_permit_wait: Duration,
}

pub use crate::auth::oidc::GoogleSignInConfig;

/// The passkey relying party (`WEBAUTHN_RP_ID`, `WEBAUTHN_RP_NAME`, `WEBAUTHN_ORIGINS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnConfig {
    /// The domain passkeys are bound to, e.g. `data.example.org` or `localhost`.
    pub rp_id: String,
    /// Shown by authenticators when a passkey is made.
    pub rp_name: String,
    /// Origins of the web pages allowed to run ceremonies (the frontend's), e.g.
    /// `https://data.example.org`. Each must be the RP id or a subdomain of it.
    pub origins: Vec<url::Url>,
}

/// Webhook deliveries.
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// Deliver to loopback, private and link-local addresses too
    /// (`WEBHOOK_ALLOW_PRIVATE`; for development and tests only).
    pub allow_private: bool,
    /// Accept `https` endpoints only (production).
    pub https_only: bool,
    /// How long one attempt may take (`WEBHOOK_TIMEOUT_MS`, 10 s).
    pub timeout: Duration,
    /// Attempts before a delivery fails (`WEBHOOK_MAX_ATTEMPTS`, 8: about 28 hours).
    pub max_attempts: i32,
    /// A webhook whose every attempt failed for this long is deactivated and its
    /// project's admins are mailed (`WEBHOOK_DEACTIVATE_AFTER_HOURS`, 72).
    pub deactivate_after: Duration,
    /// Deliveries one node sends at once (`JOB_CONCURRENCY_WEBHOOK`, 8).
    pub concurrency: usize,
    /// How long finished deliveries and their attempts are kept
    /// (`WEBHOOK_DELIVERY_RETENTION_DAYS`, 30).
    pub retention: Duration,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            https_only: false,
            timeout: Duration::from_secs(10),
            max_attempts: 8,
            deactivate_after: Duration::from_secs(72 * 3600),
            concurrency: 8,
            retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Dataset exports.
#[derive(Debug, Clone)]
pub struct ExportsConfig {
    /// How long a finished or failed export is kept (`EXPORT_RETENTION_DAYS`).
    pub retention: Duration,
    /// Exports one node writes at once (`JOB_CONCURRENCY_EXPORT`); one per project.
    pub concurrency: usize,
    /// Items read from the database at a time (`EXPORT_PAGE_ITEMS`).
    pub page_items: i64,
    /// How often a running export syncs what it wrote and keeps a checkpoint
    /// (`EXPORT_CHECKPOINT_MS`): what a crash can cost it.
    pub checkpoint_every: Duration,
    /// Largest WebDataset shard, bytes (`EXPORT_SHARD_MAX_BYTES`); an item larger than
    /// this gets a shard of its own.
    pub shard_max_bytes: u64,
}

impl Default for ExportsConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(7 * 86_400),
            concurrency: 2,
            page_items: 500,
            checkpoint_every: Duration::from_secs(1),
            shard_max_bytes: 1 << 30,
        }
    }
}

/// Review leases and the changes-requested digest.
#[derive(Debug, Clone)]
pub struct ReviewConfig {
    /// How long a claimed item stays with its reviewer (`REVIEW_LEASE_SECONDS`).
    pub lease: Duration,
    /// How often digests are sent and review gauges refreshed
    /// (`REVIEW_DIGEST_INTERVAL_SECONDS`).
    pub digest_interval: Duration,
    /// At most one digest per contributor in this time (`REVIEW_DIGEST_MIN_GAP_SECONDS`).
    pub digest_min_gap: Duration,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(600),
            digest_interval: Duration::from_secs(60),
            digest_min_gap: Duration::from_secs(3600),
        }
    }
}

/// OCR and transcription.
#[derive(Debug, Clone)]
pub struct ProcessingConfig {
    /// OCR jobs one worker runs at once (`JOB_CONCURRENCY_OCR`).
    pub ocr_concurrency: usize,
    /// Transcription jobs one worker runs at once (`JOB_CONCURRENCY_TRANSCRIPTION`).
    pub transcription_concurrency: usize,
    /// Tesseract languages, e.g. `eng+swa` (`OCR_LANGUAGES`).
    pub ocr_languages: String,
    /// Budget of one local extraction (`OCR_TIMEOUT_SECONDS`).
    pub ocr_timeout: Duration,
    /// Google engines, when configured.
    pub google: Option<GoogleEngines>,
    /// The executable run as `alta extract` to parse untrusted files
    /// (`EXTRACT_EXECUTABLE`); `None`: this process's own.
    pub extract_executable: Option<PathBuf>,
    /// Address-space limit of the extractor and the tools it runs (`EXTRACT_MEMORY_MB`).
    pub extract_memory_bytes: u64,
    /// CPU-time limit of the extractor, and of each tool it runs (`EXTRACT_CPU_SECONDS`).
    pub extract_cpu_seconds: u64,
    /// Most pages of a PDF (`PDF_MAX_PAGES`).
    pub pdf_max_pages: usize,
    /// Most decompressed content bytes of one PDF page (`PDF_MAX_PAGE_CONTENT_BYTES`).
    pub pdf_max_page_content_bytes: usize,
    /// Budget of one page (`OCR_PAGE_TIMEOUT_SECONDS`).
    pub ocr_page_timeout: Duration,
    /// Files the text lane parses at once in child processes (DOCX, PDF text layers;
    /// `JOB_CONCURRENCY_TEXT`); the lane holds `TEXT_JOBS_PER_EXTRACTION` times as many
    /// jobs. `ocr_concurrency` is the OCR lane's (images, scans).
    pub text_concurrency: usize,
    /// OCR-lane jobs of one project running at once, on all nodes together
    /// (`OCR_MAX_RUNNING_PER_PROJECT`).
    pub ocr_max_running_per_project: usize,
}

/// Google Document AI (OCR of PDFs and images) and Speech-to-Text.
#[derive(Debug, Clone)]
pub struct GoogleEngines {
    /// The service-account key (`GOOGLE_APPLICATION_CREDENTIALS`); its `token_uri` is
    /// where tokens come from.
    pub credentials: PathBuf,
    /// `DOCUMENT_AI_PROCESSOR`: `projects/P/locations/L/processors/ID`.
    pub document_ai_processor: Option<String>,
    /// `DOCUMENT_AI_ENDPOINT`.
    pub document_ai_endpoint: String,
    /// `SPEECH_TO_TEXT=google`.
    pub speech: bool,
    /// `SPEECH_ENDPOINT`.
    pub speech_endpoint: String,
    /// `SPEECH_DEFAULT_LANGUAGE`: for recordings without a language.
    pub speech_default_language: String,
    /// `SPEECH_POLL_INTERVAL_MS`: between polls of a long-running recognition.
    pub speech_poll_interval: Duration,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        Self {
            ocr_concurrency: 2,
            transcription_concurrency: 2,
            ocr_languages: "eng".into(),
            ocr_timeout: Duration::from_secs(600),
            google: None,
            extract_executable: None,
            extract_memory_bytes: 1024 * 1024 * 1024,
            extract_cpu_seconds: 600,
            pdf_max_pages: 2000,
            pdf_max_page_content_bytes: 4 * 1024 * 1024,
            ocr_page_timeout: Duration::from_secs(60),
            text_concurrency: 2,
            ocr_max_running_per_project: 1,
        }
    }
}

/// Where blobs are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobConfig {
    /// A local folder (`$DATA_DIR/blobs`).
    Local { root: PathBuf },
    /// A Google Cloud Storage bucket (`GCS_BUCKET_NAME`).
    Gcs {
        bucket: String,
        /// `GCS_ENDPOINT`: another endpoint than the real service (emulators).
        endpoint: Option<String>,
        /// `GCS_ANONYMOUS`: send no credentials (emulators). Otherwise Application
        /// Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS` when set).
        anonymous: bool,
        /// Export downloads answer with a signed URL valid this long
        /// (`GCS_SIGNED_URL_SECONDS`, 900; `None`: they stream through the server).
        signed_url_ttl: Option<std::time::Duration>,
        /// The service-account key that signs them (`GOOGLE_APPLICATION_CREDENTIALS`);
        /// without one, Application Default Credentials sign (none when anonymous).
        signing_key: Option<PathBuf>,
    },
}

pub use crate::auth::jwt::JwtConfig;

#[derive(Debug, Clone)]
pub struct MailConfig {
    /// The From: address.
    pub from: String,
    pub transport: MailTransport,
}

#[derive(Debug, Clone)]
pub enum MailTransport {
    /// Write each message as an `.eml` file into `dir` (the embedded default). With
    /// `log_links` (not in production) its first link is also logged, where a developer
    /// looks; in production a link is a credential and stays out of the log.
    Outbox {
        dir: PathBuf,
        log_links: bool,
    },
    Smtp(SmtpConfig),
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub tls: SmtpTls,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP (a local relay or a test sink).
    None,
    /// Upgrade with STARTTLS; refuse to send if the server does not offer it.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// A rate: `burst` requests at once, refilled at `burst` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub period: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Per client IP, for each sensitive auth operation (login, register, resend, verify).
    pub auth_per_ip: Rate,
    /// Per account (normalised email), for login and resend.
    pub auth_per_account: Rate,
}

#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// How often an idle worker looks for due jobs (a new job also wakes it at once).
    pub poll_interval: Duration,
    /// How long a claimed job stays leased before another worker may take it.
    pub lease: Duration,
    /// Attempts before a job is parked as `failed`.
    pub max_attempts: i32,
    /// First retry delay; doubled on every attempt, with jitter, capped at `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Mail jobs handled at once by one worker.
    pub mail_concurrency: usize,
    /// Finished jobs are deleted this long after they finished (failed ones stay).
    pub retention: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            max_attempts: 8,
            base_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(3600),
            mail_concurrency: 4,
            retention: Duration::from_secs(14 * 86_400),
        }
    }
}
