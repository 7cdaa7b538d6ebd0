//! Fixed-window rate limits: one small hash per key (same rules as `sqlite/limits.rs`).

use async_trait::async_trait;

use super::{RedisStore, codes::unknown_status};
use crate::domain::UnixMs;
use crate::store::{RateLimitStore, StoreResult};

#[async_trait]
impl RateLimitStore for RedisStore {
    async fn hit(
        &self,
        key: &str,
        limit: u32,
        window_ms: i64,
        now: UnixMs,
    ) -> StoreResult<Result<u32, UnixMs>> {
        let mut call = self.scripts.rate_limit_hit.key(self.keys.rate_limit(key));
        call.arg(now).arg(limit).arg(now + window_ms);
        let reply = self.eval("rate_limit_hit", &call).await?;
        match reply.status()? {
            1 => Ok(Ok(u32::try_from(reply.int(1)?).unwrap_or(u32::MAX))),
            0 => Ok(Err(reply.int(1)?)),
            other => Err(unknown_status("rate_limit_hit", other)),
        }
    }

    async fn count(&self, key: &str, now: UnixMs) -> StoreResult<(u32, UnixMs)> {
        let (count, ends): (Option<u32>, Option<i64>) = self
            .query(
                "rate_limit_count",
                redis::cmd("HMGET")
                    .arg(self.keys.rate_limit(key))
                    .arg("count")
                    .arg("window_ends_at"),
            )
            .await?;
        Ok(match (count, ends) {
            (Some(count), Some(ends)) if ends > now => (count, ends),
            _ => (0, now),
        })
    }

    async fn clear(&self, key: &str) -> StoreResult<()> {
        self.query(
            "rate_limit_clear",
            redis::cmd("DEL").arg(self.keys.rate_limit(key)),
        )
        .await
    }
}
