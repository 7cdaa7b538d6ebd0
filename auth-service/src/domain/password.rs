//! Passwords: the plaintext [`Password`], refused past 128 characters (and under 8 when new)
//! before anything hashes it and redacted in Debug, and the argon2id [`PasswordHash`] the store
//! keeps instead.

use secrecy::{ExposeSecret, SecretString};

/// A plaintext password, 8-128 characters, only ever held in memory on its way to argon2.
/// Longer input is refused before hashing so nobody can make the server hash megabytes.
pub struct Password(SecretString);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let len = raw.chars().count();
        if len == 0 {
            return Err("password is required".into());
        }
        if len < 8 {
            return Err("password must be at least 8 characters".into());
        }
        if len > 128 {
            return Err("password must be at most 128 characters".into());
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    /// For the current password of ChangePassword and for Login: any non-empty input up to the
    /// same bound is worth one verification, since old accounts may predate today's rules.
    pub fn parse_existing(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("password is required".into());
        }
        if raw.chars().count() > 128 {
            return Err("password must be at most 128 characters".into());
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// An argon2id PHC string. Not secret in the way a password is, but never logged either.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"x".repeat(128)).is_ok());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert!(format!("{:?}", Password::parse("secret-pass").unwrap()).contains("redacted"));
    }
}
