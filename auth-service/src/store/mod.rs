//! Domain-level storage traits. Flows call these and never name a backend; each backend
//! (SQLite; Redis for state and MongoDB for users) implements them and passes the same
//! conformance suite (`tests/conformance`).
//!
//! Every method that changes more than one thing is one atomic operation in the backend:
//! "check the budgets and issue a code", "compare the code and count the guess", "rotate the
//! refresh token under the grace rule", "start a session and evict beyond the cap". A flow
//! never reads, decides and writes back.

pub mod events_after;
pub mod mongo;
pub mod redis;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{
    CodeHash, Disabled, Email, Event, EventKind, FactorSummary, NewUser, PasswordHash, PendingId,
    Profile, ProfileChange, RevokeReason, SecurityEvent, SecurityKind, SessionId, SignIn, UnixMs,
    User, UserId, UserStatus, Username,
};
pub use crate::domain::{CodePurpose, RefreshHash};

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
    /// A user with this id exists: a racing verification of the same registration created it.
    #[error("a user with this id exists")]
    IdTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an email was not changed.
#[derive(Debug, thiserror::Error)]
pub enum SetEmailError {
    #[error("no such user")]
    NotFound,
    #[error("email is taken")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a profile was not changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateProfileError {
    #[error("no such user")]
    NotFound,
    #[error("username is taken")]
    UsernameTaken,
    #[error("the username changed too recently")]
    UsernameCooldown { retry_at: UnixMs },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Most users one directory call names (BatchGetUsers, LookupUsers, GetPresence).
pub const MAX_BATCH: usize = 500;

/// Verified users. Email and username (case-insensitively) are unique in the backend itself.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the user (with the id in `new`) if both email and username are free, atomically.
    async fn create_user(&self, new: &NewUser, now: UnixMs) -> Result<User, CreateUserError>;
    async fn find_by_id(&self, id: &UserId) -> StoreResult<Option<User>>;
    async fn find_by_email(&self, email: &Email) -> StoreResult<Option<User>>;
    async fn find_by_username(&self, username: &Username) -> StoreResult<Option<User>>;
    /// The users among `ids` (at most [`MAX_BATCH`]), in one round trip, in any order.
    async fn find_by_ids(&self, ids: &[UserId]) -> StoreResult<Vec<User>>;
    /// The users among `usernames` (compared by [`Username::key`], at most [`MAX_BATCH`]),
    /// in one round trip, in any order.
    async fn find_by_usernames(&self, usernames: &[Username]) -> StoreResult<Vec<User>>;
    /// Applies `change` in one atomic step: a new username must be free, and unless it is the
    /// current one exactly, the last username change must be at least `username_cooldown_ms`
    /// old (the change then stamps `username_changed_at`). Returns the user as changed.
    async fn update_profile(
        &self,
        id: &UserId,
        change: &ProfileChange,
        now: UnixMs,
        username_cooldown_ms: i64,
    ) -> Result<User, UpdateProfileError>;
    /// Sets status and lastSeen in one update.
    async fn set_presence(&self, id: &UserId, status: UserStatus, now: UnixMs) -> StoreResult<()>;
    /// Replaces the password hash; false when no such user.
    async fn set_password(
        &self,
        id: &UserId,
        hash: &PasswordHash,
        now: UnixMs,
    ) -> StoreResult<bool>;
    /// Sets an operator's suspension (`Some`, user.disabled) or lifts it (`None`,
    /// user.enabled); false when no such user. Ending the sessions is the caller's next step.
    async fn set_disabled(
        &self,
        id: &UserId,
        disabled: Option<&Disabled>,
        now: UnixMs,
    ) -> StoreResult<bool>;
    /// Sets the user's email, if no other user has it (the unique index decides, so of an
    /// email change and a sign-up racing for one address one wins), with user.updated
    /// (`email`).
    async fn set_email(&self, id: &UserId, email: &Email, now: UnixMs)
    -> Result<(), SetEmailError>;
    /// Deletes the user with everything kept beside it (second factors, passkeys, presence
    /// record) in one atomic step, with user.deleted; false when no such user. The email and
    /// username are free from then on. Sessions are the [`SessionStore`]'s (the caller ends
    /// them before and after).
    async fn delete_user(&self, id: &UserId, now: UnixMs) -> StoreResult<bool>;
}

