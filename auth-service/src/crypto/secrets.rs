use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit,
    aead::{Aead, AeadCore, OsRng},
};
use hmac::{Hmac, Mac};
use rand::TryRngCore;
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};

use crate::domain::{Code, CodeHash, Email, SessionId};
use crate::store::{CodePurpose, RefreshHash};

type HmacSha256 = Hmac<Sha256>;

/// The service's own secret (32+ bytes). Keys for code hashing and mail sealing derive from it,
/// so every instance sharing a store must share it.
pub struct ServerSecret(SecretBox<Vec<u8>>);

impl ServerSecret {
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < 32 {
            return Err("must be at least 32 bytes".into());
        }
        Ok(Self(SecretBox::new(Box::new(bytes))))
    }

    /// 32 fresh random bytes.
    pub fn generate() -> Vec<u8> {
        let mut bytes = vec![0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the OS random source works");
        bytes
    }

    /// A subkey for one purpose: HMAC-SHA256(secret, label).
    fn derive(&self, label: &str) -> [u8; 32] {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes keys of any length");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Hashes one-time codes with a key only the service holds.
pub struct CodeHasher {
    key: [u8; 32],
}

impl CodeHasher {
    pub fn new(secret: &ServerSecret) -> Self {
        Self {
            key: secret.derive("baatcheet-auth/code-hash/v1"),
        }
    }

    /// HMAC over purpose, email and code, so a hash fits only the request it was made for.
    pub fn hash(&self, purpose: CodePurpose, email: &Email, code: &Code) -> CodeHash {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key).expect("any key length");
        for part in [purpose.as_str(), email.as_str(), code.expose()] {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part.as_bytes());
        }
        CodeHash(mac.finalize().into_bytes().into())
    }
}

/// An opaque refresh token: `<session id>.<256 random bits, base64url>`. The session id
/// routes the lookup (and keeps one session's keys together); only the SHA-256 of the whole
/// token is ever stored.
pub struct RefreshToken {
    pub session_id: SessionId,
    token: String,
}

impl RefreshToken {
    pub fn generate(session_id: &SessionId) -> Self {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut secret)
            .expect("the OS random source works");
        Self {
            session_id: session_id.clone(),
            token: format!("{}.{}", session_id.0, URL_SAFE_NO_PAD.encode(secret)),
        }
    }

    /// Splits a presented token; `None` when it cannot be one of ours.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let (sid, secret) = raw.split_once('.')?;
        let session_id = SessionId::parse(sid).ok()?;
        let decoded = URL_SAFE_NO_PAD.decode(secret).ok()?;
        (decoded.len() == 32 && session_id.0 == sid).then(|| Self {
            session_id,
            token: raw.to_owned(),
        })
    }

    pub fn hash(&self) -> RefreshHash {
        Sha256::digest(self.token.as_bytes()).into()
    }

    pub fn expose(&self) -> &str {
        &self.token
    }
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RefreshToken({}.<redacted>)", self.session_id.0)
    }
}

/// Encrypts queued mail (ChaCha20-Poly1305): the bodies carry codes, and the queue is storage.
pub struct MailSealer {
    cipher: ChaCha20Poly1305,
}

impl MailSealer {
    pub fn new(secret: &ServerSecret) -> Self {
        let key = secret.derive("baatcheet-auth/mail-seal/v1");
        Self {
            cipher: ChaCha20Poly1305::new(&key.into()),
        }
    }

    /// nonce (12 bytes) followed by ciphertext.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(&nonce, plain)
                .expect("encryption of a buffer cannot fail"),
        );
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, String> {
        if sealed.len() < 12 {
            return Err("sealed mail too short".into());
        }
        let (nonce, ct) = sealed.split_at(12);
        self.cipher
            .decrypt(nonce.into(), ct)
            .map_err(|_| "sealed mail does not open with this server secret".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> ServerSecret {
        ServerSecret::new(ServerSecret::generate()).unwrap()
    }

    #[test]
    fn code_hash_binds_purpose_and_email() {
        let h = CodeHasher::new(&secret());
        let code = Code::parse("123456").unwrap();
        let a = Email::parse("a@example.com").unwrap();
        let b = Email::parse("b@example.com").unwrap();
        assert_eq!(
            h.hash(CodePurpose::Registration, &a, &code),
            h.hash(CodePurpose::Registration, &a, &code)
        );
        assert_ne!(
            h.hash(CodePurpose::Registration, &a, &code),
            h.hash(CodePurpose::Registration, &b, &code)
        );
        assert_ne!(
            h.hash(CodePurpose::Registration, &a, &code),
            h.hash(CodePurpose::PasswordReset, &a, &code)
        );
    }

    #[test]
    fn refresh_token_round_trip() {
        let sid = SessionId::generate();
        let t = RefreshToken::generate(&sid);
        let parsed = RefreshToken::parse(t.expose()).unwrap();
        assert_eq!(parsed.session_id, sid);
        assert_eq!(parsed.hash(), t.hash());
        assert!(RefreshToken::parse("garbage").is_none());
        assert!(RefreshToken::parse(&format!("{}.short", sid.0)).is_none());
    }

    #[test]
    fn seal_round_trip_and_tamper() {
        let s = MailSealer::new(&secret());
        let sealed = s.seal(b"code 123456");
        assert!(!sealed.windows(6).any(|w| w == b"123456"));
        assert_eq!(s.open(&sealed).unwrap(), b"code 123456");
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(s.open(&bad).is_err());
        assert!(MailSealer::new(&secret()).open(&sealed).is_err());
    }
}
