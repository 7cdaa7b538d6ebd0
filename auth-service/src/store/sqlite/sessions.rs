//! Sessions (see `SessionStore`): one row each, with the current and previous refresh token
//! hashes and, for the grace window only, the sealed successor.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::{Cached as _, SqliteStore, events, internal, presence};
use crate::domain::{EventKind, RevokeReason, SessionId, SignIn, UnixMs, UserId};
use crate::store::{
    EXPIRED_SESSION_RECALL_MS, NewSession, NextRefresh, RefreshHash, RotateOutcome, SessionRecord,
    SessionStore, StoreResult, rotated_expiry, session_timed_out, within_grace,
};

const COLUMNS: &str =
    "id, user_id, created_at, last_used_at, expires_at, user_agent, client_ip, sign_in";

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: SessionId(r.get(0)?),
        user_id: UserId(r.get(1)?),
        created_at: r.get(2)?,
        last_used_at: r.get(3)?,
        expires_at: r.get(4)?,
        user_agent: r.get(5)?,
        client_ip: r.get(6)?,
        sign_in: SignIn::from_stored(&r.get::<_, String>(7)?),
    })
}

/// A live session with its token state.
struct Live {
    record: SessionRecord,
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
    previous_used_at: Option<UnixMs>,
    successor: Option<Vec<u8>>,
}

