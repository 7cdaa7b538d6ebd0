//! Use cases. Each flow takes raw request fields, parses them into domain types (collecting
//! every invalid field), and drives the stores; the multi-step rules are single store calls.
//! Flows know nothing of gRPC: they return [`FlowError`], which `grpc::status` maps once.

mod account;
mod codes;
pub mod directory;
mod email;
mod error;
mod fields;
mod guard;
mod limits;
mod login;
mod login_code;
mod mfa;
mod operator;
mod passkeys;
mod password;
mod presence;
pub mod registration;
mod security;
mod sessions;
mod tokens;

use std::{sync::Arc, time::Duration};

pub use crate::domain::ClientInfo;
pub use error::FlowError;
pub use mfa::{ChallengeView, ProofInput, SignInOutcome, TotpEnrollment};
pub use passkeys::{PasskeyCeremony, PasskeyView};
pub use security::SecurityPage;
pub use tokens::Caller;

use crate::crypto::{AccessTokens, CodeHasher, EmailTagger, PasswordHasher, Sealer};
use crate::domain::{PendingId, SessionId, UnixMs, User};
use crate::mail::{Outbox, Templates};
use crate::store::{CodePolicy, SessionRecord, Stores};

/// Limits and lifetimes the flows enforce.
#[derive(Debug, Clone)]
pub struct Policy {
    pub code: CodePolicy,
    /// Code requests (Register, resend, reset) one client network may make per hour.
    pub code_requests_per_ip_per_hour: u32,
    /// Codes (sign-up and reset) one client network may check per hour, right or wrong.
    pub code_guesses_per_ip_per_hour: u32,
    /// Register for a taken email answers like a new sign-up (and mails the owner a notice).
    pub signup_enumeration_safe: bool,
    /// SESSION_IDLE_TIMEOUT: a refresh token lives this long, so a session unused this long
    /// ends.
    pub refresh_ttl_ms: i64,
    /// SESSION_MAX_LIFETIME: no session lives longer, however often refreshed.
    pub session_max_lifetime_ms: i64,
    pub refresh_grace_ms: i64,
    /// Sessions one user may hold; a new one ends the least recently used beyond it.
    pub max_sessions_per_user: u32,
    pub login: LoginPolicy,
    /// Least time between two username changes of one user.
    pub username_change_cooldown_ms: i64,
    pub presence: PresencePolicy,
    pub mfa: MfaPolicy,
    pub passkeys: PasskeyPolicy,
    /// What a new password must pass beyond its length.
    pub password: crate::domain::PasswordRules,
}

/// How second factors are limited.
#[derive(Debug, Clone)]
pub struct MfaPolicy {
    /// How long a sign-in waits for its second factor.
    pub challenge_ttl_ms: i64,
    /// Wrong second factors per sign-in challenge; then it is void.
    pub max_guesses_per_challenge: u32,
    /// Wrong TOTP or recovery codes per user per day, all challenges and changes together.
    pub max_guesses_per_day: u32,
}

/// How passkeys are limited.
#[derive(Debug, Clone)]
pub struct PasskeyPolicy {
    /// Passkeys one user may have.
    pub max_per_user: u32,
    /// StartPasskeyLogin calls per client network per hour (each keeps a challenge 5 minutes).
    pub logins_per_ip_per_hour: u32,
}

/// How presence is derived from heartbeats.
#[derive(Debug, Clone)]
pub struct PresencePolicy {
    /// A session is present this long after its last heartbeat.
    pub ttl_ms: i64,
    /// The user document's status/lastSeen (MongoDB) is written on transitions, at most once
    /// per user per this interval.
    pub write_interval_ms: i64,
}

/// How wrong passwords are limited. Only wrong passwords count; none of these limits can be
/// run down by others to refuse the owner's own device (see `flows/login.rs`).
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    /// Wrong passwords per (account, client network) per window; then LOGIN_RATE_LIMITED for
    /// that pair only.
    pub max_attempts: u32,
    pub window_ms: i64,
    /// Wrong passwords per client network per window, whatever the account.
    pub max_failures_per_ip: u32,
    /// Wrong passwords per account per window (all networks) after which every attempt on the
    /// account waits a little, doubling up to `slowdown_max`. It slows, it never refuses.
    pub slowdown_after: u32,
    pub slowdown_max: Duration,
}

/// Everything the flows need, built once at startup and shared.
pub struct AuthCore {
    pub stores: Stores,
    pub hasher: PasswordHasher,
    pub tokens: AccessTokens,
    pub codes: CodeHasher,
    /// Seals the successor refresh token kept for the grace window.
    pub refresh_sealer: Sealer,
    /// Seals TOTP secrets, each to its user.
    pub totp_sealer: Sealer,
    /// The WebAuthn relying party of passkeys.
    pub passkeys: crate::crypto::RelyingParty,
    /// Names emails in logs without writing them.
    pub email_tags: EmailTagger,
    pub outbox: Outbox,
    pub templates: Templates,
    pub policy: Policy,
}

pub type SharedCore = Arc<AuthCore>;

/// A new access + refresh token pair.
#[derive(Debug)]
pub struct TokenPair {
    pub access_token: String,
    pub access_expires_at: UnixMs,
    pub refresh_token: String,
    pub refresh_expires_at: UnixMs,
    pub session_id: SessionId,
}

/// Where a code went and what the caller may do next.
#[derive(Debug, Clone)]
pub struct CodeDelivery {
    /// The pending request, for its holder only.
    pub id: PendingId,
    pub email: String,
    pub code_expires_at: UnixMs,
    pub resend_at: UnixMs,
    pub attempts_remaining: u32,
}

/// A signed-in user with the tokens of the session just started.
#[derive(Debug)]
pub struct SignedIn {
    pub user: User,
    pub tokens: TokenPair,
}

/// A session as listed to its owner.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub record: SessionRecord,
    pub current: bool,
    /// When it ends however often it is refreshed (its start plus SESSION_MAX_LIFETIME).
    pub max_expires_at: UnixMs,
}
