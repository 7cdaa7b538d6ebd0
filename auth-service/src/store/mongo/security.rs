//! [`SecurityLog`] on MongoDB: the `security_events` collection, one document per entry
//! (`_id` the UUID v7 text, so entries of a user sort by it), read newest first through a
//! (userId, _id) index. A TTL index on `at` lets the server drop entries past the retention;
//! the service's periodic trim does the same for a server that does not run TTL monitors.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt as _;
use mongodb::{
    IndexModel,
    bson::{Bson, DateTime, Document, doc},
    options::IndexOptions,
};

use super::MongoUserStore;
use super::errors::store_error;
use crate::domain::{SecurityEvent, SecurityKind, SessionId, UnixMs, UserId};
use crate::store::{SecurityLog, StoreResult};

pub(super) const COLLECTION: &str = "security_events";
const TTL_INDEX: &str = "at_ttl";

fn to_document(e: &SecurityEvent) -> Document {
    doc! {
        "_id": &e.id,
        "userId": &e.user_id.0,
        "at": DateTime::from_millis(e.at),
        "kind": e.kind.as_str(),
        "detail": &e.detail,
        "ip": &e.ip,
        "userAgent": &e.user_agent,
        "sessionId": e.session_id.as_ref().map(|s| s.0.as_str()).unwrap_or_default(),
    }
}

fn from_document(d: &Document) -> Option<SecurityEvent> {
    let text = |name: &str| d.get_str(name).unwrap_or_default().to_owned();
    let session = text("sessionId");
    Some(SecurityEvent {
        id: d.get_str("_id").ok()?.to_owned(),
        user_id: UserId(d.get_str("userId").ok()?.to_owned()),
        at: d.get_datetime("at").ok()?.timestamp_millis(),
        kind: SecurityKind::parse(d.get_str("kind").ok()?)?,
        detail: text("detail"),
        ip: text("ip"),
        user_agent: text("userAgent"),
        session_id: (!session.is_empty()).then_some(SessionId(session)),
    })
}

impl MongoUserStore {
    /// The security log's indexes: per user newest first, and the TTL of `retention` on `at`
    /// (replaced when the retention changed).
    pub async fn keep_security_events_for(&self, retention: Duration) -> StoreResult<()> {
        let events = self.database.collection::<Document>(COLLECTION);
        let by_user = IndexModel::builder()
            .keys(doc! { "userId": 1, "_id": -1 })
            .build();
        events.create_index(by_user).await.map_err(store_error)?;
        let ttl = || {
            IndexModel::builder()
                .keys(doc! { "at": 1 })
                .options(
                    IndexOptions::builder()
                        .name(TTL_INDEX.to_owned())
                        .expire_after(retention)
                        .build(),
                )
                .build()
        };
        let Err(e) = events.create_index(ttl()).await else {
            return Ok(());
        };
        // 85/86: the index exists with another retention. Changed in place, so instances
        // starting together (or a rolling deploy) never drop it; the periodic trim keeps the
        // retention even where the server cannot change it.
        let conflict = matches!(
            e.kind.as_ref(),
            mongodb::error::ErrorKind::Command(c) if c.code == 85 || c.code == 86
        );
        if !conflict {
            return Err(store_error(e));
        }
        let changed = self
            .database
            .run_command(doc! {
                "collMod": COLLECTION,
                "index": { "name": TTL_INDEX, "expireAfterSeconds": retention.as_secs() as i64 },
            })
            .await;
        if let Err(e) = changed {
            tracing::warn!(error = %e, "cannot change the security log's TTL index; the periodic trim keeps the retention");
        }
        Ok(())
    }
}

#[async_trait]
impl SecurityLog for MongoUserStore {
    async fn record_security_event(&self, e: &SecurityEvent) -> StoreResult<()> {
        self.database
            .collection::<Document>(COLLECTION)
            .insert_one(to_document(e))
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn security_events(
        &self,
        user: &UserId,
        before: Option<&str>,
        limit: usize,
        kinds: &[SecurityKind],
    ) -> StoreResult<Vec<SecurityEvent>> {
        let mut filter = doc! { "userId": &user.0 };
        if let Some(before) = before {
            filter.insert("_id", doc! { "$lt": before });
        }
        if !kinds.is_empty() {
            let kinds: Vec<Bson> = kinds.iter().map(|k| Bson::from(k.as_str())).collect();
            filter.insert("kind", doc! { "$in": kinds });
        }
        let docs: Vec<Document> = self
            .database
            .collection::<Document>(COLLECTION)
            .find(filter)
            .sort(doc! { "_id": -1 })
            .limit(limit as i64)
            .await
            .map_err(store_error)?
            .try_collect()
            .await
            .map_err(store_error)?;
        Ok(docs.iter().filter_map(from_document).collect())
    }

    async fn trim_security_events(&self, before: UnixMs) -> StoreResult<u64> {
        self.database
            .collection::<Document>(COLLECTION)
            .delete_many(doc! { "at": { "$lt": DateTime::from_millis(before) } })
            .await
            .map(|r| r.deleted_count)
            .map_err(store_error)
    }
}
