//! TOTP (RFC 6238) as authenticator apps do it: SHA-1, 6 digits, 30 s steps, a code of the
//! step before or after accepted too. The code math is `totp-rs`; what this adds is which
//! step a code matched (so each step is accepted once, see `FactorStore::use_totp_step`), the
//! `otpauth://` URI an app scans, and the secret kept only sealed.

use rand::TryRngCore;
use secrecy::{ExposeSecret, SecretBox};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::domain::{Code, UnixMs, UserId};

use super::Sealer;

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Steps accepted on either side of the current one (clock drift, a code typed late).
const SKEW: u16 = 1;
/// 160 bits, the RFC 4226 recommendation (and what authenticator apps expect).
const SECRET_BYTES: usize = 20;

/// A user's TOTP secret, in memory only while it is used.
pub struct TotpSecret(SecretBox<Vec<u8>>);

impl TotpSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the OS random source works");
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// Sealed to its user: what the store keeps.
    pub fn seal(&self, sealer: &Sealer, user: &UserId) -> Vec<u8> {
        sealer.seal_for(self.0.expose_secret(), user.0.as_bytes())
    }

    /// Opens a stored secret; fails when it was sealed for another user or another key.
    pub fn open(sealer: &Sealer, user: &UserId, sealed: &[u8]) -> Result<Self, String> {
        let bytes = sealer.open_for(sealed, user.0.as_bytes())?;
        if bytes.len() != SECRET_BYTES {
            return Err("a sealed TOTP secret has the wrong length".into());
        }
        Ok(Self(SecretBox::new(Box::new(bytes))))
    }

    /// Base32 (RFC 4648, no padding), as typed into an app by hand.
    pub fn base32(&self) -> String {
        Secret::from(self.0.expose_secret().as_slice()).to_base32()
    }

    fn totp(&self, issuer: &str, account: &str) -> Totp {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_skew(SKEW)
            .with_step_duration(STEP_SECONDS)
            .with_secret(self.0.expose_secret().clone())
            .with_issuer(Some(label(issuer)))
            .with_account_name(label(account))
            .build_noncompliant()
    }

    /// The `otpauth://totp/...` URI an authenticator app scans (as a QR code) or opens.
    pub fn uri(&self, issuer: &str, account: &str) -> String {
        self.totp(issuer, account)
            .to_url()
            .unwrap_or_else(|_| format!("otpauth://totp/?secret={}", self.base32()))
    }

    /// The step `code` belongs to, if it is the code of the step at `now` or one next to it.
    pub fn matching_step(&self, code: &Code, now: UnixMs) -> Option<i64> {
        let seconds = (now.max(0) / 1000) as u64;
        self.totp("", "")
            .check(code.expose(), seconds)
            .map(|step| step as i64)
    }
}

/// A label part of the URI: `:` separates issuer and account there, so it may not appear.
fn label(text: &str) -> String {
    let cleaned = text.replace(':', " ");
    if cleaned.trim().is_empty() {
        "-".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ServerSecret;

    /// RFC 6238 appendix B, SHA-1 (8 digits there; the last 6 here).
    #[test]
    fn rfc_6238_vectors() {
        let secret = TotpSecret(SecretBox::new(Box::new(b"12345678901234567890".to_vec())));
        for (seconds, code) in [
            (59_i64, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            let step = seconds / 30;
            let code = Code::parse(code).unwrap();
            assert_eq!(secret.matching_step(&code, seconds * 1000), Some(step));
            // One step either side is accepted, two are not.
            assert_eq!(
                secret.matching_step(&code, (seconds + 30) * 1000),
                Some(step)
            );
            assert_eq!(secret.matching_step(&code, (seconds + 90) * 1000), None);
        }
    }

    #[test]
    fn sealed_to_its_user() {
        let sealer = Sealer::for_totp(&ServerSecret::random());
        let (ana, bob) = (UserId("ana".into()), UserId("bob".into()));
        let secret = TotpSecret::generate();
        let sealed = secret.seal(&sealer, &ana);
        let opened = TotpSecret::open(&sealer, &ana, &sealed).unwrap();
        assert_eq!(opened.base32(), secret.base32());
        assert!(TotpSecret::open(&sealer, &bob, &sealed).is_err());
        assert!(
            !sealed
                .windows(8)
                .any(|w| secret.0.expose_secret().starts_with(w))
        );
    }

    #[test]
    fn uri_names_issuer_and_account() {
        let secret = TotpSecret::generate();
        let uri = secret.uri("Baat Cheet", "ana@example.com");
        assert!(
            uri.starts_with("otpauth://totp/Baat%20Cheet:ana%40example.com?"),
            "{uri}"
        );
        assert!(
            uri.contains(&format!("secret={}", secret.base32())),
            "{uri}"
        );
        assert!(uri.contains("issuer=Baat%20Cheet"), "{uri}");
        assert_eq!(secret.base32().len(), 32);
    }
}
