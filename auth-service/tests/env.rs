//! One production-like environment: Redis, MongoDB and SMTP servers of this test, and
//! service instances configured to use them.

use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::STANDARD};

use crate::helpers::{TestApp, spawn_in};
use baatcheet_test_support::{
    mail::{Mail, Mailbox, wait_for_code},
    mongo_server::{SecantusServer, Storage, fresh_database_name},
    redis_server::{RedisCluster, RedisServer},
    smtp_server::SmtpServer,
};

pub struct Backends {
    pub redis: RedisServer,
    /// A Redis Cluster the instances use instead of `redis`, when started with one.
    pub cluster: Option<RedisCluster>,
    pub mongo: Option<SecantusServer>,
    pub mongo_uri: String,
    pub database: String,
    pub smtp: SmtpServer,
    /// Shared by every instance, as production requires.
    pub auth_secret: String,
    pub signing_key: String,
}

impl Backends {
    /// Fresh servers; MongoDB from `MONGODB_URI` when set (a fresh database either way),
    /// unless `own_mongo` asks for a SecantusDB this test can stop.
    pub async fn start(own_mongo: bool) -> Self {
        let redis = RedisServer::start();
        let external = std::env::var("MONGODB_URI")
            .ok()
            .filter(|u| !u.trim().is_empty());
        let (mongo, mongo_uri) = match external {
            Some(uri) if !own_mongo => (None, uri),
            _ => {
                let server = SecantusServer::start(Storage::Disk).await;
                let uri = server.uri();
                (Some(server), uri)
            }
        };
        Self {
            redis,
            cluster: None,
            mongo,
            mongo_uri,
            database: fresh_database_name(),
            smtp: SmtpServer::start().await,
            auth_secret: STANDARD.encode(auth_service::crypto::ServerSecret::generate()),
            signing_key: auth_service::crypto::SigningKey::generate_pem().unwrap(),
        }
    }

    /// The same, with the state on a Redis Cluster of its own (three masters, three
    /// replicas), which the test may break.
    pub async fn start_on_cluster() -> Self {
        let cluster = tokio::task::spawn_blocking(RedisCluster::start)
            .await
            .unwrap();
        Self {
            cluster: Some(cluster),
            ..Self::start(false).await
        }
    }

    /// A service instance on these backends; `extra` overrides.
    pub async fn instance(&self, extra: &[(&str, &str)]) -> TestApp {
        let smtp_port = self.smtp.port().to_string();
        let redis_url = match &self.cluster {
            Some(cluster) => cluster.url(),
            None => self.redis.url(),
        };
        let mut vars: Vec<(&str, &str)> = vec![
            ("MONGODB_URI", &self.mongo_uri),
            ("DB_NAME", &self.database),
            ("REDIS_URL", &redis_url),
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", &smtp_port),
            ("SMTP_TLS", "none"),
            ("AUTH_SECRET", &self.auth_secret),
            ("JWT_PRIVATE_KEY", &self.signing_key),
            ("MAIL_RETRY_BASE_DELAY", "200ms"),
            ("MAIL_RETRY_MAX_DELAY", "1s"),
            ("MAIL_MAX_ATTEMPTS", "100"),
            ("REDIS_TIMEOUT", "1s"),
            ("MONGODB_SERVER_SELECTION_TIMEOUT", "1s"),
            ("MONGODB_CONNECT_TIMEOUT", "1s"),
        ];
        vars.extend_from_slice(extra);
        spawn_in(tempfile::tempdir().unwrap(), &vars).await
    }

    /// Every message the SMTP server received for `email`, oldest first.
    pub fn mails_to(&self, email: &str) -> Vec<Mail> {
        self.smtp.mails_to(email)
    }

    /// Waits (bounded) for the nth mail to `email` and returns its code.
    pub async fn wait_for_code(&self, email: &str, nth: usize, within: Duration) -> String {
        wait_for_code(&self.smtp, email, nth, within).await
    }

    /// Registers on `app`, reads the code from SMTP, verifies.
    pub async fn signup(
        &self,
        app: &TestApp,
        username: &str,
        email: &str,
    ) -> (
        baatcheet_auth_api::v1::User,
        baatcheet_auth_api::v1::TokenPair,
    ) {
        app.signup_via(&self.smtp, username, email, Duration::from_secs(15))
            .await
    }
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Calls `call` until a backend that was down answers again: UNAVAILABLE is retried for up to
/// `within`, any other refusal fails the test; the first success is returned.
pub async fn once_available<T, F, Fut>(within: Duration, what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = Instant::now() + within;
    loop {
        match call().await {
            Ok(value) => return value,
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::Unavailable, "{what}: {s:?}");
                assert!(
                    Instant::now() < deadline,
                    "{what} did not succeed within {within:?} of the backend's return"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
