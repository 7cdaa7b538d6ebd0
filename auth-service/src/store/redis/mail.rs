//! The outgoing mail queue under the `{mail}` hash tag (same rules as `sqlite/mail.rs`). A
//! claim leases a message by moving its due time to the end of the lease in the same script
//! that counts the attempt, so instances sharing the queue never send one message twice while
//! the lease holds; a worker that dies lets the lease run out and the message comes back.

use async_trait::async_trait;

use super::RedisStore;
use crate::domain::UnixMs;
use crate::store::{MailQueue, QueuedMail, StoreResult};

#[async_trait]
impl MailQueue for RedisStore {
    async fn enqueue(&self, sealed: &[u8], now: UnixMs) -> StoreResult<String> {
        let id = uuid::Uuid::now_v7().to_string();
        let keys = self.keys.mail();
        let mut call = self.scripts.mail_enqueue.key(&keys.due);
        call.key(&keys.sealed)
            .key(&keys.attempts)
            .arg(&id)
            .arg(sealed)
            .arg(now);
        self.eval("mail_enqueue", &call).await?;
        Ok(id)
    }

    async fn claim_due(&self, now: UnixMs, lease_ms: i64) -> StoreResult<Option<QueuedMail>> {
        let keys = self.keys.mail();
        let mut call = self.scripts.mail_claim.key(&keys.due);
        call.key(&keys.sealed)
            .key(&keys.attempts)
            .arg(now)
            .arg(now + lease_ms);
        let reply = self.eval("mail_claim", &call).await?;
        if reply.0.is_empty() {
            return Ok(None);
        }
        Ok(Some(QueuedMail {
            id: reply.text(0)?,
            sealed: reply.bytes(1)?,
            attempts: u32::try_from(reply.int(2)?).unwrap_or(u32::MAX),
        }))
    }

    async fn complete(&self, id: &str) -> StoreResult<()> {
        let keys = self.keys.mail();
        let mut call = self.scripts.mail_complete.key(&keys.due);
        call.key(&keys.sealed)
            .key(&keys.attempts)
            .key(&keys.errors)
            .key(&keys.dead)
            .arg(id);
        self.eval("mail_complete", &call).await.map(|_| ())
    }

    async fn retry_at(&self, id: &str, at: UnixMs, error: &str) -> StoreResult<()> {
        let keys = self.keys.mail();
        let mut call = self.scripts.mail_retry.key(&keys.due);
        call.key(&keys.sealed)
            .key(&keys.errors)
            .arg(id)
            .arg(at)
            .arg(error);
        self.eval("mail_retry", &call).await.map(|_| ())
    }

    async fn dead_letter(&self, id: &str, error: &str, now: UnixMs) -> StoreResult<()> {
        let keys = self.keys.mail();
        let mut call = self.scripts.mail_dead_letter.key(&keys.due);
        call.key(&keys.sealed)
            .key(&keys.errors)
            .key(&keys.dead)
            .arg(id)
            .arg(error)
            .arg(now);
        self.eval("mail_dead_letter", &call).await.map(|_| ())
    }

    async fn purge_dead_letters(&self, before: UnixMs) -> StoreResult<u64> {
        const BATCH: u64 = 500;
        let keys = self.keys.mail();
        let mut purged = 0;
        loop {
            let mut call = self.scripts.mail_purge_dead.key(&keys.dead);
            call.key(&keys.sealed)
                .key(&keys.attempts)
                .key(&keys.errors)
                .arg(before)
                .arg(BATCH);
            let n = u64::try_from(self.eval("mail_purge_dead", &call).await?.int(0)?).unwrap_or(0);
            purged += n;
            if n < BATCH {
                return Ok(purged);
            }
        }
    }

    async fn next_due(&self) -> StoreResult<Option<UnixMs>> {
        let first: Vec<(String, f64)> = self
            .query(
                "mail_next_due",
                redis::cmd("ZRANGE")
                    .arg(self.keys.mail().due)
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES"),
            )
            .await?;
        Ok(first.first().map(|(_, due)| *due as UnixMs))
    }

    async fn dead_letter_count(&self) -> StoreResult<u64> {
        self.query(
            "mail_dead_letter_count",
            redis::cmd("ZCARD").arg(self.keys.mail().dead),
        )
        .await
    }
}
