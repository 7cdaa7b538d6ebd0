//! Pending requests and the per-email budgets (see `PendingCodeStore`): one transaction per
//! call, so every check and count is atomic.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use subtle::ConstantTimeEq;

use super::{Cached as _, SqliteStore, internal};
use crate::domain::{CodeHash, Email, PendingId, UnixMs};
use crate::store::{
    CodeIssued, CodePolicy, CodePurpose, DAY_MS, IssueError, PendingCodeStore, PendingPayload,
    StoreResult, VerifyError,
};

struct Request {
    payload: String,
    code_hash: Vec<u8>,
    code_expires_at: i64,
    last_sent_at: i64,
    attempts_used: u32,
    verified: bool,
}

/// The live request `id` of `purpose` for `email`.
fn load_request(
    tx: &Transaction<'_>,
    purpose: &str,
    email: &str,
    id: &str,
    now: UnixMs,
) -> rusqlite::Result<Option<Request>> {
    tx.row(
        "SELECT payload, code_hash, code_expires_at, last_sent_at, attempts_used, verified \
         FROM pending_requests WHERE purpose = ?1 AND id = ?2 AND email = ?3 AND expires_at > ?4",
        params![purpose, id, email, now],
        |r| {
            Ok(Request {
                payload: r.get(0)?,
                code_hash: r.get(1)?,
                code_expires_at: r.get(2)?,
                last_sent_at: r.get(3)?,
                attempts_used: r.get(4)?,
                verified: r.get(5)?,
            })
        },
    )
    .optional()
}

/// The daily budgets of one email, with windows that ended rolled over.
struct Budget {
    sends_window_start: i64,
    sends: u32,
    guesses_window_start: i64,
    guesses: u32,
}

impl Budget {
    fn load(
        tx: &Transaction<'_>,
        purpose: &str,
        email: &str,
        now: UnixMs,
    ) -> rusqlite::Result<Self> {
        let row: Option<(i64, u32, i64, u32)> = tx
            .row(
                "SELECT sends_window_start, sends, guesses_window_start, guesses \
                 FROM code_budgets WHERE purpose = ?1 AND email = ?2 AND expires_at > ?3",
                params![purpose, email, now],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let (sws, sends, gws, guesses) = row.unwrap_or((now, 0, now, 0));
        let roll = |start: i64, n: u32| {
            if start + DAY_MS <= now {
                (now, 0)
            } else {
                (start, n)
            }
        };
        let ((sends_window_start, sends), (guesses_window_start, guesses)) =
            (roll(sws, sends), roll(gws, guesses));
        Ok(Self {
            sends_window_start,
            sends,
            guesses_window_start,
            guesses,
        })
    }

    fn save(&self, tx: &Transaction<'_>, purpose: &str, email: &str) -> rusqlite::Result<()> {
        let expires_at = (self.sends_window_start + DAY_MS).max(self.guesses_window_start + DAY_MS);
        tx.exec(
            "INSERT OR REPLACE INTO code_budgets (purpose, email, sends_window_start, sends, \
             guesses_window_start, guesses, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                purpose,
                email,
                self.sends_window_start,
                self.sends,
                self.guesses_window_start,
                self.guesses,
                expires_at
            ],
        )
        .map(|_| ())
    }
}