/// The limits around one-time codes, from config.
///
/// Two budgets apply: one per pending request (`max_attempts` wrong guesses, a resend
/// `cooldown_ms`), which only the request's holder can spend, and one per email for a day
/// (`max_sends_per_day` codes, `max_guesses_per_day` wrong guesses over every request of
/// the email), which bounds how often anyone can mail an address or guess at its codes.
#[derive(Debug, Clone)]
pub struct CodePolicy {
    /// How long a code is accepted.
    pub ttl_ms: i64,
    /// Minimum time between two codes of one pending request.
    pub cooldown_ms: i64,
    /// Wrong guesses allowed per pending request, shared across its resends.
    pub max_attempts: u32,
    /// Codes sent to one email per day, all requests (the day starts with the first code).
    pub max_sends_per_day: u32,
    /// Wrong guesses per email per day, all requests (the day starts with the first code or
    /// guess after the previous day ended).
    pub max_guesses_per_day: u32,
    /// How long a pending request is kept after its last code was sent.
    pub pending_ttl_ms: i64,
}

impl CodePolicy {
    /// How long a code is accepted.
    pub fn ttl(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.ttl_ms.max(0) as u64)
    }
}

/// One day in milliseconds: the window of the per-email budgets.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// What a pending request carries until its code is verified.
#[derive(Debug, Clone)]
pub enum PendingPayload {
    /// A registration: the user to create, password already hashed.
    Registration(NewUser),
    /// A password reset of an account.
    PasswordReset { user_id: UserId },
    /// A sign-in by emailed code to an account.
    Login { user_id: UserId },
    /// A change of an account's email to the request's address.
    EmailChange { user_id: UserId },
    /// A request that must look real but can never succeed: a reset or a sign-in by code for an
    /// email no account has, or (with SIGNUP_ENUMERATION_SAFE) a sign-up for a taken email. Its code was mailed
    /// to nobody; it is answered and limited exactly like a real request, so it reveals nothing.
    Decoy,
}

/// The stored form of a payload, shared by every backend.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StoredPayload {
    Registration {
        user_id: String,
        username: String,
        email: String,
        password_hash: String,
        bio: String,
        avatar_url: String,
    },
    PasswordReset {
        user_id: String,
    },
    Login {
        user_id: String,
    },
    EmailChange {
        user_id: String,
    },
    Decoy,
}

impl PendingPayload {
    /// The stored form; a payload that cannot be written is an error, never an empty record.
    pub fn to_json(&self) -> StoreResult<String> {
        let stored = match self {
            PendingPayload::Registration(u) => StoredPayload::Registration {
                user_id: u.id.0.clone(),
                username: u.username.as_str().to_owned(),
                email: u.email.as_str().to_owned(),
                password_hash: u.password_hash.0.clone(),
                bio: u.profile.bio.clone(),
                avatar_url: u.profile.avatar_url.clone(),
            },
            PendingPayload::PasswordReset { user_id } => StoredPayload::PasswordReset {
                user_id: user_id.0.clone(),
            },
            PendingPayload::Login { user_id } => StoredPayload::Login {
                user_id: user_id.0.clone(),
            },
            PendingPayload::EmailChange { user_id } => StoredPayload::EmailChange {
                user_id: user_id.0.clone(),
            },
            PendingPayload::Decoy => StoredPayload::Decoy,
        };
        serde_json::to_string(&stored)
            .map_err(|e| StoreError::Internal(format!("cannot write a pending payload: {e}")))
    }

