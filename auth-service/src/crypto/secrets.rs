//! The secrets the service makes and keeps: the server secret (`AUTH_SECRET`) and one key
//! derived from it per use (code HMACs, the log tags of emails, ChaCha20-Poly1305 sealing of
//! queued mail and of grace-window successors), and the opaque refresh token, stored only as
//! its SHA-256. Instances that share a store must share the secret.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit,
    aead::{Aead, AeadCore, OsRng, Payload},
};
use hmac::{Hmac, Mac};
use rand::TryRngCore;
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};

use crate::domain::{
    Code, CodeHash, CodePurpose, Email, PendingId, RecoveryCode, RefreshHash, SessionId, UserId,
};

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

    /// A fresh secret, for tests and tools.
    pub fn random() -> Self {
        Self(SecretBox::new(Box::new(Self::generate())))
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
            key: secret.derive("baatcheet-auth/code-hash/v2"),
        }
    }

    /// HMAC over purpose, email, request id and code, so a hash fits only the request it was
    /// made for.
    pub fn hash(
        &self,
        purpose: CodePurpose,
        email: &Email,
        id: &PendingId,
        code: &Code,
    ) -> CodeHash {
        CodeHash(keyed(
            &self.key,
            &[purpose.as_str(), email.as_str(), id.as_str(), code.expose()],
        ))
    }

    /// HMAC over a user's id and one of their recovery codes (normalized), so a code fits only
    /// its user and a leaked store gives none away.
    pub fn recovery(&self, user: &UserId, code: &RecoveryCode) -> CodeHash {
        CodeHash(keyed(&self.key, &["recovery", &user.0, code.expose()]))
    }
}

/// Names an email in logs without writing it: the first 12 hex digits of an HMAC keyed with
/// the server secret. The same address always gets the same tag (so its lines can be found
/// by an operator who computes it), and a log reader cannot reverse it or test guesses.
pub struct EmailTagger {
    key: [u8; 32],
}

impl EmailTagger {
    pub fn new(secret: &ServerSecret) -> Self {
        Self {
            key: secret.derive("baatcheet-auth/log-email-tag/v1"),
        }
    }

    pub fn tag(&self, email: &Email) -> String {
        self.tag_text(email.as_str())
    }

    /// The same for any identifier (an email or a username as typed, lowercased), so counters
    /// keyed by it name no address in the store either.
    pub fn tag_text(&self, text: &str) -> String {
        keyed(&self.key, &[text])[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// HMAC-SHA256 over length-prefixed parts, so no two lists of parts collide.
fn keyed(key: &[u8; 32], parts: &[&str]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(&(part.len() as u32).to_be_bytes());
        mac.update(part.as_bytes());
    }
    mac.finalize().into_bytes().into()
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

/// Encrypts what the service must store but nobody may read (ChaCha20-Poly1305): queued mail,
/// whose bodies carry codes, and the successor refresh token kept for the grace window. Each
/// use has its own key, so a sealed value of one kind never opens as another.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    /// The sealer of the mail queue.
    pub fn for_mail(secret: &ServerSecret) -> Self {
        Self::new(secret, "baatcheet-auth/mail-seal/v1")
    }

    /// The sealer of refresh tokens kept for the grace window.
    pub fn for_refresh_tokens(secret: &ServerSecret) -> Self {
        Self::new(secret, "baatcheet-auth/refresh-successor/v1")
    }

    /// The sealer of TOTP secrets (each sealed to its user, see [`Sealer::seal_for`]).
    pub fn for_totp(secret: &ServerSecret) -> Self {
        Self::new(secret, "baatcheet-auth/totp-secret/v1")
    }

    /// The sealer of the rotation's signing keys (each sealed to its key id).
    pub fn for_signing_keys(secret: &ServerSecret) -> Self {
        Self::new(secret, "baatcheet-auth/signing-key/v1")
    }

    fn new(secret: &ServerSecret, label: &str) -> Self {
        let key = secret.derive(label);
        Self {
            cipher: ChaCha20Poly1305::new(&key.into()),
        }
    }

    /// nonce (12 bytes) followed by ciphertext.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        self.seal_for(plain, b"")
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, String> {
        self.open_for(sealed, b"")
    }

    /// Seals `plain` to `context` (authenticated, not encrypted): it opens only with the same
    /// context, so a sealed value copied to another user's record does not open there.
    pub fn seal_for(&self, plain: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(
                    &nonce,
                    Payload {
                        msg: plain,
                        aad: context,
                    },
                )
                .expect("encryption of a buffer cannot fail"),
        );
        out
    }

    pub fn open_for(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, String> {
        if sealed.len() < 12 {
            return Err("sealed value too short".into());
        }
        let (nonce, ct) = sealed.split_at(12);
        self.cipher
            .decrypt(
                nonce.into(),
                Payload {
                    msg: ct,
                    aad: context,
                },
            )
            .map_err(|_| "the sealed value does not open with this server secret".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> ServerSecret {
        ServerSecret::new(ServerSecret::generate()).unwrap()
    }

    #[test]
    fn code_hash_binds_purpose_email_and_request() {
        let h = CodeHasher::new(&secret());
        let code = Code::parse("123456").unwrap();
        let a = Email::parse("a@example.com").unwrap();
        let b = Email::parse("b@example.com").unwrap();
        let (id, other_id) = (PendingId::generate(), PendingId::generate());
        let reg = CodePurpose::Registration;
        assert_eq!(h.hash(reg, &a, &id, &code), h.hash(reg, &a, &id, &code));
        assert_ne!(h.hash(reg, &a, &id, &code), h.hash(reg, &b, &id, &code));
        assert_ne!(
            h.hash(reg, &a, &id, &code),
            h.hash(reg, &a, &other_id, &code)
        );
        assert_ne!(
            h.hash(reg, &a, &id, &code),
            h.hash(CodePurpose::PasswordReset, &a, &id, &code)
        );
    }

    #[test]
    fn email_tags_are_short_stable_and_keyed() {
        let s = secret();
        let a = Email::parse("a@example.com").unwrap();
        let tag = EmailTagger::new(&s).tag(&a);
        assert_eq!(tag.len(), 12);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(tag, EmailTagger::new(&s).tag(&a));
        assert_ne!(tag, EmailTagger::new(&secret()).tag(&a));
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
        let s = Sealer::for_mail(&secret());
        let sealed = s.seal(b"code 123456");
        assert!(!sealed.windows(6).any(|w| w == b"123456"));
        assert_eq!(s.open(&sealed).unwrap(), b"code 123456");
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(s.open(&bad).is_err());
        assert!(Sealer::for_mail(&secret()).open(&sealed).is_err());
        let same_secret = secret();
        let sealed = Sealer::for_mail(&same_secret).seal(b"x");
        assert!(
            Sealer::for_refresh_tokens(&same_secret)
                .open(&sealed)
                .is_err()
        );
    }
}
