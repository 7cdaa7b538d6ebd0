//! Presence: heartbeats of sessions (Heartbeat from a socket server, SetPresence from the
//! user, and a sign-in), the derived status of users (GetPresence, and the status shown on
//! every user view), and the periodic sweep that reports users whose heartbeats ran out.
//!
//! The status lives with the sessions (Redis or SQLite). The user record's `status` and
//! `lastSeen` (the seed's fields, read by other tools of the users collection) follow it on
//! transitions only, at most once per user per PRESENCE_WRITE_INTERVAL: never once per
//! heartbeat.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{AuthCore, Caller, FlowError, limits::Counter};
use crate::domain::{SessionId, UnixMs, User, UserId, UserStatus, now_ms};
use crate::store::{HeartbeatError, PresenceView};

/// SetPresence calls one session may make per minute.
pub const SET_PRESENCE_PER_MINUTE: u32 = 30;

/// A requested status: online or away (offline is what stopping heartbeats means).
fn beat_status(status: Option<UserStatus>) -> Result<UserStatus, FlowError> {
    match status {
        None | Some(UserStatus::Online) => Ok(UserStatus::Online),
        Some(UserStatus::Away) => Ok(UserStatus::Away),
        Some(UserStatus::Offline) => Err(FlowError::invalid(
            "status",
            "status must be online or away; a session goes offline by stopping its heartbeats \
             or logging out",
        )),
    }
}

impl AuthCore {
    /// Records a heartbeat of a session and mirrors a transition to the user record.
    pub(super) async fn beat(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        status: UserStatus,
    ) -> Result<PresenceView, FlowError> {
        let now = now_ms();
        let beat = self
            .stores
            .presence
            .heartbeat(
                user_id,
                session_id,
                status,
                now,
                self.policy.presence.ttl_ms,
            )
            .await
            .map_err(|e| match e {
                HeartbeatError::SessionEnded => FlowError::SessionEnded,
                HeartbeatError::Store(e) => e.into(),
            })?;
        if beat.changed {
            self.mirror_presence(&beat.presence, now).await;
        }
        Ok(beat.presence)
    }

    /// How long a heartbeat keeps a session present.
    pub fn presence_ttl(&self) -> Duration {
        Duration::from_millis(self.policy.presence.ttl_ms.max(0) as u64)
    }

    /// Heartbeat (internal): `status` is `None` for unspecified.
    pub async fn heartbeat(
        &self,
        user_id: &str,
        session_id: &str,
        status: Option<UserStatus>,
    ) -> Result<PresenceView, FlowError> {
        let user_id = user_id.trim();
        if user_id.is_empty() {
            return Err(FlowError::invalid("user_id", "user_id is required"));
        }
        let session_id =
            SessionId::parse(session_id).map_err(|e| FlowError::invalid("session_id", e))?;
        let status = beat_status(status)?;
        self.beat(&UserId(user_id.to_owned()), &session_id, status)
            .await
    }

    /// SetPresence: the caller's own session, online or away, at most
    /// [`SET_PRESENCE_PER_MINUTE`] times a minute per session (each change is an event every
    /// watcher receives).
    pub async fn set_presence(
        &self,
        caller: &Caller,
        status: Option<UserStatus>,
    ) -> Result<PresenceView, FlowError> {
        let status = beat_status(status)?;
        self.limit(
            Counter::PresenceSet {
                session: &caller.session_id,
            },
            SET_PRESENCE_PER_MINUTE,
            60_000,
            |retry_at| FlowError::PresenceRateLimited { retry_at },
        )
        .await?;
        self.beat(&caller.user_id, &caller.session_id, status).await
    }

    /// GetPresence: every distinct id, in request order, in one store round trip.
    pub async fn get_presence(&self, ids: &[String]) -> Result<Vec<PresenceView>, FlowError> {
        let ids: Vec<UserId> = super::directory::distinct("user_ids", ids)?
            .into_iter()
            .filter(|i| !i.is_empty())
            .map(UserId)
            .collect();
        Ok(self.stores.presence.get_presence(&ids, now_ms()).await?)
    }

    /// Sign-in's first heartbeat. The session exists already, so a failure here must not turn
    /// the sign-in into an error: the session is then present from its next heartbeat.
    pub(super) async fn first_beat(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
    ) -> PresenceView {
        match self.beat(user_id, session_id, UserStatus::Online).await {
            Ok(view) => view,
            Err(e) => {
                tracing::warn!(error = %e, user_id = %user_id.0, "the sign-in's heartbeat failed");
                PresenceView {
                    user_id: user_id.clone(),
                    status: UserStatus::Online,
                    last_seen: Some(now_ms()),
                }
            }
        }
    }

    /// The users with their presence as derived now (one presence round trip for all).
    pub(super) async fn with_presence(&self, mut users: Vec<User>) -> Result<Vec<User>, FlowError> {
        let ids: Vec<UserId> = users.iter().map(|u| u.id.clone()).collect();
        let views = self.stores.presence.get_presence(&ids, now_ms()).await?;
        for (user, view) in users.iter_mut().zip(views) {
            apply(user, view);
        }
        Ok(users)
    }

    /// One user with presence.
    pub(super) async fn one_with_presence(&self, user: User) -> Result<User, FlowError> {
        Ok(self
            .with_presence(vec![user])
            .await?
            .pop()
            .expect("one in, one out"))
    }

    /// Writes a transition to the user record, unless one was written for this user within
    /// PRESENCE_WRITE_INTERVAL; a transition to offline is always written, so the record never
    /// stays online after the last session left. Best effort: the status served is the
    /// derived one.
    async fn mirror_presence(&self, view: &PresenceView, now: UnixMs) {
        let interval = self.policy.presence.write_interval_ms;
        if interval > 0 && view.status != UserStatus::Offline {
            let key = Counter::PresenceWrite {
                user: &view.user_id,
            }
            .key();
            match self.stores.limits.hit(&key, 1, interval, now).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "presence write budget unavailable");
                    return;
                }
            }
        }
        let at = view.last_seen.unwrap_or(now);
        if let Err(e) = self
            .stores
            .users
            .set_presence(&view.user_id, view.status, at)
            .await
        {
            tracing::warn!(error = %e, user_id = %view.user_id.0, "cannot write presence to the user record");
        }
        if view.status == UserStatus::Offline && interval > 0 {
            // The next online (a reconnect) is written at once, or the record would say
            // offline while the user is back.
            let key = Counter::PresenceWrite {
                user: &view.user_id,
            }
            .key();
            let _ = self.stores.limits.clear(&key).await;
        }
    }

    /// Mirrors what a session end did to its user's presence.
    pub(super) async fn presence_after_logout(&self, user_id: &UserId) {
        let now = now_ms();
        match self
            .stores
            .presence
            .get_presence(std::slice::from_ref(user_id), now)
            .await
        {
            Ok(views) => {
                for view in views {
                    self.mirror_presence(&view, now).await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read presence after a logout"),
        }
    }

    /// Reports users whose heartbeats ran out, every `every`, until `stop`.
    pub async fn sweep_presence(
        self: std::sync::Arc<Self>,
        every: Duration,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let now = now_ms();
            match self.stores.presence.expire_presence(now).await {
                Ok(changed) => {
                    for view in &changed {
                        self.mirror_presence(view, now).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "presence sweep failed"),
            }
        }
    }
}

/// The derived presence of `view` on its user's record.
pub(super) fn apply(user: &mut User, view: PresenceView) {
    user.status = view.status;
    if view.last_seen.is_some() {
        user.last_seen = view.last_seen;
    }
}
