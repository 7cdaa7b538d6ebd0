//! Login, and the limits around every password check (login and ChangePassword).
//!
//! Limits exist to stop guessing, so they must not become a way to lock the owner out:
//! - only wrong passwords count, after the check: a right password is never refused because
//!   other attempts are in flight;
//! - the hard limits are per (identifier, client network) and per client network, so
//!   guesses from elsewhere never refuse the owner's own device;
//! - across all networks an identifier only slows down: past `slowdown_after` wrong passwords
//!   every attempt waits a little longer (up to `slowdown_max`), the owner's included, but
//!   nobody is refused;
//! - counters are keyed by the identifier as typed (its keyed tag, so the store holds no
//!   address), never by the account it names: keying by account would let anyone tell which
//!   email belongs to a public username by watching whose limit the other one spends. An
//!   account's email and username therefore have a budget each;
//! - a check that raced past a hard limit (many guesses at once) is answered
//!   LOGIN_RATE_LIMITED whatever its result, so a burst learns no more than the limit allows.

use super::guard::{Guard, Limit};
use super::limits::Counter;
use super::security::Entry;
use super::{AuthCore, ClientInfo, FlowError, SignInOutcome, SignedIn};
use crate::domain::{
    AllParsed, AuthMethod, LoginIdentifier, Lookup, Password, RevokeReason, SecurityKind,
    SessionId, SignIn, User, UserId, Violations, now_ms,
};

impl AuthCore {
    /// Login by email or username. An unknown account and a wrong password give the same
    /// error after the same work (a dummy hash is verified), so neither reveals which it was.
    /// A user with a second factor gets a challenge instead of a session.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        identifier: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<SignInOutcome, FlowError> {
        let mut v = Violations::default();
        let identifier = v.check("identifier", LoginIdentifier::parse(identifier));
        let password = v.check("password", Password::parse_existing(password));
        let (identifier, password) = v.finish((identifier, password).all())?;
        // Under overload, refused before any store work: a refusal must cost next to nothing.
        self.hasher.check_room()?;

        let user = self.find_by_identifier(&identifier).await?;
        let guard = self.password_guard_for_login(&identifier, client);
        guard.admit(self).await?;
        let verified = self
            .hasher
            .verify(&password, user.as_ref().map(|u| &u.password_hash))
            .await?;
        if let (Some(user), false) = (&user, verified) {
            // Not awaited: the answer must take as long for an account as for no account.
            let entry = Entry::new(SecurityKind::SignInFailed)
                .detail("password")
                .from(client);
            self.audit_failure(&user.id, entry);
        }
        let user = user.filter(|_| verified);
        guard.record(self, user.is_some()).await?;
        let Some(user) = user else {
            tracing::info!("login refused");
            return Err(FlowError::InvalidCredentials);
        };
        self.after_first_factor(user, AuthMethod::Password, client)
            .await
    }

    /// Starts a session for `user` whose factors were all checked. A password reset or change
    /// that landed while they were being checked ends every session, but not one created after
    /// it: look again, and undo ours.
    pub(super) async fn sign_in(
        &self,
        mut user: User,
        sign_in: SignIn,
        client: &ClientInfo,
    ) -> Result<SignedIn, FlowError> {
        if let Some(disabled) = user.disabled_at(now_ms()) {
            let until = disabled.until;
            self.audit_failure(
                &user.id,
                Entry::new(SecurityKind::SignInRefused).from(client),
            );
            return Err(FlowError::UserDisabled { until });
        }
        let tokens = self.start_session(&user.id, sign_in, client).await?;
        let current = self.stores.users.find_by_id(&user.id).await?;
        // A suspension that landed meanwhile ended every session, but not one created after
        // it: the same look undoes ours.
        if let Some(disabled) = current.as_ref().and_then(|u| u.disabled_at(now_ms())) {
            let until = disabled.until;
            self.stores
                .sessions
                .revoke_session(
                    &tokens.session_id,
                    &user.id,
                    RevokeReason::Operator,
                    now_ms(),
                )
                .await?;
            tracing::info!(user_id = %user.id.0, "sign-in raced a suspension; refused");
            return Err(FlowError::UserDisabled { until });
        }
        if current
            .as_ref()
            .is_none_or(|u| u.password_hash != user.password_hash)
        {
            let reason = match current {
                None => RevokeReason::AccountDeleted,
                Some(_) => RevokeReason::PasswordChanged,
            };
            self.stores
                .sessions
                .revoke_session(&tokens.session_id, &user.id, reason, now_ms())
                .await?;
            tracing::info!(user_id = %user.id.0, "sign-in raced a password change; refused");
            return Err(FlowError::InvalidCredentials);
        }
        let now = now_ms();
        // Signing in is the session's first heartbeat.
        let presence = self.first_beat(&user.id, &tokens.session_id).await;
        user.status = presence.status;
        user.last_seen = presence.last_seen.or(Some(now));
        tracing::info!(user_id = %user.id.0, session_id = %tokens.session_id.0, sign_in = %sign_in.to_stored(), "signed in");
        let entry = Entry::new(SecurityKind::SignIn)
            .detail(sign_in.to_stored())
            .from(client)
            .session(&tokens.session_id);
        self.audit(&user.id, entry).await;
        Ok(SignedIn { user, tokens })
    }

    async fn find_by_identifier(
        &self,
        identifier: &LoginIdentifier,
    ) -> Result<Option<User>, FlowError> {
        Ok(match identifier.lookup() {
            Lookup::Email(email) => self.stores.users.find_by_email(&email).await?,
            Lookup::Username(name) => self.stores.users.find_by_username(&name).await?,
            Lookup::Nobody => None,
        })
    }

    /// The counters of a login: per (identifier, network), per network, and the identifier's
    /// slowdown; the same for a known and an unknown identifier.
    fn password_guard_for_login(&self, identifier: &LoginIdentifier, client: &ClientInfo) -> Guard {
        let account = self.email_tags.tag_text(identifier.as_str());
        let network = client.network();
        let window_ms = self.policy.login.window_ms;
        Guard {
            hard: vec![
                Limit {
                    key: Counter::LoginPair {
                        account: &account,
                        network: &network,
                    }
                    .key(),
                    max: self.policy.login.max_attempts,
                    window_ms,
                },
                Limit {
                    key: Counter::LoginNetwork { network: &network }.key(),
                    max: self.policy.login.max_failures_per_ip,
                    window_ms,
                },
            ],
            slowdown: Some(Counter::LoginAccount { account: &account }.key()),
            refused: |retry_at| FlowError::LoginRateLimited { retry_at },
            right_answer_clears: true,
        }
    }

    /// The counters of ChangePassword: per (account, session).
    pub(super) fn password_guard_for_session(&self, user: &UserId, session: &SessionId) -> Guard {
        Guard {
            hard: vec![Limit {
                key: Counter::PasswordChange { user, session }.key(),
                max: self.policy.login.max_attempts,
                window_ms: self.policy.login.window_ms,
            }],
            slowdown: None,
            refused: |retry_at| FlowError::LoginRateLimited { retry_at },
            right_answer_clears: true,
        }
    }
}
