//! Presence on Redis: `user:{<uid>}:presence`, a hash in the slot of the user's sessions with
//! a field per session that heartbeat (`s:<sid>` = `<expires_at>:<status>`), the status last
//! derived (`status`) and when the user was last seen (`seen`); and `{presence}:due`, users by
//! the time their last heartbeat runs out, which the periodic sweep reads. Statuses are derived
//! when read ([`derive_status`]); no timer per user lives anywhere.

use super::{RedisStore, Reply, codes::unknown_status};
use crate::domain::{SessionId, UnixMs, UserId, UserStatus};
use crate::store::{
    Heartbeat, HeartbeatError, PresenceStore, PresenceView, StoreResult, derive_status,
};
use async_trait::async_trait;

/// How long a user's last-seen time is kept after their last heartbeat or session end.
pub(super) const PRESENCE_KEEP_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// Users swept per round, and rounds per sweep (a failed user stays due for the next one).
const SWEEP_BATCH: isize = 256;
const SWEEP_ROUNDS: usize = 64;

/// A settle reply `[0, status, seen, changed, deadline]` as a view, whether it changed, and
/// the latest expiry of a live heartbeat (0 when none).
fn settled(user_id: &UserId, reply: &Reply) -> StoreResult<(Heartbeat, i64)> {
    Ok((
        Heartbeat {
            presence: PresenceView {
                user_id: user_id.clone(),
                status: UserStatus::from_stored(&reply.text(1)?),
                last_seen: Some(reply.int(2)?),
            },
            changed: reply.int(3)? == 1,
        },
        reply.int(4)?,
    ))
}

/// A presence hash (`HGETALL`) as a view at `now`.
fn view_from_hash(user_id: UserId, fields: Vec<(String, String)>, now: UnixMs) -> PresenceView {
    let mut last_seen = None;
    let mut live = Vec::new();
    for (field, value) in fields {
        if field == "seen" {
            last_seen = value.parse().ok();
        } else if field.starts_with("s:")
            && let Some((expires, status)) = value.split_once(':')
            && let Ok(expires) = expires.parse::<i64>()
        {
            live.push((UserStatus::from_stored(status), expires));
        }
    }
    PresenceView {
        user_id,
        status: derive_status(live, now),
        last_seen,
    }
}

impl RedisStore {
    /// Ends the presence of sessions `ids` of `user` (they ended); a presence.changed event,
    /// when the user's status moved, goes to the user's outbox in the same script.
    pub(super) async fn end_presence(
        &self,
        user: &UserId,
        ids: &[String],
        now: UnixMs,
    ) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut call = self.scripts.end_presence.key(self.keys.presence(&user.0));
        call.key(self.keys.outbox(&user.0))
            .arg(now)
            .arg(PRESENCE_KEEP_MS);
        for id in ids {
            call.arg(id);
        }
        let reply = self.eval("end_presence", &call).await?;
        match reply.status()? {
            0 | 1 => Ok(()),
            other => Err(unknown_status("end_presence", other)),
        }
    }
}

