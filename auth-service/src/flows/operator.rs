//! Operator actions (InternalAuthService, callers named in OPERATOR_SERVICES only): find an
//! account by email, disable and enable it, end and list its sessions. Each writes its event
//! (user.disabled, user.enabled, session.revoked with reason `operator`).
//!
//! A suspension is the user record's own field, so every sign-in reads it with the user: it is
//! refused after the first factor (USER_DISABLED tells nothing to someone without the
//! password) and, for a sign-in that raced the suspension, checked again after its session
//! started (see `sign_in`). Disabling ends every session right after setting the field, so an
//! access token stops validating and a refresh token stops refreshing at once.

use super::fields::{reason_field, user_id_field};
use super::security::Entry;
use super::{AuthCore, FlowError, SessionView};
use crate::domain::{
    AllParsed, Disabled, Email, RevokeReason, SecurityKind, UnixMs, User, UserId, Violations,
    now_ms,
};

impl AuthCore {
    /// FindUserByEmail.
    pub async fn find_user_by_email(&self, email: &str) -> Result<User, FlowError> {
        let email = Email::parse(email).map_err(|e| FlowError::invalid("email", e))?;
        self.stores
            .users
            .find_by_email(&email)
            .await?
            .ok_or(FlowError::UserNotFound)
    }

    /// DisableUser: no sign-in until `until` (or until EnableUser), and every session ends
    /// now. Disabling again replaces the reason and the end.
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn disable_user(
        &self,
        user_id: &str,
        reason: &str,
        until: Option<UnixMs>,
    ) -> Result<(User, u32), FlowError> {
        let now = now_ms();
        let mut v = Violations::default();
        let id = v.check("user_id", user_id_field(user_id));
        let reason = v.check("reason", reason_field(reason));
        let until = v.check(
            "until",
            match until {
                Some(t) if t <= now => {
                    Err("until must be in the future (or unset: for good)".into())
                }
                other => Ok(other),
            },
        );
        let (id, reason, until) = v.finish((id, reason, until).all())?;
        let disabled = Disabled {
            reason,
            at: now,
            until,
        };
        if !self
            .stores
            .users
            .set_disabled(&id, Some(&disabled), now)
            .await?
        {
            return Err(FlowError::UserNotFound);
        }
        // After the field: a sign-in that starts a session from here on finds it set.
        let ended = self.end_user_sessions(&id, now).await?;
        tracing::warn!(user_id = %id.0, sessions_ended = ended, until = ?until, "user disabled by an operator");
        let until_text = until.map(crate::domain::rfc3339).unwrap_or_default();
        self.audit(&id, Entry::new(SecurityKind::Disabled).detail(until_text))
            .await;
        let user = self.user_record(&id).await?;
        Ok((user, ended))
    }

    /// EnableUser: lifts a suspension (a no-op for a user without one).
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn enable_user(&self, user_id: &str) -> Result<User, FlowError> {
        let id = user_id_field(user_id).map_err(|e| FlowError::invalid("user_id", e))?;
        let user = self.user_record(&id).await?;
        if user.disabled.is_none() {
            return Ok(user);
        }
        if !self.stores.users.set_disabled(&id, None, now_ms()).await? {
            return Err(FlowError::UserNotFound);
        }
        tracing::warn!(user_id = %id.0, "user enabled by an operator");
        self.audit(&id, Entry::new(SecurityKind::Enabled)).await;
        self.user_record(&id).await
    }

    /// RevokeUserSessions: ends every session of a user; returns how many.
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn revoke_user_sessions(&self, user_id: &str) -> Result<u32, FlowError> {
        let id = user_id_field(user_id).map_err(|e| FlowError::invalid("user_id", e))?;
        self.user_record(&id).await?;
        let ended = self.end_user_sessions(&id, now_ms()).await?;
        tracing::warn!(user_id = %id.0, sessions_ended = ended, "sessions ended by an operator");
        let detail = format!("{}: {ended}", RevokeReason::Operator.as_str());
        self.audit(&id, Entry::new(SecurityKind::SessionsEnded).detail(detail))
            .await;
        Ok(ended)
    }

    /// ListUserSessions: a user's live sessions, newest first (none is "current").
    pub async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<SessionView>, FlowError> {
        let id = user_id_field(user_id).map_err(|e| FlowError::invalid("user_id", e))?;
        self.user_record(&id).await?;
        let records = self.stores.sessions.list_sessions(&id, now_ms()).await?;
        Ok(records
            .into_iter()
            .map(|record| self.session_view(record, None))
            .collect())
    }

    async fn end_user_sessions(&self, id: &UserId, now: UnixMs) -> Result<u32, FlowError> {
        let ended = self
            .stores
            .sessions
            .revoke_all(id, None, RevokeReason::Operator, now)
            .await?;
        self.presence_after_logout(id).await;
        Ok(ended)
    }

    async fn user_record(&self, id: &UserId) -> Result<User, FlowError> {
        self.stores
            .users
            .find_by_id(id)
            .await?
            .ok_or(FlowError::UserNotFound)
    }
}
