//! Events: the changes other services follow through `WatchEvents` (a socket server drops a
//! revoked session's connections, a cache forgets a renamed user). Each is written by the store
//! operation that makes the change; [`EventKind::fields`] is the flat form every backend keeps.

use super::{AuthMethod, SessionId, UnixMs, UserId, UserStatus};

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    Logout,
    LogoutAll,
    Revoked,
    PasswordReset,
    PasswordChanged,
    ReuseDetected,
    Evicted,
    /// The user turned a second factor on or off: their other sessions end.
    FactorChanged,
    /// An operator disabled the user (DisableUser) or ended their sessions
    /// (RevokeUserSessions).
    Operator,
    /// A refresh came after the session's idle timeout or maximum lifetime.
    Expired,
    /// The account was deleted (DeleteAccount, DeleteUser).
    AccountDeleted,
}

impl RevokeReason {
    pub const ALL: [RevokeReason; 11] = [
        RevokeReason::Logout,
        RevokeReason::LogoutAll,
        RevokeReason::Revoked,
        RevokeReason::PasswordReset,
        RevokeReason::PasswordChanged,
        RevokeReason::ReuseDetected,
        RevokeReason::Evicted,
        RevokeReason::FactorChanged,
        RevokeReason::Operator,
        RevokeReason::Expired,
        RevokeReason::AccountDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::LogoutAll => "logout_all",
            RevokeReason::Revoked => "revoked",
            RevokeReason::PasswordReset => "password_reset",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::ReuseDetected => "reuse_detected",
            RevokeReason::Evicted => "evicted",
            RevokeReason::FactorChanged => "factor_changed",
            RevokeReason::Operator => "operator",
            RevokeReason::Expired => "expired",
            RevokeReason::AccountDeleted => "account_deleted",
        }
    }

    pub fn from_stored(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    SessionCreated {
        session_id: SessionId,
    },
    SessionRevoked {
        session_id: SessionId,
        reason: RevokeReason,
    },
    UserCreated,
    UserUpdated {
        fields: Vec<String>,
    },
    PasswordChanged,
    PresenceChanged {
        status: UserStatus,
    },
    /// A second factor was turned on.
    FactorEnabled {
        factor: AuthMethod,
    },
    /// A second factor was turned off.
    FactorDisabled {
        factor: AuthMethod,
    },
    /// A wrong second factor was tried (a sign-in challenge, or a change that needs one).
    MfaFailed {
        factor: AuthMethod,
    },
    /// An operator disabled the user (DisableUser).
    UserDisabled,
    /// An operator enabled the user again (EnableUser).
    UserEnabled,
    /// The account was deleted (DeleteAccount, DeleteUser).
    UserDeleted,
}

/// The type names events are stored and filtered under.
pub const EVENT_TYPES: [&str; 12] = [
    "session.created",
    "session.revoked",
    "user.created",
    "user.updated",
    "user.password_changed",
    "presence.changed",
    "factor.enabled",
    "factor.disabled",
    "mfa.failed",
    "user.disabled",
    "user.enabled",
    "user.deleted",
];

