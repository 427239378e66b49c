//! The webhook part of the engine handle. Every operation needs the project's
//! `ManageWebhooks` right (project admins): reads check it here, transitions in the
//! project's actor (creating and changing check it here too, before resolving a name). An endpoint's address is checked here,
//! before the transition: resolving a name is I/O, which a project's actor never waits
//! for (rule 9).

use super::WebhookService;
use std::{net::IpAddr, time::Duration};

use uuid::Uuid;

use super::{
    CreateWebhook, DeleteWebhook, DeliveryView, Redeliver, RotateSecret, SendPing, UpdateWebhook,
    WebhookView,
};
use crate::{
    ErrorCode,
    authz::ProjectAction,
    context::{Principal, RequestContext},
    domain::webhook::{WebhookInput, WebhookSpec, check_addresses, literal_ip},
    error::EngineError,
    pagination::{Page, PageRequest},
    store,
};

/// How long resolving an endpoint's name may take when it is made.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

impl WebhookService {
    /// Make a webhook; the answer holds its signing secret (shown this once).
    pub async fn create_webhook(
        &self,
        principal: &Principal,
        project_id: Uuid,
        input: WebhookInput,
        ctx: &RequestContext,
    ) -> Result<WebhookView, EngineError> {
        self.check_project(principal, project_id, ProjectAction::ManageWebhooks)
            .await?;
        let spec = self.checked_spec(input).await?;
        self.apply_in_project(project_id, principal, ctx, CreateWebhook { spec })
            .await
    }

    pub async fn update_webhook(
        &self,
        principal: &Principal,
        project_id: Uuid,
        webhook_id: Uuid,
        input: WebhookInput,
        ctx: &RequestContext,
    ) -> Result<WebhookView, EngineError> {
        self.check_project(principal, project_id, ProjectAction::ManageWebhooks)
            .await?;
        let spec = self.checked_spec(input).await?;
        self.apply_in_project(
            project_id,
            principal,
            ctx,
            UpdateWebhook { webhook_id, spec },
        )
        .await
    }

    /// A project's webhooks, oldest first.
    pub async fn webhooks(
        &self,
        principal: &Principal,
        project_id: Uuid,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<WebhookView>, EngineError> {
        self.check_project(principal, project_id, ProjectAction::ManageWebhooks)
            .await?;
        let page = PageRequest::parse(limit, cursor)?;
        let rows = store::webhooks::list(&self.deps.db, project_id, page.after, page.fetch_limit())
            .await?;
        Ok(page.page(rows, |r| r.id, WebhookView::from))
    }

    pub async fn webhook(
        &self,
        principal: &Principal,
        project_id: Uuid,
        webhook_id: Uuid,
    ) -> Result<WebhookView, EngineError> {
        self.check_project(principal, project_id, ProjectAction::ManageWebhooks)
            .await?;
        store::webhooks::find(&self.deps.db, project_id, webhook_id)
            .await?
            .map(WebhookView::from)
            .ok_or(EngineError::NotFound { what: "webhook" })
    }

    pub async fn delete_webhook(
        &self,
        principal: &Principal,
        project_id: Uuid,
        webhook_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        self.apply_in_project(project_id, principal, ctx, DeleteWebhook { webhook_id })
            .await
    }

    /// A new signing secret (shown this once); the previous one signs for 24 hours more.
    pub async fn rotate_webhook_secret(
        &self,
        principal: &Principal,
        project_id: Uuid,
        webhook_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<WebhookView, EngineError> {
        self.apply_in_project(project_id, principal, ctx, RotateSecret { webhook_id })
            .await
    }

    /// Queue a `ping` to the webhook.
    pub async fn ping_webhook(
        &self,
        principal: &Principal,
        project_id: Uuid,
        webhook_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<DeliveryView, EngineError> {
        self.apply_in_project(project_id, principal, ctx, SendPing { webhook_id })
            .await
    }

    /// A webhook's deliveries, newest first, each with its attempts.
    pub async fn webhook_deliveries(
        &self,
        principal: &Principal,
        project_id: Uuid,
        webhook_id: Uuid,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<DeliveryView>, EngineError> {
        self.webhook(principal, project_id, webhook_id).await?;
        let page = PageRequest::parse(limit, cursor)?;
        let rows =
            store::webhooks::deliveries(&self.deps.db, webhook_id, page.after, page.fetch_limit())
                .await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut by_delivery: std::collections::HashMap<Uuid, Vec<_>> = Default::default();
        for attempt in store::webhooks::attempts(&self.deps.db, &ids).await? {
            by_delivery
                .entry(attempt.delivery_id)
                .or_default()
                .push(attempt.into());
        }
        Ok(page.page(
            rows,
            |r| r.id,
            |row| {
                let mine = by_delivery.get(&row.id).cloned().unwrap_or_default();
                DeliveryView::of(row, mine)
            },
        ))
    }

    /// Send a delivered or failed delivery again (same `webhook-id`).
    pub async fn redeliver(
        &self,
        principal: &Principal,
        project_id: Uuid,
        webhook_id: Uuid,
        delivery_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<DeliveryView, EngineError> {
        self.apply_in_project(
            project_id,
            principal,
            ctx,
            Redeliver {
                webhook_id,
                delivery_id,
            },
        )
        .await
    }

    /// Check what was sent, and that the endpoint's host may be reached: every address
    /// it resolves to must be public (unless `WEBHOOK_ALLOW_PRIVATE`).
    async fn checked_spec(&self, input: WebhookInput) -> Result<WebhookSpec, EngineError> {
        let cfg = &self.deps.config.webhooks;
        let spec = WebhookSpec::parse(input, cfg.https_only)?;
        if let Some(url) = &spec.url
            && !cfg.allow_private
        {
            let refused = |message: String| {
                EngineError::validation(ErrorCode::InvalidWebhook, "/url", message)
            };
            let addrs: Vec<IpAddr> = match (literal_ip(url), url.host_str()) {
                (Some(ip), _) => vec![ip],
                (None, Some(name)) => {
                    let looked_up =
                        tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, 443)))
                            .await
                            .map_err(|_| refused(format!("resolving {name} timed out")))?
                            .map_err(|e| refused(format!("{name} does not resolve: {e}")))?;
                    looked_up.map(|a| a.ip()).collect()
                }
                (None, None) => Vec::new(),
            };
            check_addresses(&addrs).map_err(refused)?;
        }
        Ok(spec)
    }
}