    pub fn from_json(json: &str) -> StoreResult<Self> {
        let bad = |e: String| StoreError::Internal(format!("corrupt pending payload: {e}"));
        let stored: StoredPayload = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        Ok(match stored {
            StoredPayload::Registration {
                user_id,
                username,
                email,
                password_hash,
                bio,
                avatar_url,
            } => PendingPayload::Registration(NewUser {
                id: UserId(user_id),
                username: Username::parse(&username).map_err(bad)?,
                email: Email::parse(&email).map_err(bad)?,
                password_hash: PasswordHash(password_hash),
                profile: Profile { bio, avatar_url },
            }),
            StoredPayload::PasswordReset { user_id } => PendingPayload::PasswordReset {
                user_id: UserId(user_id),
            },
            StoredPayload::Login { user_id } => PendingPayload::Login {
                user_id: UserId(user_id),
            },
            StoredPayload::EmailChange { user_id } => PendingPayload::EmailChange {
                user_id: UserId(user_id),
            },
            StoredPayload::Decoy => PendingPayload::Decoy,
        })
    }
}

/// A code was recorded (and may now be mailed).
#[derive(Debug, Clone)]
pub struct CodeIssued {
    pub code_expires_at: UnixMs,
    pub resend_at: UnixMs,
    pub attempts_remaining: u32,
    /// What the request carries (for a resend: what it was started with).
    pub payload: PendingPayload,
}

/// Why no code was issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("a code of this request was sent too recently")]
    Cooldown { retry_at: UnixMs },
    #[error("too many codes sent to this email today")]
    DailyLimit { retry_at: UnixMs },
    #[error("the request is void after too many wrong codes")]
    Exhausted,
    #[error("no such pending request")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a code was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no such pending request")]
    NotFound,
    #[error("the code has expired")]
    Expired,
    #[error("wrong code")]
    Wrong { attempts_remaining: u32 },
    #[error("too many wrong codes for this request")]
    Exhausted,
    #[error("too many wrong codes for this email today")]
    DailyGuessLimit { retry_at: UnixMs },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Pending registrations and password resets. Each request has its own [`PendingId`] (held
/// only by whoever started it) and belongs to a purpose and an email, whose daily budgets it
/// shares with the email's other requests. Bounded: a request costs one of the email's daily
/// sends and lives `pending_ttl_ms` after its last code.
#[async_trait]
pub trait PendingCodeStore: Send + Sync {
    /// Records `code` for request `id`, atomically with the budget checks. With a payload it
    /// starts the request (a new id; the email's daily send budget applies); without, it is a
    /// resend and needs the live request (its cooldown, its wrong-guess count kept, and the
    /// email's daily send budget).
    #[allow(clippy::too_many_arguments)]
    async fn issue_code(
        &self,
        purpose: CodePurpose,
        email: &Email,
        id: &PendingId,
        payload: Option<&PendingPayload>,
        code: &CodeHash,
        now: UnixMs,
        policy: &CodePolicy,
    ) -> Result<CodeIssued, IssueError>;

    /// Compares `code` with request `id`'s in constant time and counts a wrong guess against
    /// the request and the email's daily budget, atomically; nothing is evaluated once either
    /// budget is spent. On a match the request is marked verified and its payload returned; it
    /// stays (and the same code keeps matching) until [`PendingCodeStore::finish_pending`], so a
    /// failure between the two loses nothing.
    #[allow(clippy::too_many_arguments)]
    async fn verify_code(
        &self,
        purpose: CodePurpose,
        email: &Email,
        id: &PendingId,
        code: &CodeHash,
        now: UnixMs,
        policy: &CodePolicy,
    ) -> Result<PendingPayload, VerifyError>;

    /// The purpose is achieved for `email`: every pending request of it ends (the others
    /// become void). The email's daily budgets stay.
    async fn finish_pending(&self, purpose: CodePurpose, email: &Email) -> StoreResult<()>;
}

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
    /// How it signed in.
    pub sign_in: SignIn,
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
    /// How it signed in; `None` for a session started before this was kept.
    pub sign_in: Option<SignIn>,
}

/// The token a rotation installs: its hash, the token itself sealed (ChaCha20-Poly1305 under
/// the server secret) so that a replay inside the grace window can be answered with it, and
/// the session's time limits.
#[derive(Debug, Clone)]
pub struct NextRefresh {
    pub hash: RefreshHash,
    pub sealed: Vec<u8>,
    /// The session's new idle deadline (now plus the idle timeout).
    pub expires_at: UnixMs,
    /// The session's maximum lifetime: it never lives past its start plus this, and a token
    /// presented after that finds it [`RotateOutcome::Expired`].
    pub max_lifetime_ms: i64,
}

