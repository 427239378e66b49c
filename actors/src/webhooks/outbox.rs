//! The outbox: a transition announces an event with [`InProject::announce`], which
//! writes one delivery (and the job that sends it) per active webhook of the project
//! that takes the event, in the transition's own change. The body is fixed here, from
//! the object as it is in that change, so every attempt sends the same bytes.

use std::future::Future;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{deliver::DeliveryJob, deliver::KIND_WEBHOOK};
use crate::{
    change::Change,
    deps::Deps,
    domain::webhook::WebhookEvent,
    error::EngineError,
    metrics as m,
    project_actor::InProject,
    store::{self, Tx, webhooks::DeliveryRow},
};

/// What an event is about: the object its deliveries are ordered by, and how it shows
/// in the body. Each domain describes its own objects (`items::ItemSubject`,
/// `exports::ExportSubject`); members and pings are described here.
pub trait About: Send + Sync {
    /// Deliveries about the same object go out in order.
    fn ordering_key(&self) -> String;

    /// Add the object to the body's `data` (read in the change, so after its write).
    fn describe(
        &self,
        tx: &mut Tx,
        project_id: Uuid,
        data: &mut Map<String, Value>,
    ) -> impl Future<Output = Result<(), EngineError>> + Send;
}

/// A project's own subjects.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A member of the project: who (an id, never an email) and their role.
    Member { user_id: Uuid, role: String },
    /// A test delivery.
    Ping { webhook_id: Uuid },
}

impl About for Subject {
    fn ordering_key(&self) -> String {
        match self {
            Self::Member { user_id, .. } => format!("member:{user_id}"),
            Self::Ping { webhook_id } => format!("ping:{webhook_id}"),
        }
    }

    async fn describe(
        &self,
        _: &mut Tx,
        _: Uuid,
        data: &mut Map<String, Value>,
    ) -> Result<(), EngineError> {
        match self {
            Self::Member { user_id, role } => {
                data.insert("member".into(), json!({"user_id": user_id, "role": role}));
            }
            Self::Ping { webhook_id } => {
                data.insert("webhook_id".into(), json!(webhook_id));
            }
        }
        Ok(())
    }
}

impl InProject<'_> {
    /// Announce `event` to the project's webhooks that take it: a delivery and its job
    /// each, in this change. Costs one narrow read when no webhook takes it.
    pub async fn announce(
        &mut self,
        event: WebhookEvent,
        subject: impl About,
    ) -> Result<(), EngineError> {
        let project_id = self.id();
        let hooks = self.subscribers(event).await?;
        if hooks.is_empty() {
            return Ok(());
        }
        let now = self.now;
        let body = body(self.tx(), project_id, event, &subject, now).await?;
        let key = subject.ordering_key();
        for webhook_id in hooks {
            write_delivery(
                self.deps,
                self.change,
                project_id,
                webhook_id,
                event,
                &key,
                &body,
                self.now,
            )
            .await?;
            self.change.after_commit(move || {
                metrics::counter!(m::WEBHOOK_EVENTS_TOTAL, "event" => event.as_str()).increment(1);
            });
        }
        self.wake_workers(KIND_WEBHOOK);
        Ok(())
    }
}

/// A delivery of `body` to one webhook, and its job. Returns the delivery.
#[allow(clippy::too_many_arguments)] // one row's columns
pub(crate) async fn write_delivery(
    deps: &Deps,
    change: &mut Change,
    project_id: Uuid,
    webhook_id: Uuid,
    event: WebhookEvent,
    ordering_key: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<DeliveryRow, EngineError> {
    let id = Uuid::now_v7();
    let payload = serde_json::to_value(DeliveryJob {
        delivery_id: id,
        project_id,
    })
    .map_err(EngineError::internal)?;
    let job_id = crate::change::enqueue_with(
        deps,
        change,
        KIND_WEBHOOK,
        payload,
        deps.config.webhooks.max_attempts,
    );
    let mut row = DeliveryRow {
        id,
        webhook_id,
        project_id,
        event,
        payload: body.to_owned(),
        ordering_key: ordering_key.to_owned(),
        seq: 0, // the next of its object's, given by the insert
        state: "pending".into(),
        attempts: 0,
        job_id: Some(job_id),
        last_status: None,
        last_error: None,
        created_at: now,
        delivered_at: None,
        updated_at: now,
    };
    row.seq = store::webhooks::insert_delivery(change, &row).await?;
    Ok(row)
}

/// The body every attempt sends: `{type, timestamp, data}`, the shape the Standard
/// Webhooks specification recommends.
pub(crate) async fn body(
    tx: &mut Tx,
    project_id: Uuid,
    event: WebhookEvent,
    subject: &impl About,
    now: DateTime<Utc>,
) -> Result<String, EngineError> {
    let mut data = Map::new();
    data.insert("project_id".into(), json!(project_id));
    subject.describe(tx, project_id, &mut data).await?;
    let body = json!({
        "type": event.as_str(),
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": data,
    });
    serde_json::to_string(&body).map_err(EngineError::internal)
}

/// The API leaves absent fields out rather than sending `null`.
pub fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        other => other,
    }
}
