//! Second factors on SQLite (see `FactorStore`): a `totp_factors` row per user with TOTP on,
//! a `recovery_codes` row per unused code, and a `passkeys` row per passkey. Each change is one transaction, with its
//! factor.enabled / factor.disabled event when this file is the event log.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Cached as _, SqliteStore, events, internal};
use crate::domain::{AuthMethod, CodeHash, EventKind, FactorSummary, UnixMs, UserId};
use crate::store::{FactorStore, PasskeyRecord, PasskeyUse, StoreResult, TotpFactor};

fn insert_codes(tx: &rusqlite::Transaction<'_>, user: &str, codes: &[Vec<u8>]) -> StoreResult<()> {
    tx.exec(
        "DELETE FROM recovery_codes WHERE user_id = ?1",
        params![user],
    )
    .map_err(internal)?;
    for code in codes {
        tx.exec(
            "INSERT OR IGNORE INTO recovery_codes (user_id, hash) VALUES (?1, ?2)",
            params![user, code],
        )
        .map_err(internal)?;
    }
    Ok(())
}

fn hashes(codes: &[CodeHash]) -> Vec<Vec<u8>> {
    codes.iter().map(|c| c.0.to_vec()).collect()
}

impl SqliteStore {
    /// A factor turned on or off: `change` runs in one immediate transaction and says whether
    /// it changed anything; when it did, `kind` is written in that transaction (when this file
    /// is the event log) and the watchers are woken after the commit.
    async fn factor_change<F>(
        &self,
        user: &UserId,
        kind: EventKind,
        at: UnixMs,
        change: F,
    ) -> StoreResult<bool>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<bool> + Send + 'static,
    {
        let (user, user_events) = (user.clone(), self.user_events);
        let changed = self
            .call(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(internal)?;
                if !change(&tx)? {
                    return Ok(false);
                }
                if user_events {
                    events::record(&tx, at, &user, &kind).map_err(internal)?;
                }
                tx.commit().map_err(internal)?;
                Ok(true)
            })
            .await?;
        if changed && self.user_events {
            self.events_written();
        }
        Ok(changed)
    }
}

#[async_trait]
impl FactorStore for SqliteStore {
    async fn totp(&self, user: &UserId) -> StoreResult<Option<TotpFactor>> {
        let user = user.0.clone();
        self.call(move |conn| {
            conn.row(
                "SELECT sealed_secret, last_step, enabled_at FROM totp_factors WHERE user_id = ?1",
                params![user],
                |r| {
                    Ok(TotpFactor {
                        sealed_secret: r.get(0)?,
                        last_step: r.get(1)?,
                        enabled_at: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(internal)
        })
        .await
    }

    async fn factor_summary(&self, user: &UserId) -> StoreResult<FactorSummary> {
        let user = user.0.clone();
        self.call(move |conn| summary(conn, &user).map_err(internal))
            .await
    }

    async fn enable_totp(
        &self,
        user: &UserId,
        factor: &TotpFactor,
        recovery: &[CodeHash],
    ) -> StoreResult<bool> {
        let (owner, factor, codes) = (user.0.clone(), factor.clone(), hashes(recovery));
        let enabled_at = factor.enabled_at;
        let kind = EventKind::FactorEnabled {
            factor: AuthMethod::Totp,
        };
        self.factor_change(user, kind, enabled_at, move |tx| {
            let inserted = tx
                .exec(
                    "INSERT OR IGNORE INTO totp_factors \
                     (user_id, sealed_secret, last_step, enabled_at) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        owner,
                        factor.sealed_secret,
                        factor.last_step,
                        factor.enabled_at
                    ],
                )
                .map_err(internal)?;
            if inserted == 0 {
                return Ok(false);
            }
            insert_codes(tx, &owner, &codes)?;
            Ok(true)
        })
        .await
    }

    async fn use_totp_step(&self, user: &UserId, step: i64) -> StoreResult<bool> {
        let user = user.0.clone();
        self.call(move |conn| {
            conn.exec(
                "UPDATE totp_factors SET last_step = ?2 WHERE user_id = ?1 AND last_step < ?2",
                params![user, step],
            )
            .map(|n| n == 1)
            .map_err(internal)
        })
        .await
    }

    async fn use_recovery_code(&self, user: &UserId, code: &CodeHash) -> StoreResult<bool> {
        let (user, code) = (user.0.clone(), code.0.to_vec());
        self.call(move |conn| {
            conn.exec(
                "DELETE FROM recovery_codes WHERE user_id = ?1 AND hash = ?2",
                params![user, code],
            )
            .map(|n| n == 1)
            .map_err(internal)
        })
        .await
    }

    async fn replace_recovery_codes(&self, user: &UserId, codes: &[CodeHash]) -> StoreResult<bool> {
        let (user, codes) = (user.0.clone(), hashes(codes));
        self.call(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(internal)?;
            let on: bool = tx
                .row(
                    "SELECT EXISTS (SELECT 1 FROM totp_factors WHERE user_id = ?1)",
                    params![user],
                    |r| r.get(0),
                )
                .map_err(internal)?;
            if !on {
                return Ok(false);
            }
            insert_codes(&tx, &user, &codes)?;
            tx.commit().map_err(internal)?;
            Ok(true)
        })
        .await
    }

    async fn disable_totp(&self, user: &UserId, now: UnixMs) -> StoreResult<bool> {
        let owner = user.0.clone();
        let kind = EventKind::FactorDisabled {
            factor: AuthMethod::Totp,
        };
        self.factor_change(user, kind, now, move |tx| {
            let removed = tx
                .exec(
                    "DELETE FROM totp_factors WHERE user_id = ?1",
                    params![owner],
                )
                .map_err(internal)?;
            if removed == 0 {
                return Ok(false);
            }
            insert_codes(tx, &owner, &[])?;
            Ok(true)
        })
        .await
    }

    async fn passkeys(&self, user: &UserId) -> StoreResult<Vec<PasskeyRecord>> {
        let user = user.0.clone();
        self.call(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, name, credential, counter, backed_up, created_at, last_used_at \
                     FROM passkeys WHERE user_id = ?1 ORDER BY created_at, id",
                )
                .map_err(internal)?;
            let rows = stmt
                .query_map(params![user], |r| {
                    Ok(PasskeyRecord {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        credential: r.get(2)?,
                        counter: r.get(3)?,
                        backed_up: r.get(4)?,
                        created_at: r.get(5)?,
                        last_used_at: r.get(6)?,
                    })
                })
                .map_err(internal)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(internal)
        })
        .await
    }

