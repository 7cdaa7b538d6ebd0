//! Cryptography of the service: argon2id password hashing on a bounded pool, EdDSA access
//! tokens, keyed hashes of codes, refresh tokens, sealing of queued mail, TOTP, the WebAuthn
//! relying party of passkeys, and the hashes of service credentials.

mod hasher;
mod jwt;
mod passkeys;
mod secrets;
mod service_tokens;
mod totp;

pub use hasher::{HashError, HashSettings, PasswordHasher};
pub use jwt::{AccessClaims, AccessTokens, JWKS_MAX_AGE, Jwk, SigningKey, TokenError};
pub use passkeys::{
    PasskeyError, PasskeySettings, RelyingParty, from_stored as passkey_from_stored,
    stored as passkey_stored,
};
pub use secrets::{CodeHasher, EmailTagger, RefreshToken, Sealer, ServerSecret};
pub use service_tokens::{ServiceTokens, mint as mint_service_token};
pub use totp::{STEP_SECONDS as TOTP_STEP_SECONDS, TotpSecret};
