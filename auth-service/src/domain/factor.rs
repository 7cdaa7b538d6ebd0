//! Second factors and how a session signed in: the [`AuthMethod`]s, the [`SignIn`] a session
//! records, the one-time [`RecoveryCode`]s a user keeps for a lost phone, and what a second
//! factor step is proven with ([`FactorProof`]).

use rand::{Rng, TryRngCore};
use secrecy::{ExposeSecret, SecretString};

use super::Code;

/// One way of proving who you are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    Password,
    /// A code mailed to the account's address (sign-up, sign-in by code).
    EmailCode,
    Passkey,
    Totp,
    RecoveryCode,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 5] = [
        AuthMethod::Password,
        AuthMethod::EmailCode,
        AuthMethod::Passkey,
        AuthMethod::Totp,
        AuthMethod::RecoveryCode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::EmailCode => "email_code",
            AuthMethod::Passkey => "passkey",
            AuthMethod::Totp => "totp",
            AuthMethod::RecoveryCode => "recovery_code",
        }
    }

    pub fn from_stored(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// How a session signed in: the first factor, and the second when the account has one.
/// Stored with the session as `first` or `first+second` (e.g. `password+totp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignIn {
    pub first: AuthMethod,
    pub second: Option<AuthMethod>,
}

impl SignIn {
    pub fn one(first: AuthMethod) -> Self {
        Self {
            first,
            second: None,
        }
    }

    /// Every method, first factor first.
    pub fn methods(&self) -> Vec<AuthMethod> {
        std::iter::once(self.first).chain(self.second).collect()
    }

    pub fn to_stored(self) -> String {
        self.methods()
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// The stored form back; `None` for a session stored before sign-in methods were kept
    /// (empty) or a method this version does not know.
    pub fn from_stored(s: &str) -> Option<Self> {
        let mut parts = s.split('+');
        let first = AuthMethod::from_stored(parts.next()?)?;
        let second = match parts.next() {
            Some(m) => Some(AuthMethod::from_stored(m)?),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self { first, second })
    }
}

/// The second factors of a user, as the user sees them (never a secret).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactorSummary {
    pub totp: bool,
    /// Unused recovery codes left.
    pub recovery_codes: u32,
    /// Passkeys registered. A passkey signs in on its own (it verifies its user itself) and,
    /// once two-step sign-in is on, also completes a challenge after a password or code.
    pub passkeys: u32,
}

impl FactorSummary {
    /// Whether signing in with a password or an emailed code needs a second factor: TOTP
    /// turns two-step sign-in on. Passkeys alone do not, so a lost passkey never locks out
    /// the owner of the password.
    pub fn any(&self) -> bool {
        self.totp
    }

    /// What a challenge can be completed with.
    pub fn allowed(&self) -> Vec<AuthMethod> {
        let mut allowed = Vec::new();
        if self.totp {
            allowed.push(AuthMethod::Totp);
        }
        if self.passkeys > 0 {
            allowed.push(AuthMethod::Passkey);
        }
        if self.recovery_codes > 0 {
            allowed.push(AuthMethod::RecoveryCode);
        }
        allowed
    }
}

/// A one-time recovery code: 10 characters of the base32 alphabet (50 random bits), shown as
/// `xxxxx-xxxxx`, typed with or without the dash, in any case. Stored only as a keyed hash.
pub struct RecoveryCode(SecretString);

impl RecoveryCode {
    /// How many a user gets at a time.
    pub const COUNT: usize = 10;
    const LEN: usize = 10;
    const ALPHABET: &'static [u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

    pub fn generate() -> Self {
        let mut rng = rand::rngs::OsRng.unwrap_err();
        let code: String = (0..Self::LEN)
            .map(|_| Self::ALPHABET[rng.random_range(0..32)] as char)
            .collect();
        Self(SecretString::from(code))
    }

    /// A code as typed: spaces and dashes are ignored, letters in any case.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let code: String = raw
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if code.is_empty() {
            return Err("recovery_code is required".into());
        }
        if code.len() != Self::LEN || !code.bytes().all(|b| Self::ALPHABET.contains(&b)) {
            return Err("recovery_code must be 10 letters and digits (xxxxx-xxxxx)".into());
        }
        Ok(Self(SecretString::from(code)))
    }

    /// The normalized form, which is what is hashed.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// As shown to the user once: `xxxxx-xxxxx`.
    pub fn display(&self) -> String {
        let code = self.expose();
        format!("{}-{}", &code[..5], &code[5..])
    }
}

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

/// What proves the second factor (or, where allowed, the password) in one request.
#[derive(Debug)]
pub enum FactorProof {
    Totp(Code),
    RecoveryCode(RecoveryCode),
    /// A WebAuthn assertion (the PublicKeyCredential JSON), for a challenge's passkey options.
    Passkey(serde_json::Value),
    Password(super::Password),
}

impl FactorProof {
    pub fn method(&self) -> AuthMethod {
        match self {
            FactorProof::Totp(_) => AuthMethod::Totp,
            FactorProof::RecoveryCode(_) => AuthMethod::RecoveryCode,
            FactorProof::Passkey(_) => AuthMethod::Passkey,
            FactorProof::Password(_) => AuthMethod::Password,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_round_trips() {
        for first in AuthMethod::ALL {
            for second in [
                None,
                Some(AuthMethod::Totp),
                Some(AuthMethod::RecoveryCode),
                Some(AuthMethod::Passkey),
            ] {
                let sign_in = SignIn { first, second };
                assert_eq!(SignIn::from_stored(&sign_in.to_stored()), Some(sign_in));
            }
        }
        for unknown in ["", "sms", "password+sms", "password+totp+passkey"] {
            assert_eq!(SignIn::from_stored(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn recovery_codes_parse_as_typed() {
        let code = RecoveryCode::generate();
        assert_eq!(code.expose().len(), 10);
        let shown = code.display();
        assert_eq!(shown.len(), 11);
        for typed in [
            shown.clone(),
            shown.to_uppercase(),
            format!(" {} ", shown.replace('-', " ")),
        ] {
            assert_eq!(RecoveryCode::parse(&typed).unwrap().expose(), code.expose());
        }
        for bad in ["", "abcde", "abcde-fghij-k", "abcde-fghi1", "abcdé-fghij"] {
            assert!(RecoveryCode::parse(bad).is_err(), "{bad}");
        }
        assert!(!format!("{code:?}").contains(code.expose()));
    }
}
