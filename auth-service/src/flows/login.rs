use super::{AuthCore, ClientInfo, FlowError, SignedIn};
use crate::domain::{Email, Password, UserStatus, Username, Violations, now_ms};

impl AuthCore {
    /// Login by email or username. An unknown account and a wrong password give the same
    /// error after the same work (a dummy hash is verified), so neither reveals which it was.
    /// Attempts per identifier are limited; a success clears the count.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        identifier: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<SignedIn, FlowError> {
        let mut v = Violations::default();
        let identifier = identifier.trim();
        let identifier = v.check(
            "identifier",
            match identifier.chars().count() {
                0 => Err("identifier is required".to_owned()),
                n if n > 254 => Err("identifier must be at most 254 characters".to_owned()),
                _ => Ok(identifier.to_lowercase()),
            },
        );
        let password = v.check("password", Password::parse_existing(password));
        v.finish()?;
        let (Some(identifier), Some(password)) = (identifier, password) else {
            return Err(FlowError::Internal("parsed fields missing".into()));
        };

        let limit_key = format!("login:{identifier}");
        self.count_attempt(&limit_key).await?;

        let user = if identifier.contains('@') {
            match Email::parse(&identifier) {
                Ok(email) => self.stores.users.find_by_email(&email).await?,
                Err(_) => None,
            }
        } else {
            match Username::parse(&identifier) {
                Ok(name) => self.stores.users.find_by_username(&name).await?,
                Err(_) => None,
            }
        };
        // One budget per account too: an email and a username of one account share it.
        let account_key = user.as_ref().map(|u| format!("login:user:{}", u.id.0));
        if let Some(key) = &account_key {
            self.count_attempt(key).await?;
        }
        let verified = self
            .hasher
            .verify(&password, user.as_ref().map(|u| &u.password_hash))
            .await?;
        let Some(mut user) = user.filter(|_| verified) else {
            tracing::info!("login refused");
            return Err(FlowError::InvalidCredentials);
        };
        self.stores.limits.clear(&limit_key).await?;
        if let Some(key) = &account_key {
            self.stores.limits.clear(key).await?;
        }
        let tokens = self.start_session(&user.id, client).await?;
        // A password reset or change that landed while the old password was being checked
        // ends every session, but not one created after it: look again, and undo ours.
        let current = self.stores.users.find_by_id(&user.id).await?;
        if current.is_none_or(|u| u.password_hash != user.password_hash) {
            self.stores
                .sessions
                .revoke_session(&tokens.session_id, &user.id)
                .await?;
            tracing::info!(user_id = %user.id.0, "login raced a password change; refused");
            return Err(FlowError::InvalidCredentials);
        }
        let now = now_ms();
        self.stores
            .users
            .set_presence(&user.id, UserStatus::Online, now)
            .await?;
        user.status = UserStatus::Online;
        user.last_seen = Some(now);
        tracing::info!(user_id = %user.id.0, session_id = %tokens.session_id.0, "signed in");
        Ok(SignedIn { user, tokens })
    }

    /// Counts one attempt against `key` under the login limit.
    pub(super) async fn count_attempt(&self, key: &str) -> Result<(), FlowError> {
        let policy = &self.policy;
        match self
            .stores
            .limits
            .hit(
                key,
                policy.login_max_attempts,
                policy.login_window_ms,
                now_ms(),
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(retry_at) => Err(FlowError::LoginRateLimited { retry_at }),
        }
    }
}
