//! The event log on Redis: one stream, `{events}:log`, capped in length on every append and
//! trimmed by time to the retention (`{events}:floor` keeps the newest id removed, so a
//! reader from before it is told), read with `XRANGE` to catch up and `XREAD BLOCK` to wait (on a connection
//! of its own, so a waiting watcher never holds a pooled one). Ids are the stream's
//! `<ms>-<seq>`; a reader is told it missed events when its id is below the floor or above
//! the stream's newest id (the log was reset).

use std::time::Duration;

use async_trait::async_trait;
use redis::Value;

use tokio::sync::watch;

use super::{Connector, RedisSettings, RedisStore};
use crate::domain::{Event, EventKind, UnixMs, UserId};
use crate::store::{EventLog, ReadEventsError, StoreResult};

/// Outbox entries relayed per script.
const RELAY_BATCH: isize = 64;

/// A stream id, `<ms>-<seq>`.
fn parse_id(raw: &str) -> Option<(u64, u64)> {
    let (ms, seq) = raw.split_once('-').unwrap_or((raw, "0"));
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// An entry `[id, [field, value, …]]` as an event; `None` for one this version cannot read.
fn event_from_entry(entry: &Value) -> Option<Event> {
    let Value::Array(parts) = entry else {
        return None;
    };
    let id = text(parts.first()?)?;
    let Value::Array(kv) = parts.get(1)? else {
        return None;
    };
    let field = |name: &str| {
        kv.chunks(2)
            .find(|pair| text(&pair[0]).as_deref() == Some(name))
            .and_then(|pair| pair.get(1).and_then(text))
            .unwrap_or_default()
    };
    Some(Event {
        at: field("at").parse().ok()?,
        user_id: UserId(field("u")),
        kind: EventKind::from_fields(&field("t"), &field("s"), &field("d"))?,
        id,
    })
}

/// The events of an `XRANGE` reply: `[[id, [field, value, …]], …]`.
fn range_events(reply: &Value) -> Vec<Event> {
    match reply {
        Value::Array(items) => items.iter().filter_map(event_from_entry).collect(),
        _ => Vec::new(),
    }
}

/// The process's one reader of the log's tail: a loop of `XREAD BLOCK` on a connection of
/// its own that bumps a counter whenever the stream grows, so waiting watchers never hold a
/// pooled connection and never open one each. It stops when the store is dropped.
pub(super) struct Tail {
    grew: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long one `XREAD` of the tail reader blocks.
const TAIL_BLOCK_MS: u64 = 5_000;

async fn follow_tail(
    connector: Connector,
    log: String,
    settings: RedisSettings,
    grew: watch::Sender<u64>,
) {
    let response = Duration::from_millis(TAIL_BLOCK_MS) + settings.command_timeout;
    let mut conn = None;
    let mut last: Option<String> = None;
    loop {
        if conn.is_none() {
            match connector
                .connect(settings.connection_timeout, response)
                .await
            {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!(error = %e, "event tail: cannot connect; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        // From the stream's current end (after a reconnect too: a wake-up may be missed, and
        // watchers read again at the end of their wait anyway).
        if last.is_none() {
            let newest: Result<Value, _> = redis::cmd("XREVRANGE")
                .arg(&log)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(c)
                .await;
            last = match newest {
                Ok(v) => Some(range_events_ids(&v).pop().unwrap_or_else(|| "0-0".into())),
                Err(_) => {
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
        }
        let read: Result<Value, _> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(TAIL_BLOCK_MS)
            .arg("STREAMS")
            .arg(&log)
            .arg(last.as_deref().unwrap_or("0-0"))
            .query_async(c)
            .await;
        match read {
            Ok(reply) => {
                if let Some(newest) = read_ids(&reply).pop() {
                    last = Some(newest);
                    grew.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "event tail: read failed; reconnecting");
                conn = None;
                last = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The ids of an `XRANGE`/`XREVRANGE` reply.
fn range_events_ids(reply: &Value) -> Vec<String> {
    match reply {
        Value::Array(items) => items
            .iter()
            .filter_map(|e| match e {
                Value::Array(parts) => parts.first().and_then(text),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The ids of an `XREAD` reply of one stream, oldest first.
fn read_ids(reply: &Value) -> Vec<String> {
    match reply {
        Value::Array(streams) => match streams.first() {
            Some(Value::Array(stream)) => stream.get(1).map(range_events_ids).unwrap_or_default(),
            _ => Vec::new(),
        },
        Value::Map(streams) => streams
            .first()
            .map(|(_, e)| range_events_ids(e))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

impl RedisStore {
    /// A receiver that changes when the log grows (the tail reader starts on first use).
    async fn tail(&self) -> watch::Receiver<u64> {
        let tail = self
            .tail
            .get_or_init(|| async {
                let (tx, rx) = watch::channel(0);
                let task = tokio::spawn(follow_tail(
                    self.connector.clone(),
                    self.keys.events().log,
                    self.settings.clone(),
                    tx,
                ));
                Tail { grew: rx, task }
            })
            .await;
        tail.grew.clone()
    }

    /// Appends events in one script, capping the log's length (see `scripts::APPEND_EVENTS`);
    /// the log and its floor live for the retention after the last append.
    pub(super) async fn record(
        &self,
        events: &[(UserId, EventKind)],
        now: UnixMs,
    ) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let keys = self.keys.events();
        let mut call = self.scripts.append_events.key(&keys.log);
        call.key(&keys.floor)
            .arg(now)
            .arg(self.settings.event_max_len);
        for (user, kind) in events {
            let (type_name, session, detail) = kind.fields();
            call.arg(type_name).arg(&user.0).arg(session).arg(detail);
        }
        self.eval("append_events", &call).await.map(|_| ())
    }

    /// Moves the events waiting in `user`'s outbox to the log: each batch is logged in one
    /// script (entries already logged, by an earlier relay that died before its ack, are
    /// skipped by id), then taken off the outbox's head.
    pub(super) async fn relay(&self, user: &UserId) -> StoreResult<u64> {
        let outbox = self.keys.outbox(&user.0);
        let keys = self.keys.events();
        let mut logged = 0;
        loop {
            let entries: Vec<String> = self
                .query(
                    "outbox_read",
                    redis::cmd("LRANGE")
                        .arg(&outbox)
                        .arg(0)
                        .arg(RELAY_BATCH - 1),
                )
                .await?;
            if entries.is_empty() {
                return Ok(logged);
            }
            let mut call = self.scripts.relay_events.key(&keys.log);
            call.key(&keys.floor)
                .key(&keys.relayed)
                .arg(crate::domain::now_ms())
                .arg(self.settings.event_retention_ms)
                .arg(self.settings.event_max_len)
                .arg(&user.0);
            for entry in &entries {
                call.arg(entry);
            }
            let reply = self.eval("relay_events", &call).await?;
            logged += reply.int(1)?.max(0) as u64;
            let mut ack = self.scripts.outbox_ack.key(&outbox);
            for entry in &entries {
                ack.arg(entry);
            }
            self.eval("outbox_ack", &ack).await?;
            if entries.len() < RELAY_BATCH as usize {
                return Ok(logged);
            }
        }
    }

    /// [`RedisStore::relay`] right after a change: a failure leaves the events in the outbox
    /// for the periodic sweep (`EventLog::trim`), so it is logged, not returned.
    pub(super) async fn relay_after(&self, user: &UserId) {
        if let Err(e) = self.relay(user).await {
            tracing::warn!(error = %e, user_id = %user.0, "events wait in the outbox for the next sweep");
            // Named for the sweep; if even this fails, the startup scan finds the outbox.
            let noted = self
                .query::<()>(
                    "outbox_dirty",
                    redis::cmd("SADD")
                        .arg(self.keys.events().dirty)
                        .arg(&user.0),
                )
                .await;
            if let Err(e) = noted {
                tracing::warn!(error = %e, "cannot note an outbox for the sweep");
            }
        }
    }

    /// Relays the outboxes a failed relay noted in `{events}:dirty`, and once per process
    /// (at its first trim) every outbox left behind, found by SCAN: a process that died
    /// between a change and its relay.
    async fn relay_leftovers(&self) -> StoreResult<u64> {
        let dirty = self.keys.events().dirty;
        let noted: Vec<String> = self
            .query("outbox_dirty", redis::cmd("SMEMBERS").arg(&dirty))
            .await?;
        let mut logged = 0;
        for user in noted {
            // Off the list first: a relay that fails meanwhile puts the user back.
            self.query::<()>("outbox_dirty", redis::cmd("SREM").arg(&dirty).arg(&user))
                .await?;
            let user = UserId(user);
            match self.relay(&user).await {
                Ok(n) => logged += n,
                Err(e) => {
                    let _ = self
                        .query::<()>("outbox_dirty", redis::cmd("SADD").arg(&dirty).arg(&user.0))
                        .await;
                    return Err(e);
                }
            }
        }
        if self
            .scanned_outboxes
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(logged);
        }
        logged += self.relay_scanned().await?;
        self.scanned_outboxes
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(logged)
    }

    /// Every outbox found by SCAN (of every master, on a cluster).
    async fn relay_scanned(&self) -> StoreResult<u64> {
        let pattern = format!("{}user:*:outbox", self.keys.prefix());
        let mut logged = 0;
        for key in self.scan_all(&pattern, "list").await? {
            if let Some(user) = self.keys.outbox_user(&key) {
                logged += self.relay(&UserId(user.to_owned())).await?;
            }
        }
        Ok(logged)
    }

    /// The floor: a reader whose id is below it missed trimmed events (`0-0` when none was).
    async fn floor(&self) -> StoreResult<(u64, u64)> {
        let floor: Option<String> = self
            .query(
                "events_floor",
                redis::cmd("GET").arg(self.keys.events().floor),
            )
            .await?;
        Ok(floor.as_deref().and_then(parse_id).unwrap_or((0, 0)))
    }

    /// Up to `count` events after the stream id `after`, oldest first.
    async fn range_after(&self, after: &str, count: usize) -> Result<Vec<Event>, ReadEventsError> {
        let range: Value = self
            .query(
                "read_events",
                redis::cmd("XRANGE")
                    .arg(self.keys.events().log)
                    .arg(format!("({after}"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(count),
            )
            .await?;
        Ok(range_events(&range))
    }

    /// `(floor, newest)`: a position below the floor missed trimmed events; the newest id is
    /// the stream's last entry, or the floor when everything was trimmed (`0-0` for a log
    /// never written).
    async fn bounds(&self) -> StoreResult<((u64, u64), (u64, u64))> {
        let floor = self.floor().await?;
        let newest: Value = self
            .query(
                "events_bounds",
                redis::cmd("XREVRANGE")
                    .arg(self.keys.events().log)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1),
            )
            .await?;
        let last = range_events_ids(&newest)
            .first()
            .and_then(|id| parse_id(id))
            .unwrap_or((0, 0));
        Ok((floor, last.max(floor)))
    }
}

#[async_trait]
impl EventLog for RedisStore {
    async fn append(&self, user_id: &UserId, kind: &EventKind, now: UnixMs) -> StoreResult<()> {
        self.record(&[(user_id.clone(), kind.clone())], now).await
    }

    async fn latest_id(&self) -> StoreResult<String> {
        let (_, (ms, seq)) = self.bounds().await?;
        Ok(format!("{ms}-{seq}"))
    }

    async fn read_after(
        &self,
        after: &str,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<Event>, ReadEventsError> {
        let at = parse_id(after).ok_or(ReadEventsError::InvalidId)?;
        let (floor, last) = self.bounds().await?;
        if at < floor || at > last {
            return Err(ReadEventsError::Expired);
        }
        let after = format!("{}-{}", at.0, at.1);
        let count = limit.max(1);
        if wait.is_zero() {
            return self.range_after(&after, count).await;
        }
        // Read, and while there is nothing, wait for the process's one tail reader to see the
        // log grow (subscribed before the first read, so no growth goes unnoticed).
        let deadline = tokio::time::Instant::now() + wait;
        let mut grew = self.tail().await;
        grew.borrow_and_update();
        let mut waited = false;
        loop {
            let events = self.range_after(&after, count).await?;
            // The cap may have removed events after `after` while this waited.
            if waited && !events.is_empty() && self.floor().await? > at {
                return Err(ReadEventsError::Expired);
            }
            if !events.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(events);
            }
            // A tail reader that is gone (never: it lives as long as the store) would wake
            // at once forever; wait out the deadline instead.
            if let Ok(Err(_)) = tokio::time::timeout_at(deadline, grew.changed()).await {
                tokio::time::sleep_until(deadline).await;
            }
            waited = true;
        }
    }

    /// Every append caps the stream's length; this trims it by time, and relays outboxes a
    /// dead process left behind.
    async fn trim(&self, before: UnixMs, max_events: u64) -> StoreResult<u64> {
        match self.relay_leftovers().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "relayed events left in outboxes"),
            // The trim still runs; the outboxes wait for the next round.
            Err(e) => tracing::warn!(error = %e, "relaying leftover outboxes failed"),
        }
        let keys = self.keys.events();
        let mut call = self.scripts.trim_events.key(&keys.log);
        call.key(&keys.floor).arg(before.max(0)).arg(max_events);
        // One script removes at most 10 000 beyond the cap (a lowered cap takes a few rounds).
        let mut total = 0;
        for _ in 0..100 {
            let reply = self.eval("trim_events", &call).await?;
            let removed = reply.int(1)?.max(0) as u64;
            total += removed;
            if removed < 10_000 {
                break;
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_compare_as_numbers() {
        assert!(parse_id("9-5") < parse_id("10-0"));
        assert_eq!(parse_id("12"), Some((12, 0)));
        assert_eq!(parse_id("x-1"), None);
        assert_eq!(parse_id(""), None);
    }
}