/// How long a session that timed out is still recognised (so that its refresh token is
/// answered with [`RotateOutcome::Expired`] rather than "unknown") before the store forgets it.
/// It counts as ended the whole time: nothing but that answer reads it.
pub const EXPIRED_SESSION_RECALL_MS: i64 = DAY_MS;

/// Whether a session started at `created_at` with idle deadline `expires_at` has timed out at
/// `now`: its idle deadline passed, or its maximum lifetime. Every backend decides by this
/// rule (the Redis script with its Lua twin).
pub fn session_timed_out(
    created_at: UnixMs,
    expires_at: UnixMs,
    now: UnixMs,
    max_lifetime_ms: i64,
) -> bool {
    expires_at <= now || created_at.saturating_add(max_lifetime_ms) <= now
}

/// The expiry a rotation gives a session: the later of its current one and the new idle
/// deadline, never past its start plus the maximum lifetime.
pub fn rotated_expiry(created_at: UnixMs, current: UnixMs, next: &NextRefresh) -> UnixMs {
    current
        .max(next.expires_at)
        .min(created_at.saturating_add(next.max_lifetime_ms))
}

/// The result of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The current token: `next` is now the session's only live token.
    Rotated(SessionRecord),
    /// The previous token, inside the grace window: the successor its first use installed,
    /// still sealed (a benign race of two requests carrying one token must not fork the
    /// session or log the device out).
    Replayed {
        session: SessionRecord,
        sealed: Vec<u8>,
    },
    /// Unknown, or belonging to an ended session.
    Invalid,
    /// The current or previous token of a session past its idle deadline or maximum lifetime
    /// ([`session_timed_out`]): the session ended now (session.revoked, reason expired), if
    /// nothing had ended it yet.
    Expired { user_id: UserId },
    /// The previous token outside the grace window: a replay of a stolen token, so the
    /// session was ended.
    ReuseDetected { user_id: UserId },
}

/// The grace rule: whether a previous refresh token used at `used_at` is still inside the grace
/// window at `now`. A `now` earlier than `used_at` (two callers read their clocks in one order
/// and arrive in the other) counts as zero time apart: inside a grace window, never inside a
/// zero one. Every backend decides with this rule (the Redis scripts with its Lua twin,
/// `previous_in_grace`).
pub fn within_grace(used_at: UnixMs, now: UnixMs, grace_ms: i64) -> bool {
    (now - used_at).max(0) < grace_ms
}

