//! MongoDB user store: verified users in the `users` collection of the production database,
//! the one the original app's Mongoose model wrote (see [`document`] for the layout).
//!
//! The store relies on the server for every rule: two unique indexes (email, lowercased
//! username) make "create the user if both are free" one insert, and presence and password
//! changes are single server-side updates. One driver client per process holds the
//! connection pool; it reconnects by itself when the server comes back, so the store needs no
//! restart after an outage. While the server is away, calls fail after the server-selection
//! timeout with [`StoreError::Unavailable`] instead of hanging.

mod document;
mod errors;
mod factors;
mod keys;
mod security;
mod users;

use std::time::Duration;

use async_trait::async_trait;
use mongodb::{
    Client, Collection, Database,
    bson::{Document, doc},
    options::{ClientOptions, Credential},
};

use super::{Health, StoreResult};
use errors::store_error;

/// Driver settings from the production notes. An option the URI names explicitly
/// (`?maxPoolSize=50`) wins over these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MongoSettings {
    /// Connections per server in the pool (`maxPoolSize`).
    pub max_pool_size: u32,
    /// How long a call waits for a usable server before failing as unavailable
    /// (`serverSelectionTimeoutMS`). Short, so requests fail fast while MongoDB is down.
    pub server_selection_timeout: Duration,
    /// How long opening one connection may take (`connectTimeoutMS`).
    pub connect_timeout: Duration,
}

