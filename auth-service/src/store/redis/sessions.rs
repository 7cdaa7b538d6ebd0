//! Sessions and their refresh-token families (same rules as `sqlite/sessions.rs`). A session's
//! keys are tagged by its user (see the module docs); `session:{<sid>}:user` finds the user
//! when only the session id is known.

use async_trait::async_trait;
use redis::Value;

use super::{RedisStore, Reply, codes::unknown_status, hex, keys::SessionKeys};
use crate::domain::{RevokeReason, SessionId, SignIn, UnixMs, UserId};
use crate::store::{
    EXPIRED_SESSION_RECALL_MS, NewSession, NextRefresh, RefreshHash, RotateOutcome, SessionRecord,
    SessionStore, StoreError, StoreResult,
};

/// Sessions ended per script call by `revoke_all`, so one call stays short.
const REVOKE_BATCH: usize = 128;

/// Eviction candidates handed to one `CREATE_SESSION` call (the user's sessions that expire
/// first); a script that needs more asks again.
const EVICTION_CANDIDATES: isize = 16;

/// The fields of the session hash, in the order the scripts return them.
const FIELDS: [&str; 7] = [
    "user_id",
    "created_at",
    "last_used_at",
    "expires_at",
    "user_agent",
    "client_ip",
    "sign_in",
];

impl RedisStore {
    /// Whose session `id` is, if it still exists.
    async fn owner(&self, id: &SessionId) -> StoreResult<Option<UserId>> {
        let owner: Option<String> = self
            .query(
                "session_owner",
                redis::cmd("GET").arg(self.keys.session_owner(id)),
            )
            .await?;
        Ok(owner.map(UserId))
    }

    /// Drops the owner pointers of ended sessions. A pointer left behind only names a session
    /// that no longer exists (and expires with it), so a failure is logged, not returned.
    async fn forget_owners<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut ids = ids.into_iter().peekable();
        if ids.peek().is_none() {
            return; // an empty pipeline is an error, and there is nothing to forget
        }
        // One pointer per session: slots apart on a cluster.
        let cmds = ids
            .map(|id| {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(self.keys.session_owner(&SessionId(id.to_owned())));
                cmd
            })
            .collect();
        if let Err(e) = self.query_each("forget_session_owner", cmds).await {
            tracing::warn!(error = %e, "cannot delete a session owner pointer; it expires by itself");
        }
    }

    /// After sessions `ended` of `user` ended: their presence ends too, and the events the
    /// scripts put in the user's outbox go to the log.
    async fn after_ending(&self, user: &UserId, ended: &[String], now: UnixMs) {
        if let Err(e) = self.end_presence(user, ended, now).await {
            // Their heartbeats run out by themselves within PRESENCE_TTL.
            tracing::warn!(error = %e, "cannot end the presence of ended sessions");
        }
        self.relay_after(user).await;
    }

    /// Ends sessions `ids` of `user` in one script; returns how many existed.
    async fn revoke_ids(
        &self,
        user: &str,
        ids: &[String],
        reason: RevokeReason,
        now: UnixMs,
    ) -> StoreResult<u32> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut call = self
            .scripts
            .revoke_sessions
            .key(self.keys.session_index(user));
        call.arg(now).arg(reason.as_str());
        for id in ids {
            let keys = self.keys.session(user, id);
            call.key(keys.record).key(keys.successor).arg(id);
        }
        call.key(self.keys.outbox(user));
        let reply = self.eval("revoke_sessions", &call).await?;
        let ended = (0..reply.0.len())
            .map(|i| reply.text(i))
            .collect::<StoreResult<Vec<_>>>()?;
        // Only the pointers of sessions that ended: an id of another user's session names
        // nothing under this user and must keep working for its owner.
        self.forget_owners(ended.iter().map(String::as_str)).await;
        self.after_ending(&UserId(user.to_owned()), &ended, now)
            .await;
        Ok(u32::try_from(ended.len()).unwrap_or(u32::MAX))
    }
}

/// A session record from a script reply: `[status, user, created, last used, expires, agent, ip]`.
/// The scripts do not return how it signed in (nothing that calls them needs it).
fn record_from_reply(id: &SessionId, reply: &Reply) -> StoreResult<SessionRecord> {
    Ok(SessionRecord {
        id: id.clone(),
        user_id: UserId(reply.text(1)?),
        created_at: reply.int(2)?,
        last_used_at: reply.int(3)?,
        expires_at: reply.int(4)?,
        user_agent: reply.text(5)?,
        client_ip: reply.text(6)?,
        sign_in: None,
    })
}

