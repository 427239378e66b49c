//! Where mail goes: an SMTP relay, or `.eml` files in the outbox folder.

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{
        Body, Mailbox,
        header::{ContentTransferEncoding, ContentType},
    },
    transport::smtp::authentication::Credentials,
};
use secrecy::ExposeSecret;

use crate::{
    config::{MailConfig, MailTransport, SmtpTls},
    jobs::MailJob,
};

pub enum MailTransportImpl {
    Outbox {
        dir: std::path::PathBuf,
        log_links: bool,
    },
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl MailTransportImpl {
    pub async fn new(cfg: &MailConfig) -> Result<Self, String> {
        cfg.from
            .parse::<Mailbox>()
            .map_err(|e| format!("SMTP_FROM {:?} is not a valid address: {e}", cfg.from))?;
        match &cfg.transport {
            MailTransport::Outbox { dir, log_links } => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| format!("cannot create the mail outbox {}: {e}", dir.display()))?;
                Ok(Self::Outbox {
                    dir: dir.clone(),
                    log_links: *log_links,
                })
            }
            MailTransport::Smtp(smtp) => {
                let builder = match smtp.tls {
                    SmtpTls::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
                    }
                    SmtpTls::StartTls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
                            .map_err(|e| format!("SMTP_HOST: {e}"))?
                    }
                    SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
                        .map_err(|e| format!("SMTP_HOST: {e}"))?,
                };
                let mut builder = builder.port(smtp.port).timeout(Some(smtp.timeout));
                if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
                    builder = builder.credentials(Credentials::new(
                        user.clone(),
                        password.expose_secret().to_owned(),
                    ));
                }
                Ok(Self::Smtp(builder.build()))
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Outbox { .. } => "outbox",
            Self::Smtp(_) => "smtp",
        }
    }

    pub async fn send(&self, from: &str, mail: &MailJob) -> Result<(), String> {
        let message = Message::builder()
            .from(
                from.parse::<Mailbox>()
                    .map_err(|e| format!("bad From address: {e}"))?,
            )
            .to(mail
                .to
                .parse::<Mailbox>()
                .map_err(|e| format!("bad recipient address: {e}"))?)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(body(&mail.text))
            .map_err(|e| format!("cannot build the message: {e}"))?;
        match self {
            Self::Outbox { dir, log_links } => {
                // The embedded default has no real mail: put the link where a developer looks.
                let link = mail.text.split_whitespace().find(|w| w.starts_with("http"));
                match link.filter(|_| *log_links) {
                    Some(link) => {
                        tracing::info!(to = %mail.to, subject = %mail.subject, %link, "mail written to the outbox");
                    }
                    None => tracing::info!(subject = %mail.subject, "mail written to the outbox"),
                }
                write_to_outbox(dir, &message.formatted()).await
            }
            Self::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| e.to_string()),
        }
    }
}

/// Put one mail in the outbox folder as `{time}-{id}.eml`: the time prefix makes the
/// names sort in the order the mails were written (the newest last), which is what
/// people and tests reading the outbox look for. Written under a hidden `.part` name and
/// renamed, so a reader never sees half a mail (a link cut short in the middle).
async fn write_to_outbox(dir: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.9fZ");
    let name = format!("{stamp}-{}", uuid::Uuid::new_v4().simple());
    let part = dir.join(format!(".{name}.part"));
    let named = dir.join(format!("{name}.eml"));
    let failed =
        |e: std::io::Error| format!("cannot write to the mail outbox {}: {e}", dir.display());
    tokio::fs::write(&part, bytes).await.map_err(failed)?;
    if let Err(err) = tokio::fs::rename(&part, &named).await {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(failed(err));
    }
    Ok(())
}

/// Plain 7-bit text when it is ASCII with lines within RFC 5322's 998 octets, so links
/// stay whole for people reading the outbox; otherwise lettre picks an encoding.
fn body(text: &str) -> Body {
    if text.is_ascii() && text.lines().all(|l| l.len() <= 998) {
        let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(text.to_owned())
    }
}
