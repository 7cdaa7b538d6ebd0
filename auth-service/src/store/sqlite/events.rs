//! The event log on SQLite: the `events` table, written inside the transaction of the change
//! each row reports (so a committed revocation always has its row), and a watch channel that
//! wakes this process's watchers after each commit. Retention trims by time; the highest
//! trimmed id is kept so a watcher resuming from before it is told it missed events.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Cached as _, SqliteStore, internal};
use crate::domain::{Event, EventKind, UnixMs, UserId};
use crate::store::{EventLog, ReadEventsError, StoreError, StoreResult};

/// Writes one event row; call it inside the transaction of the change it reports.
pub(super) fn record(
    conn: &Connection,
    now: UnixMs,
    user_id: &UserId,
    kind: &EventKind,
) -> rusqlite::Result<()> {
    let (type_name, session, detail) = kind.fields();
    conn.exec(
        "INSERT INTO events (at, type, user_id, session_id, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now, type_name, user_id.0, session, detail],
    )
    .map(|_| ())
}

/// Deletes events older than `before` and the oldest beyond `max_events`, remembering the
/// highest id deleted.
pub(super) fn trim(conn: &Connection, before: UnixMs, max_events: u64) -> rusqlite::Result<usize> {
    let by_time: Option<i64> = conn.row(
        "SELECT MAX(id) FROM events WHERE at < ?1",
        params![before],
        |r| r.get(0),
    )?;
    let by_count: Option<i64> = conn
        .row(
            "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?1",
            params![max_events as i64],
            |r| r.get(0),
        )
        .optional()?;
    let last = by_time.max(by_count);
    let Some(last) = last else { return Ok(0) };
    conn.exec(
        "INSERT INTO events_trimmed (one, last_id) VALUES (1, ?1) \
         ON CONFLICT (one) DO UPDATE SET last_id = MAX(last_id, excluded.last_id)",
        params![last],
    )?;
    conn.exec("DELETE FROM events WHERE id <= ?1", params![last])
}

fn parse_id(raw: &str) -> Result<i64, ReadEventsError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or(ReadEventsError::InvalidId)
}

impl SqliteStore {
    /// Wakes this process's watchers: call it after a transaction that wrote events commits.
    pub(super) fn events_written(&self) {
        self.events.send_modify(|n| *n = n.wrapping_add(1));
    }

    async fn read_rows(&self, after: i64, limit: usize) -> Result<Vec<Event>, ReadEventsError> {
        self.call(move |conn| {
            let trimmed: Option<i64> = conn
                .row(
                    "SELECT last_id FROM events_trimmed WHERE one = 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(internal)?;
            let latest: i64 = conn
                .row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))
                .map_err(internal)?;
            if trimmed.is_some_and(|t| after < t) {
                return Ok(Err(ReadEventsError::Expired));
            }
            if after > latest.max(trimmed.unwrap_or(0)) {
                return Ok(Err(ReadEventsError::Expired));
            }
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, at, type, user_id, session_id, detail FROM events \
                     WHERE id > ?1 ORDER BY id LIMIT ?2",
                )
                .map_err(internal)?;
            let rows = stmt
                .query_map(params![after, limit as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                })
                .map_err(internal)?;
            let mut events = Vec::new();
            for row in rows {
                let (id, at, kind, user, session, detail) = row.map_err(internal)?;
                // A type this version does not know is skipped, not an error.
                if let Some(kind) = EventKind::from_fields(&kind, &session, &detail) {
                    events.push(Event {
                        id: id.to_string(),
                        at,
                        user_id: UserId(user),
                        kind,
                    });
                }
            }
            Ok(Ok(events))
        })
        .await
        .map_err(ReadEventsError::Store)?
    }
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn append(&self, user_id: &UserId, kind: &EventKind, now: UnixMs) -> StoreResult<()> {
        let (user_id, kind) = (user_id.clone(), kind.clone());
        self.call(move |conn| record(conn, now, &user_id, &kind).map_err(internal))
            .await?;
        self.events_written();
        Ok(())
    }

    async fn latest_id(&self) -> StoreResult<String> {
        self.call(|conn| {
            conn.row(
                "SELECT MAX(COALESCE((SELECT MAX(id) FROM events), 0), \
                 COALESCE((SELECT last_id FROM events_trimmed), 0))",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|id| id.to_string())
            .map_err(internal)
        })
        .await
    }

    async fn read_after(
        &self,
        after: &str,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<Event>, ReadEventsError> {
        let after = parse_id(after)?;
        // Subscribe before reading, so a commit between the read and the wait still wakes us.
        let mut written = self.events.subscribe();
        let events = self.read_rows(after, limit).await?;
        if !events.is_empty() || wait.is_zero() {
            return Ok(events);
        }
        let _ = tokio::time::timeout(wait, written.changed()).await;
        self.read_rows(after, limit).await
    }

    async fn trim(&self, before: UnixMs, max_events: u64) -> StoreResult<u64> {
        self.call(move |conn| {
            trim(conn, before, max_events)
                .map(|n| n as u64)
                .map_err(internal)
        })
        .await
    }
}

impl From<StoreError> for ReadEventsError {
    fn from(e: StoreError) -> Self {
        ReadEventsError::Store(e)
    }
}
