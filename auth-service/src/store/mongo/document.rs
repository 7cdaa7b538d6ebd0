//! How a user looks in the `users` collection. Field names follow the Mongoose model of the
//! original app (camelCase, `password` holding the argon2 PHC hash), so operators and old
//! tooling read the same documents; `usernameKey` is ours: the lowercased username that the
//! case-insensitive unique index is built on. `_id` is our [`UserId`] (UUID v7 text).

use mongodb::{
    IndexModel,
    bson::{Bson, DateTime, Document, doc},
    options::IndexOptions,
};

use crate::domain::{Disabled, Email, PasswordHash, Profile, User, UserId, UserStatus, Username};
use crate::store::{StoreError, StoreResult};

/// The collection of verified users.
pub(super) const COLLECTION: &str = "users";

/// Names of the unique indexes: a duplicate-key error names the index it hit, which is how
/// "email taken" is told apart from "username taken".
pub(super) const EMAIL_INDEX: &str = "email_1";
pub(super) const USERNAME_KEY_INDEX: &str = "username_key_1";

/// Field names of a user document.
pub(super) mod field {
    pub const ID: &str = "_id";
    pub const USERNAME: &str = "username";
    pub const USERNAME_KEY: &str = "usernameKey";
    pub const EMAIL: &str = "email";
    pub const PASSWORD: &str = "password";
    pub const BIO: &str = "bio";
    pub const AVATAR: &str = "avatar";
    pub const STATUS: &str = "status";
    pub const LAST_SEEN: &str = "lastSeen";
    pub const FRIENDS: &str = "friends";
    pub const CREATED_AT: &str = "createdAt";
    pub const UPDATED_AT: &str = "updatedAt";
    /// Ours: when the username last changed after sign-up (absent until then).
    pub const USERNAME_CHANGED_AT: &str = "usernameChangedAt";
    /// Ours: an operator's suspension, `{reason, at, until}` (absent or null when none).
    pub const DISABLED: &str = "disabled";
}

/// The unique indexes the store relies on; creating them again with the same spec is a no-op.
pub(super) fn index_models() -> Vec<IndexModel> {
    let unique = |name: &str| {
        IndexOptions::builder()
            .name(name.to_owned())
            .unique(true)
            .build()
    };
    vec![
        IndexModel::builder()
            .keys(doc! { field::EMAIL: 1 })
            .options(unique(EMAIL_INDEX))
            .build(),
        IndexModel::builder()
            .keys(doc! { field::USERNAME_KEY: 1 })
            .options(unique(USERNAME_KEY_INDEX))
            .build(),
    ]
}

/// The document of a user about to be inserted; `username_key` is [`Username::key`].
pub(super) fn user_document(user: &User, username_key: &str) -> Document {
    doc! {
        field::ID: &user.id.0,
        field::USERNAME: &user.username,
        field::USERNAME_KEY: username_key,
        field::EMAIL: &user.email,
        field::PASSWORD: &user.password_hash.0,
        field::BIO: &user.profile.bio,
        field::AVATAR: &user.profile.avatar_url,
        field::STATUS: user.status.as_str(),
        field::LAST_SEEN: user.last_seen.map_or(Bson::Null, |ms| DateTime::from_millis(ms).into()),
        field::FRIENDS: &user.friend_ids,
        field::CREATED_AT: DateTime::from_millis(user.created_at),
        field::UPDATED_AT: DateTime::from_millis(user.updated_at),
    }
}

