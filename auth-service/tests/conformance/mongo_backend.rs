//! The MongoDB user store: the stores it is run with in the suite, and what only a Mongo
//! backend needs checked (the stored documents, the indexes, an outage and the recovery).

use std::{sync::Arc, time::Duration};

use auth_service::crypto::{HashSettings, PasswordHasher};
use auth_service::domain::{
    Email, NewUser, Password, PasswordHash, Profile, UserId, UserStatus, Username, now_ms,
};
use auth_service::store::{
    CreateUserError, Health, StoreError, Stores, UserStore,
    events_after::EventsAfter,
    mongo::{MongoSettings, MongoUserStore},
    sqlite::SqliteStore,
};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};

use baatcheet_test_support::{
    mongo_server::{SecantusServer, Storage, TestDatabase, test_database},
    process::free_port,
};

/// The store under test over `db` (indexes created).
async fn user_store(db: &TestDatabase) -> MongoUserStore {
    MongoUserStore::connect(&db.uri, &db.name, &MongoSettings::default())
        .await
        .unwrap_or_else(|e| panic!("MongoUserStore::connect({}): {e}", db.uri))
}

/// Users in MongoDB (a fresh database), everything else in an in-memory SQLite store.
pub async fn stores() -> Stores {
    let users = Arc::new(user_store(&test_database().await).await);
    let state = Arc::new(SqliteStore::open(std::path::Path::new(":memory:")).unwrap());
    let records = Arc::new(EventsAfter {
        users: users.clone(),
        log: state.clone(),
    });
    Stores {
        current_user: None,
        users: records.clone(),
        factors: records.clone(),
        security: records.clone(),
        keys: records,
        tickets: state.clone(),
        pending: state.clone(),
        sessions: state.clone(),
        limits: state.clone(),
        mail: state.clone(),
        events: state.clone(),
        presence: state.clone(),
        health: vec![users, state],
    }
}

fn new_user(name: &str, hash: PasswordHash) -> NewUser {
    NewUser {
        id: auth_service::domain::UserId::generate(),
        username: Username::parse(name).unwrap(),
        email: Email::parse(&format!("{name}@example.com")).unwrap(),
        password_hash: hash,
        profile: Profile::default(),
    }
}

