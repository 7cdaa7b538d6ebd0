//! [`KeyRingStore`] on SQLite: the ring is one row of `signing_key_ring` (its version and the
//! keys as JSON), replaced only by a write that names the version it read.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{Cached as _, SqliteStore, internal};
use crate::store::{KeyRingStore, SigningKeyRing, StoreError, StoreResult, StoredSigningKey};

#[async_trait]
impl KeyRingStore for SqliteStore {
    async fn signing_key_ring(&self) -> StoreResult<SigningKeyRing> {
        self.call(|conn| {
            let row: Option<(i64, String)> = conn
                .row(
                    "SELECT version, keys FROM signing_key_ring WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(internal)?;
            let Some((version, keys)) = row else {
                return Ok(SigningKeyRing::default());
            };
            Ok(SigningKeyRing {
                version: version as u64,
                keys: serde_json::from_str(&keys)
                    .map_err(|e| StoreError::Internal(format!("unreadable signing keys: {e}")))?,
            })
        })
        .await
    }

    async fn replace_signing_key_ring(
        &self,
        expected: u64,
        keys: &[StoredSigningKey],
    ) -> StoreResult<bool> {
        let json = serde_json::to_string(keys).map_err(|e| StoreError::Internal(e.to_string()))?;
        let (expected, next) = (expected as i64, expected as i64 + 1);
        self.call(move |conn| {
            // The first write inserts the row; every later one must name the version it read.
            let written = if expected == 0 {
                conn.exec(
                    "INSERT INTO signing_key_ring (id, version, keys) VALUES (1, ?1, ?2) \
                     ON CONFLICT (id) DO NOTHING",
                    params![next, json],
                )
            } else {
                conn.exec(
                    "UPDATE signing_key_ring SET version = ?1, keys = ?2 \
                     WHERE id = 1 AND version = ?3",
                    params![next, json, expected],
                )
            };
            written.map(|rows| rows == 1).map_err(internal)
        })
        .await
    }
}