/// Reads a stored user. Optional fields that an older document may lack take the defaults the
/// Mongoose model had; a missing identity field or hash is corrupt data.
pub(super) fn user_from_document(doc: &Document) -> StoreResult<User> {
    let id = match doc.get(field::ID) {
        Some(Bson::String(s)) => s.clone(),
        Some(Bson::ObjectId(oid)) => oid.to_hex(),
        _ => return Err(corrupt(doc, field::ID)),
    };
    let text = |name: &'static str| match doc.get(name) {
        Some(Bson::String(s)) => Ok(s.clone()),
        _ => Err(corrupt(doc, name)),
    };
    let text_or_empty = |name: &str| doc.get_str(name).unwrap_or_default().to_owned();
    let date = |name: &str| match doc.get(name) {
        Some(Bson::DateTime(d)) => Some(d.timestamp_millis()),
        _ => None,
    };
    let created_at = date(field::CREATED_AT).ok_or_else(|| corrupt(doc, field::CREATED_AT))?;
    let friend_ids = match doc.get(field::FRIENDS) {
        Some(Bson::Array(items)) => items
            .iter()
            .filter_map(|f| match f {
                Bson::String(s) => Some(s.clone()),
                Bson::ObjectId(oid) => Some(oid.to_hex()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(User {
        id: UserId(id),
        username: text(field::USERNAME)?,
        email: text(field::EMAIL)?,
        password_hash: PasswordHash(text(field::PASSWORD)?),
        profile: Profile {
            bio: text_or_empty(field::BIO),
            avatar_url: text_or_empty(field::AVATAR),
        },
        status: UserStatus::from_stored(doc.get_str(field::STATUS).unwrap_or_default()),
        last_seen: date(field::LAST_SEEN),
        friend_ids,
        created_at,
        updated_at: date(field::UPDATED_AT).unwrap_or(created_at),
        username_changed_at: date(field::USERNAME_CHANGED_AT),
        disabled: match doc.get(field::DISABLED) {
            Some(Bson::Document(d)) => Some(Disabled {
                reason: d.get_str("reason").unwrap_or_default().to_owned(),
                at: d.get_datetime("at").map_or(0, |t| t.timestamp_millis()),
                until: d.get_datetime("until").ok().map(|t| t.timestamp_millis()),
            }),
            None | Some(Bson::Null) => None,
            // A suspension that does not read holds, for good: failing closed.
            Some(_) => Some(Disabled::unreadable()),
        },
    })
}

fn corrupt(doc: &Document, name: &str) -> StoreError {
    // Only the id is named: the document holds a password hash and personal data.
    let id = doc
        .get(field::ID)
        .map(ToString::to_string)
        .unwrap_or_default();
    StoreError::Internal(format!("corrupt user document {id}: bad or missing {name}"))
}

pub(super) fn by_id(id: &UserId) -> Document {
    doc! { field::ID: &id.0 }
}

pub(super) fn by_email(email: &Email) -> Document {
    doc! { field::EMAIL: email.as_str() }
}

pub(super) fn by_username(username: &Username) -> Document {
    doc! { field::USERNAME_KEY: username.key() }
}

/// The fields of `change` in one update; a username change also stamps its time. `now` is
/// the caller's clock (the cooldown is compared against it).
pub(super) fn profile_update(change: &crate::domain::ProfileChange, now: i64) -> Document {
    let mut set = doc! { field::UPDATED_AT: DateTime::from_millis(now) };
    if let Some(bio) = &change.bio {
        set.insert(field::BIO, bio);
    }
    if let Some(url) = &change.avatar_url {
        set.insert(field::AVATAR, url);
    }
    if let Some(name) = &change.username {
        set.insert(field::USERNAME, name.as_str());
        set.insert(field::USERNAME_KEY, name.key());
        set.insert(field::USERNAME_CHANGED_AT, DateTime::from_millis(now));
    }
    doc! { "$set": set }
}

/// User `id` whose username may change at `now`: never changed, or changed at least
/// `cooldown_ms` ago.
pub(super) fn by_id_rename_allowed(id: &UserId, now: i64, cooldown_ms: i64) -> Document {
    doc! {
        field::ID: &id.0,
        "$or": [
            { field::USERNAME_CHANGED_AT: { "$exists": false } },
            { field::USERNAME_CHANGED_AT: Bson::Null },
            { field::USERNAME_CHANGED_AT: { "$lte": DateTime::from_millis(now - cooldown_ms) } },
        ],
    }
}

/// Status and lastSeen in one server-side update, stamped with the server's clock.
pub(super) fn presence_update(status: UserStatus) -> Document {
    doc! {
        "$set": { field::STATUS: status.as_str() },
        "$currentDate": { field::LAST_SEEN: true, field::UPDATED_AT: true },
    }
}

/// A new password hash in one server-side update.
/// Changes the email (the unique index refuses one another user has).
pub(super) fn email_update(email: &Email) -> Document {
    doc! {
        "$set": { field::EMAIL: email.as_str() },
        "$currentDate": { field::UPDATED_AT: true },
    }
}

/// Sets or lifts an operator's suspension.
pub(super) fn disabled_update(disabled: Option<&Disabled>) -> Document {
    let value = match disabled {
        None => Bson::Null,
        Some(d) => {
            let mut stored = doc! { "reason": &d.reason, "at": DateTime::from_millis(d.at) };
            if let Some(until) = d.until {
                stored.insert("until", DateTime::from_millis(until));
            }
            Bson::Document(stored)
        }
    };
    doc! {
        "$set": { field::DISABLED: value },
        "$currentDate": { field::UPDATED_AT: true },
    }
}

pub(super) fn password_update(hash: &PasswordHash) -> Document {
    doc! {
        "$set": { field::PASSWORD: &hash.0 },
        "$currentDate": { field::UPDATED_AT: true },
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::oid::ObjectId;

    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";

    fn user() -> User {
        User {
            id: UserId("0190a8e2-7c1d-7000-8000-000000000001".into()),
            username: "Ana_B".into(),
            email: "ana@example.com".into(),
            password_hash: PasswordHash(HASH.into()),
            profile: Profile {
                bio: "hi".into(),
                avatar_url: "https://cdn.example.com/a.png".into(),
            },
            status: UserStatus::Online,
            last_seen: Some(1_700_000_000_123),
            friend_ids: vec!["f1".into(), "f2".into()],
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_456,
            username_changed_at: None,
            disabled: None,
        }
    }

    fn assert_same(a: &User, b: &User) {
        assert_eq!(a.id, b.id);
        assert_eq!(
            (&a.username, &a.email, &a.password_hash.0),
            (&b.username, &b.email, &b.password_hash.0)
        );
        assert_eq!(a.profile, b.profile);
        assert_eq!((a.status, a.last_seen), (b.status, b.last_seen));
        assert_eq!(a.friend_ids, b.friend_ids);
        assert_eq!((a.created_at, a.updated_at), (b.created_at, b.updated_at));
    }

    #[test]
    fn a_user_round_trips_with_the_seed_field_names() {
        let user = user();
        let doc = user_document(&user, "ana_b");
        let names: Vec<&str> = doc.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "_id",
                "username",
                "usernameKey",
                "email",
                "password",
                "bio",
                "avatar",
                "status",
                "lastSeen",
                "friends",
                "createdAt",
                "updatedAt"
            ]
        );
        assert_eq!(doc.get_str("_id").unwrap(), user.id.0);
        assert_eq!(doc.get_str("usernameKey").unwrap(), "ana_b");
        assert_eq!(doc.get_str("password").unwrap(), HASH);
        assert_eq!(doc.get_str("status").unwrap(), "online");
        assert_eq!(
            doc.get_datetime("lastSeen").unwrap().timestamp_millis(),
            1_700_000_000_123,
            "dates are BSON datetimes"
        );
        assert_eq!(
            doc.get_datetime("createdAt").unwrap().timestamp_millis(),
            user.created_at
        );
        assert_same(&user_from_document(&doc).unwrap(), &user);
    }

    #[test]
    fn a_new_user_has_a_null_last_seen_and_no_friends() {
        let mut user = user();
        user.last_seen = None;
        user.friend_ids.clear();
        user.status = UserStatus::Offline;
        let doc = user_document(&user, "ana_b");
        assert_eq!(doc.get("lastSeen"), Some(&Bson::Null));
        assert_eq!(doc.get_array("friends").unwrap().len(), 0);
        assert_same(&user_from_document(&doc).unwrap(), &user);
    }

    #[test]
    fn a_sparse_seed_document_reads_with_model_defaults() {
        let oid = ObjectId::new();
        let friend = ObjectId::new();
        let doc = doc! {
            "_id": oid,
            "username": "old",
            "email": "old@example.com",
            "password": HASH,
            "friends": [friend],
            "createdAt": DateTime::from_millis(5),
        };
        let user = user_from_document(&doc).unwrap();
        assert_eq!(user.id.0, oid.to_hex());
        assert_eq!(user.profile, Profile::default());
        assert_eq!((user.status, user.last_seen), (UserStatus::Offline, None));
        assert_eq!(user.friend_ids, [friend.to_hex()]);
        assert_eq!((user.created_at, user.updated_at), (5, 5));
    }

    #[test]
    fn a_document_without_its_hash_is_corrupt_and_the_error_shows_no_data() {
        let mut doc = user_document(&user(), "ana_b");
        doc.remove("password");
        let err = user_from_document(&doc).unwrap_err().to_string();
        assert!(
            err.contains("password") && err.contains("0190a8e2"),
            "{err}"
        );
        assert!(!err.contains("ana@example.com"), "{err}");
        let mut doc = user_document(&user(), "ana_b");
        doc.insert("createdAt", "yesterday");
        assert!(matches!(
            user_from_document(&doc),
            Err(StoreError::Internal(_))
        ));
    }

    #[test]
    fn filters_use_the_id_the_email_and_the_lowercased_username() {
        assert_eq!(by_id(&UserId("u1".into())), doc! { "_id": "u1" });
        assert_eq!(
            by_email(&Email::parse("Ana@Example.com").unwrap()),
            doc! { "email": "ana@example.com" }
        );
        assert_eq!(
            by_username(&Username::parse("Ana_B").unwrap()),
            doc! { "usernameKey": "ana_b" }
        );
    }

    #[test]
    fn updates_are_single_server_side_operators() {
        assert_eq!(
            presence_update(UserStatus::Online),
            doc! {
                "$set": { "status": "online" },
                "$currentDate": { "lastSeen": true, "updatedAt": true },
            }
        );
        assert_eq!(
            password_update(&PasswordHash("h".into())),
            doc! { "$set": { "password": "h" }, "$currentDate": { "updatedAt": true } }
        );
    }

    #[test]
    fn unique_indexes_on_email_and_username_key_are_named() {
        let specs: Vec<(Document, Option<String>, Option<bool>)> = index_models()
            .into_iter()
            .map(|m| {
                let o = m.options.unwrap_or_default();
                (m.keys, o.name, o.unique)
            })
            .collect();
        assert_eq!(
            specs,
            [
                (doc! { "email": 1 }, Some("email_1".into()), Some(true)),
                (
                    doc! { "usernameKey": 1 },
                    Some("username_key_1".into()),
                    Some(true)
                ),
            ]
        );
    }
}
