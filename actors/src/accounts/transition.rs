//! An account's transitions as types, as a project's are (`projects::transition`).
//! Each transition is one type implementing [`AccountTransition`]; the accounts actor
//! runs every one of them the same way: it begins a [`Change`], applies the transition,
//! commits when it succeeded (or when it asked to keep its writes though it refused),
//! and answers the caller only then. Adding a transition means writing its type and
//! sending it with `AccountService::apply_in_accounts`; no message variant, no match arm, no
//! hand-written begin/commit.

use std::future::Future;

use chrono::{DateTime, Utc};
use ractor::RpcReplyPort;
use uuid::Uuid;

use crate::{
    account_mailbox::{Boxed, Pending},
    change::{Change, Savepoint},
    context::RequestContext,
    deps::Deps,
    domain::MailJob,
    error::EngineError,
    store::{Tx, audit::AuditEntry},
};

/// One transition of an account (or of the sign-in state around accounts).
pub trait AccountTransition: Send + Sized + 'static {
    /// What the caller gets once the transition has committed.
    type Out: Send + 'static;

    /// Write the transition through `at` (its change is the only way to write).
    fn apply(
        self,
        at: &mut InAccounts<'_>,
    ) -> impl Future<Output = Result<Self::Out, EngineError>> + Send;
}

/// What an account transition sees and writes through.
pub struct InAccounts<'a> {
    change: &'a mut Change,
    pub deps: &'a Deps,
    pub ctx: &'a RequestContext,
    /// When the transition happens (one clock reading for all its rows).
    pub now: DateTime<Utc>,
    /// Set by [`InAccounts::keep_so_far`].
    kept: Option<Savepoint>,
}

impl InAccounts<'_> {
    /// The transaction, for the store's functions.
    pub fn tx(&mut self) -> &mut Tx {
        self.change
    }

    /// The audit row of a transition on the user `user_id`, done by `actor_id` (`None`
    /// when nobody is signed in).
    pub fn audit(
        &mut self,
        actor_id: Option<Uuid>,
        action: &str,
        user_id: Uuid,
        details: serde_json::Value,
    ) {
        let entry = AuditEntry {
            actor_id,
            action,
            target_type: "user",
            target_id: Some(user_id.to_string()),
            project_id: None,
            details,
        };
        self.audit_entry(entry);
    }

    /// An audit row on something other than a user (written with the change).
    pub fn audit_entry(&mut self, entry: AuditEntry<'_>) {
        self.change.audit(entry, self.ctx, self.now);
    }

    /// Wake this node's worker of `kind` once the change has committed.
    pub fn wake_workers(&mut self, kind: &str) {
        self.change.wake_workers(&self.deps.job_waker, kind);
    }

    /// Queue a mail in the change; the workers are woken once it has committed.
    pub fn enqueue_mail(&mut self, mail: MailJob) -> Result<(), EngineError> {
        crate::change::enqueue_mail(self.deps, self.change, mail)?;
        self.wake_workers(crate::domain::KIND_MAIL);
        Ok(())
    }

    /// Commit what was written so far even if the transition then refuses (what it
    /// writes after this is undone): for a refusal that is itself an event (a replayed
    /// token ends its session, a rejected passkey leaves an audit row).
    pub async fn keep_so_far(&mut self) -> Result<(), EngineError> {
        self.kept = Some(self.change.savepoint().await?);
        Ok(())
    }
}

/// A transition with its caller, as the accounts actor receives it.
pub(super) struct Envelope<T: AccountTransition> {
    pub transition: T,
    pub ctx: RequestContext,
    /// `None` for a transition nobody waits for (its failure is logged).
    pub reply: Option<RpcReplyPort<Result<T::Out, EngineError>>>,
}

impl<T: AccountTransition> Pending for Envelope<T> {
    fn run<'a>(self: Box<Self>, deps: &'a Deps) -> Boxed<'a, ()> {
        Box::pin(async move {
            let Envelope {
                transition,
                ctx,
                reply,
            } = *self;
            let result = run(transition, deps, &ctx).await;
            match reply {
                Some(reply) => {
                    let _ = reply.send(result);
                }
                None => {
                    if let Err(err) = result {
                        tracing::warn!(error = %err, transition = name::<T>(), "an account transition nobody waits for failed");
                    }
                }
            }
        })
    }
}

/// Begin, apply, commit (or roll back by dropping the change), then the outcome.
async fn run<T: AccountTransition>(
    transition: T,
    deps: &Deps,
    ctx: &RequestContext,
) -> Result<T::Out, EngineError> {
    let mut change = Change::begin(&deps.db).await?;
    let mut at = InAccounts {
        change: &mut change,
        deps,
        ctx,
        now: deps.clock.now(),
        kept: None,
    };
    let result = transition.apply(&mut at).await;
    match (&result, at.kept.take()) {
        (Ok(_), _) => change.commit().await?,
        (Err(_), Some(kept)) => {
            change.rollback_to(kept).await?;
            change.commit().await?;
        }
        // Dropping the change rolls it back.
        (Err(_), None) => {}
    }
    result
}

/// A transition's label: its type's name without the path.
fn name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}
