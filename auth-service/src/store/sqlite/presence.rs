//! Presence on SQLite: a row per session that heartbeat (`presence`, live until its
//! `expires_at`) and per user the status last derived and when they were last seen
//! (`user_presence`). Every change settles the user's status in its own transaction and
//! writes presence.changed there when it moved.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Cached as _, SqliteStore, events, internal};
use crate::domain::{EventKind, SessionId, UnixMs, UserId, UserStatus};
use crate::store::{
    Heartbeat, HeartbeatError, PresenceStore, PresenceView, StoreResult, derive_status,
};

/// Derives `user_id`'s status from its live heartbeats, stores it (with `now` as last seen
/// when `seen`), and records presence.changed when it moved. Call it inside a transaction.
pub(super) fn settle(
    conn: &Connection,
    user_id: &UserId,
    now: UnixMs,
    seen: bool,
) -> rusqlite::Result<Heartbeat> {
    let live: Vec<(UserStatus, UnixMs)> = conn
        .prepare_cached(
            "SELECT status, expires_at FROM presence WHERE user_id = ?1 AND expires_at > ?2",
        )?
        .query_map(params![user_id.0, now], |r| {
            Ok((UserStatus::from_stored(&r.get::<_, String>(0)?), r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let status = derive_status(live, now);
    let before: Option<(String, UnixMs)> = conn
        .row(
            "SELECT status, last_seen FROM user_presence WHERE user_id = ?1",
            params![user_id.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let previous = before
        .as_ref()
        .map_or(UserStatus::Offline, |(s, _)| UserStatus::from_stored(s));
    let last_seen = match (&before, seen) {
        (_, true) | (None, false) => now,
        (Some((_, at)), false) => *at,
    };
    conn.exec(
        "INSERT INTO user_presence (user_id, status, last_seen) VALUES (?1, ?2, ?3) \
         ON CONFLICT (user_id) DO UPDATE SET status = excluded.status, \
         last_seen = excluded.last_seen",
        params![user_id.0, status.as_str(), last_seen],
    )?;
    let changed = status != previous;
    if changed {
        events::record(conn, now, user_id, &EventKind::PresenceChanged { status })?;
    }
    Ok(Heartbeat {
        presence: PresenceView {
            user_id: user_id.clone(),
            status,
            last_seen: Some(last_seen),
        },
        changed,
    })
}

/// Ends the presence of sessions `ids` of `user_id` (they ended): the user is last seen now,
/// and their status settles. Call it inside the transaction that ended them.
pub(super) fn end_sessions(
    conn: &Connection,
    user_id: &UserId,
    ids: &[String],
    now: UnixMs,
) -> rusqlite::Result<()> {
    let mut ended = 0;
    for id in ids {
        ended += conn.exec("DELETE FROM presence WHERE session_id = ?1", params![id])?;
    }
    if ended > 0 {
        settle(conn, user_id, now, true)?;
    }
    Ok(())
}

#[async_trait]
impl PresenceStore for SqliteStore {
    async fn heartbeat(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        status: UserStatus,
        now: UnixMs,
        ttl_ms: i64,
    ) -> Result<Heartbeat, HeartbeatError> {
        let (user_id, session_id) = (user_id.clone(), session_id.clone());
        let beat = self
            .call(move |conn| {
                let tx = conn.transaction().map_err(internal)?;
                let live = tx
                    .row(
                        "SELECT 1 FROM sessions WHERE id = ?1 AND user_id = ?2 AND expires_at > ?3",
                        params![session_id.0, user_id.0, now],
                        |_| Ok(()),
                    )
                    .optional()
                    .map_err(internal)?
                    .is_some();
                if !live {
                    return Ok(Err(HeartbeatError::SessionEnded));
                }
                tx.exec(
                    "INSERT INTO presence (session_id, user_id, status, expires_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (session_id) DO UPDATE SET \
                     status = excluded.status, expires_at = excluded.expires_at",
                    params![session_id.0, user_id.0, status.as_str(), now + ttl_ms],
                )
                .map_err(internal)?;
                let beat = settle(&tx, &user_id, now, true).map_err(internal)?;
                tx.commit().map_err(internal)?;
                Ok(Ok(beat))
            })
            .await??;
        if beat.changed {
            self.events_written();
        }
        Ok(beat)
    }

    async fn get_presence(&self, ids: &[UserId], now: UnixMs) -> StoreResult<Vec<PresenceView>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = ids.iter().map(|i| i.0.clone()).collect();
        self.call(move |conn| presence_of(conn, ids, now).map_err(internal))
            .await
    }

    async fn expire_presence(&self, now: UnixMs) -> StoreResult<Vec<PresenceView>> {
        let changed = self
            .call(move |conn| {
                let tx = conn.transaction().map_err(internal)?;
                let users: Vec<String> = tx
                    .prepare(
                        "SELECT DISTINCT user_id FROM presence WHERE expires_at <= ?1 \
                         UNION SELECT user_id FROM user_presence u WHERE status != 'offline' \
                         AND NOT EXISTS (SELECT 1 FROM presence p \
                         WHERE p.user_id = u.user_id AND p.expires_at > ?1)",
                    )
                    .and_then(|mut stmt| stmt.query_map(params![now], |r| r.get(0))?.collect())
                    .map_err(internal)?;
                tx.exec("DELETE FROM presence WHERE expires_at <= ?1", params![now])
                    .map_err(internal)?;
                let mut changed = Vec::new();
                for user in users {
                    let beat = settle(&tx, &UserId(user), now, false).map_err(internal)?;
                    if beat.changed {
                        changed.push(beat.presence);
                    }
                }
                tx.commit().map_err(internal)?;
                Ok(changed)
            })
            .await?;
        if !changed.is_empty() {
            self.events_written();
        }
        Ok(changed)
    }
}

/// Runs `f` on `sql` prepared: kept in the statement cache when `keep`, else parsed for this
/// call only (lists of any length would crowd the cache out).
fn with_statement<T>(
    conn: &Connection,
    sql: &str,
    keep: bool,
    f: impl FnOnce(&mut rusqlite::Statement<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    if keep {
        f(&mut *conn.prepare_cached(sql)?)
    } else {
        f(&mut conn.prepare(sql)?)
    }
}

/// The presence of `ids`, in their order. One user's statements (GetCurrentUser, a profile)
/// are kept parsed; a list's are prepared for its length.
pub(super) fn presence_of(
    conn: &Connection,
    ids: Vec<String>,
    now: UnixMs,
) -> rusqlite::Result<Vec<PresenceView>> {
    let marks = vec!["?"; ids.len()].join(",");
    let live_sql = format!(
        "SELECT user_id, status, expires_at FROM presence \
         WHERE user_id IN ({marks}) AND expires_at > ?"
    );
    let seen_sql =
        format!("SELECT user_id, last_seen FROM user_presence WHERE user_id IN ({marks})");
    let keep = ids.len() == 1;
    let mut live: std::collections::HashMap<String, Vec<(UserStatus, UnixMs)>> =
        std::collections::HashMap::new();
    with_statement(conn, &live_sql, keep, |stmt| {
        let params = ids
            .iter()
            .map(|id| id as &dyn rusqlite::ToSql)
            .chain([&now as &dyn rusqlite::ToSql]);
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
            Ok((
                r.get::<_, String>(0)?,
                UserStatus::from_stored(&r.get::<_, String>(1)?),
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (user, status, expires_at) = row?;
            live.entry(user).or_default().push((status, expires_at));
        }
        Ok(())
    })?;
    let seen: std::collections::HashMap<String, i64> =
        with_statement(conn, &seen_sql, keep, |stmt| {
            stmt.query_map(rusqlite::params_from_iter(ids.iter()), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect()
        })?;
    Ok(ids
        .into_iter()
        .map(|id| PresenceView {
            status: derive_status(live.remove(&id).unwrap_or_default(), now),
            last_seen: seen.get(&id).copied(),
            user_id: UserId(id),
        })
        .collect())
}
