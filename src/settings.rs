//! Settings: one typed struct read from the environment (and `.env`), defaults in
//! code, validated at startup. Every error names the variable at fault, and secrets
//! never appear in `Debug` output.
//!
//! Variable names follow the seed's configuration table; README.md lists them all.

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use alta_actors::config::{
    BlobConfig, EngineConfig, ExportsConfig, GoogleEngines, GoogleSignInConfig, JobsConfig,
    JwtConfig, MailConfig, MailTransport, ProcessingConfig, Rate, RateLimits, ReviewConfig,
    SmtpConfig, SmtpTls, WebauthnConfig, WebhooksConfig,
};
use secrecy::{ExposeSecret, SecretString};

/// A setting that is wrong, and why.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct SettingsError {
    pub var: &'static str,
    pub message: String,
}

fn err(var: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        var,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Test,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub app_env: AppEnv,
    pub app_name: String,
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub public_url: String,
    /// `postgres://…` or `sqlite:…` (may hold a password, hence secret).
    pub database_url: SecretString,
    /// True only for the embedded default database file.
    pub create_sqlite_file: bool,
    pub database_max_connections: u32,
    pub secret_key: SecretString,
    pub jwt_alg: jsonwebtoken::Algorithm,
    pub access_token_ttl: Duration,
    pub refresh_idle: Duration,
    pub refresh_absolute: Duration,
    pub redis_url: Option<SecretString>,
    pub redis_key_prefix: String,
    pub smtp: Option<SmtpConfig>,
    pub smtp_from: String,
    pub gcs_project_id: Option<String>,
    pub gcs_bucket_name: Option<String>,
    /// `GCS_ENDPOINT`: another Cloud Storage endpoint (an emulator); unset = the real one.
    pub gcs_endpoint: Option<String>,
    /// `GCS_ANONYMOUS`: send no credentials to Cloud Storage (emulators only).
    pub gcs_anonymous: bool,
    /// `GCS_SIGNED_URL_SECONDS` (0: export downloads stream through the server).
    pub gcs_signed_url_ttl: Option<Duration>,
    pub google_application_credentials: Option<PathBuf>,
    /// Google sign-in (`GOOGLE_CLIENT_ID` and friends); `None` when it is off.
    pub google_signin: Option<GoogleSignInConfig>,
    pub webauthn: WebauthnConfig,
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<IpAddr>,
    pub max_body_bytes: usize,
    pub rate_limits: RateLimits,
    pub password_hash_concurrency: usize,
    pub email_verification_ttl: Duration,
    pub jobs: JobsConfig,
    pub project_actor_idle: Duration,
    pub project_group_max: usize,
    pub project_restore_retention: Duration,
    pub upload_concurrency: usize,
    /// Where `alta worker` serves /metrics and /health.
    pub worker_metrics_port: u16,
    /// Largest upload request body (the per-project limits apply within it).
    pub max_upload_bytes: u64,
    pub max_audio_seconds: f64,
    pub audio_analysis_timeout: Duration,
    pub resumable_upload_expiry: Duration,
    pub sweep_interval: Duration,
    pub orphan_grace: Duration,
    pub review: ReviewConfig,
    pub exports: ExportsConfig,
    pub webhooks: WebhooksConfig,
    pub processing: ProcessingConfig,
    /// Several nodes share the database and Redis: refuses embedded parts.
    pub multi_node: bool,
    /// `SERVE_WORKERS`: `alta serve` runs the job workers too (false: the API only, for
    /// deployments whose jobs run on `alta worker` processes).
    pub serve_workers: bool,
    pub log_format: LogFormat,
    /// At most one sign-up mail per address in this time (`REGISTER_MAIL_INTERVAL_SECONDS`).
    pub register_mail_interval: Duration,
    /// `METRICS_TOKEN`: `/metrics` wants `Authorization: Bearer <it>` (401 otherwise).
    pub metrics_token: Option<SecretString>,
    /// `METRICS_ADDR`: serve `/metrics` on its own listener there, not on the API port.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `ENGINE_CALL_TIMEOUT_MS`: how long a command may wait for its actor to begin it.
    pub call_timeout: Duration,
    /// `UPLOAD_PERMIT_WAIT_MS`: how long an upload waits for a permit before a 503.
    pub upload_permit_wait: Duration,
}

/// Reads variables from a snapshot of the environment (so tests pass their own).
struct Vars(HashMap<String, String>);

