//! Domain values to proto messages.

use baatcheet_auth_api::v1 as pb;
use prost_types::Timestamp;

use crate::crypto::{AccessClaims, Jwk};
use crate::domain::{
    AuthMethod, Event, EventKind, FactorSummary, RevokeReason, UnixMs, User, UserStatus,
};
use crate::flows::{ChallengeView, CodeDelivery, SessionView, TokenPair};
use crate::store::PresenceView;

pub fn timestamp(ms: UnixMs) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

pub fn user(u: User) -> pb::User {
    pb::User {
        id: u.id.0,
        username: u.username,
        email: u.email,
        bio: u.profile.bio,
        avatar_url: u.profile.avatar_url,
        status: status(u.status) as i32,
        last_seen_time: u.last_seen.and_then(timestamp),
        friend_ids: u.friend_ids,
        create_time: timestamp(u.created_at),
        update_time: timestamp(u.updated_at),
        second_factors: Vec::new(),
        recovery_codes_remaining: 0,
        passkey_count: 0,
    }
}

/// The user as they see themselves, with their second factors.
pub fn own_user(u: User, factors: FactorSummary) -> pb::User {
    let mut out = user(u);
    if factors.totp {
        out.second_factors.push(pb::AuthMethod::Totp as i32);
    }
    out.recovery_codes_remaining = factors.recovery_codes as i32;
    out.passkey_count = factors.passkeys as i32;
    out
}

pub fn passkey(p: crate::flows::PasskeyView) -> pb::Passkey {
    pb::Passkey {
        id: p.id,
        name: p.name,
        create_time: timestamp(p.created_at),
        last_used_time: p.last_used_at.and_then(timestamp),
        backed_up: p.backed_up,
    }
}

pub fn auth_method(m: AuthMethod) -> pb::AuthMethod {
    match m {
        AuthMethod::Password => pb::AuthMethod::Password,
        AuthMethod::EmailCode => pb::AuthMethod::EmailCode,
        AuthMethod::Passkey => pb::AuthMethod::Passkey,
        AuthMethod::Totp => pb::AuthMethod::Totp,
        AuthMethod::RecoveryCode => pb::AuthMethod::RecoveryCode,
    }
}

pub fn challenge(c: ChallengeView) -> pb::MfaChallenge {
    pb::MfaChallenge {
        challenge_id: c.id.as_str().to_owned(),
        factors: c
            .factors
            .into_iter()
            .map(|m| auth_method(m) as i32)
            .collect(),
        expire_time: timestamp(c.expires_at),
        passkey_request: c
            .passkey_request
            .and_then(baatcheet_auth_api::json::to_struct),
    }
}

pub fn status(s: UserStatus) -> pb::UserStatus {
    match s {
        UserStatus::Online => pb::UserStatus::Online,
        UserStatus::Away => pb::UserStatus::Away,
        UserStatus::Offline => pb::UserStatus::Offline,
    }
}

/// A requested status; `None` for unspecified (and unknown values, which the flows refuse
/// as offline would be).
pub fn status_from(raw: i32) -> Option<UserStatus> {
    match pb::UserStatus::try_from(raw) {
        Ok(pb::UserStatus::Online) => Some(UserStatus::Online),
        Ok(pb::UserStatus::Away) => Some(UserStatus::Away),
        Ok(pb::UserStatus::Offline) => Some(UserStatus::Offline),
        Ok(pb::UserStatus::Unspecified) => None,
        Err(_) => Some(UserStatus::Offline),
    }
}

pub fn presence(p: PresenceView) -> pb::Presence {
    pb::Presence {
        user_id: p.user_id.0,
        status: status(p.status) as i32,
        last_seen_time: p.last_seen.and_then(timestamp),
    }
}

/// The view of a user anyone else gets: no email, no credentials.
/// Unix milliseconds of a timestamp (saturating far outside any real date).
pub fn millis(t: Timestamp) -> UnixMs {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos.clamp(0, 999_999_999) / 1_000_000))
}

/// A security-log entry and the next page's token.
pub fn security_page(page: crate::flows::SecurityPage) -> (Vec<pb::SecurityEvent>, String) {
    let events = page
        .events
        .into_iter()
        .map(|e| pb::SecurityEvent {
            id: e.id,
            kind: e.kind.as_str().to_owned(),
            time: timestamp(e.at),
            detail: e.detail,
            client_ip: e.ip,
            user_agent: e.user_agent,
            session_id: e.session_id.map(|s| s.0).unwrap_or_default(),
        })
        .collect();
    (events, page.next_page_token.unwrap_or_default())
}

/// An account as operators see it; a suspension only while it holds.
pub fn account(u: User) -> pb::Account {
    let suspension = u
        .disabled_at(crate::domain::now_ms())
        .map(|d| pb::Suspension {
            reason: d.reason.clone(),
            disable_time: timestamp(d.at),
            until_time: d.until.and_then(timestamp),
        });
    pb::Account {
        id: u.id.0,
        username: u.username,
        email: u.email,
        create_time: timestamp(u.created_at),
        suspension,
    }
}

pub fn public_user(u: User) -> pb::PublicUser {
    pb::PublicUser {
        id: u.id.0,
        username: u.username,
        bio: u.profile.bio,
        avatar_url: u.profile.avatar_url,
        status: status(u.status) as i32,
        last_seen_time: u.last_seen.and_then(timestamp),
        friend_ids: u.friend_ids,
        create_time: timestamp(u.created_at),
    }
}

