//! Access tokens: EdDSA (Ed25519) JWTs signed with the active [`SigningKey`], and the JWKs
//! that publish the public halves of it and of the keys kept beside it during a rotation (they
//! verify, they never sign), so other services verify tokens offline. Verification accepts only
//! EdDSA with one of our `kid`s, issuer and audience, without leeway (README, "Rules it
//! enforces").
//!
//! The keys are the configured ones (fixed for the process's life) and, with the automatic
//! rotation, the ring's (replaced whenever the ring changes, see `keys::rotation`): each ring
//! key signs from its own time on, so every instance switches at the same moment.

use std::sync::{
    Arc, PoisonError, RwLock,
    atomic::{AtomicU64, Ordering},
};
use std::time::Duration;

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{SessionId, UnixMs, UserId};

/// The Ed25519 key that signs access tokens, with its key id.
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Public key, base64url: the JWK `x`.
    x: String,
}

impl SigningKey {
    /// Reads a PKCS#8 PEM Ed25519 private key (`openssl genpkey -algorithm ed25519`).
    /// The key id is the RFC 7638 thumbprint unless one is given.
    pub fn from_pem(pem_text: &str, kid: Option<String>) -> Result<Self, String> {
        let parsed = pem::parse(pem_text).map_err(|e| format!("not a PEM key: {e}"))?;
        if parsed.tag() != "PRIVATE KEY" {
            return Err(format!(
                "expected a PKCS#8 \"PRIVATE KEY\" PEM, found {:?}",
                parsed.tag()
            ));
        }
        Self::from_pkcs8(parsed.contents(), kid)
    }

    fn from_pkcs8(der: &[u8], kid: Option<String>) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_pkcs8(der)
            .map_err(|e| format!("not an Ed25519 PKCS#8 private key: {e}"))?;
        let public = pair.public_key().as_ref().to_vec();
        let x = URL_SAFE_NO_PAD.encode(&public);
        // RFC 7638: SHA-256 over the required members in lexicographic order, no spaces.
        let thumbprint = Sha256::digest(format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
        Ok(Self {
            kid: kid.unwrap_or_else(|| URL_SAFE_NO_PAD.encode(thumbprint)),
            encoding: EncodingKey::from_ed_der(der),
            decoding: DecodingKey::from_ed_der(&public),
            x,
        })
    }

    /// A fresh key as PKCS#8 PEM, for development when no key is configured.
    pub fn generate_pem() -> Result<String, String> {
        Ok(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            Self::generate_pkcs8()?.to_vec(),
        )))
    }

    /// A fresh key as PKCS#8 DER (wiped when dropped).
    pub fn generate_pkcs8() -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| "cannot generate an Ed25519 key".to_string())?;
        Ok(zeroize::Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// Reads a PKCS#8 DER Ed25519 private key; the key id is its RFC 7638 thumbprint unless
    /// one is given.
    pub fn from_der(der: &[u8], kid: Option<String>) -> Result<Self, String> {
        Self::from_pkcs8(der, kid)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// A JWK of the public signing key (RFC 8037 OKP).
#[derive(Debug, Clone, Serialize)]
pub struct Jwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub x: String,
    pub kid: String,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("access token expired")]
    Expired,
    #[error("access token invalid")]
    Invalid,
}

/// A key with the time it signs from (`None`: it only verifies).
#[derive(Clone)]
struct Scheduled {
    key: Arc<SigningKey>,
    signs_from: Option<UnixMs>,
}

/// How long a copy of the JWKS may be kept without the automatic rotation (the gateway's
/// Cache-Control): below the wait between the steps of a rotation by hand.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);

/// Most verified tokens remembered (each about 300 bytes with its claims).
const VERIFIED_CAPACITY: u64 = 16_384;

/// Issues and verifies EdDSA access tokens. Verification accepts EdDSA only, with our key id,
/// issuer and audience: `none`, HMAC and foreign keys are refused before any claim is read.
///
/// A token that passed is remembered by its SHA-256 (bounded, and never past the token's
/// life), so its signature is checked once: later calls check only its expiry, and that the
/// keys have not changed since (a change forgets every token checked before it). Whether its
/// session still lives is the caller's question, asked on every call.
pub struct AccessTokens {
    /// The configured keys: the signing one (from the start of time) and those kept beside
    /// it, which are published and accepted but never sign.
    fixed: Vec<Scheduled>,
    /// `fixed` and the rotation's keys, swapped whole when the ring changes.
    keys: RwLock<Arc<Vec<Scheduled>>>,
    issuer: String,
    audience: String,
    ttl_ms: i64,
    jwks_max_age: Duration,
    validation: Validation,
    verified: moka::sync::Cache<[u8; 32], (u64, Arc<AccessClaims>)>,
    /// Bumped whenever the keys change, so a remembered token is checked again.
    generation: AtomicU64,
}

