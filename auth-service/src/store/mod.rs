//! Domain-level storage traits. Flows call these and never name a backend; each backend
//! (embedded SQLite today) implements all of them and passes the same conformance suite
//! (`tests/store_conformance.rs`).
//!
//! Every method that changes more than one thing is one atomic operation in the backend:
//! "check the cooldown and issue a code", "compare the code and count the attempt",
//! "rotate the refresh token under the grace rule". A flow never reads, decides and writes back.

pub mod mongo;
pub mod redis;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{
    CodeHash, Email, NewUser, PasswordHash, Profile, SessionId, UnixMs, User, UserId, UserStatus,
    Username,
};

/// A failure of the storage backend itself (as opposed to a domain outcome).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or timed out; the caller may retry later.
    #[error("storage backend unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupt data.
    #[error("storage failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("email is taken")]
    EmailTaken,
    #[error("username is taken")]
    UsernameTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verified users. Email and username (case-insensitively) are unique in the backend itself.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the user if both email and username are free, atomically.
    async fn create_user(&self, new: &NewUser, now: UnixMs) -> Result<User, CreateUserError>;
    async fn find_by_id(&self, id: &UserId) -> StoreResult<Option<User>>;
    async fn find_by_email(&self, email: &Email) -> StoreResult<Option<User>>;
    async fn find_by_username(&self, username: &Username) -> StoreResult<Option<User>>;
    /// Sets status and lastSeen in one update.
    async fn set_presence(&self, id: &UserId, status: UserStatus, now: UnixMs) -> StoreResult<()>;
    /// Replaces the password hash; false when no such user.
    async fn set_password(
        &self,
        id: &UserId,
        hash: &PasswordHash,
        now: UnixMs,
    ) -> StoreResult<bool>;
}

/// What a one-time code is for. Registration and reset codes of one email never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    Registration,
    PasswordReset,
}

impl CodePurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CodePurpose::Registration => "register",
            CodePurpose::PasswordReset => "reset",
        }
    }
}

/// The limits around one-time codes, from config.
#[derive(Debug, Clone)]
pub struct CodePolicy {
    /// How long a code is accepted.
    pub ttl_ms: i64,
    /// Minimum time between two codes sent to one email.
    pub cooldown_ms: i64,
    /// Wrong guesses allowed per pending request, shared across resends.
    pub max_attempts: u32,
    /// Codes sent to one email per rolling day (from the first of them).
    pub max_sends_per_day: u32,
    /// How long a pending request whose budget ran out stays void.
    pub lockout_ms: i64,
    /// How long a pending request is kept after its last code was sent.
    pub record_ttl_ms: i64,
}

/// What a pending request carries until its code is verified.
#[derive(Debug, Clone)]
pub enum PendingPayload {
    /// A registration: the user to create, password already hashed.
    Registration(NewUser),
    /// A password reset; `None` when no account has the email (nothing is mailed then, but
    /// the request is answered and limited exactly the same, so it reveals nothing).
    PasswordReset { user_id: Option<UserId> },
}

/// The stored form of a payload, shared by every backend.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StoredPayload {
    Registration {
        username: String,
        email: String,
        password_hash: String,
        bio: String,
        avatar_url: String,
    },
    PasswordReset {
        user_id: Option<String>,
    },
}

impl PendingPayload {
    pub fn to_json(&self) -> String {
        let stored = match self {
            PendingPayload::Registration(u) => StoredPayload::Registration {
                username: u.username.as_str().to_owned(),
                email: u.email.as_str().to_owned(),
                password_hash: u.password_hash.0.clone(),
                bio: u.profile.bio.clone(),
                avatar_url: u.profile.avatar_url.clone(),
            },
            PendingPayload::PasswordReset { user_id } => StoredPayload::PasswordReset {
                user_id: user_id.as_ref().map(|u| u.0.clone()),
            },
        };
        serde_json::to_string(&stored).unwrap_or_default()
    }

