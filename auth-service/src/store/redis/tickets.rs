//! Tickets on Redis (see `TicketStore`): one string key each with the ticket's expiry, taken
//! with GETDEL so two callers never both get it.

use async_trait::async_trait;

use super::RedisStore;
use crate::domain::UnixMs;
use crate::store::{StoreResult, TicketKind, TicketStore};

#[async_trait]
impl TicketStore for RedisStore {
    async fn put_ticket(
        &self,
        kind: TicketKind,
        id: &str,
        payload: &str,
        expires_at: UnixMs,
        now: UnixMs,
    ) -> StoreResult<()> {
        // Relative to Redis's clock, like every short-lived key here.
        let ttl = (expires_at - now).max(1);
        self.query(
            "put_ticket",
            redis::cmd("SET")
                .arg(self.keys.ticket(kind, id))
                .arg(payload)
                .arg("PX")
                .arg(ttl),
        )
        .await
    }

    async fn get_ticket(
        &self,
        kind: TicketKind,
        id: &str,
        _now: UnixMs,
    ) -> StoreResult<Option<String>> {
        self.query(
            "get_ticket",
            redis::cmd("GET").arg(self.keys.ticket(kind, id)),
        )
        .await
    }

    async fn take_ticket(
        &self,
        kind: TicketKind,
        id: &str,
        _now: UnixMs,
    ) -> StoreResult<Option<String>> {
        self.query(
            "take_ticket",
            redis::cmd("GETDEL").arg(self.keys.ticket(kind, id)),
        )
        .await
    }
}
