//! The webhook transitions, run by the project's actor: making, changing, rotating and
//! deleting a webhook, a test delivery, a redelivery, and recording an attempt (with
//! the deactivation of a webhook that has failed for too long).

use serde_json::json;
use uuid::Uuid;

use super::{
    DeliveryView, KIND_WEBHOOK, WebhookView,
    deliver::{DeliveryJob, Sent},
    outbox::{Subject, body, write_delivery},
};
use crate::{
    ErrorCode,
    authz::ProjectAction,
    context::Principal,
    domain::webhook::{MAX_WEBHOOKS_PER_PROJECT, WebhookEvent, WebhookSpec, new_secret},
    error::EngineError,
    jobs::MailJob,
    metrics as m,
    project_actor::{Check, InProject, Transition},
    store::{
        self,
        webhooks::{AttemptRow, WebhookRow},
    },
};

/// How long a rotated-out secret keeps signing.
const PREVIOUS_SECRET_VALID: chrono::Duration = chrono::Duration::hours(24);

async fn webhook(at: &mut InProject<'_>, id: Uuid) -> Result<WebhookRow, EngineError> {
    let project_id = at.id();
    store::webhooks::find_tx(at.tx(), project_id, id)
        .await?
        .ok_or(EngineError::NotFound { what: "webhook" })
}

/// Make a webhook (its address already checked); the answer shows its secret, once.
pub struct CreateWebhook {
    pub spec: WebhookSpec,
}

impl Transition for CreateWebhook {
    type Out = WebhookView;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::ManageWebhooks)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<WebhookView, EngineError> {
        let (project_id, now) = (at.id(), at.now);
        if store::webhooks::count(at.tx(), project_id).await? >= MAX_WEBHOOKS_PER_PROJECT {
            return Err(EngineError::validation(
                ErrorCode::InvalidWebhook,
                "/url",
                format!("a project has at most {MAX_WEBHOOKS_PER_PROJECT} webhooks"),
            ));
        }
        let (Some(url), Some(events)) = (self.spec.url, self.spec.events) else {
            return Err(EngineError::validation(
                ErrorCode::InvalidWebhook,
                "/url",
                "a webhook needs a url and events",
            ));
        };
        let row = WebhookRow {
            id: Uuid::now_v7(),
            project_id,
            url: url.to_string(),
            events: sqlx::types::Json(events),
            description: self.spec.description.flatten(),
            active: self.spec.active.unwrap_or(true),
            secret: new_secret(),
            previous_secret: None,
            previous_expires_at: None,
            failing_since: None,
            deactivated_at: None,
            created_by: at.principal.user_id,
            created_at: now,
            updated_at: now,
        };
        store::webhooks::insert(at.tx(), &row).await?;
        at.project_changed();
        at.audit(
            "webhook.created",
            ("webhook", row.id.to_string()),
            json!({"url": row.url, "events": row.events.0}),
        );
        Ok(WebhookView::of(row, true))
    }
}

/// Change a webhook's url, events, description or activity. Activating it again
/// forgets its failures.
pub struct UpdateWebhook {
    pub webhook_id: Uuid,
    pub spec: WebhookSpec,
}

impl Transition for UpdateWebhook {
    type Out = WebhookView;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::ManageWebhooks)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<WebhookView, EngineError> {
        let mut row = webhook(at, self.webhook_id).await?;
        if let Some(url) = self.spec.url {
            row.url = url.to_string();
        }
        if let Some(events) = self.spec.events {
            row.events = sqlx::types::Json(events);
        }
        if let Some(description) = self.spec.description {
            row.description = description;
        }
        if let Some(active) = self.spec.active {
            if active && !row.active {
                row.failing_since = None;
                row.deactivated_at = None;
            }
            row.active = active;
        }
        row.updated_at = at.now;
        store::webhooks::update(at.tx(), &row).await?;
        at.project_changed();
        at.audit(
            "webhook.updated",
            ("webhook", row.id.to_string()),
            json!({"url": row.url, "events": row.events.0, "active": row.active}),
        );
        Ok(row.into())
    }
}

/// Delete a webhook with its deliveries (their jobs find nothing and end).
pub struct DeleteWebhook {
    pub webhook_id: Uuid,
}

impl Transition for DeleteWebhook {
    type Out = ();

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::ManageWebhooks)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(), EngineError> {
        let row = webhook(at, self.webhook_id).await?;
        store::webhooks::delete(at.tx(), row.id).await?;
        at.project_changed();
        at.audit(
            "webhook.deleted",
            ("webhook", row.id.to_string()),
            json!({"url": row.url}),
        );
        Ok(())
    }
}

/// A new secret, shown once; the previous one keeps signing for 24 hours.
pub struct RotateSecret {
    pub webhook_id: Uuid,
}

