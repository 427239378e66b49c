//! Sending a delivery: the `webhook` job. One attempt signs the stored body, sends it
//! once (10 s at most, no redirect followed, at most 64 KiB of the answer read) to an
//! address checked at the time of sending, and has the project's actor record how it
//! went. Deliveries about the same object wait for the earlier ones.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::transition::{AttemptOutcome, RecordAttempt};
use crate::{
    config::WebhooksConfig,
    context::{Principal, RequestContext},
    deps::Deps,
    domain::webhook::{
        check_addresses, is_forbidden, literal_ip, message_id, retry_delay, signature,
    },
    error::EngineError,
    jobs::worker::{JobEnd, JobFailure, JobHandler},
    metrics as m,
    project_actor::Projects,
    store::{self, jobs::JobRow},
};

pub const KIND_WEBHOOK: &str = "webhook";

/// The most of an answer that is read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The most of an answer that is kept with the attempt.
const KEPT_RESPONSE_BYTES: usize = 1024;

/// The payload of a `webhook` job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub delivery_id: Uuid,
    pub project_id: Uuid,
}

pub struct DeliveryHandler {
    projects: Projects,
    client: reqwest::Client,
    allow_private: bool,
}

impl DeliveryHandler {
    pub fn new(projects: Projects, cfg: &WebhooksConfig) -> Result<Self, EngineError> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, past the address check.
            .no_proxy()
            .user_agent(concat!(
                "alta-data-webhooks/",
                env!("CARGO_PKG_VERSION"),
                " (+https://www.standardwebhooks.com)"
            ))
            .dns_resolver(GuardedResolver {
                allow_private: cfg.allow_private,
            })
            .build()
            .map_err(EngineError::internal)?;
        Ok(Self {
            projects,
            client,
            allow_private: cfg.allow_private,
        })
    }
}

/// Resolves names for deliveries and refuses those that resolve to an address no
/// delivery may reach, at the moment of connecting (so a name that changed its
/// answer since the webhook was made, DNS rebinding, is caught too).
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private {
                let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
                check_addresses(&ips).map_err(|e| Box::new(Refused(e)) as Box<_>)?;
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A delivery refused because of where it would go.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

impl JobHandler for DeliveryHandler {
    const KIND: &'static str = KIND_WEBHOOK;

    fn concurrency(&self, deps: &Deps) -> usize {
        deps.config.webhooks.concurrency
    }

    fn retry_at(&self, _deps: &Deps, attempt: i32, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(retry_delay(attempt)).unwrap_or(chrono::Duration::hours(1))
    }

    async fn run(&self, deps: &Arc<Deps>, job: &JobRow) -> Result<JobEnd, JobFailure> {
        let payload: DeliveryJob = serde_json::from_value(job.payload.0.clone())?;
        let Some(delivery) = store::webhooks::delivery(&deps.db, payload.delivery_id).await? else {
            return Ok(JobEnd::Ran); // its webhook was deleted
        };
        if delivery.state != "pending" || delivery.job_id != Some(job.id) {
            return Ok(JobEnd::Ran); // settled, or redelivered by another job
        }
        let Some(hook) =
            store::webhooks::find(&deps.db, delivery.project_id, delivery.webhook_id).await?
        else {
            return Ok(JobEnd::Ran);
        };
        let now = deps.clock.now();
        let record = |outcome| RecordAttempt {
            webhook_id: hook.id,
            delivery_id: delivery.id,
            ordering_key: delivery.ordering_key.clone(),
            seq: delivery.seq,
            job_id: job.id,
            worker_id: deps.worker_id.clone(),
            last: job.attempts >= job.max_attempts,
            outcome,
        };
        // Nothing goes out for a webhook that was deactivated, or a project deleted
        // (a restored project's webhooks take its new events).
        let deleted = store::projects::find(&deps.db, delivery.project_id)
            .await?
            .is_none_or(|p| p.deleted_at.is_some());
        let not_sent = match (hook.active, deleted) {
            (false, _) => Some("the webhook is not active"),
            (true, true) => Some("the project is deleted"),
            (true, false) => None,
        };
        if let Some(why) = not_sent {
            self.record(&delivery.project_id, record(AttemptOutcome::NotSent(why)))
                .await?;
            return Ok(JobEnd::Recorded);
        }
        // Per object, in the order of the changes: wait for an earlier one still being
        // tried. It brings this one forward when it settles (`RecordAttempt`); until its
        // next run if it waits for a retry, or a lease's length if it is running now.
        if let Some(next_run) = store::webhooks::earlier_pending(&deps.db, &delivery).await? {
            let lease = chrono::Duration::from_std(deps.config.jobs.lease)
                .unwrap_or(chrono::Duration::seconds(60));
            let at = next_run.filter(|at| *at > now).unwrap_or(now + lease);
            let (worker, job_id) = (&deps.worker_id, job.id);
            if store::webhooks::postpone_behind(&deps.db, &delivery, job_id, worker, at, now)
                .await?
                || store::webhooks::earlier_pending(&deps.db, &delivery)
                    .await?
                    .is_some()
            {
                // Postponed; or still behind an earlier one with this job no longer
                // ours (its lease ran out): its holder goes on.
                return Ok(JobEnd::Postponed);
            }
            // The earlier one settled meanwhile: this one goes now.
        }
        let sent = self
            .send(
                &hook.url,
                &delivery.id,
                &hook.signing_secrets(now),
                &delivery.payload,
            )
            .await;
        metrics::counter!(m::WEBHOOK_ATTEMPTS_TOTAL, "outcome" => sent.metric()).increment(1);
        metrics::histogram!(m::WEBHOOK_ATTEMPT_SECONDS).record(sent.latency_ms as f64 / 1000.0);
        let failure = sent.failure();
        let recorded = self
            .record(&delivery.project_id, record(AttemptOutcome::Sent(sent)))
            .await;
        match (failure, recorded) {
            (None, Ok(())) => Ok(JobEnd::Recorded),
            (None, Err(err)) => Err(err),
            (Some(why), _) => Err(JobFailure(why)),
        }
    }
}

impl DeliveryHandler {
    async fn record(&self, project_id: &Uuid, attempt: RecordAttempt) -> Result<(), JobFailure> {
        let ctx = RequestContext::internal("webhook");
        match self
            .projects
            .apply(*project_id, &Principal::system(), &ctx, attempt)
            .await
        {
            Ok(()) => Ok(()),
            Err(err) => Err(JobFailure(format!("could not record the attempt: {err}"))),
        }
    }

    /// One attempt.
    async fn send(&self, url: &str, delivery_id: &Uuid, secrets: &[&str], body: &str) -> Sent {
        let started = Instant::now();
        let msg_id = message_id(*delivery_id);
        // The timestamp is the real time of sending: receivers check it against theirs.
        let timestamp = Utc::now().timestamp();
        let outcome = async {
            let parsed = url::Url::parse(url).map_err(|e| SendError::Other(e.to_string()))?;
            // An address written as such never reaches the resolver: check it here.
            if !self.allow_private
                && let Some(ip) = literal_ip(&parsed)
                && is_forbidden(ip)
            {
                return Err(SendError::Refused(format!(
                    "{ip} is a loopback, private, link-local or reserved address"
                )));
            }
            let mut response = self
                .client
                .post(parsed)
                .header("content-type", "application/json")
                .header("webhook-id", &msg_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    signature(secrets, &msg_id, timestamp, body.as_bytes()),
                )
                .body(body.to_owned())
                .send()
                .await
                .map_err(SendError::from_reqwest)?;
            let status = response.status().as_u16();
            let mut head = Vec::new();
            let mut read = 0usize;
            while read < MAX_RESPONSE_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        read += chunk.len();
                        let room = KEPT_RESPONSE_BYTES.saturating_sub(head.len());
                        head.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                    Ok(None) => break,
                    // The status is the answer; a body cut short does not undo it.
                    Err(_) => break,
                }
            }
            Ok((status, String::from_utf8_lossy(&head).into_owned()))
        }
        .await;
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        match outcome {
            Ok((status, response)) => Sent {
                status: Some(i32::from(status)),
                response: (!response.is_empty()).then_some(response),
                error: None,
                latency_ms,
            },
            Err(err) => Sent {
                status: None,
                response: None,
                error: Some(err),
                latency_ms,
            },
        }
    }
}

