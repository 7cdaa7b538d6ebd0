//! Fixed-window rate limits: one row per key (same rules as `redis/limits.rs`).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Cached as _, SqliteStore, internal};
use crate::domain::UnixMs;
use crate::store::{RateLimitStore, StoreResult};

#[async_trait]
impl RateLimitStore for SqliteStore {
    async fn hit(
        &self,
        key: &str,
        limit: u32,
        window_ms: i64,
        now: UnixMs,
    ) -> StoreResult<Result<u32, UnixMs>> {
        let key = key.to_owned();
        self.call(move |conn| {
            let tx =
                conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(internal)?;
            let current: Option<(u32, i64)> = tx
                .row(
                    "SELECT count, window_ends_at FROM rate_limits WHERE key = ?1",
                    params![key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(internal)?;
            let (count, ends) = match current {
                Some((count, ends)) if ends > now => {
                    if count >= limit {
                        return Ok(Err(ends));
                    }
                    (count + 1, ends)
                }
                _ => (1, now + window_ms),
            };
            tx.exec(
                "INSERT OR REPLACE INTO rate_limits (key, count, window_ends_at) VALUES (?1, ?2, ?3)",
                params![key, count, ends],
            )
            .map_err(internal)?;
            tx.commit().map_err(internal)?;
            Ok(Ok(count))
        })
        .await
    }

    async fn count(&self, key: &str, now: UnixMs) -> StoreResult<(u32, UnixMs)> {
        let key = key.to_owned();
        self.call(move |conn| {
            conn.row(
                "SELECT count, window_ends_at FROM rate_limits WHERE key = ?1 AND window_ends_at > ?2",
                params![key, now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map(|found| found.unwrap_or((0, now)))
            .map_err(internal)
        })
        .await
    }

    async fn clear(&self, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        self.call(move |conn| {
            conn.exec("DELETE FROM rate_limits WHERE key = ?1", params![key])
                .map(|_| ())
                .map_err(internal)
        })
        .await
    }
}