impl Vars {
    /// A set, non-blank value.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn parse<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, SettingsError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|e| err(name, format!("cannot parse {raw:?}: {e}"))),
        }
    }

    fn bool(&self, name: &'static str, default: bool) -> Result<bool, SettingsError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(err(name, format!("expected true or false, got {other:?}"))),
        }
    }

    fn list(&self, name: &str, default: &str) -> Vec<String> {
        self.0
            .get(name)
            .map(String::as_str)
            .unwrap_or(default)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl Settings {
    /// From the process environment, after loading `.env` if there is one.
    pub fn from_env() -> Result<Self, SettingsError> {
        if let Err(e) = dotenvy::dotenv()
            && !e.not_found()
        {
            return Err(err("(.env)", format!("cannot read .env: {e}")));
        }
        Self::from_vars(std::env::vars())
    }

    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let v = Vars(vars.into_iter().collect());

        let app_env = match v.get("APP_ENV").map(str::to_ascii_lowercase).as_deref() {
            None | Some("development" | "dev") => AppEnv::Development,
            Some("test") => AppEnv::Test,
            Some("production" | "prod") => AppEnv::Production,
            Some(other) => {
                return Err(err(
                    "APP_ENV",
                    format!("expected development, test or production, got {other:?}"),
                ));
            }
        };
        let production = app_env == AppEnv::Production;
        let app_name = v.get("APP_NAME").unwrap_or("alta_data").to_owned();
        let host: IpAddr = v.parse("HOST", IpAddr::from([127, 0, 0, 1]))?;
        let port: u16 = v.parse("PORT", 8000)?;
        let data_dir = PathBuf::from(v.get("DATA_DIR").unwrap_or("./data"));

        let public_url = match v.get("PUBLIC_URL") {
            Some(url) => {
                let parsed = url::Url::parse(url)
                    .map_err(|e| err("PUBLIC_URL", format!("not a URL: {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(err("PUBLIC_URL", "must be an http(s) URL with a host"));
                }
                url.trim_end_matches('/').to_owned()
            }
            None if production => {
                return Err(err(
                    "PUBLIC_URL",
                    "must be set in production (links in mail use it)",
                ));
            }
            None => format!("http://{}", std::net::SocketAddr::new(host, port)),
        };

        let (database_url, create_sqlite_file) = database_url(&v, &data_dir)?;
        let database_max_connections: u32 = v.parse("DATABASE_MAX_CONNECTIONS", 10)?;
        if database_max_connections == 0 {
            return Err(err("DATABASE_MAX_CONNECTIONS", "must be at least 1"));
        }

        let secret_key = secret_key(&v, app_env, &data_dir)?;
        let jwt_alg = match v.get("JWT_ALG").unwrap_or("HS256") {
            "HS256" => jsonwebtoken::Algorithm::HS256,
            "HS384" => jsonwebtoken::Algorithm::HS384,
            "HS512" => jsonwebtoken::Algorithm::HS512,
            other => {
                return Err(err(
                    "JWT_ALG",
                    format!("{other:?} is not supported; use HS256, HS384 or HS512"),
                ));
            }
        };
        let ttl: u64 = v.parse("ACCESS_TOKEN_TTL_SECONDS", 900)?;
        if !(60..=86_400).contains(&ttl) {
            return Err(err(
                "ACCESS_TOKEN_TTL_SECONDS",
                "must be between 60 and 86400",
            ));
        }
        let refresh_idle_days: u64 = v.parse("REFRESH_TOKEN_IDLE_DAYS", 30)?;
        let refresh_absolute_days: u64 = v.parse("REFRESH_TOKEN_ABSOLUTE_DAYS", 90)?;
        if refresh_idle_days == 0 || refresh_absolute_days < refresh_idle_days {
            return Err(err(
                "REFRESH_TOKEN_ABSOLUTE_DAYS",
                "REFRESH_TOKEN_IDLE_DAYS must be at least 1 and REFRESH_TOKEN_ABSOLUTE_DAYS at least as long",
            ));
        }

        let redis_url = v
            .get("REDIS_URL")
            .map(|url| SecretString::from(url.to_owned()));
        if let Some(url) = v.get("REDIS_URL")
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(err("REDIS_URL", "must start with redis:// or rediss://"));
        }
        let redis_key_prefix = v.get("REDIS_KEY_PREFIX").unwrap_or("alta:").to_owned();

        let smtp_from = v
            .get("SMTP_FROM")
            .unwrap_or("no-reply@altadata.local")
            .to_owned();
        if !smtp_from.contains('@') {
            return Err(err("SMTP_FROM", "must be an email address"));
        }
        let smtp = smtp(&v)?;

        let google_application_credentials =
            v.get("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from);
        if let Some(path) = &google_application_credentials
            && !path.is_file()
        {
            return Err(err(
                "GOOGLE_APPLICATION_CREDENTIALS",
                format!("{} is not a readable file", path.display()),
            ));
        }

        let google_signin = google_signin(&v, &public_url)?;

        let gcs_bucket_name = v.get("GCS_BUCKET_NAME").map(str::to_owned);
        if let Some(bucket) = &gcs_bucket_name {
            let ok = (3..=63).contains(&bucket.len())
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
                && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
                && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !ok {
                return Err(err(
                    "GCS_BUCKET_NAME",
                    format!("{bucket:?} is not a bucket name (3-63 of a-z 0-9 - _ .)"),
                ));
            }
        }
        let gcs_endpoint = v
            .get("GCS_ENDPOINT")
            .map(|e| e.trim_end_matches('/').to_owned());
        if let Some(endpoint) = &gcs_endpoint {
            let ok = url::Url::parse(endpoint)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if !ok {
                return Err(err(
                    "GCS_ENDPOINT",
                    format!("{endpoint:?} is not an http(s) URL like http://127.0.0.1:4443"),
                ));
            }
        }
        let gcs_anonymous = v.bool("GCS_ANONYMOUS", false)?;
        let signed_secs: u64 = v.parse("GCS_SIGNED_URL_SECONDS", 900)?;
        if signed_secs > 7 * 86_400 {
            return Err(err(
                "GCS_SIGNED_URL_SECONDS",
                "must be at most 604800 (7 days, what GCS allows)",
            ));
        }
        let gcs_signed_url_ttl = (signed_secs > 0).then(|| Duration::from_secs(signed_secs));

        let cors_origins = v.list("CORS_ORIGINS", "http://localhost:3000");
        for origin in &cors_origins {
            let ok = url::Url::parse(origin)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.path() == "/");
            if !ok || origin.ends_with('/') {
                return Err(err(
                    "CORS_ORIGINS",
                    format!("{origin:?} is not an origin like https://app.example.org"),
                ));
            }
        }
        let trusted_proxies = v
            .list("TRUSTED_PROXIES", "")
            .iter()
            .map(|ip| {
                ip.parse::<IpAddr>()
                    .map_err(|e| err("TRUSTED_PROXIES", format!("{ip:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let max_body_bytes: usize = v.parse("MAX_BODY_BYTES", 1024 * 1024)?;
        if max_body_bytes < 1024 {
            return Err(err("MAX_BODY_BYTES", "must be at least 1024"));
        }

        let rate_limits = RateLimits {
            auth_per_ip: rate(&v, "RATE_LIMIT_AUTH_PER_IP", "30/min")?,
            auth_per_account: rate(&v, "RATE_LIMIT_AUTH_PER_ACCOUNT", "10/min")?,
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let password_hash_concurrency: usize = v.parse("PASSWORD_HASH_CONCURRENCY", cores)?;
        if password_hash_concurrency == 0 {
            return Err(err("PASSWORD_HASH_CONCURRENCY", "must be at least 1"));
        }
        let verification_hours: u64 = v.parse("EMAIL_VERIFICATION_TTL_HOURS", 24)?;
        if !(1..=168).contains(&verification_hours) {
            return Err(err(
                "EMAIL_VERIFICATION_TTL_HOURS",
                "must be between 1 and 168",
            ));
        }

        let register_mail_secs: u64 = v.parse("REGISTER_MAIL_INTERVAL_SECONDS", 300)?;
        if register_mail_secs > 86_400 {
            return Err(err(
                "REGISTER_MAIL_INTERVAL_SECONDS",
                "must be between 0 and 86400",
            ));
        }

        let defaults = JobsConfig::default();
        let jobs = JobsConfig {
            poll_interval: Duration::from_millis(v.parse("JOB_POLL_INTERVAL_MS", 1000)?),
            lease: Duration::from_secs(v.parse("JOB_LEASE_SECONDS", 60)?),
            max_attempts: v.parse("JOB_MAX_ATTEMPTS", defaults.max_attempts)?,
            mail_concurrency: v.parse("MAIL_CONCURRENCY", defaults.mail_concurrency)?,
            retention: Duration::from_secs(
                v.parse("JOB_RETENTION_DAYS", defaults.retention.as_secs() / 86_400)?
                    .max(1)
                    * 86_400,
            ),
            base_backoff: Duration::from_millis(
                v.parse(
                    "JOB_BASE_BACKOFF_MS",
                    defaults.base_backoff.as_millis() as u64,
                )?
                .max(1),
            ),
            ..defaults
        };
        if jobs.poll_interval < Duration::from_millis(10) {
            return Err(err("JOB_POLL_INTERVAL_MS", "must be at least 10"));
        }
        if jobs.max_attempts < 1 {
            return Err(err("JOB_MAX_ATTEMPTS", "must be at least 1"));
        }

        let idle_secs: u64 = v.parse("PROJECT_ACTOR_IDLE_SECONDS", 300)?;
        if idle_secs == 0 {
            return Err(err("PROJECT_ACTOR_IDLE_SECONDS", "must be at least 1"));
        }
        let project_group_max: usize = v.parse("PROJECT_GROUP_COMMIT_MAX", 64)?;
        if !(1..=1000).contains(&project_group_max) {
            return Err(err("PROJECT_GROUP_COMMIT_MAX", "must be 1 to 1000"));
        }
        let retention_days: u64 = v.parse("PROJECT_RESTORE_RETENTION_DAYS", 30)?;

        let worker_metrics_port: u16 = v.parse("WORKER_METRICS_PORT", 9464)?;
        // Uploads mostly wait on the disk and the database; a few per core keep both busy.
        let upload_concurrency: usize = v.parse("UPLOAD_CONCURRENCY", (4 * cores).max(8))?;
        if upload_concurrency == 0 {
            return Err(err("UPLOAD_CONCURRENCY", "must be at least 1"));
        }
        let call_timeout_ms: u64 = v.parse("ENGINE_CALL_TIMEOUT_MS", 10_000)?;
        if !(10..=600_000).contains(&call_timeout_ms) {
            return Err(err(
                "ENGINE_CALL_TIMEOUT_MS",
                "must be between 10 and 600000 (milliseconds)",
            ));
        }
        let upload_permit_wait_ms: u64 = v.parse("UPLOAD_PERMIT_WAIT_MS", 5_000)?;
        if upload_permit_wait_ms > 600_000 {
            return Err(err(
                "UPLOAD_PERMIT_WAIT_MS",
                "must be at most 600000 (milliseconds)",
            ));
        }
        let max_upload_bytes: u64 =
            v.parse("MAX_UPLOAD_BYTES", 1024 * 1024 * 1024 + 1024 * 1024)?;
        let max_audio_seconds: f64 = v.parse("MAX_AUDIO_SECONDS", 4.0 * 3600.0)?;
        if !max_audio_seconds.is_finite() || max_audio_seconds <= 0.0 {
            return Err(err("MAX_AUDIO_SECONDS", "must be positive"));
        }
        let audio_timeout: u64 = v.parse("AUDIO_ANALYSIS_TIMEOUT_SECONDS", 300)?;
        let resumable_hours: u64 = v.parse("RESUMABLE_UPLOAD_EXPIRY_HOURS", 24)?;
        if resumable_hours == 0 {
            return Err(err("RESUMABLE_UPLOAD_EXPIRY_HOURS", "must be at least 1"));
        }
        let sweep_secs: u64 = v.parse("SWEEP_INTERVAL_SECONDS", 900)?;
        if sweep_secs == 0 {
            return Err(err("SWEEP_INTERVAL_SECONDS", "must be at least 1"));
        }
        let orphan_grace_secs: u64 = v.parse("ORPHAN_GRACE_SECONDS", 3600)?;
        let review_defaults = ReviewConfig::default();
        let review = ReviewConfig {
            lease: Duration::from_secs(
                v.parse("REVIEW_LEASE_SECONDS", review_defaults.lease.as_secs())?,
            ),
            digest_interval: Duration::from_secs(v.parse(
                "REVIEW_DIGEST_INTERVAL_SECONDS",
                review_defaults.digest_interval.as_secs(),
            )?),
            digest_min_gap: Duration::from_secs(v.parse(
                "REVIEW_DIGEST_MIN_GAP_SECONDS",
                review_defaults.digest_min_gap.as_secs(),
            )?),
        };
        if !(10..=86_400).contains(&review.lease.as_secs()) {
            return Err(err("REVIEW_LEASE_SECONDS", "must be between 10 and 86400"));
        }
        if review.digest_interval.is_zero() {
            return Err(err("REVIEW_DIGEST_INTERVAL_SECONDS", "must be at least 1"));
        }
        let export_defaults = ExportsConfig::default();
        let export_days: u64 = v.parse(
            "EXPORT_RETENTION_DAYS",
            export_defaults.retention.as_secs() / 86_400,
        )?;
        if !(1..=3650).contains(&export_days) {
            return Err(err("EXPORT_RETENTION_DAYS", "must be between 1 and 3650"));
        }
        let export_concurrency: usize =
            v.parse("JOB_CONCURRENCY_EXPORT", export_defaults.concurrency)?;
        if !(1..=64).contains(&export_concurrency) {
            return Err(err("JOB_CONCURRENCY_EXPORT", "must be between 1 and 64"));
        }
        let page_items: i64 = v.parse("EXPORT_PAGE_ITEMS", export_defaults.page_items)?;
        if !(1..=10_000).contains(&page_items) {
            return Err(err("EXPORT_PAGE_ITEMS", "must be between 1 and 10000"));
        }
        let checkpoint_ms: u64 = v.parse(
            "EXPORT_CHECKPOINT_MS",
            export_defaults.checkpoint_every.as_millis() as u64,
        )?;
        if checkpoint_ms > 600_000 {
            return Err(err("EXPORT_CHECKPOINT_MS", "must be at most 600000"));
        }
        let shard_max_bytes: u64 =
            v.parse("EXPORT_SHARD_MAX_BYTES", export_defaults.shard_max_bytes)?;
        if shard_max_bytes < 4096 {
            return Err(err("EXPORT_SHARD_MAX_BYTES", "must be at least 4096"));
        }
        let exports = ExportsConfig {
            retention: Duration::from_secs(export_days * 86_400),
            concurrency: export_concurrency,
            page_items,
            checkpoint_every: Duration::from_millis(checkpoint_ms),
            shard_max_bytes,
        };
        let hook_defaults = WebhooksConfig::default();
        let hook_timeout_ms: u64 = v.parse(
            "WEBHOOK_TIMEOUT_MS",
            hook_defaults.timeout.as_millis() as u64,
        )?;
        if !(100..=60_000).contains(&hook_timeout_ms) {
            return Err(err("WEBHOOK_TIMEOUT_MS", "must be between 100 and 60000"));
        }
        let hook_attempts: i32 = v.parse("WEBHOOK_MAX_ATTEMPTS", hook_defaults.max_attempts)?;
        if !(1..=20).contains(&hook_attempts) {
            return Err(err("WEBHOOK_MAX_ATTEMPTS", "must be between 1 and 20"));
        }
        let deactivate_hours: u64 = v.parse(
            "WEBHOOK_DEACTIVATE_AFTER_HOURS",
            hook_defaults.deactivate_after.as_secs() / 3600,
        )?;
        let hook_concurrency: usize =
            v.parse("JOB_CONCURRENCY_WEBHOOK", hook_defaults.concurrency)?;
        if !(1..=256).contains(&hook_concurrency) {
            return Err(err("JOB_CONCURRENCY_WEBHOOK", "must be between 1 and 256"));
        }
        let hook_retention_days: u64 = v.parse(
            "WEBHOOK_DELIVERY_RETENTION_DAYS",
            hook_defaults.retention.as_secs() / 86_400,
        )?;
        if !(1..=3650).contains(&hook_retention_days) {
            return Err(err(
                "WEBHOOK_DELIVERY_RETENTION_DAYS",
                "must be between 1 and 3650",
            ));
        }
        let webhooks = WebhooksConfig {
            allow_private: v.bool("WEBHOOK_ALLOW_PRIVATE", false)?,
            https_only: production,
            timeout: Duration::from_millis(hook_timeout_ms),
            max_attempts: hook_attempts,
            deactivate_after: Duration::from_secs(deactivate_hours.max(1) * 3600),
            concurrency: hook_concurrency,
            retention: Duration::from_secs(hook_retention_days * 86_400),
        };
        let defaults = ProcessingConfig::default();
        let processing = ProcessingConfig {
            ocr_concurrency: v.parse("JOB_CONCURRENCY_OCR", defaults.ocr_concurrency)?,
            transcription_concurrency: v.parse(
                "JOB_CONCURRENCY_TRANSCRIPTION",
                defaults.transcription_concurrency,
            )?,
            ocr_languages: v
                .get("OCR_LANGUAGES")
                .unwrap_or(&defaults.ocr_languages)
                .to_owned(),
            ocr_timeout: Duration::from_secs(v.parse("OCR_TIMEOUT_SECONDS", 600u64)?.max(1)),
            google: google_engines(&v, google_application_credentials.as_ref())?,
            extract_executable: v.get("EXTRACT_EXECUTABLE").map(PathBuf::from),
            extract_memory_bytes: v
                .parse("EXTRACT_MEMORY_MB", defaults.extract_memory_bytes >> 20)?
                .saturating_mul(1024 * 1024),
            extract_cpu_seconds: v.parse("EXTRACT_CPU_SECONDS", defaults.extract_cpu_seconds)?,
            pdf_max_pages: v.parse("PDF_MAX_PAGES", defaults.pdf_max_pages)?,
            pdf_max_page_content_bytes: v.parse(
                "PDF_MAX_PAGE_CONTENT_BYTES",
                defaults.pdf_max_page_content_bytes,
            )?,
            ocr_page_timeout: Duration::from_secs(v.parse(
                "OCR_PAGE_TIMEOUT_SECONDS",
                defaults.ocr_page_timeout.as_secs(),
            )?),
            text_concurrency: v.parse("JOB_CONCURRENCY_TEXT", defaults.text_concurrency)?,
            ocr_max_running_per_project: defaults.ocr_max_running_per_project,
        };
        // One project may not hold every OCR worker: by default all but one.
        let ocr_per_project_default = processing.ocr_concurrency.saturating_sub(1).max(1);
        let mut processing = processing;
        processing.ocr_max_running_per_project =
            v.parse("OCR_MAX_RUNNING_PER_PROJECT", ocr_per_project_default)?;
        if processing.text_concurrency == 0 {
            return Err(err("JOB_CONCURRENCY_TEXT", "must be at least 1"));
        }
        if processing.ocr_max_running_per_project == 0 {
            return Err(err("OCR_MAX_RUNNING_PER_PROJECT", "must be at least 1"));
        }
        if let Some(exe) = &processing.extract_executable
            && !exe.is_file()
        {
            return Err(err(
                "EXTRACT_EXECUTABLE",
                "must name the alta executable (a file that exists)",
            ));
        }
        if processing.extract_memory_bytes < 128 * 1024 * 1024 {
            return Err(err("EXTRACT_MEMORY_MB", "must be at least 128"));
        }
        if processing.extract_cpu_seconds == 0 {
            return Err(err("EXTRACT_CPU_SECONDS", "must be at least 1"));
        }
        if processing.pdf_max_pages == 0 {
            return Err(err("PDF_MAX_PAGES", "must be at least 1"));
        }
        if processing.pdf_max_page_content_bytes < 1024 {
            return Err(err("PDF_MAX_PAGE_CONTENT_BYTES", "must be at least 1024"));
        }
        if processing.ocr_page_timeout.is_zero() {
            return Err(err("OCR_PAGE_TIMEOUT_SECONDS", "must be at least 1"));
        }
        if processing.ocr_concurrency == 0 || processing.transcription_concurrency == 0 {
            return Err(err(
                "JOB_CONCURRENCY_OCR",
                "job concurrency must be at least 1 (JOB_CONCURRENCY_OCR, JOB_CONCURRENCY_TRANSCRIPTION)",
            ));
        }
        if !processing
            .ocr_languages
            .split('+')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(err(
                "OCR_LANGUAGES",
                "expected tesseract languages such as eng or eng+swa",
            ));
        }

        let multi_node = v.bool("MULTI_NODE", false)?;
        let serve_workers = v.bool("SERVE_WORKERS", true)?;
        let is_postgres = database_url.expose_secret().starts_with("postgres");
        if multi_node && !is_postgres {
            return Err(err(
                "MULTI_NODE",
                "several nodes need PostgreSQL: set DATABASE_URL or POSTGRES_*",
            ));
        }
        if multi_node && redis_url.is_none() {
            return Err(err(
                "MULTI_NODE",
                "several nodes need a shared Redis: set REDIS_URL",
            ));
        }

        let log_format = match v.get("LOG_FORMAT").map(str::to_ascii_lowercase).as_deref() {
            None if production => LogFormat::Json,
            None => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some("pretty" | "text") => LogFormat::Pretty,
            Some(other) => {
                return Err(err(
                    "LOG_FORMAT",
                    format!("expected json or pretty, got {other:?}"),
                ));
            }
        };

        let webauthn = webauthn(&v, &public_url, &cors_origins)?;

        // Outbox mail is a file per message with its live link: fine on a laptop, a leak
        // in production unless someone decided so (and there its links are not logged).
        let outbox_allowed = v.bool("MAIL_OUTBOX_IN_PRODUCTION", false)?;
        if production && smtp.is_none() && !outbox_allowed {
            return Err(err(
                "MAIL_OUTBOX_IN_PRODUCTION",
                "production sends mail through SMTP: set SMTP_HOST, or set \
                 MAIL_OUTBOX_IN_PRODUCTION=true to write mail to $DATA_DIR/outbox",
            ));
        }

        let metrics_token = match v.get("METRICS_TOKEN") {
            Some(token) if token.len() < 16 => {
                return Err(err("METRICS_TOKEN", "must be at least 16 characters"));
            }
            Some(token) => Some(SecretString::from(token.to_owned())),
            None => None,
        };
        let metrics_addr = match v.get("METRICS_ADDR") {
            Some(raw) => Some(raw.parse::<std::net::SocketAddr>().map_err(|e| {
                err(
                    "METRICS_ADDR",
                    format!("{raw:?} is not an address like 0.0.0.0:9100: {e}"),
                )
            })?),
            None => None,
        };
        if production && metrics_token.is_none() && metrics_addr.is_none() {
            return Err(err(
                "METRICS_TOKEN",
                "production does not serve /metrics to anyone: set METRICS_TOKEN (Prometheus \
                 sends it as a bearer token), or METRICS_ADDR to serve it on a listener of \
                 its own",
            ));
        }

        Ok(Self {
            app_env,
            app_name,
            host,
            port,
            data_dir,
            public_url,
            database_url,
            create_sqlite_file,
            database_max_connections,
            secret_key,
            jwt_alg,
            access_token_ttl: Duration::from_secs(ttl),
            refresh_idle: Duration::from_secs(refresh_idle_days * 86_400),
            refresh_absolute: Duration::from_secs(refresh_absolute_days * 86_400),
            redis_url,
            redis_key_prefix,
            smtp,
            smtp_from,
            gcs_project_id: v.get("GCS_PROJECT_ID").map(str::to_owned),
            gcs_bucket_name,
            gcs_endpoint,
            gcs_anonymous,
            gcs_signed_url_ttl,
            google_application_credentials,
            google_signin,
            webauthn,
            cors_origins,
            trusted_proxies,
            max_body_bytes,
            rate_limits,
            password_hash_concurrency,
            email_verification_ttl: Duration::from_secs(verification_hours * 3600),
            jobs,
            project_actor_idle: Duration::from_secs(idle_secs),
            project_group_max,
            project_restore_retention: Duration::from_secs(retention_days * 86_400),
            upload_concurrency,
            worker_metrics_port,
            max_upload_bytes,
            max_audio_seconds,
            audio_analysis_timeout: Duration::from_secs(audio_timeout.max(1)),
            resumable_upload_expiry: Duration::from_secs(resumable_hours * 3600),
            sweep_interval: Duration::from_secs(sweep_secs),
            orphan_grace: Duration::from_secs(orphan_grace_secs),
            review,
            exports,
            webhooks,
            processing,
            multi_node,
            serve_workers,
            log_format,
            register_mail_interval: Duration::from_secs(register_mail_secs),
            metrics_token,
            metrics_addr,
            call_timeout: Duration::from_millis(call_timeout_ms),
            upload_permit_wait: Duration::from_millis(upload_permit_wait_ms),
        })
    }

    /// What the engine needs, derived from these settings.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            public_url: self.public_url.clone(),
            jwt: JwtConfig {
                secret: self.secret_key.clone(),
                algorithm: self.jwt_alg,
                issuer: self.app_name.clone(),
                audience: format!("{}-api", self.app_name),
                access_ttl: self.access_token_ttl,
                refresh_idle: self.refresh_idle,
                refresh_absolute: self.refresh_absolute,
            },
            mail: MailConfig {
                from: self.smtp_from.clone(),
                transport: match &self.smtp {
                    Some(smtp) => MailTransport::Smtp(smtp.clone()),
                    None => MailTransport::Outbox {
                        dir: self.data_dir.join("outbox"),
                        log_links: self.app_env != AppEnv::Production,
                    },
                },
            },
            rate_limits: self.rate_limits,
            redis_url: self
                .redis_url
                .as_ref()
                .map(|u| u.expose_secret().to_owned()),
            redis_key_prefix: self.redis_key_prefix.clone(),
            password_hash_concurrency: self.password_hash_concurrency,
            email_verification_ttl: self.email_verification_ttl,
            jobs: self.jobs.clone(),
            project_actor_idle: self.project_actor_idle,
            project_group_max: self.project_group_max,
            project_restore_retention: self.project_restore_retention,
            blob_root: self.data_dir.join("blobs"),
            blobs: match &self.gcs_bucket_name {
                Some(bucket) => BlobConfig::Gcs {
                    bucket: bucket.clone(),
                    endpoint: self.gcs_endpoint.clone(),
                    anonymous: self.gcs_anonymous,
                    signed_url_ttl: self.gcs_signed_url_ttl,
                    signing_key: self.google_application_credentials.clone(),
                },
                None => BlobConfig::Local {
                    root: self.data_dir.join("blobs"),
                },
            },
            upload_concurrency: self.upload_concurrency,
            max_audio_seconds: self.max_audio_seconds,
            audio_analysis_timeout: self.audio_analysis_timeout,
            resumable_upload_expiry: self.resumable_upload_expiry,
            shared_resumable_parts: self.multi_node,
            sweep_interval: self.sweep_interval,
            orphan_grace: self.orphan_grace,
            processing: self.processing.clone(),
            review: self.review.clone(),
            exports: self.exports.clone(),
            webhooks: self.webhooks.clone(),
            webauthn: self.webauthn.clone(),
            google_signin: self.google_signin.clone(),
            register_mail_interval: self.register_mail_interval,
            call_timeout: self.call_timeout,
            upload_permit_wait: self.upload_permit_wait,
        }
    }
}

/// The passkey relying party. The RP id defaults to PUBLIC_URL's host (`localhost` when
/// that is an IP address, which cannot be an RP id); the origins to the CORS origins
/// that fall under it, else PUBLIC_URL's own origin. Set values are checked strictly:
/// every origin must be the RP id or a subdomain of it, over https (http only for
/// localhost, which browsers treat as secure).
fn webauthn(
    v: &Vars,
    public_url: &str,
    cors_origins: &[String],
) -> Result<WebauthnConfig, SettingsError> {
    let public = url::Url::parse(public_url).map_err(|e| err("PUBLIC_URL", e.to_string()))?;
    let rp_id = match v.get("WEBAUTHN_RP_ID") {
        Some(id) => {
            let id = id.trim().to_ascii_lowercase();
            let domain_ok = url::Host::parse(&id).is_ok_and(|h| matches!(h, url::Host::Domain(_)))
                && !id.contains(['/', ':']);
            if !domain_ok {
                return Err(err(
                    "WEBAUTHN_RP_ID",
                    format!("{id:?} is not a domain like data.example.org or localhost"),
                ));
            }
            id
        }
        None => match public.host() {
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            _ => "localhost".into(),
        },
    };
    let rp_name = v
        .get("WEBAUTHN_RP_NAME")
        .unwrap_or("Alta Data")
        .trim()
        .to_owned();
    if rp_name.is_empty() || rp_name.chars().count() > 64 {
        return Err(err("WEBAUTHN_RP_NAME", "must be 1 to 64 characters"));
    }
    let fits = |u: &url::Url| {
        let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
        let under = host == rp_id || host.ends_with(&format!(".{rp_id}"));
        let secure = u.scheme() == "https" || (u.scheme() == "http" && host == "localhost");
        under && secure && u.path() == "/" && u.query().is_none()
    };
    let origins = match v.get("WEBAUTHN_ORIGINS") {
        Some(_) => {
            let mut origins = Vec::new();
            for origin in v.list("WEBAUTHN_ORIGINS", "") {
                let parsed = url::Url::parse(&origin).ok().filter(|u| fits(u));
                match parsed {
                    Some(u) if !origin.ends_with('/') => origins.push(u),
                    _ => {
                        return Err(err(
                            "WEBAUTHN_ORIGINS",
                            format!(
                                "{origin:?} is not an https origin on {rp_id} or a subdomain \
                                 of it (http only for localhost), like https://{rp_id}"
                            ),
                        ));
                    }
                }
            }
            if origins.is_empty() {
                return Err(err("WEBAUTHN_ORIGINS", "name at least one origin"));
            }
            origins
        }
        None => {
            let mut origins: Vec<url::Url> = cors_origins
                .iter()
                .filter_map(|o| url::Url::parse(o).ok())
                .filter(|u| fits(u))
                .collect();
            if origins.is_empty() {
                let mut own = public.clone();
                own.set_path("/");
                if fits(&own) {
                    origins.push(own);
                }
            }
            origins
        }
    };
    Ok(WebauthnConfig {
        rp_id,
        rp_name,
        origins,
    })
}

/// Google Document AI and Speech-to-Text: each on when asked for, and then only with a
/// service-account key.
fn google_engines(
    v: &Vars,
    credentials: Option<&PathBuf>,
) -> Result<Option<GoogleEngines>, SettingsError> {
    let processor = v.get("DOCUMENT_AI_PROCESSOR").map(str::to_owned);
    if let Some(p) = &processor {
        let parts: Vec<&str> = p.split('/').collect();
        let ok = parts.len() == 6
            && parts[0] == "projects"
            && parts[2] == "locations"
            && parts[4] == "processors"
            && parts.iter().all(|s| !s.is_empty());
        if !ok {
            return Err(err(
                "DOCUMENT_AI_PROCESSOR",
                "expected projects/PROJECT/locations/LOCATION/processors/ID",
            ));
        }
    }
    let speech = match v
        .get("SPEECH_TO_TEXT")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("none") => false,
        Some("google") => true,
        Some(other) => {
            return Err(err(
                "SPEECH_TO_TEXT",
                format!("expected google or none, got {other:?}"),
            ));
        }
    };
    if processor.is_none() && !speech {
        return Ok(None);
    }
    let Some(credentials) = credentials else {
        let name = if speech {
            "SPEECH_TO_TEXT"
        } else {
            "DOCUMENT_AI_PROCESSOR"
        };
        return Err(err(
            name,
            "Google engines need a service-account key: set GOOGLE_APPLICATION_CREDENTIALS",
        ));
    };
    let url = |name: &'static str, default: &str| -> Result<String, SettingsError> {
        let value = v
            .get(name)
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_owned();
        if value.starts_with("https://") || value.starts_with("http://") {
            Ok(value)
        } else {
            Err(err(name, "expected an http(s) URL"))
        }
    };
    Ok(Some(GoogleEngines {
        credentials: credentials.clone(),
        document_ai_endpoint: url("DOCUMENT_AI_ENDPOINT", "https://documentai.googleapis.com")?,
        document_ai_processor: processor,
        speech,
        speech_endpoint: url("SPEECH_ENDPOINT", "https://speech.googleapis.com")?,
        speech_default_language: v
            .get("SPEECH_DEFAULT_LANGUAGE")
            .unwrap_or("en-US")
            .to_owned(),
        speech_poll_interval: Duration::from_millis(
            v.parse("SPEECH_POLL_INTERVAL_MS", 5000u64)?.max(10),
        ),
    }))
}

/// Google sign-in: on when `GOOGLE_CLIENT_ID` is set, and then the secret is required.
/// The issuer must be https (http only on a loopback host: a local provider in tests),
/// the redirect URIs http(s) URLs without a fragment.
fn google_signin(v: &Vars, public_url: &str) -> Result<Option<GoogleSignInConfig>, SettingsError> {
    let Some(client_id) = v.get("GOOGLE_CLIENT_ID") else {
        if v.get("GOOGLE_CLIENT_SECRET").is_some() {
            return Err(err(
                "GOOGLE_CLIENT_ID",
                "GOOGLE_CLIENT_SECRET is set but GOOGLE_CLIENT_ID is not: set both to turn on \
                 Google sign-in, or neither",
            ));
        }
        return Ok(None);
    };
    let client_secret = v.get("GOOGLE_CLIENT_SECRET").ok_or_else(|| {
        err(
            "GOOGLE_CLIENT_SECRET",
            "must be set when GOOGLE_CLIENT_ID is (the OAuth client's secret)",
        )
    })?;
    let issuer = v
        .get("GOOGLE_ISSUER_URL")
        .unwrap_or("https://accounts.google.com")
        .trim_end_matches('/')
        .to_owned();
    let issuer_ok = alta_actors::auth::oidc::acceptable_url(&issuer)
        && url::Url::parse(&issuer).is_ok_and(|u| u.query().is_none() && u.fragment().is_none());
    if !issuer_ok {
        return Err(err(
            "GOOGLE_ISSUER_URL",
            format!(
                "{issuer:?} is not an https URL like https://accounts.google.com \
                 (http only on a loopback host)"
            ),
        ));
    }
    let page = |name: &'static str, default: String| -> Result<String, SettingsError> {
        let value = v.get(name).map_or(default, str::to_owned);
        let ok = url::Url::parse(&value).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.fragment().is_none()
        });
        if ok {
            Ok(value)
        } else {
            Err(err(
                name,
                format!("{value:?} is not an http(s) URL without a #fragment"),
            ))
        }
    };
    Ok(Some(GoogleSignInConfig {
        client_id: client_id.to_owned(),
        client_secret: SecretString::from(client_secret.to_owned()),
        issuer,
        redirect_uri: page(
            "GOOGLE_REDIRECT_URI",
            format!("{public_url}/api/auth/google/callback"),
        )?,
        frontend_url: page("GOOGLE_SIGNIN_REDIRECT_URL", format!("{public_url}/"))?,
        provider: Default::default(),
    }))
}

