//! Key names. Every name is built here, so the layout in the module docs is the whole truth.
//!
//! The part in braces is the Redis Cluster hash tag: keys that one script touches always have
//! the same tag, so they live in one slot.

use crate::domain::{Email, SessionId, UserId};
use crate::store::{CodePurpose, TicketKind};

/// Builds key names under an optional prefix (one deployment or one test per prefix).
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

/// The keys of one session, all tagged with the user id.
pub(super) struct SessionKeys {
    /// HASH: the session record with its current and previous refresh token hashes.
    pub record: String,
    /// STRING: the sealed current refresh token, for the grace window after a rotation only.
    pub successor: String,
    /// ZSET: the user's session ids scored by session expiry.
    pub index: String,
}

/// The event log keys, tagged `{events}`.
pub(super) struct EventKeys {
    /// STREAM: the events, trimmed to the retention.
    pub log: String,
    /// STRING: the id of the newest event trimmed.
    pub floor: String,
    /// ZSET: ids of outbox entries already logged, by when (kept for the retention).
    pub relayed: String,
    /// SET: users whose relay failed, for the periodic trim to relay.
    pub dirty: String,
}

/// The mail queue keys, all tagged `{mail}`.
pub(super) struct MailKeys {
    /// ZSET: id of every waiting or leased message, scored by when it is due.
    pub due: String,
    /// HASH: id → sealed message (live and dead letters).
    pub sealed: String,
    /// HASH: id → delivery attempts so far.
    pub attempts: String,
    /// HASH: id → last delivery error.
    pub errors: String,
    /// ZSET: ids of dead letters, scored by when they died.
    pub dead: String,
}

impl Keys {
    /// A prefix with a brace would change the hash tags, so it is refused.
    pub fn new(prefix: &str) -> Result<Self, String> {
        if prefix.contains(['{', '}']) {
            return Err(format!(
                "the Redis key prefix {prefix:?} must not contain braces (they are hash tags)"
            ));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    /// The prefix every key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `register:{<email>}`, `reset:{<email>}` or `login:{<email>}`: the email's pending requests.
    pub fn pending(&self, purpose: CodePurpose, email: &Email) -> String {
        format!("{}{}:{{{}}}", self.prefix, purpose.as_str(), email.as_str())
    }

    /// `register:{<email>}:budget`, `reset:{<email>}:budget` or `login:{<email>}:budget`: the
    /// email's daily budgets, in the slot of its requests.
    pub fn pending_budget(&self, purpose: CodePurpose, email: &Email) -> String {
        format!("{}:budget", self.pending(purpose, email))
    }

    /// `ticket:mfa:{<id>}`, `ticket:totp_enroll:{<user id>}`: STRING, a flow's short-lived
    /// state (see `TicketStore`), expiring with it.
    pub fn ticket(&self, kind: TicketKind, id: &str) -> String {
        format!("{}ticket:{}:{{{id}}}", self.prefix, kind.as_str())
    }

    /// `ratelimit:{<key>}`.
    pub fn rate_limit(&self, key: &str) -> String {
        format!("{}ratelimit:{{{key}}}", self.prefix)
    }

    /// `session:{<sid>}:user`: which user a session belongs to (its keys are tagged by user).
    pub fn session_owner(&self, id: &SessionId) -> String {
        format!("{}session:{{{}}}:user", self.prefix, id.0)
    }

    /// `user:{<uid>}:sessions`: the user's session index.
    pub fn session_index(&self, user: &str) -> String {
        format!("{}user:{{{user}}}:sessions", self.prefix)
    }

    /// Everything of session `id` of user `user`.
    pub fn session(&self, user: &str, id: &str) -> SessionKeys {
        let record = format!("{}user:{{{user}}}:session:{id}", self.prefix);
        SessionKeys {
            successor: format!("{record}:successor"),
            record,
            index: self.session_index(user),
        }
    }

    /// Same as [`Keys::session`] for a typed user id.
    pub fn session_of(&self, user: &UserId, id: &SessionId) -> SessionKeys {
        self.session(&user.0, &id.0)
    }

    /// `user:{<uid>}:presence`: the user's heartbeats, derived status and last-seen time.
    pub fn presence(&self, user: &str) -> String {
        format!("{}user:{{{user}}}:presence", self.prefix)
    }

    /// `{presence}:due`: users by when their last heartbeat runs out.
    pub fn presence_due(&self) -> String {
        format!("{}{{presence}}:due", self.prefix)
    }

    /// `user:{<uid>}:outbox`: events of the user's changes, waiting to be relayed to the log.
    pub fn outbox(&self, user: &str) -> String {
        format!("{}user:{{{user}}}:outbox", self.prefix)
    }

    /// The user of an outbox key, for the sweep that finds leftovers.
    pub fn outbox_user<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.prefix)?
            .strip_prefix("user:{")?
            .strip_suffix("}:outbox")
    }

    /// `{events}:log` (STREAM) and `{events}:floor` (STRING: the retention's bound, ms).
    pub fn events(&self) -> EventKeys {
        EventKeys {
            log: format!("{}{{events}}:log", self.prefix),
            floor: format!("{}{{events}}:floor", self.prefix),
            relayed: format!("{}{{events}}:relayed", self.prefix),
            dirty: format!("{}{{events}}:dirty", self.prefix),
        }
    }

    pub fn mail(&self) -> MailKeys {
        let key = |name: &str| format!("{}{{mail}}:{name}", self.prefix);
        MailKeys {
            due: key("due"),
            sealed: key("sealed"),
            attempts: key("attempts"),
            errors: key("errors"),
            dead: key("dead_at"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tags() {
        let keys = Keys::new("t:").unwrap();
        let email = Email::parse("a@example.com").unwrap();
        assert_eq!(
            keys.pending(CodePurpose::Registration, &email),
            "t:register:{a@example.com}"
        );
        assert_eq!(
            keys.pending(CodePurpose::PasswordReset, &email),
            "t:reset:{a@example.com}"
        );
        assert_eq!(
            keys.pending_budget(CodePurpose::Registration, &email),
            "t:register:{a@example.com}:budget"
        );
        assert_eq!(keys.rate_limit("login:x"), "t:ratelimit:{login:x}");
        let s = keys.session("u1", "s1");
        assert_eq!(
            (s.record.as_str(), s.successor.as_str(), s.index.as_str()),
            (
                "t:user:{u1}:session:s1",
                "t:user:{u1}:session:s1:successor",
                "t:user:{u1}:sessions"
            )
        );
        assert_eq!(keys.mail().due, "t:{mail}:due");
        assert!(Keys::new("a{b").is_err());
    }
}
