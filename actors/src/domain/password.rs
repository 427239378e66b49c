use crate::ErrorCode;
use secrecy::{ExposeSecret, SecretString};

use crate::error::EngineError;

pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// A password a user wants to set: 12 to 128 characters (counted as Unicode scalar
/// values, never truncated or case-folded), and not guessable (zxcvbn score ≥ 2,
/// which refuses common and dictionary passwords). No composition rules (ASVS V6.2).
pub struct NewPassword(SecretString);

impl NewPassword {
    /// `hints` are words the password must not simply be built from (the email's local part).
    pub fn parse(raw: &str, hints: &[&str]) -> Result<Self, EngineError> {
        let chars = raw.chars().count();
        if chars < PASSWORD_MIN_CHARS {
            return Err(EngineError::validation(
                ErrorCode::PasswordTooShort,
                "password",
                format!("password must be at least {PASSWORD_MIN_CHARS} characters"),
            ));
        }
        if chars > PASSWORD_MAX_CHARS {
            return Err(EngineError::validation(
                ErrorCode::PasswordTooLong,
                "password",
                format!("password must be at most {PASSWORD_MAX_CHARS} characters"),
            ));
        }
        let entropy = zxcvbn::zxcvbn(raw, hints);
        if u8::from(entropy.score()) < 2 {
            return Err(EngineError::validation(
                ErrorCode::PasswordTooWeak,
                "password",
                "password is too easy to guess; try a longer phrase of unrelated words",
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforces_length_bounds() {
        assert_eq!(
            NewPassword::parse("short-pw1", &[]).unwrap_err().code(),
            "password_too_short"
        );
        assert_eq!(
            NewPassword::parse(&"x".repeat(129), &[])
                .unwrap_err()
                .code(),
            "password_too_long"
        );
        // 64 characters of something unguessable is fine (ASVS: allow at least 64).
        assert!(
            NewPassword::parse(
                "correct horse battery staple, but mauve and 1997 xylophones!!",
                &[]
            )
            .is_ok()
        );
    }

    #[test]
    fn refuses_common_passwords() {
        for weak in [
            "password1234",
            "qwertyuiop12",
            "123456789012",
            "aaaaaaaaaaaa",
        ] {
            assert_eq!(
                NewPassword::parse(weak, &[]).unwrap_err().code(),
                "password_too_weak",
                "{weak} should be too weak"
            );
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let pw = NewPassword::parse("violet-Tangent-Harbour-42", &[]).unwrap();
        assert!(!format!("{pw:?}").contains("violet"));
    }
}