impl Default for MongoSettings {
    fn default() -> Self {
        Self {
            max_pool_size: 20,
            server_selection_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// The database used when neither the config nor the URI names one.
pub const DEFAULT_DATABASE: &str = "baatcheet";

/// The user store over one MongoDB database.
pub struct MongoUserStore {
    database: Database,
    users: Collection<Document>,
}

impl MongoUserStore {
    /// Connects to `uri`, uses database `db_name`, and creates the unique indexes if missing.
    /// Fails with `Unavailable` when no server answers within the server-selection timeout.
    pub async fn connect(uri: &str, db_name: &str, settings: &MongoSettings) -> StoreResult<Self> {
        Self::connect_with(uri, Some(db_name), None, true, settings).await
    }

    /// [`MongoUserStore::connect`] with the seed's separate variables: `database` (DB_NAME),
    /// else the URI's default database, else [`DEFAULT_DATABASE`]; `credentials` (DB_USERNAME,
    /// DB_PASSWORD) replace the URI's user and password, keeping its authSource and
    /// mechanism; `retry_writes` applies unless the URI names retryWrites itself.
    pub async fn connect_with(
        uri: &str,
        database: Option<&str>,
        credentials: Option<(&str, &str)>,
        retry_writes: bool,
        settings: &MongoSettings,
    ) -> StoreResult<Self> {
        let mut options = ClientOptions::parse(uri).await.map_err(store_error)?;
        apply_settings(&mut options, settings, retry_writes);
        if let Some((username, password)) = credentials {
            apply_credentials(&mut options, username, password);
        }
        let db_name = database_name(&options, database);
        let client = Client::with_options(options).map_err(store_error)?;
        let database = client.database(&db_name);
        let store = Self {
            users: database.collection(document::COLLECTION),
            database,
        };
        store.ensure_indexes().await?;
        Ok(store)
    }

    /// Creates the unique indexes; a no-op when they exist with the same spec.
    async fn ensure_indexes(&self) -> StoreResult<()> {
        self.users
            .create_indexes(document::index_models())
            .await
            .map_err(store_error)?;
        tracing::debug!(
            database = self.database.name(),
            collection = document::COLLECTION,
            "user indexes are in place"
        );
        Ok(())
    }
}

/// Fills in what the URI left unset. retryWrites should stay on (the driver's default): a
/// write that met a failover is then sent once more, and the server knows it for a retry, so
/// a user insert retried after a lost reply is not mistaken for a duplicate.
fn apply_settings(options: &mut ClientOptions, settings: &MongoSettings, retry_writes: bool) {
    options.max_pool_size.get_or_insert(settings.max_pool_size);
    options
        .server_selection_timeout
        .get_or_insert(settings.server_selection_timeout);
    options
        .connect_timeout
        .get_or_insert(settings.connect_timeout);
    options.retry_writes.get_or_insert(retry_writes);
    options
        .app_name
        .get_or_insert_with(|| "baatcheet-auth".to_owned());
}

/// Replaces the URI's user and password. A new credential authenticates against the URI's
/// database, else `admin`, as it would had it been written in the URI.
fn apply_credentials(options: &mut ClientOptions, username: &str, password: &str) {
    let default_source = options.default_database.clone();
    let credential = options
        .credential
        .get_or_insert_with(|| Credential::builder().source(default_source).build());
    credential.username = Some(username.to_owned());
    credential.password = Some(password.to_owned());
}

fn database_name(options: &ClientOptions, configured: Option<&str>) -> String {
    configured
        .or(options.default_database.as_deref())
        .unwrap_or(DEFAULT_DATABASE)
        .to_owned()
}

#[async_trait]
impl Health for MongoUserStore {
    async fn ping(&self) -> StoreResult<()> {
        self.database
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settings_fill_what_the_uri_leaves_unset() {
        let mut options = ClientOptions::parse("mongodb://127.0.0.1:27017/")
            .await
            .unwrap();
        apply_settings(&mut options, &MongoSettings::default(), true);
        assert_eq!(options.max_pool_size, Some(20));
        assert_eq!(
            options.server_selection_timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(options.connect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(options.retry_writes, Some(true));
        assert_eq!(options.app_name.as_deref(), Some("baatcheet-auth"));
    }

    #[tokio::test]
    async fn options_named_in_the_uri_win() {
        let mut options = ClientOptions::parse(
            "mongodb://127.0.0.1:27017/?maxPoolSize=5&serverSelectionTimeoutMS=100\
             &retryWrites=false&appName=ops",
        )
        .await
        .unwrap();
        apply_settings(&mut options, &MongoSettings::default(), true);
        assert_eq!(options.max_pool_size, Some(5));
        assert_eq!(
            options.server_selection_timeout,
            Some(Duration::from_millis(100))
        );
        assert_eq!(options.retry_writes, Some(false));
        assert_eq!(options.app_name.as_deref(), Some("ops"));
    }

    #[tokio::test]
    async fn retry_writes_can_be_turned_off() {
        let mut options = ClientOptions::parse("mongodb://h/").await.unwrap();
        apply_settings(&mut options, &MongoSettings::default(), false);
        assert_eq!(options.retry_writes, Some(false));
    }

    #[tokio::test]
    async fn separate_credentials_replace_the_uris() {
        let mut options = ClientOptions::parse("mongodb://old:pw@h/chat?authSource=users")
            .await
            .unwrap();
        apply_credentials(&mut options, "app", "s3cret");
        let c = options.credential.unwrap();
        assert_eq!(
            (
                c.username.as_deref(),
                c.password.as_deref(),
                c.source.as_deref()
            ),
            (Some("app"), Some("s3cret"), Some("users"))
        );

        let mut options = ClientOptions::parse("mongodb://h/chat").await.unwrap();
        apply_credentials(&mut options, "app", "s3cret");
        let c = options.credential.unwrap();
        assert_eq!(
            (c.username.as_deref(), c.source.as_deref()),
            (Some("app"), Some("chat"))
        );
    }

    #[tokio::test]
    async fn the_database_is_configured_else_the_uris_else_the_default() {
        let with_db = ClientOptions::parse("mongodb://h/chat").await.unwrap();
        let without = ClientOptions::parse("mongodb://h/").await.unwrap();
        assert_eq!(database_name(&with_db, Some("prod")), "prod");
        assert_eq!(database_name(&with_db, None), "chat");
        assert_eq!(database_name(&without, None), DEFAULT_DATABASE);
    }
}
