//! Account deletion: DeleteAccount (the user, proving it again) and DeleteUser (an operator).
//!
//! The order never leaves a half-deleted user visible, and a retry finishes the job:
//! 1. every session ends (session.revoked, reason `account_deleted`), and the address's
//!    pending sign-ups (one verified later would create the account again): if the process
//!    stops here the account is whole, only signed out, and its owner can sign in and delete
//!    again;
//! 2. the user goes with everything kept beside it (factors, passkeys, presence) in one atomic
//!    step (user.deleted); the email and username are free from then on;
//! 3. the sessions end again: a sign-in that had read the user before step 2 and started its
//!    session after step 1 ends here (and `sign_in`, looking at the user again after starting
//!    its session, refuses it too);
//! 4. the address's pending resets and sign-ins by code end (they name a user that is gone),
//!    and a goodbye notice is mailed.

use super::security::Entry;
use super::{AuthCore, Caller, FlowError, ProofInput};
use crate::domain::{CodePurpose, Email, RevokeReason, SecurityKind, User, now_ms};

impl AuthCore {
    /// DeleteAccount: the caller proves it again (the password, or a current TOTP or recovery
    /// code), then the account is deleted.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id.0))]
    pub async fn delete_account(
        &self,
        caller: &Caller,
        proof: ProofInput<'_>,
    ) -> Result<(), FlowError> {
        let user = self.prove_any(caller, proof).await?;
        self.erase(&user, false).await
    }

    /// DeleteUser: an operator deletes an account (`reason` is logged, 1-200 characters).
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn delete_user(&self, user_id: &str, reason: &str) -> Result<(), FlowError> {
        let mut v = crate::domain::Violations::default();
        let id = v.check("user_id", super::fields::user_id_field(user_id));
        let reason = v.check("reason", super::fields::reason_field(reason));
        let (id, reason) = v.finish(crate::domain::AllParsed::all((id, reason)))?;
        let user = self
            .stores
            .users
            .find_by_id(&id)
            .await?
            .ok_or(FlowError::UserNotFound)?;
        tracing::warn!(user_id = %id.0, %reason, "account deleted by an operator");
        self.erase(&user, true).await
    }

    async fn erase(&self, user: &User, by_operator: bool) -> Result<(), FlowError> {
        let end_sessions = || {
            self.stores
                .sessions
                .revoke_all(&user.id, None, RevokeReason::AccountDeleted, now_ms())
        };
        let mut ended = end_sessions().await?;
        // A sign-up of the address still pending could otherwise create the account again.
        if let Ok(email) = Email::parse(&user.email) {
            self.stores
                .pending
                .finish_pending(CodePurpose::Registration, &email)
                .await?;
        }
        if !self.stores.users.delete_user(&user.id, now_ms()).await? {
            // A racing deletion got there first and finishes the job.
            return Err(FlowError::UserNotFound);
        }
        match end_sessions().await {
            Ok(more) => ended += more,
            Err(e) => {
                tracing::error!(error = %e, user_id = %user.id.0, "account deleted; a second pass over its sessions failed")
            }
        }
        if let Ok(email) = Email::parse(&user.email) {
            for purpose in [CodePurpose::PasswordReset, CodePurpose::Login] {
                if let Err(e) = self.stores.pending.finish_pending(purpose, &email).await {
                    // They name a user that no longer exists, so they can only fail.
                    tracing::warn!(error = %e, "cannot end the pending requests of a deleted account");
                }
            }
        }
        let mail = self
            .templates
            .goodbye_notice(&user.email, &user.username, by_operator);
        if let Err(e) = self.outbox.enqueue(&mail).await {
            tracing::warn!(error = %e, "cannot queue the goodbye notice");
        }
        tracing::info!(user_id = %user.id.0, sessions_ended = ended, by_operator, "account deleted");
        // Kept for the retention after the account, for whoever investigates it.
        let detail = if by_operator { "operator" } else { "" };
        self.audit(
            &user.id,
            Entry::new(SecurityKind::AccountDeleted).detail(detail),
        )
        .await;
        Ok(())
    }
}
