//! The security log: an append-only record per user of what happened to the account (sign-ins
//! and failed ones with the client's address and user agent, factor, password and email
//! changes, sessions ended and why, operator actions), kept AUDIT_RETENTION. An entry holds
//! kinds, reasons, addresses and ids only: never a password, code or token.

use super::{SessionId, UnixMs, UserId};

/// What an entry records. The stored and listed name is [`SecurityKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityKind {
    /// A session started; detail: how it signed in (`password+totp`, `passkey`, ...).
    SignIn,
    /// A wrong password for this account; detail: `password`.
    SignInFailed,
    /// A wrong second factor; detail: the factor (`totp`, `recovery_code`, `passkey`).
    MfaFailed,
    /// Refused because an operator disabled the account.
    SignInRefused,
    PasswordChanged,
    PasswordReset,
    EmailChanged,
    /// detail: the factor (`totp`, `passkey`).
    FactorEnabled,
    /// detail: the factor.
    FactorDisabled,
    RecoveryCodesReplaced,
    /// Sessions ended; detail: why (`logout`, `logout_all`, `revoked`, `reuse_detected`,
    /// `expired`, `operator`, ...), and how many when more than one.
    SessionsEnded,
    /// An operator disabled the account; detail: until when (RFC 3339), or empty.
    Disabled,
    /// An operator enabled the account.
    Enabled,
    /// The account was deleted; detail: `operator` when an operator did it.
    AccountDeleted,
}

impl SecurityKind {
    pub const ALL: [SecurityKind; 14] = [
        SecurityKind::SignIn,
        SecurityKind::SignInFailed,
        SecurityKind::MfaFailed,
        SecurityKind::SignInRefused,
        SecurityKind::PasswordChanged,
        SecurityKind::PasswordReset,
        SecurityKind::EmailChanged,
        SecurityKind::FactorEnabled,
        SecurityKind::FactorDisabled,
        SecurityKind::RecoveryCodesReplaced,
        SecurityKind::SessionsEnded,
        SecurityKind::Disabled,
        SecurityKind::Enabled,
        SecurityKind::AccountDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SecurityKind::SignIn => "sign_in",
            SecurityKind::SignInFailed => "sign_in_failed",
            SecurityKind::MfaFailed => "mfa_failed",
            SecurityKind::SignInRefused => "sign_in_refused",
            SecurityKind::PasswordChanged => "password_changed",
            SecurityKind::PasswordReset => "password_reset",
            SecurityKind::EmailChanged => "email_changed",
            SecurityKind::FactorEnabled => "factor_enabled",
            SecurityKind::FactorDisabled => "factor_disabled",
            SecurityKind::RecoveryCodesReplaced => "recovery_codes_replaced",
            SecurityKind::SessionsEnded => "sessions_ended",
            SecurityKind::Disabled => "disabled",
            SecurityKind::Enabled => "enabled",
            SecurityKind::AccountDeleted => "account_deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One entry of a user's security log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    /// A UUID v7: entries of one user sort by it, newest last.
    pub id: String,
    pub user_id: UserId,
    pub at: UnixMs,
    pub kind: SecurityKind,
    pub detail: String,
    /// The client's address and user agent, when the entry came from a request of theirs.
    pub ip: String,
    pub user_agent: String,
    /// The session concerned, if one.
    pub session_id: Option<SessionId>,
}
