use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::{SqliteStore, internal};
use crate::domain::{SessionId, UnixMs, UserId};
use crate::store::{
    NewSession, RefreshHash, RotateOutcome, SessionRecord, SessionStore, StoreResult,
};

const COLUMNS: &str = "id, user_id, created_at, last_used_at, expires_at, user_agent, client_ip";

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: SessionId(r.get(0)?),
        user_id: UserId(r.get(1)?),
        created_at: r.get(2)?,
        last_used_at: r.get(3)?,
        expires_at: r.get(4)?,
        user_agent: r.get(5)?,
        client_ip: r.get(6)?,
    })
}

fn live_session(
    tx: &Transaction<'_>,
    id: &str,
    now: UnixMs,
) -> rusqlite::Result<Option<SessionRecord>> {
    tx.query_row(
        &format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1 AND expires_at > ?2"),
        params![id, now],
        session_from_row,
    )
    .optional()
}

/// `Some(used_at)` for a refresh token of session `id` that has not expired.
fn live_token(
    tx: &Transaction<'_>,
    id: &str,
    hash: &RefreshHash,
    now: UnixMs,
) -> rusqlite::Result<Option<Option<UnixMs>>> {
    tx.query_row(
        "SELECT used_at FROM refresh_tokens WHERE hash = ?1 AND session_id = ?2 AND expires_at > ?3",
        params![hash.to_vec(), id, now],
        |r| r.get(0),
    )
    .optional()
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, s: &NewSession) -> StoreResult<()> {
        let s = s.clone();
        self.call(move |conn| {
            let tx = conn.transaction().map_err(internal)?;
            tx.execute(
                "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, \
                 user_agent, client_ip) VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)",
                params![
                    s.id.0,
                    s.user_id.0,
                    s.created_at,
                    s.expires_at,
                    s.user_agent,
                    s.client_ip
                ],
            )
            .map_err(internal)?;
            tx.execute(
                "INSERT INTO refresh_tokens (hash, session_id, used_at, expires_at) \
                 VALUES (?1, ?2, NULL, ?3)",
                params![s.refresh_hash.to_vec(), s.id.0, s.expires_at],
            )
            .map_err(internal)?;
            tx.commit().map_err(internal)
        })
        .await
    }

    async fn rotate_refresh(
        &self,
        id: &SessionId,
        presented: &RefreshHash,
        next: &RefreshHash,
        next_expires_at: UnixMs,
        now: UnixMs,
        grace_ms: i64,
    ) -> StoreResult<RotateOutcome> {
        let (id, presented, next) = (id.0.clone(), *presented, *next);
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(internal)?;
            let Some(session) = live_session(&tx, &id, now).map_err(internal)? else {
                return Ok(RotateOutcome::Invalid);
            };
            let Some(used_at) = live_token(&tx, &id, &presented, now).map_err(internal)? else {
                return Ok(RotateOutcome::Invalid);
            };
            match used_at {
                None => {
                    tx.execute(
                        "UPDATE refresh_tokens SET used_at = ?2 WHERE hash = ?1",
                        params![presented.to_vec(), now],
                    )
                    .map_err(internal)?;
                }
                // A use stamped before the recorded one counts as simultaneous (see the trait).
                Some(used) if (now - used).max(0) < grace_ms => {}
                Some(_) => {
                    tx.execute("DELETE FROM sessions WHERE id = ?1", params![id])
                        .map_err(internal)?;
                    tx.commit().map_err(internal)?;
                    return Ok(RotateOutcome::ReuseDetected {
                        user_id: session.user_id,
                    });
                }
            }
            tx.execute(
                "INSERT INTO refresh_tokens (hash, session_id, used_at, expires_at) \
                 VALUES (?1, ?2, NULL, ?3)",
                params![next.to_vec(), id, next_expires_at],
            )
            .map_err(internal)?;
            let expires_at = session.expires_at.max(next_expires_at);
            tx.execute(
                "UPDATE sessions SET last_used_at = ?2, expires_at = ?3 WHERE id = ?1",
                params![id, now, expires_at],
            )
            .map_err(internal)?;
            tx.commit().map_err(internal)?;
            Ok(RotateOutcome::Rotated(SessionRecord {
                last_used_at: now,
                expires_at,
                ..session
            }))
        })
        .await
    }

    async fn get_session(&self, id: &SessionId, now: UnixMs) -> StoreResult<Option<SessionRecord>> {
        let id = id.0.clone();
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1 AND expires_at > ?2"),
                params![id, now],
                session_from_row,
            )
            .optional()
            .map_err(internal)
        })
        .await
    }

    async fn list_sessions(
        &self,
        user_id: &UserId,
        now: UnixMs,
    ) -> StoreResult<Vec<SessionRecord>> {
        let user_id = user_id.0.clone();
        self.call(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM sessions WHERE user_id = ?1 AND expires_at > ?2 \
                     ORDER BY created_at DESC, id"
                ))
                .map_err(internal)?;
            stmt.query_map(params![user_id, now], session_from_row)
                .and_then(|rows| rows.collect())
                .map_err(internal)
        })
        .await
    }

    async fn revoke_session(&self, id: &SessionId, user_id: &UserId) -> StoreResult<bool> {
        let (id, user_id) = (id.0.clone(), user_id.0.clone());
        self.call(move |conn| {
            conn.execute(
                "DELETE FROM sessions WHERE id = ?1 AND user_id = ?2",
                params![id, user_id],
            )
            .map(|n| n == 1)
            .map_err(internal)
        })
        .await
    }

    async fn revoke_by_refresh(
        &self,
        id: &SessionId,
        presented: &RefreshHash,
        now: UnixMs,
        grace_ms: i64,
    ) -> StoreResult<Option<SessionRecord>> {
        let (id, presented) = (id.0.clone(), *presented);
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(internal)?;
            let Some(session) = live_session(&tx, &id, now).map_err(internal)? else {
                return Ok(None);
            };
            match live_token(&tx, &id, &presented, now).map_err(internal)? {
                Some(None) => {}
                Some(Some(used)) if (now - used).max(0) < grace_ms => {}
                _ => return Ok(None),
            }
            tx.execute("DELETE FROM sessions WHERE id = ?1", params![id])
                .map_err(internal)?;
            tx.commit().map_err(internal)?;
            Ok(Some(session))
        })
        .await
    }

    async fn revoke_all(&self, user_id: &UserId, keep: Option<&SessionId>) -> StoreResult<u32> {
        let (user_id, keep) = (
            user_id.0.clone(),
            keep.map(|k| k.0.clone()).unwrap_or_default(),
        );
        self.call(move |conn| {
            conn.execute(
                "DELETE FROM sessions WHERE user_id = ?1 AND id != ?2",
                params![user_id, keep],
            )
            .map(|n| n as u32)
            .map_err(internal)
        })
        .await
    }
}