impl AccessTokens {
    /// Tokens signed with `key`, the configured one.
    pub fn new(key: SigningKey, issuer: String, audience: String, ttl_ms: i64) -> Self {
        Self::with_fixed(
            vec![Scheduled {
                key: Arc::new(key),
                signs_from: Some(UnixMs::MIN),
            }],
            issuer,
            audience,
            ttl_ms,
        )
    }

    /// Tokens signed only by the rotation's keys, once [`Self::install_rotating`] gave some.
    pub fn rotating_only(issuer: String, audience: String, ttl_ms: i64) -> Self {
        Self::with_fixed(Vec::new(), issuer, audience, ttl_ms)
    }

    fn with_fixed(fixed: Vec<Scheduled>, issuer: String, audience: String, ttl_ms: i64) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Our own clock signs and checks: no leeway, an expired token is expired, and a token
        // that says it is not valid yet (`nbf`) is refused until then.
        validation.leeway = 0;
        validation.validate_nbf = true;
        Self {
            keys: RwLock::new(Arc::new(fixed.clone())),
            fixed,
            issuer,
            audience,
            ttl_ms,
            jwks_max_age: JWKS_MAX_AGE,
            validation,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(Duration::from_millis(ttl_ms.max(1) as u64))
                .build(),
            generation: AtomicU64::new(0),
        }
    }

    /// Also publishes and accepts `keys` (never signing with them); one with a configured
    /// key's id is left out.
    pub fn with_verifying_keys(mut self, keys: Vec<SigningKey>) -> Self {
        for key in keys {
            if !self.fixed.iter().any(|f| f.key.kid == key.kid) {
                self.fixed.push(Scheduled {
                    key: Arc::new(key),
                    signs_from: None,
                });
            }
        }
        *self.keys.get_mut().unwrap_or_else(PoisonError::into_inner) = Arc::new(self.fixed.clone());
        self.generation.fetch_add(1, Ordering::AcqRel);
        self
    }

    /// How long a copy of the JWKS may be kept (the gateway's Cache-Control).
    pub fn with_jwks_max_age(mut self, max_age: Duration) -> Self {
        self.jwks_max_age = max_age;
        self
    }

    pub fn jwks_max_age(&self) -> Duration {
        self.jwks_max_age
    }

    /// Replaces the rotation's keys with `rotating` (each with the time it signs from); the
    /// configured keys stay. A rotation key with a configured key's id is left out.
    pub fn install_rotating(&self, rotating: Vec<(SigningKey, UnixMs)>) {
        let mut keys = self.fixed.clone();
        for (key, signs_from) in rotating {
            if keys.iter().any(|k| k.key.kid == key.kid) {
                // Only the same key has the same thumbprint; a configured key named like a
                // ring key is the configuration's mistake.
                tracing::warn!(kid = %key.kid, "a ring key has a configured key's id; the configured key is used");
                continue;
            }
            keys.push(Scheduled {
                key: Arc::new(key),
                signs_from: Some(signs_from),
            });
        }
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn current(&self) -> Arc<Vec<Scheduled>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The key that signs at `now`: of those whose time has come, the latest to start; when
    /// none has come yet (an instance without a configured key that joined while the ring's
    /// only key waits, or with a clock behind the others'), the first to start, which is
    /// published already.
    fn signer(keys: &[Scheduled], now: UnixMs) -> Option<&Arc<SigningKey>> {
        let scheduled = || {
            keys.iter()
                .filter_map(|k| k.signs_from.map(|at| (at, &k.key)))
        };
        scheduled()
            .filter(|(at, _)| *at <= now)
            .max_by_key(|(at, _)| *at)
            .or_else(|| scheduled().min_by_key(|(at, _)| *at))
            .map(|(_, key)| key)
    }

    /// The id of the key that signs at `now`.
    pub fn signing_kid(&self, now: UnixMs) -> Option<String> {
        Self::signer(&self.current(), now).map(|k| k.kid.clone())
    }

    pub fn ttl_ms(&self) -> i64 {
        self.ttl_ms
    }

    /// Signs a token for `user` in session `sid`; returns it with its expiry.
    pub fn issue(
        &self,
        user: &UserId,
        sid: &SessionId,
        now: UnixMs,
    ) -> Result<(String, UnixMs), String> {
        let iat = now / 1000;
        let exp_ms = now + self.ttl_ms;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.0.clone(),
            sid: sid.0.clone(),
            iat,
            exp: exp_ms / 1000,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let keys = self.current();
        let key = Self::signer(&keys, now).ok_or("no signing key yet")?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| format!("signing failed: {e}"))?;
        Ok((token, (exp_ms / 1000) * 1000))
    }

    /// Checks signature, algorithm, key id, expiry, issuer and audience (only the expiry for
    /// a token that passed before with the same keys).
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        if token.len() > 4096 {
            return Err(TokenError::Invalid);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Read before the keys: a change of keys during the check makes the entry stale.
        let generation = self.generation.load(Ordering::Acquire);
        if let Some((checked_with, claims)) = self.verified.get(&digest)
            && checked_with == generation
        {
            // As jsonwebtoken without leeway: valid through the second `exp`.
            return if claims.exp < crate::domain::now_ms() / 1000 {
                Err(TokenError::Expired)
            } else {
                Ok((*claims).clone())
            };
        }
        let claims = self.verify_signed(token)?;
        self.verified
            .insert(digest, (generation, Arc::new(claims.clone())));
        Ok(claims)
    }

    fn verify_signed(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let keys = self.current();
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| keys.iter().find(|k| k.key.kid == kid))
            .map(|k| &k.key)
            .ok_or(TokenError::Invalid)?;
        jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }

    /// The public keys, for GetJwks: the one signing now first, then the others, the next to
    /// sign before the older ones.
    pub fn jwks(&self) -> Vec<Jwk> {
        let now = crate::domain::now_ms();
        let keys = self.current();
        let signer = Self::signer(&keys, now).map(|k| k.kid.as_str());
        let mut ordered: Vec<&Scheduled> = keys.iter().collect();
        ordered.sort_by_key(|k| {
            (
                Some(k.key.kid.as_str()) != signer,
                std::cmp::Reverse(k.signs_from),
            )
        });
        ordered
            .into_iter()
            .map(|Scheduled { key, .. }| Jwk {
                kty: "OKP",
                crv: "Ed25519",
                x: key.x.clone(),
                kid: key.kid.clone(),
                alg: "EdDSA",
                use_: "sig",
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(ttl_ms: i64) -> AccessTokens {
        let key = SigningKey::from_pem(&SigningKey::generate_pem().unwrap(), None).unwrap();
        AccessTokens::new(key, "iss".into(), "aud".into(), ttl_ms)
    }

    #[test]
    fn round_trip() {
        let t = tokens(60_000);
        let (token, _) = t
            .issue(
                &UserId("u1".into()),
                &SessionId("s1".into()),
                crate::domain::now_ms(),
            )
            .unwrap();
        let claims = t.verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("u1", "s1"));
    }

    #[test]
    fn refuses_other_keys_and_expired() {
        let (a, b) = (tokens(60_000), tokens(60_000));
        let now = crate::domain::now_ms();
        let (token, _) = a
            .issue(&UserId("u".into()), &SessionId("s".into()), now)
            .unwrap();
        assert_eq!(b.verify(&token), Err(TokenError::Invalid));
        let (old, _) = a
            .issue(&UserId("u".into()), &SessionId("s".into()), now - 120_000)
            .unwrap();
        assert_eq!(a.verify(&old), Err(TokenError::Expired));
    }

    #[test]
    fn keys_kept_beside_the_signing_key_verify_and_are_published_but_never_sign() {
        let key = |kid: &str| {
            SigningKey::from_pem(&SigningKey::generate_pem().unwrap(), Some(kid.into())).unwrap()
        };
        let (user, sid, now) = (
            UserId("u".into()),
            SessionId("s".into()),
            crate::domain::now_ms(),
        );
        let pem_old = SigningKey::generate_pem().unwrap();
        let old = AccessTokens::new(
            SigningKey::from_pem(&pem_old, Some("old".into())).unwrap(),
            "iss".into(),
            "aud".into(),
            60_000,
        );
        let (signed_by_old, _) = old.issue(&user, &sid, now).unwrap();
        // The rotation's middle: "new" signs, "old" still verifies.
        let rotating = AccessTokens::new(key("new"), "iss".into(), "aud".into(), 60_000)
            .with_verifying_keys(vec![
                SigningKey::from_pem(&pem_old, Some("old".into())).unwrap(),
            ]);
        let kids: Vec<String> = rotating.jwks().into_iter().map(|k| k.kid).collect();
        assert_eq!(kids, ["new", "old"], "the signing key first");
        rotating.verify(&signed_by_old).unwrap();
        let (fresh, _) = rotating.issue(&user, &sid, now).unwrap();
        let header = jsonwebtoken::decode_header(&fresh).unwrap();
        assert_eq!(header.kid.as_deref(), Some("new"));
        // Once "old" is gone, its tokens are refused.
        let after = AccessTokens::new(key("new2"), "iss".into(), "aud".into(), 60_000);
        assert_eq!(after.verify(&signed_by_old), Err(TokenError::Invalid));
        // A token naming a published kid but signed by another key is refused.
        let impostor = AccessTokens::new(key("old"), "iss".into(), "aud".into(), 60_000);
        let (forged, _) = impostor.issue(&user, &sid, now).unwrap();
        assert_eq!(rotating.verify(&forged), Err(TokenError::Invalid));
    }

    #[test]
    fn ring_keys_sign_each_from_its_time_and_the_configured_key_until_the_first() {
        let key = |kid: &str| {
            SigningKey::from_pem(&SigningKey::generate_pem().unwrap(), Some(kid.into())).unwrap()
        };
        let (user, sid) = (UserId("u".into()), SessionId("s".into()));
        let kid_at = |tokens: &AccessTokens, now| {
            let (token, _) = tokens.issue(&user, &sid, now).unwrap();
            jsonwebtoken::decode_header(&token).unwrap().kid.unwrap()
        };
        let configured = AccessTokens::new(key("conf"), "iss".into(), "aud".into(), 60_000);
        configured.install_rotating(vec![(key("r1"), 1_000), (key("r2"), 2_000)]);
        assert_eq!(kid_at(&configured, 999), "conf");
        assert_eq!(kid_at(&configured, 1_000), "r1");
        assert_eq!(kid_at(&configured, 5_000), "r2");
        // A configured key's id is never taken over by a ring key.
        configured.install_rotating(vec![(key("conf"), 1_000)]);
        assert_eq!(kid_at(&configured, 5_000), "conf");
        // Without a configured key: nothing signs before a ring is installed, and while every
        // ring key still waits, the first to start signs (it is published already).
        let ring_only = AccessTokens::rotating_only("iss".into(), "aud".into(), 60_000);
        assert!(ring_only.issue(&user, &sid, 0).is_err());
        ring_only.install_rotating(vec![(key("late"), 9_000), (key("soon"), 5_000)]);
        assert_eq!(kid_at(&ring_only, 1_000), "soon");
        assert_eq!(ring_only.signing_kid(9_000).as_deref(), Some("late"));
    }

    #[test]
    fn a_verified_token_is_remembered_until_it_expires_or_the_keys_change() {
        let key = |kid: &str| {
            SigningKey::from_pem(&SigningKey::generate_pem().unwrap(), Some(kid.into())).unwrap()
        };
        let (user, sid) = (UserId("u".into()), SessionId("s".into()));
        let tokens = AccessTokens::new(key("conf"), "iss".into(), "aud".into(), 3_000);
        tokens.install_rotating(vec![(key("r1"), 0)]);
        let now = crate::domain::now_ms();
        let (token, _) = tokens.issue(&user, &sid, now).unwrap();
        let first = tokens.verify(&token).unwrap();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        assert!(tokens.verified.contains_key(&digest));
        // Remembered: with the keys taken away behind the cache's back, it still passes.
        let installed = tokens.current();
        *tokens.keys.write().unwrap() = Arc::new(Vec::new());
        assert_eq!(
            tokens.verify(&token).unwrap(),
            first,
            "answered from memory"
        );
        *tokens.keys.write().unwrap() = installed;
        // A token with one claim changed is not the remembered one.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        claims["sub"] = "someone else".into();
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert_eq!(tokens.verify(&parts.join(".")), Err(TokenError::Invalid));
        // Its key removed (a change of keys): refused at once, although it was remembered.
        tokens.install_rotating(Vec::new());
        assert_eq!(tokens.verify(&token), Err(TokenError::Invalid));
        // Remembered, then expired while the entry still lives (it was checked late in its
        // life): refused as expired by the check on a hit.
        let (late, expires_at) = tokens
            .issue(&user, &sid, crate::domain::now_ms() - 2_000)
            .unwrap();
        tokens.verify(&late).unwrap();
        let digest: [u8; 32] = Sha256::digest(late.as_bytes()).into();
        while crate::domain::now_ms() < expires_at + 1_050 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(tokens.verified.contains_key(&digest), "still in memory");
        assert_eq!(tokens.verify(&late), Err(TokenError::Expired));
    }
}