    pub fn from_json(json: &str) -> StoreResult<Self> {
        let bad = |e: String| StoreError::Internal(format!("corrupt pending payload: {e}"));
        let stored: StoredPayload = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        Ok(match stored {
            StoredPayload::Registration {
                username,
                email,
                password_hash,
                bio,
                avatar_url,
            } => PendingPayload::Registration(NewUser {
                username: Username::parse(&username).map_err(bad)?,
                email: Email::parse(&email).map_err(bad)?,
                password_hash: PasswordHash(password_hash),
                profile: Profile { bio, avatar_url },
            }),
            StoredPayload::PasswordReset { user_id } => PendingPayload::PasswordReset {
                user_id: user_id.map(UserId),
            },
        })
    }
}

/// A code was recorded (and may now be mailed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeIssued {
    pub code_expires_at: UnixMs,
    pub resend_at: UnixMs,
    pub attempts_remaining: u32,
}

/// Why no code was issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("a code was sent too recently")]
    Cooldown { retry_at: UnixMs },
    #[error("too many codes sent to this email today")]
    DailyLimit { retry_at: UnixMs },
    #[error("the request is void after too many wrong codes")]
    Locked { retry_at: UnixMs },
    #[error("no pending request for this email")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a code was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no pending request for this email")]
    NotFound,
    #[error("the code has expired")]
    Expired,
    #[error("wrong code")]
    Wrong { attempts_remaining: u32 },
    #[error("too many wrong codes")]
    Exhausted { retry_at: UnixMs },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Pending registrations and password resets, each keyed by purpose and email.
#[async_trait]
pub trait PendingCodeStore: Send + Sync {
    /// Records `code` for `email`, atomically with the cooldown, daily and lockout checks.
    /// With a payload it starts (or restarts) the pending request, keeping the wrong-guess
    /// count of one still live; without, it is a resend and needs a live request.
    async fn issue_code(
        &self,
        purpose: CodePurpose,
        email: &Email,
        payload: Option<&PendingPayload>,
        code: &CodeHash,
        now: UnixMs,
        policy: &CodePolicy,
    ) -> Result<CodeIssued, IssueError>;

    /// Compares `code` in constant time and counts the attempt, atomically. On a match the
    /// request is consumed and its payload returned: two concurrent matches get one payload.
    async fn verify_code(
        &self,
        purpose: CodePurpose,
        email: &Email,
        code: &CodeHash,
        now: UnixMs,
        policy: &CodePolicy,
    ) -> Result<PendingPayload, VerifyError>;
}

/// SHA-256 of a refresh token's secret part: what the store keeps.
pub type RefreshHash = [u8; 32];

/// A session to start, with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub refresh_hash: RefreshHash,
    pub expires_at: UnixMs,
    pub user_agent: String,
    pub client_ip: String,
    pub created_at: UnixMs,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: UnixMs,
    pub last_used_at: UnixMs,
    pub expires_at: UnixMs,
    pub user_agent: String,
    pub client_ip: String,
}

/// The result of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The token was good (unused, or reused inside the grace window); `next` is now valid.
    Rotated(SessionRecord),
    /// Unknown, expired or belonging to an ended session.
    Invalid,
    /// Used before and outside the grace window: the session was ended.
    ReuseDetected { user_id: UserId },
}

