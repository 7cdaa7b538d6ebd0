//! Use cases. Each flow takes raw request fields, parses them into domain types (collecting
//! every invalid field), and drives the stores; the multi-step rules are single store calls.
//! Flows know nothing of gRPC: they return [`FlowError`], which `grpc::status` maps once.

mod error;
mod login;
mod password;
pub mod registration;
mod sessions;
mod tokens;

use std::{sync::Arc, time::Duration};

pub use error::FlowError;
pub use tokens::Caller;

use crate::crypto::{AccessTokens, CodeHasher, PasswordHasher};
use crate::domain::{SessionId, UnixMs, User};
use crate::mail::{Outbox, Templates};
use crate::store::{CodePolicy, SessionRecord, Stores};

/// Limits and lifetimes the flows enforce.
#[derive(Debug, Clone)]
pub struct Policy {
    pub code: CodePolicy,
    pub code_ttl: Duration,
    pub refresh_ttl_ms: i64,
    pub refresh_grace_ms: i64,
    pub login_max_attempts: u32,
    pub login_window_ms: i64,
}

/// Everything the flows need, built once at startup and shared.
pub struct AuthCore {
    pub stores: Stores,
    pub hasher: PasswordHasher,
    pub tokens: AccessTokens,
    pub codes: CodeHasher,
    pub outbox: Outbox,
    pub templates: Templates,
    pub policy: Policy,
}

pub type SharedCore = Arc<AuthCore>;

/// Who is calling from where, as the transport saw it; recorded on new sessions.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

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
}
