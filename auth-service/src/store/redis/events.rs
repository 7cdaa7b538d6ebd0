//! The event log on Redis: one stream, `{events}:log`, capped in length on every append and
//! trimmed by time to the retention (`{events}:floor` keeps the newest id removed, so a
//! reader from before it is told), read with `XRANGE` to catch up and `XREAD BLOCK` to wait (on a connection
//! of its own, so a waiting watcher never holds a pooled one). Ids are the stream's
//! `<ms>-<seq>`; a reader is told it missed events when its id is below the floor or above
//! the stream's `last-generated-id` (the log was reset or expired).

use std::time::Duration;

use async_trait::async_trait;
use redis::{AsyncConnectionConfig, Value};

use super::{RedisStore, redis_error};

/// Outbox entries relayed per script.
const RELAY_BATCH: isize = 64;
use crate::domain::{Event, EventKind, UnixMs, UserId};
use crate::store::{EventLog, ReadEventsError, StoreError, StoreResult};

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

/// The events of an `XREAD` reply of one stream: `[[key, entries]]` (a map in RESP3), or nil.
fn read_events(reply: &Value) -> Vec<Event> {
    match reply {
        Value::Array(streams) => match streams.first() {
            Some(Value::Array(stream)) => stream.get(1).map(range_events).unwrap_or_default(),
            _ => Vec::new(),
        },
        Value::Map(streams) => streams
            .first()
            .map(|(_, e)| range_events(e))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

impl RedisStore {
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
            .arg(self.settings.event_retention_ms)
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
        }
    }

    /// Relays every outbox left behind (a process that died between a change and its relay).
    async fn relay_leftovers(&self) -> StoreResult<u64> {
        let pattern = format!("{}user:*:outbox", self.keys.prefix());
        let mut cursor = 0u64;
        let mut logged = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .query(
                    "outbox_scan",
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .arg("TYPE")
                        .arg("list"),
                )
                .await?;
            for key in &batch {
                if let Some(user) = self.keys.outbox_user(key) {
                    logged += self.relay(&UserId(user.to_owned())).await?;
                }
            }
            if next == 0 {
                return Ok(logged);
            }
            cursor = next;
        }
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

    /// `(floor, last-generated-id)`: ids below the first may have been trimmed; the second
    /// is the newest (zeros when the stream does not exist).
    async fn bounds(&self) -> StoreResult<((u64, u64), (u64, u64))> {
        let floor = self.floor().await?;
        let reply: StoreResult<Value> = self
            .query(
                "events_bounds",
                redis::cmd("XINFO")
                    .arg("STREAM")
                    .arg(self.keys.events().log),
            )
            .await;
        let info = match reply {
            Ok(v) => v,
            Err(StoreError::Internal(m)) if m.contains("no such key") => {
                return Ok(((0, 0), (0, 0)));
            }
            Err(e) => return Err(e),
        };
        let pairs: Vec<(String, Value)> = match info {
            Value::Map(m) => m
                .into_iter()
                .filter_map(|(k, v)| Some((text(&k)?, v)))
                .collect(),
            Value::Array(a) => a
                .chunks(2)
                .filter_map(|p| Some((text(&p[0])?, p.get(1)?.clone())))
                .collect(),
            _ => Vec::new(),
        };
        let id = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| text(v))
                .and_then(|s| parse_id(&s))
                .unwrap_or((0, 0))
        };
        Ok((floor, id("last-generated-id").max(floor)))
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
        let events = range_events(&range);
        if !events.is_empty() || wait.is_zero() {
            return Ok(events);
        }
        // Wait on a connection of its own: a blocked read must not hold a pooled one.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.connection_timeout))
            .set_response_timeout(Some(wait + self.settings.command_timeout));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(redis_error)?;
        let block: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(wait.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(self.keys.events().log)
            .arg(&after)
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(read_events(&block))
    }

    /// Every append caps the stream's length; this trims it by time, and relays outboxes a
    /// dead process left behind.
    async fn trim(&self, before: UnixMs, max_events: u64) -> StoreResult<u64> {
        let leftovers = self.relay_leftovers().await?;
        if leftovers > 0 {
            tracing::info!(events = leftovers, "relayed events left in outboxes");
        }
        let keys = self.keys.events();
        let mut call = self.scripts.trim_events.key(&keys.log);
        call.key(&keys.floor).arg(before.max(0)).arg(max_events);
        let reply = self.eval("trim_events", &call).await?;
        Ok(reply.int(1)?.max(0) as u64)
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
