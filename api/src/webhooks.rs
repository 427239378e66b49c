//! Webhooks: a project admin's endpoints, their deliveries, a test ping, redelivery and
//! secret rotation. Deliveries are signed as the Standard Webhooks specification says.

use alta_actors::{
    Engine,
    context::RequestContext,
    domain::webhook::WebhookInput,
    webhooks::{AttemptView, DeliveryView, WebhookView},
};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use crate::{
    enums::Wire, json_body::JsonBody, problem::ApiResult, projects::NoContent,
    security::BearerAuth, tags::ApiTags,
};

/// What a webhook can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum WebhookEventDto {
    /// An item was uploaded.
    #[oai(rename = "item.uploaded")]
    ItemUploaded,
    /// Processing gave the item its text or transcript.
    #[oai(rename = "item.ready")]
    ItemReady,
    /// Processing could not give the item a text.
    #[oai(rename = "item.processing_failed")]
    ItemProcessingFailed,
    /// The item was submitted for review.
    #[oai(rename = "item.submitted")]
    ItemSubmitted,
    /// Review approved the item.
    #[oai(rename = "item.approved")]
    ItemApproved,
    /// Review rejected the item.
    #[oai(rename = "item.rejected")]
    ItemRejected,
    /// Review asked for changes.
    #[oai(rename = "item.changes_requested")]
    ItemChangesRequested,
    /// The item was deleted.
    #[oai(rename = "item.deleted")]
    ItemDeleted,
    /// An item's labels were written.
    #[oai(rename = "annotation.updated")]
    AnnotationUpdated,
    /// An export finished.
    #[oai(rename = "export.finished")]
    ExportFinished,
    /// An export gave up.
    #[oai(rename = "export.failed")]
    ExportFailed,
    /// Someone joined the project.
    #[oai(rename = "member.added")]
    MemberAdded,
    /// Someone left or was removed.
    #[oai(rename = "member.removed")]
    MemberRemoved,
    /// A test delivery (never subscribed to).
    #[oai(rename = "ping")]
    Ping,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum DeliveryStateDto {
    /// Being tried (again, after a failure, on a schedule of about a day).
    Pending,
    /// An attempt got a 2xx answer.
    Delivered,
    /// Every attempt failed (or the webhook was deactivated).
    Failed,
}

/// A webhook to make.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct WebhookCreate {
    /// Where deliveries are POSTed: `https` (`http` too outside production). Hosts that
    /// resolve to loopback, private, link-local or metadata addresses are refused.
    #[oai(validator(min_length = 1, max_length = 2000))]
    pub url: String,
    /// The events it takes (at least one).
    #[oai(validator(min_items = 1, max_items = 20))]
    pub events: Vec<Wire<WebhookEventDto>>,
    #[oai(validator(max_length = 500))]
    pub description: Option<String>,
    /// Default true.
    pub active: Option<bool>,
}

/// Changes to a webhook (what is absent stays).
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct WebhookPatch {
    #[oai(validator(min_length = 1, max_length = 2000))]
    pub url: Option<String>,
    #[oai(validator(min_items = 1, max_items = 20))]
    pub events: Option<Vec<Wire<WebhookEventDto>>>,
    /// An empty text clears it.
    #[oai(validator(max_length = 500))]
    pub description: Option<String>,
    /// `true` activates a deactivated webhook again (and forgets its failures).
    pub active: Option<bool>,
}

/// A webhook.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct WebhookResponse {
    pub id: Uuid,
    pub project_id: Uuid,
    pub url: String,
    pub events: Vec<Wire<WebhookEventDto>>,
    pub description: Option<String>,
    pub active: bool,
    /// Since when every attempt has failed.
    pub failing_since: Option<DateTime<Utc>>,
    /// When it was deactivated for failing too long (`WEBHOOK_DEACTIVATE_AFTER_HOURS`).
    pub deactivated_at: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs, after a rotation.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The signing secret (`whsec_…`), only in the answer that made it (creation or
    /// rotation): keep it, it is not shown again.
    pub secret: Option<String>,
}

impl From<WebhookView> for WebhookResponse {
    fn from(v: WebhookView) -> Self {
        Self {
            id: v.id,
            project_id: v.project_id,
            url: v.url,
            events: v.events.iter().map(|e| Wire::new(e.as_str())).collect(),
            description: v.description,
            active: v.active,
            failing_since: v.failing_since,
            deactivated_at: v.deactivated_at,
            previous_secret_expires_at: v.previous_secret_expires_at,
            created_by: v.created_by,
            created_at: v.created_at,
            updated_at: v.updated_at,
            secret: v.secret,
        }
    }
}