impl Transition for RotateSecret {
    type Out = WebhookView;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::ManageWebhooks)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<WebhookView, EngineError> {
        let mut row = webhook(at, self.webhook_id).await?;
        row.previous_secret = Some(std::mem::replace(&mut row.secret, new_secret()));
        row.previous_expires_at = Some(at.now + PREVIOUS_SECRET_VALID);
        row.updated_at = at.now;
        store::webhooks::update(at.tx(), &row).await?;
        at.audit(
            "webhook.secret_rotated",
            ("webhook", row.id.to_string()),
            json!({"previous_valid_until": row.previous_expires_at}),
        );
        Ok(WebhookView::of(row, true))
    }
}

/// A `ping` delivery to one webhook.
pub struct SendPing {
    pub webhook_id: Uuid,
}

impl Transition for SendPing {
    type Out = DeliveryView;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::ManageWebhooks)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<DeliveryView, EngineError> {
        let row = webhook(at, self.webhook_id).await?;
        let (project_id, now) = (at.id(), at.now);
        let subject = Subject::Ping { webhook_id: row.id };
        let text = body(at.tx(), project_id, WebhookEvent::Ping, &subject, now).await?;
        let delivery = write_delivery(
            at.deps,
            at.change,
            project_id,
            row.id,
            WebhookEvent::Ping,
            &format!("ping:{}", row.id),
            &text,
            now,
        )
        .await?;
        at.wake_workers(KIND_WEBHOOK);
        Ok(DeliveryView::of(delivery, Vec::new()))
    }
}

/// Send a delivery again, with the same `webhook-id`, as a fresh run of attempts.
pub struct Redeliver {
    pub webhook_id: Uuid,
    pub delivery_id: Uuid,
}

impl Transition for Redeliver {
    type Out = DeliveryView;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::ManageWebhooks)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<DeliveryView, EngineError> {
        let hook = webhook(at, self.webhook_id).await?;
        let mut delivery = store::webhooks::delivery_tx(at.tx(), hook.id, self.delivery_id)
            .await?
            .ok_or(EngineError::NotFound { what: "delivery" })?;
        if delivery.state == "pending" {
            return Err(EngineError::Conflict {
                code: ErrorCode::DeliveryPending,
                message:
                    "the delivery is still being tried; redeliver it once it is delivered or failed"
                        .into(),
            });
        }
        let payload = serde_json::to_value(DeliveryJob {
            delivery_id: delivery.id,
            project_id: at.id(),
        })
        .map_err(EngineError::internal)?;
        let max_attempts = at.deps.config.webhooks.max_attempts;
        let job_id =
            crate::change::enqueue_with(at.deps, at.change, KIND_WEBHOOK, payload, max_attempts);
        let now = at.now;
        store::webhooks::requeue(at.tx(), delivery.id, job_id, now).await?;
        at.wake_workers(KIND_WEBHOOK);
        at.audit(
            "webhook.redelivered",
            ("webhook", hook.id.to_string()),
            json!({"delivery_id": delivery.id}),
        );
        delivery.state = "pending".into();
        delivery.job_id = Some(job_id);
        let attempts = Vec::new();
        Ok(DeliveryView::of(delivery, attempts))
    }
}

/// How an attempt went.
pub(crate) enum AttemptOutcome {
    Sent(Sent),
    /// Not sent (the webhook is inactive, the project deleted): the delivery fails with
    /// this reason, without a request.
    NotSent(&'static str),
}

/// Record an attempt: the attempt's row and the delivery's state, and the job done in
/// the same commit when it succeeded. A failure that makes the webhook's failing
/// stretch longer than `WEBHOOK_DEACTIVATE_AFTER_HOURS` deactivates it and mails the
/// project's admins.
pub(crate) struct RecordAttempt {
    pub webhook_id: Uuid,
    pub delivery_id: Uuid,
    /// The delivery's object and place in its order (the next one waits for it).
    pub ordering_key: String,
    pub seq: i64,
    pub job_id: Uuid,
    pub worker_id: String,
    /// The job's last attempt.
    pub last: bool,
    pub outcome: AttemptOutcome,
}

impl Transition for RecordAttempt {
    type Out = ();

