//! Every rate-limit counter the flows keep, named in one place: what it counts, and its key in
//! the store's rate-limit family (the README's Redis key layout lists the same keys). A flow
//! says which counter it means; it never spells a key.

use crate::domain::{Email, SessionId, UserId};

/// One hour in milliseconds: the window of the per-network code budgets and the sign-up notice.
pub(super) const HOUR_MS: i64 = 60 * 60 * 1000;

/// One rate-limit counter. `account` is the keyed tag of a login identifier as typed, so the
/// store holds no identifier; `network` is [`crate::domain::ClientInfo::network`].
pub(super) enum Counter<'a> {
    /// Code requests (Register, resend, reset) of one client network.
    CodeRequests { network: &'a str },
    /// Code checks (sign-up and reset), right or wrong, of one client network.
    CodeGuesses { network: &'a str },
    /// Wrong passwords for one identifier from one network: the device's own counter.
    LoginPair { account: &'a str, network: &'a str },
    /// Wrong passwords from one network, whatever the identifier.
    LoginNetwork { network: &'a str },
    /// Wrong passwords for one identifier from anywhere: it only slows down.
    LoginAccount { account: &'a str },
    /// Wrong current passwords in ChangePassword, per account and session.
    PasswordChange {
        user: &'a UserId,
        session: &'a SessionId,
    },
    /// Notices to the owner of a taken email that someone tried to sign up with it.
    SignupNotice { email: &'a Email },
    /// SetPresence calls of one session.
    PresenceSet { session: &'a SessionId },
    /// UpdateProfile calls of one user.
    ProfileUpdate { user: &'a UserId },
    /// Writes of a user's presence to the user record.
    PresenceWrite { user: &'a UserId },
    /// Wrong second factors tried on one sign-in challenge.
    MfaChallenge { challenge: &'a str },
    /// Wrong second factors (TOTP or recovery codes) of one user, anywhere.
    MfaUser { user: &'a UserId },
    /// Wrong second factors given as the proof of a change (DisableTotp, new recovery codes,
    /// an enrollment's first code) from one session.
    MfaSession {
        user: &'a UserId,
        session: &'a SessionId,
    },
    /// Password resets that gave a user back their day's second-factor budget.
    MfaBudgetReset { user: &'a UserId },
    /// Passwordless sign-ins started (StartPasskeyLogin) from one client network.
    PasskeyLogins { network: &'a str },
}

impl Counter<'_> {
    pub(super) fn key(&self) -> String {
        match self {
            Self::CodeRequests { network } => format!("codes:net:{network}"),
            Self::CodeGuesses { network } => format!("codes:guess:net:{network}"),
            Self::LoginPair { account, network } => format!("login:pair:{account}:{network}"),
            Self::LoginNetwork { network } => format!("login:net:{network}"),
            Self::LoginAccount { account } => format!("login:acct:{account}"),
            Self::PasswordChange { user, session } => format!("pwchange:{}:{}", user.0, session.0),
            Self::SignupNotice { email } => format!("notice:signup:{}", email.as_str()),
            Self::PresenceSet { session } => format!("presence:set:{}", session.0),
            Self::ProfileUpdate { user } => format!("profile:{}", user.0),
            Self::PresenceWrite { user } => format!("presence:write:{}", user.0),
            Self::MfaChallenge { challenge } => format!("mfa:challenge:{challenge}"),
            Self::MfaUser { user } => format!("mfa:user:{}", user.0),
            Self::MfaSession { user, session } => format!("mfa:session:{}:{}", user.0, session.0),
            Self::MfaBudgetReset { user } => format!("mfa:budget-reset:{}", user.0),
            Self::PasskeyLogins { network } => format!("passkey:login:net:{network}"),
        }
    }
}

impl super::AuthCore {
    /// Counts one event of `counter` in a window of `window_ms`; past `limit` the error
    /// `refused(retry_at)` (nothing is counted then).
    pub(super) async fn limit(
        &self,
        counter: Counter<'_>,
        limit: u32,
        window_ms: i64,
        refused: impl FnOnce(crate::domain::UnixMs) -> super::FlowError,
    ) -> Result<(), super::FlowError> {
        let now = crate::domain::now_ms();
        match self
            .stores
            .limits
            .hit(&counter.key(), limit, window_ms, now)
            .await?
        {
            Ok(_) => Ok(()),
            Err(retry_at) => Err(refused(retry_at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys operators see in Redis and the README documents.
    #[test]
    fn keys_as_documented() {
        let email = Email::parse("Ana@Example.com").unwrap();
        let (user, session) = (UserId("u1".into()), SessionId("s1".into()));
        let keys = [
            Counter::CodeRequests {
                network: "192.0.2.7",
            },
            Counter::CodeGuesses {
                network: "2001:db8:0:0::/64",
            },
            Counter::LoginPair {
                account: "abc",
                network: "192.0.2.7",
            },
            Counter::LoginNetwork {
                network: "192.0.2.7",
            },
            Counter::LoginAccount { account: "abc" },
            Counter::PasswordChange {
                user: &user,
                session: &session,
            },
            Counter::SignupNotice { email: &email },
            Counter::PresenceSet { session: &session },
            Counter::ProfileUpdate { user: &user },
            Counter::PresenceWrite { user: &user },
            Counter::MfaChallenge { challenge: "c1" },
            Counter::MfaUser { user: &user },
            Counter::MfaSession {
                user: &user,
                session: &session,
            },
            Counter::MfaBudgetReset { user: &user },
            Counter::PasskeyLogins {
                network: "192.0.2.7",
            },
        ]
        .map(|c| c.key());
        assert_eq!(
            keys,
            [
                "codes:net:192.0.2.7",
                "codes:guess:net:2001:db8:0:0::/64",
                "login:pair:abc:192.0.2.7",
                "login:net:192.0.2.7",
                "login:acct:abc",
                "pwchange:u1:s1",
                "notice:signup:ana@example.com",
                "presence:set:s1",
                "profile:u1",
                "presence:write:u1",
                "mfa:challenge:c1",
                "mfa:user:u1",
                "mfa:session:u1:s1",
                "mfa:budget-reset:u1",
                "passkey:login:net:192.0.2.7",
            ]
        );
    }
}
