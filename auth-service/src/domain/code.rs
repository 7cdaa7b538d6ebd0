//! One-time codes: the 6-digit [`Code`] mailed to a person, what it is for ([`CodePurpose`]),
//! and the keyed [`CodeHash`] that is all the store keeps of it (`crypto::CodeHasher` makes it).

use rand::{Rng, TryRngCore};
use secrecy::{ExposeSecret, SecretString};

/// A 6-digit one-time code. Made from the OS CSPRNG, sent by mail, stored only as a [`CodeHash`].
pub struct Code(SecretString);

impl Code {
    /// A fresh code, uniform over 000000-999999.
    pub fn generate() -> Self {
        let n: u32 = rand::rngs::OsRng.unwrap_err().random_range(0..1_000_000);
        Self(SecretString::from(format!("{n:06}")))
    }

    /// A code as typed by a person: surrounding spaces are ignored, exactly 6 digits remain.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let code = raw.trim();
        if code.is_empty() {
            return Err("code is required".into());
        }
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err("code must be 6 digits".into());
        }
        Ok(Self(SecretString::from(code.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code(<redacted>)")
    }
}

/// What a one-time code is for. Codes of one email for different purposes never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    Registration,
    PasswordReset,
    /// Sign-in by emailed code.
    Login,
    /// A signed-in user's new address, proving it is theirs (keyed by the new address).
    EmailChange,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::Registration => "register",
            CodePurpose::PasswordReset => "reset",
            CodePurpose::Login => "login",
            CodePurpose::EmailChange => "email_change",
        }
    }
}

/// Keyed hash of a code (HMAC-SHA256 with the server secret, bound to purpose, email and the
/// pending request's id), so a leaked store does not give away codes by brute force over the
/// million possibilities.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeHash(pub [u8; 32]);

impl CodeHash {
    /// A hash no code has: the stored code of a decoy request, which no guess can match.
    pub fn unguessable() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the OS random source works");
        Self(bytes)
    }
}

impl std::fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_six_digits() {
        for _ in 0..100 {
            let code = Code::generate();
            assert_eq!(code.expose().len(), 6);
            assert!(Code::parse(code.expose()).is_ok());
        }
    }

    #[test]
    fn parse_refuses_non_digits() {
        assert!(Code::parse("12345").is_err());
        assert!(Code::parse("12345a").is_err());
        assert!(Code::parse("1234567").is_err());
        assert_eq!(Code::parse(" 012345 ").unwrap().expose(), "012345");
    }
}
