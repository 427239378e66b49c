//! Webhooks: a project's endpoints and what they are sent. A transition that announces
//! something writes a delivery per subscribed webhook into the outbox, in its own
//! change ([`outbox`]), so a committed change always gets its webhook and a rolled-back
//! one never does. Each delivery is a `webhook` job ([`deliver`]): signed as the
//! Standard Webhooks specification says, sent to an address that is checked again at
//! the time of sending, retried on a schedule of about a day, and recorded attempt by
//! attempt through the project's actor ([`transition`]). Per object, deliveries go out
//! in the order of the changes. The engine handle's part is in [`service`].

pub mod deliver;
pub mod outbox;
mod service;
mod transition;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::{
    deliver::{DeliveryHandler, KIND_WEBHOOK},
    outbox::{About, Subject, without_nulls},
    transition::{CreateWebhook, DeleteWebhook, Redeliver, RotateSecret, SendPing, UpdateWebhook},
};
use crate::{
    domain::webhook::{WebhookEvent, message_id},
    store::webhooks::{AttemptRow, DeliveryRow, WebhookRow},
};

crate::handle::service!(
    /// The webhook part of the engine: webhooks and their deliveries.
    WebhookService
);

/// A webhook as the API shows it. `secret` only in the answer that made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookView {
    pub id: Uuid,
    pub project_id: Uuid,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub description: Option<String>,
    pub active: bool,
    /// Since when every attempt has failed.
    pub failing_since: Option<DateTime<Utc>>,
    /// When it was deactivated for failing too long.
    pub deactivated_at: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs (after a rotation).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub secret: Option<String>,
}

impl WebhookView {
    pub(crate) fn of(row: WebhookRow, show_secret: bool) -> Self {
        Self {
            id: row.id,
            project_id: row.project_id,
            url: row.url,
            events: row.events.0,
            description: row.description,
            active: row.active,
            failing_since: row.failing_since,
            deactivated_at: row.deactivated_at,
            previous_secret_expires_at: row.previous_expires_at,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            secret: show_secret.then_some(row.secret),
        }
    }
}

impl From<WebhookRow> for WebhookView {
    fn from(row: WebhookRow) -> Self {
        Self::of(row, false)
    }
}

/// One attempt to deliver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptView {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The answer's status; none when there was no answer.
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    /// The first KiB of the answer.
    pub response: Option<String>,
    /// Why there was no good answer.
    pub error: Option<String>,
}

impl From<AttemptRow> for AttemptView {
    fn from(a: AttemptRow) -> Self {
        Self {
            attempt: a.attempt,
            at: a.at,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            response: a.response,
            error: a.error,
        }
    }
}

/// A delivery: one event for one webhook, with its attempts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryView {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The `webhook-id` header: the same on every attempt and redelivery.
    pub message_id: String,
    pub event: WebhookEvent,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub attempts: Vec<AttemptView>,
}

impl DeliveryView {
    pub(crate) fn of(row: DeliveryRow, attempts: Vec<AttemptView>) -> Self {
        Self {
            id: row.id,
            webhook_id: row.webhook_id,
            message_id: message_id(row.id),
            event: row.event,
            state: row.state,
            payload: serde_json::from_str(&row.payload).unwrap_or_default(),
            created_at: row.created_at,
            delivered_at: row.delivered_at,
            last_status: row.last_status,
            last_error: row.last_error,
            attempts,
        }
    }
}