/// Why an attempt got no answer.
#[derive(Debug, Clone)]
pub(crate) enum SendError {
    Timeout,
    Refused(String),
    Other(String),
}

impl SendError {
    fn from_reqwest(err: reqwest::Error) -> Self {
        if err.is_timeout() {
            return Self::Timeout;
        }
        // The resolver's refusal arrives wrapped in the connection error.
        let mut source: Option<&dyn std::error::Error> = Some(&err);
        while let Some(e) = source {
            if let Some(refused) = e.downcast_ref::<Refused>() {
                return Self::Refused(refused.0.clone());
            }
            source = e.source();
        }
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        Self::Other(text)
    }
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub status: Option<i32>,
    pub response: Option<String>,
    pub error: Option<SendError>,
    pub latency_ms: i64,
}

impl Sent {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// Why it failed, for the job's last error; `None` when it succeeded.
    pub fn failure(&self) -> Option<String> {
        if self.succeeded() {
            return None;
        }
        Some(self.error_text().unwrap_or_else(|| "no answer".into()))
    }

    pub fn error_text(&self) -> Option<String> {
        match (&self.error, self.status) {
            (Some(SendError::Timeout), _) => Some("timed out".into()),
            (Some(SendError::Refused(why)), _) => Some(format!("refused: {why}")),
            (Some(SendError::Other(why)), _) => Some(why.clone()),
            (None, Some(status)) if !(200..300).contains(&status) => {
                Some(format!("the endpoint answered {status}"))
            }
            (None, _) => None,
        }
    }

    fn metric(&self) -> &'static str {
        match (&self.error, self.succeeded()) {
            (_, true) => "delivered",
            (Some(SendError::Timeout), _) => "timeout",
            (Some(SendError::Refused(_)), _) => "refused",
            (Some(SendError::Other(_)), _) => "error",
            (None, false) => "failed_status",
        }
    }
}
