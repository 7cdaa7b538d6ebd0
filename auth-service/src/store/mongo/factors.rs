//! [`FactorStore`] on MongoDB: the factors live in the user's document, under `mfa`:
//! `mfa.totp` (`secret` sealed to the user, `lastStep`, `enabledAt`) and `mfa.recoveryCodes`
//! (keyed hashes). Each method is one single-document operation, so each is atomic: a step is
//! taken with a filter on `lastStep`, a recovery code with a `$pull` whose filter names it.
//! Their events are appended right after (see `store::EventsAfter`).

use async_trait::async_trait;
use mongodb::bson::{Binary, Bson, Document, doc, spec::BinarySubtype};

use super::{MongoUserStore, document::by_id, errors::store_error};
use crate::domain::{CodeHash, FactorSummary, UnixMs, UserId};
use crate::store::{FactorStore, StoreError, StoreResult, TotpFactor};

const TOTP: &str = "mfa.totp";
const LAST_STEP: &str = "mfa.totp.lastStep";
const RECOVERY: &str = "mfa.recoveryCodes";

fn binary(bytes: &[u8]) -> Binary {
    Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    }
}

fn codes(hashes: &[CodeHash]) -> Vec<Binary> {
    hashes.iter().map(|h| binary(&h.0)).collect()
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt user document: {what}"))
}

impl MongoUserStore {
    /// The `mfa` part of a user's document (empty when none or no such user).
    async fn mfa(&self, user: &UserId) -> StoreResult<Document> {
        let found = self
            .users
            .find_one(by_id(user))
            .projection(doc! { "mfa": 1 })
            .await
            .map_err(store_error)?;
        Ok(found
            .and_then(|d| d.get_document("mfa").ok().cloned())
            .unwrap_or_default())
    }
}

#[async_trait]
impl FactorStore for MongoUserStore {
    async fn totp(&self, user: &UserId) -> StoreResult<Option<TotpFactor>> {
        let mfa = self.mfa(user).await?;
        let Ok(totp) = mfa.get_document("totp") else {
            return Ok(None);
        };
        let sealed_secret = match totp.get("secret") {
            Some(Bson::Binary(b)) => b.bytes.clone(),
            _ => return Err(corrupt("mfa.totp.secret")),
        };
        Ok(Some(TotpFactor {
            sealed_secret,
            last_step: totp.get_i64("lastStep").map_err(|_| corrupt(LAST_STEP))?,
            enabled_at: totp
                .get_i64("enabledAt")
                .map_err(|_| corrupt("mfa.totp.enabledAt"))?,
        }))
    }

    async fn factor_summary(&self, user: &UserId) -> StoreResult<FactorSummary> {
        let mfa = self.mfa(user).await?;
        Ok(FactorSummary {
            totp: mfa.get_document("totp").is_ok(),
            recovery_codes: mfa
                .get_array("recoveryCodes")
                .map(|codes| codes.len() as u32)
                .unwrap_or(0),
        })
    }

    async fn enable_totp(
        &self,
        user: &UserId,
        factor: &TotpFactor,
        recovery: &[CodeHash],
    ) -> StoreResult<bool> {
        let mut filter = by_id(user);
        filter.insert(TOTP, doc! { "$exists": false });
        let update = doc! { "$set": {
            TOTP: {
                "secret": binary(&factor.sealed_secret),
                "lastStep": factor.last_step,
                "enabledAt": factor.enabled_at,
            },
            RECOVERY: codes(recovery),
        }};
        let result = self
            .users
            .update_one(filter, update)
            .await
            .map_err(store_error)?;
        Ok(result.modified_count == 1)
    }

    async fn use_totp_step(&self, user: &UserId, step: i64) -> StoreResult<bool> {
        let mut filter = by_id(user);
        filter.insert(LAST_STEP, doc! { "$lt": step });
        let result = self
            .users
            .update_one(filter, doc! { "$set": { LAST_STEP: step } })
            .await
            .map_err(store_error)?;
        Ok(result.modified_count == 1)
    }

    async fn use_recovery_code(&self, user: &UserId, code: &CodeHash) -> StoreResult<bool> {
        let mut filter = by_id(user);
        filter.insert(RECOVERY, binary(&code.0));
        let result = self
            .users
            .update_one(filter, doc! { "$pull": { RECOVERY: binary(&code.0) } })
            .await
            .map_err(store_error)?;
        Ok(result.modified_count == 1)
    }

    async fn replace_recovery_codes(
        &self,
        user: &UserId,
        hashes: &[CodeHash],
    ) -> StoreResult<bool> {
        let mut filter = by_id(user);
        filter.insert(TOTP, doc! { "$exists": true });
        let result = self
            .users
            .update_one(filter, doc! { "$set": { RECOVERY: codes(hashes) } })
            .await
            .map_err(store_error)?;
        Ok(result.matched_count == 1)
    }

    async fn disable_totp(&self, user: &UserId, _now: UnixMs) -> StoreResult<bool> {
        let mut filter = by_id(user);
        filter.insert(TOTP, doc! { "$exists": true });
        let result = self
            .users
            .update_one(filter, doc! { "$unset": { TOTP: "", RECOVERY: "" } })
            .await
            .map_err(store_error)?;
        Ok(result.modified_count == 1)
    }
}
