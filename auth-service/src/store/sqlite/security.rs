//! [`SecurityLog`] on SQLite: one row per entry in `security_events`, read newest first per
//! user through the (user_id, id) index (ids are UUID v7 text, so they sort by time).

use async_trait::async_trait;
use rusqlite::{Row, params_from_iter, types::Value};

use super::{Cached as _, SqliteStore, internal};
use crate::domain::{SecurityEvent, SecurityKind, SessionId, UnixMs, UserId};
use crate::store::{SecurityLog, StoreResult};

fn from_row(r: &Row<'_>) -> rusqlite::Result<Option<SecurityEvent>> {
    let kind: String = r.get(3)?;
    let session: String = r.get(7)?;
    // An entry of a kind this version does not know is left out, not an error.
    Ok(SecurityKind::parse(&kind).map(|kind| SecurityEvent {
        id: r.get(0).unwrap_or_default(),
        user_id: UserId(r.get(1).unwrap_or_default()),
        at: r.get(2).unwrap_or_default(),
        kind,
        detail: r.get(4).unwrap_or_default(),
        ip: r.get(5).unwrap_or_default(),
        user_agent: r.get(6).unwrap_or_default(),
        session_id: (!session.is_empty()).then_some(SessionId(session)),
    }))
}

#[async_trait]
impl SecurityLog for SqliteStore {
    async fn record_security_event(&self, e: &SecurityEvent) -> StoreResult<()> {
        let e = e.clone();
        self.call(move |conn| {
            conn.exec(
                "INSERT INTO security_events (id, user_id, at, kind, detail, ip, user_agent, \
                 session_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params![
                    e.id,
                    e.user_id.0,
                    e.at,
                    e.kind.as_str(),
                    e.detail,
                    e.ip,
                    e.user_agent,
                    e.session_id.map(|s| s.0).unwrap_or_default()
                ],
            )
            .map(|_| ())
            .map_err(internal)
        })
        .await
    }

    async fn security_events(
        &self,
        user: &UserId,
        before: Option<&str>,
        limit: usize,
        kinds: &[SecurityKind],
    ) -> StoreResult<Vec<SecurityEvent>> {
        let mut sql = String::from(
            "SELECT id, user_id, at, kind, detail, ip, user_agent, session_id \
             FROM security_events WHERE user_id = ?",
        );
        let mut values: Vec<Value> = vec![Value::Text(user.0.clone())];
        if let Some(before) = before {
            sql.push_str(" AND id < ?");
            values.push(Value::Text(before.to_owned()));
        }
        if !kinds.is_empty() {
            sql.push_str(&format!(
                " AND kind IN ({})",
                vec!["?"; kinds.len()].join(",")
            ));
            values.extend(kinds.iter().map(|k| Value::Text(k.as_str().to_owned())));
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        values.push(Value::Integer(limit as i64));
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
            let rows = stmt
                .query_map(params_from_iter(values), from_row)
                .map_err(internal)?;
            let mut out = Vec::new();
            for row in rows {
                if let Some(e) = row.map_err(internal)? {
                    out.push(e);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn trim_security_events(&self, before: UnixMs) -> StoreResult<u64> {
        self.call(move |conn| {
            conn.exec(
                "DELETE FROM security_events WHERE at < ?1",
                rusqlite::params![before],
            )
            .map(|n| n as u64)
            .map_err(internal)
        })
        .await
    }
}
