//! Email change: RequestEmailChange mails a code to the new address (the password proves the
//! caller, and the request is bound to the session that asked, like a sign-up to its
//! registration id); ConfirmEmailChange with that code switches the address, which the
//! store's unique index makes atomic against a sign-up or another change to the same address.
//!
//! A new address another account has is answered exactly like a free one (same limits, same
//! answer, a request id), its owner gets a notice, and no code can ever finish the request.
//! The old address gets a notice of the change with its time and client address; pending
//! resets and sign-ins by code of the old address end.

use serde::{Deserialize, Serialize};

use super::codes::CodeRequested;
use super::security::Entry;
use super::{AuthCore, Caller, ClientInfo, FlowError};
use crate::domain::{
    AllParsed, Code, CodeHash, CodePurpose, Email, Password, PendingId, SecurityKind, User,
    Violations, now_ms,
};
use crate::store::{PendingPayload, SetEmailError, TicketKind};

/// What the session that asked for a change keeps until it confirms it.
#[derive(Serialize, Deserialize)]
struct ChangeTicket {
    email: String,
    id: String,
}

impl AuthCore {
    /// RequestEmailChange.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id.0, email = tracing::field::Empty))]
    pub async fn request_email_change(
        &self,
        caller: &Caller,
        new_email: &str,
        current_password: &str,
        client: &ClientInfo,
    ) -> Result<CodeRequested, FlowError> {
        let mut v = Violations::default();
        let email = v.check("new_email", Email::parse(new_email));
        let password = v.check(
            "current_password",
            Password::parse_existing(current_password),
        );
        let (email, password) = v.finish((email, password).all())?;
        self.tag_span(&email);
        let user = self.user(&caller.user_id).await?;
        if Email::parse(&user.email).is_ok_and(|current| current == email) {
            return Err(FlowError::invalid(
                "new_email",
                "new_email is the account's email already",
            ));
        }
        self.limit_code_requests(client, |retry_at| FlowError::EmailChangeRateLimited {
            retry_at,
        })
        .await?;
        self.check_password(&user, caller, &password).await?;

        let owner = self.stores.users.find_by_email(&email).await?;
        let id = PendingId::generate();
        let code = Code::generate();
        let (payload, hash) = match &owner {
            None => (
                PendingPayload::EmailChange {
                    user_id: user.id.clone(),
                },
                self.codes
                    .hash(CodePurpose::EmailChange, &email, &id, &code),
            ),
            // Taken: a request no code finishes, answered and limited like a real one.
            Some(_) => (PendingPayload::Decoy, CodeHash::unguessable()),
        };
        let issued = self
            .issue(CodePurpose::EmailChange, &email, &id, Some(&payload), &hash)
            .await?;
        let ticket = ChangeTicket {
            email: email.as_str().to_owned(),
            id: id.as_str().to_owned(),
        };
        let ticket = serde_json::to_string(&ticket)
            .map_err(|e| FlowError::Internal(format!("cannot write an email change: {e}")))?;
        self.stores
            .tickets
            .put_ticket(
                TicketKind::EmailChange,
                &caller.session_id.0,
                &ticket,
                now_ms() + self.policy.code.pending_ttl_ms,
                now_ms(),
            )
            .await?;
        let mail = match &owner {
            None => self
                .templates
                .email_change_code(
                    email.as_str(),
                    &user.username,
                    code.expose(),
                    self.policy.code.ttl(),
                )
                .expiring_at(issued.code_expires_at),
            Some(owner) => self
                .templates
                .email_change_attempt_notice(&owner.email, &owner.username),
        };
        self.outbox.enqueue(&mail).await?;
        tracing::info!("email change requested");
        Ok(CodeRequested {
            id,
            issued,
            code_ttl: self.policy.code.ttl(),
        })
    }

    /// ConfirmEmailChange: the code of the caller's session's request switches the address.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id.0, email = tracing::field::Empty))]
    pub async fn confirm_email_change(
        &self,
        caller: &Caller,
        code: &str,
        client: &ClientInfo,
    ) -> Result<User, FlowError> {
        let code = Code::parse(code).map_err(|e| FlowError::invalid("code", e))?;
        let ticket = self
            .stores
            .tickets
            .get_ticket(TicketKind::EmailChange, &caller.session_id.0, now_ms())
            .await?
            .ok_or(FlowError::EmailChangeNotFound)?;
        let ticket: ChangeTicket = serde_json::from_str(&ticket)
            .map_err(|e| FlowError::Internal(format!("corrupt email change: {e}")))?;
        let (email, id) = match (Email::parse(&ticket.email), PendingId::parse(&ticket.id)) {
            (Ok(email), Ok(id)) => (email, id),
            _ => return Err(FlowError::Internal("corrupt email change".into())),
        };
        let payload = self
            .check_code(CodePurpose::EmailChange, &email, &id, &code, client)
            .await?;
        let PendingPayload::EmailChange { user_id } = payload else {
            return Err(FlowError::EmailChangeNotFound);
        };
        if user_id != caller.user_id {
            return Err(FlowError::EmailChangeNotFound);
        }
        let old = self.user(&user_id).await?;
        let now = now_ms();
        match self.stores.users.set_email(&user_id, &email, now).await {
            Ok(()) => {}
            Err(SetEmailError::EmailTaken) => return Err(FlowError::NewEmailTaken),
            Err(SetEmailError::NotFound) => return Err(FlowError::SessionRevoked),
            Err(SetEmailError::Store(e)) => return Err(e.into()),
        }
        // The request ends once the address changed (a failure before leaves it for a retry).
        self.stores
            .pending
            .finish_pending(CodePurpose::EmailChange, &email)
            .await?;
        let _ = self
            .stores
            .tickets
            .take_ticket(TicketKind::EmailChange, &caller.session_id.0, now)
            .await;
        if let Ok(old_email) = Email::parse(&old.email) {
            // A reset or a sign-in code mailed to the old address must not outlive it.
            for purpose in [CodePurpose::PasswordReset, CodePurpose::Login] {
                if let Err(e) = self
                    .stores
                    .pending
                    .finish_pending(purpose, &old_email)
                    .await
                {
                    tracing::warn!(error = %e, "cannot end the old address's pending requests");
                }
            }
        }
        let when = crate::domain::rfc3339(now);
        let ip = client.ip_text();
        let notice = self.templates.email_changed_notice(
            &old.email,
            &old.username,
            email.as_str(),
            &when,
            if ip.is_empty() { "unknown" } else { &ip },
        );
        if let Err(e) = self.outbox.enqueue(&notice).await {
            tracing::warn!(error = %e, "cannot queue the notice of an email change");
        }
        tracing::info!("email changed");
        let entry = Entry::new(SecurityKind::EmailChanged)
            .from(client)
            .session(&caller.session_id);
        self.audit(&user_id, entry).await;
        let user = self.user(&user_id).await?;
        self.one_with_presence(user).await
    }
}
