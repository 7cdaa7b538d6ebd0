//! What the emailed-code flows share (sign-up, password reset, sign-in by code): issuing a code
//! under the store's budgets, a code request for an existing account that answers alike for an
//! unknown email, the per-network budgets of code requests and code checks, reading a pending
//! request's id, and mapping the store's refusals.

use super::limits::{Counter, HOUR_MS};
use super::{AuthCore, ClientInfo, FlowError};
use crate::domain::{Code, CodeHash, CodePurpose, Email, PendingId, Violations, now_ms};
use crate::store::{CodeIssued, IssueError, PendingPayload, VerifyError};

/// What a code request for an existing account (a password reset, a sign-in by code) answers,
/// the same whether or not an account has the email.
#[derive(Debug)]
pub struct CodeRequested {
    pub id: PendingId,
    pub issued: CodeIssued,
    /// How long a code, if one was sent, stays valid.
    pub code_ttl: std::time::Duration,
}

impl AuthCore {
    /// A code request for an existing account (reset, sign-in by code): the same answer, limits
    /// and work for known and unknown emails (a request id either way); only a known account
    /// gets mail. For an unknown email the request is a decoy that no code can finish.
    pub(super) async fn request_account_code(
        &self,
        purpose: CodePurpose,
        email: &str,
        client: &ClientInfo,
    ) -> Result<CodeRequested, FlowError> {
        let email = Email::parse(email).map_err(|e| FlowError::invalid("email", e))?;
        self.tag_span(&email);
        self.limit_code_requests(client, |retry_at| match purpose {
            CodePurpose::Login => FlowError::LoginCodeRateLimited { retry_at },
            _ => FlowError::ResetRateLimited { retry_at },
        })
        .await?;
        let user = self.stores.users.find_by_email(&email).await?;
        let id = PendingId::generate();
        let code = Code::generate();
        let (payload, hash) = match &user {
            Some(user) => {
                let user_id = user.id.clone();
                let payload = match purpose {
                    CodePurpose::Login => PendingPayload::Login { user_id },
                    _ => PendingPayload::PasswordReset { user_id },
                };
                (payload, self.codes.hash(purpose, &email, &id, &code))
            }
            None => (PendingPayload::Decoy, CodeHash::unguessable()),
        };
        let issued = self
            .issue(purpose, &email, &id, Some(&payload), &hash)
            .await?;
        if let Some(user) = user {
            let (to, name, ttl) = (
                email.as_str(),
                Some(user.username.as_str()),
                self.policy.code.ttl(),
            );
            let mail = match purpose {
                CodePurpose::Login => self.templates.login_code(to, name, code.expose(), ttl),
                _ => self
                    .templates
                    .password_reset_code(to, name, code.expose(), ttl),
            };
            self.outbox
                .enqueue(&mail.expiring_at(issued.code_expires_at))
                .await?;
        } else {
            self.as_much_work_as_queueing_mail().await;
        }
        Ok(CodeRequested {
            id,
            issued,
            code_ttl: self.policy.code.ttl(),
        })
    }

    /// Checks `code` against pending request `id` of `email`, once the client network's guess
    /// budget allows a check: the request's payload when the code matches.
    pub(super) async fn check_code(
        &self,
        purpose: CodePurpose,
        email: &Email,
        id: &PendingId,
        code: &Code,
        client: &ClientInfo,
    ) -> Result<PendingPayload, FlowError> {
        self.tag_span(email);
        self.limit_code_guesses(client).await?;
        let hash = self.codes.hash(purpose, email, id, code);
        self.stores
            .pending
            .verify_code(purpose, email, id, &hash, now_ms(), &self.policy.code)
            .await
            .map_err(|e| verify_error(e, purpose))
    }