/// Sessions (one per device) with constant state each: the current refresh token's hash, the
/// previous one's (to recognise a replay), and for `grace_ms` after a rotation the sealed
/// successor. Nothing else of a token's history is kept.
///
/// Every start and end of a session writes its event (session.created, session.revoked with
/// the reason: evicted, reuse_detected, logout by refresh token, or the `reason` given) to the
/// backend's [`EventLog`] in the same atomic step.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Starts a session. A user holds at most `max_per_user`: beyond it the least recently
    /// used sessions end, in the same step; their ids are returned.
    async fn create_session(
        &self,
        session: &NewSession,
        max_per_user: u32,
    ) -> StoreResult<Vec<SessionId>>;

    /// Presents a refresh token, atomically:
    /// - a token (current or previous) of a session that [`session_timed_out`]: it ends,
    ///   [`RotateOutcome::Expired`];
    /// - the current token: it becomes the previous one (stamped `now`), `next` the current
    ///   one, and the session's expiry moves to [`rotated_expiry`];
    /// - the previous token [`within_grace`]: [`RotateOutcome::Replayed`] with the successor,
    ///   and nothing changes;
    /// - the previous token later: a replay of a stolen token, so the whole session ends;
    /// - anything else: invalid.
    async fn rotate_refresh(
        &self,
        id: &SessionId,
        presented: &RefreshHash,
        next: &NextRefresh,
        now: UnixMs,
        grace_ms: i64,
    ) -> StoreResult<RotateOutcome>;

    /// The session if it exists and has not expired.
    async fn get_session(&self, id: &SessionId, now: UnixMs) -> StoreResult<Option<SessionRecord>>;

    /// Live sessions of a user, newest first.
    async fn list_sessions(&self, user_id: &UserId, now: UnixMs)
    -> StoreResult<Vec<SessionRecord>>;

    /// Ends a session if it belongs to `user_id`; returns whether one ended.
    async fn revoke_session(
        &self,
        id: &SessionId,
        user_id: &UserId,
        reason: RevokeReason,
        now: UnixMs,
    ) -> StoreResult<bool>;

    /// Ends the session that `presented` is a still-usable refresh token of: the current one,
    /// or the previous one inside the grace window.
    async fn revoke_by_refresh(
        &self,
        id: &SessionId,
        presented: &RefreshHash,
        now: UnixMs,
        grace_ms: i64,
    ) -> StoreResult<Option<SessionRecord>>;

    /// Ends every session of a user except `keep`; returns how many ended.
    async fn revoke_all(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        reason: RevokeReason,
        now: UnixMs,
    ) -> StoreResult<u32>;
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

    /// The events counted for `key` in its live window and when that window ends (`(0, now)`
    /// when there is none). Counts nothing.
    async fn count(&self, key: &str, now: UnixMs) -> StoreResult<(u32, UnixMs)>;

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
    /// Moves a message aside for good after too many tries; it stays for an operator until
    /// [`MailQueue::purge_dead_letters`] removes it.
    async fn dead_letter(&self, id: &str, error: &str, now: UnixMs) -> StoreResult<()>;
    /// Deletes dead letters that died before `before`; returns how many.
    async fn purge_dead_letters(&self, before: UnixMs) -> StoreResult<u64>;
    /// When the next message is due, if any is waiting.
    async fn next_due(&self) -> StoreResult<Option<UnixMs>>;
    async fn dead_letter_count(&self) -> StoreResult<u64>;
}

/// A user's presence as derived from their sessions' heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceView {
    pub user_id: UserId,
    pub status: UserStatus,
    /// The last heartbeat, sign-in or end of a session; `None` when never seen.
    pub last_seen: Option<UnixMs>,
}

/// The rule every backend derives a user's status by, from the `(status, expires_at)` of the
/// user's session heartbeats: online when a live one is online, away when every live one is
/// away, offline when none is live.
pub fn derive_status(
    sessions: impl IntoIterator<Item = (UserStatus, UnixMs)>,
    now: UnixMs,
) -> UserStatus {
    let mut derived = UserStatus::Offline;
    for (status, expires_at) in sessions {
        if expires_at <= now {
            continue;
        }
        match status {
            UserStatus::Online => return UserStatus::Online,
            UserStatus::Away => derived = UserStatus::Away,
            UserStatus::Offline => {}
        }
    }
    derived
}

/// What a heartbeat changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub presence: PresenceView,
    /// The derived status changed (a presence.changed event was written).
    pub changed: bool,
}

/// Why a heartbeat was refused.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    /// No live session with this id belongs to this user.
    #[error("the session has ended")]
    SessionEnded,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Presence: per session a heartbeat that lives `ttl_ms`; per user the status derived from
/// them ([`derive_status`]) and the last time seen. No timer per user: a status is derived
/// when read, and [`PresenceStore::expire_presence`] (one periodic sweep) writes the
/// presence.changed events of users whose last heartbeat ran out. Ending a session ends its
/// presence in the same step (see [`SessionStore`]).
#[async_trait]
pub trait PresenceStore: Send + Sync {
    /// Records a heartbeat of session `session_id` of `user_id`, atomically with the check
    /// that the session is live and the user's; writes presence.changed when the user's
    /// derived status changes.
    async fn heartbeat(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        status: UserStatus,
        now: UnixMs,
        ttl_ms: i64,
    ) -> Result<Heartbeat, HeartbeatError>;

