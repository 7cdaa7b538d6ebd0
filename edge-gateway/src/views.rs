//! Proto messages to the JSON the browser sees: camelCase, RFC 3339 times, no tokens.

use std::time::{Duration, SystemTime};

use baatcheet_auth_api::{json, v1 as pb};
use prost_types::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

/// A verified user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub email: String,
    pub bio: String,
    /// Empty when none.
    pub avatar_url: String,
    /// `online`, `away` or `offline` (derived from the sessions' heartbeats).
    #[schema(example = "online")]
    pub status: &'static str,
    pub last_seen_at: Option<String>,
    pub friend_ids: Vec<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// The second factors that are on (`totp`); filled for GET /me.
    pub second_factors: Vec<&'static str>,
    /// Unused recovery codes left; filled for GET /me.
    pub recovery_codes_remaining: i32,
    /// How many passkeys the user has; filled for GET /me.
    pub passkey_count: i32,
}

/// `data` of answers about the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserData {
    pub user: UserView,
}

/// `data` of a profile change: the caller as it is now, and when the username may change again.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileUpdated {
    pub user: UserView,
    /// From then on the username may change again (now, when it never changed).
    pub next_username_change_at: Option<String>,
}

/// `data` of a sign-in (verify-otp, login): the user and when the cookie tokens expire.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedIn {
    pub user: UserView,
    pub session: SessionTokens,
}

/// `data` of a sign-in that needs its second factor: no tokens yet; the challenge's id is in
/// an httpOnly cookie (`mfaChallenge`) for POST /mfa/complete.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaRequired {
    /// Always true.
    pub mfa_required: bool,
    /// What completes it: `totp`, `recovery_code`, `passkey`.
    pub factors: Vec<&'static str>,
    pub expires_at: Option<String>,
    /// When the user has passkeys: `{publicKey: {...}}` for `navigator.credentials.get()`
    /// (binary fields base64url); the assertion goes to /mfa/complete as `passkeyCredential`.
    #[schema(value_type = Option<Object>)]
    pub passkey: Option<serde_json::Value>,
}

impl From<&pb::MfaChallenge> for MfaRequired {
    fn from(c: &pb::MfaChallenge) -> Self {
        Self {
            mfa_required: true,
            factors: methods(&c.factors),
            expires_at: rfc3339(c.expire_time.as_ref()),
            passkey: c.passkey_request.clone().map(json::from_struct),
        }
    }
}

/// `data` of the first step of a passkey ceremony: `{publicKey: {...}}` for
/// `navigator.credentials.create()` or `.get()` (binary fields base64url).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyOptions {
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
    pub expires_at: Option<String>,
}

impl PasskeyOptions {
    /// The options of a Struct the service sent (`{publicKey: {...}}`).
    pub fn new(
        options: Option<prost_types::Struct>,
        expires: Option<&prost_types::Timestamp>,
    ) -> Self {
        let mut options = options.map(json::from_struct).unwrap_or_default();
        Self {
            public_key: options
                .get_mut("publicKey")
                .map(serde_json::Value::take)
                .unwrap_or_default(),
            expires_at: rfc3339(expires),
        }
    }
}

/// A passkey of the user (never a key).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyView {
    /// The credential id, base64url.
    pub id: String,
    pub name: String,
    pub created_at: Option<String>,
    pub last_used_at: Option<String>,
    /// Synced to the user's other devices, as the authenticator said.
    pub backed_up: bool,
}

impl From<pb::Passkey> for PasskeyView {
    fn from(p: pb::Passkey) -> Self {
        Self {
            created_at: rfc3339(p.create_time.as_ref()),
            last_used_at: rfc3339(p.last_used_time.as_ref()),
            id: p.id,
            name: p.name,
            backed_up: p.backed_up,
        }
    }
}

/// `data` of GET /passkeys.
#[derive(Debug, Serialize, ToSchema)]
pub struct Passkeys {
    pub passkeys: Vec<PasskeyView>,
}

/// `data` of a first factor (login, login by code): signed in, or a second factor required.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SignInStep {
    SignedIn(Box<SignedIn>),
    MfaRequired(MfaRequired),
}

/// `data` of a sign-in code request: how long the code, if one was sent, stays valid.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginCodeRequested {
    pub code_ttl_seconds: Option<i64>,
}

/// `data` of StartTotpEnrollment: what to put into an authenticator app.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpEnrollment {
    /// Base32, for typing in by hand.
    pub secret: String,
    /// `otpauth://totp/...`, for a QR code.
    pub otpauth_uri: String,
    pub expires_at: Option<String>,
}

/// `data` of /mfa/totp/confirm: the recovery codes (shown once) and how many other sessions
/// ended.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpEnabled {
    pub recovery_codes: Vec<String>,
    pub revoked_session_count: i32,
}

