//! Webhooks as values: the events a project announces, a checked endpoint, which
//! addresses a delivery may never reach, the signing secret and the signature of the
//! Standard Webhooks specification, and the retry schedule.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{ErrorCode, error::EngineError};

macro_rules! events {
    ($($variant:ident = $name:literal, $doc:literal;)*) => {
        /// Something a project announces to its webhooks.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum WebhookEvent {
            $( #[doc = $doc] #[serde(rename = $name)] $variant, )*
        }

        impl WebhookEvent {
            pub const ALL: &[WebhookEvent] = &[$(Self::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }

            /// What the event means (for the API's documentation).
            pub fn doc(self) -> &'static str {
                match self { $(Self::$variant => $doc,)* }
            }
        }
    };
}

events! {
    ItemUploaded = "item.uploaded", "An item was uploaded (its file is stored; processing is queued).";
    ItemReady = "item.ready", "Processing gave the item its text or transcript.";
    ItemProcessingFailed = "item.processing_failed", "Processing could not give the item a text (`processing_error_code` says why).";
    ItemSubmitted = "item.submitted", "The item was submitted for review.";
    ItemApproved = "item.approved", "Review approved the item.";
    ItemRejected = "item.rejected", "Review rejected the item.";
    ItemChangesRequested = "item.changes_requested", "Review asked the contributor for changes.";
    ItemDeleted = "item.deleted", "The item was deleted.";
    AnnotationUpdated = "annotation.updated", "An item's labels were written (a new annotation revision).";
    ExportFinished = "export.finished", "An export finished; its file can be downloaded.";
    ExportFailed = "export.failed", "An export gave up.";
    MemberAdded = "member.added", "Someone joined the project.";
    MemberRemoved = "member.removed", "Someone left or was removed from the project.";
    Ping = "ping", "A test delivery (`POST …/webhooks/{webhook_id}/test`); never subscribed to.";
}

impl TryFrom<String> for WebhookEvent {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| format!("unknown event {s:?}"))
    }
}

/// Most webhooks one project may have.
pub const MAX_WEBHOOKS_PER_PROJECT: i64 = 20;
const MAX_URL_LEN: usize = 2000;
const MAX_DESCRIPTION_CHARS: usize = 500;

/// What a project admin sends to create or change a webhook (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct WebhookInput {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub active: Option<bool>,
}