/// Sessions (one per device) and the refresh-token family of each.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: &NewSession) -> StoreResult<()>;

    /// Uses `presented` and makes `next` the session's newest token, atomically:
    /// - unused token: marked used, `next` added, session expiry moved to `next_expires_at`;
    /// - token used less than `grace_ms` ago: `next` added as well (a benign race of two
    ///   requests carrying one token must not log the device out);
    /// - token used longer ago: a replay of a stolen token, so the whole session ends.
    ///
    /// A `now` earlier than the recorded use (two callers read their clocks in one order and
    /// arrive in the other) counts as zero time apart: inside a grace window, never inside a
    /// zero one.
    async fn rotate_refresh(
        &self,
        id: &SessionId,
        presented: &RefreshHash,
        next: &RefreshHash,
        next_expires_at: UnixMs,
        now: UnixMs,
        grace_ms: i64,
    ) -> StoreResult<RotateOutcome>;

    /// The session if it exists and has not expired.
    async fn get_session(&self, id: &SessionId, now: UnixMs) -> StoreResult<Option<SessionRecord>>;

    /// Live sessions of a user, newest first.
    async fn list_sessions(&self, user_id: &UserId, now: UnixMs)
    -> StoreResult<Vec<SessionRecord>>;

    /// Ends a session if it belongs to `user_id`; returns whether one ended.
    async fn revoke_session(&self, id: &SessionId, user_id: &UserId) -> StoreResult<bool>;

    /// Ends the session that `presented` is a still-usable refresh token of.
    async fn revoke_by_refresh(
        &self,
        id: &SessionId,
        presented: &RefreshHash,
        now: UnixMs,
        grace_ms: i64,
    ) -> StoreResult<Option<SessionRecord>>;

    /// Ends every session of a user except `keep`; returns how many ended.
    async fn revoke_all(&self, user_id: &UserId, keep: Option<&SessionId>) -> StoreResult<u32>;
}

/// Fixed-window counters for rate limits.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Counts one event for `key`, atomically. `Ok(Ok(count))` while within `limit` per
    /// `window_ms`; `Ok(Err(retry_at))` once over it (the event is not counted then).
    async fn hit(
        &self,
        key: &str,
        limit: u32,
        window_ms: i64,
        now: UnixMs,
    ) -> StoreResult<Result<u32, UnixMs>>;

    /// Forgets the counter of `key`.
    async fn clear(&self, key: &str) -> StoreResult<()>;
}

/// A message taken from the outgoing mail queue; `sealed` is encrypted (it holds codes).
#[derive(Debug, Clone)]
pub struct QueuedMail {
    pub id: String,
    pub sealed: Vec<u8>,
    pub attempts: u32,
}

/// The durable outgoing mail queue: at-least-once delivery, nothing silently dropped.
#[async_trait]
pub trait MailQueue: Send + Sync {
    async fn enqueue(&self, sealed: &[u8], now: UnixMs) -> StoreResult<String>;
    /// Leases the oldest due message for `lease_ms` (another worker cannot take it meanwhile;
    /// a worker that dies lets the lease run out and the message is tried again).
    async fn claim_due(&self, now: UnixMs, lease_ms: i64) -> StoreResult<Option<QueuedMail>>;
    async fn complete(&self, id: &str) -> StoreResult<()>;
    async fn retry_at(&self, id: &str, at: UnixMs, error: &str) -> StoreResult<()>;
    /// Moves a message aside for good after too many tries; it stays for an operator.
    async fn dead_letter(&self, id: &str, error: &str) -> StoreResult<()>;
    /// When the next message is due, if any is waiting.
    async fn next_due(&self) -> StoreResult<Option<UnixMs>>;
    async fn dead_letter_count(&self) -> StoreResult<u64>;
}

/// Whether the backend answers, for readiness.
#[async_trait]
pub trait Health: Send + Sync {
    async fn ping(&self) -> StoreResult<()>;
}

/// The set of stores a running service uses, chosen once at startup.
#[derive(Clone)]
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    pub pending: Arc<dyn PendingCodeStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub limits: Arc<dyn RateLimitStore>,
    pub mail: Arc<dyn MailQueue>,
    pub health: Vec<Arc<dyn Health>>,
}

impl Stores {
    /// Every store from one backend that implements them all.
    pub fn single<B>(backend: Arc<B>) -> Self
    where
        B: UserStore
            + PendingCodeStore
            + SessionStore
            + RateLimitStore
            + MailQueue
            + Health
            + 'static,
    {
        Self {
            users: backend.clone(),
            pending: backend.clone(),
            sessions: backend.clone(),
            limits: backend.clone(),
            mail: backend.clone(),
            health: vec![backend],
        }
    }
}
