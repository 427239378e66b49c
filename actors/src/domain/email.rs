use crate::ErrorCode;
use std::fmt;

use crate::error::EngineError;

/// An email address, normalised (trimmed, lower-cased) so one mailbox is one account.
///
/// Deliberately simple: one `@`, a non-empty local part, a dotted domain of letters,
/// digits and hyphens, no spaces or control characters, at most 254 bytes (RFC 5321).
/// Deliverability is proven by the verification mail, not by a regex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, EngineError> {
        let invalid = |why: &str| {
            EngineError::validation(ErrorCode::InvalidEmail, "email", format!("email {why}"))
        };
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(invalid("is required"));
        }
        if email.len() > 254 {
            return Err(invalid("must be at most 254 characters"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain spaces or control characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(invalid("must contain @"));
        };
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(invalid("has an invalid local part"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(invalid("has an invalid domain"));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@`, used as a hint for the password-strength check.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_whitespace() {
        let email = Email::parse("  Ada@Example.ORG ").unwrap();
        assert_eq!(email.as_str(), "ada@example.org");
        assert_eq!(email.local_part(), "ada");
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "ada",
            "@example.org",
            "ada@",
            "ada@org",
            "ada@exa mple.org",
            "a@b@c.org",
            "ada@-x.org",
            "ada@x..org",
            "ada\u{0}@x.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@example.org", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }
}
