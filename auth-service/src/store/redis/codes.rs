//! Pending registrations and password resets: per purpose and email, one hash of its live
//! requests (it expires `CODE_REQUEST_TTL` after the last code) and one of its daily budgets
//! (it expires with the day windows), in one slot, changed only by the `ISSUE_CODE`,
//! `VERIFY_CODE` and `FINISH_PENDING` scripts (same rules as `sqlite/codes.rs`).

use async_trait::async_trait;

use super::RedisStore;
use crate::domain::{CodeHash, Email, PendingId, UnixMs};
use crate::store::{
    CodeIssued, CodePolicy, CodePurpose, DAY_MS, IssueError, PendingCodeStore, PendingPayload,
    StoreError, StoreResult, VerifyError,
};

#[async_trait]
impl PendingCodeStore for RedisStore {
    async fn issue_code(
        &self,
        purpose: CodePurpose,
        email: &Email,
        id: &PendingId,
        payload: Option<&PendingPayload>,
        code: &CodeHash,
        now: UnixMs,
        policy: &CodePolicy,
    ) -> Result<CodeIssued, IssueError> {
        let payload = payload.map(PendingPayload::to_json).transpose()?;
        let code_expires_at = now + policy.ttl_ms;
        let mut call = self
            .scripts
            .issue_code
            .key(self.keys.pending(purpose, email));
        call.key(self.keys.pending_budget(purpose, email));
        call.arg(now)
            .arg(id.as_str())
            .arg(if payload.is_some() { "1" } else { "0" })
            .arg(payload.as_deref().unwrap_or_default())
            .arg(&code.0[..])
            .arg(policy.cooldown_ms)
            .arg(policy.max_attempts)
            .arg(policy.max_sends_per_day)
            .arg(code_expires_at)
            .arg(now + policy.pending_ttl_ms)
            .arg(DAY_MS);
        let reply = self.eval("issue_code", &call).await?;
        match reply.status()? {
            0 => {
                let attempts_used = u32::try_from(reply.int(2)?).unwrap_or(u32::MAX);
                Ok(CodeIssued {
                    code_expires_at: reply.int(1)?,
                    resend_at: now + policy.cooldown_ms,
                    attempts_remaining: policy.max_attempts.saturating_sub(attempts_used),
                    payload: PendingPayload::from_json(&reply.text(3)?)?,
                })
            }
            1 => Err(IssueError::NotFound),
            2 => Err(IssueError::Exhausted),
            3 => Err(IssueError::Cooldown {
                retry_at: reply.int(1)?,
            }),
            4 => Err(IssueError::DailyLimit {
                retry_at: reply.int(1)?,
            }),
            other => Err(unknown_status("issue_code", other).into()),
        }
    }

    async fn verify_code(
        &self,
        purpose: CodePurpose,
        email: &Email,
        id: &PendingId,
        code: &CodeHash,
        now: UnixMs,
        policy: &CodePolicy,
    ) -> Result<PendingPayload, VerifyError> {
        let mut call = self
            .scripts
            .verify_code
            .key(self.keys.pending(purpose, email));
        call.key(self.keys.pending_budget(purpose, email));
        call.arg(now)
            .arg(id.as_str())
            .arg(&code.0[..])
            .arg(policy.max_attempts)
            .arg(policy.max_guesses_per_day)
            .arg(DAY_MS);
        let reply = self.eval("verify_code", &call).await?;
        match reply.status()? {
            0 => Ok(PendingPayload::from_json(&reply.text(1)?)?),
            1 => Err(VerifyError::NotFound),
            2 => Err(VerifyError::Expired),
            3 => Err(VerifyError::Exhausted),
            4 => Err(VerifyError::DailyGuessLimit {
                retry_at: reply.int(1)?,
            }),
            5 => Err(VerifyError::Wrong {
                attempts_remaining: u32::try_from(reply.int(1)?).unwrap_or(0),
            }),
            other => Err(unknown_status("verify_code", other).into()),
        }
    }

    async fn finish_pending(&self, purpose: CodePurpose, email: &Email) -> StoreResult<()> {
        let call = self
            .scripts
            .finish_pending
            .key(self.keys.pending(purpose, email));
        self.eval("finish_pending", &call).await.map(|_| ())
    }
}

pub(super) fn unknown_status(script: &str, status: i64) -> StoreError {
    StoreError::Internal(format!("Redis script {script} answered status {status}"))
}