#[async_trait]
impl PresenceStore for RedisStore {
    async fn heartbeat(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        status: UserStatus,
        now: UnixMs,
        ttl_ms: i64,
    ) -> Result<Heartbeat, HeartbeatError> {
        let session = self.keys.session_of(user_id, session_id);
        let mut call = self.scripts.heartbeat.key(self.keys.presence(&user_id.0));
        call.key(&session.record)
            .key(self.keys.outbox(&user_id.0))
            .arg(&session_id.0)
            .arg(&user_id.0)
            .arg(now)
            .arg(ttl_ms)
            .arg(status.as_str())
            .arg(PRESENCE_KEEP_MS);
        let reply = self.eval("heartbeat", &call).await?;
        let (beat, deadline) = match reply.status()? {
            0 => settled(user_id, &reply)?,
            1 => return Err(HeartbeatError::SessionEnded),
            other => return Err(unknown_status("heartbeat", other).into()),
        };
        // When the sweep should look at this user: the latest expiry, only ever raised.
        let mut pipe = redis::pipe();
        let due = self.keys.presence_due();
        pipe.cmd("ZADD")
            .arg(&due)
            .arg("GT")
            .arg(deadline)
            .arg(&user_id.0)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&due)
            .arg(ttl_ms + PRESENCE_KEEP_MS.min(10 * 60 * 1000))
            .ignore();
        self.query_pipe::<()>("presence_due", &pipe).await?;
        if beat.changed {
            self.relay_after(user_id).await;
        }
        Ok(beat)
    }

    async fn get_presence(&self, ids: &[UserId], now: UnixMs) -> StoreResult<Vec<PresenceView>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // One key per user: slots apart on a cluster.
        let cmds = ids
            .iter()
            .map(|id| {
                let mut cmd = redis::cmd("HGETALL");
                cmd.arg(self.keys.presence(&id.0));
                cmd
            })
            .collect();
        let hashes = self.query_each("get_presence", cmds).await?;
        ids.iter()
            .zip(hashes)
            .map(|(id, fields)| Ok(view_from_hash(id.clone(), super::parse(fields)?, now)))
            .collect()
    }

    /// Batches of due users until none is left (at most [`SWEEP_ROUNDS`] per call); a user
    /// whose settling fails is logged and left for the next sweep, never stalling the rest.
    async fn expire_presence(&self, now: UnixMs) -> StoreResult<Vec<PresenceView>> {
        let due = self.keys.presence_due();
        let mut changed = Vec::new();
        // Users whose settling failed stay due; later rounds read past them.
        let mut failed = 0;
        for _ in 0..SWEEP_ROUNDS {
            let read: StoreResult<Vec<String>> = self
                .query(
                    "presence_sweep",
                    redis::cmd("ZRANGE")
                        .arg(&due)
                        .arg("-inf")
                        .arg(now)
                        .arg("BYSCORE")
                        .arg("LIMIT")
                        .arg(failed)
                        .arg(SWEEP_BATCH),
                )
                .await;
            // Transitions settled so far are reported even when a later round fails.
            let users = match read {
                Ok(users) => users,
                Err(e) if !changed.is_empty() => {
                    tracing::warn!(error = %e, "presence sweep stopped early");
                    break;
                }
                Err(e) => return Err(e),
            };
            let batch = users.len();
            for user in users {
                let user_id = UserId(user);
                match self.settle_expired(&user_id, now).await {
                    Ok(Some(view)) => changed.push(view),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, user_id = %user_id.0, "cannot settle a run-out presence");
                        failed += 1;
                        continue;
                    }
                }
                // Off the due list unless a heartbeat meanwhile moved its time past now.
                let mut forget = self.scripts.presence_undue.key(&due);
                forget.arg(&user_id.0).arg(now);
                if let Err(e) = self.eval("presence_undue", &forget).await {
                    tracing::warn!(error = %e, "presence sweep stopped early");
                    return Ok(changed);
                }
            }
            if batch < SWEEP_BATCH as usize {
                break;
            }
        }
        Ok(changed)
    }
}

impl RedisStore {
    /// Settles one user whose heartbeats may have run out; the view when it changed.
    async fn settle_expired(
        &self,
        user_id: &UserId,
        now: UnixMs,
    ) -> StoreResult<Option<PresenceView>> {
        let mut call = self
            .scripts
            .expire_presence
            .key(self.keys.presence(&user_id.0));
        call.key(self.keys.outbox(&user_id.0))
            .arg(now)
            .arg(PRESENCE_KEEP_MS);
        let reply = self.eval("expire_presence", &call).await?;
        if reply.status()? != 0 {
            return Ok(None);
        }
        let (beat, _) = settled(user_id, &reply)?;
        if !beat.changed {
            return Ok(None);
        }
        self.relay_after(user_id).await;
        Ok(Some(beat.presence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_read_with_the_shared_rule() {
        let fields = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let user = UserId("u".into());
        let view = view_from_hash(
            user.clone(),
            fields(&[
                ("s:a", "100:away"),
                ("s:b", "50:online"),
                ("seen", "40"),
                ("status", "online"),
            ]),
            60,
        );
        assert_eq!((view.status, view.last_seen), (UserStatus::Away, Some(40)));
        let view = view_from_hash(user, fields(&[("s:a", "100:away")]), 100);
        assert_eq!((view.status, view.last_seen), (UserStatus::Offline, None));
    }
}