    fn check(&self, _: &Principal) -> Check {
        Check::Itself // the engine's own work
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(), EngineError> {
        let now = at.now;
        let lease_lost = || EngineError::Conflict {
            code: ErrorCode::LeaseLost,
            message: "the delivery's job is no longer held by this worker".into(),
        };
        let sent = match self.outcome {
            AttemptOutcome::NotSent(why) => {
                let attempt = AttemptRow {
                    delivery_id: self.delivery_id,
                    attempt: 0,
                    at: now,
                    status_code: None,
                    latency_ms: 0,
                    response: None,
                    error: Some(why.into()),
                };
                if store::webhooks::record_attempt(at.tx(), &attempt, "failed").await? {
                    release_next(at, self.webhook_id, &self.ordering_key, self.seq).await?;
                }
                let done = store::jobs::complete_as_tx(
                    at.tx(),
                    self.job_id,
                    &self.worker_id,
                    KIND_WEBHOOK,
                    now,
                )
                .await?;
                return if done { Ok(()) } else { Err(lease_lost()) };
            }
            AttemptOutcome::Sent(sent) => sent,
        };
        let succeeded = sent.succeeded();
        let state = match (succeeded, self.last) {
            (true, _) => "delivered",
            (false, true) => "failed",
            (false, false) => "pending",
        };
        let attempt = AttemptRow {
            delivery_id: self.delivery_id,
            attempt: 0, // numbered by the store
            at: now,
            status_code: sent.status,
            latency_ms: sent.latency_ms,
            response: sent.response.clone(),
            error: sent.error_text(),
        };
        // A success ends the job in this commit (a failure is the queue's to retry).
        if succeeded
            && !store::jobs::complete_as_tx(
                at.tx(),
                self.job_id,
                &self.worker_id,
                KIND_WEBHOOK,
                now,
            )
            .await?
        {
            return Err(lease_lost());
        }
        if !store::webhooks::record_attempt(at.tx(), &attempt, state).await? {
            return Ok(()); // deleted meanwhile, or settled by a later run
        }
        if state != "pending" {
            release_next(at, self.webhook_id, &self.ordering_key, self.seq).await?;
        }
        if !succeeded && self.last {
            at.change.after_commit(|| {
                metrics::counter!(m::WEBHOOK_DELIVERIES_FAILED_TOTAL).increment(1);
            });
        }
        let project_id = at.id();
        let Some(mut hook) = store::webhooks::find_tx(at.tx(), project_id, self.webhook_id).await?
        else {
            return Ok(());
        };
        if succeeded {
            if hook.failing_since.is_some() {
                hook.failing_since = None;
                store::webhooks::update(at.tx(), &hook).await?;
            }
            return Ok(());
        }
        let since = *hook.failing_since.get_or_insert(now);
        let too_long = chrono::Duration::from_std(at.deps.config.webhooks.deactivate_after)
            .unwrap_or(chrono::Duration::hours(72));
        let deactivate = hook.active && now - since >= too_long;
        if deactivate {
            hook.active = false;
            hook.deactivated_at = Some(now);
            hook.updated_at = now;
        }
        store::webhooks::update(at.tx(), &hook).await?;
        if deactivate {
            at.project_changed();
            at.change.after_commit(|| {
                metrics::counter!(m::WEBHOOKS_DEACTIVATED_TOTAL).increment(1);
            });
            at.audit(
                "webhook.deactivated",
                ("webhook", hook.id.to_string()),
                json!({"failing_since": since, "url": hook.url}),
            );
            mail_admins(at, &hook, since).await?;
        }
        Ok(())
    }
}

/// A delivery settled: the next one about the same object, waiting for it, goes now.
async fn release_next(
    at: &mut InProject<'_>,
    webhook_id: Uuid,
    ordering_key: &str,
    seq: i64,
) -> Result<(), EngineError> {
    if let Some(job) =
        store::webhooks::next_pending_job(at.tx(), webhook_id, ordering_key, seq).await?
    {
        let now = at.now;
        store::jobs::run_now(at.tx(), job, now).await?;
        at.wake_workers(KIND_WEBHOOK);
    }
    Ok(())
}

/// Tell the project's admins that a webhook was deactivated.
async fn mail_admins(
    at: &mut InProject<'_>,
    hook: &WebhookRow,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<(), EngineError> {
    let project = at.project()?.clone();
    let admins = store::projects::admin_emails(at.tx(), project.id).await?;
    for email in admins {
        let text = format!(
            "The webhook {url} of the project \"{name}\" has failed every delivery since \
             {since} and has been deactivated. No events are sent to it any more.\n\n\
             Its deliveries and their answers: GET /api/projects/{project_id}/webhooks/{id}/deliveries\n\
             Activate it again (once the endpoint works): PATCH /api/projects/{project_id}/webhooks/{id} \
             with {{\"active\": true}}.\n",
            url = hook.url,
            name = project.name,
            since = since.to_rfc3339(),
            project_id = project.id,
            id = hook.id,
        );
        at.enqueue_mail(MailJob {
            to: email,
            subject: format!("Webhook deactivated in {}", project.name),
            text,
            template: "webhook_deactivated".into(),
        })?;
    }
    Ok(())
}
