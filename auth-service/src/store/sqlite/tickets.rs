//! Tickets on SQLite (see `TicketStore`): one `tickets` row each, taken with one
//! `DELETE ... RETURNING` so two callers never both get it; the sweeper deletes expired rows.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{Cached as _, SqliteStore, internal};
use crate::domain::UnixMs;
use crate::store::{StoreResult, TicketKind, TicketStore};

#[async_trait]
impl TicketStore for SqliteStore {
    async fn put_ticket(
        &self,
        kind: TicketKind,
        id: &str,
        payload: &str,
        expires_at: UnixMs,
        _now: UnixMs,
    ) -> StoreResult<()> {
        let (id, payload) = (id.to_owned(), payload.to_owned());
        self.call(move |conn| {
            conn.exec(
                "INSERT INTO tickets (kind, id, payload, expires_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (kind, id) DO UPDATE SET \
                 payload = excluded.payload, expires_at = excluded.expires_at",
                params![kind.as_str(), id, payload, expires_at],
            )
            .map(|_| ())
            .map_err(internal)
        })
        .await
    }

    async fn get_ticket(
        &self,
        kind: TicketKind,
        id: &str,
        now: UnixMs,
    ) -> StoreResult<Option<String>> {
        let id = id.to_owned();
        self.call(move |conn| {
            conn.row(
                "SELECT payload FROM tickets WHERE kind = ?1 AND id = ?2 AND expires_at > ?3",
                params![kind.as_str(), id, now],
                |r| r.get(0),
            )
            .optional()
            .map_err(internal)
        })
        .await
    }

    async fn take_ticket(
        &self,
        kind: TicketKind,
        id: &str,
        now: UnixMs,
    ) -> StoreResult<Option<String>> {
        let id = id.to_owned();
        self.call(move |conn| {
            conn.row(
                "DELETE FROM tickets WHERE kind = ?1 AND id = ?2 AND expires_at > ?3 \
                 RETURNING payload",
                params![kind.as_str(), id, now],
                |r| r.get(0),
            )
            .optional()
            .map_err(internal)
        })
        .await
    }
}
