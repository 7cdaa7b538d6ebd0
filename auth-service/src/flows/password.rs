//! Password reset by emailed code (bound, like sign-up, to a random id only the requester
//! holds) and password change.

use super::codes::{CodeRequested, parse_id};
use super::security::Entry;
use super::{AuthCore, Caller, ClientInfo, FlowError};
use crate::domain::{
    AllParsed, Code, CodePurpose, Email, Password, RevokeReason, SecurityKind, Violations, now_ms,
};
use crate::store::PendingPayload;

impl AuthCore {
    /// RequestPasswordReset: answers the same for known and unknown emails (same limits, same
    /// response, a request id either way); only a known account gets mail. For an unknown
    /// email the request is a decoy that no code can finish.
    #[tracing::instrument(skip_all, fields(email = tracing::field::Empty))]
    pub async fn request_password_reset(
        &self,
        email: &str,
        client: &ClientInfo,
    ) -> Result<CodeRequested, FlowError> {
        self.request_account_code(CodePurpose::PasswordReset, email, client)
            .await
    }

    /// ResetPassword: the code of the caller's request is checked (counted against the
    /// network's hourly budget), then the new password hashed and set, every session ended and
    /// the email's resets finished. The request is kept until all that is done, so a failure on
    /// the way loses nothing: the same code works again.
    #[tracing::instrument(skip_all, fields(email = tracing::field::Empty))]
    pub async fn reset_password(
        &self,
        email: &str,
        reset_id: &str,
        code: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<u32, FlowError> {
        let mut v = Violations::default();
        let email = v.check("email", Email::parse(email));
        let code = v.check("code", Code::parse(code));
        let password = v.check("new_password", Password::parse(new_password));
        let id = parse_id(&mut v, "reset_id", reset_id);
        let (email, code, password, id) = v.finish((email, code, password, id).all())?;
        let id = id.ok_or(FlowError::ResetIdRequired)?;
        let payload = self
            .check_code(CodePurpose::PasswordReset, &email, &id, &code, client)
            .await?;
        let PendingPayload::PasswordReset { user_id } = payload else {
            return Err(FlowError::ResetNotFound);
        };
        // Rated once the code matched (the rating costs CPU); the request stays for a retry.
        let user = self
            .stores
            .users
            .find_by_id(&user_id)
            .await?
            // The code went to the address the account had then: after an email change it
            // resets nothing.
            .filter(|u| u.email == email.as_str())
            .ok_or(FlowError::ResetNotFound)?;
        self.policy
            .password
            .check(&password, user.username.as_str(), user.email.as_str())
            .map_err(|e| FlowError::invalid("new_password", e))?;
        // Hashed only once the code matched: a guess costs no argon2 (an overloaded hasher
        // costs nothing either, as the verified code keeps matching for a retry).
        let new_hash = self.hasher.hash(&password).await?;
        if !self
            .stores
            .users
            .set_password(&user_id, &new_hash, now_ms())
            .await?
        {
            return Err(FlowError::ResetNotFound);
        }
        // Sessions end before the request does: if ending them fails, a retry with the same
        // code finds the request and ends them.
        let ended = self
            .stores
            .sessions
            .revoke_all(&user_id, None, RevokeReason::PasswordReset, now_ms())
            .await?;
        self.stores
            .pending
            .finish_pending(CodePurpose::PasswordReset, &email)
            .await?;
        // The owner proved the mailbox, and a password someone else knew stops working: the
        // second-factor guesses that person spent no longer count against the owner (once a
        // day; see flows/mfa.rs).
        self.give_back_mfa_budget(&user_id).await;
        tracing::info!(user_id = %user_id.0, sessions_ended = ended, "password reset");
        self.audit(
            &user_id,
            Entry::new(SecurityKind::PasswordReset).from(client),
        )
        .await;
        Ok(ended)
    }

    /// ChangePassword: needs the current password; ends the caller's other sessions. Wrong
    /// guesses are limited per account and session, so a stolen access token cannot be used to
    /// find the password.
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
        let (current_pw, new_pw) = v.finish((current_pw, new_pw).all())?;
        self.hasher.check_room()?;
        let user = self.user(&caller.user_id).await?;
        let guard = self.password_guard_for_session(&user.id, &caller.session_id);
        guard.admit(self).await?;
        let verified = self
            .hasher
            .verify(&current_pw, Some(&user.password_hash))
            .await?;
        guard.record(self, verified).await?;
        if !verified {
            return Err(FlowError::WrongPassword);
        }
        self.policy
            .password
            .check(&new_pw, user.username.as_str(), user.email.as_str())
            .map_err(|e| FlowError::invalid("new_password", e))?;
        let new_hash = self.hasher.hash(&new_pw).await?;
        self.stores
            .users
            .set_password(&user.id, &new_hash, now_ms())
            .await?;
        let ended = self
            .stores
            .sessions
            .revoke_all(
                &user.id,
                Some(&caller.session_id),
                RevokeReason::PasswordChanged,
                now_ms(),
            )
            .await?;
        tracing::info!(sessions_ended = ended, "password changed");
        let entry = Entry::new(SecurityKind::PasswordChanged).session(&caller.session_id);
        self.audit(&user.id, entry).await;
        Ok(ended)
    }
}
