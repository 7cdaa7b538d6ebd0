//! Second factors on SQLite (see `FactorStore`): a `totp_factors` row per user with TOTP on,
//! and a `recovery_codes` row per unused code. Each change is one transaction, with its
//! factor.enabled / factor.disabled event when this file is the event log.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{SqliteStore, events, internal};
use crate::domain::{AuthMethod, CodeHash, EventKind, FactorSummary, UnixMs, UserId};
use crate::store::{FactorStore, StoreResult, TotpFactor};

fn insert_codes(tx: &rusqlite::Transaction<'_>, user: &str, codes: &[Vec<u8>]) -> StoreResult<()> {
    tx.execute(
        "DELETE FROM recovery_codes WHERE user_id = ?1",
        params![user],
    )
    .map_err(internal)?;
    for code in codes {
        tx.execute(
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

#[async_trait]
impl FactorStore for SqliteStore {
    async fn totp(&self, user: &UserId) -> StoreResult<Option<TotpFactor>> {
        let user = user.0.clone();
        self.call(move |conn| {
            conn.query_row(
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
        self.call(move |conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM totp_factors WHERE user_id = ?1), \
                        (SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1)",
                params![user],
                |r| {
                    Ok(FactorSummary {
                        totp: r.get(0)?,
                        recovery_codes: r.get(1)?,
                    })
                },
            )
            .map_err(internal)
        })
        .await
    }

    async fn enable_totp(
        &self,
        user: &UserId,
        factor: &TotpFactor,
        recovery: &[CodeHash],
    ) -> StoreResult<bool> {
        let (user, factor, codes) = (user.clone(), factor.clone(), hashes(recovery));
        let user_events = self.user_events;
        let enabled = self
            .call(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(internal)?;
                let inserted = tx
                    .execute(
                        "INSERT OR IGNORE INTO totp_factors \
                         (user_id, sealed_secret, last_step, enabled_at) VALUES (?1, ?2, ?3, ?4)",
                        params![
                            user.0,
                            factor.sealed_secret,
                            factor.last_step,
                            factor.enabled_at
                        ],
                    )
                    .map_err(internal)?;
                if inserted == 0 {
                    return Ok(false);
                }
                insert_codes(&tx, &user.0, &codes)?;
                if user_events {
                    let kind = EventKind::FactorEnabled {
                        factor: AuthMethod::Totp,
                    };
                    events::record(&tx, factor.enabled_at, &user, &kind).map_err(internal)?;
                }
                tx.commit().map_err(internal)?;
                Ok(true)
            })
            .await?;
        if enabled && self.user_events {
            self.events_written();
        }
        Ok(enabled)
    }

    async fn use_totp_step(&self, user: &UserId, step: i64) -> StoreResult<bool> {
        let user = user.0.clone();
        self.call(move |conn| {
            conn.execute(
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
            conn.execute(
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
                .query_row(
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
        let user = user.clone();
        let user_events = self.user_events;
        let disabled = self
            .call(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(internal)?;
                let removed = tx
                    .execute(
                        "DELETE FROM totp_factors WHERE user_id = ?1",
                        params![user.0],
                    )
                    .map_err(internal)?;
                if removed == 0 {
                    return Ok(false);
                }
                insert_codes(&tx, &user.0, &[])?;
                if user_events {
                    let kind = EventKind::FactorDisabled {
                        factor: AuthMethod::Totp,
                    };
                    events::record(&tx, now, &user, &kind).map_err(internal)?;
                }
                tx.commit().map_err(internal)?;
                Ok(true)
            })
            .await?;
        if disabled && self.user_events {
            self.events_written();
        }
        Ok(disabled)
    }
}