/// `DATABASE_URL` wins; else `POSTGRES_*` when any is set; else SQLite under `DATA_DIR`.
fn database_url(v: &Vars, data_dir: &Path) -> Result<(SecretString, bool), SettingsError> {
    if let Some(url) = v.get("DATABASE_URL") {
        let ok = url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:");
        if !ok {
            // Never fall back to a fresh SQLite file: that hides the real database.
            return Err(err(
                "DATABASE_URL",
                "must start with postgres://, postgresql:// or sqlite:",
            ));
        }
        if url.starts_with("postgres") {
            url::Url::parse(url)
                .map_err(|e| err("DATABASE_URL", format!("not a valid URL: {e}")))?;
        }
        return Ok((SecretString::from(url.to_owned()), false));
    }
    const PG_VARS: [&str; 5] = [
        "POSTGRES_HOST",
        "POSTGRES_PORT",
        "POSTGRES_DB",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
    ];
    if PG_VARS.iter().any(|name| v.get(name).is_some()) {
        let port: u16 = v.parse("POSTGRES_PORT", 5432)?;
        let mut url = url::Url::parse("postgres://localhost")
            .map_err(|e| err("POSTGRES_HOST", e.to_string()))?;
        url.set_host(Some(v.get("POSTGRES_HOST").unwrap_or("localhost")))
            .map_err(|e| err("POSTGRES_HOST", e.to_string()))?;
        let _ = url.set_port(Some(port));
        let _ = url.set_username(v.get("POSTGRES_USER").unwrap_or("postgres"));
        let _ = url.set_password(Some(v.get("POSTGRES_PASSWORD").unwrap_or("postgres")));
        url.set_path(v.get("POSTGRES_DB").unwrap_or("alta_data"));
        return Ok((SecretString::from(url.to_string()), false));
    }
    let file = data_dir.join("alta.db");
    Ok((
        SecretString::from(format!("sqlite://{}", file.display())),
        true,
    ))
}