#[async_trait]
impl PendingCodeStore for SqliteStore {
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
        let (email, id) = (email.as_str().to_owned(), id.as_str().to_owned());
        let payload = payload.map(PendingPayload::to_json).transpose()?;
        let (code, policy) = (code.0, policy.clone());
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(internal)?;
            let purpose = purpose.as_str();
            let existing = load_request(&tx, purpose, &email, &id, now).map_err(internal)?;
            let (payload, attempts_used) = match (payload, existing) {
                (Some(payload), None) => (payload, 0),
                (Some(_), Some(_)) => {
                    return Err(crate::store::StoreError::Internal(
                        "a pending request id was issued twice".into(),
                    ));
                }
                (None, None) => return Ok(Err(IssueError::NotFound)),
                (None, Some(request)) => {
                    if request.attempts_used >= policy.max_attempts {
                        return Ok(Err(IssueError::Exhausted));
                    }
                    let resend_at = request.last_sent_at + policy.cooldown_ms;
                    if resend_at > now {
                        return Ok(Err(IssueError::Cooldown {
                            retry_at: resend_at,
                        }));
                    }
                    (request.payload, request.attempts_used)
                }
            };
            let mut budget = Budget::load(&tx, purpose, &email, now).map_err(internal)?;
            if budget.sends >= policy.max_sends_per_day {
                return Ok(Err(IssueError::DailyLimit {
                    retry_at: budget.sends_window_start + DAY_MS,
                }));
            }
            budget.sends += 1;
            budget.save(&tx, purpose, &email).map_err(internal)?;
            let code_expires_at = now + policy.ttl_ms;
            tx.exec(
                "INSERT OR REPLACE INTO pending_requests (purpose, id, email, payload, code_hash, \
                 code_expires_at, last_sent_at, attempts_used, verified, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
                params![
                    purpose,
                    id,
                    email,
                    payload,
                    code.to_vec(),
                    code_expires_at,
                    now,
                    attempts_used,
                    now + policy.pending_ttl_ms
                ],
            )
            .map_err(internal)?;
            tx.commit().map_err(internal)?;
            Ok(Ok(CodeIssued {
                code_expires_at,
                resend_at: now + policy.cooldown_ms,
                attempts_remaining: policy.max_attempts.saturating_sub(attempts_used),
                payload: PendingPayload::from_json(&payload)?,
            }))
        })
        .await?
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
        let (email, id) = (email.as_str().to_owned(), id.as_str().to_owned());
        let (code, policy) = (code.0, policy.clone());
        let payload = self
            .call(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(internal)?;
                let purpose = purpose.as_str();
                let Some(request) =
                    load_request(&tx, purpose, &email, &id, now).map_err(internal)?
                else {
                    return Ok(Err(VerifyError::NotFound));
                };
                if request.attempts_used >= policy.max_attempts {
                    return Ok(Err(VerifyError::Exhausted));
                }
                let matches = bool::from(request.code_hash.as_slice().ct_eq(code.as_slice()));
                // A code that matched once keeps matching until the request is finished.
                if request.verified && matches {
                    return Ok(Ok(request.payload));
                }
                if request.code_expires_at <= now {
                    return Ok(Err(VerifyError::Expired));
                }
                let mut budget = Budget::load(&tx, purpose, &email, now).map_err(internal)?;
                if budget.guesses >= policy.max_guesses_per_day {
                    return Ok(Err(VerifyError::DailyGuessLimit {
                        retry_at: budget.guesses_window_start + DAY_MS,
                    }));
                }
                if matches {
                    tx.exec(
                        "UPDATE pending_requests SET verified = 1 WHERE purpose = ?1 AND id = ?2",
                        params![purpose, id],
                    )
                    .map_err(internal)?;
                    tx.commit().map_err(internal)?;
                    return Ok(Ok(request.payload));
                }
                let used = request.attempts_used + 1;
                tx.exec(
                    "UPDATE pending_requests SET attempts_used = ?3 WHERE purpose = ?1 AND id = ?2",
                    params![purpose, id, used],
                )
                .map_err(internal)?;
                budget.guesses += 1;
                budget.save(&tx, purpose, &email).map_err(internal)?;
                tx.commit().map_err(internal)?;
                Ok(Err(VerifyError::Wrong {
                    attempts_remaining: policy.max_attempts - used,
                }))
            })
            .await
            .map_err(VerifyError::Store)??;
        PendingPayload::from_json(&payload).map_err(VerifyError::Store)
    }

    async fn finish_pending(&self, purpose: CodePurpose, email: &Email) -> StoreResult<()> {
        let email = email.as_str().to_owned();
        self.call(move |conn| {
            conn.exec(
                "DELETE FROM pending_requests WHERE purpose = ?1 AND email = ?2",
                params![purpose.as_str(), email],
            )
            .map(|_| ())
            .map_err(internal)
        })
        .await
    }
}