/// A session record from `HMGET` of [`FIELDS`]; `None` when the hash does not exist.
fn record_from_fields(id: &str, values: Vec<Value>) -> StoreResult<Option<SessionRecord>> {
    let mut reply = vec![Value::Int(0)];
    reply.extend(values);
    let reply = Reply(reply);
    if matches!(reply.0.get(1), None | Some(Value::Nil)) {
        return Ok(None);
    }
    let mut record = record_from_reply(&SessionId(id.to_owned()), &reply)?;
    // Absent for a session started before sign-in methods were kept.
    record.sign_in = reply
        .text(7)
        .ok()
        .and_then(|stored| SignIn::from_stored(&stored));
    Ok(Some(record))
}

fn session_call<'a>(script: &'a redis::Script, keys: &SessionKeys) -> redis::ScriptInvocation<'a> {
    let mut call = script.key(&keys.record);
    call.key(&keys.successor).key(&keys.index);
    call
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create_session(
        &self,
        s: &NewSession,
        max_per_user: u32,
    ) -> StoreResult<Vec<SessionId>> {
        let keys = self.keys.session_of(&s.user_id, &s.id);
        // The pointer first (a session is never reachable by id without it, and a pointer
        // whose session never got written names nothing), with the sessions that would be
        // evicted first, in one round trip.
        // The pointer is in the session's slot, the index in the user's.
        let mut owner = redis::cmd("SET");
        owner
            .arg(self.keys.session_owner(&s.id))
            .arg(&s.user_id.0)
            .arg("PXAT")
            .arg(s.expires_at + EXPIRED_SESSION_RECALL_MS);
        let mut range = redis::cmd("ZRANGE");
        range.arg(&keys.index).arg(0).arg(EVICTION_CANDIDATES - 1);
        let mut replies = self
            .query_each("create_session_owner", vec![owner, range])
            .await?;
        let mut candidates: Vec<String> = super::parse(replies.pop().unwrap_or(Value::Nil))?;
        // The script refuses when the candidates were too few (the index changed meanwhile,
        // or the cap was lowered); a few more rounds always converge.
        for _ in 0..16 {
            let mut call = session_call(&self.scripts.create_session, &keys);
            for victim in &candidates {
                let victim_keys = self.keys.session(&s.user_id.0, victim);
                call.key(victim_keys.record).key(victim_keys.successor);
            }
            call.arg(&s.id.0)
                .arg(&s.user_id.0)
                .arg(s.created_at)
                .arg(s.expires_at)
                .arg(&s.user_agent)
                .arg(&s.client_ip)
                .arg(hex(&s.refresh_hash))
                .arg(s.sign_in.to_stored())
                .arg(max_per_user.max(1));
            for victim in &candidates {
                call.arg(victim);
            }
            call.key(self.keys.outbox(&s.user_id.0));
            let reply = self.eval("create_session", &call).await?;
            match reply.status()? {
                0 => {
                    let evicted = (1..reply.0.len())
                        .map(|i| reply.text(i))
                        .collect::<StoreResult<Vec<_>>>()?;
                    self.forget_owners(evicted.iter().map(String::as_str)).await;
                    self.after_ending(&s.user_id, &evicted, s.created_at).await;
                    return Ok(evicted.into_iter().map(SessionId).collect());
                }
                1 => {
                    let more = (candidates.len() as isize + EVICTION_CANDIDATES).min(4096);
                    candidates = self
                        .query(
                            "create_session_candidates",
                            redis::cmd("ZRANGE").arg(&keys.index).arg(0).arg(more - 1),
                        )
                        .await?;
                }
                other => return Err(unknown_status("create_session", other)),
            }
        }
        Err(StoreError::Internal(
            "could not make room for a new session".into(),
        ))
    }

    async fn rotate_refresh(
        &self,
        id: &SessionId,
        presented: &RefreshHash,
        next: &NextRefresh,
        now: UnixMs,
        grace_ms: i64,
    ) -> StoreResult<RotateOutcome> {
        let Some(user) = self.owner(id).await? else {
            return Ok(RotateOutcome::Invalid);
        };
        let keys = self.keys.session_of(&user, id);
        let mut call = session_call(&self.scripts.rotate_refresh, &keys);
        call.key(self.keys.outbox(&user.0));
        call.arg(&id.0)
            .arg(now)
            .arg(hex(presented))
            .arg(hex(&next.hash))
            .arg(&next.sealed[..])
            .arg(next.expires_at)
            .arg(grace_ms)
            .arg(next.max_lifetime_ms);
        let reply = self.eval("rotate_refresh", &call).await?;
        match reply.status()? {
            0 => Ok(RotateOutcome::Invalid),
            1 => {
                let record = record_from_reply(id, &reply)?;
                // The pointer follows the session's new expiry. If this fails the pointer
                // expires first and the session can only end early: logged, not returned.
                let extended = self
                    .query::<()>(
                        "extend_session_owner",
                        redis::cmd("PEXPIREAT")
                            .arg(self.keys.session_owner(id))
                            .arg(record.expires_at + EXPIRED_SESSION_RECALL_MS),
                    )
                    .await;
                if let Err(e) = extended {
                    tracing::warn!(error = %e, session_id = %id.0, "cannot extend a session owner pointer");
                }
                Ok(RotateOutcome::Rotated(record))
            }
            status @ (2 | 4) => {
                self.forget_owners([id.0.as_str()]).await;
                let user_id = UserId(reply.text(1)?);
                self.after_ending(&user_id, std::slice::from_ref(&id.0), now)
                    .await;
                Ok(if status == 2 {
                    RotateOutcome::ReuseDetected { user_id }
                } else {
                    RotateOutcome::Expired { user_id }
                })
            }
            3 => Ok(RotateOutcome::Replayed {
                session: record_from_reply(id, &reply)?,
                sealed: reply.bytes(7)?,
            }),
            other => Err(unknown_status("rotate_refresh", other)),
        }
    }

    async fn get_session(&self, id: &SessionId, now: UnixMs) -> StoreResult<Option<SessionRecord>> {
        let Some(user) = self.owner(id).await? else {
            return Ok(None);
        };
        let keys = self.keys.session_of(&user, id);
        let values: Vec<Value> = self
            .query(
                "get_session",
                redis::cmd("HMGET").arg(&keys.record).arg(&FIELDS[..]),
            )
            .await?;
        Ok(record_from_fields(&id.0, values)?.filter(|s| s.expires_at > now))
    }

    async fn list_sessions(
        &self,
        user_id: &UserId,
        now: UnixMs,
    ) -> StoreResult<Vec<SessionRecord>> {
        let ids: Vec<String> = self
            .query(
                "list_sessions",
                redis::cmd("ZRANGE")
                    .arg(self.keys.session_index(&user_id.0))
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET")
                .arg(self.keys.session(&user_id.0, id).record)
                .arg(&FIELDS[..]);
        }
        let rows: Vec<Vec<Value>> = self.query_pipe("list_sessions", &pipe).await?;
        let mut live = Vec::new();
        let mut gone = Vec::new();
        for (id, values) in ids.iter().zip(rows) {
            match record_from_fields(id, values)? {
                Some(s) if s.expires_at > now => live.push(s),
                Some(_) => {}
                None => gone.push(id.as_str()),
            }
        }
        if !gone.is_empty() {
            // Index entries of sessions Redis already expired: tidy up, harmless if it fails.
            let tidy = self
                .query::<()>(
                    "list_sessions_tidy",
                    redis::cmd("ZREM")
                        .arg(self.keys.session_index(&user_id.0))
                        .arg(&gone),
                )
                .await;
            if let Err(e) = tidy {
                tracing::debug!(error = %e, "cannot tidy a session index");
            }
        }
        live.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.0.cmp(&b.id.0)));
        Ok(live)
    }

    async fn revoke_session(
        &self,
        id: &SessionId,
        user_id: &UserId,
        reason: RevokeReason,
        now: UnixMs,
    ) -> StoreResult<bool> {
        Ok(self
            .revoke_ids(&user_id.0, std::slice::from_ref(&id.0), reason, now)
            .await?
            == 1)
    }

    async fn revoke_by_refresh(
        &self,
        id: &SessionId,
        presented: &RefreshHash,
        now: UnixMs,
        grace_ms: i64,
    ) -> StoreResult<Option<SessionRecord>> {
        let Some(user) = self.owner(id).await? else {
            return Ok(None);
        };
        let keys = self.keys.session_of(&user, id);
        let mut call = session_call(&self.scripts.revoke_by_refresh, &keys);
        call.key(self.keys.outbox(&user.0));
        call.arg(&id.0).arg(now).arg(hex(presented)).arg(grace_ms);
        let reply = self.eval("revoke_by_refresh", &call).await?;
        match reply.status()? {
            0 => Ok(None),
            1 => {
                self.forget_owners([id.0.as_str()]).await;
                let record = record_from_reply(id, &reply)?;
                self.after_ending(&record.user_id, std::slice::from_ref(&id.0), now)
                    .await;
                Ok(Some(record))
            }
            other => Err(unknown_status("revoke_by_refresh", other)),
        }
    }

    async fn revoke_all(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        reason: RevokeReason,
        now: UnixMs,
    ) -> StoreResult<u32> {
        let ids: Vec<String> = self
            .query(
                "revoke_all",
                redis::cmd("ZRANGE")
                    .arg(self.keys.session_index(&user_id.0))
                    .arg(0)
                    .arg(-1),
            )
            .await?;
        let ids: Vec<String> = ids
            .into_iter()
            .filter(|id| keep.is_none_or(|k| k.0 != *id))
            .collect();
        let mut ended = 0;
        for batch in ids.chunks(REVOKE_BATCH) {
            ended += self.revoke_ids(&user_id.0, batch, reason, now).await?;
        }
        Ok(ended)
    }
}
