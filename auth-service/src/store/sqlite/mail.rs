//! The outgoing mail queue in one table: a claim leases the oldest due message by moving its
//! due time to the end of the lease in the same transaction that counts the attempt.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Cached as _, SqliteStore, internal};
use crate::domain::UnixMs;
use crate::store::{MailQueue, QueuedMail, StoreResult};

#[async_trait]
impl MailQueue for SqliteStore {
    async fn enqueue(&self, sealed: &[u8], now: UnixMs) -> StoreResult<String> {
        let (id, sealed) = (uuid::Uuid::now_v7().to_string(), sealed.to_vec());
        let ret = id.clone();
        self.call(move |conn| {
            conn.exec(
                "INSERT INTO mail_queue (id, sealed, attempts, due_at, dead, created_at) \
                 VALUES (?1, ?2, 0, ?3, 0, ?3)",
                params![id, sealed, now],
            )
            .map_err(internal)
        })
        .await?;
        Ok(ret)
    }

    async fn claim_due(&self, now: UnixMs, lease_ms: i64) -> StoreResult<Option<QueuedMail>> {
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(internal)?;
            let found = tx
                .row(
                    "SELECT id, sealed, attempts FROM mail_queue WHERE dead = 0 AND due_at <= ?1 \
                     ORDER BY due_at, id LIMIT 1",
                    params![now],
                    |r| {
                        Ok(QueuedMail {
                            id: r.get(0)?,
                            sealed: r.get(1)?,
                            attempts: r.get(2)?,
                        })
                    },
                )
                .optional()
                .map_err(internal)?;
            let Some(mut mail) = found else {
                return Ok(None);
            };
            mail.attempts += 1;
            tx.exec(
                "UPDATE mail_queue SET due_at = ?2, attempts = ?3 WHERE id = ?1",
                params![mail.id, now + lease_ms, mail.attempts],
            )
            .map_err(internal)?;
            tx.commit().map_err(internal)?;
            Ok(Some(mail))
        })
        .await
    }

    async fn complete(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.call(move |conn| {
            conn.exec("DELETE FROM mail_queue WHERE id = ?1", params![id])
                .map(|_| ())
                .map_err(internal)
        })
        .await
    }

    async fn retry_at(&self, id: &str, at: UnixMs, error: &str) -> StoreResult<()> {
        let (id, error) = (id.to_owned(), error.to_owned());
        self.call(move |conn| {
            conn.exec(
                "UPDATE mail_queue SET due_at = ?2, last_error = ?3 WHERE id = ?1",
                params![id, at, error],
            )
            .map(|_| ())
            .map_err(internal)
        })
        .await
    }

    async fn dead_letter(&self, id: &str, error: &str, now: UnixMs) -> StoreResult<()> {
        let (id, error) = (id.to_owned(), error.to_owned());
        self.call(move |conn| {
            conn.exec(
                "UPDATE mail_queue SET dead = 1, dead_at = ?3, last_error = ?2 WHERE id = ?1",
                params![id, error, now],
            )
            .map(|_| ())
            .map_err(internal)
        })
        .await
    }

    async fn purge_dead_letters(&self, before: UnixMs) -> StoreResult<u64> {
        self.call(move |conn| {
            conn.exec(
                "DELETE FROM mail_queue WHERE dead = 1 AND dead_at < ?1",
                params![before],
            )
            .map(|n| n as u64)
            .map_err(internal)
        })
        .await
    }

    async fn next_due(&self) -> StoreResult<Option<UnixMs>> {
        self.call(|conn| {
            conn.row(
                "SELECT MIN(due_at) FROM mail_queue WHERE dead = 0",
                [],
                |r| r.get(0),
            )
            .map_err(internal)
        })
        .await
    }

    async fn dead_letter_count(&self) -> StoreResult<u64> {
        self.call(|conn| {
            conn.row("SELECT COUNT(*) FROM mail_queue WHERE dead = 1", [], |r| {
                r.get(0)
            })
            .map_err(internal)
        })
        .await
    }
}