impl Live {
    /// The session's row, live or timed out (kept for [`EXPIRED_SESSION_RECALL_MS`]).
    fn load(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<Option<Self>> {
        tx.row(
            &format!(
                "SELECT {COLUMNS}, refresh_hash, previous_hash, previous_used_at, successor \
                 FROM sessions WHERE id = ?1"
            ),
            params![id],
            |r| {
                Ok(Self {
                    record: session_from_row(r)?,
                    current: r.get(8)?,
                    previous: r.get(9)?,
                    previous_used_at: r.get(10)?,
                    successor: r.get(11)?,
                })
            },
        )
        .optional()
    }

    /// Whether `presented` is the current or the previous token (whenever used).
    fn is_token(&self, presented: &RefreshHash) -> bool {
        self.current.as_slice() == presented.as_slice()
            || self.previous.as_deref() == Some(presented.as_slice())
    }

    /// Whether `presented` is the previous token, presented inside the grace window.
    fn previous_in_grace(&self, presented: &RefreshHash, now: UnixMs, grace_ms: i64) -> bool {
        self.previous.as_deref() == Some(presented.as_slice())
            && self
                .previous_used_at
                .is_some_and(|used| within_grace(used, now, grace_ms))
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(
        &self,
        s: &NewSession,
        max_per_user: u32,
    ) -> StoreResult<Vec<SessionId>> {
        let s = s.clone();
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(internal)?;
            // Sessions that timed out a day ago are forgotten; newer ones stay to answer
            // SESSION_EXPIRED but count for nothing.
            tx.exec(
                "DELETE FROM sessions WHERE user_id = ?1 AND expires_at <= ?2",
                params![s.user_id.0, s.created_at - EXPIRED_SESSION_RECALL_MS],
            )
            .map_err(internal)?;
            let live: u32 = tx
                .row(
                    "SELECT COUNT(*) FROM sessions WHERE user_id = ?1 AND expires_at > ?2",
                    params![s.user_id.0, s.created_at],
                    |r| r.get(0),
                )
                .map_err(internal)?;
            let excess = (live + 1).saturating_sub(max_per_user.max(1));
            let mut evicted = Vec::new();
            if excess > 0 {
                let mut stmt = tx
                    .prepare(
                        "SELECT id FROM sessions WHERE user_id = ?1 AND expires_at > ?3 \
                         ORDER BY last_used_at, created_at, id LIMIT ?2",
                    )
                    .map_err(internal)?;
                evicted = stmt
                    .query_map(params![s.user_id.0, excess, s.created_at], |r| {
                        r.get::<_, String>(0)
                    })
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map_err(internal)?;
                drop(stmt);
                for id in &evicted {
                    tx.exec("DELETE FROM sessions WHERE id = ?1", params![id])
                        .map_err(internal)?;
                    revoked(&tx, s.created_at, &s.user_id, id, RevokeReason::Evicted)?;
                }
                presence::end_sessions(&tx, &s.user_id, &evicted, s.created_at)
                    .map_err(internal)?;
            }
            tx.exec(
                "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, \
                 user_agent, client_ip, refresh_hash, sign_in) \
                 VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    s.id.0,
                    s.user_id.0,
                    s.created_at,
                    s.expires_at,
                    s.user_agent,
                    s.client_ip,
                    s.refresh_hash.to_vec(),
                    s.sign_in.to_stored()
                ],
            )
            .map_err(internal)?;
            events::record(
                &tx,
                s.created_at,
                &s.user_id,
                &EventKind::SessionCreated {
                    session_id: s.id.clone(),
                },
            )
            .map_err(internal)?;
            tx.commit().map_err(internal)?;
            Ok(evicted.into_iter().map(SessionId).collect())
        })
        .await
        .inspect(|_| self.events_written())
    }

    async fn rotate_refresh(
        &self,
        id: &SessionId,
        presented: &RefreshHash,
        next: &NextRefresh,
        now: UnixMs,
        grace_ms: i64,
    ) -> StoreResult<RotateOutcome> {
        let (id, presented, next) = (id.0.clone(), *presented, next.clone());
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(internal)?;
            let Some(live) = Live::load(&tx, &id).map_err(internal)? else {
                return Ok(RotateOutcome::Invalid);
            };
            let record = &live.record;
            if session_timed_out(
                record.created_at,
                record.expires_at,
                now,
                next.max_lifetime_ms,
            ) {
                if !live.is_token(&presented) {
                    return Ok(RotateOutcome::Invalid);
                }
                end_session(&tx, now, &record.user_id, &id, RevokeReason::Expired)?;
                tx.commit().map_err(internal)?;
                return Ok(RotateOutcome::Expired {
                    user_id: live.record.user_id,
                });
            }
            if live.current.as_slice() == presented.as_slice() {
                let expires_at = rotated_expiry(record.created_at, record.expires_at, &next);
                // The successor is kept sealed for the grace window only (none without one).
                let successor = (grace_ms > 0).then_some(next.sealed);
                tx.exec(
                    "UPDATE sessions SET previous_hash = refresh_hash, previous_used_at = ?2, \
                     refresh_hash = ?3, successor = ?4, successor_until = ?5, \
                     last_used_at = ?2, expires_at = ?6 WHERE id = ?1",
                    params![
                        id,
                        now,
                        next.hash.to_vec(),
                        successor,
                        now + grace_ms,
                        expires_at
                    ],
                )
                .map_err(internal)?;
                tx.commit().map_err(internal)?;
                return Ok(RotateOutcome::Rotated(SessionRecord {
                    last_used_at: now,
                    expires_at,
                    ..live.record
                }));
            }
            if live.previous.as_deref() != Some(presented.as_slice()) {
                return Ok(RotateOutcome::Invalid);
            }
            if live.previous_in_grace(&presented, now, grace_ms) {
                return Ok(match live.successor {
                    Some(sealed) => RotateOutcome::Replayed {
                        session: live.record,
                        sealed,
                    },
                    // Swept by a clock that ran ahead: refused, not taken for a replay.
                    None => RotateOutcome::Invalid,
                });
            }
            // The previous token after the grace window: a replay of a stolen token.
            end_session(&tx, now, &record.user_id, &id, RevokeReason::ReuseDetected)?;
            tx.commit().map_err(internal)?;
            Ok(RotateOutcome::ReuseDetected {
                user_id: live.record.user_id,
            })
        })
        .await
        .inspect(|outcome| {
            if matches!(
                outcome,
                RotateOutcome::ReuseDetected { .. } | RotateOutcome::Expired { .. }
            ) {
                self.events_written();
            }
        })
    }

    async fn get_session(&self, id: &SessionId, now: UnixMs) -> StoreResult<Option<SessionRecord>> {
        let id = id.0.clone();
        self.call(move |conn| live_session(conn, &id, now).map_err(internal))
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

    async fn revoke_session(
        &self,
        id: &SessionId,
        user_id: &UserId,
        reason: RevokeReason,
        now: UnixMs,
    ) -> StoreResult<bool> {
        let (id, user_id) = (id.0.clone(), user_id.clone());
        let ended = self
            .call(move |conn| {
                let tx = conn.transaction().map_err(internal)?;
                // A session that timed out goes too, but does not count as ended now.
                let ended = tx
                    .row(
                        "DELETE FROM sessions WHERE id = ?1 AND user_id = ?2 \
                         RETURNING expires_at",
                        params![id, user_id.0],
                        |r| r.get::<_, UnixMs>(0),
                    )
                    .optional()
                    .map_err(internal)?
                    .is_some_and(|expires_at| expires_at > now);
                if ended {
                    revoked(&tx, now, &user_id, &id, reason)?;
                    presence::end_sessions(&tx, &user_id, std::slice::from_ref(&id), now)
                        .map_err(internal)?;
                }
                tx.commit().map_err(internal)?;
                Ok(ended)
            })
            .await?;
        if ended {
            self.events_written();
        }
        Ok(ended)
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
            let Some(live) = Live::load(&tx, &id).map_err(internal)? else {
                return Ok(None);
            };
            let usable = live.record.expires_at > now
                && (live.current.as_slice() == presented.as_slice()
                    || live.previous_in_grace(&presented, now, grace_ms));
            if !usable {
                return Ok(None);
            }
            end_session(&tx, now, &live.record.user_id, &id, RevokeReason::Logout)?;
            tx.commit().map_err(internal)?;
            Ok(Some(live.record))
        })
        .await
        .inspect(|ended| {
            if ended.is_some() {
                self.events_written();
            }
        })
    }

    async fn revoke_all(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        reason: RevokeReason,
        now: UnixMs,
    ) -> StoreResult<u32> {
        let (user_id, keep) = (
            user_id.clone(),
            keep.map(|k| k.0.clone()).unwrap_or_default(),
        );
        let ended = self
            .call(move |conn| {
                let tx = conn.transaction().map_err(internal)?;
                // Sessions that timed out go too, but only live ones count as ended.
                let ids: Vec<String> = tx
                    .prepare(
                        "DELETE FROM sessions WHERE user_id = ?1 AND id != ?2 \
                         RETURNING id, expires_at",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_map(params![user_id.0, keep], |r| {
                            Ok((r.get::<_, String>(0)?, r.get::<_, UnixMs>(1)?))
                        })?
                        .filter(|row| row.as_ref().map_or(true, |(_, exp)| *exp > now))
                        .map(|row| row.map(|(id, _)| id))
                        .collect()
                    })
                    .map_err(internal)?;
                for id in &ids {
                    revoked(&tx, now, &user_id, id, reason)?;
                }
                presence::end_sessions(&tx, &user_id, &ids, now).map_err(internal)?;
                tx.commit().map_err(internal)?;
                Ok(u32::try_from(ids.len()).unwrap_or(u32::MAX))
            })
            .await?;
        if ended > 0 {
            self.events_written();
        }
        Ok(ended)
    }
}

