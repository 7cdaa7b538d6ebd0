//! Sessions after sign-in: RefreshSession under the grace rule (the store's `rotate_refresh`
//! decides; a benign replay gets the sealed successor back), Logout, LogoutAll, ListSessions,
//! RevokeSession and GetCurrentUser. Logout ends whichever session the caller proves with
//! either token, so clearing cookies never leaves a session alive.

use super::security::Entry;
use super::{AuthCore, Caller, FlowError, SessionView, TokenPair};
use crate::crypto::RefreshToken;
use crate::domain::{FactorSummary, RevokeReason, SecurityKind, SessionId, User, UserId, now_ms};
use crate::store::{NextRefresh, RotateOutcome, SessionRecord};

impl AuthCore {
    /// RefreshSession: rotates the refresh token under the grace rule (see
    /// `SessionStore::rotate_refresh`) and issues a new pair.
    #[tracing::instrument(skip_all)]
    pub async fn refresh_session(&self, refresh_token: &str) -> Result<TokenPair, FlowError> {
        if refresh_token.trim().is_empty() {
            return Err(FlowError::invalid(
                "refresh_token",
                "refresh_token is required",
            ));
        }
        let presented = RefreshToken::parse(refresh_token).ok_or(FlowError::RefreshTokenInvalid)?;
        let next = RefreshToken::generate(&presented.session_id);
        let now = now_ms();
        let next_expires_at = now + self.policy.refresh_ttl_ms;
        // The store caps the expiry at the session's start plus its maximum lifetime, and
        // refuses a token of a session past either limit (SESSION_EXPIRED).
        let outcome = self
            .stores
            .sessions
            .rotate_refresh(
                &presented.session_id,
                &presented.hash(),
                &NextRefresh {
                    hash: next.hash(),
                    sealed: self.refresh_sealer.seal(next.expose().as_bytes()),
                    expires_at: next_expires_at,
                    max_lifetime_ms: self.policy.session_max_lifetime_ms,
                },
                now,
                self.policy.refresh_grace_ms,
            )
            .await?;
        match outcome {
            RotateOutcome::Rotated(session) => {
                self.token_pair(&session.user_id, next, session.expires_at)
            }
            // The same refresh token the first use got (a fresh access token for the same
            // session): the session keeps exactly one live refresh token.
            RotateOutcome::Replayed { session, sealed } => {
                let successor = self
                    .refresh_sealer
                    .open(&sealed)
                    .ok()
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .and_then(|raw| RefreshToken::parse(&raw))
                    .filter(|t| t.session_id == session.id)
                    .ok_or_else(|| {
                        FlowError::Internal("a sealed successor token does not open".into())
                    })?;
                self.token_pair(&session.user_id, successor, session.expires_at)
            }
            RotateOutcome::Invalid => Err(FlowError::RefreshTokenInvalid),
            RotateOutcome::Expired { user_id } => {
                tracing::info!(user_id = %user_id.0, session_id = %presented.session_id.0, "refresh after the session's time limit; session ended");
                let entry = Entry::new(SecurityKind::SessionsEnded)
                    .detail(RevokeReason::Expired.as_str())
                    .session(&presented.session_id);
                self.audit(&user_id, entry).await;
                Err(FlowError::SessionExpired)
            }
            RotateOutcome::ReuseDetected { user_id } => {
                tracing::warn!(user_id = %user_id.0, session_id = %presented.session_id.0, "refresh token replayed after the grace window; session ended");
                let entry = Entry::new(SecurityKind::SessionsEnded)
                    .detail(RevokeReason::ReuseDetected.as_str())
                    .session(&presented.session_id);
                self.audit(&user_id, entry).await;
                Err(FlowError::RefreshTokenReused)
            }
        }
    }

    /// Logout: ends the session of `refresh_token`; when there is none, or it is refused
    /// (a stale cookie), the session of the caller's access token. Either way a session the
    /// caller could prove ends: clearing cookies must never leave it alive.
    #[tracing::instrument(skip_all)]
    pub async fn logout(
        &self,
        refresh_token: &str,
        caller: Option<&Caller>,
    ) -> Result<(), FlowError> {
        let now = now_ms();
        let mut refused = None;
        if !refresh_token.trim().is_empty() {
            let ended = match RefreshToken::parse(refresh_token) {
                Some(presented) => {
                    self.stores
                        .sessions
                        .revoke_by_refresh(
                            &presented.session_id,
                            &presented.hash(),
                            now,
                            self.policy.refresh_grace_ms,
                        )
                        .await?
                }
                None => None,
            };
            match ended {
                Some(session) => {
                    let entry = Entry::new(SecurityKind::SessionsEnded)
                        .detail(RevokeReason::Logout.as_str())
                        .session(&session.id);
                    self.audit(&session.user_id, entry).await;
                    return self.logged_out(&session.user_id).await;
                }
                None => refused = Some(FlowError::RefreshTokenInvalid),
            }
        }
        let Some(caller) = caller else {
            return Err(refused.unwrap_or(FlowError::Unauthenticated));
        };
        if !self
            .stores
            .sessions
            .revoke_session(
                &caller.session_id,
                &caller.user_id,
                RevokeReason::Logout,
                now,
            )
            .await?
        {
            return Err(FlowError::SessionRevoked);
        }
        let entry = Entry::new(SecurityKind::SessionsEnded)
            .detail(RevokeReason::Logout.as_str())
            .session(&caller.session_id);
        self.audit(&caller.user_id, entry).await;
        self.logged_out(&caller.user_id).await
    }