/// A checked webhook request.
#[derive(Debug, Clone, Default)]
pub struct WebhookSpec {
    pub url: Option<url::Url>,
    pub events: Option<Vec<WebhookEvent>>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    pub active: Option<bool>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> EngineError {
    EngineError::validation(ErrorCode::InvalidWebhook, field, message)
}

impl WebhookSpec {
    /// Check what was sent. `https_only`: production accepts `https` endpoints only.
    /// Whether the host may be reached is checked apart ([`check_addresses`]), since
    /// it needs the network.
    pub fn parse(input: WebhookInput, https_only: bool) -> Result<Self, EngineError> {
        let url = input
            .url
            .map(|raw| parse_url(&raw, https_only))
            .transpose()?;
        let events = match input.events {
            None => None,
            Some(raw) if raw.is_empty() => {
                return Err(invalid("/events", "name at least one event"));
            }
            Some(raw) => {
                let mut events = Vec::new();
                for (i, name) in raw.into_iter().enumerate() {
                    let event = WebhookEvent::try_from(name).map_err(|e| {
                        EngineError::validation(
                            ErrorCode::InvalidWebhook,
                            format!("/events/{i}"),
                            e,
                        )
                    })?;
                    if event == WebhookEvent::Ping {
                        return Err(EngineError::validation(
                            ErrorCode::InvalidWebhook,
                            format!("/events/{i}"),
                            "`ping` is sent by the test operation, not subscribed to",
                        ));
                    }
                    if !events.contains(&event) {
                        events.push(event);
                    }
                }
                Some(events)
            }
        };
        let description = match input.description {
            None => None,
            Some(text) => {
                let text = text.trim().to_owned();
                if text.chars().count() > MAX_DESCRIPTION_CHARS {
                    return Err(invalid(
                        "/description",
                        format!("description is longer than {MAX_DESCRIPTION_CHARS} characters"),
                    ));
                }
                if text.chars().any(|c| c.is_control() && c != '\n') {
                    return Err(invalid(
                        "/description",
                        "description has control characters",
                    ));
                }
                Some((!text.is_empty()).then_some(text))
            }
        };
        Ok(Self {
            url,
            events,
            description,
            active: input.active,
        })
    }
}

/// An endpoint: `https` (or `http` outside production), a host, no credentials, no
/// fragment.
pub fn parse_url(raw: &str, https_only: bool) -> Result<url::Url, EngineError> {
    if raw.len() > MAX_URL_LEN {
        return Err(invalid(
            "/url",
            format!("url is longer than {MAX_URL_LEN} bytes"),
        ));
    }
    let url = url::Url::parse(raw.trim()).map_err(|e| invalid("/url", format!("url: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if !https_only => {}
        "http" => {
            return Err(invalid(
                "/url",
                "only https endpoints are accepted in production",
            ));
        }
        other => return Err(invalid("/url", format!("scheme {other:?} is not http(s)"))),
    }
    if url.host().is_none() {
        return Err(invalid("/url", "url has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("/url", "url must not carry credentials"));
    }
    if url.fragment().is_some() {
        return Err(invalid("/url", "url must not have a fragment"));
    }
    Ok(url)
}

/// An address no delivery may reach (unless `WEBHOOK_ALLOW_PRIVATE`): loopback, private,
/// shared (carrier-grade NAT), link-local (cloud metadata at 169.254.169.254),
/// unspecified, broadcast, multicast, documentation and reserved ranges, unique-local
/// IPv6 (AWS's `fd00:ec2::254` among them), and IPv6 forms that carry such an IPv4.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let seg = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                let o = v6.octets();
                return forbidden_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || seg[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

/// The address a url names as such (`http://10.0.0.1/`), which no resolver sees.
pub fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Refuse a host whose addresses include a forbidden one (every address must be
/// reachable: a name with one private address could be steered to it).
pub fn check_addresses(addrs: &[IpAddr]) -> Result<(), String> {
    if addrs.is_empty() {
        return Err("the host has no address".into());
    }
    match addrs.iter().find(|ip| is_forbidden(**ip)) {
        Some(ip) => Err(format!(
            "the host resolves to {ip}, a loopback, private, link-local or reserved address"
        )),
        None => Ok(()),
    }
}

/// A new signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill(&mut key[..]);
    format!("whsec_{}", STANDARD.encode(key))
}

/// The Standard Webhooks signature header for a message: `v1,<base64 HMAC-SHA256>` of
/// `{id}.{timestamp}.{body}` under each secret, separated by spaces (a receiver accepts
/// the message if any one matches, which is how a rotated secret keeps working).
pub fn signature(secrets: &[&str], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(msg_id.len() + body.len() + 24);
    signed.extend_from_slice(msg_id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    secrets
        .iter()
        .filter_map(|secret| {
            let key = STANDARD
                .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
                .ok()?;
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
            let tag = aws_lc_rs::hmac::sign(&key, &signed);
            Some(format!("v1,{}", STANDARD.encode(tag.as_ref())))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `webhook-id` of a delivery.
pub fn message_id(delivery_id: uuid::Uuid) -> String {
    format!("msg_{}", delivery_id.simple())
}

/// How long to wait after the `attempt`-th failure: 5 s, 5 min, 30 min, 2 h, 5 h, then
/// 10 h (eight attempts span about 28 hours), each ±20 % at random so that endpoints
/// coming back are not hit by every retry at once.
pub fn retry_delay(attempt: i32) -> Duration {
    const SCHEDULE: [u64; 6] = [5, 300, 1800, 7200, 18000, 36000];
    let index = usize::try_from(attempt.max(1) - 1)
        .unwrap_or(0)
        .min(SCHEDULE.len() - 1);
    let base = SCHEDULE[index] as f64;
    let factor = rand::rng().random_range(0.8..=1.2);
    Duration::from_secs_f64(base * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_addresses() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }

    #[test]
    fn urls() {
        assert!(parse_url("https://hooks.example.com/x?y=1", true).is_ok());
        assert!(parse_url("http://hooks.example.com/x", false).is_ok());
        assert!(parse_url("http://hooks.example.com/x", true).is_err());
        assert!(parse_url("ftp://hooks.example.com/x", false).is_err());
        assert!(parse_url("https://user:pw@hooks.example.com/", false).is_err());
        assert!(parse_url("https://hooks.example.com/#frag", false).is_err());
        assert!(parse_url("not a url", false).is_err());
    }

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signature_matches_the_specification() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = signature(
            &[secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn schedule_spans_about_a_day() {
        let total: f64 = (1..8).map(|a| retry_delay(a).as_secs_f64()).sum();
        assert!((60_000.0..130_000.0).contains(&total), "{total}");
    }
}