/// One attempt to deliver.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AttemptResponse {
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The answer's status; absent when there was none.
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    /// The first KiB of the answer.
    pub response: Option<String>,
    /// Why there was no good answer (`timed out`, `refused: …`, a connection error).
    pub error: Option<String>,
}

impl From<AttemptView> for AttemptResponse {
    fn from(a: AttemptView) -> Self {
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

/// One event for one webhook, with its attempts.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DeliveryResponse {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The `webhook-id` header: the same on every attempt and redelivery, for the
    /// receiver to drop duplicates.
    pub message_id: String,
    pub event: Wire<WebhookEventDto>,
    pub state: Wire<DeliveryStateDto>,
    /// The body sent: `{type, timestamp, data}`.
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub attempts: Vec<AttemptResponse>,
}

impl From<DeliveryView> for DeliveryResponse {
    fn from(d: DeliveryView) -> Self {
        Self {
            id: d.id,
            webhook_id: d.webhook_id,
            message_id: d.message_id,
            event: Wire::new(d.event.as_str()),
            state: Wire::new(d.state),
            payload: d.payload,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
            last_status: d.last_status,
            last_error: d.last_error,
            attempts: d.attempts.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct WebhookPage {
    pub items: Vec<WebhookResponse>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryResponse>,
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum WebhookCreated {
    /// Made; `secret` is shown this once.
    #[oai(status = 201)]
    Created(Json<WebhookResponse>),
}

#[derive(ApiResponse)]
pub enum WebhookOk {
    #[oai(status = 200)]
    Ok(Json<WebhookResponse>),
}

#[derive(ApiResponse)]
pub enum WebhookPageOk {
    #[oai(status = 200)]
    Ok(Json<WebhookPage>),
}

#[derive(ApiResponse)]
pub enum DeliveryPageOk {
    #[oai(status = 200)]
    Ok(Json<DeliveryPage>),
}

#[derive(ApiResponse)]
pub enum DeliveryAccepted {
    /// Queued; follow it in the webhook's deliveries.
    #[oai(status = 202)]
    Accepted(Json<DeliveryResponse>),
}

fn events(list: Vec<Wire<WebhookEventDto>>) -> Vec<String> {
    list.into_iter().map(|e| e.as_str().to_owned()).collect()
}

pub struct WebhooksApi;

#[OpenApi(tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// Make a webhook
    ///
    /// Project admins. Each event it takes is POSTed to `url` as
    /// `{type, timestamp, data}`, signed as the Standard Webhooks specification says
    /// (`webhook-id`, `webhook-timestamp`, `webhook-signature`), retried on a schedule
    /// of about a day; per item in the order of the changes. The answer holds the
    /// signing secret, shown this once. A url that is not http(s), or whose host
    /// resolves to a loopback, private, link-local or metadata address, is 422
    /// `invalid_webhook` (`field` `/url`); so is a 21st webhook.
    #[oai(
        path = "/api/projects/:project_id/webhooks",
        method = "post",
        operation_id = "webhooks_create"
    )]
    async fn create(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        body: JsonBody<WebhookCreate>,
    ) -> ApiResult<WebhookCreated> {
        let b = body.0;
        let input = WebhookInput {
            url: Some(b.url),
            events: Some(events(b.events)),
            description: b.description,
            active: b.active,
        };
        let view = engine
            .webhooks()
            .create_webhook(&auth.0, project_id.0, input, &ctx)
            .await?;
        Ok(WebhookCreated::Created(Json(view.into())))
    }

    /// List a project's webhooks
    ///
    /// Oldest first; secrets are not shown. Project admins.
    #[oai(
        path = "/api/projects/:project_id/webhooks",
        method = "get",
        operation_id = "webhooks_list"
    )]
    async fn list(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<WebhookPageOk> {
        let page = engine
            .webhooks()
            .webhooks(&auth.0, project_id.0, limit.0, cursor.0.as_deref())
            .await?;
        Ok(WebhookPageOk::Ok(Json(WebhookPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Get a webhook
    #[oai(
        path = "/api/projects/:project_id/webhooks/:webhook_id",
        method = "get",
        operation_id = "webhooks_get"
    )]
    async fn get(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        webhook_id: Path<Uuid>,
    ) -> ApiResult<WebhookOk> {
        let view = engine
            .webhooks()
            .webhook(&auth.0, project_id.0, webhook_id.0)
            .await?;
        Ok(WebhookOk::Ok(Json(view.into())))
    }

    /// Change a webhook
    ///
    /// Its url (checked as at creation), events, description, or `active` (true
    /// activates a deactivated one again). Project admins.
    #[oai(
        path = "/api/projects/:project_id/webhooks/:webhook_id",
        method = "patch",
        operation_id = "webhooks_update"
    )]
    async fn update(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        webhook_id: Path<Uuid>,
        body: JsonBody<WebhookPatch>,
    ) -> ApiResult<WebhookOk> {
        let b = body.0;
        let input = WebhookInput {
            url: b.url,
            events: b.events.map(events),
            description: b.description,
            active: b.active,
        };
        let view = engine
            .webhooks()
            .update_webhook(&auth.0, project_id.0, webhook_id.0, input, &ctx)
            .await?;
        Ok(WebhookOk::Ok(Json(view.into())))
    }

    /// Delete a webhook
    ///
    /// With its deliveries; nothing more is sent to it. Project admins.
    #[oai(
        path = "/api/projects/:project_id/webhooks/:webhook_id",
        method = "delete",
        operation_id = "webhooks_delete"
    )]
    async fn delete(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        webhook_id: Path<Uuid>,
    ) -> ApiResult<NoContent> {
        engine
            .webhooks()
            .delete_webhook(&auth.0, project_id.0, webhook_id.0, &ctx)
            .await?;
        Ok(NoContent::NoContent)
    }

    /// Rotate a webhook's secret
    ///
    /// A new secret, shown this once; the previous one keeps signing (both signatures
    /// are sent) for 24 hours, so receivers can switch without losing a delivery.
    #[oai(
        path = "/api/projects/:project_id/webhooks/:webhook_id/rotate-secret",
        method = "post",
        operation_id = "webhooks_rotate_secret"
    )]
    async fn rotate_secret(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        webhook_id: Path<Uuid>,
    ) -> ApiResult<WebhookOk> {
        let view = engine
            .webhooks()
            .rotate_webhook_secret(&auth.0, project_id.0, webhook_id.0, &ctx)
            .await?;
        Ok(WebhookOk::Ok(Json(view.into())))
    }

    /// Send a test ping
    ///
    /// Queues a `ping` delivery to this webhook (active or not is not checked: a
    /// deactivated one records the attempt as failed).
    #[oai(
        path = "/api/projects/:project_id/webhooks/:webhook_id/test",
        method = "post",
        operation_id = "webhooks_test"
    )]
    async fn test(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        webhook_id: Path<Uuid>,
    ) -> ApiResult<DeliveryAccepted> {
        let view = engine
            .webhooks()
            .ping_webhook(&auth.0, project_id.0, webhook_id.0, &ctx)
            .await?;
        Ok(DeliveryAccepted::Accepted(Json(view.into())))
    }

    /// List a webhook's deliveries
    ///
    /// Newest first, each with its attempts: status code, latency, the first KiB of
    /// the answer or the error. Project admins.
    #[oai(
        path = "/api/projects/:project_id/webhooks/:webhook_id/deliveries",
        method = "get",
        operation_id = "webhooks_deliveries"
    )]
    async fn deliveries(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        webhook_id: Path<Uuid>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<DeliveryPageOk> {
        let page = engine
            .webhooks()
            .webhook_deliveries(
                &auth.0,
                project_id.0,
                webhook_id.0,
                limit.0,
                cursor.0.as_deref(),
            )
            .await?;
        Ok(DeliveryPageOk::Ok(Json(DeliveryPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Redeliver a delivery
    ///
    /// Sends a delivered or failed delivery again, with the same `webhook-id`, as a
    /// fresh run of attempts. 409 `delivery_pending` while it is still being tried.
    #[oai(
        path = "/api/projects/:project_id/webhooks/:webhook_id/deliveries/:delivery_id/redeliver",
        method = "post",
        operation_id = "webhooks_redeliver"
    )]
    async fn redeliver(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        webhook_id: Path<Uuid>,
        delivery_id: Path<Uuid>,
    ) -> ApiResult<DeliveryAccepted> {
        let view = engine
            .webhooks()
            .redeliver(&auth.0, project_id.0, webhook_id.0, delivery_id.0, &ctx)
            .await?;
        Ok(DeliveryAccepted::Accepted(Json(view.into())))
    }
}
