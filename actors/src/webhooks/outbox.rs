//! The outbox: a transition announces an event with [`InProject::announce`], which
//! writes one delivery (and the job that sends it) per active webhook of the project
//! that takes the event, in the transition's own change. The body is fixed here, from
//! the object as it is in that change, so every attempt sends the same bytes.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{deliver::DeliveryJob, deliver::KIND_WEBHOOK};
use crate::{
    change::Change,
    deps::Deps,
    domain::webhook::WebhookEvent,
    error::EngineError,
    exports::ExportView,
    items::ItemView,
    metrics as m,
    projects::InProject,
    store::{self, Tx, webhooks::DeliveryRow},
};

/// What an event is about.
#[derive(Debug, Clone)]
pub enum Subject {
    /// An item, shown as the API shows it (read in the change, so after its write).
    Item(Uuid),
    /// An item the transition has at hand as written (an upload): nothing to read.
    ItemAsWritten(Box<ItemView>),
    /// An item's new annotation revision: the item and the revision.
    Annotation { item_id: Uuid, annotation: Value },
    /// An export, as the API shows it.
    Export(Uuid),
    /// A member of the project: who (an id, never an email) and their role.
    Member { user_id: Uuid, role: String },
    /// A test delivery.
    Ping { webhook_id: Uuid },
}

impl Subject {
    /// Deliveries about the same object go out in order.
    fn ordering_key(&self) -> String {
        match self {
            Self::Item(id) | Self::Annotation { item_id: id, .. } => format!("item:{id}"),
            Self::ItemAsWritten(item) => format!("item:{}", item.id),
            Self::Export(id) => format!("export:{id}"),
            Self::Member { user_id, .. } => format!("member:{user_id}"),
            Self::Ping { webhook_id } => format!("ping:{webhook_id}"),
        }
    }
}

impl InProject<'_> {
    /// Announce `event` to the project's webhooks that take it: a delivery and its job
    /// each, in this change. Costs one narrow read when no webhook takes it.
    pub async fn announce(
        &mut self,
        event: WebhookEvent,
        subject: Subject,
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
        self.wake_workers();
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
    let job_id = crate::jobs::enqueue_with(
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
    subject: &Subject,
    now: DateTime<Utc>,
) -> Result<String, EngineError> {
    let mut data = Map::new();
    data.insert("project_id".into(), json!(project_id));
    match subject {
        Subject::Item(id) => {
            data.insert("item".into(), item_object(tx, *id).await?);
        }
        Subject::ItemAsWritten(item) => {
            data.insert("item".into(), item_value(item.as_ref().clone())?);
        }
        Subject::Annotation {
            item_id,
            annotation,
        } => {
            data.insert("item".into(), item_object(tx, *item_id).await?);
            data.insert("annotation".into(), annotation.clone());
        }
        Subject::Export(id) => {
            let row = store::exports::find_tx(tx, project_id, *id)
                .await?
                .ok_or(EngineError::NotFound { what: "export" })?;
            let view =
                serde_json::to_value(ExportView::from(row)).map_err(EngineError::internal)?;
            data.insert("export".into(), without_nulls(view));
        }
        Subject::Member { user_id, role } => {
            data.insert("member".into(), json!({"user_id": user_id, "role": role}));
        }
        Subject::Ping { webhook_id } => {
            data.insert("webhook_id".into(), json!(webhook_id));
        }
    }
    let body = json!({
        "type": event.as_str(),
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": data,
    });
    serde_json::to_string(&body).map_err(EngineError::internal)
}

/// An item as `GET /api/documents/{id}` shows it (without what only reads add).
async fn item_object(tx: &mut Tx, id: Uuid) -> Result<Value, EngineError> {
    let row = store::items::find_live_tx(tx, id)
        .await?
        .ok_or(EngineError::NotFound { what: "item" })?;
    item_value(ItemView::from(row))
}

fn item_value(item: ItemView) -> Result<Value, EngineError> {
    let mut value = serde_json::to_value(item).map_err(EngineError::internal)?;
    if let Some(object) = value.as_object_mut() {
        // Where the file is stored is not the API's business.
        object.remove("blob_key");
        object.remove("job");
    }
    Ok(without_nulls(value))
}

/// The API leaves absent fields out rather than sending `null`.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        other => other,
    }
}