    /// The presence of each of `ids` (at most [`MAX_BATCH`]) in one round trip, in order.
    async fn get_presence(&self, ids: &[UserId], now: UnixMs) -> StoreResult<Vec<PresenceView>>;

    /// Users whose every heartbeat ran out by `now` become offline (with presence.changed);
    /// returns them (each at most once per transition, across instances).
    async fn expire_presence(&self, now: UnixMs) -> StoreResult<Vec<PresenceView>>;
}

/// Why events could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadEventsError {
    /// The id is not one this log hands out.
    #[error("not an event id of this log")]
    InvalidId,
    /// Events after the id were removed by the retention (or the log was reset): the reader
    /// missed some and must re-sync.
    #[error("events after this id are no longer kept")]
    Expired,
    #[error(transparent)]
    Store(StoreError),
}

/// The ordered, bounded log of [`EventKind`]s that `WatchEvents` streams. Stores write the
/// events of their own changes in the same atomic step (see each backend); [`EventLog::append`]
/// is for a change made in another store (users in MongoDB while the log is in Redis).
#[async_trait]
pub trait EventLog: Send + Sync {
    async fn append(&self, user_id: &UserId, kind: &EventKind, now: UnixMs) -> StoreResult<()>;
    /// The id of the newest event (or the log's start): where a watcher "from now" begins.
    async fn latest_id(&self) -> StoreResult<String>;
    /// Up to `limit` events after `after`, oldest first; when there are none yet, waits up to
    /// `wait` for one. [`ReadEventsError::Expired`] when some after `after` were trimmed.
    async fn read_after(
        &self,
        after: &str,
        limit: usize,
        wait: std::time::Duration,
    ) -> Result<Vec<Event>, ReadEventsError>;
    /// Removes events from before `before` (the retention), and the oldest beyond
    /// `max_events`; returns how many.
    async fn trim(&self, before: UnixMs, max_events: u64) -> StoreResult<u64>;
}

/// What a short-lived [`TicketStore`] entry is for. Each kind has its own id space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKind {
    /// A sign-in waiting for its second factor, under its challenge id.
    MfaChallenge,
    /// A TOTP secret shown to a user and not yet confirmed, under the user id.
    TotpEnrollment,
    /// A passkey registration waiting for the authenticator's answer, under the session id.
    PasskeyRegistration,
    /// A passwordless sign-in waiting for a passkey assertion, under its login id.
    PasskeyLogin,
    /// An email change waiting for the code mailed to the new address, under the session
    /// that asked.
    EmailChange,
}

impl TicketKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::MfaChallenge => "mfa",
            TicketKind::TotpEnrollment => "totp_enroll",
            TicketKind::PasskeyRegistration => "passkey_reg",
            TicketKind::PasskeyLogin => "passkey_login",
            TicketKind::EmailChange => "email_change",
        }
    }
}

/// Short-lived server-side state of a multi-step flow (an MFA challenge, an enrollment
/// waiting for its first code): a payload under (kind, id) until it expires, taken at most
/// once. Bounded: every entry expires (Redis TTLs; the SQLite sweeper deletes expired rows).
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Stores `payload` under (kind, id) until `expires_at`, replacing what was there.
    async fn put_ticket(
        &self,
        kind: TicketKind,
        id: &str,
        payload: &str,
        expires_at: UnixMs,
        now: UnixMs,
    ) -> StoreResult<()>;
    /// The payload, if the ticket exists and has not expired.
    async fn get_ticket(
        &self,
        kind: TicketKind,
        id: &str,
        now: UnixMs,
    ) -> StoreResult<Option<String>>;
    /// Removes the ticket and returns its payload, atomically: of callers racing for one
    /// ticket, one gets it.
    async fn take_ticket(
        &self,
        kind: TicketKind,
        id: &str,
        now: UnixMs,
    ) -> StoreResult<Option<String>>;
}

/// A user's active TOTP factor as stored: the secret sealed to the user
/// (`crypto::TotpSecret::seal`) and the last step a code was accepted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpFactor {
    pub sealed_secret: Vec<u8>,
    pub last_step: i64,
    pub enabled_at: UnixMs,
}

