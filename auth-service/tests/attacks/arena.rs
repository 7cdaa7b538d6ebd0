//! Where an attack is performed: the real service on one backend, with a real SMTP server
//! whose mailbox the tests read like the victim would.

use std::{path::PathBuf, time::Duration};

use tonic::Request;

use crate::env::Backends;
use crate::helpers::{TestApp, spawn_app_with};
use baatcheet_test_support::mail::{Mail, Mailbox, wait_for_code};
use baatcheet_test_support::smtp_server::SmtpServer;

/// The state backends an attack runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Users and state in one SQLite file.
    Sqlite,
    /// Users in MongoDB (SecantusDB, or `MONGODB_URI`), state in a redis-server.
    RedisMongo,
}

/// Generates one test per backend for each named attack `async fn name(backend: Backend)`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::attacks::arena::Backend::Sqlite).await;
                }
            )*
        }
        mod redis_mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::attacks::arena::Backend::RedisMongo).await;
                }
            )*
        }
    };
}
pub(crate) use on_every_backend;

pub struct Arena {
    pub app: TestApp,
    state: State,
}

enum State {
    Sqlite {
        smtp: SmtpServer,
        file: PathBuf,
        _dir: tempfile::TempDir,
    },
    RedisMongo(Box<Backends>),
}

impl Arena {
    /// The service on `backend` with `overrides`, mail through aiosmtpd.
    pub async fn start(backend: Backend, overrides: &[(&str, &str)]) -> Self {
        Self::start_with_smtp(backend, overrides, SmtpServer::start().await).await
    }

    /// The same with a given SMTP server (a slow one, say).
    pub async fn start_with_smtp(
        backend: Backend,
        overrides: &[(&str, &str)],
        smtp: SmtpServer,
    ) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let file = dir.path().join("auth.sqlite3");
                let (path, port) = (file.display().to_string(), smtp.port().to_string());
                let mut vars = vec![
                    ("SQLITE_PATH", path.as_str()),
                    ("SMTP_HOST", "127.0.0.1"),
                    ("SMTP_PORT", port.as_str()),
                    ("SMTP_TLS", "none"),
                    ("MAIL_RETRY_BASE_DELAY", "200ms"),
                    ("MAIL_RETRY_MAX_DELAY", "1s"),
                ];
                vars.extend_from_slice(overrides);
                let app = spawn_app_with(&vars).await;
                Self {
                    app,
                    state: State::Sqlite {
                        smtp,
                        file,
                        _dir: dir,
                    },
                }
            }
            Backend::RedisMongo => {
                let mut backends = Backends::start(false).await;
                backends.smtp = smtp;
                let app = backends.instance(overrides).await;
                Self {
                    app,
                    state: State::RedisMongo(Box::new(backends)),
                }
            }
        }
    }

    fn smtp(&self) -> &SmtpServer {
        match &self.state {
            State::Sqlite { smtp, .. } => smtp,
            State::RedisMongo(backends) => &backends.smtp,
        }
    }

    /// Every mail the SMTP server received for `email`, oldest first.
    pub fn mails_to(&self, email: &str) -> Vec<Mail> {
        self.smtp().mails_to(email)
    }

    /// Waits (up to `within`) for the nth mail to `email` and returns its code.
    pub async fn code_within(&self, email: &str, nth: usize, within: Duration) -> String {
        wait_for_code(self.smtp(), email, nth, within).await
    }

    /// The code of the nth mail to `email`, waiting up to 20 s.
    pub async fn code(&self, email: &str, nth: usize) -> String {
        self.code_within(email, nth, Duration::from_secs(20)).await
    }

    /// Registers, reads the code from the mailbox, verifies: a user and its tokens.
    pub async fn signup(
        &self,
        username: &str,
        email: &str,
    ) -> (
        baatcheet_auth_api::v1::User,
        baatcheet_auth_api::v1::TokenPair,
    ) {
        self.app
            .signup_via(self.smtp(), username, email, Duration::from_secs(20))
            .await
    }

    /// How many records the state store holds: keys in Redis, rows in every SQLite table.
    pub async fn stored_records(&self) -> u64 {
        match &self.state {
            State::Sqlite { file, .. } => {
                let file = file.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = rusqlite::Connection::open(file).expect("open the store file");
                    let tables: Vec<String> = conn
                        // The event log is bounded by its own retention and cap (conformance),
                        // the security log by its retention and, for what strangers cause, an
                        // hourly cap per user (attacks::login).
                        .prepare(
                            "SELECT name FROM sqlite_master WHERE type = 'table' \
                             AND name NOT IN ('events', 'events_trimmed', 'security_events')",
                        )
                        .unwrap()
                        .query_map([], |r| r.get(0))
                        .unwrap()
                        .collect::<Result<_, _>>()
                        .unwrap();
                    tables
                        .iter()
                        .map(|t| {
                            conn.query_row(&format!("SELECT COUNT(*) FROM \"{t}\""), [], |r| {
                                r.get::<_, u64>(0)
                            })
                            .unwrap()
                        })
                        .sum()
                })
                .await
                .unwrap()
            }
            State::RedisMongo(backends) => {
                let client = redis::Client::open(backends.redis.url()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap()
            }
        }
    }
}

/// A request as a gateway sends it for a browser at `ip` (the service believes it from
/// loopback, a trusted proxy by default).
pub fn from_ip<T>(message: T, ip: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-client-ip", ip.parse().expect("ascii"));
    request
}
