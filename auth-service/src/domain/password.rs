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

/// What makes a new password acceptable beyond its length (sign-up, reset, change): it does
/// not contain the account's username or the part of its email before the `@`, and zxcvbn
/// (which knows tens of thousands of common and breached passwords, words and names, and
/// keyboard, date and repeat patterns, offline) rates it at least `min_score` of 0-4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordRules {
    pub min_score: u8,
}

impl PasswordRules {
    /// Characters rated: zxcvbn's cost grows with length (a few ms at 64 characters, tens at
    /// 128), and a password this long that passes the other rules is no guess anyway.
    const RATED_CHARS: usize = 64;

    /// Refused with a message naming the rule, for the field of the new password.
    pub fn check(&self, password: &Password, username: &str, email: &str) -> Result<(), String> {
        let lower = password.expose().to_lowercase();
        let name = username.trim().to_lowercase();
        let local = email.trim().split('@').next().unwrap_or("").to_lowercase();
        if name.chars().count() >= 3 && lower.contains(&name) {
            return Err("password must not contain the username".into());
        }
        if local.chars().count() >= 3 && lower.contains(&local) {
            return Err("password must not contain the email address's name (before the @)".into());
        }
        if self.min_score == 0 {
            return Ok(());
        }
        let rated: String = password.expose().chars().take(Self::RATED_CHARS).collect();
        let entropy = zxcvbn::zxcvbn(&rated, &[&name, &local]);
        let score = u8::from(entropy.score());
        if score < self.min_score {
            let why = entropy
                .feedback()
                .and_then(|f| f.warning())
                .map(|w| format!(": {w}"))
                .unwrap_or_default();
            return Err(format!(
                "password is too easy to guess{why} (strength {score} of 4; at least {} needed)",
                self.min_score
            ));
        }
        Ok(())
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

    #[test]
    fn rules_refuse_common_guessable_and_personal_passwords() {
        let rules = PasswordRules { min_score: 3 };
        let check = |pw: &str| {
            rules.check(
                &Password::parse(pw).unwrap(),
                "asha_k",
                "asha.k@example.com",
            )
        };
        for common in [
            "password123",
            "12345678",
            "qwertyuiop",
            "iloveyou2",
            "Password1!",
        ] {
            let err = check(common).unwrap_err();
            assert!(
                err.starts_with("password is too easy to guess"),
                "{common}: {err}"
            );
        }
        assert!(check("password123").unwrap_err().contains("common"));
        assert!(
            check("my ASHA_K is long and fine")
                .unwrap_err()
                .contains("username")
        );
        assert!(
            check("dear asha.k, hello there")
                .unwrap_err()
                .contains("email")
        );
        for good in [
            "correct horse battery",
            "a brand new passphrase",
            "ZrT9-kq4_Lm2xPa0QwE1",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        // Long input is rated on its first 64 characters only (bounded cost), and a repeat
        // stays refused.
        assert!(check(&"x".repeat(128)).is_err());
        assert!(check(&format!("{}{}", "correct horse battery ", "z".repeat(100))).is_ok());
        let lenient = PasswordRules { min_score: 0 };
        assert!(
            lenient
                .check(&Password::parse("12345678").unwrap(), "u", "e")
                .is_ok()
        );
    }
}