impl EventKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::SessionCreated { .. } => EVENT_TYPES[0],
            EventKind::SessionRevoked { .. } => EVENT_TYPES[1],
            EventKind::UserCreated => EVENT_TYPES[2],
            EventKind::UserUpdated { .. } => EVENT_TYPES[3],
            EventKind::PasswordChanged => EVENT_TYPES[4],
            EventKind::PresenceChanged { .. } => EVENT_TYPES[5],
            EventKind::FactorEnabled { .. } => EVENT_TYPES[6],
            EventKind::FactorDisabled { .. } => EVENT_TYPES[7],
            EventKind::MfaFailed { .. } => EVENT_TYPES[8],
            EventKind::UserDisabled => EVENT_TYPES[9],
            EventKind::UserEnabled => EVENT_TYPES[10],
            EventKind::UserDeleted => EVENT_TYPES[11],
        }
    }

    /// The flat stored form: type, session id, detail (reason, status or comma-separated
    /// fields); empty where the type has none.
    pub fn fields(&self) -> (&'static str, String, String) {
        let (session, detail) = match self {
            EventKind::SessionCreated { session_id } => (session_id.0.clone(), String::new()),
            EventKind::SessionRevoked { session_id, reason } => {
                (session_id.0.clone(), reason.as_str().to_owned())
            }
            EventKind::UserCreated
            | EventKind::PasswordChanged
            | EventKind::UserDisabled
            | EventKind::UserEnabled
            | EventKind::UserDeleted => (String::new(), String::new()),
            EventKind::UserUpdated { fields } => (String::new(), fields.join(",")),
            EventKind::PresenceChanged { status } => (String::new(), status.as_str().to_owned()),
            EventKind::FactorEnabled { factor }
            | EventKind::FactorDisabled { factor }
            | EventKind::MfaFailed { factor } => (String::new(), factor.as_str().to_owned()),
        };
        (self.type_name(), session, detail)
    }

    /// Reads the stored form back; `None` for a type or detail this version does not know.
    pub fn from_fields(kind: &str, session: &str, detail: &str) -> Option<Self> {
        let session_id = || SessionId(session.to_owned());
        Some(match kind {
            "session.created" => EventKind::SessionCreated {
                session_id: session_id(),
            },
            "session.revoked" => EventKind::SessionRevoked {
                session_id: session_id(),
                reason: RevokeReason::from_stored(detail)?,
            },
            "user.created" => EventKind::UserCreated,
            "user.updated" => EventKind::UserUpdated {
                fields: detail
                    .split(',')
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect(),
            },
            "user.password_changed" => EventKind::PasswordChanged,
            "presence.changed" => EventKind::PresenceChanged {
                status: UserStatus::from_stored(detail),
            },
            "factor.enabled" => EventKind::FactorEnabled {
                factor: AuthMethod::from_stored(detail)?,
            },
            "factor.disabled" => EventKind::FactorDisabled {
                factor: AuthMethod::from_stored(detail)?,
            },
            "mfa.failed" => EventKind::MfaFailed {
                factor: AuthMethod::from_stored(detail)?,
            },
            "user.disabled" => EventKind::UserDisabled,
            "user.enabled" => EventKind::UserEnabled,
            "user.deleted" => EventKind::UserDeleted,
            _ => return None,
        })
    }
}

/// An event as the log returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Increasing, opaque id (the log's own form).
    pub id: String,
    pub at: UnixMs,
    pub user_id: UserId,
    pub kind: EventKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips() {
        let sid = SessionId::generate();
        let kinds = [
            EventKind::SessionCreated {
                session_id: sid.clone(),
            },
            EventKind::SessionRevoked {
                session_id: sid,
                reason: RevokeReason::ReuseDetected,
            },
            EventKind::UserCreated,
            EventKind::UserUpdated {
                fields: vec!["bio".into(), "username".into()],
            },
            EventKind::PasswordChanged,
            EventKind::PresenceChanged {
                status: UserStatus::Away,
            },
            EventKind::FactorEnabled {
                factor: AuthMethod::Totp,
            },
            EventKind::FactorDisabled {
                factor: AuthMethod::Totp,
            },
            EventKind::MfaFailed {
                factor: AuthMethod::RecoveryCode,
            },
            EventKind::UserDisabled,
            EventKind::UserEnabled,
            EventKind::UserDeleted,
        ];
        for kind in kinds {
            let (t, s, d) = kind.fields();
            assert_eq!(EventKind::from_fields(t, &s, &d), Some(kind));
        }
        assert_eq!(EventKind::from_fields("session.revoked", "x", "nope"), None);
        assert_eq!(EventKind::from_fields("other", "", ""), None);
    }
}
