//! Chooses the backends once, at startup, from config: users in MongoDB or SQLite, state in
//! Redis or SQLite, mail through SMTP or into the .eml folder. Nothing else names a backend.

use std::{sync::Arc, time::Duration};

use secrecy::ExposeSecret;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, EventsConfig, MailConfig, StorageConfig};
use crate::mail::{EmlMailer, Mailer, SmtpMailer};
use crate::store::{
    Health, StoreError, Stores, UserRecords,
    events_after::EventsAfter,
    mongo::{MongoSettings, MongoUserStore},
    redis::{RedisSettings, RedisStore},
    sqlite::SqliteStore,
};

/// How often the SQLite store deletes expired rows (Redis expires keys itself).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The chosen stores and mailer, and what they need done in the background.
pub struct Backends {
    pub stores: Stores,
    pub mailer: Arc<dyn Mailer>,
    pub maintenance: Maintenance,
    pub description: String,
}

/// Background work of the chosen backends: sweeping expired SQLite rows when SQLite is used.
pub struct Maintenance {
    sqlite: Option<Arc<SqliteStore>>,
}

impl Maintenance {
    /// Starts it; it ends when `stop` is cancelled.
    pub fn spawn(self, stop: CancellationToken) -> Option<JoinHandle<()>> {
        let sqlite = self.sqlite?;
        Some(tokio::spawn(sqlite.sweep(SWEEP_EVERY, stop)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{backend}: {source}")]
    Store {
        backend: &'static str,
        source: StoreError,
    },
}

/// Opens the backends `storage` names and the mailer `mail` names, with the event log as
/// `events` bounds it.
pub async fn open(
    storage: &StorageConfig,
    mail: &MailConfig,
    events: &EventsConfig,
) -> Result<Backends, BackendError> {
    let needs_sqlite = storage.mongo.is_none() || storage.redis.is_none();
    let sqlite = if needs_sqlite {
        let store =
            SqliteStore::open(&storage.sqlite_path).map_err(|source| BackendError::Store {
                backend: "SQLite",
                source,
            })?;
        // With the event log in Redis, user events are appended there (EventsAfter).
        let store = if storage.redis.is_some() {
            store.without_user_events()
        } else {
            store
        };
        Some(Arc::new(store))
    } else {
        None
    };
    let mut health: Vec<Arc<dyn Health>> = Vec::new();
    if let Some(s) = &sqlite {
        health.push(s.clone());
    }

    let (users, users_name): (Arc<dyn UserRecords>, _) = match &storage.mongo {
        Some(mongo) => {
            let settings = MongoSettings {
                max_pool_size: mongo.max_pool_size,
                server_selection_timeout: mongo.server_selection_timeout,
                connect_timeout: mongo.connect_timeout,
            };
            let store = Arc::new(
                MongoUserStore::connect_with(
                    mongo.uri.expose_secret(),
                    mongo.database.as_deref(),
                    mongo
                        .username
                        .as_deref()
                        .zip(mongo.password.as_ref().map(|p| p.expose_secret())),
                    mongo.retry_writes,
                    &settings,
                )
                .await
                .map_err(|source| BackendError::Store {
                    backend: "MongoDB (MONGODB_URI)",
                    source,
                })?,
            );
            store
                .keep_security_events_for(events.audit_retention)
                .await
                .map_err(|source| BackendError::Store {
                    backend: "MongoDB (MONGODB_URI)",
                    source,
                })?;
            health.push(store.clone());
            (store, "MongoDB")
        }
        None => (sqlite.clone().expect("opened above"), "SQLite"),
    };

    let (state, state_name) = match &storage.redis {
        Some(redis) => {
            let store = Arc::new(
                RedisStore::connect_lazy(
                    redis.url.expose_secret(),
                    RedisSettings {
                        pool_size: redis.pool_size,
                        connection_timeout: redis.timeout,
                        command_timeout: redis.timeout,
                        event_retention_ms: crate::config::millis(events.retention),
                        event_max_len: events.max_events,
                        cluster: redis.cluster,
                        ..RedisSettings::default()
                    },
                )
                .map_err(|source| BackendError::Store {
                    backend: "Redis (REDIS_URL)",
                    source,
                })?,
            );
            health.push(store.clone());
            (StateStores::from_redis(store), "Redis")
        }
        None => (
            StateStores::from_sqlite(sqlite.clone().expect("opened above")),
            "SQLite",
        ),
    };

    let (mailer, mail_name): (Arc<dyn Mailer>, String) = match &mail.smtp {
        Some(smtp) => (
            Arc::new(
                SmtpMailer::new(smtp, &mail.from).map_err(|message| ConfigError {
                    var: "SMTP_HOST / MAIL_FROM",
                    message,
                })?,
            ),
            format!("SMTP {}:{}", smtp.host, smtp.port),
        ),
        None => (
            Arc::new(
                EmlMailer::new(mail.dir.clone(), &mail.from).map_err(|message| ConfigError {
                    var: "MAIL_DIR / MAIL_FROM",
                    message,
                })?,
            ),
            format!(".eml files in {}", mail.dir.display()),
        ),
    };

    // Users and the log in one SQLite file: their events are written in the same
    // transaction. Otherwise they are appended to the log right after the change.
    let all_in_sqlite = storage.mongo.is_none() && storage.redis.is_none();
    // Everything in the one SQLite file: GetCurrentUser reads it in one job.
    let current_user = match &sqlite {
        Some(sqlite) if all_in_sqlite => {
            Some(sqlite.clone() as Arc<dyn crate::store::CurrentUserStore>)
        }
        _ => None,
    };
    let users: Arc<dyn UserRecords> = if all_in_sqlite {
        users
    } else {
        Arc::new(EventsAfter {
            users,
            log: state.events.clone(),
        })
    };
    Ok(Backends {
        stores: Stores {
            users: users.clone(),
            factors: users.clone(),
            security: users.clone(),
            keys: users,
            tickets: state.tickets,
            events: state.events,
            presence: state.presence,
            pending: state.pending,
            sessions: state.sessions,
            limits: state.limits,
            mail: state.mail,
            health,
            current_user,
        },
        mailer,
        maintenance: Maintenance { sqlite },
        description: format!("users: {users_name}; state: {state_name}; mail: {mail_name}"),
    })
}

/// The short-lived-state stores, all from one backend.
struct StateStores {
    pending: Arc<dyn crate::store::PendingCodeStore>,
    sessions: Arc<dyn crate::store::SessionStore>,
    limits: Arc<dyn crate::store::RateLimitStore>,
    mail: Arc<dyn crate::store::MailQueue>,
    events: Arc<dyn crate::store::EventLog>,
    presence: Arc<dyn crate::store::PresenceStore>,
    tickets: Arc<dyn crate::store::TicketStore>,
}

impl StateStores {
    fn from_redis(s: Arc<RedisStore>) -> Self {
        Self {
            pending: s.clone(),
            sessions: s.clone(),
            limits: s.clone(),
            mail: s.clone(),
            events: s.clone(),
            presence: s.clone(),
            tickets: s,
        }
    }

    fn from_sqlite(s: Arc<SqliteStore>) -> Self {
        Self {
            pending: s.clone(),
            sessions: s.clone(),
            limits: s.clone(),
            mail: s.clone(),
            events: s.clone(),
            presence: s.clone(),
            tickets: s,
        }
    }
}
