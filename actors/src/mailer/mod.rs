//! Mail: the `mail` job handler. Sends over SMTP (lettre) when configured, else into
//! the outbox folder as `.eml` files. The generic job worker claims, retries and parks.

mod transport;

use std::sync::Arc;

pub use self::transport::MailTransportImpl;
use crate::{
    deps::Deps,
    jobs::{
        KIND_MAIL, MailJob,
        worker::{JobEnd, JobFailure, JobHandler},
    },
    metrics as m,
    store::jobs::JobRow,
};

pub struct MailHandler {
    transport: MailTransportImpl,
}

impl MailHandler {
    pub async fn new(deps: &Deps) -> Result<Self, String> {
        Ok(Self {
            transport: MailTransportImpl::new(&deps.config.mail).await?,
        })
    }
}

impl JobHandler for MailHandler {
    const KIND: &'static str = KIND_MAIL;
    // The text holds a live link: it must not outlive the sending in the database.
    const SCRUB_WHEN_DONE: bool = true;

    fn concurrency(&self, deps: &Deps) -> usize {
        deps.config.jobs.mail_concurrency
    }

    async fn run(&self, deps: &Arc<Deps>, job: &JobRow) -> Result<JobEnd, JobFailure> {
        let mail: MailJob = serde_json::from_value(job.payload.0.clone())
            .map_err(|e| JobFailure(format!("malformed mail job payload: {e}")))?;
        let transport = self.transport.name();
        match self.transport.send(&deps.config.mail.from, &mail).await {
            Ok(()) => {
                metrics::counter!(m::MAIL_SENT_TOTAL, "transport" => transport, "outcome" => "sent").increment(1);
                Ok(JobEnd::Ran)
            }
            Err(err) => {
                metrics::counter!(m::MAIL_SENT_TOTAL, "transport" => transport, "outcome" => "failed").increment(1);
                Err(JobFailure(err))
            }
        }
    }
}