/// Deletes session `id` with its session.revoked event and its presence, in the caller's
/// transaction.
fn end_session(
    tx: &Transaction<'_>,
    now: UnixMs,
    user_id: &UserId,
    id: &str,
    reason: RevokeReason,
) -> StoreResult<()> {
    tx.exec("DELETE FROM sessions WHERE id = ?1", params![id])
        .map_err(internal)?;
    revoked(tx, now, user_id, id, reason)?;
    presence::end_sessions(tx, user_id, std::slice::from_ref(&id.to_owned()), now).map_err(internal)
}

/// The session.revoked event of session `id`, in the caller's transaction.
fn revoked(
    tx: &rusqlite::Connection,
    now: UnixMs,
    user_id: &UserId,
    id: &str,
    reason: RevokeReason,
) -> StoreResult<()> {
    events::record(
        tx,
        now,
        user_id,
        &EventKind::SessionRevoked {
            session_id: SessionId(id.to_owned()),
            reason,
        },
    )
    .map_err(internal)
}

/// The session `id` unless it has expired (or never was).
pub(super) fn live_session(
    conn: &Connection,
    id: &str,
    now: UnixMs,
) -> rusqlite::Result<Option<SessionRecord>> {
    conn.row(
        &format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1 AND expires_at > ?2"),
        params![id, now],
        session_from_row,
    )
    .optional()
}
