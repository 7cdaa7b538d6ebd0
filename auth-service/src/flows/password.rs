use super::{AuthCore, Caller, FlowError, registration::verify_error};
use crate::domain::{Code, Email, Password, Violations, now_ms};
use crate::store::{CodeIssued, CodePurpose, PendingPayload};

impl AuthCore {
    /// RequestPasswordReset: answers the same for known and unknown emails (same limits,
    /// same response); only a known account gets mail.
    #[tracing::instrument(skip_all, fields(email = %email.trim()))]
    pub async fn request_password_reset(&self, email: &str) -> Result<CodeIssued, FlowError> {
        let email = Email::parse(email).map_err(|e| FlowError::invalid("email", e))?;
        let user = self.stores.users.find_by_email(&email).await?;
        let payload = PendingPayload::PasswordReset {
            user_id: user.as_ref().map(|u| u.id.clone()),
        };
        let code = Code::generate();
        let issued = self
            .issue(CodePurpose::PasswordReset, &email, Some(&payload), &code)
            .await?;
        if let Some(user) = user {
            let mail = self.templates.password_reset_code(
                email.as_str(),
                Some(&user.username),
                code.expose(),
                self.policy.code_ttl,
            );
            self.outbox.enqueue(&mail).await?;
        }
        Ok(issued)
    }

    /// ResetPassword: the new password is hashed first (so an overloaded hasher costs the
    /// user no code attempt), then the code is checked and consumed, then every session ends.
    #[tracing::instrument(skip_all, fields(email = %email.trim()))]
    pub async fn reset_password(
        &self,
        email: &str,
        code: &str,
        new_password: &str,
    ) -> Result<u32, FlowError> {
        let mut v = Violations::default();
        let email = v.check("email", Email::parse(email));
        let code = v.check("code", Code::parse(code));
        let password = v.check("new_password", Password::parse(new_password));
        v.finish()?;
        let (Some(email), Some(code), Some(password)) = (email, code, password) else {
            return Err(FlowError::Internal("parsed fields missing".into()));
        };
        let new_hash = self.hasher.hash(&password).await?;
        let hash = self.codes.hash(CodePurpose::PasswordReset, &email, &code);
        let payload = self
            .stores
            .pending
            .verify_code(
                CodePurpose::PasswordReset,
                &email,
                &hash,
                now_ms(),
                &self.policy.code,
            )
            .await
            .map_err(|e| verify_error(e, FlowError::ResetNotFound))?;
        let PendingPayload::PasswordReset {
            user_id: Some(user_id),
        } = payload
        else {
            return Err(FlowError::ResetNotFound);
        };
        if !self
            .stores
            .users
            .set_password(&user_id, &new_hash, now_ms())
            .await?
        {
            return Err(FlowError::ResetNotFound);
        }
        let ended = self.stores.sessions.revoke_all(&user_id, None).await?;
        tracing::info!(user_id = %user_id.0, sessions_ended = ended, "password reset");
        Ok(ended)
    }

    /// ChangePassword: needs the current password; ends the caller's other sessions.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id.0))]
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: &str,
        new: &str,
    ) -> Result<u32, FlowError> {
        let mut v = Violations::default();
        let current_pw = v.check("current_password", Password::parse_existing(current));
        let new_pw = v.check(
            "new_password",
            Password::parse(new).and_then(|p| {
                if p.expose() == current {
                    Err("new_password must differ from current_password".into())
                } else {
                    Ok(p)
                }
            }),
        );
        v.finish()?;
        let (Some(current_pw), Some(new_pw)) = (current_pw, new_pw) else {
            return Err(FlowError::Internal("parsed fields missing".into()));
        };
        let user = self.user(&caller.user_id).await?;
        // Guesses of the current password share the account's login budget, so a stolen
        // access token cannot be used to find the password.
        let account_key = format!("login:user:{}", user.id.0);
        self.count_attempt(&account_key).await?;
        if !self
            .hasher
            .verify(&current_pw, Some(&user.password_hash))
            .await?
        {
            return Err(FlowError::WrongPassword);
        }
        self.stores.limits.clear(&account_key).await?;
        let new_hash = self.hasher.hash(&new_pw).await?;
        self.stores
            .users
            .set_password(&user.id, &new_hash, now_ms())
            .await?;
        let ended = self
            .stores
            .sessions
            .revoke_all(&user.id, Some(&caller.session_id))
            .await?;
        tracing::info!(sessions_ended = ended, "password changed");
        Ok(ended)
    }
}
