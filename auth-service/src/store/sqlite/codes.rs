use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use subtle::ConstantTimeEq;

use super::{SqliteStore, internal};
use crate::domain::{CodeHash, Email, UnixMs};
use crate::store::{
    CodeIssued, CodePolicy, CodePurpose, IssueError, PendingCodeStore, PendingPayload, VerifyError,
};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

struct PendingRow {
    payload: String,
    code_hash: Vec<u8>,
    code_expires_at: i64,
    last_sent_at: i64,
    attempts_used: u32,
    locked_until: Option<i64>,
    sends_window_start: i64,
    sends_in_window: u32,
    expires_at: i64,
}

fn load(
    tx: &rusqlite::Transaction<'_>,
    purpose: &str,
    email: &str,
) -> rusqlite::Result<Option<PendingRow>> {
    tx.query_row(
        "SELECT payload, code_hash, code_expires_at, last_sent_at, attempts_used, locked_until, \
         sends_window_start, sends_in_window, expires_at \
         FROM pending_codes WHERE purpose = ?1 AND email = ?2",
        params![purpose, email],
        |r| {
            Ok(PendingRow {
                payload: r.get(0)?,
                code_hash: r.get(1)?,
                code_expires_at: r.get(2)?,
                last_sent_at: r.get(3)?,
                attempts_used: r.get(4)?,
                locked_until: r.get(5)?,
                sends_window_start: r.get(6)?,
                sends_in_window: r.get(7)?,
                expires_at: r.get(8)?,
            })
        },
    )
    .optional()
}

#[async_trait]
impl PendingCodeStore for SqliteStore {
    async fn issue_code(
        &self,
        purpose: CodePurpose,
        email: &Email,
        payload: Option<&PendingPayload>,
        code: &CodeHash,
        now: UnixMs,
        policy: &CodePolicy,
    ) -> Result<CodeIssued, IssueError> {
        let (email, payload) = (
            email.as_str().to_owned(),
            payload.map(PendingPayload::to_json),
        );
        let (code, policy) = (code.0, policy.clone());
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(internal)?;
            let existing =
                load(&tx, purpose.as_str(), &email).map_err(internal)?.filter(|r| r.expires_at > now);
            let (payload, attempts_used, window_start, sends) = match existing {
                Some(row) => {
                    if let Some(until) = row.locked_until.filter(|&u| u > now) {
                        return Ok(Err(IssueError::Locked { retry_at: until }));
                    }
                    if row.last_sent_at + policy.cooldown_ms > now {
                        return Ok(Err(IssueError::Cooldown {
                            retry_at: row.last_sent_at + policy.cooldown_ms,
                        }));
                    }
                    let (window_start, sends) = if row.sends_window_start + DAY_MS <= now {
                        (now, 0)
                    } else {
                        (row.sends_window_start, row.sends_in_window)
                    };
                    if sends >= policy.max_sends_per_day {
                        return Ok(Err(IssueError::DailyLimit { retry_at: window_start + DAY_MS }));
                    }
                    // A lockout that has run out gives a fresh budget; otherwise the count of
                    // wrong guesses carries over, so a resend or a new Register buys none.
                    let attempts = if row.locked_until.is_some() { 0 } else { row.attempts_used };
                    (payload.unwrap_or(row.payload), attempts, window_start, sends)
                }
                None => match payload {
                    Some(p) => (p, 0, now, 0),
                    None => return Ok(Err(IssueError::NotFound)),
                },
            };
            let code_expires_at = now + policy.ttl_ms;
            let expires_at = (now + policy.record_ttl_ms).max(window_start + DAY_MS);
            tx.execute(
                "INSERT OR REPLACE INTO pending_codes (purpose, email, payload, code_hash, \
                 code_expires_at, last_sent_at, attempts_used, locked_until, sends_window_start, \
                 sends_in_window, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8, ?9, ?10)",
                params![
                    purpose.as_str(),
                    email,
                    payload,
                    code.to_vec(),
                    code_expires_at,
                    now,
                    attempts_used,
                    window_start,
                    sends + 1,
                    expires_at
                ],
            )
            .map_err(internal)?;
            tx.commit().map_err(internal)?;
            Ok(Ok(CodeIssued {
                code_expires_at,
                resend_at: now + policy.cooldown_ms,
                attempts_remaining: policy.max_attempts.saturating_sub(attempts_used),
            }))
        })
        .await?
    }

    async fn verify_code(
        &self,
        purpose: CodePurpose,
        email: &Email,
        code: &CodeHash,
        now: UnixMs,
        policy: &CodePolicy,
    ) -> Result<PendingPayload, VerifyError> {
        let (email, code, policy) = (email.as_str().to_owned(), code.0, policy.clone());
        let payload = self
            .call(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(internal)?;
                let Some(row) = load(&tx, purpose.as_str(), &email)
                    .map_err(internal)?
                    .filter(|r| r.expires_at > now)
                else {
                    return Ok(Err(VerifyError::NotFound));
                };
                if row.attempts_used >= policy.max_attempts {
                    return Ok(Err(match row.locked_until.filter(|&u| u > now) {
                        Some(retry_at) => VerifyError::Exhausted { retry_at },
                        None => VerifyError::Expired,
                    }));
                }
                if row.code_expires_at <= now {
                    return Ok(Err(VerifyError::Expired));
                }
                if bool::from(row.code_hash.as_slice().ct_eq(code.as_slice())) {
                    tx.execute(
                        "DELETE FROM pending_codes WHERE purpose = ?1 AND email = ?2",
                        params![purpose.as_str(), email],
                    )
                    .map_err(internal)?;
                    tx.commit().map_err(internal)?;
                    return Ok(Ok(row.payload));
                }
                let used = row.attempts_used + 1;
                let locked_until = (used >= policy.max_attempts).then_some(now + policy.lockout_ms);
                tx.execute(
                    "UPDATE pending_codes SET attempts_used = ?3, locked_until = ?4, \
                     expires_at = MAX(expires_at, COALESCE(?4, 0)) \
                     WHERE purpose = ?1 AND email = ?2",
                    params![purpose.as_str(), email, used, locked_until],
                )
                .map_err(internal)?;
                tx.commit().map_err(internal)?;
                Ok(Err(VerifyError::Wrong {
                    attempts_remaining: policy.max_attempts - used,
                }))
            })
            .await
            .map_err(VerifyError::Store)??;
        PendingPayload::from_json(&payload).map_err(VerifyError::Store)
    }
}