    /// Records a fresh code (its hash) for request `id`, mapping the store's refusals.
    pub(super) async fn issue(
        &self,
        purpose: CodePurpose,
        email: &Email,
        id: &PendingId,
        payload: Option<&PendingPayload>,
        hash: &CodeHash,
    ) -> Result<CodeIssued, FlowError> {
        self.stores
            .pending
            .issue_code(
                purpose,
                email,
                id,
                payload,
                hash,
                now_ms(),
                &self.policy.code,
            )
            .await
            .map_err(|e| match e {
                IssueError::Cooldown { retry_at } => FlowError::ResendCooldown { retry_at },
                IssueError::DailyLimit { retry_at } => FlowError::CodeDailyLimit { retry_at },
                IssueError::Exhausted => FlowError::CodeAttemptsExhausted,
                // Only a resend comes without a payload (only registrations are resent).
                IssueError::NotFound => not_found(purpose),
                IssueError::Store(e) => e.into(),
            })
    }

    /// Counts one code request of the client's network against its hourly budget.
    pub(super) async fn limit_code_requests(
        &self,
        client: &ClientInfo,
        refused: impl FnOnce(i64) -> FlowError,
    ) -> Result<(), FlowError> {
        let network = client.network();
        let key = Counter::CodeRequests { network: &network }.key();
        self.count_hourly(&key, self.policy.code_requests_per_ip_per_hour, refused)
            .await
    }

    /// Counts one code check of the client's network against its hourly budget, before the
    /// code is looked at: the per-email budgets bound the guesses at one address, this bounds
    /// the guesses one network spreads over many addresses.
    pub(super) async fn limit_code_guesses(&self, client: &ClientInfo) -> Result<(), FlowError> {
        let network = client.network();
        let key = Counter::CodeGuesses { network: &network }.key();
        self.count_hourly(&key, self.policy.code_guesses_per_ip_per_hour, |retry_at| {
            FlowError::CodeGuessesRateLimited { retry_at }
        })
        .await
    }

    /// Counts one event of `key` in an hourly window, refused past `limit`.
    async fn count_hourly(
        &self,
        key: &str,
        limit: u32,
        refused: impl FnOnce(i64) -> FlowError,
    ) -> Result<(), FlowError> {
        match self
            .stores
            .limits
            .hit(key, limit, HOUR_MS, now_ms())
            .await?
        {
            Ok(_) => Ok(()),
            Err(retry_at) => Err(refused(retry_at)),
        }
    }

    /// A store round trip standing in for queueing a mail, where a real request would queue
    /// one and a decoy must not: both answers take the same work, so timing tells nothing.
    pub(super) async fn as_much_work_as_queueing_mail(&self) {
        let _ = self.stores.mail.next_due().await;
    }

    /// Puts the email's keyed tag (never the address) on the current span.
    pub(super) fn tag_span(&self, email: &Email) {
        tracing::Span::current().record("email", self.email_tags.tag(email));
    }
}

/// A pending request id from a request: `Some(None)` when it is empty (the caller did not
/// start the flow, or lost the id), `None` (with a violation) when it is not one of ours.
pub(super) fn parse_id(
    v: &mut Violations,
    field: &'static str,
    raw: &str,
) -> Option<Option<PendingId>> {
    if raw.trim().is_empty() {
        return Some(None);
    }
    v.check(
        field,
        PendingId::parse(raw).map_err(|e| format!("{field} {e}")),
    )
    .map(Some)
}

/// The answer to a failed code check of a request of `purpose`.
fn verify_error(e: VerifyError, purpose: CodePurpose) -> FlowError {
    match e {
        VerifyError::NotFound => not_found(purpose),
        VerifyError::Expired => FlowError::CodeExpired,
        VerifyError::Wrong { attempts_remaining } => FlowError::CodeInvalid { attempts_remaining },
        VerifyError::Exhausted => FlowError::CodeAttemptsExhausted,
        VerifyError::DailyGuessLimit { retry_at } => FlowError::TooManyGuessesToday { retry_at },
        VerifyError::Store(e) => e.into(),
    }
}

/// The answer for a request of `purpose` that does not exist (any more), or whose payload is
/// not of its purpose.
fn not_found(purpose: CodePurpose) -> FlowError {
    match purpose {
        CodePurpose::Registration => FlowError::RegistrationNotFound,
        CodePurpose::PasswordReset => FlowError::ResetNotFound,
        CodePurpose::Login => FlowError::LoginNotFound,
        CodePurpose::EmailChange => FlowError::EmailChangeNotFound,
    }
}
