//! [`KeyRingStore`] on MongoDB: the ring is one document of the `signing_keys` collection
//! (`_id` "ring", its `version` and `keys`), replaced only by an update that names the version
//! it read; the first write is an insert, which the `_id` index lets only one instance make.

use async_trait::async_trait;
use mongodb::bson::{Document, doc};

use super::MongoUserStore;
use super::errors::{is_duplicate_id, store_error};
use crate::store::{KeyRingStore, SigningKeyRing, StoreError, StoreResult, StoredSigningKey};

const COLLECTION: &str = "signing_keys";
const RING_ID: &str = "ring";

fn unreadable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("unreadable signing keys: {e}"))
}

#[async_trait]
impl KeyRingStore for MongoUserStore {
    async fn signing_key_ring(&self) -> StoreResult<SigningKeyRing> {
        let found = self
            .database
            .collection::<Document>(COLLECTION)
            .find_one(doc! { "_id": RING_ID })
            .await
            .map_err(store_error)?;
        let Some(ring) = found else {
            return Ok(SigningKeyRing::default());
        };
        let version = ring.get_i64("version").map_err(unreadable)?;
        let keys = ring.get_array("keys").map_err(unreadable)?;
        Ok(SigningKeyRing {
            version: version as u64,
            keys: keys
                .iter()
                .map(|key| mongodb::bson::from_bson(key.clone()).map_err(unreadable))
                .collect::<StoreResult<_>>()?,
        })
    }

    async fn replace_signing_key_ring(
        &self,
        expected: u64,
        keys: &[StoredSigningKey],
    ) -> StoreResult<bool> {
        let keys = mongodb::bson::to_bson(keys).map_err(|e| StoreError::Internal(e.to_string()))?;
        let next = expected as i64 + 1;
        let collection = self.database.collection::<Document>(COLLECTION);
        if expected == 0 {
            return match collection
                .insert_one(doc! { "_id": RING_ID, "version": next, "keys": keys })
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if is_duplicate_id(&e) => Ok(false),
                Err(e) => Err(store_error(e)),
            };
        }
        let updated = collection
            .update_one(
                doc! { "_id": RING_ID, "version": expected as i64 },
                doc! { "$set": { "version": next, "keys": keys } },
            )
            .await
            .map_err(store_error)?;
        Ok(updated.matched_count == 1)
    }
}