/// A passkey of a user as stored: the credential as the relying party keeps it (public key,
/// sign counter, flags; JSON of `webauthn_rs::prelude::Passkey`), with the counter beside it
/// so that a use can be a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// The credential id, base64url.
    pub id: String,
    pub name: String,
    pub credential: String,
    pub counter: u32,
    pub backed_up: bool,
    pub created_at: UnixMs,
    pub last_used_at: Option<UnixMs>,
}

/// A passkey's use, as the relying party verified it.
#[derive(Debug, Clone)]
pub struct PasskeyUse<'a> {
    pub id: &'a str,
    /// The credential with its new counter and flags.
    pub credential: &'a str,
    pub counter: u32,
    pub backed_up: bool,
    pub at: UnixMs,
}

/// Second factors, kept with the users (SQLite or MongoDB): the TOTP factor, the keyed
/// hashes of unused recovery codes, and passkeys. Enabling and disabling (a passkey added or
/// removed) write factor.enabled / factor.disabled (in the same transaction on SQLite, right
/// after on MongoDB).
#[async_trait]
pub trait FactorStore: Send + Sync {
    async fn totp(&self, user: &UserId) -> StoreResult<Option<TotpFactor>>;
    async fn factor_summary(&self, user: &UserId) -> StoreResult<FactorSummary>;
    /// Turns TOTP on with `factor` and replaces the recovery codes with `recovery`, unless
    /// TOTP is on already (false then, nothing changed).
    async fn enable_totp(
        &self,
        user: &UserId,
        factor: &TotpFactor,
        recovery: &[CodeHash],
    ) -> StoreResult<bool>;
    /// Records that a code of `step` was accepted, if `step` is later than the last one: a
    /// code is accepted once, and no older code after a newer one. Atomic across instances.
    async fn use_totp_step(&self, user: &UserId, step: i64) -> StoreResult<bool>;
    /// Uses up one unused recovery code; false when the user has no such code. Atomic.
    async fn use_recovery_code(&self, user: &UserId, code: &CodeHash) -> StoreResult<bool>;
    /// Replaces every recovery code; false (nothing changed) when TOTP is off.
    async fn replace_recovery_codes(&self, user: &UserId, codes: &[CodeHash]) -> StoreResult<bool>;
    /// Turns TOTP off and drops the recovery codes; false when it was off.
    async fn disable_totp(&self, user: &UserId, now: UnixMs) -> StoreResult<bool>;
    /// The user's passkeys, oldest first.
    async fn passkeys(&self, user: &UserId) -> StoreResult<Vec<PasskeyRecord>>;
    /// Adds a passkey, unless the user has `max` already or one with its id (false then,
    /// nothing changed). Atomic: two adds racing never leave more than `max`.
    async fn add_passkey(
        &self,
        user: &UserId,
        passkey: &PasskeyRecord,
        max: u32,
    ) -> StoreResult<bool>;
    /// Records a verified use, if the stored counter is below the new one (or both are 0, an
    /// authenticator without a counter): an assertion is accepted once, and a cloned
    /// authenticator's older counter never after a newer one. Atomic across instances.
    async fn use_passkey(&self, user: &UserId, used: &PasskeyUse<'_>) -> StoreResult<bool>;
    /// Removes a passkey; false when the user has none with this id.
    async fn delete_passkey(&self, user: &UserId, id: &str, now: UnixMs) -> StoreResult<bool>;
}

/// The users' security logs (see [`SecurityEvent`]), kept with the users (an SQLite table, a
/// MongoDB collection with a TTL index) for the retention.
#[async_trait]
pub trait SecurityLog: Send + Sync {
    /// Appends an entry.
    async fn record_security_event(&self, event: &SecurityEvent) -> StoreResult<()>;
    /// Up to `limit` entries of `user`, newest first, older than the entry `before` (its id)
    /// when given, only of `kinds` when not empty.
    async fn security_events(
        &self,
        user: &UserId,
        before: Option<&str>,
        limit: usize,
        kinds: &[SecurityKind],
    ) -> StoreResult<Vec<SecurityEvent>>;
    /// Removes entries from before `before`; returns how many.
    async fn trim_security_events(&self, before: UnixMs) -> StoreResult<u64>;
}

/// One signing key of the automatic rotation, as every instance reads it: the PKCS#8 key
/// sealed with AUTH_SECRET to its key id (base64url), and when it starts signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSigningKey {
    pub kid: String,
    pub sealed: String,
    pub created_at: UnixMs,
    pub signs_from: UnixMs,
}