/// `data` of the answers that show recovery codes (once).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// The session behind the token cookies. The tokens themselves are only in httpOnly cookies.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionTokens {
    pub session_id: String,
    pub access_token_expires_at: Option<String>,
    pub refresh_token_expires_at: Option<String>,
}

/// One signed-in device.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub id: String,
    pub created_at: Option<String>,
    pub last_used_at: Option<String>,
    /// When it ends unless refreshed (the idle timeout).
    pub expires_at: Option<String>,
    /// When it ends however often it is refreshed (the maximum lifetime).
    pub max_expires_at: Option<String>,
    pub user_agent: String,
    pub client_ip: String,
    /// True for the session of this request's token.
    pub current: bool,
    /// How it signed in, first factor first (`password`, `email_code`, `totp`, ...).
    pub auth_methods: Vec<&'static str>,
}

/// `data` of GET sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

/// Where a code went and when it expires.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodeDelivery {
    pub email: String,
    pub code_expires_at: Option<String>,
    /// When another code may be asked for.
    pub resend_available_at: Option<String>,
    /// Wrong guesses left.
    pub attempts_remaining: i32,
}

/// `data` of password/forgot: the same whether or not the account exists.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetRequested {
    /// How long a code, if one was sent, stays valid.
    pub code_ttl_seconds: Option<i64>,
    /// The end of this request's resend cooldown. A reset has no resend: asking again starts a
    /// new request at any time, within the per-email and per-address limits. Kept for existing
    /// clients.
    pub resend_available_at: Option<String>,
}

/// How many sessions an action ended.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedSessions {
    pub revoked_session_count: i32,
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ts: Option<&Timestamp>) -> Option<String> {
    let ts = ts?;
    let secs = u64::try_from(ts.seconds).ok()?;
    let nanos = u32::try_from(ts.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    let at = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
    Some(humantime::format_rfc3339_millis(at).to_string())
}

impl From<pb::User> for UserView {
    fn from(u: pb::User) -> Self {
        let status = match pb::UserStatus::try_from(u.status) {
            Ok(pb::UserStatus::Online) => "online",
            Ok(pb::UserStatus::Offline) => "offline",
            Ok(pb::UserStatus::Away) => "away",
            _ => "unknown",
        };
        Self {
            last_seen_at: rfc3339(u.last_seen_time.as_ref()),
            created_at: rfc3339(u.create_time.as_ref()),
            updated_at: rfc3339(u.update_time.as_ref()),
            id: u.id,
            username: u.username,
            email: u.email,
            bio: u.bio,
            avatar_url: u.avatar_url,
            status,
            friend_ids: u.friend_ids,
            second_factors: methods(&u.second_factors),
            recovery_codes_remaining: u.recovery_codes_remaining,
            passkey_count: u.passkey_count,
        }
    }
}

/// The names of auth methods as JSON spells them; unknown values are left out.
pub fn methods(raw: &[i32]) -> Vec<&'static str> {
    raw.iter()
        .filter_map(|m| pb::AuthMethod::try_from(*m).ok())
        .filter_map(|m| {
            Some(match m {
                pb::AuthMethod::Password => "password",
                pb::AuthMethod::EmailCode => "email_code",
                pb::AuthMethod::Passkey => "passkey",
                pb::AuthMethod::Totp => "totp",
                pb::AuthMethod::RecoveryCode => "recovery_code",
                pb::AuthMethod::Unspecified => return None,
            })
        })
        .collect()
}

impl From<&pb::TokenPair> for SessionTokens {
    fn from(t: &pb::TokenPair) -> Self {
        Self {
            session_id: t.session_id.clone(),
            access_token_expires_at: rfc3339(t.access_token_expire_time.as_ref()),
            refresh_token_expires_at: rfc3339(t.refresh_token_expire_time.as_ref()),
        }
    }
}

impl From<pb::Session> for SessionView {
    fn from(s: pb::Session) -> Self {
        Self {
            created_at: rfc3339(s.create_time.as_ref()),
            last_used_at: rfc3339(s.last_use_time.as_ref()),
            expires_at: rfc3339(s.expire_time.as_ref()),
            max_expires_at: rfc3339(s.max_expire_time.as_ref()),
            id: s.id,
            user_agent: s.user_agent,
            client_ip: s.client_ip,
            current: s.current,
            auth_methods: methods(&s.auth_methods),
        }
    }
}

impl From<pb::CodeDelivery> for CodeDelivery {
    fn from(d: pb::CodeDelivery) -> Self {
        Self {
            code_expires_at: rfc3339(d.code_expire_time.as_ref()),
            resend_available_at: rfc3339(d.resend_available_time.as_ref()),
            email: d.email,
            attempts_remaining: d.attempts_remaining,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        let ts = Timestamp {
            seconds: 1_700_000_000,
            nanos: 5_000_000,
        };
        assert_eq!(
            rfc3339(Some(&ts)).as_deref(),
            Some("2023-11-14T22:13:20.005Z")
        );
        assert_eq!(rfc3339(None), None);
    }
}