fn unique(tag: &str) -> String {
    format!("{tag}{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// Every string anywhere in a document, nested ones included.
fn strings(value: &Bson, out: &mut Vec<String>) {
    match value {
        Bson::String(s) => out.push(s.clone()),
        Bson::Document(d) => d.values().for_each(|v| strings(v, out)),
        Bson::Array(items) => items.iter().for_each(|v| strings(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn no_plaintext_password_is_stored_only_phc_hashes() {
    let db = test_database().await;
    let store = user_store(&db).await;
    let hasher = PasswordHasher::new(&HashSettings {
        memory_kib: 19456,
        iterations: 2,
        parallelism: 1,
        concurrency: 2,
        queue: 16,
        max_wait: std::time::Duration::from_secs(10),
    })
    .unwrap();
    let mut plaintexts = Vec::new();
    for i in 0..3 {
        let plaintext = format!("correct horse battery {i}");
        let hash = hasher
            .hash(&Password::parse(&plaintext).unwrap())
            .await
            .unwrap();
        let user = store
            .create_user(&new_user(&unique("plain"), hash), now_ms())
            .await
            .unwrap();
        if i == 0 {
            // A changed password is stored hashed as well.
            let plaintext = "a brand new secret".to_owned();
            let hash = hasher
                .hash(&Password::parse(&plaintext).unwrap())
                .await
                .unwrap();
            assert!(store.set_password(&user.id, &hash, now_ms()).await.unwrap());
            plaintexts.push(plaintext);
        }
        plaintexts.push(plaintext);
    }

    let docs: Vec<Document> = db
        .database()
        .await
        .collection::<Document>("users")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(docs.len(), 3);
    for d in &docs {
        let mut all = Vec::new();
        strings(&Bson::Document(d.clone()), &mut all);
        for plaintext in &plaintexts {
            assert!(
                all.iter().all(|s| !s.contains(plaintext.as_str())),
                "a plaintext password is stored in {:?}",
                d.get("_id")
            );
        }
        let stored = d.get_str("password").unwrap();
        let phc = argon2::PasswordHash::new(stored).expect("password is a PHC string");
        assert_eq!(phc.algorithm.as_str(), "argon2id");
    }
}

#[tokio::test]
async fn documents_have_the_seed_layout() {
    let db = test_database().await;
    let store = user_store(&db).await;
    let hash = PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
    let name = unique("Layout");
    let user = store
        .create_user(&new_user(&name, hash), now_ms())
        .await
        .unwrap();
    let users = db.database().await.collection::<Document>("users");
    let stored = users
        .find_one(doc! { "_id": &user.id.0 })
        .await
        .unwrap()
        .expect("the document, keyed by our user id");
    assert_eq!(stored.get_str("username").unwrap(), name);
    assert_eq!(stored.get_str("usernameKey").unwrap(), name.to_lowercase());
    assert_eq!(stored.get("lastSeen"), Some(&Bson::Null));
    assert_eq!(stored.get_str("status").unwrap(), "offline");
    for date in ["createdAt", "updatedAt"] {
        assert!(stored.get_datetime(date).is_ok(), "{date} is a BSON date");
    }

    store
        .set_presence(&user.id, UserStatus::Online, now_ms())
        .await
        .unwrap();
    let stored = users
        .find_one(doc! { "_id": &user.id.0 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.get_str("status").unwrap(), "online");
    assert!(
        stored.get_datetime("lastSeen").is_ok(),
        "lastSeen is a BSON date"
    );

    let indexes: Vec<_> = users
        .list_indexes()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    for (name, key) in [("email_1", "email"), ("username_key_1", "usernameKey")] {
        let index = indexes
            .iter()
            .find(|i| i.options.as_ref().and_then(|o| o.name.as_deref()) == Some(name))
            .unwrap_or_else(|| panic!("index {name} in {indexes:?}"));
        assert_eq!(index.keys, doc! { key: 1 });
        assert_eq!(index.options.as_ref().unwrap().unique, Some(true));
    }
}

#[tokio::test]
async fn connecting_again_keeps_the_indexes_and_the_users() {
    let db = test_database().await;
    let first = user_store(&db).await;
    let hash = PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
    let user = new_user(&unique("again"), hash);
    first.create_user(&user, now_ms()).await.unwrap();
    // A second instance of the service starting against the same database.
    let second = user_store(&db).await;
    assert!(matches!(
        second.create_user(&user, now_ms()).await,
        Err(CreateUserError::EmailTaken)
    ));
    assert!(second.find_by_email(&user.email).await.unwrap().is_some());
}

#[tokio::test]
async fn connecting_to_no_server_is_unavailable() {
    let settings = MongoSettings {
        server_selection_timeout: Duration::from_millis(300),
        ..MongoSettings::default()
    };
    let uri = format!("mongodb://127.0.0.1:{}/", free_port());
    let r = MongoUserStore::connect(&uri, "authtest_none", &settings).await;
    assert!(
        matches!(r, Err(StoreError::Unavailable(_))),
        "{:?}",
        r.err()
    );
}

/// Bounded, so a call that hangs while the server is down fails the test instead.
async fn within<F: std::future::Future>(call: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("the call fails while the server is down, it does not hang")
}

/// The driver reconnects by itself: calls fail as unavailable while the server is down and
/// work again, on the same store, once it is back.
#[tokio::test]
async fn an_outage_is_unavailable_and_the_store_recovers() {
    let server = SecantusServer::start(Storage::Disk).await;
    // A shorter wait for a server than the default, only to keep the test short.
    let settings = MongoSettings {
        server_selection_timeout: Duration::from_millis(500),
        ..MongoSettings::default()
    };
    let store = MongoUserStore::connect(&server.uri(), "authtest_outage", &settings)
        .await
        .unwrap();
    let hash = PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
    let before = new_user(&unique("before"), hash.clone());
    let created = store.create_user(&before, now_ms()).await.unwrap();

    server.stop();
    let ping = within(store.ping()).await;
    assert!(matches!(ping, Err(StoreError::Unavailable(_))), "{ping:?}");
    let found = within(store.find_by_id(&created.id)).await;
    assert!(
        matches!(found, Err(StoreError::Unavailable(_))),
        "{found:?}"
    );
    let create =
        within(store.create_user(&new_user(&unique("during"), hash.clone()), now_ms())).await;
    assert!(
        matches!(
            create,
            Err(CreateUserError::Store(StoreError::Unavailable(_)))
        ),
        "{create:?}"
    );
    let presence = within(store.set_presence(&created.id, UserStatus::Online, now_ms())).await;
    assert!(
        matches!(presence, Err(StoreError::Unavailable(_))),
        "{presence:?}"
    );

    server.restart().await;
    store
        .ping()
        .await
        .expect("the same store works again once the server is back");
    let back = store.find_by_id(&created.id).await.unwrap().unwrap();
    assert_eq!(back.email, before.email.as_str());
    store
        .set_presence(&created.id, UserStatus::Online, now_ms())
        .await
        .unwrap();
    assert!(matches!(
        store.create_user(&before, now_ms()).await,
        Err(CreateUserError::EmailTaken)
    ));
    store
        .create_user(&new_user(&unique("after"), hash), now_ms())
        .await
        .unwrap();
    assert!(
        store
            .find_by_id(&UserId("missing".into()))
            .await
            .unwrap()
            .is_none()
    );
}