pub fn event(e: Event) -> pb::Event {
    let mut out = pb::Event {
        id: e.id,
        time: timestamp(e.at),
        user_id: e.user_id.0,
        ..Default::default()
    };
    let kind = match e.kind {
        EventKind::SessionCreated { session_id } => {
            out.session_id = session_id.0;
            pb::EventType::SessionCreated
        }
        EventKind::SessionRevoked { session_id, reason } => {
            out.session_id = session_id.0;
            out.reason = match reason {
                RevokeReason::Logout => pb::SessionRevokeReason::Logout,
                RevokeReason::LogoutAll => pb::SessionRevokeReason::LogoutAll,
                RevokeReason::Revoked => pb::SessionRevokeReason::Revoked,
                RevokeReason::PasswordReset => pb::SessionRevokeReason::PasswordReset,
                RevokeReason::PasswordChanged => pb::SessionRevokeReason::PasswordChanged,
                RevokeReason::ReuseDetected => pb::SessionRevokeReason::ReuseDetected,
                RevokeReason::Evicted => pb::SessionRevokeReason::Evicted,
                RevokeReason::FactorChanged => pb::SessionRevokeReason::FactorChanged,
                RevokeReason::Operator => pb::SessionRevokeReason::Operator,
                RevokeReason::Expired => pb::SessionRevokeReason::Expired,
                RevokeReason::AccountDeleted => pb::SessionRevokeReason::AccountDeleted,
            } as i32;
            pb::EventType::SessionRevoked
        }
        EventKind::UserCreated => pb::EventType::UserCreated,
        EventKind::UserUpdated { fields } => {
            out.changed_fields = fields;
            pb::EventType::UserUpdated
        }
        EventKind::PasswordChanged => pb::EventType::UserPasswordChanged,
        EventKind::PresenceChanged { status: s } => {
            out.status = status(s) as i32;
            pb::EventType::PresenceChanged
        }
        EventKind::FactorEnabled { factor } => {
            out.factor = auth_method(factor) as i32;
            pb::EventType::FactorEnabled
        }
        EventKind::FactorDisabled { factor } => {
            out.factor = auth_method(factor) as i32;
            pb::EventType::FactorDisabled
        }
        EventKind::MfaFailed { factor } => {
            out.factor = auth_method(factor) as i32;
            pb::EventType::MfaFailed
        }
        EventKind::UserDisabled => pb::EventType::UserDisabled,
        EventKind::UserEnabled => pb::EventType::UserEnabled,
        EventKind::UserDeleted => pb::EventType::UserDeleted,
    };
    out.r#type = kind as i32;
    out
}

/// The stored type name of an API event type; `None` for unspecified or unknown values.
pub fn event_type_name(raw: i32) -> Option<&'static str> {
    let index = match pb::EventType::try_from(raw).ok()? {
        pb::EventType::Unspecified => return None,
        pb::EventType::SessionCreated => 0,
        pb::EventType::SessionRevoked => 1,
        pb::EventType::UserCreated => 2,
        pb::EventType::UserUpdated => 3,
        pb::EventType::UserPasswordChanged => 4,
        pb::EventType::PresenceChanged => 5,
        pb::EventType::FactorEnabled => 6,
        pb::EventType::FactorDisabled => 7,
        pb::EventType::MfaFailed => 8,
        pb::EventType::UserDisabled => 9,
        pb::EventType::UserEnabled => 10,
        pb::EventType::UserDeleted => 11,
    };
    Some(crate::domain::EVENT_TYPES[index])
}

pub fn tokens(t: TokenPair) -> pb::TokenPair {
    pb::TokenPair {
        access_token: t.access_token,
        access_token_expire_time: timestamp(t.access_expires_at),
        refresh_token: t.refresh_token,
        refresh_token_expire_time: timestamp(t.refresh_expires_at),
        token_type: "Bearer".to_owned(),
        session_id: t.session_id.0,
    }
}

pub fn delivery(d: CodeDelivery) -> pb::CodeDelivery {
    pb::CodeDelivery {
        email: d.email,
        code_expire_time: timestamp(d.code_expires_at),
        resend_available_time: timestamp(d.resend_at),
        attempts_remaining: d.attempts_remaining as i32,
    }
}

pub fn session(s: SessionView) -> pb::Session {
    pb::Session {
        id: s.record.id.0,
        create_time: timestamp(s.record.created_at),
        last_use_time: timestamp(s.record.last_used_at),
        expire_time: timestamp(s.record.expires_at),
        max_expire_time: timestamp(s.max_expires_at),
        user_agent: s.record.user_agent,
        client_ip: s.record.client_ip,
        current: s.current,
        auth_methods: s
            .record
            .sign_in
            .map(|m| m.methods())
            .unwrap_or_default()
            .into_iter()
            .map(|m| auth_method(m) as i32)
            .collect(),
    }
}

pub fn claims(c: AccessClaims) -> pb::AccessTokenClaims {
    pb::AccessTokenClaims {
        iss: c.iss,
        aud: c.aud,
        sub: c.sub,
        sid: c.sid,
        iat: timestamp(c.iat * 1000),
        exp: timestamp(c.exp * 1000),
        jti: c.jti,
    }
}

pub fn jwk(k: Jwk) -> pb::Jwk {
    pb::Jwk {
        kty: k.kty.to_owned(),
        crv: k.crv.to_owned(),
        x: k.x,
        kid: k.kid,
        alg: k.alg.to_owned(),
        r#use: k.use_.to_owned(),
    }
}
