//! [`PendingId`]: the random id that binds a pending sign-up or password reset to the client
//! that started it. Its code works only with the id, so knowing an email is not enough.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::TryRngCore;

/// Opaque id of one pending request (a registration or a password reset): 128 random bits,
/// base64url. Whoever started the request holds it (the gateway keeps it in an httpOnly
/// cookie); the request can be finished, resent or guessed at only with it, so knowing someone's
/// email never lets you touch their pending request.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PendingId(String);

impl PendingId {
    const BYTES: usize = 16;

    pub fn generate() -> Self {
        let mut bytes = [0u8; Self::BYTES];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the OS random source works");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// An id as it came back from a caller: exactly what [`PendingId::generate`] makes.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let valid = raw.len() == 22
            && URL_SAFE_NO_PAD
                .decode(raw)
                .is_ok_and(|b| b.len() == Self::BYTES);
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err("is not an id this service issued".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PendingId {
    // Only its holder may know it: logs get a prefix, enough to correlate.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PendingId({}..)", &self.0[..4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = PendingId::generate();
        assert_eq!(PendingId::parse(a.as_str()).unwrap(), a);
        assert_ne!(a, PendingId::generate());
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn foreign_ids_are_refused() {
        for bad in [
            "",
            "abc",
            "!!!!!!!!!!!!!!!!!!!!!!",
            &"A".repeat(23),
            &"A".repeat(400),
        ] {
            assert!(PendingId::parse(bad).is_err(), "{bad}");
        }
        // 22 base64url characters whose last one carries bits beyond 128 are not ours either.
        assert!(PendingId::parse("AAAAAAAAAAAAAAAAAAAAA_").is_err());
    }
}
