//! Domain values to proto messages.

use baatcheet_auth_api::v1 as pb;
use prost_types::Timestamp;

use crate::crypto::{AccessClaims, Jwk};
use crate::domain::{UnixMs, User, UserStatus};
use crate::flows::{CodeDelivery, SessionView, TokenPair};

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
        status: match u.status {
            UserStatus::Online => pb::UserStatus::Online,
            UserStatus::Offline => pb::UserStatus::Offline,
        } as i32,
        last_seen_time: u.last_seen.and_then(timestamp),
        friend_ids: u.friend_ids,
        create_time: timestamp(u.created_at),
        update_time: timestamp(u.updated_at),
    }
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
        user_agent: s.record.user_agent,
        client_ip: s.record.client_ip,
        current: s.current,
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