    async fn add_passkey(
        &self,
        user: &UserId,
        passkey: &PasskeyRecord,
        max: u32,
    ) -> StoreResult<bool> {
        let (owner, p) = (user.0.clone(), passkey.clone());
        let kind = EventKind::FactorEnabled {
            factor: AuthMethod::Passkey,
        };
        self.factor_change(user, kind, passkey.created_at, move |tx| {
            let count: u32 = tx
                .row(
                    "SELECT COUNT(*) FROM passkeys WHERE user_id = ?1",
                    params![owner],
                    |r| r.get(0),
                )
                .map_err(internal)?;
            if count >= max {
                return Ok(false);
            }
            let inserted = tx
                .exec(
                    "INSERT OR IGNORE INTO passkeys (user_id, id, name, credential, counter, \
                     backed_up, created_at, last_used_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        owner,
                        p.id,
                        p.name,
                        p.credential,
                        p.counter,
                        p.backed_up,
                        p.created_at,
                        p.last_used_at
                    ],
                )
                .map_err(internal)?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn use_passkey(&self, user: &UserId, used: &PasskeyUse<'_>) -> StoreResult<bool> {
        let (user, id, credential) = (
            user.0.clone(),
            used.id.to_owned(),
            used.credential.to_owned(),
        );
        let (counter, backed_up, at) = (used.counter, used.backed_up, used.at);
        self.call(move |conn| {
            conn.exec(
                "UPDATE passkeys SET credential = ?3, counter = ?4, backed_up = ?5, \
                 last_used_at = ?6 \
                 WHERE user_id = ?1 AND id = ?2 AND (counter < ?4 OR (counter = 0 AND ?4 = 0))",
                params![user, id, credential, counter, backed_up, at],
            )
            .map(|n| n == 1)
            .map_err(internal)
        })
        .await
    }

    async fn delete_passkey(&self, user: &UserId, id: &str, now: UnixMs) -> StoreResult<bool> {
        let (owner, id) = (user.0.clone(), id.to_owned());
        let kind = EventKind::FactorDisabled {
            factor: AuthMethod::Passkey,
        };
        self.factor_change(user, kind, now, move |tx| {
            tx.exec(
                "DELETE FROM passkeys WHERE user_id = ?1 AND id = ?2",
                params![owner, id],
            )
            .map(|removed| removed == 1)
            .map_err(internal)
        })
        .await
    }
}

/// Which second factors `user` has.
pub(super) fn summary(conn: &Connection, user: &str) -> rusqlite::Result<FactorSummary> {
    conn.row(
        "SELECT EXISTS (SELECT 1 FROM totp_factors WHERE user_id = ?1), \
                (SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1), \
                (SELECT COUNT(*) FROM passkeys WHERE user_id = ?1)",
        params![user],
        |r| {
            Ok(FactorSummary {
                totp: r.get(0)?,
                recovery_codes: r.get(1)?,
                passkeys: r.get(2)?,
            })
        },
    )
}
