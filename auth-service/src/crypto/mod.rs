//! Cryptography of the service: argon2id password hashing on a bounded pool, EdDSA access
//! tokens, keyed hashes of codes, refresh tokens, and sealing of queued mail.

mod hasher;
mod jwt;
mod secrets;

pub use hasher::{HashError, HashSettings, PasswordHasher};
pub use jwt::{AccessClaims, AccessTokens, Jwk, SigningKey, TokenError};
pub use secrets::{CodeHasher, EmailTagger, RefreshToken, Sealer, ServerSecret};