/// In development the key is generated once and kept in `DATA_DIR/secret_key`; in
/// production it must be given, and be a real secret.
fn secret_key(v: &Vars, env: AppEnv, data_dir: &Path) -> Result<SecretString, SettingsError> {
    match v.get("SECRET_KEY") {
        Some(key) if env == AppEnv::Production && (key == "changeme" || key.len() < 32) => {
            Err(err(
                "SECRET_KEY",
                "must be at least 32 bytes of random text in production (and never `changeme`)",
            ))
        }
        Some(key) if key.len() < 16 => Err(err("SECRET_KEY", "must be at least 16 bytes")),
        Some(key) => Ok(SecretString::from(key.to_owned())),
        None if env == AppEnv::Production => Err(err("SECRET_KEY", "must be set in production")),
        None => {
            let path = data_dir.join("secret_key");
            if let Ok(existing) = std::fs::read_to_string(&path) {
                let existing = existing.trim();
                if existing.len() >= 32 {
                    return Ok(SecretString::from(existing.to_owned()));
                }
            }
            std::fs::create_dir_all(data_dir).map_err(|e| {
                err(
                    "DATA_DIR",
                    format!("cannot create {}: {e}", data_dir.display()),
                )
            })?;
            let mut bytes = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
            let key = hex::encode(bytes);
            write_private(&path, &key).map_err(|e| {
                err(
                    "SECRET_KEY",
                    format!(
                        "unset, and cannot keep a generated one in {}: {e}",
                        path.display()
                    ),
                )
            })?;
            Ok(SecretString::from(key))
        }
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

fn smtp(v: &Vars) -> Result<Option<SmtpConfig>, SettingsError> {
    let Some(host) = v.get("SMTP_HOST") else {
        return Ok(None);
    };
    let port: u16 = v.parse("SMTP_PORT", 25)?;
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let tls = match v.get("SMTP_TLS").map(str::to_ascii_lowercase).as_deref() {
        Some("none") => SmtpTls::None,
        Some("starttls") => SmtpTls::StartTls,
        Some("tls") => SmtpTls::Tls,
        // Unset: implicit TLS on 465, none for a relay on this machine, STARTTLS otherwise.
        None if port == 465 => SmtpTls::Tls,
        None if loopback => SmtpTls::None,
        None => SmtpTls::StartTls,
        Some(other) => {
            return Err(err(
                "SMTP_TLS",
                format!("expected none, starttls or tls, got {other:?}"),
            ));
        }
    };
    let username = v.get("SMTP_USER").map(str::to_owned);
    let password = v
        .get("SMTP_PASSWORD")
        .map(|p| SecretString::from(p.to_owned()));
    if username.is_some() != password.is_some() {
        return Err(err(
            "SMTP_PASSWORD",
            "SMTP_USER and SMTP_PASSWORD go together",
        ));
    }
    Ok(Some(SmtpConfig {
        host: host.to_owned(),
        port,
        username,
        password,
        tls,
        timeout: Duration::from_secs(v.parse("SMTP_TIMEOUT_SECONDS", 30)?),
    }))
}

/// `N/sec`, `N/min` or `N/hour`: a burst of N, refilled at N per period.
fn rate(v: &Vars, name: &'static str, default: &str) -> Result<Rate, SettingsError> {
    let raw = v.get(name).unwrap_or(default);
    let bad = || {
        err(
            name,
            format!("{raw:?} is not a rate like 30/min (units: sec, min, hour)"),
        )
    };
    let (count, unit) = raw.split_once('/').ok_or_else(bad)?;
    let burst: u32 = count.trim().parse().map_err(|_| bad())?;
    let period = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    if burst == 0 {
        return Err(err(name, "must allow at least 1 request"));
    }
    Ok(Rate { burst, period })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let dir = std::env::temp_dir().join(format!("alta-settings-{}", uuid::Uuid::new_v4()));
        let mut all = vec![("DATA_DIR".to_owned(), dir.display().to_string())];
        all.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        all
    }

    fn error_var(pairs: &[(&str, &str)]) -> &'static str {
        Settings::from_vars(vars(pairs)).unwrap_err().var
    }

    #[test]
    fn defaults_are_embedded_and_safe() {
        let s = Settings::from_vars(vars(&[])).unwrap();
        assert!(s.database_url.expose_secret().starts_with("sqlite://"));
        assert!(s.create_sqlite_file);
        assert_eq!(s.port, 8000);
        assert_eq!(s.host, IpAddr::from([127, 0, 0, 1]));
        assert!(s.smtp.is_none() && s.redis_url.is_none());
        assert_eq!(s.public_url, "http://127.0.0.1:8000");
        // The generated key is kept and reused.
        let again =
            Settings::from_vars(vec![("DATA_DIR".into(), s.data_dir.display().to_string())])
                .unwrap();
        assert_eq!(
            again.secret_key.expose_secret(),
            s.secret_key.expose_secret()
        );
        assert_eq!(s.secret_key.expose_secret().len(), 64);
    }

    #[test]
    fn blob_store_follows_gcs_bucket_name() {
        let s = Settings::from_vars(vars(&[])).unwrap();
        assert!(matches!(s.engine_config().blobs, BlobConfig::Local { .. }));
        let s = Settings::from_vars(vars(&[
            ("GCS_BUCKET_NAME", "alta-blobs"),
            ("GCS_ENDPOINT", "http://127.0.0.1:4443/"),
            ("GCS_ANONYMOUS", "true"),
        ]))
        .unwrap();
        assert_eq!(
            s.engine_config().blobs,
            BlobConfig::Gcs {
                bucket: "alta-blobs".into(),
                endpoint: Some("http://127.0.0.1:4443".into()),
                anonymous: true,
                signed_url_ttl: Some(Duration::from_secs(900)),
                signing_key: None,
            }
        );
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(error_var(&[("DATABASE_URL", "mysql://x")]), "DATABASE_URL");
        assert_eq!(
            error_var(&[("DATABASE_URL", "/tmp/alta.db")]),
            "DATABASE_URL"
        );
        assert_eq!(error_var(&[("PORT", "eighty")]), "PORT");
        assert_eq!(error_var(&[("JWT_ALG", "none")]), "JWT_ALG");
        assert_eq!(error_var(&[("JWT_ALG", "RS256")]), "JWT_ALG");
        assert_eq!(error_var(&[("APP_ENV", "staging")]), "APP_ENV");
        assert_eq!(
            error_var(&[("CORS_ORIGINS", "not an origin")]),
            "CORS_ORIGINS"
        );
        assert_eq!(
            error_var(&[("RATE_LIMIT_AUTH_PER_IP", "10/fortnight")]),
            "RATE_LIMIT_AUTH_PER_IP"
        );
        assert_eq!(error_var(&[("REDIS_URL", "localhost:6379")]), "REDIS_URL");
        assert_eq!(error_var(&[("MULTI_NODE", "true")]), "MULTI_NODE");
        assert_eq!(
            error_var(&[("SMTP_HOST", "mail"), ("SMTP_TLS", "maybe")]),
            "SMTP_TLS"
        );
        assert_eq!(
            error_var(&[("GCS_BUCKET_NAME", "No/Such")]),
            "GCS_BUCKET_NAME"
        );
        assert_eq!(
            error_var(&[("GCS_ENDPOINT", "127.0.0.1:4443")]),
            "GCS_ENDPOINT"
        );
        assert_eq!(error_var(&[("GCS_ANONYMOUS", "maybe")]), "GCS_ANONYMOUS");
        assert_eq!(
            error_var(&[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")]),
            "GOOGLE_APPLICATION_CREDENTIALS"
        );
    }

    #[test]
    fn production_refuses_weak_or_missing_secrets() {
        let prod = [
            ("APP_ENV", "production"),
            ("PUBLIC_URL", "https://data.example.org"),
        ];
        assert_eq!(error_var(&prod), "SECRET_KEY");
        assert_eq!(
            error_var(&[prod[0], prod[1], ("SECRET_KEY", "changeme")]),
            "SECRET_KEY"
        );
        assert_eq!(
            error_var(&[prod[0], prod[1], ("SECRET_KEY", "short-but-not-changeme")]),
            "SECRET_KEY"
        );
        assert_eq!(
            error_var(&[prod[0], ("SECRET_KEY", &"k".repeat(40))]),
            "PUBLIC_URL"
        );
        let key = "k".repeat(40);
        let ok = Settings::from_vars(vars(&[
            prod[0],
            prod[1],
            ("SECRET_KEY", &key),
            ("SMTP_HOST", "smtp.example.org"),
            ("METRICS_TOKEN", "a-scrape-token-of-some-length"),
        ]))
        .unwrap();
        assert_eq!(ok.log_format, LogFormat::Json);
    }

    #[test]
    fn production_refuses_the_outbox_and_anonymous_metrics_unless_told() {
        let key = "k".repeat(40);
        let prod = [
            ("APP_ENV", "production"),
            ("PUBLIC_URL", "https://data.example.org"),
            ("SECRET_KEY", key.as_str()),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all: Vec<(&str, &str)> = prod.to_vec();
            all.extend_from_slice(extra);
            all
        };
        let metrics = ("METRICS_TOKEN", "a-scrape-token-of-some-length");
        assert_eq!(error_var(&with(&[metrics])), "MAIL_OUTBOX_IN_PRODUCTION");
        let s = Settings::from_vars(vars(&with(&[
            metrics,
            ("MAIL_OUTBOX_IN_PRODUCTION", "true"),
        ])))
        .unwrap();
        assert!(s.smtp.is_none());
        let smtp = ("SMTP_HOST", "smtp.example.org");
        assert_eq!(error_var(&with(&[smtp])), "METRICS_TOKEN");
        assert_eq!(
            error_var(&with(&[smtp, ("METRICS_TOKEN", "short")])),
            "METRICS_TOKEN"
        );
        assert_eq!(
            error_var(&with(&[smtp, ("METRICS_ADDR", "9100")])),
            "METRICS_ADDR"
        );
        let s =
            Settings::from_vars(vars(&with(&[smtp, ("METRICS_ADDR", "0.0.0.0:9100")]))).unwrap();
        assert_eq!(s.metrics_addr, Some("0.0.0.0:9100".parse().unwrap()));
        // Outside production neither is required.
        let s = Settings::from_vars(vars(&[])).unwrap();
        assert!(s.metrics_token.is_none() && s.metrics_addr.is_none());
    }

    #[test]
    fn postgres_variables_build_a_url_and_database_url_wins() {
        let s =
            Settings::from_vars(vars(&[("POSTGRES_HOST", "db"), ("POSTGRES_DB", "alta")])).unwrap();
        assert_eq!(
            s.database_url.expose_secret(),
            "postgres://postgres:postgres@db:5432/alta"
        );
        let s = Settings::from_vars(vars(&[
            ("POSTGRES_HOST", "db"),
            ("DATABASE_URL", "sqlite:x.db"),
        ]))
        .unwrap();
        assert_eq!(s.database_url.expose_secret(), "sqlite:x.db");
        assert!(!s.create_sqlite_file);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = Settings::from_vars(vars(&[
            ("SECRET_KEY", "super-secret-signing-key-1234567890"),
            ("DATABASE_URL", "postgres://u:db-password-xyz@h/d"),
            ("SMTP_HOST", "mail.example.org"),
            ("SMTP_USER", "u"),
            ("SMTP_PASSWORD", "smtp-password-xyz"),
        ]))
        .unwrap();
        let debug = format!("{s:?}");
        for secret in [
            "super-secret-signing-key",
            "db-password-xyz",
            "smtp-password-xyz",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked into Debug");
        }
    }

    #[test]
    fn smtp_tls_defaults_follow_the_port_and_host() {
        let tls =
            |pairs: &[(&str, &str)]| Settings::from_vars(vars(pairs)).unwrap().smtp.unwrap().tls;
        assert_eq!(
            tls(&[("SMTP_HOST", "mail.example.org"), ("SMTP_PORT", "465")]),
            SmtpTls::Tls
        );
        assert_eq!(
            tls(&[("SMTP_HOST", "mail.example.org"), ("SMTP_PORT", "587")]),
            SmtpTls::StartTls
        );
        assert_eq!(
            tls(&[("SMTP_HOST", "127.0.0.1"), ("SMTP_PORT", "2525")]),
            SmtpTls::None
        );
    }

    #[test]
    fn webauthn_defaults_follow_the_frontend_and_checks_are_strict() {
        let w = |pairs: &[(&str, &str)]| Settings::from_vars(vars(pairs)).unwrap().webauthn;
        // Defaults: PUBLIC_URL is an IP address, so the RP is localhost, and the default
        // frontend origin (CORS_ORIGINS) is allowed.
        let d = w(&[]);
        assert_eq!(d.rp_id, "localhost");
        assert_eq!(d.rp_name, "Alta Data");
        assert_eq!(
            d.origins,
            vec![url::Url::parse("http://localhost:3000").unwrap()]
        );
        // A deployment: the RP is PUBLIC_URL's host; a frontend on another host does not
        // fall under it, so PUBLIC_URL's own origin is used.
        let p = w(&[
            ("PUBLIC_URL", "https://data.example.org"),
            ("CORS_ORIGINS", "https://other.example.com"),
        ]);
        assert_eq!(p.rp_id, "data.example.org");
        assert_eq!(
            p.origins,
            vec![url::Url::parse("https://data.example.org").unwrap()]
        );
        let e = w(&[
            ("WEBAUTHN_RP_ID", "example.org"),
            (
                "WEBAUTHN_ORIGINS",
                "https://app.example.org,https://example.org:8443",
            ),
        ]);
        assert_eq!(e.origins.len(), 2);
        for bad in [
            "https://evil.org",
            "http://app.example.org",
            "https://app.example.org/path",
            "not a url",
            "https://app.example.org/",
        ] {
            assert_eq!(
                error_var(&[("WEBAUTHN_RP_ID", "example.org"), ("WEBAUTHN_ORIGINS", bad)]),
                "WEBAUTHN_ORIGINS",
                "{bad}"
            );
        }
        for bad in ["10.0.0.1", "https://example.org", "example.org:443"] {
            assert_eq!(
                error_var(&[("WEBAUTHN_RP_ID", bad)]),
                "WEBAUTHN_RP_ID",
                "{bad}"
            );
        }
        assert_eq!(
            error_var(&[("WEBAUTHN_RP_NAME", &"x".repeat(65))]),
            "WEBAUTHN_RP_NAME"
        );
    }

    #[test]
    fn google_signin_is_off_without_a_client_id_and_checked_when_on() {
        let s = Settings::from_vars(vars(&[])).unwrap();
        assert!(s.google_signin.is_none() && s.engine_config().google_signin.is_none());

        let on = [
            ("PUBLIC_URL", "https://data.example.org"),
            ("GOOGLE_CLIENT_ID", "123.apps.googleusercontent.com"),
            ("GOOGLE_CLIENT_SECRET", "google-client-secret-xyz"),
        ];
        let s = Settings::from_vars(vars(&on)).unwrap();
        let g = s.engine_config().google_signin.unwrap();
        assert_eq!(g.client_id, "123.apps.googleusercontent.com");
        assert_eq!(g.issuer, "https://accounts.google.com");
        assert_eq!(
            g.redirect_uri,
            "https://data.example.org/api/auth/google/callback"
        );
        assert_eq!(g.frontend_url, "https://data.example.org/");
        assert!(!format!("{s:?}").contains("google-client-secret-xyz"));

        let s = Settings::from_vars(vars(&[
            on[0],
            on[1],
            on[2],
            ("GOOGLE_ISSUER_URL", "http://127.0.0.1:9999/"),
            (
                "GOOGLE_REDIRECT_URI",
                "https://api.example.org/api/auth/google/callback",
            ),
            (
                "GOOGLE_SIGNIN_REDIRECT_URL",
                "https://app.example.org/signin/google",
            ),
        ]))
        .unwrap();
        let g = s.google_signin.unwrap();
        assert_eq!(g.issuer, "http://127.0.0.1:9999");
        assert_eq!(
            g.redirect_uri,
            "https://api.example.org/api/auth/google/callback"
        );
        assert_eq!(g.frontend_url, "https://app.example.org/signin/google");

        assert_eq!(error_var(&[on[1]]), "GOOGLE_CLIENT_SECRET");
        assert_eq!(error_var(&[on[2]]), "GOOGLE_CLIENT_ID");
        for issuer in [
            "http://accounts.example.org",
            "accounts.google.com",
            "ftp://x",
        ] {
            assert_eq!(
                error_var(&[on[1], on[2], ("GOOGLE_ISSUER_URL", issuer)]),
                "GOOGLE_ISSUER_URL"
            );
        }
        assert_eq!(
            error_var(&[on[1], on[2], ("GOOGLE_REDIRECT_URI", "/callback")]),
            "GOOGLE_REDIRECT_URI"
        );
        assert_eq!(
            error_var(&[
                on[1],
                on[2],
                ("GOOGLE_SIGNIN_REDIRECT_URL", "https://app.example.org/#x")
            ]),
            "GOOGLE_SIGNIN_REDIRECT_URL"
        );
    }

    #[test]
    fn register_mail_interval_defaults_to_five_minutes_and_is_checked() {
        let s = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(s.register_mail_interval, Duration::from_secs(300));
        let s = Settings::from_vars(vars(&[("REGISTER_MAIL_INTERVAL_SECONDS", "0")])).unwrap();
        assert_eq!(s.engine_config().register_mail_interval, Duration::ZERO);
        for bad in ["-1", "ten", "86401"] {
            assert_eq!(
                error_var(&[("REGISTER_MAIL_INTERVAL_SECONDS", bad)]),
                "REGISTER_MAIL_INTERVAL_SECONDS"
            );
        }
    }

    #[test]
    fn engine_deadline_and_upload_wait_settings() {
        let s = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(s.call_timeout, Duration::from_secs(10));
        assert_eq!(s.upload_permit_wait, Duration::from_secs(5));
        assert!(s.upload_concurrency >= 8);
        let c = Settings::from_vars(vars(&[
            ("ENGINE_CALL_TIMEOUT_MS", "250"),
            ("UPLOAD_PERMIT_WAIT_MS", "0"),
        ]))
        .unwrap()
        .engine_config();
        assert_eq!(c.call_timeout, Duration::from_millis(250));
        assert_eq!(c.upload_permit_wait, Duration::ZERO);
        for bad in ["0", "9", "600001", "soon"] {
            assert_eq!(
                error_var(&[("ENGINE_CALL_TIMEOUT_MS", bad)]),
                "ENGINE_CALL_TIMEOUT_MS"
            );
        }
        for bad in ["600001", "-1"] {
            assert_eq!(
                error_var(&[("UPLOAD_PERMIT_WAIT_MS", bad)]),
                "UPLOAD_PERMIT_WAIT_MS"
            );
        }
    }
}