/// The keys of the rotation and the version of the ring that holds them (0 before the first
/// write).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningKeyRing {
    pub version: u64,
    pub keys: Vec<StoredSigningKey>,
}

/// The signing keys of the automatic rotation, kept with the users (they must outlive a
/// Redis flush as the users do) and shared by every instance.
#[async_trait]
pub trait KeyRingStore: Send + Sync {
    /// The ring as last written.
    async fn signing_key_ring(&self) -> StoreResult<SigningKeyRing>;
    /// Writes `keys` as version `expected + 1` if the stored version is still `expected`
    /// (compare and set); false, writing nothing, when another instance wrote first.
    async fn replace_signing_key_ring(
        &self,
        expected: u64,
        keys: &[StoredSigningKey],
    ) -> StoreResult<bool>;
}

/// Users, their second factors and security logs, and the signing keys, which one backend
/// keeps together (SQLite or MongoDB).
pub trait UserRecords: UserStore + FactorStore + SecurityLog + KeyRingStore {}
impl<T: UserStore + FactorStore + SecurityLog + KeyRingStore + ?Sized> UserRecords for T {}

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
    pub events: Arc<dyn EventLog>,
    pub presence: Arc<dyn PresenceStore>,
    pub factors: Arc<dyn FactorStore>,
    pub tickets: Arc<dyn TicketStore>,
    pub security: Arc<dyn SecurityLog>,
    pub keys: Arc<dyn KeyRingStore>,
    pub health: Vec<Arc<dyn Health>>,
    /// GetCurrentUser's reads in one round trip, where one backend holds all four (the
    /// embedded SQLite); without it they are asked for at once from each store.
    pub current_user: Option<Arc<dyn CurrentUserStore>>,
}

/// What GetCurrentUser reads about an access token's session and user, as one snapshot.
#[derive(Debug, Clone)]
pub struct CurrentUserRead {
    /// The session, unless it has ended or expired.
    pub session: Option<SessionRecord>,
    pub user: Option<User>,
    pub presence: PresenceView,
    pub factors: FactorSummary,
}

/// A backend that holds the sessions, users, presence and second factors together reads what
/// GetCurrentUser needs in one round trip (for SQLite, one job and one transaction) instead of
/// four.
#[async_trait]
pub trait CurrentUserStore: Send + Sync {
    /// What [`SessionStore::get_session`], [`UserStore::find_by_id`],
    /// [`PresenceStore::get_presence`] and [`FactorStore::factor_summary`] answer for
    /// `session` and `user`.
    async fn current_user(
        &self,
        session: &SessionId,
        user: &UserId,
        now: UnixMs,
    ) -> StoreResult<CurrentUserRead>;
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
            + EventLog
            + PresenceStore
            + FactorStore
            + TicketStore
            + SecurityLog
            + KeyRingStore
            + Health
            + 'static,
    {
        Self {
            users: backend.clone(),
            pending: backend.clone(),
            sessions: backend.clone(),
            limits: backend.clone(),
            mail: backend.clone(),
            events: backend.clone(),
            presence: backend.clone(),
            factors: backend.clone(),
            tickets: backend.clone(),
            security: backend.clone(),
            keys: backend.clone(),
            health: vec![backend],
            current_user: None,
        }
    }

    /// GetCurrentUser's reads from `backend` in one round trip: only for a backend that holds
    /// the sessions, users, presence and factors these stores use.
    pub fn with_current_user(mut self, backend: Arc<dyn CurrentUserStore>) -> Self {
        self.current_user = Some(backend);
        self
    }
}
