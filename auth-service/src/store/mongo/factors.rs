//! [`FactorStore`] on MongoDB: the factors live in the user's document, under `mfa`:
//! `mfa.totp` (`secret` sealed to the user, `lastStep`, `enabledAt`) and `mfa.recoveryCodes`
//! (keyed hashes), and `mfa.passkeys` (an array of `{id, name, credential, counter, backedUp,
//! createdAt, lastUsedAt}`). Each method is one single-document operation, so each is atomic:
//! a step is taken with a filter on `lastStep`, a recovery code with a `$pull` whose filter
//! names it, a passkey is added only while the array is short of the cap and lacks its id,
//! and a use raises the counter only through an `$elemMatch` filter on the lower one.
//! Their events are appended right after (see `store::EventsAfter`).

use async_trait::async_trait;
use mongodb::bson::{Binary, Bson, Document, doc, spec::BinarySubtype};

use super::{MongoUserStore, document::by_id, errors::store_error};
use crate::domain::{CodeHash, FactorSummary, UnixMs, UserId};
use crate::store::{FactorStore, PasskeyRecord, PasskeyUse, StoreError, StoreResult, TotpFactor};

const TOTP: &str = "mfa.totp";
const LAST_STEP: &str = "mfa.totp.lastStep";
const RECOVERY: &str = "mfa.recoveryCodes";
const PASSKEYS: &str = "mfa.passkeys";

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
            passkeys: mfa
                .get_array("passkeys")
                .map(|keys| keys.len() as u32)
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

    async fn passkeys(&self, user: &UserId) -> StoreResult<Vec<PasskeyRecord>> {
        let mfa = self.mfa(user).await?;
        let Ok(keys) = mfa.get_array("passkeys") else {
            return Ok(Vec::new());
        };
        keys.iter()
            .map(|key| {
                key.as_document()
                    .and_then(passkey_from)
                    .ok_or_else(|| corrupt(PASSKEYS))
            })
            .collect()
    }

    async fn add_passkey(
        &self,
        user: &UserId,
        passkey: &PasskeyRecord,
        max: u32,
    ) -> StoreResult<bool> {
        if max == 0 {
            return Ok(false);
        }
        let mut filter = by_id(user);
        filter.insert("mfa.passkeys.id", doc! { "$ne": &passkey.id });
        // The array has fewer than `max` entries when its entry `max - 1` does not exist.
        filter.insert(format!("{PASSKEYS}.{}", max - 1), doc! { "$exists": false });
        let result = self
            .users
            .update_one(filter, doc! { "$push": { PASSKEYS: passkey_doc(passkey) } })
            .await
            .map_err(store_error)?;
        Ok(result.modified_count == 1)
    }

    async fn use_passkey(&self, user: &UserId, used: &PasskeyUse<'_>) -> StoreResult<bool> {
        let counter = i64::from(used.counter);
        let lower = if counter == 0 {
            doc! { "id": used.id, "counter": 0_i64 }
        } else {
            doc! { "id": used.id, "counter": { "$lt": counter } }
        };
        let mut filter = by_id(user);
        filter.insert(PASSKEYS, doc! { "$elemMatch": lower });
        let update = doc! { "$set": {
            "mfa.passkeys.$[key].credential": used.credential,
            "mfa.passkeys.$[key].counter": counter,
            "mfa.passkeys.$[key].backedUp": used.backed_up,
            "mfa.passkeys.$[key].lastUsedAt": used.at,
        }};
        let result = self
            .users
            .update_one(filter, update)
            .array_filters(vec![doc! { "key.id": used.id }])
            .await
            .map_err(store_error)?;
        Ok(result.modified_count == 1)
    }

    async fn delete_passkey(&self, user: &UserId, id: &str, _now: UnixMs) -> StoreResult<bool> {
        let mut filter = by_id(user);
        filter.insert("mfa.passkeys.id", id);
        let result = self
            .users
            .update_one(filter, doc! { "$pull": { PASSKEYS: { "id": id } } })
            .await
            .map_err(store_error)?;
        Ok(result.modified_count == 1)
    }
}

fn passkey_doc(p: &PasskeyRecord) -> Document {
    doc! {
        "id": &p.id,
        "name": &p.name,
        "credential": &p.credential,
        "counter": i64::from(p.counter),
        "backedUp": p.backed_up,
        "createdAt": p.created_at,
        "lastUsedAt": p.last_used_at,
    }
}

fn passkey_from(d: &Document) -> Option<PasskeyRecord> {
    Some(PasskeyRecord {
        id: d.get_str("id").ok()?.to_owned(),
        name: d.get_str("name").ok()?.to_owned(),
        credential: d.get_str("credential").ok()?.to_owned(),
        counter: u32::try_from(d.get_i64("counter").ok()?).ok()?,
        backed_up: d.get_bool("backedUp").ok()?,
        created_at: d.get_i64("createdAt").ok()?,
        last_used_at: d.get_i64("lastUsedAt").ok(),
    })
}