    async fn logged_out(&self, user_id: &UserId) -> Result<(), FlowError> {
        // The store ended the session's presence with it; the user record follows.
        self.presence_after_logout(user_id).await;
        tracing::info!(user_id = %user_id.0, "logged out");
        Ok(())
    }

    /// LogoutAll: ends every session of the caller.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id.0))]
    pub async fn logout_all(&self, caller: &Caller) -> Result<u32, FlowError> {
        let n = self
            .stores
            .sessions
            .revoke_all(&caller.user_id, None, RevokeReason::LogoutAll, now_ms())
            .await?;
        self.presence_after_logout(&caller.user_id).await;
        let entry = Entry::new(SecurityKind::SessionsEnded)
            .detail(format!("{}: {n}", RevokeReason::LogoutAll.as_str()))
            .session(&caller.session_id);
        self.audit(&caller.user_id, entry).await;
        Ok(n)
    }

    /// ListSessions: the caller's live sessions, the current one marked.
    pub async fn list_sessions(&self, caller: &Caller) -> Result<Vec<SessionView>, FlowError> {
        let records = self
            .stores
            .sessions
            .list_sessions(&caller.user_id, now_ms())
            .await?;
        Ok(records
            .into_iter()
            .map(|record| self.session_view(record, Some(&caller.session_id)))
            .collect())
    }

    /// A session as listed: `current` when it is `caller`'s, with its maximum lifetime.
    pub(super) fn session_view(
        &self,
        record: SessionRecord,
        caller: Option<&SessionId>,
    ) -> SessionView {
        SessionView {
            current: caller == Some(&record.id),
            max_expires_at: record
                .created_at
                .saturating_add(self.policy.session_max_lifetime_ms),
            record,
        }
    }

    /// RevokeSession: ends one of the caller's sessions (another user's id is "not found").
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id.0))]
    pub async fn revoke_session(&self, caller: &Caller, session_id: &str) -> Result<(), FlowError> {
        let id = SessionId::parse(session_id).map_err(|e| FlowError::invalid("session_id", e))?;
        if self
            .stores
            .sessions
            .revoke_session(&id, &caller.user_id, RevokeReason::Revoked, now_ms())
            .await?
        {
            let entry = Entry::new(SecurityKind::SessionsEnded)
                .detail(RevokeReason::Revoked.as_str())
                .session(&id);
            self.audit(&caller.user_id, entry).await;
            Ok(())
        } else {
            Err(FlowError::SessionNotFound)
        }
    }

    /// GetCurrentUser from an access token: the session check, the user, its presence and
    /// its second factors in one round trip where one backend holds them all (one job and
    /// one transaction on SQLite), else asked for at once (four round trips overlapping on
    /// Redis and MongoDB) instead of one after the other. Nothing is answered unless the
    /// session is live; what was read for a token whose session ended is dropped.
    pub async fn current_user_by_token(
        &self,
        access_token: &str,
    ) -> Result<(User, FactorSummary), FlowError> {
        let claims = self.verified_claims(access_token)?;
        let user_id = UserId(claims.sub.clone());
        if let Some(store) = &self.stores.current_user {
            let session_id = SessionId(claims.sid.clone());
            let read = store.current_user(&session_id, &user_id, now_ms()).await?;
            super::tokens::caller_of(claims, read.session)?;
            let mut user = read.user.ok_or(FlowError::SessionRevoked)?;
            super::presence::apply(&mut user, read.presence);
            return Ok((user, read.factors));
        }
        let ids = [user_id.clone()];
        let (caller, user, presence, factors) = tokio::join!(
            self.live_session(claims),
            self.stores.users.find_by_id(&user_id),
            self.stores.presence.get_presence(&ids, now_ms()),
            self.stores.factors.factor_summary(&user_id),
        );
        caller?;
        let mut user = user?.ok_or(FlowError::SessionRevoked)?;
        if let Some(view) = presence?.pop() {
            super::presence::apply(&mut user, view);
        }
        Ok((user, factors?))
    }

    pub(super) async fn user(&self, id: &UserId) -> Result<User, FlowError> {
        self.stores
            .users
            .find_by_id(id)
            .await?
            .ok_or(FlowError::SessionRevoked)
    }
}
